//! # httpclient-driver-isahc
//!
//! A batchclient [`Driver`](httpclient_core::Driver) over
//! [isahc](https://docs.rs/isahc), that is over libcurl. Use it when you want
//! curl's connection handling, or a driver that needs **no async runtime**:
//! isahc drives every transfer on its own agent thread, so `execute` works
//! under tokio, async-std, smol or a plain `block_on`.
//!
//! ```no_run
//! use httpclient_core::{Driver, Request};
//! use httpclient_driver_isahc::IsahcDriver;
//!
//! # async fn demo() -> Result<(), httpclient_core::Error> {
//! let driver = IsahcDriver::new()?;
//! let response = driver.execute(Request::get("http://127.0.0.1:8080/items").build()?).await?;
//! println!("{} {:?}", response.status(), response.text()?);
//! # Ok(()) }
//! ```
//!
//! ## What it guarantees
//!
//! * **One stack, built in.** isahc is used with `default-features = false`
//!   and `rustls-tls`: libcurl is compiled statically against rustls-ffi
//!   (rustls on aws-lc-rs, the provider reqwest's `rustls` feature uses), so
//!   neither OpenSSL nor a system libcurl is needed, and no second TLS stack
//!   is linked. HTTP/2 is opt-in through this crate's `http2` feature;
//!   without it the driver speaks HTTP/1.1 even if another crate turns on
//!   isahc's `http2`.
//! * **One attempt per `execute`.** isahc has no retry logic. libcurl,
//!   though, silently re-sends a request that went out on a *reused*
//!   keep-alive connection which then closed before a single response
//!   byte arrived (its defence against stale pooled connections; there is
//!   no option to turn it off). The driver makes that impossible for
//!   requests that are not safe to retry (a non-idempotent method not
//!   marked `retry_safe`, with a non-empty body): their body is handed to
//!   curl as non-rewindable, so curl fails with
//!   [`Error::ResetBeforeResponse`](httpclient_core::Error::ResetBeforeResponse)
//!   instead of sending it twice, and the pool layer decides. For
//!   idempotent or `retry_safe` requests, and for bodiless ones (curl needs
//!   no rewind for those), curl's re-send on a new connection remains, as
//!   in Go's `net/http`: in that one case the server counts two requests
//!   for one attempt.
//! * **Timeouts** follow core's precedence: the request's own timeout,
//!   else the driver's default (30 s), bounds the whole attempt, including
//!   every redirect hop and reading the body. A connect that runs out
//!   (`connect_timeout`, default 10 s) is [`Error::Timeout`](httpclient_core::Error::Timeout) with phase
//!   `Connect`.
//! * **Bodies** are read inside `execute` up to `max_body_bytes`
//!   (default 64 MiB; a `Content-Length` over it fails before reading), so
//!   the connection is back in curl's cache when `execute` returns. With
//!   `stream_response` the body comes back as a stream of chunks, which
//!   the caller bounds (the limit is for buffered bodies, as in every
//!   workspace driver).
//! * **Redirects**: up to 10 are followed (the default shared with the
//!   reqwest driver); 301/302/303 turn into a bodiless `GET` (`HEAD` stays
//!   `HEAD`), 307/308 keep method and body (a one-shot streaming body ends
//!   the chain and the 307/308 is returned); credentials and cookies are
//!   dropped when the origin changes; the 11th is an
//!   [`Error::Driver`](httpclient_core::Error::Driver) whose source is [`TooManyRedirects`] (the same kind
//!   the reqwest driver reports). The driver follows
//!   them itself rather than letting isahc do it, so the timeout spans the
//!   chain and redirect bodies are drained for connection reuse.
//!   [`Response::url`](httpclient_core::Response::url) is the final URL.
//! * **Errors** are classified from the libcurl result code found in the
//!   error's source chain (then `io::Error` kinds, then isahc's kind):
//!   connection refused → `Connect { Refused }` (curl reports refused and
//!   unreachable alike), DNS → `Connect { Dns }`, any TLS failure →
//!   `Connect { Tls }`, curl's timeout → `Timeout` (phase `Connect` while
//!   connecting), "empty reply" or a reset before the head →
//!   `ResetBeforeResponse`, a reset or short body after it → `ResetMidBody`,
//!   a reply that is not HTTP → `InvalidResponse`; anything else is
//!   `Driver` with the isahc error as its source. A failing streaming
//!   request body is `Driver` with your stream's error in the chain.
//! * **Connection counting**: [`connections_opened`](httpclient_core::Driver::connections_opened)
//!   is always `None`. isahc exposes no connector, socket callback or
//!   `CURLINFO_NUM_CONNECTS`, and a count derived from local ports would be
//!   a guess.
//! * **No thread left behind.** The agent thread belongs to the
//!   `HttpClient`; dropping the driver stops and joins it (a streamed
//!   response body keeps the client alive until the body is dropped).
//!
//! ## Cancellation
//!
//! Dropping an `execute` future abandons the request. isahc notices on
//! curl's next callback for that transfer — as soon as any byte of the
//! response arrives, or while a request body is being sent — and curl then
//! closes the connection. A server that sends nothing at all keeps the
//! connection until the attempt's timeout, which this driver always sets:
//! isahc 2.0 checks for cancellation in no callback that curl calls while
//! a transfer is idle.
//!
//! ## Building
//!
//! The first build compiles libcurl, rustls-ffi and aws-lc from source (and
//! zlib, unless `pkg-config` finds the system's): it needs a C compiler
//! (`cc`, e.g. Debian's `gcc` with `libc6-dev`) and nothing else — no
//! OpenSSL, no cmake, no system libcurl. HTTP/2 adds nghttp2, also built
//! from source.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod builder;
mod classify;
mod driver;

pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT, IsahcDriverBuilder, RedirectPolicy,
};
pub use driver::{IsahcDriver, TooManyRedirects};
/// The isahc crate this driver is built on, for
/// [`IsahcDriver::from_client`].
pub use isahc;
