//! Two parties of a call on virtual time: each a [`MediaPipeline`] with a microphone and a
//! speaker that run on their own (drifting) device clocks in 10 ms blocks (or a speaker
//! that takes 20 ms blocks on a PipeWire quantum's boundaries), ticked like the media
//! thread: whenever a device moves a block or a datagram arrives, and at least every
//! [`TICK`]; between them a seeded network per direction
//! (`audio/netsim.rs`: loss, jitter and reordering, duplication, delay spikes). Real Opus,
//! real resamplers, real jitter buffer: only the clock, the devices and the sockets are
//! simulated, so ten seconds of a call run in a fraction of a second and every run is the
//! same. The tests below hold the pipeline to what a listener hears.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::f64::consts::TAU;
use std::time::Duration;

use bytes::Bytes;
use phoned_proto::call::CallId;
use phoned_proto::media::{MediaDatagram, MediaFrame, MediaReport, RedundantFrame};

use super::{Device, ENCODER_COMPLEXITY, Flags, MediaPipeline, MediaStats, TICK};
use crate::audio::analysis::{goertzel_power, rms};
use crate::audio::codec::{EncoderConfig, FrameDuration, MAX_PACKET_BYTES, VoiceEncoder};
use crate::audio::jitter::JitterStats;
use crate::audio::netsim::{Link, Path};

pub(super) const CALL: CallId = 7;
const MS: u64 = 1_000;
const S: u64 = 1_000_000;
const TICK_US: u64 = TICK.as_micros() as u64;
/// The device period: the file backend's 10 ms.
const PERIOD_US: u64 = 10 * MS;
/// One-way transit of the fastest packet.
const TRANSIT_US: u64 = 30 * MS;

/// `seconds` of a sine at `freq` Hz and `amplitude`, sampled at `rate`.
pub(super) fn tone(rate: u32, seconds: f64, freq: f64, amplitude: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| (amplitude * (TAU * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Level of `samples` in dB relative to a full-scale RMS of 1.0 (a ±0.5 sine is −9 dB).
pub(super) fn dbfs(samples: &[f32]) -> f64 {
    20.0 * rms(samples).max(1e-9).log10()
}

/// A datagram on its way: `(arrival µs, order sent, bytes)`, earliest first.
type InFlight = BinaryHeap<Reverse<(u64, u64, Bytes)>>;

/// What a party's pipeline reported after one tick.
#[derive(Clone, Copy, Debug)]
pub(super) struct TickLog {
    pub at_us: u64,
    /// Samples queued at the speaker right after the tick.
    pub queued: usize,
    pub jitter: JitterStats,
    pub media: MediaStats,
}

/// One end of the call.
pub(super) struct Party {
    pub pipeline: MediaPipeline,
    pub rate: u32,
    /// Device clock error: the sound card runs `1 + drift_ppm / 10⁶` times as fast as true
    /// time (its microphone and its speaker alike).
    pub drift_ppm: i64,
    /// The pipeline's first tick, µs; then it ticks whenever a device moves a block or a
    /// datagram arrives, and at least every [`TICK`].
    pub tick_phase_us: u64,
    last_tick_us: Option<u64>,
    /// Ticks run.
    pub ticks: u64,
    pub flags: Flags,
    /// What the microphone picks up, at `rate`; silence after it. A party with none has
    /// no microphone at all (a listener that sends nothing: its encoder would only cost
    /// the test time).
    pub mic: Vec<f32>,
    mic_blocks: u64,
    captured: Vec<f32>,
    speaker: VecDeque<f32>,
    speaker_blocks: u64,
    /// Everything the speaker played, one entry per device sample.
    pub heard: Vec<f32>,
    /// Blocks the speaker found short once playback had begun.
    pub underruns: u64,
    /// When the latest underrun happened (µs), if any.
    pub last_underrun_us: Option<u64>,
    /// A speaker fed like pipewire-pulse feeds the pulse backend: 20 ms blocks taken at
    /// the first boundary of this quantum (µs) after each is due, so with 21.3 ms, 15
    /// blocks 21.3 ms apart and then one at once. 0: 10 ms blocks on time.
    pub speaker_quantum_us: u64,
    /// A speaker whose timer falls behind now and then, as PulseAudio's null sinks on a
    /// loaded machine do: every `.0` µs it takes nothing for `.1` µs, then catches up at
    /// once. `None`: on time.
    pub speaker_stalls: Option<(u64, u64)>,
    inbox: InFlight,
    /// `(tick µs, frame)` of every frame sent (redundant ones with their copies).
    pub sent: Vec<(u64, MediaFrame)>,
    /// Copies of earlier frames each sent frame carried, by the frame's index in `sent`.
    pub copies: Vec<usize>,
    /// How far back the farthest of those copies was (0: none), by the same index.
    pub farthest: Vec<u8>,
    /// The bytes of those copies' packets, by the same index.
    pub copy_bytes: Vec<usize>,
    /// `(tick µs, report)` of every report sent.
    pub reports: Vec<(u64, MediaReport)>,
    /// Features datagrams it sent.
    pub features: usize,
    pub log: Vec<TickLog>,
    pub resets: u64,
    pub decode_errors: u64,
}

impl Party {
    pub(super) fn new(source: u32, rate: u32, mic: Vec<f32>) -> Self {
        Self::with_frame(source, rate, mic, FrameDuration::Ms20)
    }

    /// A party that sends frames of `frame`.
    pub(super) fn with_frame(source: u32, rate: u32, mic: Vec<f32>, frame: FrameDuration) -> Self {
        Self {
            pipeline: MediaPipeline::with_frame(CALL, source, rate, rate, frame).expect("pipeline"),
            rate,
            drift_ppm: 0,
            tick_phase_us: u64::from(source) * MS % TICK_US,
            last_tick_us: None,
            ticks: 0,
            flags: Flags::default(),
            mic,
            mic_blocks: 0,
            captured: Vec::with_capacity(rate as usize / 10),
            speaker: VecDeque::new(),
            speaker_blocks: 0,
            heard: Vec::new(),
            underruns: 0,
            last_underrun_us: None,
            speaker_quantum_us: 0,
            speaker_stalls: None,
            inbox: InFlight::new(),
            sent: Vec::new(),
            copies: Vec::new(),
            farthest: Vec::new(),
            copy_bytes: Vec::new(),
            reports: Vec::new(),
            features: 0,
            log: Vec::new(),
            resets: 0,
            decode_errors: 0,
        }
    }

    fn block(&self) -> usize {
        (u64::from(self.rate) * PERIOD_US / S) as usize
    }

    /// True time of the device's block `k`.
    fn block_at(&self, k: u64) -> u64 {
        let clock = 1_000_000i64 + self.drift_ppm;
        (k as i128 * PERIOD_US as i128 * 1_000_000 / clock as i128) as u64
    }

    /// Samples the speaker takes at once.
    fn speaker_block(&self) -> usize {
        if self.speaker_quantum_us == 0 {
            self.block()
        } else {
            2 * self.block()
        }
    }

    /// True time at which the speaker takes its block `k`.
    fn speaker_due(&self, k: u64) -> u64 {
        let due = match self.speaker_quantum_us {
            0 => self.block_at(k),
            q => self.block_at(2 * k).div_ceil(q) * q,
        };
        match self.speaker_stalls {
            Some((every, stall)) if due % every < stall => due - due % every + stall,
            _ => due,
        }
    }

    /// Hands a datagram to the party's network interface, to arrive at `at_us`.
    pub(super) fn deliver(&mut self, at_us: u64, order: u64, datagram: Bytes) {
        self.inbox.push(Reverse((at_us, order, datagram)));
    }

    /// Advances to `now_us`: device blocks that fell due, then the pipeline's tick if
    /// something woke it (a block, a datagram) or a [`TICK`] passed. Returns what the
    /// tick sent.
    pub(super) fn step(&mut self, now_us: u64) -> Vec<Bytes> {
        let block = self.block();
        let mut woken = false;
        while !self.mic.is_empty() && self.block_at(self.mic_blocks) <= now_us {
            woken = true;
            let from = (self.mic_blocks as usize * block).min(self.mic.len());
            let to = (from + block).min(self.mic.len());
            self.captured.extend_from_slice(&self.mic[from..to]);
            self.captured
                .resize(self.captured.len() + block - (to - from), 0.0);
            self.mic_blocks += 1;
        }
        let speaker_block = self.speaker_block();
        while self.speaker_due(self.speaker_blocks) <= now_us {
            woken = true;
            let have = self.speaker.len().min(speaker_block);
            if have < speaker_block && !self.heard.is_empty() {
                self.underruns += 1;
                self.last_underrun_us = Some(now_us);
            }
            self.heard.extend(self.speaker.drain(..have));
            self.heard
                .resize(self.heard.len() + speaker_block - have, 0.0);
            self.speaker_blocks += 1;
        }
        woken |= self
            .inbox
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= now_us);
        let due = match self.last_tick_us {
            None => now_us >= self.tick_phase_us,
            Some(last) => now_us >= last + TICK_US,
        };
        if !(due || (woken && now_us >= self.tick_phase_us)) {
            return Vec::new();
        }
        self.last_tick_us = Some(now_us);
        self.ticks += 1;
        let inbox = &mut self.inbox;
        let received = std::iter::from_fn(|| {
            inbox
                .peek()
                .is_some_and(|Reverse((at, _, _))| *at <= now_us)
                .then(|| inbox.pop().map(|Reverse((_, _, d))| d))
                .flatten()
        });
        let device = Device {
            queued: self.speaker.len(),
            last_block: speaker_block as u64,
            played: self.heard.len() as u64,
        };
        let out = self.pipeline.tick(
            Duration::from_micros(now_us),
            &self.captured,
            received,
            device,
            self.flags,
        );
        self.captured.clear();
        self.speaker.extend(out.playback.iter());
        for event in out.events.drain(..) {
            match event {
                super::MediaEvent::DecoderReset => self.resets += 1,
                super::MediaEvent::DecodeFailed(_) => self.decode_errors += 1,
                super::MediaEvent::Onset(_) => {}
                e => panic!("unexpected {e:?}"),
            }
        }
        let datagrams: Vec<Bytes> = out.datagrams.drain(..).collect();
        for d in &datagrams {
            match MediaDatagram::decode(d).expect("own datagram decodes") {
                MediaDatagram::Frame(f) => {
                    self.sent.push((now_us, f));
                    self.copies.push(0);
                    self.farthest.push(0);
                    self.copy_bytes.push(0);
                }
                MediaDatagram::Redundant(RedundantFrame { frame, earlier }) => {
                    self.sent.push((now_us, frame));
                    self.copies.push(earlier.len());
                    self.farthest
                        .push(earlier.iter().map(|e| e.seq_back).max().unwrap_or(0));
                    self.copy_bytes
                        .push(earlier.iter().map(|e| e.payload.len()).sum());
                }
                MediaDatagram::Report(r) => self.reports.push((now_us, r)),
                MediaDatagram::Features(_) => self.features += 1,
            }
        }
        self.log.push(TickLog {
            at_us: now_us,
            queued: self.speaker.len(),
            jitter: self.pipeline.jitter_stats(),
            media: self.pipeline.stats(),
        });
        datagrams
    }

    /// The speaker's output from `from_s` to `to_s` seconds of device time.
    pub(super) fn heard_between(&self, from_s: f64, to_s: f64) -> &[f32] {
        let at = |s: f64| ((s * f64::from(self.rate)) as usize).min(self.heard.len());
        &self.heard[at(from_s)..at(to_s)]
    }

    /// The log entry of the first tick at or after `at_us`.
    pub(super) fn log_at(&self, at_us: u64) -> TickLog {
        *self
            .log
            .iter()
            .find(|l| l.at_us >= at_us)
            .or(self.log.last())
            .expect("ticked")
    }
}

/// Two parties and the network between them.
pub(super) struct Sim {
    pub a: Party,
    pub b: Party,
    pub ab: Link,
    pub ba: Link,
    /// Packets sent outside `[from, to)` µs are never lost.
    pub lossy: (u64, u64),
    /// Reports never arrive: each side talks to a peer older than reports, which sends
    /// none (and so is never sent a redundant frame).
    pub no_reports: bool,
    /// Features never arrive: each side talks to a peer that reports but reads no deep
    /// copies (so is sent none).
    pub no_features: bool,
    /// A's frames with these sequence numbers are lost on the way, copies and all.
    pub lose_from_a: Vec<u32>,
    now_us: u64,
    order: u64,
}

impl Sim {
    /// A and B with `a_mic` and `b_mic` on a clean path (constant 30 ms transit).
    pub(super) fn new(a: Party, b: Party, seed: u64) -> Self {
        Self {
            a,
            b,
            ab: Link::new(Path::clean(TRANSIT_US), seed),
            ba: Link::new(Path::clean(TRANSIT_US), seed ^ 0x5eed),
            lossy: (0, u64::MAX),
            no_reports: false,
            no_features: false,
            lose_from_a: Vec::new(),
            now_us: 0,
            order: 0,
        }
    }

    /// Whether a datagram A sent is lost by the test's choice.
    fn dropped(&self, d: &[u8]) -> bool {
        match MediaDatagram::decode(d) {
            Ok(MediaDatagram::Report(_)) => self.no_reports,
            Ok(MediaDatagram::Features(_)) => self.no_reports || self.no_features,
            Ok(MediaDatagram::Frame(f)) => self.lose_from_a.contains(&f.seq),
            Ok(MediaDatagram::Redundant(r)) => self.lose_from_a.contains(&r.frame.seq),
            Err(_) => false,
        }
    }

    /// Runs the call until `seconds` of true time.
    pub(super) fn run_until(&mut self, seconds: f64) {
        let end = (seconds * S as f64) as u64;
        while self.now_us < end {
            self.now_us += MS;
            let now = self.now_us;
            let protected = !(self.lossy.0..self.lossy.1).contains(&now);
            for d in self.a.step(now) {
                if self.dropped(&d) {
                    continue;
                }
                for at in self.ab.carry(now, protected).into_iter().flatten() {
                    self.order += 1;
                    self.b.deliver(at, self.order, d.clone());
                }
            }
            for d in self.b.step(now) {
                let dropped = match MediaDatagram::decode(&d) {
                    Ok(MediaDatagram::Report(_)) => self.no_reports,
                    Ok(MediaDatagram::Features(_)) => self.no_reports || self.no_features,
                    _ => false,
                };
                if dropped {
                    continue;
                }
                for at in self.ba.carry(now, protected).into_iter().flatten() {
                    self.order += 1;
                    self.a.deliver(at, self.order, d.clone());
                }
            }
        }
    }
}

/// A talker made by hand: one second of a 1 kHz tone (−9 dBFS), Opus-encoded once and
/// sent over and over every 20 ms of its own (drifting) clock, with the sequence numbers
/// and timestamps the test chooses. A second of the tone is a whole number of periods, so
/// the replay is seamless.
pub(super) struct FarSide {
    packets: Vec<Vec<u8>>,
    sent: u64,
    pub seq: u32,
    pub timestamp: u32,
    /// The talker's clock error, ppm.
    pub drift_ppm: i64,
    frame: FrameDuration,
}

impl FarSide {
    pub(super) fn new() -> Self {
        Self::with_tone(1000.0, 0.5)
    }

    /// A talker of a `freq` tone at `amplitude` (a whole number of periods per second).
    pub(super) fn with_tone(freq: f64, amplitude: f64) -> Self {
        Self::with_frame(freq, amplitude, FrameDuration::Ms20)
    }

    /// [`Self::with_tone`] in frames of `frame`.
    pub(super) fn with_frame(freq: f64, amplitude: f64, frame: FrameDuration) -> Self {
        let mut encoder = VoiceEncoder::new(&EncoderConfig {
            complexity: ENCODER_COMPLEXITY,
            frame,
            ..EncoderConfig::default()
        })
        .expect("encoder");
        let signal = tone(48_000, 1.0, freq, amplitude);
        let mut packet = [0u8; MAX_PACKET_BYTES];
        // Two rounds: the second is encoded in the steady state the replay stays in.
        let per_second = 48_000 / frame.samples();
        let mut packets = Vec::new();
        for frame in signal
            .chunks_exact(frame.samples())
            .cycle()
            .take(2 * per_second)
        {
            let len = encoder
                .encode(frame, &mut packet)
                .expect("encode")
                .expect("a tone is not DTX");
            packets.push(packet[..len].to_vec());
        }
        packets.drain(..per_second);
        Self {
            packets,
            frame,
            sent: 0,
            seq: 0,
            timestamp: 0,
            drift_ppm: 0,
        }
    }

    /// True time at which the next frame is sent.
    fn next_at(&self) -> u64 {
        let clock = 1_000_000i64 + self.drift_ppm;
        let frame_us = i128::from(self.frame.millis()) * 1000;
        (self.sent as i128 * frame_us * 1_000_000 / clock as i128) as u64
    }

    /// The frame it sends.
    pub(super) fn frame(&self) -> FrameDuration {
        self.frame
    }

    /// The next frame as `source` of `call`.
    pub(super) fn next(&mut self, call: CallId, source: u32) -> Bytes {
        let payload = self.packets[self.sent as usize % self.packets.len()].clone();
        let frame = MediaFrame {
            call,
            source,
            seq: self.seq,
            timestamp: self.timestamp,
            level: 9,
            payload,
        };
        self.sent += 1;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.frame.samples() as u32);
        Bytes::from(frame.encode())
    }
}

/// Runs `listener` for `seconds` while `far` talks to it over a clean path (30 ms);
/// `change` may alter the talker before each frame, given the frame's send time.
pub(super) fn listen(
    listener: &mut Party,
    far: &mut FarSide,
    seconds: f64,
    mut change: impl FnMut(&mut FarSide, u64),
) {
    let end = (seconds * S as f64) as u64;
    let mut now = 0;
    while now < end {
        now += MS;
        while far.next_at() <= now {
            let at = far.next_at();
            change(far, at);
            let order = far.sent;
            listener.deliver(at + TRANSIT_US, order, far.next(CALL, 1));
        }
        listener.step(now);
    }
}

/// A's 1 kHz tone (−9 dBFS) for `seconds`, then silence; B silent.
fn one_way(seconds: f64, a_rate: u32, b_rate: u32, seed: u64) -> Sim {
    Sim::new(
        Party::new(1, a_rate, tone(a_rate, seconds, 1000.0, 0.5)),
        Party::new(2, b_rate, Vec::new()),
        seed,
    )
}

/// Asserts that `listener` heard a steady tone at −9 dBFS (±2 dB) between `from_s` and
/// `to_s`: no 20 ms window (at any offset) below −26 dBFS, and the energy at `freq`.
pub(super) fn assert_tone(listener: &Party, from_s: f64, to_s: f64, freq: f32) {
    let heard = listener.heard_between(from_s, to_s);
    let window = listener.rate as usize / 50;
    // A running sum of squares, so every offset is checked in one pass.
    let floor = window as f64 * 10f64.powf(-26.0 / 10.0);
    let mut energy: f64 = heard[..window].iter().map(|&x| f64::from(x).powi(2)).sum();
    for i in 0..heard.len() - window {
        assert!(
            energy >= floor,
            "gap: {:.1} dBFS in the 20 ms from {:.4} s",
            10.0 * (energy / window as f64).max(1e-12).log10(),
            from_s + i as f64 / f64::from(listener.rate)
        );
        energy += f64::from(heard[i + window]).powi(2) - f64::from(heard[i]).powi(2);
    }
    let span = listener.heard_between(from_s, to_s);
    let level = dbfs(span);
    assert!((level + 9.0).abs() < 2.0, "tone at {level:.1} dBFS");
    // A full-scale sine gives 0.25: all of a ±0.5 tone's energy is 0.0625.
    let power = goertzel_power(span, listener.rate as f32, freq);
    assert!(power > 0.05, "power at {freq} Hz: {power}");
}

/// Asserts that `listener` heard a continuous tone at `freq` (give or take the 1 Hz that
/// 1000 ppm of drift correction shift it by) between `from_s` and `to_s`: the gap and
/// level checks of [`assert_tone`], and in every `window_s` the energy at `freq` above
/// `min_power` (0.0625 is all of the tone's, 0.05 what [`assert_tone`] asks). For a tone
/// that was resampled to follow a drifting clock, which a single long Goertzel bin (an
/// exact frequency over seconds) would miss.
pub(super) fn assert_continuous_tone(
    listener: &Party,
    from_s: f64,
    to_s: f64,
    freq: f32,
    window_s: f64,
    min_power: f64,
) {
    let heard = listener.heard_between(from_s, to_s);
    let window = listener.rate as usize / 50;
    let floor = window as f64 * 10f64.powf(-26.0 / 10.0);
    let mut energy: f64 = heard[..window].iter().map(|&x| f64::from(x).powi(2)).sum();
    for i in 0..heard.len() - window {
        assert!(
            energy >= floor,
            "gap: {:.1} dBFS in the 20 ms from {:.4} s",
            10.0 * (energy / window as f64).max(1e-12).log10(),
            from_s + i as f64 / f64::from(listener.rate)
        );
        energy += f64::from(heard[i + window]).powi(2) - f64::from(heard[i]).powi(2);
    }
    let level = dbfs(heard);
    assert!((level + 9.0).abs() < 2.0, "tone at {level:.1} dBFS");
    let piece_len = (f64::from(listener.rate) * window_s) as usize;
    for (k, piece) in heard.chunks_exact(piece_len).enumerate() {
        let power = goertzel_power(piece, listener.rate as f32, freq);
        let at = from_s + k as f64 * window_s;
        assert!(
            power > min_power,
            "power at {freq} Hz in the window from {at:.1} s: {power}"
        );
    }
}

/// Frames the jitter buffer skipped, stretched or time-scaled, and frames concealed or
/// dropped, between two log entries: what clock drift costs a listener when nothing
/// corrects it.
fn drift_repairs(from: &TickLog, to: &TickLog) -> u64 {
    let (a, b) = (from, to);
    (b.jitter.skipped - a.jitter.skipped)
        + (b.jitter.stretched - a.jitter.stretched)
        + (b.jitter.expanded - a.jitter.expanded)
        + (b.jitter.accelerated - a.jitter.accelerated)
        + (b.jitter.dropped - a.jitter.dropped)
        + (b.media.concealed - a.media.concealed)
}

/// The log entry of the tick at which `listener` had played (or lost, or dropped) every
/// packet `talker` sent before `until_s`. Later, in the talker's DTX pause, the listener
/// conceals after each of the encoder's comfort-noise updates, as Opus means it to.
pub(super) fn when_played(talker: &Party, listener: &Party, until_s: f64) -> TickLog {
    let until = (until_s * S as f64) as u64;
    let sent = talker.sent.iter().filter(|(at, _)| *at < until).count() as u64;
    *listener
        .log
        .iter()
        .find(|l| l.jitter.played + l.jitter.lost + l.jitter.dropped >= sent)
        .unwrap_or_else(|| panic!("{sent} sent, {:?}", listener.log.last()))
}

mod tests;
