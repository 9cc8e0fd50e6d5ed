//! Daemons on the `file` audio backend, lined up in time: each paced stream logs when it
//! started on the machine's monotonic clock (at debug level), so a bench can put one
//! daemon's microphone WAV and another's recorded speaker on one time axis.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::process::{PhonedProcess, RelayProcess};

/// The log filter that keeps the paced streams' start lines and little else.
/// The onset trace (`phoned::media::onset`: when a talkspurt's first loud frame was sent,
/// received and played) comes with them.
pub const LOG_FILTER: &str =
    "warn,phoned=info,phoned::audio::backend::paced=debug,phoned::media::onset=debug";

/// A daemon named `name` in `dir`, reaching `relay` at `via` (the relay itself or a proxy
/// in front of it), on the file backend with the `[audio]` lines `audio`.
pub fn file_phone(
    dir: &Path,
    relay: &RelayProcess,
    via: SocketAddr,
    name: &str,
    audio: &str,
) -> PhonedProcess {
    file_phone_with(dir, relay, via, name, "", audio)
}

/// [`file_phone`] with more top-level config lines (`relay_media_port = …`).
pub fn file_phone_with(
    dir: &Path,
    relay: &RelayProcess,
    via: SocketAddr,
    name: &str,
    top: &str,
    audio: &str,
) -> PhonedProcess {
    PhonedProcess::start_with_env(
        &dir.join(name),
        via,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n{top}\n[audio]\nbackend = \"file\"\n{audio}",
            relay.fingerprint
        ),
        &[("RUST_LOG".into(), LOG_FILTER.into())],
    )
}

/// A in a call with B, answered: A's microphone is the WAV `input`, B (reaching the relay
/// at `b_via`) records its speaker to `output`. Returns (A, B) once the call is active.
pub fn talking_pair(
    dir: &Path,
    relay: &RelayProcess,
    b_via: SocketAddr,
    input: &Path,
    output: &Path,
) -> (PhonedProcess, PhonedProcess) {
    talking_pair_with(dir, relay, b_via, input, output, "")
}

/// [`talking_pair`] with more `[audio]` lines for both daemons (`frame_ms = 10`).
pub fn talking_pair_with(
    dir: &Path,
    relay: &RelayProcess,
    b_via: SocketAddr,
    input: &Path,
    output: &Path,
    audio: &str,
) -> (PhonedProcess, PhonedProcess) {
    talking_pair_on(dir, relay, b_via, "", input, output, audio)
}

/// [`talking_pair_with`] with more top-level config lines for B (`relay_media_port = …`:
/// B's UDP media through a proxy of its own).
pub fn talking_pair_on(
    dir: &Path,
    relay: &RelayProcess,
    b_via: SocketAddr,
    b_top: &str,
    input: &Path,
    output: &Path,
    audio: &str,
) -> (PhonedProcess, PhonedProcess) {
    let a = file_phone(
        dir,
        relay,
        relay.addr,
        "A",
        &format!("input_wav = \"{}\"\n{audio}", input.display()),
    );
    let b = file_phone_with(
        dir,
        relay,
        b_via,
        "B",
        b_top,
        &format!("output_wav = \"{}\"\n{audio}", output.display()),
    );
    a.wait_online(Duration::from_secs(20));
    let nb = b.wait_online(Duration::from_secs(20))["number"]
        .as_str()
        .expect("B's number")
        .to_owned();
    // B answers whatever rings: auto-answer keeps the set-up out of the way.
    assert_eq!(b.ctl(&["autoanswer", "all"]).code, 0);
    let out = a.ctl(&["--json", "dial", &nb, "--wait"]);
    assert_eq!(out.json()["state"], "active", "{out:?}");
    (a, b)
}

/// When the stream thread `stream` (`audio-file-in`, `audio-file-out`) started, on the
/// monotonic clock in ns, and its period in µs, from a daemon's `log`.
pub fn stream_start(log: &str, stream: &str) -> (u64, u64) {
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    log.lines()
        .filter(|l| l.contains("paced audio stream started") && l.contains(stream))
        .find_map(|l| Some((field(l, "monotonic_ns=")?, field(l, "period_us=")?)))
        .unwrap_or_else(|| panic!("no start of {stream} in the log:\n{log}"))
}

/// A point of the onset trace: `(stage, timestamp, queued, monotonic_ns)` of every
/// `phoned::media::onset` line in a daemon's `log`, in order.
pub fn onsets(log: &str) -> Vec<(String, u32, u64, u64)> {
    let field = |line: &str, key: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
    };
    log.lines()
        .filter(|l| l.contains("phoned::media::onset"))
        .filter_map(|l| {
            Some((
                field(l, "stage=")?,
                field(l, "timestamp=")?.parse().ok()?,
                field(l, "queued=")?.parse().ok()?,
                field(l, "monotonic_ns=")?.parse().ok()?,
            ))
        })
        .collect()
}
