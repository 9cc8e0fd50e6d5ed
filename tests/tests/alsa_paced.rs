//! The plain-ALSA (`cpal`) path in a call, on a real-time-paced stand-in for a sound card:
//! each daemon's ALSA `default` is a JACK client of its own `jackd -d dummy` (see
//! `phoned_tests::jack` for what that does and does not share with a `hw:` device). A
//! relay, two daemons, a call; each daemon's CPU over a steady window mid-call, per thread,
//! against the `file` backend measured the same way right after. Printed, not asserted
//! (`docs/benchmarks.md` has the figures).
//!
//! ```sh
//! cargo build --release --workspace --bins
//! PHONED_BIN_DIR=$PWD/target/release cargo test -p phoned-tests --test alsa_paced -- \
//!     --include-ignored --nocapture
//! ```
//!
//! `PHONED_JACK_PERIOD` (frames, default 480) sets the JACK cycle; `PHONED_MEASURE_SECS`
//! (default 20) the window.

mod common;

use std::time::{Duration, Instant};

use phoned::audio::analysis::{goertzel_power, rms};
use phoned_tests::jack::{self, JackServer};
use phoned_tests::process::PhonedProcess;
use phoned_tests::pulse::{RATE, rss_kib};
use phoned_tests::threads::{shares, thread_times};

/// How long the call runs before the window opens (jitter buffers settle).
const WARM_UP: Duration = Duration::from_secs(3);

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn skip_without_jack() -> bool {
    if jack::available() {
        return false;
    }
    eprintln!(
        "SKIPPED: no jackd/jack_rec or no ALSA jack plugin (apt-get install jackd2 libasound2-plugins)"
    );
    true
}

/// One phone of a measured call: its daemon, its tone, and where its speaker's audio is.
struct Phone {
    process: PhonedProcess,
    tone: u32,
    speaker: Speaker,
}

enum Speaker {
    /// A JACK server whose speaker port `jack_rec` records.
    Jack(JackServer),
    /// The `file` backend's output WAV.
    Wav(std::path::PathBuf),
}

fn start(w: &common::World, name: &str, tone: u32, backend: &str) -> Phone {
    let dir = w.dir.path().join(format!("{name}-{backend}-audio"));
    let (audio, env, speaker) = if backend == "cpal" {
        let server = JackServer::start(&dir, tone, env_u32("PHONED_JACK_PERIOD", 480));
        (
            "[audio]\nbackend = \"cpal\"\ninput = \"default\"\noutput = \"default\"".to_owned(),
            server.client_env(),
            Speaker::Jack(server),
        )
    } else {
        std::fs::create_dir_all(&dir).expect("audio dir");
        let input = dir.join("in.wav");
        common::write_tone(&input, tone as f32, 60);
        let output = dir.join("out.wav");
        (
            format!(
                "[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
                input.display(),
                output.display()
            ),
            Vec::new(),
            Speaker::Wav(output),
        )
    };
    let process = PhonedProcess::start_with_env(
        &w.dir.path().join(format!("{name}-{backend}")),
        w.relay.addr,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n{audio}",
            w.relay.fingerprint
        ),
        &env,
    );
    Phone {
        process,
        tone,
        speaker,
    }
}

/// A call between two phones on `backend` (`"cpal"` on JACK, or `"file"`): CPU per daemon
/// and per thread over the window, and what each speaker played, printed.
fn measure(backend: &str) {
    let w = common::world();
    let window = Duration::from_secs(u64::from(env_u32("PHONED_MEASURE_SECS", 20)));
    let a = start(&w, "A", 440, backend);
    let b = start(&w, "B", 1000, backend);
    a.process.wait_online(common::ONLINE);
    common::call_answered(&a.process, &b.process);
    std::thread::sleep(WARM_UP);

    let recordings: Vec<_> = [&a, &b]
        .iter()
        .map(|p| match &p.speaker {
            Speaker::Jack(server) => Some(server.record_speaker(window.as_secs() as u32)),
            Speaker::Wav(_) => None,
        })
        .collect();
    let pids = [a.process.child.id(), b.process.child.id()];
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let before: Vec<_> = pids.iter().map(|&p| thread_times(p)).collect();
    std::thread::sleep(window / 2);
    let rss: Vec<(u64, u64)> = pids.iter().map(|&p| (rss_kib(p), shmem_kib(p))).collect();
    std::thread::sleep(window / 2);
    let after: Vec<_> = pids.iter().map(|&p| thread_times(p)).collect();
    let wall = started.elapsed();
    let heard: Vec<Vec<f32>> = recordings
        .into_iter()
        .map(|r| r.map(|r| r.finish()).unwrap_or_default())
        .collect();
    assert_eq!(a.process.ctl(&["hangup"]).code, 0);
    assert!(common::no_calls(&a.process) && common::no_calls(&b.process));

    eprintln!(
        "{backend}: {:.1} s window; load average {}",
        wall.as_secs_f64(),
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (i, (name, me, other)) in [("A", &a, &b), ("B", &b, &a)].into_iter().enumerate() {
        let threads = shares(&before[i], &after[i], wall);
        let total: f64 = threads.iter().map(|(_, s)| s).sum();
        let samples = match &me.speaker {
            Speaker::Jack(_) => heard[i].clone(),
            Speaker::Wav(path) if path.exists() => phoned_tests::wav::read(path).0,
            Speaker::Wav(_) => Vec::new(),
        };
        let log = me.process.log();
        let stats = log
            .lines()
            .rev()
            .find(|l| l.contains("call media ended"))
            .unwrap_or("no media stats");
        let started_lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("audio capture started") || l.contains("audio playback started"))
            .collect();
        eprintln!(
            "{name}: CPU {total:.2} % of a core, RSS {:.1} MiB ({:.1} MiB of it shared memory); speaker {}",
            rss[i].0 as f64 / 1024.0,
            rss[i].1 as f64 / 1024.0,
            judge(&samples, other.tone, me.tone)
        );
        let top: Vec<String> = threads
            .iter()
            .filter(|(_, s)| *s >= 0.05)
            .map(|(n, s)| format!("{n} {s:.2}"))
            .collect();
        eprintln!("   threads (% of a core): {}", top.join(", "));
        for l in started_lines {
            eprintln!("   {l}");
        }
        eprintln!("   {stats}");
    }
}

/// `RssShmem` of `pid` in KiB: shared memory it has touched (libjack maps the JACK
/// server's port buffers), counted in `VmRSS` but not the daemon's own.
fn shmem_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssShmem:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What a speaker played: length, the quietest 20 ms window after the first 500 ms, and
/// the power at the other side's tone against its own.
fn judge(samples: &[f32], other_tone: u32, own_tone: u32) -> String {
    let skip = (RATE as usize / 2).min(samples.len());
    let talk = &samples[skip..];
    let (at, quietest) = talk
        .chunks_exact(RATE as usize / 50)
        .map(rms)
        .enumerate()
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or((0, 0.0));
    let other = goertzel_power(talk, RATE as f32, other_tone as f32);
    let own = goertzel_power(talk, RATE as f32, own_tone as f32);
    format!(
        "{:.2} s, quietest 20 ms window {:.1} dBFS at {} ms, {other_tone} Hz {other:.2e} vs own {own_tone} Hz {own:.2e}",
        samples.len() as f64 / f64::from(RATE),
        20.0 * quietest.max(1e-9).log10(),
        500 + at * 20
    )
}

/// cpal's ALSA host on the JACK stand-in, then the `file` backend, in the same minute.
#[test]
#[ignore = "a measurement, not a check"]
fn cpal_on_a_paced_alsa_device_against_the_file_backend() {
    if skip_without_jack() {
        return;
    }
    measure("cpal");
    measure("file");
}
