//! Tracing spans: a request span per request with attempt spans nested
//! under it, checked with a tiny capturing subscriber (no extra deps).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httpclient_core::DriverExt;
use httpclient_core::testkit::{Behavior, MockDriver};
use httpclient_pool::{ConnectionPool, RetryPolicy};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    parent: Option<u64>,
    fields: HashMap<String, String>,
}

type EventRec = (Option<u64>, HashMap<String, String>);

#[derive(Default)]
struct Capture {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, SpanRec>>,
    stack: Mutex<Vec<u64>>,
    events: Mutex<Vec<EventRec>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Capture>, bool);

impl Shared {
    /// A subscriber that wants events but no spans, so every span the pool
    /// makes is disabled.
    fn events_only() -> Self {
        Shared(Arc::default(), true)
    }
}

impl Subscriber for Shared {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        !self.1 || meta.is_event()
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed) + 1;
        let parent = if attrs.is_contextual() {
            self.0.stack.lock().unwrap().last().copied()
        } else {
            attrs.parent().map(Id::into_u64)
        };
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.spans.lock().unwrap().insert(
            id,
            SpanRec {
                name: attrs.metadata().name(),
                parent,
                fields,
            },
        );
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(s) = self.0.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let parent = if event.is_contextual() {
            self.0.stack.lock().unwrap().last().copied()
        } else {
            event.parent().map(Id::into_u64)
        };
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.events.lock().unwrap().push((parent, fields));
    }
    fn enter(&self, span: &Id) {
        self.0.stack.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.0.stack.lock().unwrap().pop();
    }
}

/// A pool whose mock answers 503, then refuses, then 200 — three attempts
/// with two backoffs of a 10 ms base.
fn pool_503_refused_ok() -> ConnectionPool<MockDriver> {
    let mock = MockDriver::new();
    mock.push(Behavior::status(503));
    mock.push(Behavior::refused());
    mock.push(Behavior::ok());
    ConnectionPool::builder(mock)
        .retry_policy(
            RetryPolicy::builder()
                .max_retries(3)
                .base_delay(Duration::from_millis(10))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn attempt_spans_nest_under_the_request_span() {
    let cap = Shared::default();
    let _default = tracing::subscriber::set_default(cap.clone());

    let pool = pool_503_refused_ok();
    let resp = pool.send("http://api.test:8080/items").await.unwrap();
    assert_eq!(resp.status(), 200);

    let spans = cap.0.spans.lock().unwrap().clone();
    let requests: Vec<(&u64, &SpanRec)> =
        spans.iter().filter(|(_, s)| s.name == "request").collect();
    assert_eq!(requests.len(), 1, "{spans:?}");
    let (req_id, req) = requests[0];
    assert_eq!(req.fields["method"], "GET");
    assert_eq!(req.fields["host"], "http://api.test:8080");
    assert_eq!(req.fields["attempts"], "3");
    assert_eq!(req.fields["status"], "200");

    let mut attempts: Vec<(u64, &SpanRec)> = spans
        .iter()
        .filter(|(_, s)| s.name == "attempt")
        .map(|(id, s)| (*id, s))
        .collect();
    attempts.sort_by_key(|(id, _)| *id);
    assert_eq!(attempts.len(), 3);
    for (i, (_, a)) in attempts.iter().enumerate() {
        assert_eq!(
            a.parent,
            Some(*req_id),
            "attempt {i} nests under the request"
        );
        assert_eq!(a.fields["attempt"], (i + 1).to_string());
    }
    // Each attempt's outcome is an event inside it; the backoffs are
    // events in the request span.
    let events = cap.0.events.lock().unwrap().clone();
    let in_attempt = |n: usize| {
        events
            .iter()
            .find(|(p, _)| *p == Some(attempts[n].0))
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no event in attempt {n}: {events:?}"))
    };
    assert_eq!(in_attempt(0)["status"], "503");
    assert_eq!(
        in_attempt(1)["error_kind"],
        format!("{:?}", "connect_refused")
    );
    assert_eq!(in_attempt(2)["status"], "200");
    let backoffs = events
        .iter()
        .filter(|(p, f)| *p == Some(*req_id) && f.contains_key("backoff_ms"))
        .count();
    assert_eq!(backoffs, 2);
}

/// With no subscriber interested in its spans (the pool then runs the
/// request future bare, without `Instrumented`), nothing but the spans
/// changes: the outcome, its retry record, the counters and the events that
/// are wanted. (The test guards that behaviour; it cannot see whether the
/// wrapper is there.)
#[tokio::test(start_paused = true)]
async fn disabled_spans_change_nothing_but_the_spans() {
    let cap = Shared::events_only();
    let _default = tracing::subscriber::set_default(cap.clone());

    let pool = pool_503_refused_ok();
    let resp = pool.send("http://api.test:8080/items").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.retry_info().map(|r| r.attempts), Some(3));
    let stats = pool.stats();
    assert_eq!((stats.requests, stats.attempts), (1, 3));
    assert_eq!((stats.succeeded, stats.failed, stats.cancelled), (1, 0, 0));

    assert!(cap.0.spans.lock().unwrap().is_empty(), "no span was made");
    let events = cap.0.events.lock().unwrap().clone();
    // The three attempts' outcomes and the two backoffs, none in a span.
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(
        events.iter().all(|(parent, _)| parent.is_none()),
        "{events:?}"
    );
    let statuses: Vec<&str> = events
        .iter()
        .filter_map(|(_, f)| f.get("status").map(String::as_str))
        .collect();
    assert_eq!(statuses, ["503", "200"]);
    let backoffs = events
        .iter()
        .filter(|(_, f)| f.contains_key("backoff_ms"))
        .count();
    assert_eq!(backoffs, 2);

    // A request that ends on its first attempt (the inline path) too.
    pool.inner().push(Behavior::status(404));
    let resp = pool.send("http://api.test:8080/missing").await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.retry_info().map(|r| r.attempts), Some(1));
    assert_eq!(pool.stats().requests, 2);
}
