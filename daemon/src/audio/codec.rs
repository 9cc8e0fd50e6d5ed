//! The Opus voice codec of a call: one [`VoiceEncoder`] for what we send, one
//! [`VoiceDecoder`] per remote source. Settings follow `design.md` §Transport (48 kHz mono,
//! 20 ms frames or 10 ms, VoIP mode, VBR about 24 kbit/s, in-band FEC, DTX).
//!
//! The jitter buffer ([`super::jitter`]) decides per frame whether to decode a packet,
//! recover a lost one from the next packet's FEC, or conceal; the decoder has one method for
//! each, and each writes exactly one frame into the caller's buffer, so the playout path never
//! allocates. Samples are `i16` or `f32` (full scale ±1.0), whichever the pipeline holds.

use audiopus::coder::{Decoder, Encoder, GenericCtl};
use audiopus::packet::{self, Packet};
use audiopus::{Application, Bandwidth, Bitrate, Channels, MutSignals, SampleRate, Signal};

/// The network sample rate: everything is resampled to 48 kHz before encoding, which also
/// keeps the RTP-style timestamps of [`super::jitter`] in 48 kHz ticks.
pub const SAMPLE_RATE: u32 = 48_000;

/// The largest Opus packet for one frame (RFC 6716 §3.4); an output buffer this long always
/// suffices, and the jitter buffer's slots hold this much.
pub const MAX_PACKET_BYTES: usize = 1275;

/// Opus packets this short are DTX "nothing to say" packets (the TOC byte alone). Sending them
/// would cost a datagram for no audio: the receiver conceals or plays silence instead.
const DTX_MAX_BYTES: usize = 2;

/// Frame length. 20 ms is the default: half the packets of 10 ms for 10 ms more latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FrameDuration {
    /// 10 ms, 480 samples.
    Ms10,
    /// 20 ms, 960 samples.
    #[default]
    Ms20,
}

impl FrameDuration {
    /// Samples per frame at 48 kHz (also the timestamp increment per frame).
    pub const fn samples(self) -> usize {
        match self {
            Self::Ms10 => 480,
            Self::Ms20 => 960,
        }
    }

    /// Frame length in milliseconds.
    pub const fn millis(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
        }
    }

    /// The frame of `ms` milliseconds, if it is one of ours.
    pub const fn from_millis(ms: u32) -> Option<Self> {
        match ms {
            10 => Some(Self::Ms10),
            20 => Some(Self::Ms20),
            _ => None,
        }
    }

    /// The frame an Opus packet holds, read from its TOC byte (RFC 6716 §3.1); `None` for
    /// an empty or malformed packet, or one of another length.
    pub fn of_packet(packet: &[u8]) -> Option<Self> {
        let pkt = Packet::try_from(packet).ok()?;
        match packet::nb_samples(pkt, SampleRate::Hz48000).ok()? {
            480 => Some(Self::Ms10),
            960 => Some(Self::Ms20),
            _ => None,
        }
    }
}

/// The widest audio band the encoder may code (Opus' `OPUS_SET_MAX_BANDWIDTH`): it
/// spends no bits above it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaxBandwidth {
    /// 0–8 kHz (Opus "wideband", SILK only): what a wideband call carries.
    Wideband,
    /// 0–12 kHz (Opus "superwideband", SILK and CELT in hybrid mode).
    Superwideband,
    /// Up to 20 kHz, as the encoder sees fit at the bitrate.
    #[default]
    Fullband,
}

impl MaxBandwidth {
    fn opus(self) -> Bandwidth {
        match self {
            Self::Wideband => Bandwidth::Wideband,
            Self::Superwideband => Bandwidth::Superwideband,
            Self::Fullband => Bandwidth::Fullband,
        }
    }
}

/// What a [`VoiceEncoder`] is built with. `Default` is the design's call setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Frame length.
    pub frame: FrameDuration,
    /// Target bitrate in bit/s (VBR), 6 000..=510 000.
    pub bitrate_bps: u32,
    /// 0..=10. Default 5: on speech at 24 kbit/s with FEC, Opus stays in SILK wideband, where
    /// complexity 8–10 cost twice as much (about 255 against 125 µs per 20 ms frame on our
    /// 2-core VM, i.e. 1.3 % against 0.6 % of a core) for little audible gain, and the whole
    /// call should stay under 1 % of a core. (stack-notes §5 measured 10 as the cheaper on
    /// its synthetic tone mix without FEC; on our speech-like test signal it is the reverse.)
    pub complexity: u8,
    /// Loss the encoder should expect, 0..=100 %. In-band FEC is only produced when this is
    /// above 0; higher values spend more of the bitrate on FEC. The call engine should update
    /// it from the loss the far end reports ([`VoiceEncoder::set_expected_loss`]).
    pub expected_loss_percent: u8,
    /// In-band FEC (LBRR): each packet also carries a coarse copy of the previous frame.
    pub fec: bool,
    /// Discontinuous transmission: near-silence becomes 1-byte packets we do not send.
    pub dtx: bool,
    /// The widest band coded.
    pub max_bandwidth: MaxBandwidth,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            frame: FrameDuration::Ms20,
            bitrate_bps: 24_000,
            complexity: 5,
            expected_loss_percent: 10,
            fec: true,
            dtx: true,
            max_bandwidth: MaxBandwidth::Fullband,
        }
    }
}

/// What went wrong in the codec, with the values involved.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A setting outside what Opus accepts.
    #[error("codec setting {what} = {value} is out of range ({min}..={max})")]
    Setting {
        /// The setting's name.
        what: &'static str,
        /// The rejected value.
        value: u32,
        /// The smallest accepted value.
        min: u32,
        /// The largest accepted value.
        max: u32,
    },
    /// A PCM buffer that is not exactly one frame long.
    #[error("PCM buffer holds {got} samples but a frame is {expected}")]
    FrameLength {
        /// Samples per frame.
        expected: usize,
        /// The buffer's length.
        got: usize,
    },
    /// An empty packet (Opus packets are never empty; an empty payload is a bug upstream).
    #[error("empty Opus packet")]
    EmptyPacket,
    /// A packet whose audio is not one frame of our length, e.g. a peer sending 10 ms frames
    /// to a 20 ms decoder. Decoding it would break the one-frame-per-tick playout.
    #[error("Opus packet of {len} bytes holds {got} samples, expected {expected}")]
    PacketDuration {
        /// Packet length in bytes.
        len: usize,
        /// Samples it holds.
        got: usize,
        /// Samples per frame.
        expected: usize,
    },
    /// libopus refused: a corrupt packet, an output buffer too small, …
    #[error("opus {op} failed: {source}")]
    Opus {
        /// What we asked of libopus.
        op: &'static str,
        /// The libopus error.
        source: audiopus::Error,
    },
}

type Result<T> = std::result::Result<T, CodecError>;

fn opus(op: &'static str) -> impl FnOnce(audiopus::Error) -> CodecError {
    move |source| CodecError::Opus { op, source }
}

/// A PCM sample type the codec takes: `i16` or `f32` (full scale ±1.0). Sealed: Opus has
/// exactly these two entry points.
pub trait Sample: sealed::Sealed + Copy + Default + Send + 'static {}
impl Sample for i16 {}
impl Sample for f32 {}

mod sealed {
    use super::{Decoder, Encoder, MutSignals, Packet};

    pub trait Sealed: Sized {
        fn encode(enc: &Encoder, pcm: &[Self], out: &mut [u8]) -> audiopus::Result<usize>;
        fn decode(
            dec: &mut Decoder,
            packet: Option<Packet<'_>>,
            out: &mut [Self],
            fec: bool,
        ) -> audiopus::Result<usize>;
        /// The sample at full scale ±1.0.
        fn to_unit(self) -> f32;
    }

    impl Sealed for i16 {
        fn encode(enc: &Encoder, pcm: &[Self], out: &mut [u8]) -> audiopus::Result<usize> {
            enc.encode(pcm, out)
        }
        fn decode(
            dec: &mut Decoder,
            packet: Option<Packet<'_>>,
            out: &mut [Self],
            fec: bool,
        ) -> audiopus::Result<usize> {
            dec.decode(packet, MutSignals::try_from(out)?, fec)
        }
        fn to_unit(self) -> f32 {
            f32::from(self) / 32768.0
        }
    }

    impl Sealed for f32 {
        fn encode(enc: &Encoder, pcm: &[Self], out: &mut [u8]) -> audiopus::Result<usize> {
            enc.encode_float(pcm, out)
        }
        fn decode(
            dec: &mut Decoder,
            packet: Option<Packet<'_>>,
            out: &mut [Self],
            fec: bool,
        ) -> audiopus::Result<usize> {
            dec.decode_float(packet, MutSignals::try_from(out)?, fec)
        }
        fn to_unit(self) -> f32 {
            self
        }
    }
}

/// The audio level of one frame as RFC 6464 carries it: −dBov, 0 (loudest) ..= 127 (silent).
/// The relay forwards a conference's loudest speakers by this value without decoding.
///
/// Computed like WebRTC's `RmsLevel`: mean square against full scale, so a full-scale square
/// wave is 0 and a full-scale sine 3.
pub fn speech_level<S: Sample>(frame: &[S]) -> u8 {
    if frame.is_empty() {
        return 127;
    }
    let sum: f64 = frame
        .iter()
        .map(|s| f64::from(s.to_unit()) * f64::from(s.to_unit()))
        .sum();
    let mean_square = sum / frame.len() as f64;
    if mean_square <= 0.0 {
        return 127;
    }
    let dbov = -10.0 * mean_square.log10();
    dbov.round().clamp(0.0, 127.0) as u8
}

fn check_frame(expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(CodecError::FrameLength { expected, got })
    }
}

fn check_range(what: &'static str, value: u32, min: u32, max: u32) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(CodecError::Setting {
            what,
            value,
            min,
            max,
        })
    }
}

/// Opus' useful bitrate range for mono voice, bit/s.
const BITRATE_RANGE: (u32, u32) = (6_000, 510_000);

/// Encodes 48 kHz mono frames into Opus packets for one outgoing stream.
///
/// ```
/// use phoned::audio::codec::{EncoderConfig, VoiceEncoder, MAX_PACKET_BYTES};
/// let mut enc = VoiceEncoder::new(&EncoderConfig::default())?;
/// let frame = [0i16; 960];
/// let mut packet = [0u8; MAX_PACKET_BYTES];
/// if let Some(len) = enc.encode(&frame, &mut packet)? {
///     // send &packet[..len]
///     assert!(len > 0);
/// }
/// # Ok::<(), phoned::audio::codec::CodecError>(())
/// ```
#[derive(Debug)]
pub struct VoiceEncoder {
    enc: Encoder,
    config: EncoderConfig,
}

impl VoiceEncoder {
    /// Creates an encoder with `config`, checked against Opus' ranges.
    pub fn new(config: &EncoderConfig) -> Result<Self> {
        check_range("complexity", config.complexity.into(), 0, 10)?;
        let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip)
            .map_err(opus("create encoder"))?;
        // Telling Opus it is speech keeps it in SILK/hybrid mode, the only modes with LBRR FEC.
        enc.set_signal(Signal::Voice).map_err(opus("set signal"))?;
        enc.set_complexity(config.complexity)
            .map_err(opus("set complexity"))?;
        enc.set_inband_fec(config.fec)
            .map_err(opus("set inband fec"))?;
        enc.set_dtx(config.dtx).map_err(opus("set dtx"))?;
        enc.set_max_bandwidth(config.max_bandwidth.opus())
            .map_err(opus("set max bandwidth"))?;
        let mut this = Self {
            enc,
            config: config.clone(),
        };
        this.set_bitrate(config.bitrate_bps)?;
        this.set_expected_loss(config.expected_loss_percent)?;
        Ok(this)
    }

    /// The settings in force.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Samples per frame: what [`Self::encode`] takes.
    pub fn frame_samples(&self) -> usize {
        self.config.frame.samples()
    }

    /// The codec's algorithmic delay in samples (encoder look-ahead plus decoder; 312 at
    /// 48 kHz VoIP). Decoded audio lags the input by this much.
    pub fn lookahead_samples(&self) -> Result<u32> {
        self.enc.lookahead().map_err(opus("get lookahead"))
    }

    /// Sets the loss the encoder should protect against, 0..=100 %. FEC needs it above 0.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<()> {
        check_range("expected_loss_percent", percent.into(), 0, 100)?;
        self.enc
            .set_packet_loss_perc(percent)
            .map_err(opus("set packet loss"))?;
        self.config.expected_loss_percent = percent;
        Ok(())
    }

    /// Sets the target bitrate, 6 000..=510 000 bit/s.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        let (min, max) = BITRATE_RANGE;
        check_range("bitrate_bps", bps, min, max)?;
        // In range, so it fits an i32; the fallback is never taken.
        let bits = i32::try_from(bps).unwrap_or(i32::MAX);
        self.enc
            .set_bitrate(Bitrate::BitsPerSecond(bits))
            .map_err(opus("set bitrate"))?;
        self.config.bitrate_bps = bps;
        Ok(())
    }

    /// Forgets the frames encoded so far (for an encoder that was idle and starts again).
    pub fn reset(&mut self) -> Result<()> {
        self.enc.reset_state().map_err(opus("reset encoder"))
    }

    /// Encodes one frame into `out` (give it [`MAX_PACKET_BYTES`]). Returns the packet length,
    /// or `None` for a DTX packet that must not be sent.
    pub fn encode<S: Sample>(&mut self, pcm: &[S], out: &mut [u8]) -> Result<Option<usize>> {
        check_frame(self.frame_samples(), pcm.len())?;
        let len = S::encode(&self.enc, pcm, out).map_err(opus("encode"))?;
        Ok((len > DTX_MAX_BYTES).then_some(len))
    }
}

/// Decodes one remote source's packets, one frame per call.
///
/// Which method to call comes from the jitter buffer: [`Self::decode`] for a packet,
/// [`Self::decode_fec`] when this frame's packet is lost but the next one is here,
/// [`Self::conceal`] when nothing helps. On a decode error (a corrupt packet) call
/// [`Self::conceal`] for that frame.
///
/// ```
/// use phoned::audio::codec::{FrameDuration, VoiceDecoder};
/// let mut dec = VoiceDecoder::new(FrameDuration::Ms20)?;
/// let mut out = [0f32; 960];
/// dec.conceal(&mut out)?; // nothing received yet: silence
/// # Ok::<(), phoned::audio::codec::CodecError>(())
/// ```
#[derive(Debug)]
pub struct VoiceDecoder {
    dec: Decoder,
    frame: FrameDuration,
}

impl VoiceDecoder {
    /// Creates a decoder for `frame`-long packets.
    pub fn new(frame: FrameDuration) -> Result<Self> {
        let dec =
            Decoder::new(SampleRate::Hz48000, Channels::Mono).map_err(opus("create decoder"))?;
        Ok(Self { dec, frame })
    }

    /// Samples per frame: the length every output buffer must have.
    pub fn frame_samples(&self) -> usize {
        self.frame.samples()
    }

    /// Decodes `packet` into `out` (exactly one frame).
    pub fn decode<S: Sample>(&mut self, packet: &[u8], out: &mut [S]) -> Result<()> {
        let expected = self.frame_samples();
        check_frame(expected, out.len())?;
        let pkt = Packet::try_from(packet).map_err(|_| CodecError::EmptyPacket)?;
        // Check the duration from the TOC before decoding, so a wrong-length packet does not
        // disturb the decoder state.
        let got = packet::nb_samples(pkt, SampleRate::Hz48000).map_err(opus("parse packet"))?;
        if got != expected {
            return Err(CodecError::PacketDuration {
                len: packet.len(),
                got,
                expected,
            });
        }
        let pkt = Packet::try_from(packet).map_err(|_| CodecError::EmptyPacket)?;
        let n = S::decode(&mut self.dec, Some(pkt), out, false).map_err(opus("decode"))?;
        self.check_decoded(packet.len(), n)
    }

    /// Recovers the frame before `next_packet` from the coarse copy (LBRR) that in-band FEC put
    /// in it. If `next_packet` carries none, Opus conceals instead, so this is never worse than
    /// [`Self::conceal`]. Decode `next_packet` normally afterwards, as the next frame.
    pub fn decode_fec<S: Sample>(&mut self, next_packet: &[u8], out: &mut [S]) -> Result<()> {
        check_frame(self.frame_samples(), out.len())?;
        let pkt = Packet::try_from(next_packet).map_err(|_| CodecError::EmptyPacket)?;
        // The output length tells Opus how much audio was lost: exactly one frame.
        let n = S::decode(&mut self.dec, Some(pkt), out, true).map_err(opus("decode fec"))?;
        self.check_decoded(next_packet.len(), n)
    }

    /// Packet loss concealment: extrapolates one frame from what was decoded before (fading to
    /// silence over a few frames, or comfort noise after DTX).
    pub fn conceal<S: Sample>(&mut self, out: &mut [S]) -> Result<()> {
        check_frame(self.frame_samples(), out.len())?;
        let n = S::decode(&mut self.dec, None, out, false).map_err(opus("conceal"))?;
        self.check_decoded(0, n)
    }

    /// Forgets the stream (for a new talk spurt from a restarted source).
    pub fn reset(&mut self) -> Result<()> {
        self.dec.reset_state().map_err(opus("reset decoder"))
    }

    fn check_decoded(&self, len: usize, got: usize) -> Result<()> {
        let expected = self.frame_samples();
        if got == expected {
            Ok(())
        } else {
            Err(CodecError::PacketDuration { len, got, expected })
        }
    }
}

#[cfg(test)]
mod tests;
