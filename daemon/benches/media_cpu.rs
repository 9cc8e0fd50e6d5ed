//! The per-call media pipeline of `phoned`, in process, with the real modules and the settings
//! of `call/media/pipeline.rs` (Opus complexity 10, 24 kbit/s VBR, in-band FEC at 10 %
//! expected loss, DTX, 20 ms frames, the default adaptive jitter buffer):
//!
//! capture (device rate) → `ToNetwork` → level + `VoiceEncoder` → `MediaFrame` → (network)
//! → `MediaFrame` → `JitterBuffer` push/pop → `VoiceDecoder` → `FromNetwork` → playback.
//!
//! 1. CPU per active call per 20 ms frame, each stage and in total (median, p99), for a
//!    speech-like signal and a steady tone, from a 44.1 kHz device and a 48 kHz device.
//!    Stages are timed on the wall clock; the total also in thread CPU time, which a
//!    preempting process on this shared machine does not inflate (a 4 ms scheduler slice
//!    lost to another process shows up in wall-clock p99s, not in CPU time).
//! 2. Opus encode cost at complexities 5 to 10, of the call's encoder and of the copies'.
//! 3. Algorithmic end-to-end latency, computed deterministically on a virtual 20 ms clock
//!    (no real time): packets reach the jitter buffer the instant they are sent (a clean
//!    network with zero transit) and a frame is popped, decoded and "played" on every tick.
//! 4. The daemon's own `MediaPipeline::tick`, called every 5 ms as the media thread calls
//!    it, in a two-way call on a virtual clock: thread CPU per 20 ms of one side (its
//!    microphone encoded and sent, the far side's packets decoded and queued for playback).
//! 5. The same in a conference room against a two-party call: one listener's pipeline fed
//!    the frames of 3 far speakers (what the relay forwards from a room of any size: its 3
//!    loudest speakers) against 1 far speaker, all talking at once; each far stream is
//!    decoded, and the extra ones mixed in. The ratio of the two is the client-side cost of
//!    a conference (the target: at most 1.5× the two-party call).
//!
//! Run: `cargo bench -p phoned --bench media_cpu` (add `-- --quick` for a short run,
//! `-- --complexity` for section 2 alone, `-- --conference` for section 5 alone).

use std::f64::consts::TAU;
use std::hint::black_box;
use std::time::{Duration, Instant};

use phoned::audio::analysis::best_lag;
use phoned::audio::codec::{
    EncoderConfig, FrameDuration, MAX_PACKET_BYTES, VoiceDecoder, VoiceEncoder, speech_level,
};
use phoned::audio::jitter::{JitterBuffer, JitterConfig, Playout};
use phoned::audio::resample::{FRAME, FromNetwork, NETWORK_RATE, ToNetwork};
use phoned::call::media::adapt::DEEP_COPY_BITRATE_BPS;
use phoned::call::media::{
    CALL_BITRATE_BPS, Device, ENCODER_COMPLEXITY, Flags, MediaPipeline, PLAYBACK_QUEUE_MIN_MS, TICK,
};
use phoned_proto::media::MediaFrame;

/// One tick of the media clock: one 20 ms frame.
const TICK_US: u64 = 20_000;
/// Per-tick stages timed by the CPU benchmark.
const STAGES: [&str; 6] = [
    "capture resample (device → 48 kHz)",
    "Opus encode",
    "level + `MediaFrame` encode/decode",
    "jitter buffer push + pop",
    "Opus decode",
    "playback resample (48 kHz → device)",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Harmonics of a gliding 140 Hz voice shaped by three formants, plus noise,
    /// amplitude-modulated at 4 Hz (syllables) — peaks about −10 dBFS.
    Speech,
    /// A steady 1 kHz tone at −6 dBFS.
    Tone,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Speech => "speech-like",
            Kind::Tone => "1 kHz tone",
        }
    }
}

/// `n` samples of `kind` at `rate`. Deterministic (a fixed xorshift seed for the noise).
fn signal(kind: Kind, rate: u32, n: usize) -> Vec<f32> {
    let rate = f64::from(rate);
    match kind {
        Kind::Tone => (0..n)
            .map(|i| (0.5 * (TAU * 1000.0 * i as f64 / rate).sin()) as f32)
            .collect(),
        Kind::Speech => {
            let formants = [(500.0, 120.0), (1500.0, 200.0), (2500.0, 300.0)];
            let weight = |f: f64| -> f64 {
                0.05 + formants
                    .iter()
                    .map(|&(c, bw): &(f64, f64)| (-((f - c) / bw).powi(2)).exp())
                    .sum::<f64>()
            };
            let mut rng = 0x2545_f491_4f6c_dd1d_u64;
            let mut phase = 0.0f64;
            (0..n)
                .map(|i| {
                    let t = i as f64 / rate;
                    // The voice glides ±20 Hz around 140 Hz over 1.3 s.
                    let f0 = 140.0 + 20.0 * (TAU * t / 1.3).sin();
                    phase += TAU * f0 / rate;
                    let mut voiced = 0.0;
                    for k in 1..=24 {
                        let f = k as f64 * f0;
                        if f > 0.45 * rate {
                            break;
                        }
                        voiced += weight(f) * (k as f64 * phase).sin() / (k as f64).sqrt();
                    }
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let noise = (rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                    let envelope = 0.5 * (1.0 - (TAU * 4.0 * t).cos());
                    (envelope * (0.12 * voiced + 0.05 * noise)) as f32
                })
                .collect()
        }
    }
}

/// One call's media pipeline on a virtual clock, the way `call/media/pipeline.rs` wires it,
/// with each stage timed.
struct Pipeline {
    rate: u32,
    to_net: ToNetwork,
    from_net: FromNetwork,
    encoder: VoiceEncoder,
    decoder: VoiceDecoder,
    jitter: JitterBuffer,
    seq: u32,
    timestamp: u32,
    /// Packets sent (DTX frames are not).
    sent: u64,
}

/// What one run produced.
struct Run {
    /// Wall-clock nanoseconds per stage, one row per tick.
    times: Vec<[u32; STAGES.len()]>,
    /// Thread CPU nanoseconds per tick (all stages): unlike the wall clock, not inflated
    /// when another process preempts this thread.
    cpu: Vec<u32>,
    /// Packets sent on each tick (0 for a DTX frame).
    packets: Vec<u8>,
    /// Device-rate output on the input's time line: the frame popped on the tick at time
    /// `t` plays from `t` (no device queue).
    played: Vec<f32>,
}

impl Pipeline {
    fn new(rate: u32, complexity: u8) -> Pipeline {
        Pipeline {
            rate,
            to_net: ToNetwork::new(rate).unwrap(),
            from_net: FromNetwork::new(rate).unwrap(),
            encoder: VoiceEncoder::new(&EncoderConfig {
                complexity,
                ..EncoderConfig::default()
            })
            .unwrap(),
            decoder: VoiceDecoder::new(FrameDuration::Ms20).unwrap(),
            jitter: JitterBuffer::new(JitterConfig::default()).unwrap(),
            seq: 0,
            timestamp: 0,
            sent: 0,
        }
    }

    /// Device samples per tick.
    fn chunk(&self) -> usize {
        self.rate as usize / 50
    }

    /// Feeds `input` (device rate) tick by tick. On tick `k` (time `(k + 1) · 20 ms`) the
    /// device has delivered samples `[k · chunk, (k + 1) · chunk)`; they are resampled,
    /// encoded and sent; the packets reach the jitter buffer at once; one frame is popped,
    /// decoded, resampled and played from that instant.
    fn run(&mut self, input: &[f32]) -> Run {
        let chunk = self.chunk();
        let ticks = input.len() / chunk;
        let mut times = Vec::with_capacity(ticks);
        let mut cpu = Vec::with_capacity(ticks);
        let mut packets = vec![0u8; ticks];
        let mut played = vec![0f32; input.len() + 2 * chunk];
        let mut frame = [0f32; FRAME];
        let mut decoded = [0f32; FRAME];
        let mut packet = [0u8; MAX_PACKET_BYTES];
        for k in 0..ticks {
            let now_us = (k as u64 + 1) * TICK_US;
            let mut t = [0u32; STAGES.len()];
            let cpu_start = thread_cpu_ns();
            let mut lap = Lap::new();

            // Capture → 48 kHz frames → Opus → datagram → jitter buffer.
            self.to_net.push(&input[k * chunk..(k + 1) * chunk]);
            loop {
                let got = self.to_net.pop_frame(&mut frame).unwrap();
                t[0] += lap.lap();
                if !got {
                    break;
                }
                let level = speech_level(&frame);
                t[2] += lap.lap();
                let len = self.encoder.encode(&frame, &mut packet).unwrap();
                t[1] += lap.lap();
                if let Some(len) = len {
                    let datagram = MediaFrame {
                        call: 7,
                        source: 0,
                        seq: self.seq,
                        timestamp: self.timestamp,
                        level,
                        payload: packet[..len].to_vec(),
                    }
                    .encode();
                    self.seq = self.seq.wrapping_add(1);
                    self.sent += 1;
                    packets[k] += 1;
                    let f = MediaFrame::decode(black_box(&datagram)).unwrap();
                    t[2] += lap.lap();
                    self.jitter.push(now_us, f.seq, f.timestamp, &f.payload);
                    t[3] += lap.lap();
                }
                self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
            }

            // Jitter buffer → Opus → device rate → playback.
            let playout = self.jitter.pop(now_us);
            t[3] += lap.lap();
            match playout {
                Playout::Packet(p) => self.decoder.decode(p, &mut decoded).unwrap(),
                Playout::Fec(p) => self.decoder.decode_fec(p, &mut decoded).unwrap(),
                Playout::Conceal => self.decoder.conceal(&mut decoded).unwrap(),
                Playout::Silence => decoded.fill(0.0),
            }
            t[4] += lap.lap();
            let out = self.from_net.process(&decoded).unwrap();
            t[5] += lap.lap();
            cpu.push(u32::try_from(thread_cpu_ns() - cpu_start).unwrap_or(u32::MAX));
            let at = (k + 1) * chunk;
            let n = out.len().min(played.len().saturating_sub(at));
            played[at..at + n].copy_from_slice(&out[..n]);
            times.push(t);
        }
        Run {
            times,
            cpu,
            packets,
            played,
        }
    }
}

/// A stopwatch that returns the nanoseconds since its last lap.
struct Lap(Instant);

impl Lap {
    fn new() -> Lap {
        Lap(Instant::now())
    }

    fn lap(&mut self) -> u32 {
        let now = Instant::now();
        let ns = now.duration_since(self.0).as_nanos();
        self.0 = now;
        u32::try_from(ns).unwrap_or(u32::MAX)
    }
}

/// CPU time this thread has used, ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// (median, p99) in µs of nanosecond samples.
fn median_p99(mut ns: Vec<u32>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| f64::from(ns[((ns.len() - 1) as f64 * q).round() as usize]) / 1000.0;
    (at(0.5), at(0.99))
}

/// First sample whose magnitude reaches `threshold`.
fn onset(x: &[f32], threshold: f32) -> Option<usize> {
    x.iter().position(|v| v.abs() >= threshold)
}

fn ms(samples: f64, rate: u32) -> f64 {
    samples * 1000.0 / f64::from(rate)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (warm, frames) = if quick { (50, 1000) } else { (250, 5000) };
    println!(
        "# phoned media pipeline, one call, in process ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    if std::env::args().any(|a| a == "--complexity") {
        complexity(warm, frames);
        return;
    }
    if !std::env::args().any(|a| a == "--conference") {
        cpu(warm, frames);
        complexity(warm, frames);
        latency();
        daemon_pipeline(warm, frames);
    }
    conference(warm, frames);
}

/// The signals and device rates every table measures, one column each; prints the
/// table's head with `first` as the name of its first column.
fn table_head(first: &str) -> [(u32, Kind); 4] {
    let configs = [
        (44_100, Kind::Speech),
        (48_000, Kind::Speech),
        (44_100, Kind::Tone),
        (48_000, Kind::Tone),
    ];
    print!("| {first} |");
    for (rate, kind) in configs {
        print!(
            " {}, {:.1} kHz device |",
            kind.name(),
            f64::from(rate) / 1000.0
        );
    }
    println!();
    println!("| --- |{}", " --- |".repeat(configs.len()));
    configs
}

/// 1. CPU per frame of the whole pipeline, per stage.
fn cpu(warm: usize, frames: usize) {
    println!(
        "## CPU per active call per 20 ms frame (Opus complexity {ENCODER_COMPLEXITY}; {frames} frames after {warm} of warm-up)"
    );
    println!();
    let configs = table_head("stage, median (p99) µs");
    let runs: Vec<(Run, u64)> = configs
        .iter()
        .map(|&(rate, kind)| {
            let mut p = Pipeline::new(rate, ENCODER_COMPLEXITY);
            let input = signal(kind, rate, (warm + frames) * p.chunk());
            let mut run = p.run(&input);
            run.times.drain(..warm);
            run.cpu.drain(..warm);
            (run, p.sent)
        })
        .collect();
    for (s, stage) in STAGES.iter().enumerate() {
        print!("| {stage} |");
        for (run, _) in &runs {
            let (med, p99) = median_p99(run.times.iter().map(|t| t[s]).collect());
            print!(" {med:.1} ({p99:.1}) |");
        }
        println!();
    }
    print!("| total per frame, wall clock |");
    for (run, _) in &runs {
        let (med, p99) = median_p99(run.times.iter().map(|t| t.iter().sum()).collect());
        print!(" {med:.1} ({p99:.1}) |");
    }
    println!();
    print!("| **total per frame, thread CPU time** |");
    let mut shares = Vec::new();
    for (run, _) in &runs {
        let (med, p99) = median_p99(run.cpu.clone());
        shares.push(med / (TICK_US as f64) * 100.0);
        print!(" **{med:.1}** ({p99:.1}) |");
    }
    println!();
    print!("| share of one core (median / 20 ms) |");
    for share in shares {
        print!(" {share:.2} % |");
    }
    println!();
    print!("| packets sent (not DTX) |");
    for (run, sent) in &runs {
        print!(" {sent} of {} frames |", run.times.len() + warm);
    }
    println!();
    println!();
}

/// 2. Opus encode alone at complexities 5 to 10: the call's encoder, and the second
///    encoder that re-encodes deep copies (`call::media::adapt`, 10 kbit/s, no FEC).
fn complexity(warm: usize, frames: usize) {
    let call = EncoderConfig {
        bitrate_bps: CALL_BITRATE_BPS,
        ..EncoderConfig::default()
    };
    let copies = EncoderConfig {
        bitrate_bps: DEEP_COPY_BITRATE_BPS,
        fec: false,
        expected_loss_percent: 0,
        ..EncoderConfig::default()
    };
    for (what, config) in [
        ("the call's encoder", call),
        ("the copies' encoder", copies),
    ] {
        complexity_table(what, &config, warm, frames);
    }
}

fn complexity_table(what: &str, config: &EncoderConfig, warm: usize, frames: usize) {
    println!(
        "## Opus encode per 20 ms frame, 48 kHz, {what}: {} kbit/s, FEC {}, DTX",
        config.bitrate_bps / 1000,
        if config.fec {
            format!("({} %)", config.expected_loss_percent)
        } else {
            "off".to_owned()
        }
    );
    println!();
    println!(
        "| signal | complexity | thread CPU median µs | thread CPU p99 µs | wall-clock p99 µs | packets sent | mean bytes |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for kind in [Kind::Speech, Kind::Tone] {
        let input = signal(kind, NETWORK_RATE, (warm + frames) * FRAME);
        for complexity in [5u8, 6, 7, 8, 9, 10] {
            let mut enc = VoiceEncoder::new(&EncoderConfig {
                complexity,
                ..config.clone()
            })
            .unwrap();
            let mut packet = [0u8; MAX_PACKET_BYTES];
            let (mut sent, mut bytes) = (0u64, 0u64);
            let (mut wall, mut cpu) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
            for (i, frame) in input.chunks_exact(FRAME).enumerate() {
                let c = thread_cpu_ns();
                let t = Instant::now();
                let len = enc.encode(black_box(frame), &mut packet).unwrap();
                let el = t.elapsed().as_nanos() as u32;
                let c = thread_cpu_ns() - c;
                if i >= warm {
                    wall.push(el);
                    cpu.push(c as u32);
                    if let Some(len) = len {
                        sent += 1;
                        bytes += len as u64;
                    }
                }
            }
            let (med, p99) = median_p99(cpu);
            let (_, wall_p99) = median_p99(wall);
            println!(
                "| {} | {complexity} | {med:.1} | {p99:.1} | {wall_p99:.1} | {sent} of {frames} | {:.0} |",
                kind.name(),
                bytes as f64 / sent.max(1) as f64
            );
        }
    }
    println!();
}

/// 3. Algorithmic latency: tone onset in → onset out, and the lag of best correlation for
///    the speech-like signal.
fn latency() {
    println!(
        "## Algorithmic latency, clean network (zero transit), pop on the same 20 ms clock, no device queue"
    );
    println!();
    println!(
        "| device rate | signal | measured | framing | Opus look-ahead | jitter buffer | capture resampler | playback resampler | sum of parts |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut dtx_sent = 0;
    for rate in [48_000u32, 44_100] {
        for kind in [Kind::Tone, Kind::Speech] {
            let mut p = Pipeline::new(rate, ENCODER_COMPLEXITY);
            // 2 s of silence (the encoder goes into DTX, the jitter buffer settles), then the
            // signal from a point that is not on a frame boundary, for 1 s.
            let start = 2 * rate as usize + rate as usize * 73 / 10_000;
            let mut input = vec![0f32; start + rate as usize];
            input[start..].copy_from_slice(&signal(kind, rate, rate as usize));
            let run = p.run(&input);
            dtx_sent = run.packets[50..100]
                .iter()
                .map(|&n| u32::from(n))
                .sum::<u32>();
            let measured = match kind {
                // First sample at −26 dBFS (a tenth of the tone's amplitude), in and out.
                Kind::Tone => {
                    let threshold = 0.05;
                    let i = onset(&input, threshold).unwrap();
                    let o = onset(&run.played, threshold).expect("the tone came out");
                    o as f64 - i as f64
                }
                // Lag of best correlation over 0.5 s of speech, 0.25 s after its onset.
                Kind::Speech => {
                    let from = start + rate as usize / 4;
                    let len = rate as usize / 2;
                    let max_lag = rate as usize / 10;
                    best_lag(
                        &input[from..from + len],
                        &run.played[from..from + len + max_lag],
                        max_lag,
                    ) as f64
                }
            };
            let framing = TICK_US as f64 / 1000.0;
            let lookahead = ms(
                f64::from(p.encoder.lookahead_samples().unwrap()),
                NETWORK_RATE,
            );
            let jitter = f64::from(p.jitter.stats().delay_ms);
            let capture = ms(p.to_net.delay() as f64, NETWORK_RATE);
            let playback = ms(p.from_net.delay() as f64, rate);
            println!(
                "| {:.1} kHz | {} | **{:.1} ms** | {framing:.1} | {lookahead:.1} | {jitter:.1} | {capture:.1} | {playback:.1} | {:.1} ms |",
                f64::from(rate) / 1000.0,
                match kind {
                    Kind::Tone => "tone onset (−26 dBFS threshold)",
                    Kind::Speech => "speech-like, lag of best correlation",
                },
                ms(measured, rate),
                framing + lookahead + jitter + capture + playback,
            );
        }
    }
    println!();
    println!(
        "Before the onset the encoder is in DTX: {dtx_sent} packets sent in the last second of silence (50 frames), as in a call where nobody spoke yet."
    );
    println!();
    println!(
        "Not included above (ms): the playback queue the media thread keeps at the device (at least PLAYBACK_QUEUE_MIN_MS = {PLAYBACK_QUEUE_MIN_MS}, more for a device that takes longer blocks; a frame is written when less than that is queued, so it waits {}–{PLAYBACK_QUEUE_MIN_MS} ms), the media thread's wake-up tick ({} ms, 0–{} ms for a frame to be picked up on the capture side), the sound devices' own periods and buffers, the network and the relay. `cargo bench -p phoned-tests --bench mouth_to_ear` measures all of it, WAV to WAV.",
        PLAYBACK_QUEUE_MIN_MS - TICK.as_millis() as usize,
        TICK.as_millis(),
        TICK.as_millis(),
    );
}

/// 4. `MediaPipeline::tick` as the media thread drives it: two pipelines in a two-way call,
///    both talking, ticked every [`TICK`] on a virtual clock; each tick's captured samples
///    are what the device delivered in it, datagrams reach the other side at once, and each
///    speaker plays one tick's worth of samples per tick.
fn daemon_pipeline(warm: usize, frames: usize) {
    println!(
        "## The daemon's `MediaPipeline::tick`, every {} ms, two-way call ({frames} frames after {warm} of warm-up)",
        TICK.as_millis()
    );
    println!();
    let configs = table_head("one side, per 20 ms, thread CPU µs");
    let ticks_per_frame = (TICK_US / TICK.as_micros() as u64) as usize;
    let results: Vec<(f64, f64)> = configs
        .iter()
        .map(|&(rate, kind)| {
            let per_tick = rate as usize * TICK.as_micros() as usize / 1_000_000;
            let ticks = (warm + frames) * ticks_per_frame;
            let input = signal(kind, rate, ticks * per_tick);
            let mut a = MediaPipeline::new(7, 1, rate, rate).unwrap();
            let mut b = MediaPipeline::new(7, 2, rate, rate).unwrap();
            let (mut to_a, mut to_b) = (Vec::new(), Vec::new());
            let (mut queued_a, mut queued_b) = (0usize, 0usize);
            let (mut cpu, mut frame_ns) = (Vec::with_capacity(frames), 0u64);
            for k in 0..ticks {
                let now = Duration::from_micros(k as u64 * TICK.as_micros() as u64);
                let mic = &input[k * per_tick..(k + 1) * per_tick];
                queued_a = queued_a.saturating_sub(per_tick);
                queued_b = queued_b.saturating_sub(per_tick);
                let device = |queued| Device {
                    queued,
                    last_block: per_tick as u64,
                    played: 0,
                };
                let start = thread_cpu_ns();
                let out = a.tick(now, mic, to_a.drain(..), device(queued_a), Flags::default());
                frame_ns += thread_cpu_ns() - start;
                to_b.append(&mut out.datagrams);
                queued_a += out.playback.len();
                let out = b.tick(now, mic, to_b.drain(..), device(queued_b), Flags::default());
                to_a.append(&mut out.datagrams);
                queued_b += out.playback.len();
                if k % ticks_per_frame == ticks_per_frame - 1 {
                    if k / ticks_per_frame >= warm {
                        cpu.push(u32::try_from(frame_ns).unwrap_or(u32::MAX));
                    }
                    frame_ns = 0;
                }
            }
            let played = a.stats().decoded;
            assert!(played as usize >= frames, "A decoded {played} frames");
            median_p99(cpu)
        })
        .collect();
    print!("| median (p99) |");
    for (med, p99) in &results {
        print!(" **{med:.1}** ({p99:.1}) |");
    }
    println!();
    print!("| share of one core (median / 20 ms) |");
    for (med, _) in &results {
        print!(" {:.2} % |", med / (TICK_US as f64) * 100.0);
    }
    println!();
    println!();
}

/// A listener's `MediaPipeline::tick` thread CPU per 20 ms, (median, p99) µs, with `far`
/// far parties talking at once (speech-like, each from its own point of the signal) at
/// device rate `rate`, all ticked every [`TICK`] on a virtual clock. The listener talks
/// too; its datagrams reach every far party and theirs reach it at once, as a room
/// forwards them. Also how many frames it played with further streams mixed in.
fn listener_cpu(rate: u32, far: usize, warm: usize, frames: usize) -> ((f64, f64), u64) {
    let ticks_per_frame = (TICK_US / TICK.as_micros() as u64) as usize;
    let per_tick = rate as usize * TICK.as_micros() as usize / 1_000_000;
    let ticks = (warm + frames) * ticks_per_frame;
    // One long signal; party `p` speaks from `p · 1.37 s` into it, so no two say the same.
    let offset = rate as usize * 137 / 100;
    let input = signal(Kind::Speech, rate, ticks * per_tick + far * offset);
    let mic = |p: usize, k: usize| &input[p * offset + k * per_tick..][..per_tick];
    let mut pipes: Vec<MediaPipeline> = (0..=far)
        .map(|p| MediaPipeline::new(7, 1 + p as u32, rate, rate).unwrap())
        .collect();
    let mut inbox = vec![Vec::new(); far + 1];
    let mut queued = vec![0usize; far + 1];
    let (mut cpu, mut frame_ns) = (Vec::with_capacity(frames), 0u64);
    for k in 0..ticks {
        let now = Duration::from_micros(k as u64 * TICK.as_micros() as u64);
        for (p, pipe) in pipes.iter_mut().enumerate() {
            queued[p] = queued[p].saturating_sub(per_tick);
            let device = Device {
                queued: queued[p],
                last_block: per_tick as u64,
                // The device takes a tick's worth each tick.
                played: (k * per_tick) as u64,
            };
            let received = std::mem::take(&mut inbox[p]);
            let start = thread_cpu_ns();
            let out = pipe.tick(now, mic(p, k), received.iter(), device, Flags::default());
            if p == 0 {
                frame_ns += thread_cpu_ns() - start;
            }
            queued[p] += out.playback.len();
            let sent = std::mem::take(&mut out.datagrams);
            // The listener's frames go to every far party, theirs to the listener only.
            if p == 0 {
                for other in &mut inbox[1..] {
                    other.extend(sent.iter().cloned());
                }
            } else {
                inbox[0].extend(sent);
            }
        }
        if k % ticks_per_frame == ticks_per_frame - 1 {
            if k / ticks_per_frame >= warm {
                cpu.push(u32::try_from(frame_ns).unwrap_or(u32::MAX));
            }
            frame_ns = 0;
        }
    }
    let stats = pipes[0].stats();
    assert!(
        stats.decoded as usize >= frames,
        "decoded {}",
        stats.decoded
    );
    (median_p99(cpu), stats.mixed_frames)
}

/// 5. The listener's CPU in a conference (3 far streams) against a two-party call (1).
fn conference(warm: usize, frames: usize) {
    println!(
        "## Conference against two-party call: one side's `MediaPipeline::tick` per 20 ms, thread CPU µs ({frames} frames after {warm} of warm-up)"
    );
    println!();
    let rates = [44_100u32, 48_000];
    print!("| far streams (all talking) |");
    for rate in rates {
        print!(" speech-like, {:.1} kHz device |", f64::from(rate) / 1000.0);
    }
    println!(" frames played with further streams mixed in |");
    println!("| --- |{}", " --- |".repeat(rates.len() + 1));
    let mut medians = [[0f64; 2]; 2];
    for (row, far) in [1usize, 3].into_iter().enumerate() {
        let label = if far == 1 {
            "1 — two-party call".to_owned()
        } else {
            format!("{far} — conference (a room's {far} loudest speakers)")
        };
        print!("| {label} |");
        let mut mixed = 0;
        for (col, &rate) in rates.iter().enumerate() {
            let ((med, p99), m) = listener_cpu(rate, far, warm, frames);
            medians[row][col] = med;
            mixed = m;
            print!(" **{med:.1}** ({p99:.1}) |");
        }
        println!(" {mixed} |");
    }
    print!("| **ratio, conference / two-party (medians)** |");
    for (conference, call) in medians[1].iter().zip(&medians[0]) {
        print!(" **{:.2}×** |", conference / call);
    }
    println!("  |");
    println!();
}
