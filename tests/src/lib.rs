//! Support for end-to-end tests and benchmarks: a small relay client built on
//! `phoned-proto`, a UDP proxy that can silently cut a path, and helpers that run the
//! real binaries. Nothing here stands in for one of our components.

pub mod client;
pub mod process;
pub mod proxy;

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or gives up at the deadline.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
