//! Encoding and strict decoding of control messages (postcard bodies inside frames).
//!
//! Decoding rejects trailing bytes, so one body always has exactly one meaning.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

use crate::frame::{FrameError, MAX_FRAME, write_frame};
use crate::msg::{ClientFrame, ServerMsg};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("undecodable message: {0}")]
    Malformed(postcard::Error),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Decodes any protocol message body strictly (used for bulk-stream frames).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(DecodeError::Malformed)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes(rest.len()))
    }
}

/// Appends any protocol message to `out`, framed (used for bulk-stream frames).
pub fn encode_framed<T: Serialize>(out: &mut Vec<u8>, msg: &T) -> Result<(), FrameError> {
    let body = postcard::to_allocvec(msg).map_err(|_| FrameError::TooLarge(u64::MAX))?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len() as u64));
    }
    write_frame(out, &body)
}

/// Decodes one client frame body.
pub fn decode_client(body: &[u8]) -> Result<ClientFrame, DecodeError> {
    decode(body)
}

/// Reads just the request id at the start of a client frame body, so that a request
/// the relay cannot decode can still be answered.
pub fn peek_request_id(body: &[u8]) -> Option<u32> {
    postcard::take_from_bytes::<u32>(body)
        .ok()
        .map(|(id, _)| id)
}

/// Decodes one server frame body.
pub fn decode_server(body: &[u8]) -> Result<ServerMsg, DecodeError> {
    decode(body)
}

/// Appends `frame` to `out`, framed.
pub fn encode_client(out: &mut Vec<u8>, frame: &ClientFrame) -> Result<(), FrameError> {
    encode_framed(out, frame)
}

/// Appends `msg` to `out`, framed.
pub fn encode_server(out: &mut Vec<u8>, msg: &ServerMsg) -> Result<(), FrameError> {
    encode_framed(out, msg)
}

#[cfg(test)]
mod bulk_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::EndReason;
    use crate::conference::{Party, PartyState, Roster};
    use crate::error::{ErrorCode, WireError};
    use crate::frame::FrameDecoder;
    use crate::msg::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        ".{0,40}"
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (any::<u16>(), text())
                .prop_map(|(version, client)| Request::Hello(Hello { version, client })),
            text().prop_map(|display_name| Request::Provision { display_name }),
            (text(), text(), text()).prop_map(|(number, password, display_name)| {
                Request::Register {
                    number,
                    password,
                    display_name,
                }
            }),
            (text(), text()).prop_map(|(number, password)| Request::Login { number, password }),
            Just(Request::AccountInfo),
            text().prop_map(|name| Request::SetDisplayName { name }),
            text().prop_map(|password| Request::SetPassword { password }),
            text().prop_map(|number| Request::ChangeNumber { number }),
            Just(Request::ListOnline),
            any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
            (text(), text(), proptest::option::of(text())).prop_map(|(number, password, token)| {
                Request::DeviceLogin {
                    number,
                    password,
                    token,
                }
            }),
            Just(Request::DeviceToken),
            proptest::collection::vec(text(), 0..17)
                .prop_map(|numbers| Request::ConferenceCreate { numbers }),
            (any::<u64>(), text())
                .prop_map(|(call, number)| Request::ConferenceAdd { call, number }),
            (any::<u64>(), text())
                .prop_map(|(call, number)| Request::ConferenceRemove { call, number }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(first, second)| Request::ConferenceMerge { first, second }),
            any::<u32>().prop_map(|silent_after_ms| Request::Watch { silent_after_ms }),
        ]
    }

    fn party() -> impl Strategy<Value = Party> {
        (
            text(),
            text(),
            proptest::sample::select(PartyState::ALL),
            proptest::option::of(0u32..32),
            proptest::option::of(proptest::sample::select(EndReason::ALL)),
        )
            .prop_map(|(number, name, state, source, reason)| Party {
                number,
                name,
                state,
                source,
                reason,
            })
    }

    fn roster() -> impl Strategy<Value = Roster> {
        (text(), proptest::collection::vec(party(), 0..34))
            .prop_map(|(host, parties)| Roster { host, parties })
    }

    fn account() -> impl Strategy<Value = AccountInfo> {
        (text(), text(), any::<u64>(), any::<u32>()).prop_map(
            |(number, display_name, created_ms, devices_online)| AccountInfo {
                number,
                display_name,
                created_ms,
                devices_online,
            },
        )
    }

    fn server_msg() -> impl Strategy<Value = ServerMsg> {
        let response = prop_oneof![
            (any::<u16>(), text(), any::<u32>()).prop_map(|(version, relay, max_frame)| {
                Response::Welcome(Welcome {
                    version,
                    relay,
                    max_frame,
                })
            }),
            (account(), text())
                .prop_map(|(account, secret)| Response::Provisioned { account, secret }),
            account().prop_map(Response::LoggedIn),
            account().prop_map(Response::Account),
            Just(Response::Done),
            proptest::collection::vec(
                (text(), text()).prop_map(|(number, name)| OnlineUser { number, name }),
                0..5
            )
            .prop_map(Response::Online),
            any::<u64>().prop_map(|nonce| Response::Pong { nonce }),
            (account(), text())
                .prop_map(|(account, token)| Response::DeviceLoggedIn { account, token }),
            text().prop_map(|token| Response::DeviceToken { token }),
        ];
        let error = || {
            (text(), proptest::option::of(any::<u32>())).prop_map(|(message, retry_after_ms)| {
                WireError {
                    code: ErrorCode::RateLimited,
                    message,
                    retry_after_ms,
                }
            })
        };
        prop_oneof![
            (any::<u32>(), response).prop_map(|(id, r)| ServerMsg::Response { id, result: Ok(r) }),
            (any::<u32>(), error()).prop_map(|(id, e)| ServerMsg::Response { id, result: Err(e) }),
            (text(), text(), any::<bool>()).prop_map(|(number, name, online)| ServerMsg::Event(
                Event::Presence {
                    number,
                    name,
                    online
                }
            )),
            account().prop_map(|a| ServerMsg::Event(Event::AccountChanged(a))),
            (any::<u64>(), any::<bool>(), any::<bool>()).prop_map(|(call, by_me, by_peer)| {
                ServerMsg::Event(Event::CallHold {
                    call,
                    by_me,
                    by_peer,
                })
            }),
            error().prop_map(ServerMsg::Goodbye),
            (any::<u64>(), text(), text()).prop_map(|(conference, from_number, from_name)| {
                ServerMsg::Event(Event::ConferenceIncoming {
                    conference,
                    from_number,
                    from_name,
                })
            }),
            (any::<u64>(), any::<u64>()).prop_map(|(call, conference)| ServerMsg::Event(
                Event::ConferenceMoved { call, conference }
            )),
            (any::<u64>(), roster()).prop_map(|(conference, roster)| ServerMsg::Event(
                Event::ConferenceRoster { conference, roster }
            )),
            (any::<u32>(), any::<u64>()).prop_map(|(id, conference)| ServerMsg::Response {
                id,
                result: Ok(Response::ConferencePlaced { conference })
            }),
        ]
    }

    fn body_of(framed: &[u8]) -> Vec<u8> {
        let mut d = FrameDecoder::new();
        d.push(framed);
        d.next_frame().unwrap().unwrap().to_vec()
    }

    #[test]
    fn receipt_seen_is_request_18_as_protocol_md_shows() {
        let mut out = Vec::new();
        let frame = ClientFrame {
            id: 9,
            req: Request::ReceiptSeen { id: 300 },
        };
        encode_client(&mut out, &frame).unwrap();
        assert_eq!(out, [0x04, 0x09, 0x12, 0xac, 0x02]);
        assert_eq!(decode_client(&out[1..]).unwrap(), frame);
    }

    #[test]
    fn watch_is_request_25_as_protocol_md_shows() {
        let mut out = Vec::new();
        let frame = ClientFrame {
            id: 9,
            req: Request::Watch {
                silent_after_ms: 4000,
            },
        };
        encode_client(&mut out, &frame).unwrap();
        assert_eq!(out, [0x04, 0x09, 0x19, 0xa0, 0x1f]);
        assert_eq!(decode_client(&out[1..]).unwrap(), frame);
    }

    #[test]
    fn call_hold_is_event_8_as_protocol_md_shows() {
        let mut out = Vec::new();
        let msg = ServerMsg::Event(Event::CallHold {
            call: 7,
            by_me: true,
            by_peer: false,
        });
        encode_server(&mut out, &msg).unwrap();
        assert_eq!(out, [0x05, 0x01, 0x08, 0x07, 0x01, 0x00]);
        assert_eq!(decode_server(&out[1..]).unwrap(), msg);
        assert_eq!(
            Event::CallHold {
                call: 7,
                by_me: true,
                by_peer: false
            }
            .since(),
            3
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut out = Vec::new();
        encode_client(
            &mut out,
            &ClientFrame {
                id: 1,
                req: Request::ListOnline,
            },
        )
        .unwrap();
        let mut body = body_of(&out);
        body.push(0);
        assert_eq!(decode_client(&body), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn unknown_request_keeps_its_id() {
        // id 77, variant 200 (unknown)
        let body = [77, 0xc8, 0x01];
        assert!(matches!(
            decode_client(&body),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(peek_request_id(&body), Some(77));
    }

    #[test]
    fn a_huge_declared_string_length_does_not_allocate() {
        // id 1, Provision, display_name with declared length u32::MAX-ish and no bytes.
        let body = [1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode_client(&body).is_err());
    }

    #[test]
    fn oversized_message_cannot_be_encoded() {
        let big = ClientFrame {
            id: 1,
            req: Request::Provision {
                display_name: "x".repeat(MAX_FRAME),
            },
        };
        assert!(matches!(
            encode_client(&mut Vec::new(), &big),
            Err(FrameError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn client_frames_round_trip(id in any::<u32>(), req in request()) {
            let frame = ClientFrame { id, req };
            let mut out = Vec::new();
            encode_client(&mut out, &frame).unwrap();
            prop_assert_eq!(decode_client(&body_of(&out)).unwrap(), frame);
        }

        #[test]
        fn server_messages_round_trip(msg in server_msg()) {
            let mut out = Vec::new();
            encode_server(&mut out, &msg).unwrap();
            prop_assert_eq!(decode_server(&body_of(&out)).unwrap(), msg);
        }

        #[test]
        fn truncated_client_frames_are_errors(id in any::<u32>(), req in request(), cut in any::<prop::sample::Index>()) {
            let mut out = Vec::new();
            encode_client(&mut out, &ClientFrame { id, req }).unwrap();
            let body = body_of(&out);
            let cut = cut.index(body.len());
            prop_assert!(decode_client(&body[..cut]).is_err());
        }

        #[test]
        fn truncated_server_messages_are_errors(msg in server_msg(), cut in any::<prop::sample::Index>()) {
            let mut out = Vec::new();
            encode_server(&mut out, &msg).unwrap();
            let body = body_of(&out);
            let cut = cut.index(body.len());
            prop_assert!(decode_server(&body[..cut]).is_err());
        }

        /// A roster that decodes is checked without a panic, and the check holds what it
        /// promises: bounded, one entry per number, a host in the room.
        #[test]
        fn decoded_rosters_check_safely(conference in any::<u64>(), roster in roster(), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut out = Vec::new();
            encode_server(&mut out, &ServerMsg::Event(Event::ConferenceRoster { conference, roster })).unwrap();
            let mut body = body_of(&out);
            let i = flip.index(body.len());
            body[i] = byte;
            if let Ok(ServerMsg::Event(Event::ConferenceRoster { roster, .. })) = decode_server(&body)
                && roster.check().is_ok()
            {
                prop_assert!(roster.parties.len() <= crate::conference::MAX_PARTIES + crate::conference::MAX_LEFT);
                prop_assert!(roster.present().any(|p| p.number == roster.host));
            }
        }

        #[test]
        fn random_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_client(&bytes);
            let _ = decode_server(&bytes);
        }
    }
}
