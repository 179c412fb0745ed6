//! # httpclient-e2e
//!
//! End-to-end tests of the whole batchclient chain; this library is empty on
//! purpose and the crate is never published. Everything lives in `tests/`:
//!
//! * `chain.rs` — `BatchExecutor<ConnectionPool<RateLimitedExecutor<driver>>>`
//!   (the recommended order) and the Go package's order
//!   `BatchExecutor<RateLimitedExecutor<ConnectionPool<driver>>>`, with the
//!   reqwest and isahc drivers, against the fault-injecting test server:
//!   every request ends with exactly one outcome, the server counts exactly
//!   the attempts the pool made, and the arrival times of every attempt
//!   respect the quota (recommended order) or only the requests do (Go
//!   order).
//! * `shutdown.rs` — cancelling mid-run and stopping every layer returns
//!   promptly with partial results, and afterwards every connection,
//!   descriptor and tokio task is gone.
//! * `panics.rs` — a driver that panics on 1 % of calls: contained, counted,
//!   and the executor keeps working.
//! * `go_defects.rs` — one regression test per defect listed in section d of
//!   the study of the Go package, named after it.
//!
//! ## Why the order of the layers matters
//!
//! The rate limiter promises "no more than the quota reaches the server"
//! only for what passes through it. Put *inside* the retry layer
//! (`Batch<Pool<RateLimited<driver>>>`), every attempt — retries, warm-up
//! requests and health probes included — spends a permit, so the server
//! never sees more than the quota. Put *outside* (the Go example's order),
//! one permit buys a request and all of its retries: the requests keep to
//! the quota, the attempts the server sees do not. Both are tested, each for
//! what it promises.
//!
//! ## Why real sockets here
//!
//! The layer crates prove their timing claims under tokio's paused clock
//! with a mock driver. What only a real run can show is how the layers
//! behave together over real connections: resets in the middle of a body,
//! `Retry-After`, per-attempt timeouts, connections closed on cancel. Those
//! tests use generous bounded polls, never tight wall-clock asserts.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
