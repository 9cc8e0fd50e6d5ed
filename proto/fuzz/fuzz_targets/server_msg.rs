//! `decode_server` on an arbitrary frame body.
//!
//! Checks: no panic; when decoding succeeds, `encode_server` re-encodes the value into
//! one frame whose body is no longer than the input and decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phoned_proto::codec::{decode_server, encode_server};
use phoned_proto::frame::{FrameDecoder, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode_server(data) else {
        return;
    };

    let mut out = Vec::new();
    match encode_server(&mut out, &msg) {
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
    assert_eq!(decode_server(body).expect("our own encoding decodes"), msg);
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.buffered(), 0);
});
