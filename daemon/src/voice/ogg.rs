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

mod decode;
mod encode;
mod head;

pub use decode::{OggOpusInfo, decode, decode_with_limit, duration_ms, info};
pub use encode::{OggOpus, OggOpusEncoder, encode_pcm, encode_wav, encode_wav_file};
pub use head::OpusHead;

#[cfg(test)]
mod tests;
