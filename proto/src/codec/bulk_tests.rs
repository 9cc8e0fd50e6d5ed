//! Property tests of the bulk stream's head: one framed `BulkRequest` (client → relay) or
//! `BulkReply` (relay → client) read with `FrameDecoder` and [`decode`], then raw file
//! bytes taken with `take_rest`. The relay (`relay/src/bulk.rs`) and the client
//! (`client/src/bulk.rs`) read a stream this way; the fuzz target `bulk_stream` checks the
//! same on arbitrary bytes with the nightly toolchain, these run on stable in every test run.

use std::fmt::Debug;

use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::error::{ErrorCode, WireError};
use crate::frame::FrameDecoder;
use crate::msg::{BulkReply, BulkRequest, FileKind};

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn request() -> impl Strategy<Value = BulkRequest> {
    prop_oneof![
        (
            text(),
            text(),
            text(),
            any::<u64>(),
            any::<[u8; 32]>(),
            prop_oneof![Just(FileKind::File), Just(FileKind::Voice)],
        )
            .prop_map(|(client_id, to, name, size, sha256, kind)| {
                BulkRequest::Upload {
                    client_id,
                    to,
                    name,
                    size,
                    sha256,
                    kind,
                }
            }),
        (any::<u64>(), any::<u64>()).prop_map(|(id, offset)| BulkRequest::Download { id, offset }),
    ]
}

fn reply() -> impl Strategy<Value = BulkReply> {
    let code = prop_oneof![
        Just(ErrorCode::ProtocolViolation),
        Just(ErrorCode::NotLoggedIn),
        Just(ErrorCode::QuotaExceeded),
        Just(ErrorCode::TooLarge),
        Just(ErrorCode::UnknownNumber),
        Just(ErrorCode::RateLimited),
    ];
    prop_oneof![
        any::<u64>().prop_map(|offset| BulkReply::Resume { offset }),
        any::<u64>().prop_map(|id| BulkReply::Stored { id }),
        (any::<u64>(), any::<u64>()).prop_map(|(size, offset)| BulkReply::Sending { size, offset }),
        (code, text(), proptest::option::of(any::<u32>())).prop_map(
            |(code, message, retry_after_ms)| BulkReply::Error(WireError {
                code,
                message,
                retry_after_ms
            })
        ),
    ]
}

/// What reading a stream's head gave.
#[derive(Debug, PartialEq)]
enum Head<T> {
    /// The stream ended before a whole first frame.
    Ended,
    /// The first frame's length was malformed or over the cap.
    BadFrame(FrameError),
    /// The first frame did not decode as a `T`.
    BadBody(DecodeError),
    /// The head, and the bytes that followed it in the reads so far.
    Ok(T, Vec<u8>),
}

/// Reads the head of `stream` the way the relay does: `read` bytes at a time (at least
/// 1), trying for a frame after each read, then taking what followed it. Checks on the
/// way that nothing is lost or repeated: the frame is exactly the stream's first bytes
/// and the rest is exactly the bytes after it that were read.
fn read_head<T: DeserializeOwned>(stream: &[u8], read: usize) -> Head<T> {
    let mut d = FrameDecoder::new();
    let mut pushed = 0;
    let body = loop {
        if pushed == stream.len() {
            return Head::Ended;
        }
        let n = read.max(1).min(stream.len() - pushed);
        d.push(&stream[pushed..pushed + n]);
        pushed += n;
        match d.next_frame() {
            Ok(Some(body)) => break body.to_vec(),
            Ok(None) => continue,
            Err(e) => return Head::BadFrame(e),
        }
    };
    let mut framed = Vec::new();
    write_frame(&mut framed, &body).expect("a body the decoder returned fits a frame");
    assert_eq!(
        &stream[..framed.len()],
        framed,
        "the frame is the stream's start"
    );
    let rest = d.take_rest();
    assert_eq!(
        rest,
        &stream[framed.len()..pushed],
        "the rest is what followed"
    );
    assert_eq!(d.buffered(), 0);
    match decode(&body) {
        Ok(v) => Head::Ok(v, rest),
        Err(e) => Head::BadBody(e),
    }
}

/// `msg` framed, then `file`, read in pieces of `read` bytes: the head comes back as sent
/// and the file bytes after it, in order, whatever the read size.
fn head_then_file<T>(msg: &T, file: &[u8], read: usize) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut stream = Vec::new();
    encode_framed(&mut stream, msg).unwrap();
    let head_len = stream.len();
    stream.extend_from_slice(file);
    match read_head::<T>(&stream, read) {
        Head::Ok(v, rest) => {
            prop_assert_eq!(&v, msg);
            prop_assert!(file.starts_with(&rest));
            prop_assert!(
                rest.len() < read.max(1),
                "the head is taken after the read that completes it"
            );
            prop_assert!(head_len + rest.len() <= stream.len());
        }
        other => prop_assert!(false, "{other:?}"),
    }
    Ok(())
}

/// A decoded head re-encodes into one frame no longer than the one it came from, which
/// decodes to the same value (one body, one meaning).
fn reencodes<T>(stream: &[u8], read: usize) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if let Head::Ok(v, _) = read_head::<T>(stream, read) {
        let mut out = Vec::new();
        encode_framed(&mut out, &v).unwrap();
        prop_assert!(out.len() <= stream.len());
        match read_head::<T>(&out, out.len()) {
            Head::Ok(again, rest) => {
                prop_assert_eq!(again, v);
                prop_assert!(rest.is_empty());
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
    Ok(())
}

#[test]
fn a_head_cut_short_or_with_a_bad_length_is_refused() {
    let mut stream = Vec::new();
    encode_framed(&mut stream, &BulkRequest::Download { id: 300, offset: 7 }).unwrap();
    for cut in 0..stream.len() {
        assert_eq!(read_head::<BulkRequest>(&stream[..cut], 1), Head::Ended);
    }
    // Length 2^17 (over MAX_FRAME) and a non-canonical length (a zero last group).
    assert!(matches!(
        read_head::<BulkRequest>(&[0x80, 0x80, 0x08, 1, 2], 5),
        Head::BadFrame(FrameError::TooLarge(_))
    ));
    assert_eq!(
        read_head::<BulkRequest>(&[0x81, 0x00, 1], 3),
        Head::BadFrame(FrameError::BadLength)
    );
    // A frame whose body is a request with a byte too many, or an unknown variant.
    assert_eq!(
        read_head::<BulkRequest>(&[5, 1, 0xac, 0x02, 7, 0], 9),
        Head::BadBody(DecodeError::TrailingBytes(1))
    );
    assert!(matches!(
        read_head::<BulkRequest>(&[1, 9], 9),
        Head::BadBody(DecodeError::Malformed(_))
    ));
}

proptest! {
    #[test]
    fn requests_survive_any_read_size(msg in request(), file in proptest::collection::vec(any::<u8>(), 0..300), read in 1usize..200) {
        head_then_file(&msg, &file, read)?;
    }

    #[test]
    fn replies_survive_any_read_size(msg in reply(), file in proptest::collection::vec(any::<u8>(), 0..300), read in 1usize..200) {
        head_then_file(&msg, &file, read)?;
    }

    #[test]
    fn truncated_heads_are_errors(msg in request(), cut in any::<prop::sample::Index>()) {
        let body = postcard::to_allocvec(&msg).unwrap();
        let cut = cut.index(body.len());
        prop_assert!(decode::<BulkRequest>(&body[..cut]).is_err());
    }

    #[test]
    fn random_streams_never_panic_and_lose_nothing(stream in proptest::collection::vec(any::<u8>(), 0..600), read in 1usize..64) {
        // read_head asserts the framing invariants on the way.
        reencodes::<BulkRequest>(&stream, read)?;
        reencodes::<BulkReply>(&stream, read)?;
    }

    #[test]
    fn random_bodies_framed_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), read in 1usize..64) {
        let mut stream = Vec::new();
        write_frame(&mut stream, &body).unwrap();
        reencodes::<BulkRequest>(&stream, read)?;
        reencodes::<BulkReply>(&stream, read)?;
    }
}
