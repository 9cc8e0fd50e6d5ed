//! `MediaFrame::decode` and `MediaDatagram::decode` (frames, redundant frames shallow and
//! deep, receiver reports, features) on an arbitrary datagram.
//!
//! Checks: no panic; a decoded frame respects the payload and level limits, and
//! `encode` gives a datagram no longer than the input that decodes to the same value;
//! what `MediaFrame::decode` accepts, `MediaDatagram::decode` reads as the same frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phoned_proto::media::{
    MAX_EARLIER_DEEP, MAX_MEDIA_PAYLOAD, MAX_SEQ_BACK_DEEP, MediaDatagram, MediaFrame,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = MediaFrame::decode(data) {
        assert!(frame.payload.len() <= MAX_MEDIA_PAYLOAD);
        assert!(frame.level <= 127);
        let datagram = frame.encode();
        assert!(!datagram.is_empty());
        assert!(datagram.len() <= data.len());
        assert_eq!(MediaFrame::decode(&datagram), Ok(frame.clone()));
        assert_eq!(MediaDatagram::decode(data), Ok(MediaDatagram::Frame(frame)));
    }
    let Ok(datagram) = MediaDatagram::decode(data) else {
        return;
    };
    match &datagram {
        MediaDatagram::Frame(_) => {}
        MediaDatagram::Redundant(r) => {
            assert!(r.frame.level <= 127);
            assert!(r.earlier.len() <= MAX_EARLIER_DEEP);
            assert!(r.earlier.iter().all(|e| !e.payload.is_empty()
                && e.payload.len() <= MAX_MEDIA_PAYLOAD
                && (1..=MAX_SEQ_BACK_DEEP).contains(&e.seq_back)));
        }
        MediaDatagram::Report(r) => assert!(r.lost <= r.expected && r.bursts <= r.lost),
        MediaDatagram::Features(_) => {}
    }
    let again = datagram.encode();
    assert!(!again.is_empty() && again.len() <= data.len());
    assert_eq!(MediaDatagram::decode(&again), Ok(datagram));
});
