//! Control-stream framing: each frame is an unsigned LEB128 varint length followed by
//! that many bytes of postcard body. A frame longer than [`MAX_FRAME`] is an error, found
//! from the header alone, so a hostile peer can never make us buffer more than that.

use thiserror::Error;

/// The largest frame body accepted or produced (64 KiB).
pub const MAX_FRAME: usize = 64 * 1024;

/// A varint for any length up to `MAX_FRAME` fits in 3 bytes; we allow up to 5 (a u32)
/// so that an oversized length is reported as oversized, not as a malformed varint.
const MAX_VARINT_LEN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(u64),
    #[error("malformed frame length")]
    BadLength,
}

/// Appends `body` to `out` as one frame.
///
/// ```
/// let mut out = Vec::new();
/// phoned_proto::frame::write_frame(&mut out, b"hi").unwrap();
/// assert_eq!(out, [2, b'h', b'i']);
/// ```
pub fn write_frame(out: &mut Vec<u8>, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len() as u64));
    }
    let mut n = body.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    Ok(())
}

/// Reads a frame header from the start of `buf`.
///
/// Returns `Ok(None)` if more bytes are needed, else the body length and header length.
fn read_header(buf: &[u8]) -> Result<Option<(usize, usize)>, FrameError> {
    let mut len: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(MAX_VARINT_LEN) {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                // Over-long encoding (a trailing zero group): not canonical.
                return Err(FrameError::BadLength);
            }
            if len > MAX_FRAME as u64 {
                return Err(FrameError::TooLarge(len));
            }
            return Ok(Some((len as usize, i + 1)));
        }
        if len > MAX_FRAME as u64 {
            return Err(FrameError::TooLarge(len));
        }
    }
    if buf.len() >= MAX_VARINT_LEN {
        return Err(FrameError::BadLength);
    }
    Ok(None)
}

/// Splits a byte stream into frames. Push bytes as they arrive; pop whole frames.
///
/// The internal buffer never holds more than one maximum frame plus its header beyond
/// what the caller has already pushed: an oversized header is an error at once.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Returns the next whole frame body, `Ok(None)` if more bytes are needed, or the
    /// error that ended the stream (sticky: the stream cannot be resynchronised).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let pending = &self.buf[self.start..];
        let (len, header) = match read_header(pending) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                return Err(e);
            }
        };
        if pending.len() < header + len {
            return Ok(None);
        }
        let body_start = self.start + header;
        self.start = body_start + len;
        Ok(Some(&self.buf[body_start..self.start]))
    }

    /// Takes the bytes pushed but not returned as frames (e.g. raw data that follows a
    /// header frame on a bulk stream), leaving the decoder empty.
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        rest
    }

    /// Drops consumed bytes so the buffer does not grow without bound on a long stream.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(bodies: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in bodies {
            write_frame(&mut out, b).unwrap();
        }
        out
    }

    #[test]
    fn header_boundaries() {
        let mut out = Vec::new();
        write_frame(&mut out, &[7; 127]).unwrap();
        assert_eq!(out[0], 127);
        out.clear();
        write_frame(&mut out, &[7; 128]).unwrap();
        assert_eq!(&out[..2], &[0x80, 0x01]);
        out.clear();
        assert!(write_frame(&mut out, &vec![0; MAX_FRAME]).is_ok());
        assert_eq!(
            write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]),
            Err(FrameError::TooLarge(MAX_FRAME as u64 + 1))
        );
    }

    #[test]
    fn oversized_header_is_rejected_before_the_body_arrives() {
        let mut d = FrameDecoder::new();
        // 65537 as a varint: 0x81 0x80 0x04
        d.push(&[0x81, 0x80, 0x04]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge(65537)));
        // Sticky.
        d.push(&[1, 2, 3]);
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn endless_continuation_bytes_are_rejected() {
        let mut d = FrameDecoder::new();
        d.push(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80]);
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn non_canonical_length_is_rejected() {
        let mut d = FrameDecoder::new();
        d.push(&[0x81, 0x00, 9]);
        assert_eq!(d.next_frame(), Err(FrameError::BadLength));
    }

    #[test]
    fn empty_frame_is_allowed() {
        let mut d = FrameDecoder::new();
        d.push(&[0]);
        assert_eq!(d.next_frame(), Ok(Some(&[][..])));
        assert_eq!(d.next_frame(), Ok(None));
    }

    proptest! {
        #[test]
        fn frames_round_trip_under_any_split(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let wire = frames(&bodies);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts {
                d.push(&wire[at..c]);
                at = c;
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
                d.compact();
            }
            prop_assert_eq!(got, bodies);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn random_bytes_never_panic_and_never_overbuffer(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            while let Ok(Some(f)) = d.next_frame() {
                prop_assert!(f.len() <= MAX_FRAME);
            }
            prop_assert!(d.buffered() <= bytes.len());
        }
    }
}
