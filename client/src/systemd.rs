//! The systemd notification protocol (`sd_notify`): readiness, status, stopping, and the
//! watchdog keep-alive. Without `$NOTIFY_SOCKET` (not run by systemd) all are no-ops.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        // Nothing to be done about it; the service manager will notice the missing ping.
        eprintln!("sd_notify: {e}");
    }
}

/// `READY=1` with a one-line status.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STATUS=`: a new one-line status for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` wants) and a status:
/// the service is re-reading its config. Follow with [`ready`] when done.
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading config"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// How often to send `WATCHDOG=1`: half the service's `WatchdogSec`, if it has one.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}

/// `WATCHDOG=1`.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Sends `WATCHDOG=1` every [`watchdog_interval`] for as long as the returned task lives;
/// `None` when the service has no watchdog. The pings come from the async executor, so a
/// wedged executor stops them and systemd restarts the service.
pub fn spawn_watchdog() -> Option<smol::Task<()>> {
    watchdog_interval().map(|every| {
        smol::spawn(async move {
            loop {
                watchdog();
                smol::Timer::after(every).await;
            }
        })
    })
}
