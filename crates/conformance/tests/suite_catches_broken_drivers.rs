//! The suite itself must be able to fail: broken drivers are caught, with a
//! message that says what went wrong.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use httpclient_conformance::{ConformanceConfig, check_names, checks, run_all};
use httpclient_core::{ConnectKind, Driver, Error, Request, Response, async_trait};

/// Answers 418 to everything without touching the network.
struct Teapot;

#[async_trait]
impl Driver for Teapot {
    async fn execute(&self, _request: Request) -> Result<Response, Error> {
        Ok(Response::new(StatusCode::IM_A_TEAPOT))
    }
}

/// Reports every failure as a refused connection, whatever happened.
struct AlwaysRefused;

#[async_trait]
impl Driver for AlwaysRefused {
    async fn execute(&self, _request: Request) -> Result<Response, Error> {
        Err(Error::Connect {
            kind: ConnectKind::Refused,
            source: None,
        })
    }
}

/// Panics on every call.
struct Panicky;

#[async_trait]
impl Driver for Panicky {
    async fn execute(&self, _request: Request) -> Result<Response, Error> {
        panic!("driver bug")
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_check_is_listed_once() {
    let names = check_names();
    assert!(names.len() >= 20, "{}", names.len());
    let mut sorted = names.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicate check names");
}

#[test]
fn a_teapot_fails_what_it_should_and_passes_only_what_needs_no_network() {
    let report = rt().block_on(run_all(|_cfg: ConformanceConfig| Ok(Teapot)));
    assert_eq!(report.outcomes.len(), check_names().len());
    let names: Vec<_> = report.outcomes.iter().map(|o| o.name).collect();
    assert_eq!(names, check_names());

    // Invalid URLs never reach a driver, so even a teapot passes that one.
    assert!(report.get("invalid_url_rejected").unwrap().result.is_ok());
    let failure = |name: &str| {
        report
            .get(name)
            .unwrap()
            .result
            .clone()
            .expect_err(name)
            .message
    };
    assert!(
        failure("method_get").contains("418"),
        "{}",
        failure("method_get")
    );
    assert!(failure("connect_refused").contains("expected Connect { kind: Refused }"));
    assert!(failure("timeout_per_request").contains("Timeout"));
    assert!(failure("streaming_response").contains("buffered body"));
    assert!(!report.all_passed());
    assert_eq!(report.passed(), 1, "{report}");
    let text = report.to_string();
    assert!(
        text.ends_with(&format!("1 passed, {} failed", check_names().len() - 1)),
        "{text}"
    );
}

#[test]
fn a_driver_that_calls_everything_refused_fails_the_kind_checks() {
    let rt = rt();
    let make = |_cfg: ConformanceConfig| Ok(AlwaysRefused);
    rt.block_on(async {
        assert!(checks::connect_refused(&make).await.is_ok());
        let e = checks::dns_failure(&make).await.unwrap_err();
        assert!(e.message.contains("connect_refused"), "{e}");
        let e = checks::reset_mid_body(&make).await.unwrap_err();
        assert!(e.message.contains("expected ResetMidBody"), "{e}");
        let e = checks::garbage_is_invalid_response(&make)
            .await
            .unwrap_err();
        assert!(e.message.contains("expected InvalidResponse"), "{e}");
    });
}

#[test]
fn the_factory_gets_the_settings_each_check_needs() {
    let seen = std::sync::Mutex::new(Vec::new());
    let calls = AtomicUsize::new(0);
    let make = |cfg: ConformanceConfig| {
        calls.fetch_add(1, Ordering::Relaxed);
        seen.lock().unwrap().push(cfg);
        Ok(Teapot)
    };
    let rt = rt();
    rt.block_on(async {
        let _ = checks::timeout_default(&make).await;
        let _ = checks::body_over_limit(&make).await;
        let _ = checks::method_get(&make).await;
    });
    let seen = seen.into_inner().unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(seen[0].timeout, std::time::Duration::from_millis(400));
    assert_eq!(seen[1].max_body_bytes, 100_000);
    assert_eq!(seen[2], ConformanceConfig::default());
}

#[test]
fn a_failing_factory_and_a_panicking_driver_are_reported() {
    let rt = rt();
    let report = rt.block_on(run_all(
        |_cfg: ConformanceConfig| -> Result<Teapot, Error> {
            Err(Error::invalid_request("no driver today"))
        },
    ));
    let e = report
        .get("method_get")
        .unwrap()
        .result
        .clone()
        .unwrap_err();
    assert!(
        e.message.contains("factory failed") && e.message.contains("no driver today"),
        "{e}"
    );

    let report = rt.block_on(run_all(|_cfg: ConformanceConfig| Ok(Panicky)));
    let e = report
        .get("method_get")
        .unwrap()
        .result
        .clone()
        .unwrap_err();
    assert!(
        e.message.contains("panicked: driver panicked: driver bug"),
        "{e}"
    );
}
