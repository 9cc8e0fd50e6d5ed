//! `MediaFrame`: one encoded audio frame, carried alone in a QUIC datagram.

use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;

/// The largest Opus payload a frame may carry (a 20 ms frame at 510 kbit/s is 1275 B).
pub const MAX_MEDIA_PAYLOAD: usize = 1275;

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

impl MediaFrame {
    /// Encodes the frame as one datagram.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes one datagram, rejecting trailing bytes and oversized payloads.
    pub fn decode(datagram: &[u8]) -> Result<MediaFrame, DecodeError> {
        let (frame, rest): (MediaFrame, _) =
            postcard::take_from_bytes(datagram).map_err(DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        if frame.payload.len() > MAX_MEDIA_PAYLOAD || frame.level > 127 {
            return Err(DecodeError::Malformed(
                postcard::Error::DeserializeBadEncoding,
            ));
        }
        Ok(frame)
    }
}

/// The call id at the start of an encoded frame, for forwarding without decoding the
/// rest (the relay's hot path).
pub fn peek_call(datagram: &[u8]) -> Option<u64> {
    postcard::take_from_bytes::<u64>(datagram)
        .ok()
        .map(|(call, _)| call)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn media_frames_round_trip(call in any::<u64>(), source in any::<u32>(), seq in any::<u32>(),
                                   timestamp in any::<u32>(), level in 0u8..=127,
                                   payload in proptest::collection::vec(any::<u8>(), 0..MAX_MEDIA_PAYLOAD)) {
            let f = MediaFrame { call, source, seq, timestamp, level, payload };
            let bytes = f.encode();
            prop_assert_eq!(peek_call(&bytes), Some(call));
            prop_assert_eq!(MediaFrame::decode(&bytes).unwrap(), f);
        }

        #[test]
        fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = MediaFrame::decode(&bytes);
        }
    }
}
