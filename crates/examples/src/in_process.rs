//! `InProcessApi`: an in-memory stand-in for a server, for jobs too big to
//! aim at a real one while you try things out.
//!
//! A million requests over loopback sockets measure the kernel and the HTTP
//! stack; the `streaming` example wants to show something else — that the
//! batch layer runs a job of any length in bounded memory, with a live
//! progress line. This driver answers every request in the same process, at
//! once, with no I/O: `200` and a short body, or `503` for one request in a
//! thousand (chosen by the number at the end of the path, so a run is
//! repeatable), which gives the summary something to count.
//!
//! It is also a second example of a driver written against the core trait:
//! a test double that obeys the same contract as a real client (statuses
//! are responses, never errors; no retries; cancel-safe).

use std::sync::atomic::{AtomicU64, Ordering};

use httpclient_core::http::StatusCode;
use httpclient_core::{Bytes, Driver, Error, Request, Response, async_trait};

/// One request in this many gets a `503`.
pub const UNAVAILABLE_EVERY: u64 = 1_000;

/// Answers in-process: `200 ok`, or `503` for paths ending in a number
/// `n` with `n % 1000 == 999`.
///
/// ```
/// use batchclient_examples::in_process::InProcessApi;
/// use httpclient_core::DriverExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), httpclient_core::Error> {
/// let api = InProcessApi::default();
/// assert_eq!(api.send("http://in-process/items/1").await?.status(), 200);
/// assert_eq!(api.send("http://in-process/items/999").await?.status(), 503);
/// assert_eq!(api.served(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct InProcessApi {
    served: AtomicU64,
}

impl InProcessApi {
    /// Requests answered so far: the "server's" own count.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Driver for InProcessApi {
    async fn execute(&self, request: Request) -> Result<Response, Error> {
        self.served.fetch_add(1, Ordering::Relaxed);
        let n = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .and_then(|last| last.parse::<u64>().ok());
        if n.is_some_and(|n| n % UNAVAILABLE_EVERY == UNAVAILABLE_EVERY - 1) {
            return Ok(
                Response::new(StatusCode::SERVICE_UNAVAILABLE).with_header("retry-after", "1")
            );
        }
        Ok(Response::new(StatusCode::OK).with_body(Bytes::from_static(b"ok")))
    }
}
