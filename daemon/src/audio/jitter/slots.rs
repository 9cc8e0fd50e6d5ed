//! Where buffered packets live: a fixed pool of slots, each with room for the largest Opus
//! packet, allocated once. A buffer holds at most a few hundred milliseconds of 10–20 ms
//! packets, so finding one by a linear scan over a few dozen slots is cheaper than any index.

use crate::audio::codec::MAX_PACKET_BYTES;

/// One buffered packet's place and position in the (extended) stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Held {
    pub(super) slot: usize,
    pub(super) seq: i64,
    pub(super) ts: i64,
    pub(super) arrival_us: i64,
    pub(super) len: usize,
    /// A redundant copy from a later datagram ([`JitterBuffer::fill`](super::JitterBuffer::fill)),
    /// not the packet itself.
    pub(super) copy: bool,
}

#[derive(Debug)]
pub(super) struct Slots {
    held: Vec<Option<Held>>,
    bytes: Vec<u8>,
}

impl Slots {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            held: vec![None; capacity],
            bytes: vec![0; capacity * MAX_PACKET_BYTES],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.held.iter().flatten().count()
    }

    pub(super) fn clear(&mut self) {
        self.held.fill(None);
    }

    pub(super) fn contains(&self, seq: i64) -> bool {
        self.find(seq).is_some()
    }

    pub(super) fn find(&self, seq: i64) -> Option<Held> {
        self.held.iter().flatten().find(|h| h.seq == seq).copied()
    }

    /// The packet with the lowest sequence number: the next to play.
    pub(super) fn earliest(&self) -> Option<Held> {
        self.held.iter().flatten().min_by_key(|h| h.seq).copied()
    }

    /// The buffered packet with a timestamp below `ts` and the lowest sequence number.
    pub(super) fn earliest_before(&self, ts: i64) -> Option<Held> {
        self.held
            .iter()
            .flatten()
            .filter(|h| h.ts < ts)
            .min_by_key(|h| h.seq)
            .copied()
    }

    /// Stores a packet (at most [`MAX_PACKET_BYTES`]; the caller checks). `false` when full.
    pub(super) fn insert(&mut self, seq: i64, ts: i64, arrival_us: i64, payload: &[u8]) -> bool {
        self.insert_as(seq, ts, arrival_us, payload, false)
    }

    /// As [`Self::insert`], saying whether the packet is a redundant copy.
    pub(super) fn insert_as(
        &mut self,
        seq: i64,
        ts: i64,
        arrival_us: i64,
        payload: &[u8],
        copy: bool,
    ) -> bool {
        let Some(slot) = self.held.iter().position(Option::is_none) else {
            return false;
        };
        let len = payload.len().min(MAX_PACKET_BYTES);
        let start = slot * MAX_PACKET_BYTES;
        self.bytes[start..start + len].copy_from_slice(&payload[..len]);
        self.held[slot] = Some(Held {
            slot,
            seq,
            ts,
            arrival_us,
            len,
            copy,
        });
        true
    }

    /// Frees a slot. Its bytes stay readable through [`Self::payload`] until the next insert,
    /// which is what lets `pop` hand out a borrowed payload of the packet it just consumed.
    pub(super) fn remove(&mut self, slot: usize) {
        if let Some(h) = self.held.get_mut(slot) {
            *h = None;
        }
    }

    pub(super) fn payload(&self, held: &Held) -> &[u8] {
        let start = held.slot * MAX_PACKET_BYTES;
        &self.bytes[start..start + held.len]
    }
}
