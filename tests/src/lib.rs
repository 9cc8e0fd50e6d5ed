//! Support for end-to-end tests and benchmarks: the daemon's relay client, a UDP proxy that
//! can silently cut a path, a NAT-like forwarder that can change its source port, and helpers that run the real binaries. Nothing here stands in
//! for one of our components.

/// The daemon's own relay client (`phoned-client`), used as is. The library does not
/// depend on the daemon, so the relay's tests do not build it.
pub use phoned_client as client;
pub mod impair;
pub mod jack;
pub mod nat;
pub mod notifications;
pub mod ofono;
pub mod paced;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod pulse;
pub mod system_bus;
pub mod threads;
pub mod wav;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `program` is on the `PATH` (`command -v`): for tests that skip without it.
pub fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

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

/// Polls all futures concurrently on the current task and returns their outputs in
/// order (a small `join_all`, so tests need no extra crate).
pub async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut tasks: Vec<_> = futs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = (0..tasks.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in tasks.iter_mut().enumerate() {
            if let Some(t) = slot {
                match t.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}
