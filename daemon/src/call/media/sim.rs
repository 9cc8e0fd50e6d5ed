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

#[test]
fn a_clean_path_conceals_nothing_and_plays_the_tone_without_a_gap() {
    // Both ways at once, each side talking for 10 s; a 44.1 kHz sound card on one side.
    let mut sim = Sim::new(
        Party::new(1, 44_100, tone(44_100, 10.0, 1000.0, 0.5)),
        Party::new(2, 48_000, tone(48_000, 10.0, 700.0, 0.5)),
        1,
    );
    sim.run_until(10.5);
    for (talker, listener, freq) in [(&sim.a, &sim.b, 1000.0), (&sim.b, &sim.a, 700.0)] {
        let done = when_played(talker, listener, 10.0);
        let (j, m) = (done.jitter, done.media);
        assert!(m.decoded >= 495, "{m:?}");
        // Every packet decoded, in its turn: no loss, no FEC, no concealment, no skip.
        assert_eq!(
            (m.concealed, m.recovered, j.lost, j.late, j.dropped),
            (0, 0, 0, 0, 0),
            "{m:?} {j:?}"
        );
        assert_eq!(m.decoded, j.received - u64::from(j.buffered), "{m:?} {j:?}");
        assert_eq!(listener.decode_errors, 0);
        assert_eq!(listener.underruns, 0);
        assert_tone(listener, 0.5, 10.0, freq);
    }
}

#[test]
fn ten_percent_loss_is_recovered_or_concealed_and_the_call_recovers() {
    // Towards a receiver older than reports: plain frames, FEC and concealment.
    let mut sim = one_way(8.0, 48_000, 44_100, 2);
    sim.no_reports = true;
    sim.ab.path.loss = 0.10;
    sim.lossy = (S, 6 * S);
    sim.run_until(8.2);
    let sent_in_loss = sim
        .a
        .sent
        .iter()
        .filter(|(at, _)| (S..6 * S).contains(at))
        .count() as u64;
    let after_loss = when_played(&sim.a, &sim.b, 6.0);
    let (j, m) = (after_loss.jitter, after_loss.media);
    // About a tenth lost, and every lost frame filled by FEC or concealment.
    assert!(
        j.lost * 100 >= sent_in_loss * 7 && j.lost * 100 <= sent_in_loss * 13,
        "lost {} of {sent_in_loss}",
        j.lost
    );
    assert_eq!(m.recovered + m.concealed, j.lost, "{m:?} {j:?}");
    // Isolated losses are FEC's; only runs of two or more need concealment.
    assert!(m.recovered >= 2 * m.concealed, "{m:?}");
    // Then two seconds of a clean path: nothing more lost or concealed, the tone whole.
    let end = when_played(&sim.a, &sim.b, 8.0);
    assert_eq!(
        (end.jitter.lost, end.media.concealed),
        (j.lost, m.concealed),
        "{end:?}"
    );
    assert_tone(&sim.b, 6.5, 8.0, 1000.0);
    // Nothing but plain frames for a peer that never reported: it could read no other.
    assert!(sim.a.copies.iter().all(|&c| c == 0));
    assert_eq!(
        (
            m.reports_received,
            m.repaired,
            sim.a.pipeline.stats().redundancy
        ),
        (0, 0, 0)
    );
}

#[test]
fn duplicated_packets_are_dropped_and_nothing_is_concealed() {
    let mut sim = one_way(5.0, 48_000, 48_000, 3);
    sim.ab.path.duplicate = 0.3;
    sim.run_until(5.2);
    let end = when_played(&sim.a, &sim.b, 5.0);
    let (j, m) = (end.jitter, end.media);
    assert!(j.duplicates * 100 >= m.decoded * 20, "{j:?}");
    assert_eq!(
        m.decoded + j.duplicates,
        j.received - u64::from(j.buffered),
        "{m:?} {j:?}"
    );
    assert_eq!((m.concealed, j.dropped), (0, 0), "{m:?} {j:?}");
    assert_tone(&sim.b, 0.5, 5.0, 1000.0);
}

#[test]
fn reordering_within_the_jitter_target_conceals_nothing() {
    let mut sim = one_way(10.0, 48_000, 48_000, 4);
    // Up to 30 ms of jitter: packets 20 ms apart overtake each other.
    sim.ab.path.jitter_ms = 30;
    sim.run_until(10.2);
    let end = when_played(&sim.a, &sim.b, 10.0);
    let (j, m) = (end.jitter, end.media);
    assert!(j.target_ms >= 25, "{j:?}");
    assert_eq!((m.concealed, j.lost, j.late), (0, 0, 0), "{m:?} {j:?}");
    // The first packets set a base that the faster ones after them lower by up to the
    // jitter: the buffer may skip one frame to settle, before the listener hears much.
    let settled = sim.b.log_at(S);
    assert!(settled.jitter.dropped <= 1, "{settled:?}");
    assert_eq!(j.dropped, settled.jitter.dropped, "{j:?}");
    assert_eq!(
        m.decoded + j.dropped,
        j.received - u64::from(j.buffered),
        "{m:?} {j:?}"
    );
    assert_tone(&sim.b, 0.5, 10.0, 1000.0);
}

/// The speaker of the PipeWire call test: pipewire-pulse hands out room a 21.3 ms quantum
/// at a time, so the 20 ms blocks leave the queue 21.3 ms apart and every 16th at once, and
/// the pipeline pops that frame a whole frame early. The jitter buffer settles on the
/// earliest pops (one stretch at the first burst) and then plays every packet in turn.
#[test]
fn a_speaker_taking_audio_a_pipewire_quantum_at_a_time_plays_the_tone_whole() {
    let mut sim = one_way(10.0, 48_000, 48_000, 6);
    sim.b.speaker_quantum_us = 21_333;
    sim.run_until(10.2);
    let settled = sim.b.log_at(S);
    let end = when_played(&sim.a, &sim.b, 10.0);
    let (j, m) = (end.jitter, end.media);
    assert!((19..=22).contains(&j.playout_jitter_ms), "{j:?}");
    assert_eq!(
        (j.lost, j.dropped, j.skipped, m.concealed),
        (0, 0, 0, settled.media.concealed),
        "{m:?} {j:?}"
    );
    assert!(settled.media.concealed <= 1, "{settled:?}");
    // The first double block may find the queue a few samples short (the playback
    // resampler's first frame is shorter by its delay); from then on the queue covers it
    // (`demand.rs`).
    assert!(sim.b.underruns <= 1, "{}", sim.b.underruns);
    assert!(
        sim.b.last_underrun_us.is_none_or(|t| t < S),
        "{:?}",
        sim.b.last_underrun_us
    );
    assert_tone(&sim.b, 0.5, 10.0, 1000.0);
}

/// A speaker that stalls for 30 ms every 2 s and then takes the 30 ms at once (PulseAudio's
/// null sinks on a loaded machine): the first catch-up may find the queue short, after
/// which the queue covers it (`demand.rs`), so the listener hears no more gaps.
#[test]
fn a_speaker_that_catches_up_in_bursts_is_given_the_queue_it_needs() {
    let mut sim = one_way(10.0, 48_000, 48_000, 5);
    sim.b.speaker_stalls = Some((2 * S, 30 * MS));
    sim.run_until(10.2);
    // The catch-ups at 2, 4, 6 and 8 s find enough queued.
    assert!(
        sim.b.last_underrun_us.is_none_or(|t| t < 2 * S + 100 * MS),
        "{} underruns, the latest at {:?} µs",
        sim.b.underruns,
        sim.b.last_underrun_us
    );
    assert_tone(&sim.b, 2.5, 10.0, 1000.0);
}

/// A minute of a call between sound cards whose clocks differ by 200 ppm (12 ms over the
/// minute): the jitter buffer absorbs it, so neither the speaker's queue nor the delay
/// creeps up or runs dry. (The talker replays packets encoded once, so that a simulated
/// minute costs the decoding alone.)
#[test]
fn clock_drift_neither_grows_nor_empties_the_playback_queue() {
    for (far_ppm, b_ppm) in [(100, -100), (-100, 100)] {
        let mut b = Party::new(2, 48_000, Vec::new());
        b.drift_ppm = b_ppm;
        let mut far = FarSide::new();
        far.drift_ppm = far_ppm;
        listen(&mut b, &mut far, 60.0, |_, _| {});
        let why = format!("talker {far_ppm} ppm, listener {b_ppm} ppm");
        for l in b.log.iter().filter(|l| l.at_us >= S) {
            // Topped up to the speaker's 10 ms block each tick, never a frame above it (a
            // frame resampled to follow the talker's clock may be a sample or two longer
            // than 960, and one played longer by the jitter buffer up to 10 ms longer).
            let ms = l.at_us / MS;
            assert!(
                (480..480 + 962 + 480).contains(&l.queued),
                "{l:?} at {ms} ms, {why}"
            );
            assert!(l.jitter.delay_ms <= 60, "{l:?} at {ms} ms, {why}");
        }
        assert_eq!(b.underruns, 0, "{why}");
        // 12 ms of drift is at most one frame to skip or to stretch (with one frame of
        // concealment), or since time-scaling, rather a few frames played a pitch period
        // (2.5–10 ms) longer or shorter; nothing else is concealed.
        let (start, end) = (b.log_at(S), b.log_at(60 * S - 100 * MS));
        let stretched = end.jitter.stretched - start.jitter.stretched;
        let skipped = end.jitter.skipped - start.jitter.skipped;
        let scaled = end.jitter.expanded + end.jitter.accelerated
            - start.jitter.expanded
            - start.jitter.accelerated;
        assert!(stretched + skipped <= 1, "{end:?}, {why}");
        assert!(scaled <= 5, "{end:?}, {why}");
        assert_eq!(end.media.concealed, stretched, "{end:?}, {why}");
        assert_eq!(end.jitter.lost, 0, "{end:?}, {why}");
        // Resampled to follow the talker's clock: a tone 200 ppm off 1 kHz.
        // The one frame of concealment allowed above is a dip in a 200 ms window.
        assert_continuous_tone(&b, 0.5, 59.9, 1000.0, 0.2, 0.04);
    }
}

/// How long the drift estimator may take to measure a drift (`audio/drift.rs`: 22 s
/// until it trusts a slope, then a step or two to settle), s.
const LEARNT_S: u64 = 60;

/// Ten minutes of a far side whose sound card runs 300 ppm fast, then one 300 ppm slow
/// (180 ms over the call, nine frames), against a speaker on an exact clock: the playback
/// resampler learns the drift, so the jitter buffer never skips, stretches, conceals or
/// drops a frame for it, its delay stays within a frame above its target and the speaker's
/// queue at its 10 ms block.
#[test]
fn a_far_clock_300_ppm_off_is_followed_by_the_resampler_for_ten_minutes() {
    const MINUTES: u64 = 10;
    for far_ppm in [300, -300] {
        let mut b = Party::new(2, 48_000, Vec::new());
        let mut far = FarSide::new();
        far.drift_ppm = far_ppm;
        listen(&mut b, &mut far, MINUTES as f64 * 60.0, |_, _| {});
        let why = format!("talker {far_ppm} ppm");
        let (start, learnt) = (b.log_at(S), b.log_at(LEARNT_S * S));
        let end = b.log_at(MINUTES * 60 * S - 100 * MS);
        // While the drift is still unmeasured (20 s: 6 ms at 300 ppm), the delay may leave
        // its band: it starts anywhere in it (a band above a target that follows the
        // jitter), so up to three frames played a pitch period (at least 2.5 ms) shorter
        // or longer; after that, nothing.
        let learning = drift_repairs(&start, &learnt);
        assert!(learning <= 3, "{start:?} {learnt:?}, {why}");
        assert_eq!(drift_repairs(&learnt, &end), 0, "{learnt:?} {end:?}, {why}");
        assert_eq!((end.jitter.lost, b.underruns), (0, 0), "{end:?}, {why}");
        let mut worst = 0;
        for l in b.log.iter().filter(|l| l.at_us >= S) {
            let ms = l.at_us / MS;
            // Topped up to the 10 ms block; a corrected frame may be a sample or two over
            // 960, and one played longer while learning up to 10 ms.
            assert!(
                (480..480 + 962 + 480).contains(&l.queued),
                "{l:?} at {ms} ms, {why}"
            );
            // Once the drift is learnt: never stretching (below the target), never a
            // frame above it (shrinking). (While learning, the repairs above.)
            let above = i64::from(l.jitter.delay_ms) - i64::from(l.jitter.target_ms);
            if l.at_us >= LEARNT_S * S {
                assert!((0..20).contains(&above), "{l:?} at {ms} ms, {why}");
                worst = worst.max(above);
            }
        }
        // The learnt correction is the drift.
        let ppm = end.media.playback_drift_ppm;
        assert!((ppm - far_ppm as i32).abs() <= 15, "{ppm} ppm, {why}");
        assert_continuous_tone(
            &b,
            LEARNT_S as f64,
            MINUTES as f64 * 60.0 - 0.1,
            1000.0,
            0.1,
            0.05,
        );
        eprintln!("{why}: correction {ppm} ppm, delay at most {worst} ms above target");
    }
}

/// Ten minutes of a call where one side's 48 kHz microphone runs 200 ppm fast (then slow)
/// against the other's 44.1 kHz speaker on an exact clock: the listener's playback
/// resampler learns the drift and nothing is skipped, stretched, concealed or dropped.
#[test]
fn a_44k1_speaker_and_a_48k_microphone_200_ppm_apart_keep_their_queues_for_ten_minutes() {
    const MINUTES: u64 = 10;
    let seconds = MINUTES as f64 * 60.0;
    for a_ppm in [200, -200] {
        let mut a = Party::new(1, 48_000, tone(48_000, seconds, 1000.0, 0.5));
        a.drift_ppm = a_ppm;
        let b = Party::new(2, 44_100, Vec::new());
        let mut sim = Sim::new(a, b, 5);
        sim.run_until(seconds + 0.2);
        let why = format!("microphone {a_ppm} ppm");
        let (start, learnt) = (sim.b.log_at(S), sim.b.log_at(LEARNT_S * S));
        let end = when_played(&sim.a, &sim.b, seconds - 0.1);
        let learning = drift_repairs(&start, &learnt);
        assert!(learning <= 1, "{start:?} {learnt:?}, {why}");
        assert_eq!(drift_repairs(&learnt, &end), 0, "{learnt:?} {end:?}, {why}");
        assert_eq!((end.jitter.lost, sim.b.underruns), (0, 0), "{end:?}, {why}");
        let queue = 44_100 * 10 / 1000;
        for l in sim
            .b
            .log
            .iter()
            .filter(|l| (S..end.at_us).contains(&l.at_us))
        {
            let ms = l.at_us / MS;
            assert!(
                (queue..queue + 884).contains(&l.queued),
                "{l:?} at {ms} ms, {why}"
            );
            let above = i64::from(l.jitter.delay_ms) - i64::from(l.jitter.target_ms);
            assert!(above < 20, "{l:?} at {ms} ms, {why}");
        }
        // The listener learnt the talker's drift.
        let ppm = end.media.playback_drift_ppm;
        assert!((ppm - a_ppm as i32).abs() <= 15, "{end:?}, {why}");
        assert_continuous_tone(&sim.b, LEARNT_S as f64, seconds - 0.2, 1000.0, 0.1, 0.05);
    }
}

#[test]
fn with_reports_ten_percent_loss_is_repaired_from_copies_within_the_bitrate_cap() {
    let mut sim = one_way(8.0, 48_000, 44_100, 2);
    sim.ab.path.loss = 0.10;
    sim.lossy = (S, 6 * S);
    sim.run_until(8.2);
    let sent_in_loss = sim
        .a
        .sent
        .iter()
        .filter(|(at, _)| (S..6 * S).contains(at))
        .count() as u64;
    let after_loss = when_played(&sim.a, &sim.b, 6.0);
    let (j, m) = (after_loss.jitter, after_loss.media);
    // B reported about once a second, A took the reports and sent copies.
    assert!(
        (7..=9).contains(&sim.b.reports.len()),
        "{} reports",
        sim.b.reports.len()
    );
    let a = sim.a.pipeline.stats();
    assert!(a.reports_received >= 7, "{a:?}");
    assert!(sim.a.copies.contains(&1), "no copies sent");
    // The network lost about a tenth; copies repaired most of it (the first losses came
    // before the first report), FEC and concealment the rest.
    let network = j.lost + m.repaired;
    assert!(
        network * 100 >= sent_in_loss * 7 && network * 100 <= sent_in_loss * 13,
        "lost {network} of {sent_in_loss}"
    );
    assert!(m.repaired * 10 >= network * 6, "{m:?} {j:?}");
    assert_eq!(m.recovered + m.concealed, j.lost, "{m:?} {j:?}");
    assert!(m.concealed * 100 <= sent_in_loss * 2, "{m:?}");
    // Copies cost at most the cap: 1.6 times the bytes a second the same tone takes in
    // plain frames (datagrams whole, headers and all), and they are really sent.
    let rate = |sim: &Sim, from: f64, to: f64| {
        let at = |s: f64| sim.a.log_at((s * S as f64) as u64).media.sent_bytes;
        (at(to) - at(from)) as f64 / (to - from)
    };
    let mut plain = one_way(8.0, 48_000, 44_100, 2);
    plain.no_reports = true;
    plain.run_until(5.5);
    let (clean, protected) = (rate(&plain, 3.0, 5.5), rate(&sim, 3.0, 5.5));
    assert!(
        protected <= 1.6 * clean && protected >= 1.2 * clean,
        "{clean} B/s plain, {protected} B/s with copies"
    );
    assert_tone(&sim.b, 6.5, 8.0, 1000.0);
}

#[test]
fn a_single_lost_packet_is_played_from_the_next_datagrams_copy() {
    let mut sim = one_way(10.0, 48_000, 48_000, 9);
    // Loss from 1 to 3 s makes A send copies (kept for a hold after the loss ends); then
    // on a clean path exactly one frame is lost.
    sim.ab.path.loss = 0.10;
    sim.lossy = (S, 3 * S);
    sim.run_until(4.0);
    assert_eq!(
        sim.a.pipeline.stats().redundancy,
        1,
        "{:?}",
        sim.a.pipeline.stats()
    );
    let next = sim.a.sent.last().expect("sent").1.seq + 10;
    sim.lose_from_a = vec![next];
    sim.run_until(6.3);
    let before = when_played(&sim.a, &sim.b, 3.9);
    let after = when_played(&sim.a, &sim.b, 6.0);
    let (j0, m0, j1, m1) = (before.jitter, before.media, after.jitter, after.media);
    // Played from the copy: no loss at the jitter buffer, no FEC, no concealment.
    assert_eq!(m1.repaired - m0.repaired, 1, "{m1:?}");
    assert_eq!(
        (
            j1.lost - j0.lost,
            m1.recovered - m0.recovered,
            m1.concealed - m0.concealed
        ),
        (0, 0, 0),
        "{j1:?} {m1:?}"
    );
    assert_eq!(m1.decoded - m0.decoded, j1.played - j0.played);
    assert_tone(&sim.b, 4.2, 6.0, 1000.0);
}

#[test]
fn a_two_frame_loss_run_is_played_from_copies_two_frames_back() {
    let mut sim = one_way(10.0, 48_000, 48_000, 13);
    // Loss in runs of three from 1 to 4 s (about a tenth) makes A send one copy of each
    // frame two frames later (kept for a hold after the loss ends) to a peer that reads no
    // deep copies; then on a clean path exactly two frames in a row are lost.
    sim.no_features = true;
    sim.ab.path.burst = 0.035;
    sim.ab.path.burst_len = 3;
    sim.lossy = (S, 4 * S);
    sim.run_until(5.0);
    let a = sim.a.pipeline.stats();
    assert_eq!((a.redundancy, a.first_copy_back), (1, 2), "{a:?}");
    let next = sim.a.sent.last().expect("sent").1.seq + 10;
    sim.lose_from_a = vec![next, next + 1];
    sim.run_until(7.3);
    let before = when_played(&sim.a, &sim.b, 4.9);
    let after = when_played(&sim.a, &sim.b, 7.0);
    let (j0, m0, j1, m1) = (before.jitter, before.media, after.jitter, after.media);
    // Both played from their copies: no loss at the jitter buffer, no FEC, no concealment.
    assert_eq!(m1.repaired - m0.repaired, 2, "{m1:?}");
    assert_eq!(
        (
            j1.lost - j0.lost,
            m1.recovered - m0.recovered,
            m1.concealed - m0.concealed
        ),
        (0, 0, 0),
        "{j1:?} {m1:?}"
    );
    // Every datagram of the run carried one copy.
    let from = sim
        .a
        .sent
        .iter()
        .position(|(_, f)| f.seq == next)
        .expect("sent");
    assert!(sim.a.copies[from..from + 10].iter().all(|&c| c == 1));
    assert_tone(&sim.b, 5.2, 7.0, 1000.0);
}

/// What [`a_loss_run_after_bursts`] found: B's jitter buffer and pipeline counts over the
/// run, how far back A's copies were then, and the mean bytes of A's frames and of each
/// copy then.
struct RunAfterBursts {
    jitter: JitterStats,
    media: MediaStats,
    farthest: Vec<u8>,
    frame_bytes: f64,
    copy_bytes: f64,
}

/// Loss in runs of three from 1 to 4 s, then exactly `run` frames in a row lost on a clean
/// path (while the copies against the bursts are still sent): see [`RunAfterBursts`].
fn a_loss_run_after_bursts(run: u32, no_features: bool) -> RunAfterBursts {
    let mut sim = one_way(10.0, 48_000, 48_000, 13);
    sim.no_features = no_features;
    sim.ab.path.burst = 0.035;
    sim.ab.path.burst_len = 3;
    sim.lossy = (S, 4 * S);
    sim.run_until(5.0);
    let next = sim.a.sent.last().expect("sent").1.seq + 10;
    sim.lose_from_a = (next..next + run).collect();
    sim.run_until(7.3);
    let before = when_played(&sim.a, &sim.b, 4.9);
    let after = when_played(&sim.a, &sim.b, 7.0);
    let mut jitter = after.jitter;
    jitter.lost -= before.jitter.lost;
    let mut media = after.media;
    media.repaired -= before.media.repaired;
    media.recovered -= before.media.recovered;
    media.concealed -= before.media.concealed;
    let from = sim
        .a
        .sent
        .iter()
        .position(|(_, f)| f.seq == next)
        .expect("sent");
    let farthest = sim.a.farthest[from..from + 10].to_vec();
    let frames = &sim.a.sent[from..from + 10];
    let frame_bytes =
        frames.iter().map(|(_, f)| f.payload.len()).sum::<usize>() as f64 / frames.len() as f64;
    let copies: usize = sim.a.copies[from..from + 10].iter().sum();
    let copy_bytes =
        sim.a.copy_bytes[from..from + 10].iter().sum::<usize>() as f64 / copies.max(1) as f64;
    if !no_features {
        assert_tone(&sim.b, 5.2, 7.0, 1000.0);
    }
    RunAfterBursts {
        jitter,
        media,
        farthest,
        frame_bytes,
        copy_bytes,
    }
}

#[test]
fn a_loss_run_as_long_as_the_deep_copies_reach_is_played_from_the_low_rate_copies() {
    let deep = super::adapt::DEEP_SPREAD;
    let run = u32::from(deep.last_back());
    assert!(run >= 3, "deep copies reach beyond the lone copy two back");
    let r = a_loss_run_after_bursts(run, false);
    let (j, m) = (r.jitter, r.media);
    // A's features-reading peer got deep copies, re-encoded at the copies' low bitrate
    // (each smaller than the frame that carries it); every frame of the run played from
    // them: no loss at the jitter buffer, no FEC, no concealment.
    assert!(
        r.farthest.iter().all(|&b| b == run as u8),
        "{:?}",
        r.farthest
    );
    assert!(deep.copy_bitrate_bps > 0);
    assert!(
        r.copy_bytes < r.frame_bytes * 0.7,
        "copies {} B, frames {} B",
        r.copy_bytes,
        r.frame_bytes
    );
    assert_eq!(m.repaired, u64::from(run), "{m:?}");
    assert_eq!((j.lost, m.recovered, m.concealed), (0, 0, 0), "{j:?} {m:?}");
}

#[test]
fn a_peer_that_reads_no_deep_copies_gets_none_and_loses_the_run_beyond_two() {
    let run = u32::from(super::adapt::DEEP_SPREAD.last_back());
    let r = a_loss_run_after_bursts(run, true);
    let (j, m) = (r.jitter, r.media);
    // Without the far side's features: the lone copy two back, every reader's kind, the
    // packet as sent (the frames two before those carrying them: about as long).
    assert!(r.farthest.iter().all(|&b| b == 2), "{:?}", r.farthest);
    assert!(
        r.copy_bytes > r.frame_bytes * 0.9,
        "copies {} B, frames {} B",
        r.copy_bytes,
        r.frame_bytes
    );
    assert_eq!(m.repaired, 2, "{m:?}");
    assert!(j.lost + m.recovered + m.concealed > 0, "{j:?} {m:?}");
}

#[test]
fn under_bursts_the_deep_copies_cost_at_most_the_cap() {
    // Runs of three from 1 to 6 s: A sends deep copies re-encoded at a low bitrate. What it
    // sends then is at most 1.6 times what the same voice takes in plain frames (datagrams
    // whole, headers and all). A voice, not a tone: Opus at 10 kbit/s spends half as much
    // again on a steady tone.
    let talker = || {
        let voice = super::speech_sim::speech_with_pauses(48_000, 8.0, 8.0, 0.0);
        Sim::new(
            Party::new(1, 48_000, voice),
            Party::new(2, 48_000, Vec::new()),
            13,
        )
    };
    let mut sim = talker();
    sim.ab.path.burst = 0.035;
    sim.ab.path.burst_len = 3;
    sim.lossy = (S, 6 * S);
    sim.run_until(6.0);
    let deep = super::adapt::DEEP_SPREAD;
    let a = sim.a.pipeline.stats();
    assert_eq!(
        (a.redundancy, a.first_copy_back, a.copy_bitrate_bps),
        (deep.count, deep.first_back, deep.copy_bitrate_bps),
        "{a:?}"
    );
    let rate = |sim: &Sim, from: f64, to: f64| {
        let at = |s: f64| sim.a.log_at((s * S as f64) as u64).media.sent_bytes;
        (at(to) - at(from)) as f64 / (to - from)
    };
    let mut plain = talker();
    plain.no_reports = true;
    plain.run_until(6.0);
    let (clean, protected) = (rate(&plain, 3.5, 6.0), rate(&sim, 3.5, 6.0));
    assert!(
        protected <= 1.6 * clean && protected >= 1.2 * clean,
        "{clean} B/s plain, {protected} B/s with deep copies"
    );
}
