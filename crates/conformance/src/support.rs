//! Small helpers the checks share: building drivers and servers, describing
//! outcomes in failure messages, bounded polling, test bodies.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use httpclient_core::{Driver, Error, Response};
use httpclient_testserver::TestServer;

use crate::{ConformanceConfig, Failure};

/// `return Err(Failure)` with a formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::Failure::new(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

/// Calls the factory, turning its error into a failure.
pub(crate) fn driver<F, D>(make: &F, cfg: ConformanceConfig) -> Result<D, Failure>
where
    F: Fn(ConformanceConfig) -> Result<D, Error>,
    D: Driver + 'static,
{
    make(cfg.clone())
        .map_err(|e| Failure::new(format!("the driver factory failed for {cfg:?}: {e}")))
}

/// Starts an in-process test server.
pub(crate) async fn server() -> Result<TestServer, Failure> {
    TestServer::start()
        .await
        .map_err(|e| Failure::new(format!("cannot start the test server: {e}")))
}

/// `status 200, 12 bytes` or `error connect_refused: connection refused (…)`.
pub(crate) fn describe(result: &Result<Response, Error>) -> String {
    match result {
        Ok(r) => format!(
            "Ok(status {}, {} body bytes{})",
            r.status(),
            r.bytes().len(),
            if r.is_streaming() { ", streaming" } else { "" }
        ),
        Err(e) => describe_err(e),
    }
}

/// An error with its kind name and its whole source chain.
pub(crate) fn describe_err(e: &Error) -> String {
    let mut s = format!("Err({}: {e}", e.kind_name());
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let _ = write!(s, " <- {inner}");
        src = inner.source();
    }
    s.push(')');
    s
}

/// The response, or a failure that says what came back instead.
pub(crate) fn expect_ok(result: Result<Response, Error>, what: &str) -> Result<Response, Failure> {
    match result {
        Ok(r) => Ok(r),
        Err(e) => Err(Failure::new(format!(
            "{what}: expected a response, got {}",
            describe_err(&e)
        ))),
    }
}

/// The error, if it satisfies `pred`; otherwise a failure naming `expected`.
pub(crate) fn expect_err(
    result: Result<Response, Error>,
    expected: &str,
    pred: impl Fn(&Error) -> bool,
) -> Result<Error, Failure> {
    match result {
        Err(e) if pred(&e) => Ok(e),
        other => Err(Failure::new(format!(
            "expected {expected}, got {}",
            describe(&other)
        ))),
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
pub(crate) async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `/redirect?to=…` nested `hops` times around `target`; following it takes
/// exactly `hops` redirects and `hops + 1` requests.
pub(crate) fn redirect_chain(hops: usize, target: &str) -> String {
    let mut url = target.to_string();
    for _ in 0..hops {
        url = format!("/redirect?to={}", encode_component(&url));
    }
    url
}

/// Percent-encodes the characters that would end or split a query value.
/// Only `%` is re-encoded at each nesting level, so a chain grows by two
/// bytes per escaped character per level, not exponentially.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '&' => out.push_str("%26"),
            '=' => out.push_str("%3D"),
            '#' => out.push_str("%23"),
            '+' => out.push_str("%2B"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

/// The test server's deterministic body: `abc…z` repeated, `len` bytes.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `len` pseudo-random bytes (xorshift64*), the same for the same seed.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compares two bodies and explains the first difference.
pub(crate) fn same_body(got: &[u8], want: &[u8], what: &str) -> Result<(), Failure> {
    if got == want {
        return Ok(());
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Err(Failure::new(format!(
        "{what}: body differs: got {} bytes, expected {}; first difference at byte {at}",
        got.len(),
        want.len()
    )))
}

/// A loopback port with nothing listening: bind one, then close it.
pub(crate) fn closed_port() -> Result<u16, Failure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Failure::new(format!("cannot bind a probe port: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot read the probe port: {e}")))?
        .port();
    drop(listener);
    Ok(port)
}

/// A header as text, or `""` when absent or not text.
pub(crate) fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_chains_nest_and_stay_small() {
        assert_eq!(redirect_chain(0, "/final"), "/final");
        assert_eq!(redirect_chain(1, "/f?a=1"), "/redirect?to=/f%3Fa%3D1");
        assert_eq!(redirect_chain(2, "/f"), "/redirect?to=/redirect%3Fto%3D/f");
        assert_eq!(
            redirect_chain(3, "/f"),
            "/redirect?to=/redirect%3Fto%3D/redirect%253Fto%253D/f"
        );
        assert!(redirect_chain(11, "/final?body_size=5").len() < 1024);
    }

    #[test]
    fn bodies_are_deterministic() {
        assert_eq!(&pattern(28), b"abcdefghijklmnopqrstuvwxyzab");
        assert_eq!(pseudo_random(100, 7), pseudo_random(100, 7));
        assert_ne!(pseudo_random(100, 7), pseudo_random(100, 8));
        assert_eq!(pseudo_random(13, 1).len(), 13);
        assert!(
            same_body(b"abc", b"abd", "x")
                .unwrap_err()
                .message
                .contains("byte 2")
        );
    }
}
