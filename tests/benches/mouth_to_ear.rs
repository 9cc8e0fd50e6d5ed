//! Mouth-to-ear latency, WAV to WAV, through the whole system: a real relay and two real
//! `phoned` with the `file` audio backend on loopback. A's microphone is a WAV of 1 kHz
//! bursts; B records what it hears. Each paced audio stream logs when it started on the
//! machine's monotonic clock, so A's input and B's recording line up on one time axis:
//!
//! - a sample `i` of A's input is *spoken* at `capture start + i / rate − one period` (a
//!   paced source hands out a block at the start of its period; a microphone delivers it
//!   at the end, so the period is counted as the microphone's own buffering);
//! - a sample `j` of B's recording is *heard* at `playback start + j / 48 000`.
//!
//! The latency of a burst is from its first input sample to the first recorded sample at
//! −26 dBFS or louder (a tenth of the burst's amplitude). Everything between is in it: the
//! capture ring and the media thread's wake-up, framing, the Opus encoder's look-ahead,
//! QUIC, the relay, the jitter buffer, decoding and the playback queue.
//!
//! Where the delay goes comes from the daemons' onset trace (`phoned::media::onset`): A
//! logs when it sent each burst's first loud frame, B when that frame arrived and when it
//! was played (and what was queued at the speaker before it), all on the monotonic clock,
//! so each burst's latency is split into framing (the frame, whose last sample the capture
//! block delivers), A's wait before sending, the network (QUIC, the relay, B's wait before
//! taking the datagram), the jitter buffer, the playback queue and the rest (the codec's
//! look-ahead, the speaker's block phase, the onset's rise to the threshold).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p phoned-tests --bench mouth_to_ear`
//! (`-- --runs N`, default 3; each run is one call of about 14 s; `--audio 'frame_ms = 10'`
//! adds `[audio]` lines to both daemons' configs).

use std::path::Path;
use std::time::Duration;

use phoned_tests::paced::{onsets, stream_start, talking_pair_with};
use phoned_tests::process::{RelayProcess, bin};
use phoned_tests::pulse::status_kib;
use phoned_tests::{wait_for, wav};

const RATE: u32 = 48_000;
const AMPLITUDE: f32 = 0.5;
/// A burst every second after one second of silence, 200 ms long.
const BURSTS: usize = 10;
const BURST_MS: usize = 200;
const LEAD_MS: usize = 1_000;
const EVERY_MS: usize = 1_000;
/// Output level that counts as heard: −26 dBFS relative to full scale at 0.5 amplitude.
const THRESHOLD: f32 = AMPLITUDE / 10.0;

fn write_bursts(path: &Path) -> Vec<usize> {
    let ms = RATE as usize / 1000;
    let total = (LEAD_MS + BURSTS * EVERY_MS + 1_000) * ms;
    let onsets: Vec<usize> = (0..BURSTS).map(|k| (LEAD_MS + k * EVERY_MS) * ms).collect();
    let signal = (0..total).map(|i| {
        if onsets.iter().any(|&o| i >= o && i < o + BURST_MS * ms) {
            AMPLITUDE * (std::f32::consts::TAU * 1000.0 * (i as f32) / RATE as f32).sin()
        } else {
            0.0
        }
    });
    wav::write(path, RATE, 1, signal);
    onsets
}

fn read_wav(path: &Path) -> Vec<f32> {
    let (samples, rate) = wav::read(path);
    assert_eq!(rate, RATE);
    samples
}

/// The first sample at or above the threshold from each burst on, in order.
fn heard_onsets(samples: &[f32]) -> Vec<usize> {
    let mut onsets = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        if samples[i].abs() >= THRESHOLD {
            onsets.push(i);
            // Skip the rest of this burst (and its decay).
            i += (EVERY_MS / 2) * RATE as usize / 1000;
        } else {
            i += 1;
        }
    }
    onsets
}

/// `(monotonic_ns, period_us)` of the paced stream `stream` from a daemon's log.
#[derive(Clone, Copy, Default)]
struct Footprint {
    cpu_percent: f64,
    rss_kib: u64,
    anon_kib: u64,
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Where one burst's delay went, ms (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct Parts {
    framing: f64,
    a_wait: f64,
    network: f64,
    jitter_buffer: f64,
    queue: f64,
    rest: f64,
}

/// The parts' names, in [`Parts::values`] order.
const PARTS: [&str; 6] = [
    "framing (frame incl. capture block)",
    "A: frame complete → sent",
    "network: A sent → B took it (QUIC, relay, B's wait)",
    "jitter buffer: B took it → played",
    "playback queue before it",
    "rest: look-ahead, speaker block phase, rise",
];

impl Parts {
    fn values(&self) -> [f64; 6] {
        [
            self.framing,
            self.a_wait,
            self.network,
            self.jitter_buffer,
            self.queue,
            self.rest,
        ]
    }
}

/// One call; the latency of every burst, ms, where it went, and what each daemon cost
/// during the call.
fn run_once(audio: &str) -> (Vec<f64>, Vec<Parts>, [Footprint; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        &bin("phone-relay"),
        &dir.path().join("relay"),
        "127.0.0.1:0",
        "",
    );
    let input = dir.path().join("bursts.wav");
    let output = dir.path().join("heard.wav");
    let sent = write_bursts(&input);
    let (a, b) = talking_pair_with(dir.path(), &relay, relay.addr, &input, &output, audio);
    let pids = [a.child.id(), b.child.id()];
    let (t0, ticks0) = (std::time::Instant::now(), pids.map(cpu_ticks));
    let talk = Duration::from_millis((LEAD_MS + BURSTS * EVERY_MS + 500) as u64);
    std::thread::sleep(talk / 2);
    let rss = pids.map(|p| (status_kib(p, "VmRSS:"), status_kib(p, "RssAnon:")));
    std::thread::sleep(talk / 2);
    let (secs, ticks1) = (t0.elapsed().as_secs_f64(), pids.map(cpu_ticks));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let footprint = [0, 1].map(|i| Footprint {
        cpu_percent: (ticks1[i] - ticks0[i]) as f64 / hz / secs * 100.0,
        rss_kib: rss[i].0,
        anon_kib: rss[i].1,
    });
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    let ended = wait_for(Duration::from_secs(10), || {
        b.log().contains("call media ended").then_some(())
    });
    assert!(ended.is_some(), "{}", b.log());
    let (a_log, b_log) = (a.log(), b.log());
    let (capture_ns, period_us) = stream_start(&a_log, "audio-file-in");
    let (playback_ns, _) = stream_start(&b_log, "audio-file-out");
    let heard = heard_onsets(&read_wav(&output));
    let spoken_at =
        |i: usize| capture_ns as f64 + i as f64 * 1e9 / f64::from(RATE) - period_us as f64 * 1e3;
    let heard_at = |j: usize| playback_ns as f64 + j as f64 * 1e9 / f64::from(RATE);
    let frame_ms = audio
        .lines()
        .find_map(|l| l.trim().strip_prefix("frame_ms = "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(20.0);
    let (a_trace, b_trace) = (onsets(&a_log), onsets(&b_log));
    let at = |trace: &[(String, u32, u64, u64)], stage: &str, ts: u32| {
        trace
            .iter()
            .find(|(s, t, _, _)| s == stage && *t == ts)
            .map(|&(_, _, q, ns)| (q, ns as f64))
    };
    // Pair each burst with the first onset heard after it was spoken.
    let mut latencies = Vec::new();
    let mut parts = Vec::new();
    for &i in &sent {
        let t = spoken_at(i);
        if let Some(&j) = heard.iter().find(|&&j| heard_at(j) > t) {
            let ms = (heard_at(j) - t) / 1e6;
            if ms < f64::from(EVERY_MS as u32) / 2.0 {
                latencies.push(ms);
                // The burst's first loud frame as A sent it, and B's trace of it.
                let first_sent = a_trace
                    .iter()
                    .find(|(s, _, _, ns)| s == "Sent" && *ns as f64 > t);
                if let Some(&(_, ts, _, sent_ns)) = first_sent
                    && let (Some((_, got)), Some((queued, played))) =
                        (at(&b_trace, "Received", ts), at(&b_trace, "Played", ts))
                {
                    let sent_ns = sent_ns as f64;
                    let p = Parts {
                        framing: frame_ms,
                        a_wait: (sent_ns - t) / 1e6 - frame_ms,
                        network: (got - sent_ns) / 1e6,
                        jitter_buffer: (played - got) / 1e6,
                        queue: queued as f64 * 1e3 / f64::from(RATE),
                        rest: 0.0,
                    };
                    let rest = ms - p.values().iter().sum::<f64>();
                    parts.push(Parts { rest, ..p });
                }
            }
        }
    }
    let stats = b_log
        .lines()
        .rev()
        .find(|l| l.contains("call media ended"))
        .unwrap_or_default()
        .to_owned();
    // The media thread's end-of-call counters: underruns would mean the playback queue
    // is too short for this machine. `mouth_to_ear_ms` is B's own estimate over the call
    // (`Call.Quality`), to hold against what this bench measures.
    let fields: Vec<&str> = stats
        .split_whitespace()
        .filter(|w| {
            [
                "playback_underruns=",
                "concealed=",
                "stretched=",
                "expanded=",
                "jitter_ms=",
                "playback_queue_ms=",
                "max_delay_ms=",
                "lost=",
                "mouth_to_ear_ms=",
                "mos=",
            ]
            .iter()
            .any(|k| w.starts_with(k))
        })
        .collect();
    eprintln!("  B: {}", fields.join(" "));
    (latencies, parts, footprint)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3usize);
    let audio = args
        .iter()
        .position(|a| a == "--audio")
        .and_then(|i| args.get(i + 1))
        .map(|a| a.replace("; ", "\n"))
        .unwrap_or_default();
    println!("## Mouth-to-ear latency, WAV to WAV (file backend, relay on loopback)");
    if !audio.is_empty() {
        println!();
        println!("`[audio]` {audio:?}");
    }
    println!();
    println!("| run | bursts heard | median ms | min ms | max ms |");
    println!("| --- | --- | --- | --- | --- |");
    let mut medians = Vec::new();
    let mut footprints = Vec::new();
    let mut all_parts = Vec::new();
    for run in 1..=runs {
        let (mut l, parts, footprint) = run_once(&audio);
        footprints.push(footprint);
        all_parts.extend(parts);
        if l.is_empty() {
            println!("| {run} | 0 of {BURSTS} | | | |");
            continue;
        }
        let (min, max) = (
            l.iter().copied().fold(f64::INFINITY, f64::min),
            l.iter().copied().fold(0.0, f64::max),
        );
        let m = median(&mut l);
        medians.push(m);
        println!(
            "| {run} | {} of {BURSTS} | {m:.1} | {min:.1} | {max:.1} |",
            l.len()
        );
    }
    if !medians.is_empty() {
        let m = median(&mut medians);
        println!();
        println!("median of the runs' medians: **{m:.1} ms**");
    }
    if !all_parts.is_empty() {
        println!();
        println!(
            "## Where it went: median (min–max) over {} bursts of all runs, ms",
            all_parts.len()
        );
        println!();
        println!("| part | median | min | max |");
        println!("| --- | --- | --- | --- |");
        for (k, name) in PARTS.iter().enumerate() {
            let mut v: Vec<f64> = all_parts.iter().map(|p| p.values()[k]).collect();
            let (min, max) = (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            let m = median(&mut v);
            println!("| {name} | {m:.1} | {min:.1} | {max:.1} |");
        }
    }
    println!();
    println!("## Each daemon during the call (whole process: media, link, D-Bus)");
    println!();
    println!(
        "| run | A (sends the bursts): CPU, RSS (anonymous) | B (records): CPU, RSS (anonymous) |"
    );
    println!("| --- | --- | --- |");
    for (run, f) in footprints.iter().enumerate() {
        let cell = |f: &Footprint| {
            format!(
                "{:.2} % of a core, {:.1} MiB ({:.1})",
                f.cpu_percent,
                f.rss_kib as f64 / 1024.0,
                f.anon_kib as f64 / 1024.0
            )
        };
        println!("| {} | {} | {} |", run + 1, cell(&f[0]), cell(&f[1]));
    }
}
