//! `MediaFrame::decode` on an arbitrary datagram.
//!
//! Checks: no panic; a decoded frame respects the payload and level limits, and
//! `encode` gives a datagram no longer than the input that decodes to the same frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phoned_proto::media::{MAX_MEDIA_PAYLOAD, MediaFrame};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = MediaFrame::decode(data) else {
        return;
    };
    assert!(frame.payload.len() <= MAX_MEDIA_PAYLOAD);
    assert!(frame.level <= 127);
    let datagram = frame.encode();
    assert!(!datagram.is_empty());
    assert!(datagram.len() <= data.len());
    assert_eq!(MediaFrame::decode(&datagram), Ok(frame));
});
