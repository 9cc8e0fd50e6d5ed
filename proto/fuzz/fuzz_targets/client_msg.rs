//! `decode_client` and `peek_request_id` on an arbitrary frame body.
//!
//! Checks: neither panics; when decoding succeeds, `peek_request_id` finds the same id,
//! and `encode_client` re-encodes the value into one frame whose body is no longer than
//! the input and decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phoned_proto::codec::{decode_client, encode_client, peek_request_id};
use phoned_proto::frame::{FrameDecoder, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let peeked = peek_request_id(data);
    let Ok(frame) = decode_client(data) else {
        return;
    };
    assert_eq!(
        peeked,
        Some(frame.id),
        "peek_request_id disagrees with decode_client"
    );

    let mut out = Vec::new();
    match encode_client(&mut out, &frame) {
        Ok(()) => {}
        // A decoded body re-encodes no longer than it was (postcard varints are
        // canonical on output), so only an input over the cap could fail here.
        Err(e) => {
            assert!(data.len() > MAX_FRAME, "{e} for a {}-byte body", data.len());
            return;
        }
    }
    let mut d = FrameDecoder::new();
    d.push(&out);
    let body = d
        .next_frame()
        .expect("our own frame")
        .expect("a whole frame");
    assert!(body.len() <= data.len());
    assert_eq!(
        decode_client(body).expect("our own encoding decodes"),
        frame
    );
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.buffered(), 0);
});
