//! The signals the relay and the daemon obey: SIGTERM and SIGINT stop them, SIGHUP
//! re-reads the config between systemd's `RELOADING=1` and `READY=1`
//! (`Type=notify-reload`).

use std::io;

pub use async_signal::Signal;
use smol::stream::StreamExt;

use crate::systemd;

/// What ended [`Signals::until_stopped`]: SIGTERM or SIGINT, a failure reading signals,
/// or `None` if the signal stream ended.
pub type Stop = Option<io::Result<Signal>>;

/// SIGTERM, SIGINT and SIGHUP, caught.
pub struct Signals(async_signal::Signals);

impl Signals {
    /// Starts catching the signals. Do it before telling anyone the service is ready: the
    /// default action of an early SIGHUP would kill it.
    pub fn new() -> io::Result<Signals> {
        async_signal::Signals::new([Signal::Term, Signal::Int, Signal::Hup]).map(Signals)
    }

    /// Runs until SIGTERM or SIGINT and returns what stopped it. On each SIGHUP before
    /// that: `RELOADING=1`, then `reload`, then `READY=1` with the status it returns.
    pub async fn until_stopped(mut self, mut reload: impl AsyncFnMut() -> String) -> Stop {
        loop {
            match self.0.next().await {
                Some(Ok(Signal::Hup)) => {
                    systemd::reloading();
                    let status = reload().await;
                    systemd::ready(&status);
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangup_reloads_and_terminate_stops() {
        let signals = Signals::new().expect("catch signals");
        // SAFETY: raise only queues a signal for this process, which now catches both.
        unsafe {
            libc::raise(libc::SIGHUP);
            libc::raise(libc::SIGHUP);
            libc::raise(libc::SIGTERM);
        }
        let mut reloads = 0;
        let stop = smol::block_on(signals.until_stopped(async || {
            reloads += 1;
            format!("reloaded {reloads} times")
        }));
        assert!(matches!(stop, Some(Ok(Signal::Term))), "{stop:?}");
        assert!(reloads >= 1, "SIGHUP did not reload");
    }
}
