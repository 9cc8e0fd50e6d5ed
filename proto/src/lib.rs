//! Every protocol phoned's programs speak, as pure data and sans-IO functions.
//!
//! - [`frame`]: varint-length framing of the control stream, with a hard size cap.
//! - [`msg`]: the typed control messages between a device and the relay.
//! - [`codec`]: postcard encoding and strict decoding of those messages.
//! - [`media`]: the media datagrams: `MediaFrame`, `RedundantFrame`, `MediaReport`.
//! - [`plane`]: the UDP media plane: sealed packets, the replay window, the client's path
//!   state (probe, keep-alive, fallback to QUIC datagrams).
//! - [`liveness`]: how a device and the relay tell that the link between them is alive (the
//!   beat each second on the cheapest path, the watchdog over what is heard).
//! - [`call`]: call ids, phases, end reasons, and the call states, directions and results
//!   the daemon shows.
//! - [`conference`]: conference party states, the roster, the limits (16 parties).
//! - [`ident`]: validation of numbers, display names and passwords.
//! - [`text`]: the sanitiser of names people choose: hidden and bidi characters, escapes.
//! - [`state`]: shared value types with public string forms (connection state, auto-answer).
//! - [`transfer`]: direction and delivery status of text messages, files and voice messages.
//! - [`names`]: how those enums get their one string each (`as_str`, `FromStr`, `Display`).
//! - `dbus` (feature `dbus`): the daemon's D-Bus names and object paths, typed errors and
//!   proxies.
//! - [`fingerprint`]: the SHA-256 certificate fingerprints devices pin.
//!
//! Nothing here opens a socket, reads a clock or spawns a task: the relay client and the
//! service glue (systemd, signals, logging) are in `phoned-client`.

pub mod call;
pub mod codec;
pub mod conference;
#[cfg(feature = "dbus")]
pub mod dbus;
pub mod error;
pub mod fingerprint;
pub mod frame;
pub mod ident;
pub mod liveness;
pub mod media;
pub mod msg;
pub mod names;
pub mod plane;
pub mod state;
pub mod text;
pub mod transfer;

pub use codec::{DecodeError, decode_client, decode_server, encode_client, encode_server};
pub use error::{ErrorCode, WireError};
pub use frame::{FrameDecoder, FrameError, MAX_FRAME};
pub use ident::{IdentError, Number, NumberRange};
pub use media::{MediaDatagram, MediaFrame, MediaReport, RedundantFrame};
pub use msg::*;

/// The wire protocol version this crate speaks, sent in `Hello` and `Welcome`.
///
/// Version 2 added one duty to version 1, with no change to any message's layout: a
/// device acknowledges delivery receipts with [`Request::ReceiptSeen`], so the relay
/// keeps each receipt until one of the sender's devices has recorded it.
///
/// Version 3 added conferences and who holds a call: requests `ConferenceCreate`, `ConferenceAdd`,
/// `ConferenceRemove`, `ConferenceMerge`, the response `ConferencePlaced`, events
/// `ConferenceIncoming`, `ConferenceMoved`, `ConferenceRoster`, [`Event::CallHold`] (a call
/// held by both sides reads as held by both; version 2 shows only this side's hold), end reasons `removed`
/// and `merged`, and error codes `ConferenceFull`, `NotHost`, `InvalidParty`. A relay
/// sends none of them to a session that said `Hello` with an older version (its devices
/// are not invited: they count as busy) ([`Event::since`]).
///
/// Version 4 added the UDP media plane ([`plane`]): [`Event::MediaPlane`] after the login
/// tells the session where to send its media as sealed UDP packets; older sessions keep
/// their media on QUIC datagrams.
pub const PROTOCOL_VERSION: u16 = 4;

/// The oldest protocol version a relay still serves (a session that said `Hello` with it
/// gets version 1's behaviour: receipts are forgotten once pushed).
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The TLS ALPN identifier of the relay protocol.
pub const ALPN: &[u8] = b"phoned/1";

/// The UDP port a relay listens on by default.
pub const DEFAULT_PORT: u16 = 7447;
