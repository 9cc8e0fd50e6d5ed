//! One call's media decisions, sans-IO: [`MediaPipeline::tick`] takes the time, the samples
//! the microphone delivered since the last tick, the datagrams that came from the relay, how
//! full the playback device is and the call's mute/hold flags, and returns the datagrams to
//! send, the samples to queue for playback and what happened ([`MediaEvent`]). It owns the
//! encoder, the decoder, the jitter buffer and both resamplers; no clock, no thread, no
//! socket, so `sim.rs` runs two of them through a simulated network on virtual time.
//!
//! What it decides, tick by tick:
//! - **Send.** Captured samples become 20 ms 48 kHz frames, each Opus-encoded into a
//!   [`MediaFrame`] datagram. Muted: silence is encoded (the encoder's DTX then sends almost
//!   nothing). On hold: nothing is sent, but the timestamp keeps counting, so the far side
//!   sees a pause, not loss. Sequence numbers count packets sent, so a DTX pause (a
//!   timestamp gap with no sequence gap) is not taken for loss.
//! - **Receive.** Datagrams of this call from another source go into the jitter buffer;
//!   anything else is counted as foreign and dropped. When the buffer resyncs (the far side
//!   restarted its stream: a sequence jump, a clock jump), the decoder is reset, so it does
//!   not carry the old stream's state into the new one.
//! - **Play.** While the device has less queued than [`playback_queue`](super::playback_queue) asks (more for a
//!   device that takes audio in bursts: [`Demand`]), one frame is
//!   popped from the jitter buffer, decoded (packet, FEC or concealment; silence) and
//!   resampled to the device rate. Between talkspurts the jitter buffer may ask for a shorter
//!   silence ([`JitterBuffer::rephase_us`]) to bring the delay down. On hold, silence is
//!   played and the jitter buffer is left alone.
//! - **Clock drift.** A [`DriftEstimator`] steers the playback resampler's ratio, so
//!   that the jitter buffer's delay neither creeps up (the far side's capture clock
//!   faster than our playback clock: the buffer would skip a frame, every 67 s at
//!   300 ppm) nor down (it would stretch, concealing in speech). After each pop it is fed
//!   the buffer's delay less its target; its correction makes [`FromNetwork`] produce
//!   fewer (or more) device samples per frame. The delay is held 7.5 ms above the target
//!   (between stretching below the target and skipping a frame above it); a clean path
//!   is left alone at a ratio of exactly 1.0. When the buffer moves its delay itself
//!   (skips, stretches, rephases, restarts) the estimator settles anew, keeping the
//!   drift it measured. The capture side is not steered: its ring is drained every tick,
//!   so no queue grows there, and steering it to our monotonic clock was measured to
//!   make the far side's estimator learn a drift that then went away (see
//!   `docs/architecture.md`).
//!
//! After [`MediaPipeline::new`] a tick allocates only the datagrams it sends (quinn takes
//! ownership of each) and the frames it decodes from the wire; its output buffers are reused.

use std::time::Duration;

use bytes::Bytes;
use phoned_proto::call::CallId;
use phoned_proto::media::MediaFrame;

use super::demand::Demand;
use super::{ENCODER_COMPLEXITY, PLAYBACK_QUEUE_MIN_MS};
use crate::audio::codec::{
    CodecError, EncoderConfig, FrameDuration, MAX_PACKET_BYTES, VoiceDecoder, VoiceEncoder,
    speech_level,
};
use crate::audio::drift::{DriftConfig, DriftEstimator};
use crate::audio::jitter::{JitterBuffer, JitterConfig, JitterConfigError, JitterStats, Playout};
use crate::audio::resample::{FRAME, FromNetwork, ResampleError, ToNetwork};

/// Where the receive side holds the jitter buffer's delay, µs above its target. The delay
/// moves in 5 ms steps (the tick); with the estimator's 3 ms dead band around this, the
/// steps at 5 and 10 ms are left alone (a clean path there keeps a ratio of exactly 1.0)
/// and the ones at 0 (the next step down stretches) and 15 (the next step up skips) are
/// pushed back.
const PLAYBACK_DRIFT_SETPOINT_US: i64 = 7_500;

/// Why a pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Jitter(#[from] JitterConfigError),
}

/// The call's switches, read by the caller before each tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// Send silence instead of the microphone.
    pub muted: bool,
    /// On hold: send nothing and play silence, with the devices kept open.
    pub paused: bool,
}

/// The playback device as the tick finds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Device {
    /// Samples queued for the device and not yet played.
    pub queued: usize,
    /// Samples the device took in its latest callback or period (see [`playback_queue`](super::playback_queue)).
    pub last_block: u64,
}

/// Something a tick did that the caller may want to log or count.
#[derive(Debug)]
pub enum MediaEvent {
    /// The far side's stream restarted; the decoder was reset.
    DecoderReset,
    /// A frame could not be encoded; nothing was sent for it.
    EncodeFailed(CodecError),
    /// A packet could not be decoded; silence was played for it.
    DecodeFailed(CodecError),
    /// Resampling failed; the rest of this tick's capture or playback was skipped.
    ResampleFailed(ResampleError),
}

/// What one tick produced. The buffers belong to the pipeline and are cleared by the next
/// tick; drain or copy them before.
#[derive(Debug, Default)]
pub struct TickOutput {
    /// Encoded [`MediaFrame`]s to send, oldest first.
    pub datagrams: Vec<Bytes>,
    /// Samples at the playback device's rate to queue.
    pub playback: Vec<f32>,
    pub events: Vec<MediaEvent>,
}

impl TickOutput {
    fn clear(&mut self) {
        self.datagrams.clear();
        self.playback.clear();
        self.events.clear();
    }
}

/// Counters for the end-of-call log, the call's quality (`quality.rs`) and the tests; the
/// jitter buffer's own are in [`MediaPipeline::jitter_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Packets sent.
    pub sent: u64,
    /// Datagrams received, foreign ones included.
    pub datagrams: u64,
    /// Datagrams that were not a frame of this call from another source.
    pub foreign: u64,
    /// Highest jitter buffer delay seen after a tick, ms.
    pub max_delay_ms: u32,
    /// Times the decoder was reset for a restarted far-side stream.
    pub decoder_resets: u64,
    /// Frames played from their own packet.
    pub decoded: u64,
    /// Lost frames recovered with FEC from the next packet.
    pub recovered: u64,
    /// Frames of Opus concealment played (loss without FEC, or the jitter buffer
    /// stretching in speech).
    pub concealed: u64,
    /// Frames of silence played: before the far side's first packet, in its DTX pauses,
    /// on hold, after a decode error.
    pub silent: u64,
    /// The playback resampler's drift correction now, ppm: positive when the far side's
    /// clock runs faster than our playback device's.
    pub playback_drift_ppm: i32,
    /// Bytes of the datagrams sent (`MediaFrame`s with their header).
    pub sent_bytes: u64,
    /// Bytes of the datagrams received that were frames of this call.
    pub received_bytes: u64,
}

/// One call's media pipeline; see the module docs.
///
/// ```
/// use std::time::Duration;
/// use phoned::call::media::{Device, Flags, MediaPipeline};
///
/// let mut media = MediaPipeline::new(7, 1, 48_000, 48_000)?;
/// let mic = [0f32; 960]; // 20 ms from the microphone
/// let received: [&[u8]; 0] = []; // nothing from the relay yet
/// let out = media.tick(Duration::ZERO, &mic, received, Device::default(), Flags::default());
/// for datagram in out.datagrams.drain(..) {
///     // send it to the relay
/// #   let _ = datagram;
/// }
/// // The empty speaker is topped up with a frame of silence (less the few samples the
/// // resampler holds back for its interpolation).
/// assert!((950..=960).contains(&out.playback.len()));
/// # Ok::<(), phoned::call::media::PipelineError>(())
/// ```
pub struct MediaPipeline {
    call: CallId,
    source: u32,
    playback_rate: u32,
    to_net: ToNetwork,
    from_net: FromNetwork,
    encoder: VoiceEncoder,
    decoder: VoiceDecoder,
    jitter: JitterBuffer,
    seq: u32,
    timestamp: u32,
    /// The jitter buffer's resync count when the decoder was last reset.
    resyncs: u64,
    /// Drift of the far side's clock against the playback device's (see the module docs).
    playback_drift: DriftEstimator,
    frame: [f32; FRAME],
    decoded: [f32; FRAME],
    packet: [u8; MAX_PACKET_BYTES],
    out: TickOutput,
    stats: MediaStats,
    /// How much the playback device takes at once (the queue kept for it).
    demand: Demand,
}

impl MediaPipeline {
    /// A pipeline for `call`, sending as `source`, between a microphone at `capture_rate`
    /// and a speaker at `playback_rate`.
    pub fn new(
        call: CallId,
        source: u32,
        capture_rate: u32,
        playback_rate: u32,
    ) -> Result<MediaPipeline, PipelineError> {
        let mut out = TickOutput::default();
        // Room for a tick's worth at the smallest queue (up to a frame beyond it, plus one
        // for a trimmed silence); a device with longer blocks grows it once, early on.
        let ms = |ms: usize| playback_rate as usize * ms / 1000;
        out.playback.reserve(ms(PLAYBACK_QUEUE_MIN_MS) + ms(40));
        out.datagrams.reserve(4);
        out.events.reserve(4);
        Ok(MediaPipeline {
            call,
            source,
            playback_rate,
            to_net: ToNetwork::new(capture_rate)?,
            from_net: FromNetwork::new(playback_rate)?,
            encoder: VoiceEncoder::new(&EncoderConfig {
                complexity: ENCODER_COMPLEXITY,
                ..EncoderConfig::default()
            })?,
            decoder: VoiceDecoder::new(FrameDuration::Ms20)?,
            jitter: JitterBuffer::new(JitterConfig::default())?,
            seq: 0,
            timestamp: 0,
            resyncs: 0,
            playback_drift: DriftEstimator::new(DriftConfig {
                anchor_within: Some((PLAYBACK_DRIFT_SETPOINT_US, PLAYBACK_DRIFT_SETPOINT_US)),
                ..DriftConfig::default()
            }),
            frame: [0.0; FRAME],
            decoded: [0.0; FRAME],
            packet: [0; MAX_PACKET_BYTES],
            out,
            stats: MediaStats::default(),
            demand: Demand::default(),
        })
    }

    /// Runs one tick at `now` (on any monotonic clock, the same for every tick): sends what
    /// `captured` completes, buffers `received`, and tops the playback device up to
    /// [`playback_queue`](super::playback_queue).
    pub fn tick<D: AsRef<[u8]>>(
        &mut self,
        now: Duration,
        captured: &[f32],
        received: impl IntoIterator<Item = D>,
        device: Device,
        flags: Flags,
    ) -> &mut TickOutput {
        self.out.clear();
        let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
        self.to_net.push(captured);
        self.send(flags);
        // Counted here, not in `send`: whatever it makes of a frame, this is what goes out.
        let sent: usize = self.out.datagrams.iter().map(Bytes::len).sum();
        self.stats.sent_bytes += sent as u64;
        self.receive(now_us, received);
        self.play(now_us, device, flags.paused);
        self.stats.max_delay_ms = self.stats.max_delay_ms.max(self.jitter.stats().delay_ms);
        &mut self.out
    }

    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    pub fn jitter_stats(&self) -> JitterStats {
        self.jitter.stats()
    }

    pub fn jitter_config(&self) -> &JitterConfig {
        self.jitter.config()
    }

    pub fn playback_rate(&self) -> u32 {
        self.playback_rate
    }

    /// The microphone now runs at `rate` (a device reopened mid-call): a new resampler.
    pub fn set_capture_rate(&mut self, rate: u32) -> Result<(), PipelineError> {
        self.to_net = ToNetwork::new(rate)?;
        Ok(())
    }

    /// The speaker now runs at `rate` (a device reopened mid-call): a new resampler.
    pub fn set_playback_rate(&mut self, rate: u32) -> Result<(), PipelineError> {
        self.from_net = FromNetwork::new(rate)?;
        self.playback_rate = rate;
        Ok(())
    }

    /// Capture → 48 kHz frames → Opus → datagrams.
    fn send(&mut self, flags: Flags) {
        loop {
            match self.to_net.pop_frame(&mut self.frame) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.out.events.push(MediaEvent::ResampleFailed(e));
                    break;
                }
            }
            if flags.paused {
                // Keep the sample clock running so the far side sees a pause, not loss.
                self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
                continue;
            }
            if flags.muted {
                self.frame.fill(0.0);
            }
            let level = speech_level(&self.frame);
            match self.encoder.encode(&self.frame, &mut self.packet) {
                Ok(Some(len)) => {
                    let frame = MediaFrame {
                        call: self.call,
                        source: self.source,
                        seq: self.seq,
                        timestamp: self.timestamp,
                        level,
                        payload: self.packet[..len].to_vec(),
                    };
                    self.out.datagrams.push(Bytes::from(frame.encode()));
                    // Sequence numbers count packets sent, so that a DTX pause (a
                    // timestamp gap with no sequence gap) is not taken for loss.
                    self.seq = self.seq.wrapping_add(1);
                    self.stats.sent += 1;
                }
                Ok(None) => {} // DTX: nothing worth sending.
                Err(e) => self.out.events.push(MediaEvent::EncodeFailed(e)),
            }
            self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        }
    }

    /// Steers the playback resampler from the jitter buffer's delay after a pop.
    fn follow_far_clock(&mut self, now_us: u64) {
        let Some((delay_us, target_us)) = self.jitter.delay_and_target_us() else {
            return;
        };
        let ppm = self.playback_drift.update(now_us, delay_us - target_us);
        self.stats.playback_drift_ppm = ppm;
        if let Err(e) = self.from_net.set_drift_ppm(ppm) {
            self.out.events.push(MediaEvent::ResampleFailed(e));
        }
    }

    /// Datagrams → jitter buffer.
    fn receive<D: AsRef<[u8]>>(&mut self, now_us: u64, received: impl IntoIterator<Item = D>) {
        for datagram in received {
            self.stats.datagrams += 1;
            match MediaFrame::decode(datagram.as_ref()) {
                Ok(f) if f.call == self.call && f.source != self.source => {
                    self.stats.received_bytes += datagram.as_ref().len() as u64;
                    self.jitter.push(now_us, f.seq, f.timestamp, &f.payload);
                }
                _ => self.stats.foreign += 1,
            }
        }
        // A restarted source starts a new stream: the decoder must not carry the old one's
        // state.
        let resyncs = self.jitter.stats().resyncs;
        if resyncs != self.resyncs {
            self.resyncs = resyncs;
            if let Err(e) = self.decoder.reset() {
                self.out.events.push(MediaEvent::DecodeFailed(e));
            }
            self.stats.decoder_resets += 1;
            self.out.events.push(MediaEvent::DecoderReset);
            // A new stream settles anew; the clocks' drift is what it was.
            self.playback_drift.restart();
        }
    }

    /// Jitter buffer → Opus → device rate, keeping a small queue at the device.
    fn play(&mut self, now_us: u64, device: Device, paused: bool) {
        let queue = self
            .demand
            .queue(now_us, device.queued, device.last_block, self.playback_rate);
        let mut queued = device.queued;
        if paused {
            // After a hold the buffer finds its delay anew.
            self.playback_drift.restart();
        }
        while queued < queue {
            let mut trim = 0;
            if paused {
                self.decoded.fill(0.0);
                self.stats.silent += 1;
            } else {
                let before = self.jitter.stats();
                let stats = &mut self.stats;
                let result = match self.jitter.pop(now_us) {
                    Playout::Packet(p) => {
                        stats.decoded += 1;
                        self.decoder.decode(p, &mut self.decoded)
                    }
                    Playout::Fec(p) => {
                        stats.recovered += 1;
                        self.decoder.decode_fec(p, &mut self.decoded)
                    }
                    Playout::Conceal => {
                        stats.concealed += 1;
                        self.decoder.conceal(&mut self.decoded)
                    }
                    Playout::Silence => {
                        stats.silent += 1;
                        self.decoded.fill(0.0);
                        Ok(())
                    }
                };
                // Between talkspurts, a shorter silence brings the delay down to target.
                trim = self.jitter.rephase_us() as usize * self.playback_rate as usize / 1_000_000;
                // Did the buffer move its own delay (once playing: not the start-up wait)?
                let after = self.jitter.stats();
                let moved = before.played > 0
                    && (trim > 0
                        || after.skipped != before.skipped
                        || after.stretched != before.stretched);
                if let Err(e) = result {
                    self.out.events.push(MediaEvent::DecodeFailed(e));
                    self.decoded.fill(0.0);
                }
                if moved {
                    self.playback_drift.restart();
                } else {
                    self.follow_far_clock(now_us);
                }
            }
            let out = match self.from_net.process(&self.decoded) {
                Ok(out) => &out[..out.len().saturating_sub(trim)],
                Err(e) => {
                    self.out.events.push(MediaEvent::ResampleFailed(e));
                    break;
                }
            };
            self.out.playback.extend_from_slice(out);
            if out.is_empty() {
                break; // Never spin on a resampler that gives nothing.
            }
            queued += out.len();
        }
        self.demand.wrote(queued);
    }
}
