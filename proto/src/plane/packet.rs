//! One media-plane packet:
//!
//! ```text
//! [media id: u32 BE][counter: u64 BE][AES-128-GCM ciphertext of the media datagram][tag: 16]
//! ```
//!
//! `media id` names the session (the relay gives each logged-in session one); `counter`
//! counts the packets the sender sent to this session in this direction, from 0, and is
//! the nonce (4 zero bytes, then the counter, big-endian): never reused under one key. The
//! 12 header bytes are the AEAD's associated data, so a changed id or counter fails
//! authentication. An empty plaintext is a keep-alive.
//!
//! Keys: both ends call TLS's exporter (RFC 8446 §7.5) on their QUIC connection with
//! label [`KEY_LABEL`] and the media id (big-endian) as context, for 32 bytes: the first
//! 16 are the key from client to relay ([`Direction::Up`]), the last 16 the key from relay
//! to client ([`Direction::Down`]).

use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// The TLS exporter label of the media keys.
pub const KEY_LABEL: &[u8] = b"phoned media v1";
/// Bytes before the ciphertext: media id and counter.
pub const HEADER: usize = 12;
/// The AEAD tag after the ciphertext.
pub const TAG: usize = 16;
/// The largest packet either end sends or accepts (a media datagram is at most about
/// 1200 bytes, the QUIC datagram limit it also has to fit).
pub const MAX_PACKET: usize = 2048;

/// Which way a packet goes, and so which of a session's two keys seals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to relay.
    Up,
    /// Relay to client.
    Down,
}

/// A session's two media keys.
pub struct Keys {
    up: LessSafeKey,
    down: LessSafeKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    /// The keys from the 32 bytes the TLS exporter gave (see the module doc).
    pub fn from_exported(material: &[u8; 32]) -> Keys {
        let key = |bytes: &[u8]| {
            // AES-128 takes exactly 16 bytes, which both halves are.
            LessSafeKey::new(UnboundKey::new(&AES_128_GCM, bytes).expect("16-byte AES key"))
        };
        Keys {
            up: key(&material[..16]),
            down: key(&material[16..]),
        }
    }

    pub fn key(&self, direction: Direction) -> &LessSafeKey {
        match direction {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }
}

/// Why a packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("shorter than a header and a tag, or longer than {MAX_PACKET} bytes")]
    Size,
    #[error("not authentic (wrong key, id or counter, or changed on the way)")]
    Auth,
    #[error("already received, or too old for the replay window")]
    Replayed,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The media id a packet is for (or from), if it is long enough to be a packet.
pub fn peek_id(packet: &[u8]) -> Option<u32> {
    if packet.len() < HEADER + TAG || packet.len() > MAX_PACKET {
        return None;
    }
    Some(u32::from_be_bytes(packet[..4].try_into().ok()?))
}

/// The counter of a packet at least [`HEADER`] long.
pub fn peek_counter(packet: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(packet.get(4..HEADER)?.try_into().ok()?))
}

/// Seals `plaintext` as packet `counter` of session `id` with `key` into `out`, which must
/// hold `HEADER + plaintext.len() + TAG` bytes; returns that length, or `None` if `out` is
/// too small.
pub fn seal(
    key: &LessSafeKey,
    id: u32,
    counter: u64,
    plaintext: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let len = HEADER + plaintext.len() + TAG;
    if out.len() < len || len > MAX_PACKET {
        return None;
    }
    out[..4].copy_from_slice(&id.to_be_bytes());
    out[4..HEADER].copy_from_slice(&counter.to_be_bytes());
    let (head, rest) = out.split_at_mut(HEADER);
    let body = &mut rest[..plaintext.len()];
    body.copy_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(nonce(counter), Aad::from(&*head), body)
        .ok()?;
    rest[plaintext.len()..plaintext.len() + TAG].copy_from_slice(tag.as_ref());
    Some(len)
}

/// Authenticates and decrypts `packet` in place with `key`: returns its counter and the
/// plaintext (a slice of `packet`). `fresh` is asked about the counter first, so that a
/// replay costs no decryption; the caller marks the counter seen only after this
/// succeeded (an unauthentic packet must not move a replay window).
pub fn open_in_place<'a>(
    key: &LessSafeKey,
    packet: &'a mut [u8],
    fresh: impl FnOnce(u64) -> bool,
) -> Result<(u64, &'a [u8]), OpenError> {
    if packet.len() < HEADER + TAG || packet.len() > MAX_PACKET {
        return Err(OpenError::Size);
    }
    let mut head = [0u8; HEADER];
    head.copy_from_slice(&packet[..HEADER]);
    let counter = u64::from_be_bytes(head[4..].try_into().map_err(|_| OpenError::Size)?);
    if !fresh(counter) {
        return Err(OpenError::Replayed);
    }
    let plain = key
        .open_in_place(nonce(counter), Aad::from(head), &mut packet[HEADER..])
        .map_err(|_| OpenError::Auth)?;
    Ok((counter, plain))
}
