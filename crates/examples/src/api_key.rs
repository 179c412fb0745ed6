//! `ApiKeyDriver`: the driver a team writes once for the API it calls.
//!
//! Most "custom drivers" in the wild are not new HTTP stacks: they are the
//! client a team already trusts plus its house rules — credentials on every
//! call, a request id to find the call in the server's logs, a tally for a
//! dashboard. Written against [`Driver`], those rules compose with every
//! layer (batch, rate limit, pool) in any order, and the workspace's
//! conformance suite checks that they did not break the contract the layers
//! rely on (`crates/examples/tests/custom_driver_conformance.rs` runs it).
//!
//! What the contract asks of a driver, and how this one meets it:
//!
//! * **4xx/5xx are `Ok(Response)`** — it returns whatever the inner driver
//!   returned, and only *counts* statuses.
//! * **No retries of its own** — it calls the inner driver exactly once;
//!   retries belong to the pool, so the server's count equals attempts.
//! * **Per-request timeout, streaming, cancel-safety** — it passes the
//!   request through untouched apart from headers and adds no `await` of its
//!   own, so dropping its future drops the inner one (and its connection).
//! * **Forward the optional methods** — `connections_opened` is forwarded;
//!   a wrapper that forgets it makes the pool report `None`.
//!
//! The API key goes only to the hosts it is scoped to (never to a redirect
//! target or a third-party URL that happens to pass through), and is marked
//! *sensitive* so it is never printed in `Debug` output.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use httpclient_core::http::header::{HeaderName, HeaderValue};
use httpclient_core::{Driver, Error, Request, Response, async_trait};

/// The header that carries the key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// The header that carries the per-request id.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Adds `x-api-key` (for the hosts it is scoped to) and `x-request-id` (to
/// every request that has none) and tallies what comes back; everything else
/// is the inner driver's.
///
/// ```no_run
/// use batchclient_examples::api_key::ApiKeyDriver;
/// use httpclient_core::DriverExt;
/// use httpclient_driver_reqwest::ReqwestDriver;
///
/// # async fn demo() -> Result<(), httpclient_core::Error> {
/// let driver = ApiKeyDriver::new(ReqwestDriver::new()?, "s3cr3t", ["api.example.com"])?;
/// let resp = driver.send("https://api.example.com/v1/items").await?;
/// println!("{} — {:?}", resp.status(), driver.tally());
/// # Ok(()) }
/// ```
pub struct ApiKeyDriver<D> {
    inner: D,
    key: HeaderValue,
    hosts: Vec<String>,
    prefix: String,
    tally: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    keyed: AtomicU64,
    responses: Mutex<BTreeMap<u16, u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

/// What an [`ApiKeyDriver`] has seen (a snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests handed to the inner driver.
    pub requests: u64,
    /// Of those, how many carried the API key.
    pub keyed: u64,
    /// Responses by status.
    pub responses: BTreeMap<u16, u64>,
    /// Errors by [`Error::kind_name`].
    pub errors: BTreeMap<&'static str, u64>,
}

impl<D: Driver> ApiKeyDriver<D> {
    /// Wrap `inner`, sending `key` to the given hosts (exact host names,
    /// any port and scheme).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the key is not a valid header value,
    /// or no host is given (a key that goes nowhere is a mistake).
    pub fn new<I, S>(inner: D, key: &str, hosts: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut key = HeaderValue::from_str(key)
            .map_err(|_| Error::invalid_request("the API key is not a valid header value"))?;
        key.set_sensitive(true);
        let hosts: Vec<String> = hosts
            .into_iter()
            .map(|h| h.into().to_ascii_lowercase())
            .collect();
        if hosts.is_empty() {
            return Err(Error::invalid_request(
                "give at least one host the API key may be sent to",
            ));
        }
        Ok(ApiKeyDriver {
            inner,
            key,
            hosts,
            prefix: format!("{:08x}", run_id()),
            tally: Arc::default(),
        })
    }

    /// The driver it wraps.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// What it has seen so far.
    pub fn tally(&self) -> Tally {
        let t = &self.tally;
        Tally {
            requests: t.requests.load(Ordering::Relaxed),
            keyed: t.keyed.load(Ordering::Relaxed),
            responses: lock(&t.responses).clone(),
            errors: lock(&t.errors).clone(),
        }
    }

    fn decorate(&self, request: &mut Request) -> bool {
        let n = self.tally.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let for_us = self
            .hosts
            .iter()
            .any(|h| h.as_str() == request.origin().host());
        let headers = request.headers_mut();
        if !headers.contains_key(REQUEST_ID_HEADER) {
            // Always ASCII digits and hex: a valid header value.
            if let Ok(id) = HeaderValue::from_str(&format!("{}-{n}", self.prefix)) {
                headers.insert(REQUEST_ID_HEADER, id);
            }
        }
        if for_us && !headers.contains_key(API_KEY_HEADER) {
            headers.insert(API_KEY_HEADER, self.key.clone());
            self.tally.keyed.fetch_add(1, Ordering::Relaxed);
        }
        for_us
    }
}

#[async_trait]
impl<D: Driver> Driver for ApiKeyDriver<D> {
    async fn execute(&self, mut request: Request) -> Result<Response, Error> {
        self.decorate(&mut request);
        let result = self.inner.execute(request).await;
        match &result {
            Ok(resp) => {
                *lock(&self.tally.responses)
                    .entry(resp.status().as_u16())
                    .or_default() += 1
            }
            Err(err) => *lock(&self.tally.errors).entry(err.kind_name()).or_default() += 1,
        }
        result
    }

    fn connections_opened(&self) -> Option<u64> {
        self.inner.connections_opened()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A per-process id prefix without a dependency: the address of a stack
/// value mixed with the clock is unique enough to tell two runs apart in a
/// log.
fn run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use httpclient_core::DriverExt;
    use httpclient_core::http::StatusCode;

    struct Echo;

    #[async_trait]
    impl Driver for Echo {
        async fn execute(&self, request: Request) -> Result<Response, Error> {
            if request.uri().path() == "/fail" {
                return Err(Error::Cancelled);
            }
            Ok(Response::new(StatusCode::OK).with_headers(request.headers().clone()))
        }
    }

    #[tokio::test]
    async fn key_only_for_scoped_hosts_and_ids_everywhere() {
        let d = ApiKeyDriver::new(Echo, "k3y", ["API.example.com"]).unwrap();
        let ours = d.send("https://api.example.com/a").await.unwrap();
        assert_eq!(ours.headers()[API_KEY_HEADER], "k3y");
        assert!(ours.headers()[API_KEY_HEADER].is_sensitive());
        let theirs = d.send("https://cdn.example.net/a").await.unwrap();
        assert!(theirs.headers().get(API_KEY_HEADER).is_none());
        let id1 = ours.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_string();
        let id2 = theirs.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_string();
        assert_ne!(id1, id2);
        // A caller's own values win.
        let own = d
            .send(
                Request::get("https://api.example.com/b")
                    .header("x-request-id", "mine")
                    .header("x-api-key", "other"),
            )
            .await
            .unwrap();
        assert_eq!(own.headers()[REQUEST_ID_HEADER], "mine");
        assert_eq!(own.headers()[API_KEY_HEADER], "other");
        assert!(d.send("https://api.example.com/fail").await.is_err());
        let t = d.tally();
        assert_eq!((t.requests, t.keyed), (4, 2)); // `/a` and `/fail`; `/b` brought its own
        assert_eq!(t.responses.get(&200), Some(&3));
        assert_eq!(t.errors.get("cancelled"), Some(&1));
    }

    #[test]
    fn bad_configuration_is_an_error() {
        assert!(ApiKeyDriver::new(Echo, "bad\nkey", ["h"]).is_err());
        assert!(ApiKeyDriver::new(Echo, "k", Vec::<String>::new()).is_err());
    }
}
