//! `cargo xtask`: the workspace's automation.
//!
//! * `cargo xtask ci` — format check, clippy (`-D warnings`), tests and docs
//!   (`RUSTDOCFLAGS=-D warnings`), stopping at the first failure.
//! * `cargo xtask bench [--quick] [--filter SUBSTR] [--pairs N]` — paired
//!   ABBA benchmarks against the loopback test server; see the `bench`
//!   module (feature `bench`) for the method and for how to add a scenario.
//!
//! Only the CLI, the CI runner and the pure statistics/report code are
//! compiled without the `bench` feature, so `cargo test --workspace` builds
//! next to nothing here while still testing the statistics.

pub mod charts;
pub mod ci;
pub mod cli;
pub mod report;
pub mod stats;

#[cfg(feature = "bench")]
pub mod bench;

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
