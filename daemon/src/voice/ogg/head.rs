//! The two Ogg Opus headers: `OpusHead` (RFC 7845 §5.1) and `OpusTags` (§5.2), written
//! and parsed.

use super::*;

pub(super) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

pub(super) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
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
    pub(super) fn mono(pre_skip: u16, input_rate: u32) -> OpusHead {
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
    pub(super) fn to_bytes(&self) -> Vec<u8> {
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
pub(super) fn tags_bytes() -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + VENDOR.len());
    b.extend_from_slice(OPUS_TAGS);
    b.extend_from_slice(&(VENDOR.len() as u32).to_le_bytes());
    b.extend_from_slice(VENDOR.as_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

/// Checks an `OpusTags` packet's structure (every length within the packet) and returns its
/// vendor string. Comments are not kept; bytes after them are allowed (RFC 7845 §5.2).
pub(super) fn parse_tags(packet: &[u8]) -> Result<String> {
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
