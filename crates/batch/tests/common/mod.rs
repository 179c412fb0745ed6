//! Shared helpers for the paused-clock tests.
#![allow(dead_code)]

use std::time::Duration;

use httpclient_core::Request;
use httpclient_core::testkit::{Behavior, MockDriver};

/// `http://h/{i}` for `i` in `0..n`.
pub fn urls(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("http://h/{i}")).collect()
}

/// The input index encoded in a mock request's path.
pub fn index_of(req: &Request) -> usize {
    req.uri()
        .path()
        .trim_start_matches('/')
        .parse()
        .unwrap_or(usize::MAX)
}

/// A mock where input `index` behaves as `special` and every other input
/// as `rest`.
pub fn input_differs(index: usize, special: Behavior, rest: Behavior) -> MockDriver {
    MockDriver::new().handler(move |req, _| {
        if index_of(req) == index {
            special.clone()
        } else {
            rest.clone()
        }
    })
}

/// A mock whose every call answers 200 after `latency`.
pub fn slow_mock(latency: Duration) -> MockDriver {
    MockDriver::new().default_behavior(Behavior::ok().after(latency))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
