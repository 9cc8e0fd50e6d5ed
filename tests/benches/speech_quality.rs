//! Speech quality through the whole system, scored with wideband PESQ (ITU-T P.862.2):
//! a real relay and two real `phoned` with the `file` audio backend on loopback. A's
//! microphone is a WAV holding a speech clip twice (espeak-ng voices: English and French,
//! a male and a female voice, `scripts/speech/clips.py`); B is behind a seeded impairment
//! proxy (`phoned_tests::proxy`) that loses, delays and reorders what the relay sends it,
//! and records what it hears. Each copy of the clip in B's recording is found (the paced
//! streams' start times put A's input and B's recording on one clock), cut out and scored
//! by `scripts/speech/score.py`.
//!
//! Beside each call, the same clip goes through the codec alone, in process: the call's
//! Opus encoder settings, the same seeded loss pattern applied to the packets, and a
//! decoder that uses in-band FEC when the next packet came and conceals when it did not.
//! The difference between the two columns is what the pipeline itself costs (or wins).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p phoned-tests --bench speech_quality`
//! (`-- --quick`: two clips, clean and 10 % loss; `-- --only loss --only bursts`: the
//! conditions whose names hold one of the words; `-- --clip en-male`: that clip only (the
//! seeds stay each clip's own; `-- --seed 24301`: every clip with that loss pattern);
//! `-- --udp`: media on the relay's UDP media plane, the default path, B's through a
//! proxy of its own with the same impairment (else on QUIC datagrams only);
//! `-- --audio 'frame_ms = 10'`: `[audio]`
//! lines for both daemons, and the codec alone in that frame; `-- --plans`: only the codec
//! alone, under candidate encoder and redundancy plans, `speech_quality/plans.rs`; with
//! `--plan 'same talkspurt'`: only the plans whose names hold those words). The first run installs espeak-ng and a
//! Python environment with `pesq` (`scripts/speech-bench-deps.sh`).
//!
//! Beside the scores, what A sent: its media datagrams' bytes over the call, as kbit/s
//! (copies of earlier frames included, so the redundancy's cost shows against the clean
//! row), and what its adaptation last set (`redundancy=`, `bitrate_bps=`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use phoned::audio::codec::{
    EncoderConfig, FrameDuration, MAX_PACKET_BYTES, VoiceDecoder, VoiceEncoder,
};
use phoned::call::media::{CALL_BITRATE_BPS, ENCODER_COMPLEXITY};
use phoned_tests::impair::{Decider, GilbertElliott, Impairment};
use phoned_tests::paced::{stream_start, talking_pair_on};
use phoned_tests::process::{RelayProcess, bin};
use phoned_tests::proxy::UdpProxy;
use phoned_tests::{wait_for, wav};

#[path = "speech_quality/plans.rs"]
mod plans;

const RATE: u32 = 48_000;
/// Silence before the first copy of the clip, between the copies and after the last.
const LEAD_S: f64 = 1.0;
const GAP_S: f64 = 1.0;
const COPIES: usize = 2;
/// A cheaper encoder setting, scored codec-alone beside the call's, to show what it would
/// cost in quality (half the encoder's CPU: `docs/benchmarks.md`, media CPU).
const CHEAP_COMPLEXITY: u8 = 5;

struct Condition {
    name: &'static str,
    impairment: Impairment,
}

fn conditions(quick: bool, only: &[String]) -> Vec<Condition> {
    let loss = |p| Impairment {
        loss: p,
        ..Impairment::default()
    };
    let all = vec![
        Condition {
            name: "clean",
            impairment: Impairment::default(),
        },
        Condition {
            name: "5 % loss",
            impairment: loss(0.05),
        },
        Condition {
            name: "10 % loss",
            impairment: loss(0.10),
        },
        Condition {
            name: "20 % loss",
            impairment: loss(0.20),
        },
        Condition {
            name: "10 % bursts (GE, mean 3)",
            impairment: Impairment {
                bursts: Some(GilbertElliott::with_loss(0.10, 3.0)),
                ..Impairment::default()
            },
        },
        Condition {
            name: "jitter 0-60 ms",
            impairment: Impairment {
                jitter: Duration::from_millis(60),
                ..Impairment::default()
            },
        },
    ];
    if quick {
        all.into_iter()
            .filter(|c| c.name == "clean" || c.name == "10 % loss")
            .collect()
    } else if !only.is_empty() {
        all.into_iter()
            .filter(|c| only.iter().any(|o| c.name.contains(o.as_str())))
            .collect()
    } else {
        all
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's python, after making sure the bench's tools are there.
fn python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/speech-bench-deps.sh"))
        .output()
        .expect("run scripts/speech-bench-deps.sh");
    assert!(out.status.success(), "speech-bench-deps.sh failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn make_clips(python: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let out = Command::new(python)
        .arg(repo_root().join("scripts/speech/clips.py"))
        .arg(dir)
        .output()
        .expect("run clips.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| (name.to_owned(), dir.join(format!("{name}.wav"))))
        .collect()
}

fn read_wav(path: &Path) -> Vec<f32> {
    let (samples, rate) = wav::read(path);
    assert_eq!(rate, RATE, "{}", path.display());
    samples
}

/// Where each copy of the clip starts in the microphone's WAV, in samples.
fn copy_starts(clip_len: usize) -> Vec<usize> {
    let (lead, gap) = (secs(LEAD_S), secs(GAP_S));
    (0..COPIES).map(|k| lead + k * (clip_len + gap)).collect()
}

fn secs(s: f64) -> usize {
    (s * f64::from(RATE)) as usize
}

fn write_microphone(path: &Path, clip: &[f32]) -> Vec<usize> {
    let starts = copy_starts(clip.len());
    let total = starts[COPIES - 1] + clip.len() + secs(GAP_S);
    let mut input = vec![0.0f32; total];
    for &s in &starts {
        input[s..s + clip.len()].copy_from_slice(clip);
    }
    wav::write(path, RATE, 1, input);
    starts
}

struct Score {
    pesq: Vec<Option<f64>>,
    delay_ms: Vec<Option<f64>>,
}

fn score(python: &Path, clip: &Path, recording: &Path, at: &[i64]) -> Score {
    let at: Vec<String> = at.iter().map(i64::to_string).collect();
    let out = Command::new(python)
        .arg(repo_root().join("scripts/speech/score.py"))
        .args([clip, recording])
        .args(["--at", &at.join(",")])
        .output()
        .expect("run score.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("score.py's JSON");
    let list = |key: &str| -> Vec<Option<f64>> {
        v[key]
            .as_array()
            .map(|a| a.iter().map(serde_json::Value::as_f64).collect())
            .unwrap_or_default()
    };
    Score {
        pesq: list("pesq"),
        delay_ms: list("delay_ms"),
    }
}

struct CallResult {
    pesq: Vec<f64>,
    delay_ms: Vec<f64>,
    stats: String,
    /// A's media datagrams over the call, kbit/s.
    sent_kbps: f64,
    /// What A's adaptation set last.
    adapted: String,
}

/// The values of `keys` in the last "call media ended" line of `log`, as `key=value` words.
fn media_end(log: &str, keys: &[&str]) -> String {
    log.lines()
        .rev()
        .find(|l| l.contains("call media ended"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| keys.iter().any(|k| w.starts_with(k)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One call from A (speaking `clip`) to B (behind the impaired proxy); B's recording scored.
/// `udp`: the media on the relay's UDP media plane (the default path), B's through a
/// second proxy with the same impairment; else on QUIC datagrams only.
fn call(
    python: &Path,
    clip: &Path,
    condition: &Condition,
    seed: u64,
    audio: &str,
    udp: bool,
) -> CallResult {
    let holder = tempfile::tempdir().unwrap();
    let dir = holder.path().to_owned();
    if std::env::var_os("SPEECH_BENCH_KEEP").is_some() {
        eprintln!("keeping {}", dir.display());
        std::mem::forget(holder);
    }
    // Without `udp`, media on QUIC datagrams only: the impairment proxy carries the QUIC
    // connection. With it, the QUIC connection's proxy keeps the impairment (with another
    // pattern) and B's UDP media goes through a proxy of its own, seeded as without.
    let relay = RelayProcess::start(
        &bin("phone-relay"),
        &dir.join("relay"),
        "127.0.0.1:0",
        if udp { "" } else { "media_listen = \"off\"" },
    );
    let proxy = smol::block_on(UdpProxy::start_impaired(
        relay.addr,
        condition.impairment,
        if udp { seed ^ 0x9e37 } else { seed },
    ))
    .expect("start the impairment proxy");
    let media_proxy = udp.then(|| {
        let media = relay.media.expect("the relay's media plane");
        smol::block_on(UdpProxy::start_impaired(media, condition.impairment, seed))
            .expect("start the media impairment proxy")
    });
    let b_top = media_proxy
        .as_ref()
        .map(|p| format!("relay_media_port = {}", p.addr.port()))
        .unwrap_or_default();
    let input = dir.join("mic.wav");
    let output = dir.join("heard.wav");
    let clip_samples = read_wav(clip);
    let starts = write_microphone(&input, &clip_samples);
    let (a, b) = talking_pair_on(&dir, &relay, proxy.addr, &b_top, &input, &output, audio);
    let talk = starts[COPIES - 1] + clip_samples.len() + secs(GAP_S);
    std::thread::sleep(Duration::from_secs_f64(talk as f64 / f64::from(RATE)));
    assert_eq!(a.ctl(&["hangup"]).code, 0);
    // Both logs end with the media's figures (A's for what it sent).
    let ended = wait_for(Duration::from_secs(10), || {
        (b.log().contains("call media ended") && a.log().contains("call media ended")).then_some(())
    });
    assert!(ended.is_some(), "{}", b.log());
    let (a_log, b_log) = (a.log(), b.log());
    let (capture_ns, period_us) = stream_start(&a_log, "audio-file-in");
    let (playback_ns, _) = stream_start(&b_log, "audio-file-out");
    let (capture_ns, period_us, playback_ns) =
        (capture_ns as i64, period_us as i64, playback_ns as i64);
    // Input sample i is spoken at capture start + i/rate − one period (see mouth_to_ear);
    // recorded sample j is heard at playback start + j/rate.
    let at: Vec<i64> = starts
        .iter()
        .map(|&i| {
            let spoken_ns =
                capture_ns + i as i64 * 1_000_000_000 / i64::from(RATE) - period_us * 1000;
            (spoken_ns - playback_ns) * i64::from(RATE) / 1_000_000_000
        })
        .collect();
    let s = score(python, clip, &output, &at);
    let stats = media_end(
        &b_log,
        &[
            "path=",
            "received=",
            "fec=",
            "repaired=",
            "concealed=",
            "dtx=",
            "expanded=",
            "accelerated=",
            "skipped=",
            "lost=",
            "late=",
            "max_delay_ms=",
        ],
    );
    let sent_bytes: f64 = media_end(&a_log, &["sent_bytes="])
        .strip_prefix("sent_bytes=")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let talk_s = talk as f64 / f64::from(RATE);
    CallResult {
        pesq: s.pesq.into_iter().map(|p| p.unwrap_or(1.0)).collect(),
        delay_ms: s.delay_ms.into_iter().flatten().collect(),
        stats,
        sent_kbps: sent_bytes * 8.0 / talk_s / 1000.0,
        adapted: media_end(
            &a_log,
            &[
                "redundancy=",
                "first_copy_back=",
                "copy_step=",
                "copy_bitrate_bps=",
                "bitrate_bps=",
            ],
        ),
    }
}

/// The clip through the call's encoder and a FEC-using decoder, losing what the seeded
/// impairment loses (one decision per packet; delay and reordering do not apply here).
fn codec_alone(
    clip: &Path,
    out: &Path,
    condition: &Condition,
    seed: u64,
    (complexity, frame_len): (u8, FrameDuration),
) -> Vec<usize> {
    let samples = read_wav(clip);
    let mut input = vec![0.0f32; secs(LEAD_S)];
    input.extend_from_slice(&samples);
    let n = frame_len.samples();
    input.resize(input.len().div_ceil(n) * n + n, 0.0);
    let mut enc = VoiceEncoder::new(&EncoderConfig {
        complexity,
        bitrate_bps: CALL_BITRATE_BPS,
        frame: frame_len,
        ..EncoderConfig::default()
    })
    .expect("encoder");
    let mut packets: Vec<Option<Vec<u8>>> = Vec::new();
    let mut decider = Decider::new(condition.impairment, seed);
    let mut buf = [0u8; MAX_PACKET_BYTES];
    for frame in input.chunks_exact(n) {
        // DTX frames are not sent; the decoder conceals (comfort noise) as the call does.
        let packet = enc
            .encode(frame, &mut buf)
            .expect("encode")
            .map(|n| buf[..n].to_vec());
        let arrives = !decider.decide().is_empty();
        packets.push(packet.filter(|_| arrives));
    }
    let mut dec = VoiceDecoder::new(frame_len).expect("decoder");
    let mut decoded = Vec::with_capacity(input.len());
    let mut frame = vec![0.0f32; n];
    for (i, p) in packets.iter().enumerate() {
        match (p, packets.get(i + 1).and_then(Option::as_ref)) {
            (Some(p), _) => dec.decode(p, &mut frame).expect("decode"),
            (None, Some(next)) => dec.decode_fec(next, &mut frame).expect("fec"),
            (None, None) => dec.conceal(&mut frame).expect("conceal"),
        }
        decoded.extend_from_slice(&frame);
    }
    wav::write(out, RATE, 1, decoded);
    vec![secs(LEAD_S)]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// `--plans`: the codec alone under each candidate plan (`plans.rs`), per condition.
fn plans_table(
    python: &Path,
    clips: &[(u64, String, PathBuf)],
    conditions: &[Condition],
    dir: &Path,
    wanted: &[String],
) {
    println!("| condition | plan | mean WB-PESQ | per clip | kbit/s sent |");
    println!("| --- | --- | --- | --- | --- |");
    for condition in conditions {
        let plans = plans::plans(condition.name)
            .into_iter()
            .filter(|p| wanted.is_empty() || wanted.iter().any(|w| p.name.contains(w.as_str())));
        for plan in plans {
            let (mut scores, mut kbps) = (Vec::new(), Vec::new());
            for (seed, name, clip) in clips {
                let out = dir.join(format!("{name}-plan.wav"));
                let (p, b) = plans::run(python, clip, &out, condition, *seed, &plan);
                scores.push(p);
                kbps.push(b);
            }
            let per: Vec<String> = scores.iter().map(|p| format!("{p:.2}")).collect();
            println!(
                "| {} | {} | {:.2} | {} | {:.1} |",
                condition.name,
                plan.name,
                mean(&scores),
                per.join(", "),
                mean(&kbps)
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let udp = args.iter().any(|a| a == "--udp");
    let only: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].clone())
        .collect();
    let audio = args
        .iter()
        .position(|a| a == "--audio")
        .and_then(|i| args.get(i + 1))
        .map(|a| a.replace("; ", "\n"))
        .unwrap_or_default();
    let frame_len = audio
        .lines()
        .find_map(|l| l.trim().strip_prefix("frame_ms = "))
        .and_then(|v| v.trim().parse().ok())
        .and_then(FrameDuration::from_millis)
        .unwrap_or(FrameDuration::Ms20);
    let python = python();
    let work = tempfile::tempdir().unwrap();
    // Each clip's seed is its place among all clips, whichever are run.
    let mut clips: Vec<(u64, String, PathBuf)> = make_clips(&python, work.path())
        .into_iter()
        .enumerate()
        .map(|(k, (name, path))| (0x5eed + k as u64, name, path))
        .collect();
    if quick {
        clips.retain(|(_, n, _)| n == "en-male" || n == "fr-female");
    }
    let wanted: Vec<&String> = args
        .windows(2)
        .filter(|w| w[0] == "--clip")
        .map(|w| &w[1])
        .collect();
    if !wanted.is_empty() {
        clips.retain(|(_, n, _)| wanted.contains(&n));
    }
    // `--seed N`: every clip takes loss pattern N instead of its own (is a clip's score its
    // voice's or its pattern's?).
    if let Some(seed) = args
        .windows(2)
        .find(|w| w[0] == "--seed")
        .and_then(|w| w[1].parse::<u64>().ok())
    {
        clips.iter_mut().for_each(|c| c.0 = seed);
    }
    if args.iter().any(|a| a == "--plans") {
        // `--plan WORDS`: only the plans whose names hold one of them.
        let wanted: Vec<String> = args
            .windows(2)
            .filter(|w| w[0] == "--plan")
            .map(|w| w[1].clone())
            .collect();
        plans_table(
            &python,
            &clips,
            &conditions(quick, &only),
            work.path(),
            &wanted,
        );
        return;
    }
    println!(
        "| clip | condition | phoned, WB-PESQ per copy | codec alone | codec alone, complexity {CHEAP_COMPLEXITY} | mouth-to-ear ms | A sent, kbit/s | B's media stats |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    // Per condition: our scores, the codec alone's, and the codec alone's at complexity 5.
    type Scores = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let mut summary: Vec<(&str, Scores)> = Vec::new();
    for condition in conditions(quick, &only) {
        let (mut ours, mut alone, mut alone_cheap, mut kbps) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (seed, name, clip) in &clips {
            let seed = *seed;
            let r = call(&python, clip, &condition, seed, &audio, udp);
            let alone_at = |complexity| {
                let reference = work.path().join(format!("{name}-alone.wav"));
                let at = codec_alone(clip, &reference, &condition, seed, (complexity, frame_len));
                let at: Vec<i64> = at.iter().map(|&a| a as i64).collect();
                score(&python, clip, &reference, &at).pesq[0].unwrap_or(1.0)
            };
            let codec = alone_at(ENCODER_COMPLEXITY);
            let cheap = alone_at(CHEAP_COMPLEXITY);
            let per_copy: Vec<String> = r.pesq.iter().map(|p| format!("{p:.2}")).collect();
            let delays: Vec<String> = r.delay_ms.iter().map(|d| format!("{d:.0}")).collect();
            println!(
                "| {name} | {} | {} | {codec:.2} | {cheap:.2} | {} | {:.1} ({}) | {} |",
                condition.name,
                per_copy.join(", "),
                delays.join(", "),
                r.sent_kbps,
                r.adapted,
                r.stats
            );
            ours.extend(r.pesq);
            alone.push(codec);
            alone_cheap.push(cheap);
            kbps.push(r.sent_kbps);
        }
        summary.push((condition.name, (ours, alone, alone_cheap, kbps)));
    }
    println!(
        "\n| condition | phoned, mean WB-PESQ | codec alone, mean | phoned − codec | codec alone, complexity {CHEAP_COMPLEXITY} | A sent, mean kbit/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, (ours, alone, cheap, kbps)) in summary {
        let (o, a, c) = (mean(&ours), mean(&alone), mean(&cheap));
        println!(
            "| {name} | {o:.2} | {a:.2} | {:+.2} | {c:.2} | {:.1} |",
            o - a,
            mean(&kbps)
        );
    }
}
