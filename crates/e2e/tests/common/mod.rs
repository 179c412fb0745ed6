//! Helpers shared by the end-to-end tests: the two real drivers, a probe
//! that tags and records every attempt reaching the driver, sliding-window
//! counting, descriptor and task counts, and a lock that keeps the heavy
//! scenarios of one test binary from running at the same time.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use httpclient_core::{Driver, Error, Request, RequestBody, Response, async_trait};
use httpclient_driver_isahc::IsahcDriver;
use httpclient_driver_reqwest::ReqwestDriver;
use httpclient_testserver::Arrival;

/// Which real driver a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reqwest,
    Isahc,
}

/// A boxed real driver, so one generic scenario runs on both.
pub fn driver(kind: Kind) -> Box<dyn Driver> {
    match kind {
        Kind::Reqwest => Box::new(
            ReqwestDriver::builder()
                .count_connections(true)
                .build()
                .expect("reqwest driver builds"),
        ),
        Kind::Isahc => Box::new(IsahcDriver::new().expect("isahc driver builds")),
    }
}

/// Serialises the scenarios of one test binary: they measure rates,
/// descriptors and tasks, which a concurrent scenario would disturb.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh two-worker runtime (the machine has two cores), owned by the
/// test so that its task count is the test's alone.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The query parameter the probe appends to every attempt.
pub const SEQ_PARAM: &str = "e2e_seq=";

/// One attempt as the probe saw it, just before the real driver.
#[derive(Debug, Clone)]
pub struct Release {
    /// Probe-wide sequence number, also sent to the server in the URL.
    pub seq: u64,
    /// The request's path (without the query).
    pub path: String,
    /// When the attempt was handed to the real driver.
    pub at: Instant,
}

/// Sits directly on top of a real driver: records the instant every attempt
/// is handed to it and tags the attempt's URL with a unique `e2e_seq`, so
/// each server-side arrival can be matched to exactly one attempt (and
/// duplicates or losses show).
pub struct Probe<D> {
    inner: D,
    next: AtomicU64,
    log: Mutex<Vec<Release>>,
}

impl<D> Probe<D> {
    pub fn new(inner: D) -> Self {
        Probe {
            inner,
            next: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every attempt so far, in the order they reached the driver.
    pub fn releases(&self) -> Vec<Release> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `request` with `e2e_seq=seq` appended to its query, everything else kept.
pub fn tag(request: Request, seq: u64) -> Result<Request, Error> {
    let uri = request.uri().to_string();
    let sep = if request.uri().query().is_some() {
        '&'
    } else {
        '?'
    };
    let mut tagged = Request::builder(
        request.method().clone(),
        format!("{uri}{sep}{SEQ_PARAM}{seq}"),
    )
    .build()?;
    *tagged.headers_mut() = request.headers().clone();
    *tagged.options_mut() = request.options().clone();
    *tagged.extensions_mut() = request.extensions().clone();
    let body = match request.body().as_bytes() {
        Some(b) => RequestBody::from(b.clone()),
        None => match request.body().take_stream() {
            Some(s) => RequestBody::from_stream(s),
            None => RequestBody::empty(),
        },
    };
    tagged.set_body(body);
    Ok(tagged)
}

#[async_trait]
impl<D: Driver> Driver for Probe<D> {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let path = request.uri().path().to_string();
        let tagged = tag(request, seq)?;
        let at = Instant::now();
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Release { seq, path, at });
        self.inner.execute(tagged).await
    }

    fn connections_opened(&self) -> Option<u64> {
        self.inner.connections_opened()
    }
}

/// The `e2e_seq` an arrival carries, if any.
pub fn seq_of(arrival: &Arrival) -> Option<u64> {
    let at = arrival.path_and_query.find(SEQ_PARAM)? + SEQ_PARAM.len();
    let rest = &arrival.path_and_query[at..];
    let end = rest.find('&').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The path of an arrival, without its query.
pub fn path_of(arrival: &Arrival) -> &str {
    arrival
        .path_and_query
        .split_once('?')
        .map_or(arrival.path_and_query.as_str(), |(p, _)| p)
}

/// The most instants that fall in any closed window `[t, t + w]`.
pub fn max_in_window(times: &[Instant], w: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] > w {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Matches every server arrival to the attempt that produced it: asserts
/// that each tagged arrival belongs to exactly one release and each release
/// arrived exactly once. Returns `(release, arrival instant)` in release
/// order.
pub fn match_arrivals(releases: &[Release], arrivals: &[Arrival]) -> Vec<(Release, Instant)> {
    let mut arrived: HashMap<u64, &Arrival> = HashMap::with_capacity(arrivals.len());
    for a in arrivals {
        let seq = seq_of(a).unwrap_or_else(|| panic!("untagged arrival {a:?}"));
        if let Some(earlier) = arrived.insert(seq, a) {
            panic!("attempt {seq} arrived twice: {earlier:?} and {a:?}");
        }
    }
    let mut pairs = Vec::with_capacity(releases.len());
    let mut lost = Vec::new();
    for r in releases {
        match arrived.remove(&r.seq) {
            Some(a) => {
                assert_eq!(path_of(a), r.path, "arrival and attempt agree on the path");
                pairs.push((r.clone(), a.at));
            }
            None => lost.push(r.clone()),
        }
    }
    assert!(
        lost.is_empty(),
        "{} attempts never reached the server: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        arrived.is_empty(),
        "{} arrivals match no attempt: {:?}",
        arrived.len(),
        arrived.values().take(5).collect::<Vec<_>>()
    );
    pairs.sort_by_key(|(r, _)| r.seq);
    pairs
}

/// Spread of the release→arrival transit times (max − min).
pub fn transit_spread(pairs: &[(Release, Instant)]) -> Duration {
    let transits: Vec<Duration> = pairs
        .iter()
        .map(|(r, a)| a.saturating_duration_since(r.at))
        .collect();
    let max = transits.iter().max().copied().unwrap_or_default();
    let min = transits.iter().min().copied().unwrap_or_default();
    max - min
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Poll `f` every 20 ms until it returns true or `within` passes; returns
/// its last answer.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return f();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
