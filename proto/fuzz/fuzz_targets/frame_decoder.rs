//! `FrameDecoder` on an arbitrary byte stream pushed in arbitrary pieces.
//!
//! Input layout: byte 0 gives `n = data[0] % 16`, the next `n` bytes are control bytes,
//! the rest is the stream. Control byte `c` pushes the next `c & 0x7f` stream bytes
//! (0 pushes an empty slice), then pops every ready frame, then compacts if `c & 0x80`.
//! Whatever is left of the stream after the control bytes is pushed in one piece.
//!
//! Checks: every frame is at most `MAX_FRAME`; `buffered()` is exactly what was pushed
//! minus what was returned (so never more than was pushed); the frames, re-framed with
//! `write_frame`, are byte-for-byte the consumed prefix of the stream (only canonical
//! headers are accepted); errors are sticky; and the split does not matter: the same
//! stream pushed whole gives the same frames and the same end state.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phoned_proto::frame::{FrameDecoder, FrameError, MAX_FRAME, write_frame};

/// How one decoder run ended.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<u8>>,
    error: Option<FrameError>,
    buffered: usize,
}

struct Run {
    d: FrameDecoder,
    pushed: usize,
    consumed: usize,
    frames: Vec<Vec<u8>>,
    error: Option<FrameError>,
}

impl Run {
    fn new() -> Self {
        Run {
            d: FrameDecoder::new(),
            pushed: 0,
            consumed: 0,
            frames: Vec::new(),
            error: None,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.d.push(bytes);
        self.pushed += bytes.len();
        assert_eq!(self.d.buffered(), self.pushed - self.consumed);
    }

    fn pop_all(&mut self) {
        loop {
            match self.d.next_frame() {
                Ok(Some(f)) => {
                    assert!(self.error.is_none(), "a frame after an error");
                    assert!(f.len() <= MAX_FRAME, "frame of {} bytes", f.len());
                    let mut framed = Vec::new();
                    write_frame(&mut framed, f).expect("a decoded frame must re-encode");
                    self.consumed += framed.len();
                    self.frames.push(f.to_vec());
                }
                Ok(None) => {
                    assert!(self.error.is_none(), "an error that was not sticky");
                    break;
                }
                Err(e) => {
                    if let Some(prev) = &self.error {
                        assert_eq!(prev, &e, "the sticky error changed");
                        break;
                    }
                    self.error = Some(e);
                    // Ask once more: it must be the same error again.
                }
            }
        }
        assert!(self.consumed <= self.pushed);
        assert_eq!(
            self.d.buffered(),
            self.pushed - self.consumed,
            "buffered() is not what was pushed minus the frames returned (canonical headers)"
        );
    }

    fn finish(self, stream: &[u8]) -> Outcome {
        let mut reframed = Vec::new();
        for f in &self.frames {
            write_frame(&mut reframed, f).unwrap();
        }
        assert_eq!(
            &reframed[..],
            &stream[..self.consumed],
            "frames are not the stream"
        );
        Outcome {
            frames: self.frames,
            error: self.error,
            buffered: self.d.buffered(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (controls, stream) = rest.split_at(n);

    let mut chunked = Run::new();
    let mut at = 0;
    for &c in controls {
        let end = (at + usize::from(c & 0x7f)).min(stream.len());
        chunked.push(&stream[at..end]);
        at = end;
        chunked.pop_all();
        if c & 0x80 != 0 {
            chunked.d.compact();
            assert_eq!(chunked.d.buffered(), chunked.pushed - chunked.consumed);
        }
    }
    chunked.push(&stream[at..]);
    chunked.pop_all();
    let chunked = chunked.finish(stream);

    let mut whole = Run::new();
    whole.push(stream);
    whole.pop_all();
    let whole = whole.finish(stream);

    assert_eq!(
        chunked, whole,
        "the result depends on how the stream was split"
    );
});
