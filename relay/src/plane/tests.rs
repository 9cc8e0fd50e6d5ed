//! The media plane's per-packet decisions, with recording sinks instead of sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use phoned_proto::MediaFrame;
use phoned_proto::plane::{Direction, Keys, MAX_PACKET, open_in_place, seal};
use proptest::prelude::*;

use super::forward::{Forwarded, Received, Scratch, Sent, Sink, receive};
use super::peer::{Peer, QuicOut, UDP_FRESH_MS};
use crate::registry::{Route, Routes};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Bytes>>>);

impl QuicOut for Recorder {
    fn send_datagram(&self, d: Bytes) -> bool {
        self.0.lock().unwrap().push(d);
        true
    }
}

#[derive(Default)]
struct Record {
    udp: Vec<(SocketAddr, Vec<u8>)>,
    quic: Vec<(u64, Vec<u8>)>,
}

impl Sink for Record {
    fn udp(&mut self, to: SocketAddr, packet: &[u8]) -> bool {
        self.udp.push((to, packet.to_vec()));
        true
    }
    fn quic(&mut self, peer: &Peer, datagram: &[u8]) -> bool {
        self.quic.push((peer.sid, datagram.to_vec()));
        true
    }
}

fn material(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_mul(13).wrapping_add(i as u8))
}

struct Party {
    peer: Arc<Peer>,
    id: u32,
    keys: Keys,
    sent: u64,
}

impl Party {
    fn new(sid: u64, id: u32) -> Party {
        let routes: Routes = Arc::default();
        let peer = Arc::new(Peer::new(sid, routes, Box::new(Recorder::default())));
        assert!(peer.enable_udp(id, Keys::from_exported(&material(sid as u8))));
        Party {
            peer,
            id,
            keys: Keys::from_exported(&material(sid as u8)),
            sent: 0,
        }
    }

    /// A packet this party's client sends.
    fn packet(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_PACKET];
        let n = seal(
            self.keys.key(Direction::Up),
            self.id,
            self.sent,
            plain,
            &mut out,
        )
        .unwrap();
        self.sent += 1;
        out.truncate(n);
        out
    }

    /// What this party's client reads from a packet the relay sent it.
    fn read(&self, packet: &[u8]) -> Vec<u8> {
        let mut p = packet.to_vec();
        assert_eq!(u32::from_be_bytes(p[..4].try_into().unwrap()), self.id);
        let (_, plain) = open_in_place(self.keys.key(Direction::Down), &mut p, |_| true).unwrap();
        plain.to_vec()
    }
}

const CALL: u64 = 77;

fn frame(call: u64, seq: u32) -> Vec<u8> {
    MediaFrame {
        call,
        source: 0,
        seq,
        timestamp: 0,
        level: 10,
        payload: vec![1, 2, 3],
    }
    .encode()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// A and B in call `CALL`, routed both ways; the table of both.
fn call() -> (Party, Party, HashMap<u32, Arc<Peer>>) {
    let (a, b) = (Party::new(1, 100), Party::new(2, 200));
    a.peer
        .routes
        .lock()
        .unwrap()
        .insert(CALL, Route::Peer(b.peer.clone()));
    b.peer
        .routes
        .lock()
        .unwrap()
        .insert(CALL, Route::Peer(a.peer.clone()));
    let table = HashMap::from([(a.id, a.peer.clone()), (b.id, b.peer.clone())]);
    (a, b, table)
}

fn scratch() -> Box<Scratch> {
    Box::new([0u8; MAX_PACKET])
}

#[test]
fn media_goes_over_udp_to_a_party_heard_recently_and_over_quic_otherwise() {
    let (mut a, mut b, table) = call();
    let mut out = Record::default();
    // B has not been heard on UDP: A's frame goes to B over QUIC.
    let mut p = a.packet(&frame(CALL, 1));
    let r = receive(&table, &mut p, addr(1), 1000, &mut scratch(), &mut out);
    assert!(matches!(
        r,
        Received::Media {
            forwarded: Forwarded::Sent(Sent::Quic),
            ..
        }
    ));
    assert_eq!(out.quic, [(2, frame(CALL, 1))]);
    // B speaks on UDP: A's next frames reach B there, sealed for B.
    let mut k = b.packet(&[]);
    receive(&table, &mut k, addr(2), 1100, &mut scratch(), &mut out);
    out = Record::default();
    let mut p = a.packet(&frame(CALL, 2));
    let r = receive(&table, &mut p, addr(1), 1200, &mut scratch(), &mut out);
    assert!(matches!(
        r,
        Received::Media {
            forwarded: Forwarded::Sent(Sent::Udp),
            ..
        }
    ));
    assert_eq!(out.udp.len(), 1);
    assert_eq!(out.udp[0].0, addr(2));
    assert_eq!(b.read(&out.udp[0].1), frame(CALL, 2));
    // B silent on UDP for longer than the freshness: back to QUIC.
    out = Record::default();
    let mut p = a.packet(&frame(CALL, 3));
    receive(
        &table,
        &mut p,
        addr(1),
        1100 + UDP_FRESH_MS + 1,
        &mut scratch(),
        &mut out,
    );
    assert_eq!((out.udp.len(), out.quic.len()), (0, 1));
}

/// One datagram of each media kind in call `CALL`: a frame, redundant frames (copies one
/// back, and deep ones three and five back), a receiver report and a features datagram.
fn every_kind() -> Vec<Vec<u8>> {
    use phoned_proto::media::{
        Earlier, FEATURE_DEEP_COPIES, MediaDatagram, MediaFeatures, MediaReport, RedundantFrame,
    };
    let copy = |seq_back: u8| Earlier {
        seq_back,
        ts_back: 960 * u32::from(seq_back),
        payload: vec![9, 9],
    };
    let redundant = |earlier: Vec<Earlier>| {
        let frame = phoned_proto::media::MediaFrame::decode(&frame(CALL, 9)).unwrap();
        MediaDatagram::Redundant(RedundantFrame { frame, earlier }).encode()
    };
    vec![
        frame(CALL, 9),
        redundant(vec![copy(1)]),
        redundant(vec![copy(3), copy(5)]),
        MediaDatagram::Report(MediaReport::new(CALL, 0, 1, 1000)).encode(),
        MediaDatagram::Features(MediaFeatures::new(CALL, 0, 0, FEATURE_DEEP_COPIES)).encode(),
    ]
}

#[test]
fn every_media_kind_is_forwarded_unread_over_udp_and_over_quic() {
    // The relay reads only the call id: a kind newer than it (a deep redundant frame,
    // features) goes through as the others do, on either path.
    let (mut a, mut b, table) = call();
    for d in every_kind() {
        let mut out = Record::default();
        let mut p = a.packet(&d);
        receive(&table, &mut p, addr(1), 1000, &mut scratch(), &mut out);
        assert_eq!(out.quic, [(2, d.clone())]);
    }
    let mut k = b.packet(&[]);
    receive(
        &table,
        &mut k,
        addr(2),
        1100,
        &mut scratch(),
        &mut Record::default(),
    );
    for d in every_kind() {
        let mut out = Record::default();
        let mut p = a.packet(&d);
        receive(&table, &mut p, addr(1), 1200, &mut scratch(), &mut out);
        assert_eq!(out.udp.len(), 1);
        assert_eq!(b.read(&out.udp[0].1), d);
    }
    // From a QUIC datagram (the session's own path), the same decision.
    for d in every_kind() {
        let mut out = Record::default();
        let r = super::forward::forward(&a.peer, &d, 5_000_000, &mut scratch(), &mut out);
        assert!(matches!(r, Forwarded::Sent(Sent::Quic)));
        assert_eq!(out.quic, [(2, d)]);
    }
}

#[test]
fn a_keepalive_is_echoed_to_where_it_came_from() {
    let (mut a, _b, table) = call();
    let mut out = Record::default();
    let mut k = a.packet(&[]);
    let r = receive(&table, &mut k, addr(9), 5, &mut scratch(), &mut out);
    assert!(matches!(r, Received::Keepalive { echoed: true, heard } if heard.moved));
    assert_eq!(out.udp.len(), 1);
    assert_eq!(out.udp[0].0, addr(9));
    assert_eq!(out.udp[0].1.len(), 28);
    assert!(a.read(&out.udp[0].1).is_empty());
}

#[test]
fn forged_replayed_and_foreign_packets_send_nothing() {
    let (mut a, mut b, table) = call();
    // B is reachable on UDP, so anything forwarded would show.
    let mut k = b.packet(&[]);
    receive(
        &table,
        &mut k,
        addr(2),
        0,
        &mut scratch(),
        &mut Record::default(),
    );
    let mut out = Record::default();
    // A packet with A's id sealed with another key.
    let mut forged = vec![0u8; MAX_PACKET];
    let other = Keys::from_exported(&material(99));
    let n = seal(
        other.key(Direction::Up),
        a.id,
        0,
        &frame(CALL, 1),
        &mut forged,
    )
    .unwrap();
    forged.truncate(n);
    assert_eq!(
        receive(&table, &mut forged, addr(66), 1, &mut scratch(), &mut out),
        Received::AuthFailed
    );
    // An unknown id.
    let mut unknown = forged.clone();
    unknown[..4].copy_from_slice(&12345u32.to_be_bytes());
    assert_eq!(
        receive(&table, &mut unknown, addr(66), 1, &mut scratch(), &mut out),
        Received::AuthFailed
    );
    // Too short.
    assert_eq!(
        receive(
            &table,
            &mut [0u8; 20],
            addr(66),
            1,
            &mut scratch(),
            &mut out
        ),
        Received::Size
    );
    // A replay of A's genuine packet, from anywhere.
    let genuine = a.packet(&frame(CALL, 1));
    let mut first = genuine.clone();
    assert!(matches!(
        receive(
            &table,
            &mut first,
            addr(1),
            2,
            &mut scratch(),
            &mut Record::default()
        ),
        Received::Media { .. }
    ));
    let mut again = genuine.clone();
    assert_eq!(
        receive(&table, &mut again, addr(66), 3, &mut scratch(), &mut out),
        Received::Replayed
    );
    // A genuine packet of A for a call A is not routed on.
    let mut other_call = a.packet(&frame(CALL + 1, 1));
    assert!(matches!(
        receive(
            &table,
            &mut other_call,
            addr(1),
            4,
            &mut scratch(),
            &mut out
        ),
        Received::Media {
            forwarded: Forwarded::NoRoute,
            ..
        }
    ));
    assert!(out.udp.is_empty() && out.quic.is_empty());
    // Nobody moved A's address: B's media still goes to addr(1).
    let mut p = b.packet(&frame(CALL, 1));
    let mut to_a = Record::default();
    receive(&table, &mut p, addr(2), 5, &mut scratch(), &mut to_a);
    assert_eq!(to_a.udp[0].0, addr(1));
}

#[test]
fn an_authentic_packet_from_a_new_address_moves_the_session() {
    let (mut a, mut b, table) = call();
    let mut out = Record::default();
    let mut p = a.packet(&frame(CALL, 1));
    receive(&table, &mut p, addr(1), 0, &mut scratch(), &mut out);
    let mut p = a.packet(&frame(CALL, 2));
    let r = receive(&table, &mut p, addr(1), 1, &mut scratch(), &mut out);
    assert!(matches!(r, Received::Media { heard, .. } if !heard.moved));
    // The NAT gives A a new port.
    let mut p = a.packet(&frame(CALL, 3));
    let r = receive(&table, &mut p, addr(1001), 2, &mut scratch(), &mut out);
    assert!(matches!(r, Received::Media { heard, .. } if heard.moved));
    let mut p = b.packet(&frame(CALL, 1));
    let mut to_a = Record::default();
    receive(&table, &mut p, addr(2), 3, &mut scratch(), &mut to_a);
    assert_eq!(to_a.udp.len(), 1);
    assert_eq!(to_a.udp[0].0, addr(1001));
    assert_eq!(a.read(&to_a.udp[0].1), frame(CALL, 1));
}

proptest! {
    /// Random bytes from anywhere never panic, never count as authentic, send nothing.
    #[test]
    fn random_packets_send_nothing(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        known_id in any::<bool>(),
    ) {
        let (_a, _b, table) = call();
        let mut p = bytes.clone();
        if known_id && p.len() >= 4 {
            p[..4].copy_from_slice(&100u32.to_be_bytes());
        }
        let mut out = Record::default();
        let r = receive(&table, &mut p, addr(5), 0, &mut scratch(), &mut out);
        prop_assert!(matches!(r, Received::Size | Received::AuthFailed));
        prop_assert!(out.udp.is_empty() && out.quic.is_empty());
    }
}

#[test]
fn a_room_forwards_over_udp_to_listeners_heard_there_and_over_quic_to_the_rest() {
    use crate::conference::speakers::Speakers;
    use crate::room_media::{Member, RoomMedia};
    const ROOM: u64 = 500;
    let mut parties: Vec<Party> = (1..=3).map(|i| Party::new(i, 100 * i as u32)).collect();
    let room = Arc::new(RoomMedia {
        call: ROOM,
        members: parties
            .iter()
            .enumerate()
            .map(|(i, p)| Member {
                session: p.peer.sid,
                source: i as u32,
                peer: p.peer.clone(),
                flowing: true,
            })
            .collect(),
        speakers: Arc::new(Mutex::new(Speakers::new())),
    });
    for p in &parties {
        p.peer
            .routes
            .lock()
            .unwrap()
            .insert(ROOM, Route::Room(room.clone()));
    }
    let table: HashMap<u32, Arc<Peer>> = parties.iter().map(|p| (p.id, p.peer.clone())).collect();
    // Party 2 is heard on UDP; party 3 is not.
    let mut k = parties[1].packet(&[]);
    receive(
        &table,
        &mut k,
        addr(2),
        0,
        &mut scratch(),
        &mut Record::default(),
    );
    let loud = MediaFrame {
        call: ROOM,
        source: 0,
        seq: 1,
        timestamp: 0,
        level: 5,
        payload: vec![9; 20],
    }
    .encode();
    let mut out = Record::default();
    let mut p = parties[0].packet(&loud);
    let r = receive(&table, &mut p, addr(1), 10, &mut scratch(), &mut out);
    assert!(matches!(
        r,
        Received::Media {
            forwarded: Forwarded::Room,
            ..
        }
    ));
    assert_eq!(out.udp.len(), 1);
    assert_eq!(out.udp[0].0, addr(2));
    assert_eq!(parties[1].read(&out.udp[0].1), loud);
    assert_eq!(out.quic, [(3, loud.clone())]);
    // A frame claiming another member's source is not forwarded.
    let mut out = Record::default();
    let mut forged_source = loud.clone();
    forged_source[2] = 1; // the source varint, after the 2-byte call id
    let mut p = parties[0].packet(&forged_source);
    receive(&table, &mut p, addr(1), 20, &mut scratch(), &mut out);
    assert!(out.udp.is_empty() && out.quic.is_empty());
    let _ = &mut parties;
}

/// Fetching a batch ahead (the forwarding threads do it before taking the packets one by
/// one) is a hint: every packet, authentic or not, is then taken exactly as without it.
#[test]
fn fetching_a_batch_ahead_changes_nothing() {
    let (mut a, mut b, table) = call();
    let mut out = Record::default();
    let mut k = b.packet(&[]);
    receive(&table, &mut k, addr(2), 1000, &mut scratch(), &mut out);
    let mut stranger = Party::new(9, 900);
    let mut forged = a.packet(&frame(CALL, 2));
    forged[20] ^= 1;
    let batch = vec![
        (a.packet(&frame(CALL, 1)), addr(1)),
        (vec![0u8; 3], addr(3)),
        (stranger.packet(&frame(CALL, 1)), addr(9)),
        (forged, addr(4)),
        (b.packet(&frame(CALL, 1)), addr(2)),
        (b.packet(&[]), addr(2)),
    ];
    super::forward::prefetch(&table, batch.iter().map(|(p, _)| &p[..]));
    super::forward::prefetch(&table, std::iter::empty());
    out = Record::default();
    let results: Vec<Received> = batch
        .into_iter()
        .map(|(mut p, from)| receive(&table, &mut p, from, 1100, &mut scratch(), &mut out))
        .collect();
    assert!(matches!(
        results[..],
        [
            Received::Media {
                forwarded: Forwarded::Sent(Sent::Udp),
                ..
            },
            Received::Size,
            Received::AuthFailed,
            Received::AuthFailed,
            Received::Media {
                forwarded: Forwarded::Sent(Sent::Udp),
                ..
            },
            Received::Keepalive { echoed: true, .. },
        ]
    ));
    let to: Vec<SocketAddr> = out.udp.iter().map(|(to, _)| *to).collect();
    assert_eq!(to, [addr(2), addr(1), addr(2)]);
    assert_eq!(b.read(&out.udp[0].1), frame(CALL, 1));
    assert_eq!(a.read(&out.udp[1].1), frame(CALL, 1));
    assert!(out.quic.is_empty());
}
