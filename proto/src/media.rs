//! Media datagrams: one encoded audio frame ([`MediaFrame`]), a frame carrying copies of
//! the frames before it ([`RedundantFrame`], RED-style), a receiver's report on what
//! arrived ([`MediaReport`]) or the media features a party reads ([`MediaFeatures`]), each
//! alone in a QUIC datagram (or a media plane packet).
//!
//! All start with the same header, `call`, `source`, `seq`, `timestamp` (varints), and the
//! relay reads only `call`. The byte after the header tells them apart: a `MediaFrame`'s
//! `level` (0..=127), or a kind at 128 and up for the newer ones. A receiver that knows
//! only `MediaFrame` rejects a level above 127 and drops the datagram, so a sender may send
//! reports and features to any peer, sends redundant frames only to a peer whose reports
//! show that it reads them, and deep ones ([`KIND_REDUNDANT_DEEP`]: copies further back
//! than [`MAX_EARLIER`]) only to a peer whose features say it reads those
//! (docs/protocol.md §13.3).

use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;

/// The largest Opus payload a frame may carry (a 20 ms frame at 510 kbit/s is 1275 B).
pub const MAX_MEDIA_PAYLOAD: usize = 1275;

/// The most earlier frames a [`RedundantFrame`] carries, and how far back (in sequence
/// numbers) the oldest may be.
pub const MAX_EARLIER: usize = 2;

/// The most earlier frames a deep redundant frame ([`KIND_REDUNDANT_DEEP`]) carries.
pub const MAX_EARLIER_DEEP: usize = 4;
/// How far back (in sequence numbers) a deep redundant frame's copies may be.
pub const MAX_SEQ_BACK_DEEP: u8 = 8;

/// The byte after the header that marks a [`RedundantFrame`] whose copies are at most
/// [`MAX_EARLIER`] and at most that far back: every reader of redundant frames reads it.
pub const KIND_REDUNDANT: u8 = 0x80;
/// The byte after the header that marks a [`MediaReport`].
pub const KIND_REPORT: u8 = 0x81;
/// The byte after the header that marks a [`RedundantFrame`] with copies further back, or
/// more of them: up to [`MAX_EARLIER_DEEP`], up to [`MAX_SEQ_BACK_DEEP`] back. Sent only to
/// a peer whose [`MediaFeatures`] include [`FEATURE_DEEP_COPIES`].
pub const KIND_REDUNDANT_DEEP: u8 = 0x82;
/// The byte after the header that marks a [`MediaFeatures`].
pub const KIND_FEATURES: u8 = 0x83;
/// [`MediaFeatures::features`] bit: this party reads [`KIND_REDUNDANT_DEEP`].
pub const FEATURE_DEEP_COPIES: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFrame {
    /// The call this frame belongs to (assigned by the relay).
    pub call: u64,
    /// The sending participant within the call (assigned by the relay).
    pub source: u32,
    /// Increments by one per frame sent by `source`.
    pub seq: u32,
    /// Sample clock at 48 kHz of the frame's first sample.
    pub timestamp: u32,
    /// Speech level of the frame, 0 (loud) to 127 (silent), as RFC 6464 audio level.
    pub level: u8,
    /// The Opus packet.
    pub payload: Vec<u8>,
}

fn malformed() -> DecodeError {
    DecodeError::Malformed(postcard::Error::DeserializeBadEncoding)
}

fn strict<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

impl MediaFrame {
    /// Encodes the frame as one datagram.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes one datagram, rejecting trailing bytes and oversized payloads.
    pub fn decode(datagram: &[u8]) -> Result<MediaFrame, DecodeError> {
        let frame: MediaFrame = strict(datagram)?;
        if frame.payload.len() > MAX_MEDIA_PAYLOAD || frame.level > 127 {
            return Err(malformed());
        }
        Ok(frame)
    }
}

/// A copy of an earlier frame's Opus packet, carried in a later datagram so that the
/// receiver can play it when the earlier datagram was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earlier {
    /// How many sequence numbers before the carrying frame it was sent, 1..=[`MAX_EARLIER`].
    pub seq_back: u8,
    /// How many 48 kHz ticks before the carrying frame's timestamp it starts (not always a
    /// whole frame: DTX pauses lie between packets).
    pub ts_back: u32,
    /// Its Opus packet, 1..=[`MAX_MEDIA_PAYLOAD`] bytes.
    pub payload: Vec<u8>,
}

/// A [`MediaFrame`] and copies of up to [`MAX_EARLIER_DEEP`] frames sent before it: on
/// the wire [`KIND_REDUNDANT`] when they are at most [`MAX_EARLIER`], at most that far back,
/// and [`KIND_REDUNDANT_DEEP`] otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedundantFrame {
    pub frame: MediaFrame,
    /// Newest first, no two with the same `seq_back`.
    pub earlier: Vec<Earlier>,
}

impl RedundantFrame {
    /// Whether its copies need [`KIND_REDUNDANT_DEEP`] (more than [`MAX_EARLIER`], or one
    /// further back than that).
    pub fn is_deep(&self) -> bool {
        self.earlier.len() > MAX_EARLIER
            || self
                .earlier
                .iter()
                .any(|e| usize::from(e.seq_back) > MAX_EARLIER)
    }
}

/// Wire layout of a redundant frame (the header, then [`KIND_REDUNDANT`]).
#[derive(Serialize, Deserialize)]
struct RedundantWire<'a> {
    call: u64,
    source: u32,
    seq: u32,
    timestamp: u32,
    kind: u8,
    level: u8,
    #[serde(borrow)]
    payload: &'a [u8],
    earlier: Vec<Earlier>,
}

/// What a receiver measured of one sender's frames over the latest interval (about a
/// second), for the sender to adapt its bitrate, FEC and redundancy to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaReport {
    /// The call (assigned by the relay).
    pub call: u64,
    /// The reporting participant (the far side of the frames reported on).
    pub source: u32,
    /// Counts the reporter's reports, from 0.
    pub number: u32,
    /// The interval reported on, ms.
    pub interval_ms: u32,
    /// [`KIND_REPORT`].
    kind: u8,
    /// Frames the sender's sequence numbers say it sent in the interval.
    pub expected: u16,
    /// Of them, frames whose datagram did not arrive (before redundancy repaired any).
    pub lost: u16,
    /// Runs of consecutive lost frames (`lost / bursts` is the mean burst).
    pub bursts: u16,
    /// Frames that arrived too late to be played.
    pub late: u16,
    /// Lost frames played from a redundant copy.
    pub repaired: u16,
    /// Interarrival jitter (RFC 3550 §6.4.1), ms.
    pub jitter_ms: u16,
    /// The receiver's jitter buffer delay now, ms.
    pub delay_ms: u16,
}

impl MediaReport {
    /// A report by `source` in `call`; fill in the measurements.
    pub fn new(call: u64, source: u32, number: u32, interval_ms: u32) -> Self {
        Self {
            call,
            source,
            number,
            interval_ms,
            kind: KIND_REPORT,
            expected: 0,
            lost: 0,
            bursts: 0,
            late: 0,
            repaired: 0,
            jitter_ms: 0,
            delay_ms: 0,
        }
    }

    /// The share of frames lost, 0.0..=1.0 (0 when nothing was expected).
    pub fn loss(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            f64::from(self.lost) / f64::from(self.expected)
        }
    }
}

/// The media datagram kinds a party reads beyond the first three, sent with each of its
/// reports: a sender uses a kind only once the peer's features have named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFeatures {
    /// The call (assigned by the relay).
    pub call: u64,
    /// The party whose features these are.
    pub source: u32,
    /// Counts the party's features datagrams, from 0.
    pub number: u32,
    /// Always 0 (the header's `timestamp`).
    reserved: u32,
    /// [`KIND_FEATURES`].
    kind: u8,
    /// Bits: [`FEATURE_DEEP_COPIES`]; bits a receiver does not know are ignored.
    pub features: u32,
}

impl MediaFeatures {
    pub fn new(call: u64, source: u32, number: u32, features: u32) -> Self {
        Self {
            call,
            source,
            number,
            reserved: 0,
            kind: KIND_FEATURES,
            features,
        }
    }

    /// Whether the party reads [`KIND_REDUNDANT_DEEP`].
    pub fn deep_copies(&self) -> bool {
        self.features & FEATURE_DEEP_COPIES != 0
    }
}

/// One received media datagram, of whichever kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaDatagram {
    Frame(MediaFrame),
    Redundant(RedundantFrame),
    Report(MediaReport),
    Features(MediaFeatures),
}

/// The header all kinds share, and the byte after it.
#[derive(Deserialize)]
struct Head {
    _call: u64,
    _source: u32,
    _seq: u32,
    _timestamp: u32,
    kind: u8,
}

impl MediaDatagram {
    /// Encodes the datagram; a redundant frame without earlier frames goes as a plain
    /// [`MediaFrame`], one with deep copies as [`KIND_REDUNDANT_DEEP`].
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Frame(f) => f.encode(),
            Self::Redundant(r) if r.earlier.is_empty() => r.frame.encode(),
            Self::Redundant(r) => postcard::to_allocvec(&RedundantWire {
                call: r.frame.call,
                source: r.frame.source,
                seq: r.frame.seq,
                timestamp: r.frame.timestamp,
                kind: if r.is_deep() {
                    KIND_REDUNDANT_DEEP
                } else {
                    KIND_REDUNDANT
                },
                level: r.frame.level,
                payload: &r.frame.payload,
                earlier: r.earlier.clone(),
            })
            .unwrap_or_default(),
            Self::Report(r) => postcard::to_allocvec(r).unwrap_or_default(),
            Self::Features(f) => postcard::to_allocvec(f).unwrap_or_default(),
        }
    }

    /// Decodes one datagram of any kind strictly: no trailing bytes, payloads and counts
    /// within their limits, an unknown kind refused.
    pub fn decode(datagram: &[u8]) -> Result<MediaDatagram, DecodeError> {
        let (head, _): (Head, _) =
            postcard::take_from_bytes(datagram).map_err(DecodeError::Malformed)?;
        match head.kind {
            0..=127 => MediaFrame::decode(datagram).map(Self::Frame),
            KIND_REDUNDANT | KIND_REDUNDANT_DEEP => {
                let w: RedundantWire = strict(datagram)?;
                let (count, back) = if head.kind == KIND_REDUNDANT {
                    (MAX_EARLIER, MAX_EARLIER as u8)
                } else {
                    (MAX_EARLIER_DEEP, MAX_SEQ_BACK_DEEP)
                };
                let payload_ok = |p: &[u8]| p.len() <= MAX_MEDIA_PAYLOAD;
                let earlier_ok = |e: &Earlier| {
                    (1..=back).contains(&e.seq_back)
                        && !e.payload.is_empty()
                        && payload_ok(&e.payload)
                };
                let distinct = w
                    .earlier
                    .iter()
                    .enumerate()
                    .all(|(i, e)| w.earlier[..i].iter().all(|o| o.seq_back != e.seq_back));
                if w.level > 127
                    || !payload_ok(w.payload)
                    || w.earlier.len() > count
                    || !w.earlier.iter().all(earlier_ok)
                    || !distinct
                {
                    return Err(malformed());
                }
                Ok(Self::Redundant(RedundantFrame {
                    frame: MediaFrame {
                        call: w.call,
                        source: w.source,
                        seq: w.seq,
                        timestamp: w.timestamp,
                        level: w.level,
                        payload: w.payload.to_vec(),
                    },
                    earlier: w.earlier,
                }))
            }
            KIND_REPORT => {
                let r: MediaReport = strict(datagram)?;
                if r.lost > r.expected || r.bursts > r.lost || r.repaired > r.lost {
                    return Err(malformed());
                }
                Ok(Self::Report(r))
            }
            KIND_FEATURES => {
                let f: MediaFeatures = strict(datagram)?;
                if f.reserved != 0 {
                    return Err(malformed());
                }
                Ok(Self::Features(f))
            }
            _ => Err(malformed()),
        }
    }
}

/// The call id at the start of an encoded frame, for forwarding without decoding the
/// rest (the relay's hot path).
pub fn peek_call(datagram: &[u8]) -> Option<u64> {
    postcard::take_from_bytes::<u64>(datagram)
        .ok()
        .map(|(call, _)| call)
}

/// What a conference's forwarding reads of a datagram, without decoding the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked {
    pub call: u64,
    pub source: u32,
    /// The speech level of a frame or a redundant frame; `None` for a report or an
    /// unknown kind.
    pub level: Option<u8>,
}

/// Reads a datagram's header and level (see [`Peeked`]).
pub fn peek_level(datagram: &[u8]) -> Option<Peeked> {
    #[derive(Deserialize)]
    struct Ids {
        call: u64,
        source: u32,
    }
    let (head, rest): (Head, _) = postcard::take_from_bytes(datagram).ok()?;
    let level = match head.kind {
        0..=127 => Some(head.kind),
        KIND_REDUNDANT | KIND_REDUNDANT_DEEP => Some(*rest.first()?).filter(|l| *l <= 127),
        _ => None,
    };
    let (ids, _): (Ids, _) = postcard::take_from_bytes(datagram).ok()?;
    Some(Peeked {
        call: ids.call,
        source: ids.source,
        level,
    })
}

#[cfg(test)]
mod tests;
