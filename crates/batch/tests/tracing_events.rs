//! The tracing promise: a span per batch, a debug event per failed
//! request, a warning per caught panic.
//!
//! In its own test binary on purpose: tracing caches each call site's
//! interest globally, so a test running in parallel without a subscriber
//! could make a call site look disabled for this one.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{index_of, urls};
use httpclient_batch::BatchExecutor;
use httpclient_core::testkit::{Behavior, MockDriver};

/// A subscriber that counts events by level, to check the tracing promise.
mod counting {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Default)]
    pub struct Counts {
        pub debug_failed: AtomicUsize,
        pub warn: AtomicUsize,
        pub spans: AtomicUsize,
    }

    pub struct Counter(pub Arc<Counts>);

    impl Subscriber for Counter {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            if attrs.metadata().name() == "batch" {
                self.0.spans.fetch_add(1, Ordering::SeqCst);
            }
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let m = event.metadata();
            if m.target() != "httpclient_batch" {
                return;
            }
            if *m.level() == Level::WARN {
                self.0.warn.fetch_add(1, Ordering::SeqCst);
            }
            let mut msg = String::new();
            struct V<'a>(&'a mut String);
            impl tracing::field::Visit for V<'_> {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        *self.0 = format!("{v:?}");
                    }
                }
            }
            event.record(&mut V(&mut msg));
            if *m.level() == Level::DEBUG && msg == "request failed" {
                self.0.debug_failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

#[test]
fn a_span_per_batch_and_an_event_per_failed_request() {
    let counts = Arc::new(counting::Counts::default());
    let subscriber = counting::Counter(counts.clone());
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mock = MockDriver::new().handler(|req, _| match index_of(req) {
                1 | 2 => Behavior::reset(),
                3 => Behavior::panic("bug"),
                _ => Behavior::ok(),
            });
            let exec = BatchExecutor::new(mock, 2).unwrap();
            let mut inputs = urls(6);
            inputs.push("not a url".into());
            let r = exec.execute_batch(inputs).await;
            assert_eq!(r.failed, 4);

            // Requests cancelled in flight are failures too: two in a batch
            // whose token fires, one single call cut by an aborted shutdown.
            let hang = MockDriver::new().default_behavior(Behavior::hang());
            let exec = BatchExecutor::new(hang, 3).unwrap();
            let token = httpclient_batch::CancellationToken::new();
            let options = httpclient_batch::BatchOptions::builder()
                .cancel_token(token.clone())
                .build()
                .unwrap();
            let single = httpclient_core::Driver::execute(
                &exec,
                httpclient_core::Request::get("http://h/single")
                    .build()
                    .unwrap(),
            );
            let stopper = async {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                token.cancel();
                exec.shutdown_timeout(std::time::Duration::from_secs(1))
                    .await
            };
            let (single, r, _) =
                tokio::join!(single, exec.execute_batch_with(urls(2), options), stopper);
            assert!(single.is_err());
            assert_eq!(r.failed, 2);
        });
    });
    assert_eq!(counts.spans.load(Ordering::SeqCst), 2);
    assert_eq!(
        counts.debug_failed.load(Ordering::SeqCst),
        6,
        "2 resets + 1 invalid input + 3 cancelled in flight"
    );
    assert_eq!(counts.warn.load(Ordering::SeqCst), 1, "the panic");
}
