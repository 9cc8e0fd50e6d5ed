//! One call's media decisions, sans-IO: [`MediaPipeline::tick`] takes the time, the samples
//! the microphone delivered since the last tick, the datagrams that came from the relay, how
//! full the playback device is and the call's mute/hold flags, and returns the datagrams to
//! send, the samples to queue for playback and what happened ([`MediaEvent`]). It owns the
//! encoder, the decoder, the jitter buffer and both resamplers; no clock, no thread, no
//! socket, so `sim.rs` runs two of them through a simulated network on virtual time.
//!
//! The media thread ticks it whenever a device moved a block or a datagram came (and at
//! least every [`TICK`](super::TICK)), so nothing waits for a timer. What it decides, tick
//! by tick (each part in its own file beside this one: `send.rs`, `receive.rs`, `play.rs`):
//! - **Send.** Captured samples become 48 kHz frames of 20 ms, or 10 ms
//!   ([`MediaPipeline::with_frame`], `[audio] frame_ms`), each Opus-encoded into a
//!   [`MediaFrame`] datagram. Muted: silence is encoded (the encoder's DTX then sends almost
//!   nothing). On hold: nothing is sent, but the timestamp keeps counting, so the far side
//!   sees a pause, not loss. Sequence numbers count packets sent, so a DTX pause (a
//!   timestamp gap with no sequence gap) is not taken for loss.
//! - **Adapt.** The far side's [`MediaReport`](phoned_proto::media::MediaReport)s (loss, jitter, delay, once a second) go to
//!   the [`Adapter`], which sets the encoder's bitrate and in-band FEC and how many earlier
//!   frames each datagram carries again ([`RedundantFrame`]); a peer that never reports
//!   (one older than reports) is never sent a redundant frame, which it could not read.
//!   Deep copies against bursts are re-encoded at a low bitrate by a second encoder, which
//!   runs only while such copies are sent (every frame then, DTX or not, so that its state
//!   follows the speech). Our features go to the far side with its first frame and with
//!   each report.
//! - **Receive.** Frames of this call from another source go into the jitter buffer, and
//!   the copies of earlier frames a redundant frame carries fill the ones still missing
//!   ([`JitterBuffer::fill`]). The [`ReceptionMeter`] counts what arrived, and once a
//!   second a report of it goes back. Anything else is counted as foreign and dropped.
//!   When the buffer resyncs (the far side restarted its stream: a sequence jump, a clock
//!   jump), the decoder is reset, so it does not carry the old stream's state into the new
//!   one. The far side's frames are played in whatever length they come (10 or 20 ms,
//!   read from the Opus header): a packet of the other length sets the jitter buffer, the
//!   decoder and the playback resampler up for it, as for a restarted stream.
//! - **Jitter floor.** The jitter buffer's target is the latest packet of the last 5 s
//!   over the fastest, plus 2 ms, with no floor of its own once it knows the path: on a
//!   clean path a few ms. Its floor is a frame at first (until packets have come for 2 s
//!   and a pause lets it come down by skipping silence), and while packets are lost (10 s
//!   after the last), so that the next packet, with the lost one's FEC or a copy of it, is
//!   there in time; while copies come *k* ≥ 2 frames late and frames are lost, *k* frames
//!   and the jitter, for deep copies (three or more back) only once the network lost a
//!   run of three frames in a row (`copies_floor.rs`, the rule the conference streams
//!   share; `loss_runs.rs`). When jitter appears, the buffer grows by playing speech
//!   longer: a pitch period per frame, or in a quiet frame as much as the target asks
//!   at once.
//! - **Play.** While the device has less queued than [`playback_queue`](super::playback_queue)
//!   asks (its block, or more for a device that takes audio in bursts: [`Demand`]), one
//!   frame is popped from the jitter buffer, decoded (packet, FEC or concealment;
//!   silence) and resampled to the device rate. The pops thus come when the device has
//!   taken a block, and what is written then waits a block at the device. To move its delay in speech the jitter buffer asks for a
//!   frame to be played a pitch period longer or shorter ([`JitterBuffer::scale`]): the
//!   [`TimeScaler`] does it on the resampled frame, and the device then asks for the next
//!   frame that much later or sooner. A quiet frame (−40 dBFS or less) asked to play
//!   longer is played as much longer as the buffer's target asks, up to eight pitch
//!   periods ([`TimeScaler::scale_times`]): a floor raised by 100 ms for deep copies is
//!   then reached in a pause of the speech rather than by a stretch in each frame of it.
//!   Between talkspurts a shorter silence brings the
//!   delay down ([`JitterBuffer::rephase_excess_us`]): what waits at the device before the
//!   frame beyond its next block, and whole blocks of the buffer's excess (a block less
//!   at the device makes it ask a pop sooner). On hold, silence is played and the jitter
//!   buffer is left alone.
//! - **Clock drift.** A [`DriftEstimator`] steers the playback resampler's ratio, so
//!   that the jitter buffer's delay neither creeps up (the far side's capture clock
//!   faster than our playback clock: the buffer would skip a frame, every 67 s at
//!   300 ppm) nor down (it would stretch, concealing in speech). After each pop it is fed
//!   the playout delay: the buffer's delay at the pop and what waits at the device before
//!   the frame (the pops come in device blocks, so the first moves in steps of a block
//!   that the second takes up); its correction makes [`FromNetwork`] produce fewer (or
//!   more) device samples per frame. Where it settled, the playout delay is held; while
//!   the clocks drift, mid-way between a block above the target and the top of the
//!   buffer's band (widened to two blocks then), so the steps stay inside it. A clean
//!   path is left alone at a ratio of exactly 1.0. When the buffer moves its delay itself
//!   (skips, stretches, time-scales, rephases, restarts) the estimator settles anew, keeping the
//!   drift it measured. The capture side is not steered: its ring is drained every tick,
//!   so no queue grows there, and steering it to our monotonic clock was measured to
//!   make the far side's estimator learn a drift that then went away (see
//!   `docs/architecture.md`).
//!
//! - **Conferences.** The relay forwards up to three speakers of a room. The first far
//!   source plays through all of the above; the others each get a jitter buffer and a
//!   decoder ([`Extras`], popped in step with the first), are summed into its frame and
//!   pass a soft limiter, so the mix never clips. While another speaker sounds, no frame is
//!   shortened to rephase. Each of them plays in its own frame length (10 or 20 ms) and
//!   keeps a jitter floor of a frame (see `streams.rs`).
//!
//! After [`MediaPipeline::new`] a tick allocates only the datagrams it sends (quinn takes
//! ownership of each), the frames it decodes from the wire, and, once per new far source
//! of a conference, that source's jitter buffer and decoder; its output buffers are reused.

use std::time::Duration;

use bytes::Bytes;
use phoned_proto::call::CallId;
use phoned_proto::media::{
    Earlier, FEATURE_DEEP_COPIES, MAX_SEQ_BACK_DEEP, MediaDatagram, MediaFeatures, MediaFrame,
    RedundantFrame,
};

use super::adapt::{Adapter, DEEP_COPY_BITRATE_BPS, Settings, Thresholds};
use super::copies_floor::{CopiesBack, JITTER_MARGIN_MS, LOSS_HOLD_US};
use super::demand::Demand;
use super::report::ReceptionMeter;
use super::speakers::{Speakers, Speaking};
use super::streams::{Extras, STALE_US, Taken, soft_clip};
use super::{CALL_BITRATE_BPS, ENCODER_COMPLEXITY, PLAYBACK_QUEUE_MIN_MS};
use crate::audio::codec::{
    CodecError, EncoderConfig, FrameDuration, MAX_PACKET_BYTES, VoiceDecoder, VoiceEncoder,
    speech_level,
};
use crate::audio::drift::{DriftConfig, DriftEstimator};
use crate::audio::jitter::{
    JitterBuffer, JitterConfig, JitterConfigError, JitterStats, Playout, Push,
};
use crate::audio::resample::{FRAME, FromNetwork, NETWORK_RATE, ResampleError, ToNetwork};
use crate::audio::timescale::{MAX_EXPAND_TIMES, MAX_LAG_US, Scale, TimeScaler};

mod play;
mod receive;
mod send;

/// How long the jitter buffer's window looks back, ms: its target covers the latest
/// packet of that long, so a short stall of the sender, the relay or this machine (a
/// packet or two 10–30 ms late, now and then) is covered for that long once seen, rather
/// than being left out of a percentile and concealed each time.
const JITTER_WINDOW_MS: u32 = 5_000;
/// The jitter buffer knows the path once packets have come for this long, µs, and at
/// least [`PATH_LEARNT_PACKETS`]: until then (and the next pause) its floor is a frame.
const PATH_LEARNT_US: u64 = 2_000_000;
const PATH_LEARNT_PACKETS: u64 = 20;
/// Where shorter silences bring the jitter buffer's delay, ms above its target.
const REPHASE_HEADROOM_MS: u32 = 1;
/// What this daemon reads beyond frames, redundant frames and reports, told to the far
/// side with each report.
const FEATURES: u32 = FEATURE_DEEP_COPIES;
/// Shorter silences less than this are not worth moving the playout for, µs.
const MIN_TRIM_US: usize = 1_000;

/// The jitter buffer of a call: its floor follows the measured jitter (and a frame while
/// packets are lost, see [`MediaPipeline::tick`]), with a margin over it.
pub(super) fn jitter_config(frame: FrameDuration) -> JitterConfig {
    JitterConfig {
        min_delay_ms: 0,
        jitter_margin_ms: JITTER_MARGIN_MS,
        rephase_headroom_ms: REPHASE_HEADROOM_MS,
        jitter_percentile: 100,
        window_packets: u16::try_from(JITTER_WINDOW_MS / frame.millis()).unwrap_or(u16::MAX),
        ..JitterConfig::for_frame(frame)
    }
}

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
    /// Samples the device has taken so far (cumulative, what it found missing included):
    /// what it takes between two ticks tells how much must be queued for it (`demand.rs`).
    pub played: u64,
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
    /// A loud frame after quiet ones (the start of a talkspurt) passed a point of the
    /// pipeline at this tick: for tracing where mouth-to-ear delay goes (the
    /// `mouth_to_ear` bench lines these up across the two daemons by `timestamp`).
    Onset(Onset),
}

/// Where an [`Onset`] was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Encoded and handed out to be sent.
    Sent,
    /// Arrived from the far side and went into the jitter buffer.
    Received,
    /// Popped and decoded, and queued for the playback device.
    Played,
}

/// The first loud frame of a talkspurt at one [`Stage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Onset {
    pub stage: Stage,
    /// The frame's timestamp (the sender's, in 48 kHz samples).
    pub timestamp: u32,
    /// [`Stage::Played`]: samples that were queued at the device before the frame's.
    pub queued: usize,
}

/// A frame at least this loud (−dBov, RFC 6464: 0 is full scale) after a quieter one
/// starts a talkspurt's onset (see [`MediaEvent::Onset`]): speech and tones, not comfort
/// noise.
const ONSET_LEVEL: u8 = 30;

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
    /// Frames of Opus concealment played for loss or lateness (loss without FEC, or the
    /// jitter buffer stretching in speech while the packet is missing): the jitter
    /// buffer's `concealed`, so a frame concealed while nothing was buffered counts once the
    /// next packet shows it was not the sender's DTX pause.
    pub concealed: u64,
    /// Frames of the decoder's comfort noise played in the far side's DTX pauses (the
    /// jitter buffer's `dtx`).
    pub dtx: u64,
    /// Frames played a pitch period longer (the jitter buffer growing its delay in speech).
    pub expanded: u64,
    /// Frames played a pitch period shorter (the jitter buffer shrinking its delay in
    /// speech).
    pub accelerated: u64,
    /// Frames of silence played: before the far side's first packet, in its DTX pauses,
    /// on hold, after a decode error.
    pub silent: u64,
    /// The playback resampler's drift correction now, ppm: positive when the far side's
    /// clock runs faster than our playback device's.
    pub playback_drift_ppm: i32,
    /// Bytes of the media frames sent (datagrams, copies included; reports not).
    pub sent_bytes: u64,
    /// Lost frames filled from a copy in a later datagram (redundancy).
    pub repaired: u64,
    /// Reports sent to the far side, and received from it.
    pub reports_sent: u64,
    pub reports_received: u64,
    /// The loss the far side's reports show, smoothed, ‰.
    pub far_loss_permille: u32,
    /// What the adaptation set last: the encoder's bitrate, its expected loss (in-band
    /// FEC), and how many earlier frames each datagram carries.
    pub bitrate_bps: u32,
    pub expected_loss_percent: u8,
    pub redundancy: u8,
    /// How many frames back the newest copy is (2: a lone copy against bursts).
    pub first_copy_back: u8,
    /// How many frames apart the copies are.
    pub copy_step: u8,
    /// The copies' bitrate when a second encoder re-encodes them (deep copies against
    /// bursts), bit/s; 0: they are the packets as sent.
    pub copy_bitrate_bps: u32,
    /// Bytes of the datagrams received that were frames of this call.
    pub received_bytes: u64,
    /// Frames of further far sources (a conference's other speakers) mixed in, and
    /// frames of a source dropped for want of a place among the streams decoded.
    pub mixed_frames: u64,
    pub dropped_streams: u64,
}

/// How many packets back a copy may be (a deep redundant frame's limit).
const KEPT: usize = MAX_SEQ_BACK_DEEP as usize;

/// The packets sent last, newest first, for the copies later datagrams carry.
struct SentRecently {
    /// `(seq, timestamp, length)` and the bytes of up to [`KEPT`] packets.
    meta: [Option<(u32, u32, usize)>; KEPT],
    bytes: Box<[[u8; MAX_PACKET_BYTES]; KEPT]>,
}

impl SentRecently {
    fn new() -> Self {
        Self {
            meta: [None; KEPT],
            bytes: Box::new([[0; MAX_PACKET_BYTES]; KEPT]),
        }
    }

    fn push(&mut self, seq: u32, timestamp: u32, packet: &[u8]) {
        self.meta.rotate_right(1);
        self.bytes.rotate_right(1);
        self.bytes[0][..packet.len()].copy_from_slice(packet);
        self.meta[0] = Some((seq, timestamp, packet.len()));
    }

    /// Copies of the packets `settings` asks for before `seq` (at `timestamp`, frames of
    /// `frame` samples): `redundancy` of them, the newest `first_back` before it, `step`
    /// apart; only of frames sent one after the other up to `seq`: one from before a DTX
    /// pause would be past its time at the far side.
    fn earlier(&self, settings: &Settings, seq: u32, timestamp: u32, frame: u32) -> Vec<Earlier> {
        let mut out = Vec::new();
        let first_back = settings.first_back.max(1);
        let step = settings.step.max(1);
        for i in 0..settings.redundancy {
            let back = first_back.saturating_add(i.saturating_mul(step));
            let Some(&Some((s, ts, len))) = self.meta.get(usize::from(back) - 1) else {
                break;
            };
            let ts_back = timestamp.wrapping_sub(ts);
            if s != seq.wrapping_sub(u32::from(back)) || ts_back > u32::from(back) * frame {
                break;
            }
            out.push(Earlier {
                seq_back: back,
                ts_back,
                payload: self.bytes[usize::from(back - 1)][..len].to_vec(),
            });
        }
        out
    }
}

/// A time-scaler for frames resampled to `rate` (a frame may come out a sample or two long).
fn scaler_for(rate: u32) -> TimeScaler {
    TimeScaler::new(rate, 2 * rate as usize / 50)
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
    /// Re-encodes each frame at a lower bitrate for the copies later datagrams carry, only
    /// while the adaptation asks for such copies ([`Settings::copy_bitrate_bps`]).
    copy_encoder: VoiceEncoder,
    decoder: VoiceDecoder,
    jitter: JitterBuffer,
    /// Plays a frame longer or shorter when the jitter buffer asks ([`JitterBuffer::scale`]).
    scaler: TimeScaler,
    seq: u32,
    timestamp: u32,
    /// The jitter buffer's resync count when the decoder was last reset.
    resyncs: u64,
    /// Drift of the far side's clock against the playback device's (see the module docs).
    playback_drift: DriftEstimator,
    /// The frame we send; the far side's is the jitter buffer's.
    send_frame: FrameDuration,
    /// A frame to encode and a decoded one, at 48 kHz: the first samples of these, as long
    /// as the frame.
    frame: [f32; FRAME],
    decoded: [f32; FRAME],
    packet: [u8; MAX_PACKET_BYTES],
    copy_packet: [u8; MAX_PACKET_BYTES],
    out: TickOutput,
    stats: MediaStats,
    /// How much the playback device takes at once (the queue kept for it).
    demand: Demand,
    /// Sending adapts to the far side's reports; `applied` is what the encoder has.
    adapter: Adapter,
    applied: Settings,
    sent_recently: SentRecently,
    /// What arrives from the far side, for our reports; the jitter buffer's late count
    /// and our repairs at the last report.
    meter: ReceptionMeter,
    reported: (u64, u64),
    /// Which far sources speak (a conference's `speaking` flags).
    speakers: Speakers,
    /// The farthest back copies came from lately (two frames or more), for the jitter
    /// buffer's floor.
    copies_back: CopiesBack,
    /// Features datagrams sent.
    features_sent: u32,
    /// The far source the jitter buffer above plays, and when its latest frame came (µs).
    primary: Option<(u32, u64)>,
    /// Further far sources (conferences).
    extras: Extras,
    /// Until when it keeps the floor of a frame for lost packets, µs, and the loss seen.
    loss_until: Option<u64>,
    lost: u64,
    /// The jitter buffer's window has seen the path, and a pause came to lower the floor;
    /// when the first packet came, µs.
    path_known: bool,
    first_packet_us: Option<u64>,
    /// The playback device's block, samples, as the jitter buffer and the drift estimator
    /// were last told, and where the playout delay is held above the target while the
    /// clocks drift, µs (see `set_block`).
    block: u64,
    drift_mid_us: i64,
    /// Onset tracing: whether the last frame encoded was loud, the timestamp of the last
    /// loud frame received, and the received onsets not yet played.
    loud_sent: bool,
    loud_received: Option<u32>,
    onsets: [Option<u32>; 4],
}

impl MediaPipeline {
    /// A pipeline for `call`, sending as `source` in 20 ms frames, between a microphone at
    /// `capture_rate` and a speaker at `playback_rate`.
    pub fn new(
        call: CallId,
        source: u32,
        capture_rate: u32,
        playback_rate: u32,
    ) -> Result<MediaPipeline, PipelineError> {
        Self::with_frame(
            call,
            source,
            capture_rate,
            playback_rate,
            FrameDuration::Ms20,
        )
    }

    /// A pipeline that sends frames of `frame`. What it receives is played in the frames
    /// the far side sends, whichever: a packet of the other length (read from its Opus
    /// header) sets the receive side up for it, as for a restarted stream.
    pub fn with_frame(
        call: CallId,
        source: u32,
        capture_rate: u32,
        playback_rate: u32,
        frame: FrameDuration,
    ) -> Result<MediaPipeline, PipelineError> {
        let mut out = TickOutput::default();
        // Room for a tick's worth at the smallest queue (up to a frame beyond it, plus one
        // for a trimmed silence, and a quiet frame stretched the most); a device with
        // longer blocks grows it once, early on.
        let ms = |ms: usize| playback_rate as usize * ms / 1000;
        let stretch = MAX_EXPAND_TIMES * (MAX_LAG_US as usize).div_ceil(1000);
        out.playback
            .reserve(ms(PLAYBACK_QUEUE_MIN_MS) + ms(40) + ms(stretch));
        out.datagrams.reserve(4);
        out.events.reserve(4);
        let encoder = VoiceEncoder::new(&EncoderConfig {
            complexity: ENCODER_COMPLEXITY,
            bitrate_bps: CALL_BITRATE_BPS,
            frame,
            ..EncoderConfig::default()
        })?;
        let clean = encoder.config().bitrate_bps;
        // No in-band FEC in the copies: they are the repair themselves.
        let copy_encoder = VoiceEncoder::new(&EncoderConfig {
            complexity: ENCODER_COMPLEXITY,
            bitrate_bps: DEEP_COPY_BITRATE_BPS,
            frame,
            fec: false,
            expected_loss_percent: 0,
            ..EncoderConfig::default()
        })?;
        // A frame's header on the wire, a frame's worth a second (50 or 100), for the
        // budget to count what is sent; at its smallest (the first sequence numbers and
        // timestamps), so as to err low.
        let header = MediaFrame {
            call,
            source,
            seq: 0,
            timestamp: 0,
            level: 0,
            payload: Vec::new(),
        }
        .encode()
        .len();
        let per_second = (1000 / frame.millis()) as usize;
        let header_bps = u32::try_from(header * 8 * per_second).unwrap_or(0);
        let applied = Settings {
            bitrate_bps: clean,
            expected_loss_percent: encoder.config().expected_loss_percent,
            redundancy: 0,
            first_back: 1,
            step: 1,
            copy_bitrate_bps: 0,
        };
        Ok(MediaPipeline {
            call,
            source,
            playback_rate,
            to_net: ToNetwork::with_frame(capture_rate, frame.samples())?,
            from_net: FromNetwork::with_frame(playback_rate, frame.samples())?,
            encoder,
            copy_encoder,
            decoder: VoiceDecoder::new(frame)?,
            jitter: JitterBuffer::new(jitter_config(frame))?,
            scaler: scaler_for(playback_rate),
            seq: 0,
            timestamp: 0,
            resyncs: 0,
            // Held where it settled: the level is the playout delay (see
            // `follow_far_clock`), which the jitter buffer put where it wants it.
            playback_drift: DriftEstimator::new(DriftConfig::default()),
            send_frame: frame,
            frame: [0.0; FRAME],
            decoded: [0.0; FRAME],
            packet: [0; MAX_PACKET_BYTES],
            copy_packet: [0; MAX_PACKET_BYTES],
            out,
            stats: MediaStats {
                bitrate_bps: applied.bitrate_bps,
                expected_loss_percent: applied.expected_loss_percent,
                first_copy_back: applied.first_back,
                copy_step: applied.step,
                ..MediaStats::default()
            },
            demand: Demand::default(),
            adapter: Adapter::new(clean, header_bps, Thresholds::default()),
            applied,
            sent_recently: SentRecently::new(),
            meter: ReceptionMeter::default(),
            speakers: Speakers::default(),
            reported: (0, 0),
            copies_back: CopiesBack::default(),
            features_sent: 0,
            primary: None,
            extras: Extras::default(),
            loss_until: None,
            lost: 0,
            path_known: false,
            first_packet_us: None,
            block: 0,
            drift_mid_us: 15_000,
            loud_sent: false,
            loud_received: None,
            onsets: [None; 4],
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
        self.receive(now_us, received);
        self.report(now_us);
        self.play(now_us, device, flags.paused);
        self.set_floor(now_us);
        let jitter = self.jitter.stats();
        self.stats.max_delay_ms = self.stats.max_delay_ms.max(jitter.delay_ms);
        self.stats.concealed = jitter.concealed;
        self.stats.dtx = jitter.dtx;
        self.stats.expanded = jitter.expanded;
        self.stats.accelerated = jitter.accelerated;
        &mut self.out
    }

    /// The far sources speaking at `now` (by the levels their frames carry).
    pub fn speaking(&self, now: Duration) -> Speaking {
        self.speakers
            .at(u64::try_from(now.as_micros()).unwrap_or(u64::MAX))
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

    /// The frame this side sends.
    pub fn send_frame(&self) -> FrameDuration {
        self.send_frame
    }

    /// The frame the far side sends, as its packets say (until the first, our own).
    pub fn receive_frame(&self) -> FrameDuration {
        self.jitter.config().frame
    }

    /// The microphone now runs at `rate` (a device reopened mid-call): a new resampler.
    pub fn set_capture_rate(&mut self, rate: u32) -> Result<(), PipelineError> {
        self.to_net = ToNetwork::with_frame(rate, self.send_frame.samples())?;
        Ok(())
    }

    /// The speaker now runs at `rate` (a device reopened mid-call): a new resampler.
    pub fn set_playback_rate(&mut self, rate: u32) -> Result<(), PipelineError> {
        self.from_net = FromNetwork::with_frame(rate, self.receive_frame().samples())?;
        self.scaler = scaler_for(rate);
        self.playback_rate = rate;
        self.block = 0;
        Ok(())
    }

    /// The far side sends frames of `frame`, not those the receive side was set up for:
    /// a new jitter buffer, decoder and playback resampler for them, as for a restarted
    /// stream. (Allocates: once a call, when the far side's first packet says so.)
    fn set_receive_frame(&mut self, frame: FrameDuration) -> Result<(), PipelineError> {
        self.jitter = JitterBuffer::new(jitter_config(frame))?;
        self.decoder = VoiceDecoder::new(frame)?;
        self.from_net = FromNetwork::with_frame(self.playback_rate, frame.samples())?;
        self.playback_drift.restart();
        self.block = 0;
        self.lost = 0;
        self.path_known = false;
        self.first_packet_us = None;
        self.loud_received = None;
        self.onsets = [None; 4];
        self.reported = (0, 0);
        self.stats.decoder_resets += 1;
        self.out.events.push(MediaEvent::DecoderReset);
        Ok(())
    }
}
