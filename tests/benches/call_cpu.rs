//! What a daemon costs in a call, per sound stack: a real relay and two `phoned`, each
//! with its own private PulseAudio or PipeWire (the devices of `tests/src/pulse.rs`: a
//! sine as the microphone, a null sink as the speaker), or its own JACK `dummy` server as
//! a paced stand-in for a plain ALSA card (`tests/src/jack.rs`, the `cpal` backend), or
//! with the `file` backend for the floor every backend shares (Opus, the jitter buffer,
//! the network). A calls B; each
//! daemon's CPU is read over two windows: the call's first seconds (the start's redundant
//! copies are encoded then) and a longer steady stretch after them, with each thread's
//! share. CPU is each thread's time on a CPU from `/proc/PID/task/TID/schedstat`
//! (nanoseconds, not the 10 ms ticks of `stat`), so a 20 s window resolves 0.01 points.
//!
//! Run (the packaged build, as `docs/benchmarks.md` reports it):
//! `cargo build --profile dist --workspace --bins &&
//!  PHONED_BIN_DIR=$PWD/target/dist cargo bench -p phoned-tests --bench call_cpu --
//!  [--rounds 3] [--start 5] [--window 20] [--only pulseaudio|pipewire|alsa|file]...`
//! (`--only` again for more than one stack).

// The end-to-end tests' setup: the call, the tone WAV, what a speaker heard.
#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::heard::Heard;
use phoned_tests::jack::{self, JackRecording, JackServer};
use phoned_tests::process::{PhonedProcess, RelayProcess, bin};
use phoned_tests::pulse::{self, PulseServer, rss_kib, status_kib};
use phoned_tests::threads::{shares, thread_times};

/// The stacks measured, in the order they run each round. `alsa` is the `cpal` backend
/// on ALSA's `default` device, a JACK `dummy` server through ALSA's `jack` plugin: the
/// paced stand-in for a sound card of `tests/src/jack.rs` (this VM has no ALSA kernel).
const STACKS: [&str; 4] = ["pulseaudio", "pipewire", "alsa", "file"];
/// Each side's microphone tone.
const TONES: [u32; 2] = [440, 1000];

struct Args {
    rounds: usize,
    start: Duration,
    window: Duration,
    /// The stacks `--only` names; all when none.
    only: Vec<String>,
}

fn args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: u64| {
        value(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} wants a whole number, not {v:?}"))
        })
    };
    let only: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].clone())
        .collect();
    for o in &only {
        assert!(
            STACKS.contains(&o.as_str()),
            "--only takes one of {STACKS:?}, not {o:?}"
        );
    }
    Args {
        rounds: number("--rounds", 3) as usize,
        start: Duration::from_secs(number("--start", 5)),
        window: Duration::from_secs(number("--window", 20)),
        only,
    }
}

struct Phone {
    process: PhonedProcess,
    sound: Sound,
}

/// A phone's sound stack, if it has one (not the `file` backend).
enum Sound {
    Pulse(PulseServer),
    Jack(JackServer),
    None,
}

/// A speaker being recorded.
enum Recording {
    Pulse(pulse::Recording),
    Jack(JackRecording),
}

impl Sound {
    fn record_speaker(&self, seconds: u32) -> Option<Recording> {
        match self {
            Sound::Pulse(s) => Some(Recording::Pulse(
                s.record_speaker(&s.dir.join("speaker.raw")),
            )),
            Sound::Jack(s) => Some(Recording::Jack(s.record_speaker(seconds))),
            Sound::None => None,
        }
    }
}

impl Recording {
    fn finish(self) -> Vec<f32> {
        match self {
            Recording::Pulse(r) => r.finish(),
            Recording::Jack(r) => r.finish(),
        }
    }
}

fn phone(dir: &Path, relay: &RelayProcess, name: &str, tone: u32, stack: &str) -> Phone {
    let sound = dir.join(format!("{name}-sound"));
    let (sound, audio, env) = match stack {
        "pulseaudio" | "pipewire" => {
            let server = if stack == "pipewire" {
                PulseServer::start_pipewire(&sound, tone)
            } else {
                PulseServer::start(&sound, tone)
            };
            let env = server.client_env();
            (Sound::Pulse(server), String::new(), env)
        }
        "alsa" => {
            let server = JackServer::start(&sound, tone, 480);
            let env = server.client_env();
            let audio = "[audio]\nbackend = \"cpal\"\ninput = \"default\"\noutput = \"default\"";
            (Sound::Jack(server), audio.to_owned(), env)
        }
        _ => {
            let input = dir.join(format!("{name}-in.wav"));
            common::write_tone(&input, tone as f32, 120);
            let audio = format!(
                "[audio]\nbackend = \"file\"\ninput_wav = \"{}\"\noutput_wav = \"{}\"",
                input.display(),
                dir.join(format!("{name}-out.wav")).display()
            );
            (Sound::None, audio, Vec::new())
        }
    };
    let process = PhonedProcess::start_with_env(
        &dir.join(name),
        relay.addr,
        &format!(
            "display_name = \"{name}\"\nrelay_fingerprint = \"{}\"\n{audio}",
            relay.fingerprint
        ),
        &env,
    );
    Phone { process, sound }
}

/// One daemon's figures in one call.
struct Measured {
    start: f64,
    steady: f64,
    threads: BTreeMap<String, f64>,
    rss_mib: f64,
    /// Of it, shared memory it mapped (libjack maps the JACK server's ~100 MiB).
    shmem_mib: f64,
    /// What its speaker played in the steady window; `None` for the file backend.
    heard: Option<Heard>,
}

fn call(stack: &str, a: &Args) -> Vec<Measured> {
    let holder = tempfile::tempdir().expect("temp dir");
    let dir = holder.path();
    let relay = RelayProcess::start(&bin("phone-relay"), &dir.join("relay"), "127.0.0.1:0", "");
    let phones: Vec<Phone> = ["A", "B"]
        .iter()
        .zip(TONES)
        .map(|(name, tone)| phone(dir, &relay, name, tone, stack))
        .collect();
    phones[0].process.wait_online(common::ONLINE);
    common::call_answered(&phones[0].process, &phones[1].process);

    let pids: Vec<u32> = phones.iter().map(|p| p.process.child.id()).collect();
    let snapshot = || pids.iter().map(|&p| thread_times(p)).collect::<Vec<_>>();
    let answered = (Instant::now(), snapshot());
    std::thread::sleep(a.start);
    let steady = (Instant::now(), snapshot());
    let recordings: Vec<_> = phones
        .iter()
        .filter_map(|p| p.sound.record_speaker(a.window.as_secs() as u32))
        .collect();
    std::thread::sleep(a.window / 2);
    let rss: Vec<(u64, u64)> = pids
        .iter()
        .map(|&p| (rss_kib(p), status_kib(p, "RssShmem:")))
        .collect();
    std::thread::sleep(a.window / 2);
    let end = (Instant::now(), snapshot());
    let heard: Vec<Vec<f32>> = recordings.into_iter().map(Recording::finish).collect();
    assert_eq!(phones[0].process.ctl(&["hangup"]).code, 0);
    for (side, p) in ["A", "B"].iter().zip(&phones) {
        let problems = p.process.log().matches("audio problem").count();
        if problems > 0 {
            eprintln!(
                "{stack} {side}: {problems} audio problem line(s): a device refused and retried"
            );
        }
    }

    (0..2)
        .map(|i| {
            let threads: BTreeMap<String, f64> = shares(&steady.1[i], &end.1[i], end.0 - steady.0)
                .into_iter()
                .collect();
            let start: f64 = shares(&answered.1[i], &steady.1[i], steady.0 - answered.0)
                .iter()
                .map(|(_, s)| s)
                .sum();
            Measured {
                start,
                steady: threads.values().sum(),
                threads,
                rss_mib: rss[i].0 as f64 / 1024.0,
                shmem_mib: rss[i].1 as f64 / 1024.0,
                heard: heard.get(i).map(|s| Heard::of(s, TONES[1 - i], TONES[i])),
            }
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.2}–{hi:.2}")
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else of the harness's applies.
    let a = args();
    let stacks: Vec<&str> = STACKS
        .iter()
        .copied()
        .filter(|s| a.only.is_empty() || a.only.iter().any(|o| o == s))
        .filter(|s| match *s {
            "pipewire" => pulse::pipewire_available(),
            "alsa" => jack::available(),
            "file" => true,
            _ => pulse::available(),
        })
        .collect();
    eprintln!(
        "phoned: {}; {} round(s); start window {:?}, steady window {:?}",
        bin("phoned").display(),
        a.rounds,
        a.start,
        a.window
    );
    let mut all: BTreeMap<&str, Vec<Measured>> = BTreeMap::new();
    for round in 1..=a.rounds {
        for &stack in &stacks {
            let load_before = load();
            let m = call(stack, &a);
            for (side, d) in ["A", "B"].iter().zip(&m) {
                let threads: Vec<String> = d
                    .threads
                    .iter()
                    .filter(|(_, s)| **s >= 0.01)
                    .map(|(n, s)| format!("{n} {s:.2}"))
                    .collect();
                let heard = d
                    .heard
                    .as_ref()
                    .map_or(String::new(), |h| format!("; {}", h.describe()));
                eprintln!(
                    "round {round} {stack:10} {side}: start {:.2} %, steady {:.2} % (load {load_before}), RSS {:.1} MiB ({:.1} of it shared memory){heard}\n    {}",
                    d.start,
                    d.steady,
                    d.rss_mib,
                    d.shmem_mib,
                    threads.join(", ")
                );
            }
            all.entry(stack).or_default().extend(m);
        }
    }
    println!(
        "\n| stack | first {:?} of the call | steady {:?} window | median RSS (of it shared memory) |",
        a.start, a.window
    );
    println!("| --- | --- | --- | --- |");
    for (stack, m) in &all {
        let start: Vec<f64> = m.iter().map(|d| d.start).collect();
        let steady: Vec<f64> = m.iter().map(|d| d.steady).collect();
        let rss: Vec<f64> = m.iter().map(|d| d.rss_mib).collect();
        let shmem: Vec<f64> = m.iter().map(|d| d.shmem_mib).collect();
        println!(
            "| {stack} | {} %, median {:.2} % | {} %, median {:.2} % | {:.1} MiB ({:.1}) |",
            range(&start),
            median(start.clone()),
            range(&steady),
            median(steady.clone()),
            median(rss),
            median(shmem)
        );
    }
    println!("\nEach thread's share in the steady window, median over the daemons:");
    for (stack, m) in &all {
        let names: std::collections::BTreeSet<&String> =
            m.iter().flat_map(|d| d.threads.keys()).collect();
        let threads: Vec<String> = names
            .into_iter()
            .map(|n| {
                let v = m.iter().map(|d| d.threads.get(n).copied().unwrap_or(0.0));
                (n, median(v.collect()))
            })
            .filter(|(_, s)| *s >= 0.01)
            .map(|(n, s)| format!("{n} {s:.2}"))
            .collect();
        println!("- {stack}: {}", threads.join(", "));
    }
}
