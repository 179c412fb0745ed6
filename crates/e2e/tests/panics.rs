//! A driver that panics on 1 % of its calls — every 100th call — under the
//! whole chain: each panic is contained in its own slot as
//! `Error::Panicked`, counted in the batch stats, leaves no layer's books
//! or capacity broken, and the same executor runs the next batch normally.
//!
//! The panicking driver does it both ways a driver can: odd multiples of
//! 100 panic while building the call's future (inside `execute` itself,
//! before any `.await`), even multiples panic when the future is polled.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use common::{Kind, driver, runtime, serial};
use httpclient_batch::{BatchExecutor, BatchResult, Outcome};
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_core::{Driver, Error, Request, Response};
use httpclient_pool::{ConnectionPool, RetryPolicy};
use httpclient_ratelimit::{Quota, RateLimitedExecutor};
use httpclient_testserver::TestServer;

const MESSAGE: &str = "e2e injected panic";

/// Panics on every `every`-th call (1-based), alternating between a panic
/// in `execute` itself and one in the returned future.
struct PanicEvery<D> {
    inner: D,
    every: u64,
    calls: AtomicU64,
    panics: Arc<AtomicU64>,
}

impl<D> PanicEvery<D> {
    fn new(inner: D, every: u64) -> Self {
        PanicEvery {
            inner,
            every,
            calls: AtomicU64::new(0),
            panics: Arc::new(AtomicU64::new(0)),
        }
    }
}

// Written out by hand (not with `#[async_trait]`) so that a panic can happen
// before the future exists, as it can in a hand-written driver.
impl<D: Driver> Driver for PanicEvery<D> {
    fn execute<'a, 'b>(
        &'a self,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n % self.every == 0 {
            self.panics.fetch_add(1, Ordering::SeqCst);
            if (n / self.every) % 2 == 1 {
                panic!("{MESSAGE} (call {n}, in execute)");
            }
            return Box::pin(async move { panic!("{MESSAGE} (call {n}, when polled)") });
        }
        self.inner.execute(request)
    }
}

/// Keep the injected panics out of the test output; any other panic is
/// reported as usual.
fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s.starts_with(MESSAGE));
            if !injected {
                default(info);
            }
        }));
    });
}

/// Every slot has one outcome; the panicked ones are `Error::Panicked` with
/// our message; returns how many panicked.
fn check(result: &BatchResult, n: usize) -> usize {
    assert_eq!(result.len(), n);
    assert_eq!(result.not_started, 0);
    let mut panicked = 0;
    for (i, item) in result.iter().enumerate() {
        assert_eq!(item.index, i);
        match &item.outcome {
            Outcome::Response(r) => assert_eq!(r.status(), 200, "item {i}"),
            Outcome::Error(Error::Panicked { message }) => {
                assert!(message.starts_with(MESSAGE), "{message}");
                panicked += 1;
            }
            other => panic!("item {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(result.failed, panicked);
    panicked
}

/// Over the whole chain and a real driver: `Batch<Pool<RateLimited<PanicEvery<reqwest>>>>`.
#[test]
fn one_percent_panics_are_contained_counted_and_the_executor_reusable() {
    quiet_injected_panics();
    let _serial = serial();
    runtime().block_on(async {
        let server = TestServer::start().await.unwrap();
        let flaky = PanicEvery::new(driver(Kind::Reqwest), 100);
        let panics = Arc::clone(&flaky.panics);
        let limited = RateLimitedExecutor::new(
            flaky,
            Quota::per_second(20_000).unwrap().burst(100).unwrap(),
        );
        let pool = ConnectionPool::builder(limited)
            .retry_policy(
                RetryPolicy::builder()
                    .attempt_timeout(Duration::from_secs(10))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let exec = BatchExecutor::new(pool, 32).unwrap();

        // No faults, so every request is one call: calls 100, 200, … panic.
        let first = tokio::time::timeout(
            Duration::from_secs(60),
            exec.execute_batch((0..2_000).map(|i| server.url(&format!("/p/{i}")))),
        )
        .await
        .expect("bounded");
        assert_eq!(check(&first, 2_000), 20);
        assert_eq!(panics.load(Ordering::SeqCst), 20);
        let stats = exec.stats();
        assert_eq!(
            (stats.requests, stats.completed, stats.errors),
            (2_000, 1_980, 20)
        );
        assert_eq!(stats.errors_by_kind.get("panicked"), Some(&20));
        assert_eq!(stats.in_flight, 0);
        assert_eq!(
            server.stats().requests,
            1_980,
            "a panicked call sent nothing"
        );

        // The layers the panic unwound through kept honest books and gave
        // their capacity back.
        let pool = exec.driver();
        let ps = pool.stats();
        assert_eq!(ps.in_flight, 0, "{ps:?}");
        assert_eq!(
            ps.requests,
            ps.succeeded + ps.failed + ps.cancelled,
            "{ps:?}"
        );
        assert_eq!(ps.succeeded, 1_980, "{ps:?}");
        // ...and the pool counts the panics as the batch does: failures of
        // kind "panicked", not cancellations.
        assert_eq!((ps.failed, ps.cancelled), (20, 0), "{ps:?}");
        assert_eq!(ps.failures_by_kind.get("panicked"), Some(&20), "{ps:?}");
        let ls = pool.inner().stats();
        assert_eq!(ls.in_flight, 0, "{ls:?}");
        assert_eq!(ls.limiter.granted, 2_000);

        // Reusable: the next batch runs on the same executor (calls 2,001 to
        // 2,500: five more panics) and a single call works too.
        let second = exec
            .execute_batch((0..500).map(|i| server.url(&format!("/q/{i}"))))
            .await;
        assert_eq!(check(&second, 500), 5);
        assert_eq!(exec.stats().errors_by_kind.get("panicked"), Some(&25));
        let one = exec
            .execute(Request::get(server.url("/one")).build().unwrap())
            .await;
        assert_eq!(one.unwrap().status(), 200);
        assert_eq!(exec.in_flight(), 0);
        server.shutdown().await;
    });
}

/// Straight over the mock with a paused clock and few workers: a worker
/// slot taken by a panicking call is given back, or 1,000 requests on 4
/// workers would stall; both panic forms are caught.
#[tokio::test(start_paused = true)]
async fn panics_free_their_worker_slots() {
    quiet_injected_panics();
    let mock = MockDriver::new().default_behavior(Behavior::ok().after(Duration::from_millis(10)));
    let flaky = PanicEvery::new(mock.clone(), 100);
    let exec = BatchExecutor::new(flaky, 4).unwrap();
    let start = tokio::time::Instant::now();
    let result = exec
        .execute_batch((0..1_000).map(|i| format!("http://mock.test/{i}")))
        .await;
    assert_eq!(check(&result, 1_000), 10);
    // 990 calls of 10 ms on 4 workers: 248 rounds; panics take no time.
    assert_eq!(start.elapsed(), Duration::from_millis(2_480));
    assert_eq!(mock.call_count(), 990);
    assert_eq!(mock.in_flight(), 0);
    let stats = exec.stats();
    assert_eq!(stats.errors_by_kind.get("panicked"), Some(&10));
    assert_eq!(stats.in_flight, 0);
    // And again.
    let again = exec
        .execute_batch((0..100).map(|i| format!("http://mock.test/{i}")))
        .await;
    assert_eq!(check(&again, 100), 1);
}
