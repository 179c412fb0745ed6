//! Streaming: unordered and ordered results, lazy intake, head-of-line
//! blocking, stopping without draining the source.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{index_of, input_differs, ms, secs, slow_mock, urls};
use futures::StreamExt;
use httpclient_batch::{
    BatchExecutor, BatchItem, BatchOptions, CancellationToken, FailFast, Outcome, StopReason,
};
use httpclient_core::Error;
use httpclient_core::testkit::{Behavior, MockDriver};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn unordered_stream_yields_in_completion_order() {
    let mock = MockDriver::new()
        .handler(|req, _| Behavior::ok().after(ms(100 * (10 - index_of(req) as u64))));
    let exec = BatchExecutor::new(mock.clone(), 10).unwrap();
    let items: Vec<_> = exec.execute_iter(urls(10)).collect().await;
    let order: Vec<usize> = items.iter().map(|i| i.index).collect();
    assert_eq!(order, (0..10).rev().collect::<Vec<_>>());
    assert!(items.iter().all(|i| i.outcome.is_response()));
}

#[tokio::test(start_paused = true)]
async fn ordered_stream_keeps_order_and_its_window_bounds_intake() {
    // Input 0 takes 10 s, the rest 1 s: the head-of-line effect.
    let mock = input_differs(
        0,
        Behavior::ok().after(secs(10)),
        Behavior::ok().after(secs(1)),
    );
    let exec = BatchExecutor::new(mock.clone(), 8).unwrap();
    let t0 = Instant::now();
    let stream = exec
        .execute_stream_ordered(futures::stream::iter(urls(12)), 4)
        .unwrap();
    let items: Vec<_> = stream
        .map(|i| (i.index, Instant::now() - t0))
        .collect()
        .await;
    let order: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, (0..12).collect::<Vec<_>>());
    // Inputs 1-3 finished at 1 s but waited behind input 0.
    assert!(items[..4].iter().all(|(_, at)| *at == secs(10)));
    // The window (4) capped concurrency below the worker limit (8), and
    // input 4 was not even started until input 0 was out.
    assert_eq!(mock.max_in_flight(), 4);
    let calls = mock.calls();
    assert_eq!(calls[4].at - t0, secs(10));
    assert_eq!(items[11].1, secs(12));
}

#[tokio::test(start_paused = true)]
async fn inputs_are_pulled_only_as_capacity_frees() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let source = futures::stream::iter(0..1_000_000usize).map(move |i| {
        counter.fetch_add(1, Ordering::SeqCst);
        format!("http://h/{i}")
    });
    let exec = BatchExecutor::new(slow_mock(secs(1)), 4).unwrap();
    let mut stream = exec.execute_stream(source);
    let first = stream.next().await.unwrap();
    assert_eq!(first.index, 0);
    // 4 running, at most one more built and waiting for a slot.
    assert!(
        pulled.load(Ordering::SeqCst) <= 5,
        "{}",
        pulled.load(Ordering::SeqCst)
    );
    assert_eq!(stream.pulled(), pulled.load(Ordering::SeqCst));
    let more: Vec<_> = stream.by_ref().take(7).collect().await;
    assert_eq!(more.len(), 7);
    assert!(pulled.load(Ordering::SeqCst) <= 8 + 5);
    assert!(stream.in_flight() <= 4);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_stream_ends_without_draining_an_endless_source() {
    let exec = BatchExecutor::new(slow_mock(secs(1)), 3).unwrap();
    let token = CancellationToken::new();
    let options = BatchOptions::builder()
        .cancel_token(token.clone())
        .build()
        .unwrap();
    let endless = futures::stream::repeat("http://h/x");
    let stream = exec.execute_stream_with(endless, options);
    let canceller = async {
        tokio::time::sleep(ms(2500)).await;
        token.cancel();
    };
    let t0 = Instant::now();
    let (items, ()) = tokio::join!(stream.collect::<Vec<_>>(), canceller);
    assert_eq!(Instant::now() - t0, ms(2500));
    let responses = items.iter().filter(|i| i.outcome.is_response()).count();
    let cancelled = items
        .iter()
        .filter(|i| matches!(i.outcome.error(), Some(Error::Cancelled)))
        .count();
    let not_started = items.iter().filter(|i| i.outcome.is_not_started()).count();
    // An input is taken only with a worker slot in hand, so nothing was
    // pulled without being started.
    assert_eq!((responses, cancelled, not_started), (6, 3, 0));
    // Indices are exactly 0..pulled, each once.
    let mut seen: Vec<usize> = items.iter().map(|i| i.index).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..9).collect::<Vec<_>>());
    assert_eq!(exec.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_and_shutdown_end_streams_too() {
    let mock = input_differs(
        5,
        Behavior::reset().after(ms(150)),
        Behavior::ok().after(ms(100)),
    );
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let options = BatchOptions::builder()
        .fail_fast(FailFast::any_error())
        .build()
        .unwrap();
    let mut stream = exec
        .execute_stream_ordered_with(futures::stream::iter(urls(100)), 8, options)
        .unwrap();
    let mut seen = Vec::new();
    while let Some(item) = stream.next().await {
        seen.push(item);
    }
    // t=200 ms: 4 and 5 start. t=300: 4 is done, 6 starts.
    // t=350: 5 fails -> stop; 6 runs to its end; 7 is never taken.
    let stop = StopReason::FailFast { trigger: 5 };
    assert_eq!(stream.stop_reason(), Some(stop));
    let order: Vec<usize> = seen.iter().map(|i| i.index).collect();
    assert_eq!(order, (0..=6).collect::<Vec<_>>());
    assert!(seen[5].outcome.is_error());
    assert!(seen[6].outcome.is_response());
    assert_eq!(stream.pulled(), 7);
    assert_eq!(mock.call_count(), 7);
    assert!(futures::stream::FusedStream::is_terminated(&stream));
    assert!(stream.next().await.is_none());

    let exec = BatchExecutor::new(slow_mock(secs(1)), 2).unwrap();
    let stream = exec.execute_iter(urls(10));
    let stopper = async {
        tokio::time::sleep(ms(1500)).await;
        exec.shutdown().await;
    };
    let (items, ()) = tokio::join!(stream.collect::<Vec<_>>(), stopper);
    let responses = items.iter().filter(|i| i.outcome.is_response()).count();
    assert_eq!(responses, 4, "in-flight requests finished during shutdown");
    assert_eq!(items.len(), 4, "nothing else was taken from the source");
    assert!(items.iter().all(|i| i.outcome.is_response()));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stream_drops_its_requests() {
    let mock = MockDriver::new().default_behavior(Behavior::hang());
    let exec = BatchExecutor::new(mock.clone(), 5).unwrap();
    {
        let mut stream = exec.execute_iter(urls(100));
        let r = tokio::time::timeout(secs(1), stream.next()).await;
        assert!(r.is_err());
        assert_eq!(mock.in_flight(), 5);
    }
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(exec.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn streams_can_run_on_a_spawned_task_with_a_cloned_executor() {
    let exec = BatchExecutor::new(slow_mock(ms(10)), 4).unwrap();
    let handle = tokio::spawn({
        let exec = exec.clone();
        async move { exec.execute_iter(urls(50)).count().await }
    });
    assert_eq!(handle.await.unwrap(), 50);
    assert_eq!(exec.stats().completed, 50);
}

/// An open channel source holding one URL.
fn source_with(
    url: &str,
) -> (
    futures::channel::mpsc::UnboundedSender<String>,
    futures::channel::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tx.unbounded_send(url.to_owned()).unwrap();
    (tx, rx)
}

/// Run a batch of `n` on `exec` while a stream of it is held elsewhere:
/// how many succeeded and how long it took (it fails instead of hanging if
/// it never gets a worker slot).
async fn batch_beside<D: httpclient_core::Driver>(
    exec: &BatchExecutor<D>,
    n: usize,
) -> (usize, std::time::Duration) {
    let t0 = Instant::now();
    let other = tokio::time::timeout(secs(10), exec.execute_batch(urls(n)))
        .await
        .expect("the other batch got worker slots");
    (other.succeeded, Instant::now() - t0)
}

#[tokio::test(start_paused = true)]
async fn a_stream_holding_an_item_keeps_no_idle_worker_slot() {
    let exec = BatchExecutor::new(slow_mock(ms(100)), 2).unwrap();
    let (tx, rx) = source_with("http://h/0");
    let mut stream = exec.execute_stream(rx);
    // The request finished and the source has nothing more: the stream
    // holds no request, so it must hold no worker slot either while its
    // consumer is away.
    assert!(stream.next().await.unwrap().outcome.is_response());
    let (succeeded, took) = batch_beside(&exec, 2).await;
    assert_eq!(succeeded, 2);
    assert_eq!(took, ms(100), "both slots were free");
    drop(tx);
    assert!(stream.next().await.is_none());

    // The same with more input ready: the next request is taken (and its
    // slot with it) only when the stream is polled again.
    let mock = slow_mock(ms(100));
    let exec = BatchExecutor::new(mock.clone(), 1).unwrap();
    let mut stream = exec.execute_iter(urls(2));
    assert_eq!(stream.next().await.unwrap().index, 0);
    let (succeeded, took) = batch_beside(&exec, 1).await;
    assert_eq!(succeeded, 1);
    assert_eq!(took, ms(100));
    assert_eq!(stream.pulled(), 1);
    assert_eq!(stream.next().await.unwrap().index, 1);
    assert_eq!(mock.max_in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_a_stream_waiting_on_its_source() {
    let exec = BatchExecutor::new(slow_mock(ms(100)), 2).unwrap();
    let (tx, rx) = source_with("http://h/0");
    let mut stream = exec.execute_stream(rx);
    // Idle: nothing in flight, the source open and empty.
    assert!(stream.next().await.unwrap().outcome.is_response());
    let t0 = Instant::now();
    let (end, ()) = tokio::time::timeout(secs(10), async {
        tokio::join!(stream.next(), exec.shutdown())
    })
    .await
    .expect("the stream ended when the shutdown began");
    assert!(end.is_none());
    assert_eq!(
        Instant::now(),
        t0,
        "at once, not when something else woke it"
    );
    assert_eq!(stream.stop_reason(), Some(StopReason::Shutdown));

    // Busy: the request in flight finishes, then the stream ends.
    let exec = BatchExecutor::new(slow_mock(ms(100)), 2).unwrap();
    let (tx2, rx2) = source_with("http://h/1");
    let stream = exec.execute_stream(rx2);
    let stopper = async {
        tokio::time::sleep(ms(50)).await;
        exec.shutdown().await;
    };
    let t0 = Instant::now();
    let (items, ()) = tokio::time::timeout(secs(10), async {
        tokio::join!(stream.collect::<Vec<_>>(), stopper)
    })
    .await
    .expect("the stream ended once its request finished");
    assert_eq!(Instant::now() - t0, ms(100));
    assert_eq!(items.len(), 1);
    assert!(items[0].outcome.is_response());
    drop((tx, tx2));
}

/// A stream of ten inputs whose token is cancelled once its first item is
/// out (a response): the items after it, how many inputs it took, and why
/// it stopped.
async fn cancelled_after_the_first_item<D: httpclient_core::Driver>(
    exec: &BatchExecutor<D>,
) -> (Vec<BatchItem>, usize, Option<StopReason>) {
    let token = CancellationToken::new();
    let options = BatchOptions::builder()
        .cancel_token(token.clone())
        .build()
        .unwrap();
    let mut stream = exec.execute_stream_with(futures::stream::iter(urls(10)), options);
    assert!(stream.next().await.unwrap().outcome.is_response());
    token.cancel();
    let rest: Vec<_> = stream.by_ref().collect().await;
    (rest, stream.pulled(), stream.stop_reason())
}

#[tokio::test(start_paused = true)]
async fn a_token_cancelled_between_items_sends_nothing_more() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 1).unwrap();
    let (rest, pulled, reason) = cancelled_after_the_first_item(&exec).await;
    assert_eq!(mock.call_count(), 1, "nothing was sent after the cancel");
    assert!(rest.is_empty());
    assert_eq!(pulled, 1, "nothing more was taken from the source");
    assert_eq!(reason, Some(StopReason::Cancelled));

    // Several requests handed over in one poll, one yielded, the rest not
    // yet polled when the consumer cancels: provably not sent.
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 4).unwrap();
    let (rest, pulled, _) = cancelled_after_the_first_item(&exec).await;
    let sent = mock.call_count() as usize;
    let not_started = rest.iter().filter(|i| i.outcome.is_not_started()).count();
    assert_eq!(1 + rest.len(), pulled);
    assert_eq!(sent + not_started, pulled, "{rest:?}");
    assert!(rest.iter().all(|i| matches!(
        i.outcome,
        Outcome::NotStarted(StopReason::Cancelled) | Outcome::Response(_)
    )));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_while_the_consumer_held_an_item_sends_nothing_more() {
    let mock = slow_mock(secs(1));
    let exec = BatchExecutor::new(mock.clone(), 1).unwrap();
    let options = BatchOptions::builder()
        .time_limit(ms(1500))
        .build()
        .unwrap();
    let mut stream = exec.execute_stream_with(futures::stream::iter(urls(10)), options);
    assert!(stream.next().await.unwrap().outcome.is_response());
    tokio::time::sleep(secs(2)).await;
    let rest: Vec<_> = stream.by_ref().collect().await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(mock.call_count(), 1, "nothing was sent after the deadline");
    assert_eq!(stream.stop_reason(), Some(StopReason::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn latency_excludes_the_time_a_consumer_holds_an_item() {
    let exec = BatchExecutor::new(slow_mock(secs(1)), 1).unwrap();
    let mut stream = exec.execute_iter(urls(2));
    let first = stream.next().await.unwrap();
    assert_eq!(first.elapsed, secs(1));
    // The consumer thinks for 5 s; the next request was not sent meanwhile.
    tokio::time::sleep(secs(5)).await;
    let second = stream.next().await.unwrap();
    assert_eq!(second.elapsed, secs(1));
    assert!(stream.next().await.is_none());
    let stats = exec.stats();
    assert_eq!(stats.latency.max, secs(1));
    assert_eq!(stats.latency.count, 2);
}

#[tokio::test(start_paused = true)]
async fn a_grace_period_bounds_shutdown_even_when_the_caller_holds_the_stream() {
    // The stream is held, unpolled, by the very task that shuts down: its
    // requests cannot end until it is polled again. The shutdown still
    // returns, a bounded time after the grace period (it hung forever
    // before), says two were left unfinished, and the stream reports them
    // cancelled when it is polled again.
    let mock = input_differs(0, Behavior::ok().after(ms(100)), Behavior::hang());
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let mut stream = exec.execute_iter(urls(3));
    let first = stream.next().await.unwrap();
    assert!(first.outcome.is_response());
    let t0 = Instant::now();
    let outcome = tokio::time::timeout(secs(60), exec.shutdown_timeout(secs(1)))
        .await
        .expect("shutdown_timeout returned");
    assert_eq!(
        outcome,
        httpclient_batch::ShutdownOutcome::Aborted {
            cancelled: 2,
            unfinished: 2
        }
    );
    assert_eq!(
        Instant::now() - t0,
        secs(1) + httpclient_batch::ABORT_SETTLE,
        "the grace period, then the settling bound"
    );
    let rest: Vec<_> = stream.collect().await;
    assert_eq!(rest.len(), 2);
    assert!(
        rest.iter()
            .all(|i| matches!(i.outcome, Outcome::Error(Error::Cancelled))),
        "{rest:?}"
    );
    assert_eq!(mock.in_flight(), 0);
    assert_eq!(exec.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_ordered_stream_keeps_its_workers_busy_behind_a_slow_head() {
    // Input 0 takes 1 s, the others answer at once. The window (16) has room
    // for 16 inputs past the head, the workers (4) run them: every slot the
    // quick ones free is refilled while the head is out (the slots sat idle
    // until the head finished before).
    let mock = input_differs(0, Behavior::ok().after(secs(1)), Behavior::ok());
    let exec = BatchExecutor::new(mock.clone(), 4).unwrap();
    let t0 = Instant::now();
    let items: Vec<_> = exec
        .execute_stream_ordered(futures::stream::iter(urls(20)), 16)
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        items.iter().map(|i| i.index).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    let started_at_once = mock.calls().iter().filter(|c| c.at == t0).count();
    assert_eq!(started_at_once, 16, "the whole window, while the head ran");
    assert!(mock.max_in_flight() <= 4);
}

#[tokio::test(start_paused = true)]
async fn a_stream_holding_an_item_lets_go_of_the_slot_it_queued_for() {
    // Two workers: a single call holds one for 300 ms; a stream runs input
    // 0 on the other and queues for a slot for input 1. When input 0 ends
    // the stream is the only waiter; it yields item 0 and its consumer holds
    // it. The freed slot must not sit in the stream's queued request
    // meanwhile (before, the semaphore handed it there, and another batch
    // waited for the single call instead).
    let mock = MockDriver::new().handler(|req, _| {
        if req.uri().path() == "/single" {
            Behavior::ok().after(ms(300))
        } else {
            Behavior::ok().after(ms(100))
        }
    });
    let exec = BatchExecutor::new(mock.clone(), 2).unwrap();
    let single = httpclient_core::Driver::execute(
        &exec,
        httpclient_core::Request::get("http://h/single")
            .build()
            .unwrap(),
    );
    let streamed = async {
        let mut stream = exec.execute_iter(urls(3));
        assert_eq!(stream.next().await.unwrap().index, 0);
        let beside = batch_beside(&exec, 1).await;
        let rest: Vec<_> = stream.map(|i| i.index).collect().await;
        (beside, rest)
    };
    let (single, ((succeeded, took), rest)) = tokio::join!(single, streamed);
    assert!(single.is_ok());
    assert_eq!(succeeded, 1);
    assert_eq!(took, ms(100), "the slot input 0 freed was free");
    assert_eq!(rest, vec![1, 2]);
    assert!(mock.max_in_flight() <= 2);
}

#[tokio::test(start_paused = true)]
async fn requests_dropped_before_their_first_poll_count_as_not_started() {
    // Input 0 answers at its first poll and is yielded before inputs 1 and
    // 2, handed over in the same poll, were polled; the consumer then drops
    // the stream. Nothing of 1 and 2 reached the driver: they are not
    // started, not uncounted (they were in no counter before).
    let mock = MockDriver::new();
    let exec = BatchExecutor::new(mock.clone(), 3).unwrap();
    let mut stream = exec.execute_iter(urls(3));
    assert_eq!(stream.next().await.unwrap().index, 0);
    drop(stream);
    assert_eq!(mock.call_count(), 1);
    let st = exec.stats();
    assert_eq!((st.requests, st.completed, st.not_started), (1, 1, 2));
    assert_eq!(exec.in_flight(), 0);
}

/// Input 0 waits for a signal another task sends; every other input answers
/// at its first poll.
struct HeadWaitsForSignal {
    signal: Arc<tokio::sync::Notify>,
}

#[httpclient_core::async_trait]
impl httpclient_core::Driver for HeadWaitsForSignal {
    async fn execute(
        &self,
        request: httpclient_core::Request,
    ) -> Result<httpclient_core::Response, Error> {
        if index_of(&request) == 0 {
            self.signal.notified().await;
        }
        Ok(httpclient_core::Response::new(
            httpclient_core::http::StatusCode::OK,
        ))
    }
}

#[tokio::test]
async fn results_kept_behind_a_waiting_head_do_not_starve_the_runtime() {
    // A wide ordered window, quick results behind a head that waits for
    // another task on this single-threaded runtime: the stream must let that
    // task run after a bounded amount of work (it ran through the whole
    // input in one poll before, so the signal came only at the end).
    const N: usize = 20_000;
    let signal = Arc::new(tokio::sync::Notify::new());
    let exec = BatchExecutor::new(
        HeadWaitsForSignal {
            signal: signal.clone(),
        },
        4,
    )
    .unwrap();
    let sender = tokio::spawn(async move { signal.notify_one() });
    let mut stream = exec
        .execute_stream_ordered(futures::stream::iter(urls(N)), N)
        .unwrap();
    assert_eq!(stream.next().await.unwrap().index, 0);
    let pulled = stream.pulled();
    assert!(
        pulled < N / 10,
        "{pulled} of {N} pulled before the head's turn"
    );
    assert_eq!(stream.count().await, N - 1);
    sender.await.unwrap();
}
