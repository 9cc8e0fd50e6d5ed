//! Ogg Opus files (RFC 7845): what a voice message is on disk and on the wire, playable by
//! any common player (mpv, ffmpeg, opusdec, browsers).
//!
//! Making one: [`encode_wav`] (any PCM or float WAV), [`encode_pcm`] (mono samples at any
//! standard rate) or, for a recording that grows, [`OggOpusEncoder`]. The audio is
//! downmixed, resampled to 48 kHz with the call path's [`ToNetwork`], and encoded in 20 ms
//! frames by the call codec's [`VoiceEncoder`] at [`BITRATE_BPS`], complexity 10, without FEC
//! (nothing is lost on the way) or DTX (every frame is a packet, so the timing is exact).
//! The stream is laid out as RFC 7845 asks: the `OpusHead` packet alone on the first page,
//! `OpusTags` (vendor [`VENDOR`]) alone on the second, then audio pages of one second each
//! whose granule positions count 48 kHz samples including the pre-skip; the last page's
//! granule position trims the padding of the last frame (end trimming), so the decoded length
//! is the input's to the sample. The pre-skip is the encoder's look-ahead plus the
//! resampler's delay, so decoded audio lines up with the input. Paging and page CRCs come
//! from the `ogg` crate.
//!
//! Reading one: [`decode`] returns 48 kHz mono samples with pre-skip, end trimming and the
//! header's output gain applied. It reads our files and standard ones: the first Opus stream
//! of the file is used (other multiplexed streams and later chained links are ignored),
//! stereo is downmixed by the decoder, and packets must be 10 or 20 ms long (others are
//! refused with [`VoiceError::UnsupportedFrameDuration`]). The bytes are untrusted: every
//! problem is a [`VoiceError`], never a panic, and the output is capped before it is
//! allocated ([`DEFAULT_MAX_SAMPLES`], or the caller's limit with [`decode_with_limit`]).
//! [`info`] and [`duration_ms`] read the headers and the granule positions without decoding.
//!
//! ```
//! use phoned::voice::ogg;
//!
//! let tone: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.4).sin() * 0.3).collect();
//! let file = ogg::encode_pcm(&tone, 16_000)?; // one second at 16 kHz
//! assert_eq!(ogg::duration_ms(&file)?, 1000);
//! let (samples, ms) = ogg::decode(&file)?;
//! assert_eq!((samples.len(), ms), (48_000, 1000));
//! # Ok::<(), ogg::VoiceError>(())
//! ```

use std::io::Cursor;
use std::path::{Path, PathBuf};

use ::ogg::{OggReadError, PacketReader, PacketWriteEndInfo, PacketWriter};
use audiopus::SampleRate;
use audiopus::packet::{self as opus_packet, Packet};
use hound::{SampleFormat, WavReader};

use crate::audio::backend::int_to_f32;
use crate::audio::codec::{
    CodecError, EncoderConfig, FrameDuration, MAX_PACKET_BYTES, MaxBandwidth, VoiceDecoder,
    VoiceEncoder,
};
use crate::audio::resample::{FRAME, NETWORK_RATE, ResampleError, ToNetwork};

/// Target bitrate of a voice message (VBR): a call's clean bitrate, with no FEC taking a
/// share of it, at about 4 kB per second: a minute is about 240 kB.
pub const BITRATE_BPS: u32 = 32_000;

/// Encoder complexity: the best. A recording is encoded once, and even in real time from the
/// microphone this costs about 1.3 % of a core (`EncoderConfig::complexity`).
pub const COMPLEXITY: u8 = 10;

/// The vendor string of the `OpusTags` header we write.
pub const VENDOR: &str = "phoned";

/// The most samples [`decode`] returns: five minutes at 48 kHz (55 MB as `f32`), so a small
/// hostile file cannot make a 512 MB device allocate gigabytes.
pub const DEFAULT_MAX_SAMPLES: usize = 5 * 60 * NETWORK_RATE as usize;

/// Audio packets per Ogg page: one second of 20 ms frames (libopusenc's default page delay).
/// Page overhead (27 bytes and one lacing byte per packet) stays about 2 %.
const PACKETS_PER_PAGE: usize = 50;

/// Device samples handed to the resampler at a time, so its queue stays small.
const PUSH_CHUNK: usize = 4096;

const OPUS_HEAD: &[u8; 8] = b"OpusHead";
const OPUS_TAGS: &[u8; 8] = b"OpusTags";
/// `OpusHead` without a channel mapping table (mapping family 0).
const OPUS_HEAD_LEN: usize = 19;

/// What went wrong making or reading a voice message, with the values involved.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// The WAV file cannot be opened or read.
    #[error("cannot read WAV {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// hound's error.
        #[source]
        source: hound::Error,
    },
    /// The WAV file holds a sample format we cannot read.
    #[error("WAV {path}: {message}")]
    WavFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The input's sample rate cannot be converted to 48 kHz.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// Opus refused a setting, a frame or a packet.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The codec's delay does not fit the header's 16-bit pre-skip (never with libopus).
    #[error("codec delay of {samples} samples does not fit the OpusHead pre-skip")]
    Delay {
        /// Look-ahead plus resampler delay, 48 kHz samples.
        samples: usize,
    },
    /// No random stream serial number could be drawn.
    #[error("cannot draw an Ogg stream serial number: {0}")]
    Random(getrandom::Error),
    /// Writing a page failed (into memory: never in practice).
    #[error("cannot write an Ogg page: {0}")]
    Write(#[source] std::io::Error),
    /// The bytes hold no Ogg page at all.
    #[error("not an Ogg file: no page found")]
    NotOgg,
    /// The bytes end inside a page.
    #[error("the Ogg file is truncated: it ends inside a page")]
    Truncated,
    /// A page's CRC does not match its contents.
    #[error("Ogg page checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The CRC in the page header.
        stored: u32,
        /// The CRC of the page as read.
        computed: u32,
    },
    /// A page of an Ogg version other than 0.
    #[error("unsupported Ogg page version {0}")]
    OggVersion(u8),
    /// Reading the bytes failed (other than running out).
    #[error("cannot read the Ogg stream: {0}")]
    Read(#[source] std::io::Error),
    /// Pages that do not fit together: a continued packet without its start, a second
    /// beginning-of-stream page, …
    #[error("malformed Ogg stream: pages do not fit together")]
    Malformed,
    /// An Ogg file without an Opus stream (e.g. Ogg Vorbis).
    #[error("no Opus stream in this Ogg file")]
    NoOpusStream,
    /// An `OpusHead` or `OpusTags` header that breaks RFC 7845.
    #[error("invalid {header} header: {reason}")]
    BadHeader {
        /// `"OpusHead"` or `"OpusTags"`.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An `OpusHead` of an incompatible encapsulation version (16 or more).
    #[error("unsupported Ogg Opus version {0}")]
    UnsupportedVersion(u8),
    /// A channel mapping that needs more than one Opus stream (surround, ambisonics).
    #[error(
        "unsupported channel mapping: family {family}, {channels} channels in {streams} Opus streams (only one stream is supported)"
    )]
    UnsupportedMapping {
        /// Channel mapping family.
        family: u8,
        /// Output channels.
        channels: u8,
        /// Opus streams per packet.
        streams: u8,
    },
    /// An audio packet whose table of contents does not parse (or an empty packet).
    #[error("Opus packet {index} is malformed: {source}")]
    BadPacket {
        /// The audio packet's index in the stream, from 0.
        index: u64,
        /// libopus' verdict.
        #[source]
        source: audiopus::Error,
    },
    /// An audio packet that is not 10 or 20 ms long (40, 60, 80, 100, 120 ms or 2.5, 5 ms).
    #[error(
        "Opus packet {index} holds {samples} samples at 48 kHz; only 10 and 20 ms packets (480, 960) are supported"
    )]
    UnsupportedFrameDuration {
        /// The audio packet's index in the stream, from 0.
        index: u64,
        /// Samples it holds at 48 kHz.
        samples: usize,
    },
    /// A stream that switches between 10 and 20 ms packets.
    #[error(
        "Opus packet {index} holds {samples} samples but the stream started with {expected}-sample packets"
    )]
    FrameDurationChanged {
        /// The audio packet's index in the stream, from 0.
        index: u64,
        /// Samples it holds at 48 kHz.
        samples: usize,
        /// Samples of the stream's first packet.
        expected: usize,
    },
    /// Granule positions that break RFC 7845's rules.
    #[error("invalid granule position: {0}")]
    BadGranule(&'static str),
    /// The decoded audio would be longer than the caller's limit.
    #[error("voice message longer than the limit of {max_samples} samples")]
    TooLong {
        /// The limit, 48 kHz samples.
        max_samples: usize,
    },
}

type Result<T> = std::result::Result<T, VoiceError>;

/// Milliseconds of `samples` 48 kHz samples, rounded to the nearest.
fn samples_to_ms(samples: u64) -> u64 {
    (samples.saturating_mul(1000) + u64::from(NETWORK_RATE / 2)) / u64::from(NETWORK_RATE)
}

/// The 48 kHz length of `n` samples at `rate`, rounded to the nearest sample.
fn network_len(n: u64, rate: u32) -> u64 {
    let rate = u128::from(rate.max(1));
    let scaled = (u128::from(n) * u128::from(NETWORK_RATE) + rate / 2) / rate;
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The identification header (`OpusHead`, RFC 7845 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusHead {
    /// Encapsulation version: 1 when written; 0..=15 are read as compatible.
    pub version: u8,
    /// Output channels (we write 1).
    pub channels: u8,
    /// 48 kHz samples to discard from the start of the decoded audio.
    pub pre_skip: u16,
    /// The encoder input's sample rate, for information (0: unknown).
    pub input_rate: u32,
    /// Gain to apply on output, dB in Q7.8 (we write 0).
    pub output_gain: i16,
    /// Channel mapping family (we write 0: mono or stereo, one stream).
    pub mapping_family: u8,
    /// Opus streams in each packet: 1 is all we read.
    pub streams: u8,
}

impl OpusHead {
    /// The header of our files: mono, mapping family 0.
    fn mono(pre_skip: u16, input_rate: u32) -> OpusHead {
        OpusHead {
            version: 1,
            channels: 1,
            pre_skip,
            input_rate,
            output_gain: 0,
            mapping_family: 0,
            streams: 1,
        }
    }

    /// The packet for a mapping family 0 header.
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(OPUS_HEAD_LEN);
        b.extend_from_slice(OPUS_HEAD);
        b.push(self.version);
        b.push(self.channels);
        b.extend_from_slice(&self.pre_skip.to_le_bytes());
        b.extend_from_slice(&self.input_rate.to_le_bytes());
        b.extend_from_slice(&self.output_gain.to_le_bytes());
        b.push(self.mapping_family);
        b
    }

    /// Parses and checks an `OpusHead` packet. Refuses what RFC 7845 calls invalid and what
    /// needs more than one Opus stream; accepts (ignores) bytes after the header.
    pub fn parse(packet: &[u8]) -> Result<OpusHead> {
        let bad = |reason| VoiceError::BadHeader {
            header: "OpusHead",
            reason,
        };
        if !packet.starts_with(OPUS_HEAD) {
            return Err(bad("wrong magic signature"));
        }
        let field = |at: usize| packet.get(at).copied().ok_or(bad("too short"));
        let version = field(8)?;
        if version >> 4 != 0 {
            return Err(VoiceError::UnsupportedVersion(version));
        }
        let channels = field(9)?;
        if channels == 0 {
            return Err(bad("channel count is 0"));
        }
        let pre_skip = le_u16(packet, 10).ok_or(bad("too short"))?;
        let input_rate = le_u32(packet, 12).ok_or(bad("too short"))?;
        let output_gain = le_u16(packet, 16).ok_or(bad("too short"))?.cast_signed();
        let mapping_family = field(18)?;
        let streams = if mapping_family == 0 {
            if channels > 2 {
                return Err(bad("mapping family 0 allows only 1 or 2 channels"));
            }
            1
        } else {
            let streams = field(19)?;
            let coupled = field(20)?;
            let table = packet
                .get(21..21 + usize::from(channels))
                .ok_or(bad("channel mapping table too short"))?;
            if streams == 0 {
                return Err(bad("stream count is 0"));
            }
            if coupled > streams {
                return Err(bad("more coupled streams than streams"));
            }
            let decoded = u16::from(streams) + u16::from(coupled);
            if table.iter().any(|&m| m != 255 && u16::from(m) >= decoded) {
                return Err(bad("channel mapping entry out of range"));
            }
            if streams != 1 {
                return Err(VoiceError::UnsupportedMapping {
                    family: mapping_family,
                    channels,
                    streams,
                });
            }
            streams
        };
        Ok(OpusHead {
            version,
            channels,
            pre_skip,
            input_rate,
            output_gain,
            mapping_family,
            streams,
        })
    }
}

/// Our `OpusTags` packet: vendor [`VENDOR`], no comments.
fn tags_bytes() -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + VENDOR.len());
    b.extend_from_slice(OPUS_TAGS);
    b.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
    b.extend_from_slice(VENDOR.as_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// Checks an `OpusTags` packet's structure (every length within the packet) and returns its
/// vendor string. Comments are not kept; bytes after them are allowed (RFC 7845 §5.2).
fn parse_tags(packet: &[u8]) -> Result<String> {
    let bad = |reason| VoiceError::BadHeader {
        header: "OpusTags",
        reason,
    };
    if !packet.starts_with(OPUS_TAGS) {
        return Err(bad("wrong magic signature"));
    }
    let mut at = OPUS_TAGS.len();
    // A length-prefixed field at `at`; moves `at` past it.
    let field = |at: &mut usize| -> Result<std::ops::Range<usize>> {
        let len = le_u32(packet, *at).ok_or(bad("truncated"))? as usize;
        let start = *at + 4;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= packet.len())
            .ok_or(bad("a length runs past the end of the packet"))?;
        *at = end;
        Ok(start..end)
    };
    let vendor = field(&mut at)?;
    let count = le_u32(packet, at).ok_or(bad("truncated"))?;
    at += 4;
    // Each comment takes at least 4 bytes, so a huge count fails within the packet's length.
    for _ in 0..count {
        field(&mut at)?;
    }
    Ok(String::from_utf8_lossy(&packet[vendor]).into_owned())
}

/// An encoded voice message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OggOpus {
    /// The complete Ogg Opus file.
    pub bytes: Vec<u8>,
    /// 48 kHz samples it decodes to: the input's length at 48 kHz, to the nearest sample.
    pub samples: u64,
    /// The input's sample rate (also in the header).
    pub input_rate: u32,
    /// The header's pre-skip: encoder look-ahead plus resampler delay, 48 kHz samples.
    pub pre_skip: u16,
}

impl OggOpus {
    /// Length in milliseconds, rounded to the nearest.
    pub fn duration_ms(&self) -> u64 {
        samples_to_ms(self.samples)
    }
}

/// The encoder settings of a voice message.
fn message_config() -> EncoderConfig {
    EncoderConfig {
        frame: FrameDuration::Ms20,
        bitrate_bps: BITRATE_BPS,
        complexity: COMPLEXITY,
        expected_loss_percent: 0,
        fec: false,
        dtx: false,
        max_bandwidth: MaxBandwidth::Fullband,
    }
}

/// Encodes a recording as it arrives: [`Self::push`] mono samples at the input rate, then
/// [`Self::finish`] for the file. Memory stays at the file itself plus a frame or two.
pub struct OggOpusEncoder {
    encoder: VoiceEncoder,
    resampler: ToNetwork,
    writer: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    input_rate: u32,
    pre_skip: u16,
    /// Input samples pushed so far.
    input_samples: u64,
    /// 48 kHz samples from the resampler not yet encoded.
    staged: Vec<f32>,
    /// Frames encoded so far.
    frames: u64,
    /// The latest packet and its granule position: written when the next one comes, or by
    /// `finish` as the last of the stream.
    held: Option<(Vec<u8>, u64)>,
    packets_in_page: usize,
    packet: Vec<u8>,
}

impl OggOpusEncoder {
    /// Starts a voice message of mono samples at `input_rate` Hz (8 k, 16 k, 44.1 k, 48 k…:
    /// any rate [`ToNetwork`] takes).
    pub fn new(input_rate: u32) -> Result<OggOpusEncoder> {
        let resampler = ToNetwork::new(input_rate)?;
        let encoder = VoiceEncoder::new(&message_config())?;
        let delay = encoder.lookahead_samples()? as usize + resampler.delay();
        let pre_skip = u16::try_from(delay).map_err(|_| VoiceError::Delay { samples: delay })?;
        let serial = getrandom::u32().map_err(VoiceError::Random)?;
        let mut writer = PacketWriter::new(Vec::with_capacity(8 * 1024));
        let head = OpusHead::mono(pre_skip, input_rate).to_bytes();
        // Each header alone on its page, granule position 0 (RFC 7845 §3).
        for header in [head, tags_bytes()] {
            writer
                .write_packet(header, serial, PacketWriteEndInfo::EndPage, 0)
                .map_err(VoiceError::Write)?;
        }
        Ok(OggOpusEncoder {
            encoder,
            resampler,
            writer,
            serial,
            input_rate,
            pre_skip,
            input_samples: 0,
            staged: Vec::with_capacity(4 * FRAME),
            frames: 0,
            held: None,
            packets_in_page: 0,
            packet: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// The header's pre-skip (48 kHz samples).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Adds mono samples (full scale ±1.0) at the input rate; encodes every frame it can.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        for chunk in samples.chunks(PUSH_CHUNK) {
            self.input_samples += chunk.len() as u64;
            self.resampler.push(chunk);
            self.pull_frames()?;
            // Never encode past what the input so far fills: the stream then ends with at
            // most one frame of padding, which the last granule position trims.
            let filled = u64::from(self.pre_skip) + self.output_len();
            self.encode_staged(filled / FRAME as u64)?;
        }
        Ok(())
    }

    /// Ends the stream: flushes the resampler, pads the last frame and writes the last page
    /// with end trimming.
    pub fn finish(mut self) -> Result<OggOpus> {
        let samples = self.output_len();
        let end = u64::from(self.pre_skip) + samples;
        let frames = end.div_ceil(FRAME as u64).max(1);
        // Silence pushes the input's tail out of the resampler. Each round yields at least
        // half a frame at any supported rate (up to 192 kHz); the bound is only a backstop.
        let silence = [0f32; PUSH_CHUNK];
        for _ in 0..64 {
            if self.frames + (self.staged.len() / FRAME) as u64 >= frames {
                break;
            }
            self.resampler.push(&silence);
            self.pull_frames()?;
        }
        let missing = (frames.saturating_sub(self.frames) as usize) * FRAME;
        if self.staged.len() < missing {
            self.staged.resize(missing, 0.0);
        }
        self.encode_staged(frames)?;
        if let Some((packet, _)) = self.held.take() {
            self.write_audio(packet, end, true)?;
        }
        Ok(OggOpus {
            bytes: self.writer.into_inner(),
            samples,
            input_rate: self.input_rate,
            pre_skip: self.pre_skip,
        })
    }

    /// The input so far at 48 kHz.
    fn output_len(&self) -> u64 {
        network_len(self.input_samples, self.input_rate)
    }

    fn pull_frames(&mut self) -> Result<()> {
        let mut frame = [0f32; FRAME];
        while self.resampler.pop_frame(&mut frame)? {
            self.staged.extend_from_slice(&frame);
        }
        Ok(())
    }

    /// Encodes staged frames until `max_frames` have been encoded in all.
    fn encode_staged(&mut self, max_frames: u64) -> Result<()> {
        let mut used = 0;
        let mut frame = [0f32; FRAME];
        while self.frames < max_frames && self.staged.len() - used >= FRAME {
            frame.copy_from_slice(&self.staged[used..used + FRAME]);
            used += FRAME;
            self.encode_frame(&frame)?;
        }
        self.staged.drain(..used);
        Ok(())
    }

    fn encode_frame(&mut self, frame: &[f32; FRAME]) -> Result<()> {
        let len = match self.encoder.encode(frame, &mut self.packet)? {
            Some(len) => len,
            // VoiceEncoder withholds 1–2 byte (DTX) packets. Without DTX libopus does not make
            // them (digital silence is 3 bytes), but should one come, its TOC byte alone (code
            // 0, no frame data) keeps the timing: decoders conceal it as a lost frame.
            None => {
                self.packet[0] &= 0xfc;
                1
            }
        };
        self.frames += 1;
        let packet = self.packet[..len].to_vec();
        let granule = self.frames * FRAME as u64;
        if let Some((previous, granule)) = self.held.replace((packet, granule)) {
            self.write_audio(previous, granule, false)?;
        }
        Ok(())
    }

    fn write_audio(&mut self, packet: Vec<u8>, granule: u64, last: bool) -> Result<()> {
        self.packets_in_page += 1;
        let end = if last {
            PacketWriteEndInfo::EndStream
        } else if self.packets_in_page >= PACKETS_PER_PAGE {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        if end != PacketWriteEndInfo::NormalPacket {
            self.packets_in_page = 0;
        }
        self.writer
            .write_packet(packet, self.serial, end, granule)
            .map_err(VoiceError::Write)
    }
}

/// Encodes mono samples at `rate` Hz (full scale ±1.0) as an Ogg Opus file.
pub fn encode_pcm(samples: &[f32], rate: u32) -> Result<Vec<u8>> {
    let mut encoder = OggOpusEncoder::new(rate)?;
    encoder.push(samples)?;
    Ok(encoder.finish()?.bytes)
}

/// Encodes a WAV file (8–32 bit PCM or 32-bit float, any channel count, any rate
/// [`ToNetwork`] takes) as an Ogg Opus file. Channels are averaged; the file is read in
/// pieces, so its length costs no memory beyond the (much smaller) result.
pub fn encode_wav(path: &Path) -> Result<OggOpus> {
    let file = std::fs::File::open(path).map_err(|e| VoiceError::Wav {
        path: path.to_owned(),
        source: hound::Error::IoError(e),
    })?;
    encode_wav_file(file, path)
}

/// [`encode_wav`] of a file already open (`path` names it in errors).
pub fn encode_wav_file(file: std::fs::File, path: &Path) -> Result<OggOpus> {
    let wav_error = |source| VoiceError::Wav {
        path: path.to_owned(),
        source,
    };
    let mut reader = WavReader::new(std::io::BufReader::new(file)).map_err(wav_error)?;
    let spec = reader.spec();
    let bad = |message: String| VoiceError::WavFormat {
        path: path.to_owned(),
        message,
    };
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(bad(format!(
            "invalid header: {} Hz, {} channels",
            spec.sample_rate, spec.channels
        )));
    }
    let mut encoder = OggOpusEncoder::new(spec.sample_rate)?;
    let channels = usize::from(spec.channels);
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, bits @ 1..=32) => downmix_into(
            reader.samples::<i32>(),
            channels,
            |v| int_to_f32(v, bits),
            &mut encoder,
        ),
        (SampleFormat::Float, 32) => {
            downmix_into(reader.samples::<f32>(), channels, |v| v, &mut encoder)
        }
        (format, bits) => {
            return Err(bad(format!(
                "{bits}-bit {format:?} samples are not supported (use 8-32 bit PCM or 32-bit float)"
            )));
        }
    }
    .map_err(|e| match e {
        DownmixError::Wav(source) => wav_error(source),
        DownmixError::Voice(e) => e,
    })?;
    encoder.finish()
}

enum DownmixError {
    Wav(hound::Error),
    Voice(VoiceError),
}

/// Averages each interleaved frame of `samples` into one mono sample and pushes them to
/// `encoder` in pieces. A trailing partial frame is dropped.
fn downmix_into<S>(
    samples: impl Iterator<Item = hound::Result<S>>,
    channels: usize,
    convert: impl Fn(S) -> f32,
    encoder: &mut OggOpusEncoder,
) -> std::result::Result<(), DownmixError> {
    let mut block = Vec::with_capacity(PUSH_CHUNK);
    let (mut sum, mut n) = (0.0f32, 0);
    for sample in samples {
        sum += convert(sample.map_err(DownmixError::Wav)?);
        n += 1;
        if n == channels {
            block.push(sum / channels as f32);
            (sum, n) = (0.0, 0);
            if block.len() == PUSH_CHUNK {
                encoder.push(&block).map_err(DownmixError::Voice)?;
                block.clear();
            }
        }
    }
    encoder.push(&block).map_err(DownmixError::Voice)
}

/// What [`info`] reads from a file without decoding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OggOpusInfo {
    /// The identification header.
    pub head: OpusHead,
    /// The `OpusTags` vendor string (lossily UTF-8).
    pub vendor: String,
    /// 48 kHz samples the file decodes to: the last granule position less the first audio
    /// page's starting position and the pre-skip.
    pub samples: u64,
}

impl OggOpusInfo {
    /// Length in milliseconds, rounded to the nearest.
    pub fn duration_ms(&self) -> u64 {
        samples_to_ms(self.samples)
    }
}

/// Reads the headers and the granule positions of an Ogg Opus file (checking every page's
/// CRC and every packet's table of contents, but decoding nothing).
pub fn info(bytes: &[u8]) -> Result<OggOpusInfo> {
    let mut demux = Demux::open(bytes)?;
    let mut timeline = Timeline::new(demux.head.pre_skip);
    while let Some(page) = demux.next_page()? {
        let samples = page_samples(&page, demux.packets_before(&page), |_, _| Ok(()))?;
        timeline.page(page.granule, samples, page.eos)?;
    }
    Ok(OggOpusInfo {
        samples: timeline.duration(),
        head: demux.head,
        vendor: demux.vendor,
    })
}

/// The length of an Ogg Opus file in milliseconds, from its last granule position.
pub fn duration_ms(bytes: &[u8]) -> Result<u64> {
    info(bytes).map(|i| i.duration_ms())
}

/// Decodes an Ogg Opus file to 48 kHz mono samples and its length in milliseconds, with at
/// most [`DEFAULT_MAX_SAMPLES`] samples.
pub fn decode(bytes: &[u8]) -> Result<(Vec<f32>, u64)> {
    decode_with_limit(bytes, DEFAULT_MAX_SAMPLES)
}

/// [`decode`] with a limit of `max_samples` output samples: a longer file is
/// [`VoiceError::TooLong`], found before its audio is decoded past the limit.
pub fn decode_with_limit(bytes: &[u8], max_samples: usize) -> Result<(Vec<f32>, u64)> {
    let mut demux = Demux::open(bytes)?;
    let head = demux.head.clone();
    let pre_skip = u64::from(head.pre_skip);
    let mut timeline = Timeline::new(head.pre_skip);
    let mut decoder: Option<VoiceDecoder> = None;
    let mut frame_samples = None;
    let mut out = Vec::new();
    let mut pcm = [0f32; FRAME];
    // Samples decoded so far, pre-skip included.
    let mut position = 0u64;
    while let Some(page) = demux.next_page()? {
        let first = demux.packets_before(&page);
        // Durations come from the packets' TOC bytes, so a bad page is refused before any
        // of it is decoded.
        let samples = page_samples(&page, first, |index, n| {
            if n != FrameDuration::Ms10.samples() && n != FrameDuration::Ms20.samples() {
                return Err(VoiceError::UnsupportedFrameDuration { index, samples: n });
            }
            match *frame_samples.get_or_insert(n) {
                expected if expected != n => Err(VoiceError::FrameDurationChanged {
                    index,
                    samples: n,
                    expected,
                }),
                _ => Ok(()),
            }
        })?;
        let keep = timeline.page(page.granule, samples, page.eos)?;
        let end = position.saturating_add(keep);
        if end.saturating_sub(pre_skip) > max_samples as u64 {
            return Err(VoiceError::TooLong { max_samples });
        }
        if decoder.is_none()
            && let Some(n) = frame_samples
        {
            let frame = if n == FrameDuration::Ms10.samples() {
                FrameDuration::Ms10
            } else {
                FrameDuration::Ms20
            };
            decoder = Some(VoiceDecoder::new(frame)?);
        }
        let Some(decoder) = decoder.as_mut() else {
            continue; // a page holds at least one packet, which set the frame length
        };
        for packet in &page.packets {
            let n = decoder.frame_samples();
            decoder.decode(packet, &mut pcm[..n])?;
            // Keep what lies after the pre-skip and before the end trimming.
            let from = pre_skip.saturating_sub(position).min(n as u64) as usize;
            let to = end.saturating_sub(position).min(n as u64) as usize;
            if from < to {
                out.extend_from_slice(&pcm[from..to]);
            }
            position += n as u64;
        }
    }
    if head.output_gain != 0 {
        let gain = 10f32.powf(f32::from(head.output_gain) / (20.0 * 256.0));
        out.iter_mut().for_each(|s| *s *= gain);
    }
    let ms = samples_to_ms(out.len() as u64);
    Ok((out, ms))
}

/// Total samples of a page's packets from their TOC bytes, each checked by `check(index,
/// samples)`; `first` is the index of the page's first packet.
fn page_samples(
    page: &Page,
    first: u64,
    mut check: impl FnMut(u64, usize) -> Result<()>,
) -> Result<u64> {
    let mut total = 0u64;
    for (i, packet) in page.packets.iter().enumerate() {
        let index = first + i as u64;
        let bad = |source| VoiceError::BadPacket { index, source };
        let toc = Packet::try_from(packet.as_slice()).map_err(bad)?;
        let n = opus_packet::nb_samples(toc, SampleRate::Hz48000).map_err(bad)?;
        check(index, n)?;
        total += n as u64;
    }
    Ok(total)
}

/// Follows the granule positions of a stream's audio pages (RFC 7845 §4): where the stream
/// starts, and how much of each page to keep.
struct Timeline {
    pre_skip: u64,
    /// Granule position before the first audio sample.
    start: Option<u64>,
    /// Granule position of the last audio page so far.
    last: Option<u64>,
}

impl Timeline {
    fn new(pre_skip: u16) -> Timeline {
        Timeline {
            pre_skip: u64::from(pre_skip),
            start: None,
            last: None,
        }
    }

    /// Takes the next audio page: its granule position, the samples its packets hold and
    /// whether it ends the stream. Returns how many of those samples to keep: all, except on
    /// the last page, whose granule position may trim the end.
    fn page(&mut self, granule: u64, samples: u64, eos: bool) -> Result<u64> {
        if granule > i64::MAX as u64 {
            // -1 belongs only on pages where no packet ends.
            return Err(VoiceError::BadGranule(
                "a page where packets end has a negative granule position",
            ));
        }
        let previous = match self.last {
            Some(previous) => previous,
            None => {
                // §4.5: the first audio page may start the stream later than 0, but not
                // earlier, unless it is also the last page.
                let start = match granule.checked_sub(samples) {
                    Some(start) => start,
                    None if eos => 0,
                    None => {
                        return Err(VoiceError::BadGranule(
                            "the first audio page ends before the samples it holds",
                        ));
                    }
                };
                if eos && granule < self.pre_skip {
                    return Err(VoiceError::BadGranule(
                        "the stream ends before its pre-skip",
                    ));
                }
                self.start = Some(start);
                start
            }
        };
        if granule < previous {
            return Err(VoiceError::BadGranule("granule positions go backwards"));
        }
        self.last = Some(granule);
        Ok(if eos {
            (granule - previous).min(samples)
        } else {
            samples
        })
    }

    /// Samples the stream decodes to, from the granule positions seen.
    fn duration(&self) -> u64 {
        match (self.start, self.last) {
            (Some(start), Some(last)) => (last - start).saturating_sub(self.pre_skip),
            _ => 0,
        }
    }
}

/// The completed packets of one audio page.
struct Page {
    packets: Vec<Vec<u8>>,
    granule: u64,
    eos: bool,
}

/// The Opus stream of an Ogg file, page by page, after its two headers.
struct Demux<'a> {
    reader: PacketReader<Cursor<&'a [u8]>>,
    serial: u32,
    head: OpusHead,
    vendor: String,
    ended: bool,
    /// Audio packets returned so far (for error messages).
    packets: u64,
}

impl<'a> Demux<'a> {
    /// Finds the first Opus stream (a beginning-of-stream page holding `OpusHead`) and reads
    /// its two headers.
    fn open(bytes: &'a [u8]) -> Result<Demux<'a>> {
        let mut reader = PacketReader::new(Cursor::new(bytes));
        let tags_missing = VoiceError::BadHeader {
            header: "OpusTags",
            reason: "missing",
        };
        let (serial, head, ended) = loop {
            let Some(packet) = read(&mut reader)? else {
                return Err(VoiceError::NoOpusStream);
            };
            if packet.first_in_stream() && packet.data.starts_with(OPUS_HEAD) {
                let head = OpusHead::parse(&packet.data)?;
                if !packet.last_in_page() {
                    return Err(VoiceError::BadHeader {
                        header: "OpusHead",
                        reason: "shares its page with another packet",
                    });
                }
                break (packet.stream_serial(), head, packet.last_in_stream());
            }
        };
        if ended {
            return Err(tags_missing);
        }
        let (vendor, ended) = loop {
            let Some(packet) = read(&mut reader)? else {
                return Err(tags_missing);
            };
            if packet.stream_serial() != serial {
                continue;
            }
            let vendor = parse_tags(&packet.data)?;
            if !packet.last_in_page() {
                return Err(VoiceError::BadHeader {
                    header: "OpusTags",
                    reason: "audio data shares its page",
                });
            }
            break (vendor, packet.last_in_stream());
        };
        Ok(Demux {
            reader,
            serial,
            head,
            vendor,
            ended,
            packets: 0,
        })
    }

    /// The next audio page with at least one completed packet, or `None` after the
    /// end-of-stream page or at the end of the bytes (a stream cut at a page boundary keeps
    /// what it has).
    fn next_page(&mut self) -> Result<Option<Page>> {
        let mut packets = Vec::new();
        while !self.ended {
            let Some(packet) = read(&mut self.reader)? else {
                self.ended = true;
                break;
            };
            if packet.stream_serial() != self.serial {
                continue;
            }
            let (last, eos, granule) = (
                packet.last_in_page(),
                packet.last_in_stream(),
                packet.absgp_page(),
            );
            packets.push(packet.data);
            if last {
                self.ended = eos;
                self.packets += packets.len() as u64;
                return Ok(Some(Page {
                    packets,
                    granule,
                    eos,
                }));
            }
        }
        // The reader hands out a page's packets together, so none are left over here.
        Ok(None)
    }

    /// Index of `page`'s first packet, `page` being the last one returned.
    fn packets_before(&self, page: &Page) -> u64 {
        self.packets - page.packets.len() as u64
    }
}

/// The next packet of any stream, with the ogg crate's errors made ours.
fn read(reader: &mut PacketReader<Cursor<&[u8]>>) -> Result<Option<::ogg::Packet>> {
    reader.read_packet().map_err(|e| match e {
        OggReadError::NoCapturePatternFound => VoiceError::NotOgg,
        OggReadError::InvalidStreamStructVer(v) => VoiceError::OggVersion(v),
        OggReadError::HashMismatch(stored, computed) => VoiceError::Checksum { stored, computed },
        OggReadError::ReadError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            VoiceError::Truncated
        }
        OggReadError::ReadError(e) => VoiceError::Read(e),
        OggReadError::InvalidData => VoiceError::Malformed,
    })
}

#[cfg(test)]
mod tests;
