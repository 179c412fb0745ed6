//! The whole chain over real sockets, in both orders, with both drivers,
//! against the fault server.
//!
//! Every request goes to `/r/{i}` with
//! `faults=reset_mid_body:20,status503:5,slow:2`: a fifth of the attempts are
//! cut off in the middle of the body, one in twenty is a `503` with
//! `Retry-After: 1`, and one in fifty answers only after `SLOW_MS`, past the
//! per-attempt timeout. The pool retries all three (GET is idempotent).
//!
//! A [`Probe`] sits directly on the real driver: it records when each
//! attempt was handed over and tags its URL with a sequence number, so every
//! arrival the server records is matched to exactly one attempt. That gives
//! exact accounting (nothing lost, nothing duplicated) and the measured
//! release→arrival transit spread, which is what the window bound needs
//! besides the limiter's own release lag:
//!
//! grants are GCRA-conformant (at most `burst + ⌊L/T⌋` in any window of
//! length `L`); an attempt reaches the server `d` after its grant, where `d`
//! is its release lag (≤ the limiter's measured `release_lag.max`) plus its
//! transit. So any arrival window of length `W` holds arrivals of grants
//! from a window of length `W + max_lag + transit_spread`, and the bound is
//! `quota.max_in_window(W + max_lag + transit_spread) + 1` (the `+ 1` for
//! the instant between the limiter's release and the probe's clock read).
//!
//! Numbers, and why:
//! * quota 2,000/s, burst 10: high enough that 10,000 GETs (about 13,700
//!   attempts with these faults) take about 7 s of permits, low enough that
//!   256 workers on loopback want more, so the limiter really throttles.
//! * 256 workers: a `503` holds its worker for the 1 s `Retry-After`, so at
//!   5 % of attempts a smaller pool of workers would starve the limiter.
//! * attempt timeout 1 s, `slow_ms` 2,500: slow answers always time out,
//!   and a normal answer on a busy 2-core machine never comes near 1 s.
//! * 3 retries, unlimited retry budget: about 0.5 % of requests (0.27⁴)
//!   still fail after four attempts, so both outcomes are exercised.
//! * N = 10,000 for the recommended order with reqwest (the scenario the
//!   issue names); 2,000 for the Go order and for isahc, which prove the
//!   same properties in a fraction of the time (CI runs on 2 cores).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Kind, Probe, driver, eventually, match_arrivals, max_in_window, path_of, runtime, serial,
    transit_spread,
};
use httpclient_batch::{BatchExecutor, BatchResult, Outcome};
use httpclient_core::{Driver, Error, Request};
use httpclient_pool::{ConnectionPool, HealthCheck, RetryBudget, RetryPolicy};
use httpclient_ratelimit::{Quota, RateLimitedExecutor};
use httpclient_testserver::{ServerConfig, TestServer};

const RATE: u32 = 2_000;
const BURST: u32 = 10;
const WORKERS: usize = 256;
/// Per attempt: a normal answer must never get near it, even on a loaded
/// 2-core CI machine (an attempt cut off before the server read it would
/// break the exact server-side accounting below).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_000);
const SLOW_MS: u64 = 2_500;
/// Windows the quota is checked over.
const WINDOWS_MS: [u64; 4] = [5, 50, 250, 1_000];
/// Upper bound on one scenario; far above what it needs.
const RUN_BOUND: Duration = Duration::from_secs(120);

fn quota() -> Quota {
    Quota::per_second(RATE).unwrap().burst(BURST).unwrap()
}

fn policy() -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(3)
        .base_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
        .unwrap()
}

fn faulty_url(server: &TestServer, i: usize) -> String {
    server.url(&format!(
        "/r/{i}?faults=reset_mid_body:20,status503:5,slow:2&retry_after=1&slow_ms={SLOW_MS}"
    ))
}

async fn start_server() -> TestServer {
    TestServer::start_with(ServerConfig::default().record_arrivals(true))
        .await
        .expect("test server starts")
}

/// How many attempts the chain says request `i` took: the pool's
/// `RetryInfo` on a response, the count in `RetriesExhausted`, else one.
fn attempts_of(outcome: &Outcome) -> u32 {
    match outcome {
        Outcome::Response(r) => {
            r.retry_info()
                .expect("the pool records RetryInfo on every response")
                .attempts
        }
        Outcome::Error(Error::RetriesExhausted { attempts, .. }) => *attempts,
        Outcome::Error(_) => 1,
        Outcome::NotStarted(r) => panic!("nothing was stopped, yet an input was not started: {r}"),
    }
}

/// Every input has exactly one outcome, in input order, each response is
/// the answer to its own request, and the server saw each request exactly
/// as many times as the chain says it tried. Returns the attempts per
/// request.
fn assert_one_outcome_each(
    label: &str,
    result: &BatchResult,
    n: usize,
    server: &TestServer,
) -> Vec<u32> {
    assert_eq!(result.len(), n, "{label}: one item per input");
    assert_eq!(result.not_started, 0, "{label}");
    assert_eq!(result.succeeded + result.failed, n, "{label}");
    let mut seen: HashMap<String, u32> = HashMap::new();
    for a in server.arrivals() {
        *seen.entry(path_of(&a).to_string()).or_default() += 1;
    }
    let mut attempts = Vec::with_capacity(n);
    for (i, item) in result.iter().enumerate() {
        assert_eq!(item.index, i, "{label}: items come back in input order");
        let path = format!("/r/{i}");
        if let Some(resp) = item.outcome.response() {
            let url = resp.url().expect("drivers record the final URL");
            assert_eq!(url.path(), path, "{label}: item {i} holds its own response");
        }
        let tried = attempts_of(&item.outcome);
        assert_eq!(
            seen.get(&path).copied().unwrap_or(0),
            tried,
            "{label}: the server saw request {i} exactly as often as it was tried ({:?})",
            item.outcome
        );
        attempts.push(tried);
    }
    attempts
}

/// `BatchExecutor<ConnectionPool<RateLimitedExecutor<driver>>>`: every
/// attempt, warm-up request and health probe spends a permit, so the
/// server never sees more than the quota.
async fn recommended_order(kind: Kind, n: usize) {
    let label = format!("recommended/{kind:?}/{n}");
    let server = start_server().await;
    let limited = RateLimitedExecutor::new(Probe::new(driver(kind)), quota());
    let pool = ConnectionPool::builder(limited)
        .retry_policy(policy())
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let exec = BatchExecutor::new(pool, WORKERS).unwrap();
    let pool = exec.driver();
    let limited = pool.inner();

    // Warm-up and health probes go through the limiter too.
    let warm = pool
        .warmup_connections([server.base_url()], 8)
        .await
        .unwrap();
    assert!(warm.is_complete(), "{label}: warm-up {warm:?}");
    pool.enable_health_check_with(
        HealthCheck::builder([server.base_url()], Duration::from_millis(250))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
    .unwrap();

    let started = Instant::now();
    let result = tokio::time::timeout(
        RUN_BOUND,
        exec.execute_batch((0..n).map(|i| Request::get(faulty_url(&server, i)))),
    )
    .await
    .unwrap_or_else(|_| panic!("{label}: the batch finishes within {RUN_BOUND:?}"));
    let took = started.elapsed();
    pool.stop(); // ends the health checker

    // Every attempt was counted by the server when its head was parsed;
    // a timed-out attempt may be parsed a moment after the client gave up.
    let releases = || limited.inner().releases().len() as u64;
    assert!(
        eventually(Duration::from_secs(5), || server.stats().requests
            == releases())
        .await,
        "{label}: the server counts every attempt that reached the driver ({} vs {})",
        server.stats().requests,
        releases()
    );

    let attempts = assert_one_outcome_each(&label, &result, n, &server);
    let p = pool.stats();
    let l = limited.stats();
    let s = server.stats();
    let releases = limited.inner().releases();
    let arrivals = server.arrivals();
    let traffic = arrivals
        .iter()
        .filter(|a| path_of(a).starts_with("/r/"))
        .count() as u64;

    // The pool's books agree with the server's.
    assert_eq!(p.requests, n as u64, "{label}");
    assert_eq!(
        (p.succeeded + p.failed, p.cancelled, p.in_flight),
        (n as u64, 0, 0),
        "{label}"
    );
    assert_eq!(
        p.attempts, traffic,
        "{label}: server request count == pool attempts"
    );
    assert_eq!(
        p.attempts,
        attempts.iter().map(|&a| u64::from(a)).sum::<u64>(),
        "{label}"
    );
    assert_eq!(p.attempts, n as u64 + p.retries, "{label}");
    // Everything that reached the server passed the limiter: traffic,
    // warm-up and probes. The one probe `stop` may cut off (queued, or
    // granted but not yet forwarded) is counted by the pool and the
    // limiter but never sent.
    assert_eq!(
        l.executed, s.requests,
        "{label}: one permit per request the server saw"
    );
    assert!(l.limiter.granted - l.executed <= 1, "{label}: {l:?}");
    assert_eq!(
        p.attempts + p.warmup_requests + p.probes,
        l.limiter.requests,
        "{label}: every attempt, warm-up and probe asked the limiter"
    );
    assert!(l.limiter.cancelled <= 1, "{label}: {:?}", l.limiter);
    assert_eq!(l.limiter.rejected(), 0, "{label}");
    assert!(p.warmup_requests == 8 && p.probes >= 1, "{label}: {p:?}");

    // The faults really happened and the pool really dealt with them.
    assert!(s.faults_injected > n as u64 / 10, "{label}: {s:?}");
    assert!(p.retries > n as u64 / 10, "{label}: {p:?}");
    assert!(
        result.responses().any(|r| r
            .retry_info()
            .is_some_and(|i| i.backoff >= Duration::from_secs(1))),
        "{label}: some request waited out a Retry-After of 1 s"
    );
    assert!(
        result.succeeded > n * 9 / 10,
        "{label}: {} of {n} got a response",
        result.succeeded
    );
    assert!(
        l.limiter.throttled > 0,
        "{label}: the quota actually bound: {:?}",
        l.limiter
    );

    // The quota, at the driver and at the server, for every attempt.
    let pairs = match_arrivals(&releases, &arrivals);
    let lag = l.limiter.release_lag.max;
    let spread = transit_spread(&pairs);
    let release_times: Vec<Instant> = pairs.iter().map(|p| p.0.at).collect();
    let arrival_times: Vec<Instant> = pairs.iter().map(|p| p.1).collect();
    let q = quota();
    eprintln!(
        "{label}: {n} requests, {} attempts ({} retries), {} warm-up, {} probes in {took:?}; \
         release lag max {lag:?} p99 {:?}; transit spread {spread:?}; throttled {}",
        p.attempts,
        p.retries,
        p.warmup_requests,
        p.probes,
        l.limiter.release_lag.p99,
        l.limiter.throttled
    );
    for w in WINDOWS_MS.map(Duration::from_millis) {
        let at_driver = max_in_window(&release_times, w) as u64;
        let driver_bound = q.max_in_window(w + lag) + 1;
        let at_server = max_in_window(&arrival_times, w) as u64;
        let server_bound = q.max_in_window(w + lag + spread) + 1;
        eprintln!(
            "{label}: window {w:?}: at most {at_driver} released (bound {driver_bound}), \
             {at_server} arrived (bound {server_bound}); quota alone allows {}",
            q.max_in_window(w)
        );
        assert!(
            at_driver <= driver_bound,
            "{label}: {at_driver} released in {w:?}"
        );
        assert!(
            at_server <= server_bound,
            "{label}: {at_server} arrived in {w:?}"
        );
    }
    drop(exec);
    server.shutdown().await;
}

/// The Go example's order, `BatchExecutor<RateLimitedExecutor<ConnectionPool<driver>>>`:
/// one permit per *request*; its retries spend none. The requests keep to
/// the quota, the attempts the server sees exceed the permits.
async fn go_order(kind: Kind, n: usize) {
    let label = format!("go-order/{kind:?}/{n}");
    let server = start_server().await;
    let pool = ConnectionPool::builder(Probe::new(driver(kind)))
        .retry_policy(policy())
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let exec = BatchExecutor::new(RateLimitedExecutor::new(pool, quota()), WORKERS).unwrap();
    let limited = exec.driver();
    let pool = limited.inner();
    let probe = pool.inner();

    let result = tokio::time::timeout(
        RUN_BOUND,
        exec.execute_batch((0..n).map(|i| Request::get(faulty_url(&server, i)))),
    )
    .await
    .unwrap_or_else(|_| panic!("{label}: the batch finishes within {RUN_BOUND:?}"));
    assert!(
        eventually(Duration::from_secs(5), || server.stats().requests
            == probe.releases().len() as u64)
        .await,
        "{label}: the server counts every attempt"
    );

    assert_one_outcome_each(&label, &result, n, &server);
    let p = pool.stats();
    let l = limited.stats();
    let s = server.stats();
    // One permit per request...
    assert_eq!(
        l.limiter.granted, n as u64,
        "{label}: one permit per request"
    );
    assert_eq!(p.requests, n as u64, "{label}");
    // ...but the server saw every attempt, retries included: more than the
    // limiter ever granted. This is what the Go order cannot promise.
    assert_eq!(
        s.requests, p.attempts,
        "{label}: server request count == pool attempts"
    );
    assert!(
        s.requests > l.limiter.granted,
        "{label}: attempts ({}) exceed permits ({})",
        s.requests,
        l.limiter.granted
    );

    // What it does promise: each request's first attempt follows its
    // permit at once, so first attempts keep to the quota.
    let releases = probe.releases();
    let pairs = match_arrivals(&releases, &server.arrivals());
    let mut first: HashMap<String, (common::Release, Instant)> = HashMap::new();
    for pair in &pairs {
        first
            .entry(pair.0.path.clone())
            .or_insert_with(|| pair.clone());
    }
    assert_eq!(first.len(), n, "{label}");
    let firsts: Vec<(common::Release, Instant)> = first.into_values().collect();
    let lag = l.limiter.release_lag.max;
    let spread = transit_spread(&firsts);
    let q = quota();
    let all: Vec<Instant> = pairs.iter().map(|p| p.1).collect();
    for w in WINDOWS_MS.map(Duration::from_millis) {
        let requests = max_in_window(&firsts.iter().map(|p| p.1).collect::<Vec<_>>(), w) as u64;
        let bound = q.max_in_window(w + lag + spread) + 1;
        eprintln!(
            "{label}: window {w:?}: {requests} first attempts (bound {bound}), {} attempts in all",
            max_in_window(&all, w)
        );
        assert!(requests <= bound, "{label}: {requests} requests in {w:?}");
    }
    drop(exec);
    server.shutdown().await;
}

#[test]
fn recommended_order_reqwest_10k() {
    let _serial = serial();
    runtime().block_on(recommended_order(Kind::Reqwest, 10_000));
}

#[test]
fn recommended_order_isahc() {
    let _serial = serial();
    runtime().block_on(recommended_order(Kind::Isahc, 2_000));
}

#[test]
fn go_order_reqwest() {
    let _serial = serial();
    runtime().block_on(go_order(Kind::Reqwest, 2_000));
}

#[test]
fn go_order_isahc() {
    let _serial = serial();
    runtime().block_on(go_order(Kind::Isahc, 2_000));
}

/// The chain is a `Driver` all the way up: the same executor also serves
/// single calls, through every layer.
#[test]
fn single_calls_go_through_every_layer() {
    let _serial = serial();
    runtime().block_on(async {
        let server = start_server().await;
        let limited = RateLimitedExecutor::new(Probe::new(driver(Kind::Reqwest)), quota());
        let pool = ConnectionPool::builder(limited)
            .retry_policy(policy())
            .build()
            .unwrap();
        let exec = Arc::new(BatchExecutor::new(pool, 4).unwrap());
        let resp = exec
            .execute(Request::get(server.url("/one?status=201")).build().unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(resp.retry_info().unwrap().attempts, 1);
        assert_eq!(exec.stats().requests, 1);
        assert_eq!(exec.driver().stats().attempts, 1);
        assert_eq!(exec.driver().inner().stats().limiter.granted, 1);
        assert_eq!(server.stats().requests, 1);
        server.shutdown().await;
    });
}

/// What each layer records when a limiter sits inside the retrying pool:
/// the limiter stamps every attempt's own response, so the response that
/// comes back carries the permit wait of the attempt that produced it —
/// not a sum over attempts — next to the pool's `RetryInfo`. With the
/// limiter outside, it stamps the pool's final response once.
#[tokio::test(start_paused = true)]
async fn permit_wait_and_retry_info_through_the_chain() {
    use httpclient_core::DriverExt;
    use httpclient_core::ext::{PermitWait, RetryInfo};
    use httpclient_core::testkit::{Behavior, MockDriver};
    use httpclient_pool::Jitter;

    let ms = Duration::from_millis;
    // A 200 that took `attempts` with `backoff` between them, and whose
    // (last) permit waited `wait` — one permit, so the total is the same.
    let assert_records = |resp: &httpclient_core::Response, attempts, backoff, wait| {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.retry_info(), Some(&RetryInfo { attempts, backoff }));
        assert_eq!(resp.permit_wait(), Some(&PermitWait { wait, total: wait }));
    };
    let quota = || Quota::per_second(4).unwrap().burst(1).unwrap(); // 250 ms apart
    let policy = || {
        RetryPolicy::builder()
            .base_delay(ms(100))
            .jitter(Jitter::Off)
            .build()
            .unwrap()
    };

    // Limiter inside the pool.
    let mock = MockDriver::new();
    let limited = Arc::new(RateLimitedExecutor::new(mock.clone(), quota()));
    let pool = ConnectionPool::builder(Arc::clone(&limited))
        .retry_policy(policy())
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    // Take the free permit so the first attempt waits too.
    limited.send("http://api.test/warm").await.unwrap();
    mock.push(Behavior::status(503));
    let resp = pool.send("http://api.test/x").await.unwrap();
    // Attempt 1 waited 250 ms, got a 503; 100 ms backoff; attempt 2 waited
    // the 150 ms left until its permit.
    assert_records(&resp, 2, ms(100), ms(150));
    assert!(resp.extensions().is_empty(), "records are fields now");

    // Limiter outside the pool.
    let mock = MockDriver::new();
    let pool = ConnectionPool::builder(mock.clone())
        .retry_policy(policy())
        .retry_budget(RetryBudget::unlimited())
        .build()
        .unwrap();
    let limited = RateLimitedExecutor::new(pool, quota());
    limited.send("http://api.test/warm").await.unwrap();
    mock.push(Behavior::status(503));
    let resp = limited.send("http://api.test/x").await.unwrap();
    assert_records(&resp, 2, ms(100), ms(250));
}
