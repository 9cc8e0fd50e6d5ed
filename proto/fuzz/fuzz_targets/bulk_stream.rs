//! The head of a bulk (file transfer) stream, read the way the relay reads an upload or
//! download request (`relay/src/bulk.rs`) and the client reads the relay's answers
//! (`client/src/bulk.rs`): `FrameDecoder` fed one read at a time until the first frame,
//! that frame decoded strictly as a `BulkRequest` or a `BulkReply`, then `take_rest` for
//! the file bytes that came in the same reads.
//!
//! Input layout: byte 0 picks the type (bit 0: `BulkRequest` or `BulkReply`) and the read
//! size (`1 + (data[0] >> 1)`, so 1 to 128 bytes a read); the rest is the stream.
//!
//! Checks: no panic; the frame is byte-for-byte the stream's first bytes (only canonical
//! lengths are accepted) and `take_rest` returns exactly the bytes read after it, leaving
//! the decoder empty (no file byte lost or repeated); a head that decodes re-encodes with
//! `encode_framed` into one frame no longer than the input that decodes to the same value.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use phoned_proto::codec::{decode, encode_framed};
use phoned_proto::frame::{FrameDecoder, write_frame};
use phoned_proto::{BulkReply, BulkRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads the head of `stream` `read` bytes at a time; `None` if the stream ends first or
/// its first frame is malformed, else the frame's body and how many bytes were read.
fn first_frame(stream: &[u8], read: usize) -> Option<(Vec<u8>, usize)> {
    let mut d = FrameDecoder::new();
    let mut pushed = 0;
    let body = loop {
        if pushed == stream.len() {
            return None;
        }
        let n = read.min(stream.len() - pushed);
        d.push(&stream[pushed..pushed + n]);
        pushed += n;
        match d.next_frame() {
            Ok(Some(body)) => break body.to_vec(),
            Ok(None) => continue,
            Err(_) => return None,
        }
    };
    let mut framed = Vec::new();
    write_frame(&mut framed, &body).expect("a body the decoder returned fits a frame");
    assert_eq!(&stream[..framed.len()], framed, "the frame is the stream's start");
    let rest = d.take_rest();
    assert_eq!(rest, &stream[framed.len()..pushed], "the rest is what followed");
    assert_eq!(d.buffered(), 0, "take_rest leaves nothing behind");
    Some((body, pushed))
}

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(stream: &[u8], read: usize) {
    let Some((body, _)) = first_frame(stream, read) else {
        return;
    };
    let Ok(value) = decode::<T>(&body) else {
        return;
    };
    let mut out = Vec::new();
    encode_framed(&mut out, &value).expect("a decoded head re-encodes within MAX_FRAME");
    let (again, read_all) = first_frame(&out, out.len()).expect("our own frame");
    assert!(again.len() <= body.len(), "re-encoding grew the body");
    assert_eq!(read_all, out.len(), "one frame and nothing else");
    assert_eq!(decode::<T>(&again).expect("our own encoding decodes"), value);
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let read = 1 + usize::from(control >> 1);
    if control & 1 == 0 {
        check::<BulkRequest>(stream, read);
    } else {
        check::<BulkReply>(stream, read);
    }
});
