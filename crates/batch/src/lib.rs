//! # httpclient-batch
//!
//! [`BatchExecutor`] runs many requests through any
//! [`httpclient_core::Driver`] — thousands to millions, to APIs you do not
//! own — with one worker limit, and accounts for every one of them.
//!
//! ```
//! use httpclient_batch::{BatchExecutor, BatchOptions, FailFast, Outcome};
//! use httpclient_core::{Request, testkit::MockDriver};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let exec = BatchExecutor::new(MockDriver::new(), 32)?;
//! let inputs = vec![
//!     Request::get("http://api.test/a"),
//!     Request::get("not a url"), // fails in its own slot; the rest run
//!     Request::post("http://api.test/b").body("x"),
//! ];
//! let options = BatchOptions::builder()
//!     .time_limit(Duration::from_secs(60))
//!     .request_timeout(Duration::from_secs(5))
//!     .build()?;
//! let result = exec.execute_batch_with(inputs, options).await;
//! assert_eq!((result.succeeded, result.failed, result.not_started), (2, 1, 0));
//! assert!(matches!(result.items[1].outcome, Outcome::Error(_)));
//! # Ok(()) }
//! ```
//!
//! ## What you get
//!
//! * **Every input accounted for.** [`BatchExecutor::execute_batch`]
//!   returns one [`BatchItem`] per input, in input order, holding exactly
//!   one [`Outcome`]: a response (any status), an error, or *not started*
//!   with a [`StopReason`] — never an empty slot.
//! * **One worker limit per executor**, shared by every concurrent batch,
//!   stream and single call (the Go package multiplied it per batch).
//! * **Stopping that returns promptly**: a cancellation token, a deadline,
//!   [`FailFast`], or [`BatchExecutor::shutdown`] — see [`BatchOptions`].
//!   Requests in flight when a batch is cancelled end with
//!   [`httpclient_core::Error::Cancelled`] /
//!   [`httpclient_core::Error::DeadlineExceeded`] and their futures (so their
//!   connections) are dropped.
//! * **Streaming in bounded memory**: [`BatchExecutor::execute_stream`]
//!   (unordered) and [`BatchExecutor::execute_stream_ordered`] (input order,
//!   bounded reorder window) pull inputs only as worker slots free.
//! * **Panics contained**: a driver call that panics becomes
//!   [`httpclient_core::Error::Panicked`] in its slot; the batch completes
//!   and the executor stays usable.
//! * **Stats that tell the truth** ([`BatchExecutor::stats`]): requests,
//!   completed, errors by kind, status classes, in flight, latency
//!   percentiles from a real histogram, throughput; defined exactly in
//!   [`stats`], including what a reset means while requests run.
//! * It is a [`httpclient_core::Driver`] itself, so it chains with the other
//!   layers.
//!
//! ## No task per request
//!
//! Requests run as futures inside the batch future (or the stream), never as
//! spawned tasks: an empty batch spawns nothing, nothing can outlive the
//! batch, and dropping it drops its requests. The flip side, as with
//! `futures`' `buffered`: requests only progress while the batch or stream is
//! polled, so keep per-item work in a stream consumer short.
//!
//! ## Timeouts
//!
//! A request's own timeout wins; otherwise the batch's
//! [`BatchOptionsBuilder::request_timeout`], then the executor's
//! [`BatchExecutorBuilder::request_timeout`], then the driver's default. A
//! batch deadline spans the whole batch (the workspace-wide precedence is in
//! the `httpclient-core` docs).
//!
//! ## Coming from the Go package
//!
//! `NewBatchExecutor(driver, n)` is [`BatchExecutor::new`] (but `0` is an
//! error, not 100); `ExecuteBatch(ctx, reqs)` is
//! [`BatchExecutor::execute_batch_with`] with a cancellation token;
//! `BatchResult.Requests` is [`BatchResult::items`]; `Stats()` /
//! `ResetStats()` are [`BatchExecutor::stats`] /
//! [`BatchExecutor::reset_stats`].
//!
//! ## Tracing
//!
//! A `batch` span (size, workers, ordered window) per batch or stream, a
//! `debug` event per failed request (index, method, origin, error kind), a
//! `warn` event per caught panic, all under the target `httpclient_batch`.
//! Without a subscriber they cost a relaxed load each.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod engine;
mod executor;
mod options;
mod result;
pub mod stats;

pub use engine::{BatchStream, IterInput};
pub use executor::{ABORT_SETTLE, BatchExecutor, BatchExecutorBuilder, ShutdownOutcome};
pub use options::{BatchOptions, BatchOptionsBuilder, FailFast};
pub use result::{BatchItem, BatchResult, Outcome, StopReason};
pub use stats::{BatchStats, LatencySummary, StatusClasses};
pub use tokio_util::sync::CancellationToken;
