//! The UDP media plane of a real relay, driven by hand-made clients that seal their own
//! packets with keys from their QUIC connection's TLS exporter: media goes both ways over
//! UDP, follows a NAT rebinding, and falls back to QUIC datagrams for an old client; a
//! third party cannot inject or replay media (wrong key, unknown id, replay, another
//! call's id), and each such packet is counted.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::configured::{ConfiguredRelay, LOOPBACK};
use common::scrape::{endpoint, get, scrape};
use phoned_proto::call::CallPhase;
use phoned_proto::media::MediaFrame;
use phoned_proto::plane::{
    Direction, KEY_LABEL, Keys, MAX_PACKET, ReplayWindow, open_in_place, seal,
};
use phoned_proto::{Event, Request, Response};
use phoned_tests::client::{self, Client, Trust};

/// One client's end of the media plane.
struct Udp {
    socket: UdpSocket,
    relay: SocketAddr,
    id: u32,
    keys: Keys,
    sent: u64,
    window: ReplayWindow,
}

impl Udp {
    /// Waits for `c`'s `MediaPlane` event and opens a socket for it.
    async fn of(c: &Client) -> Udp {
        let Some(Event::MediaPlane { id, port }) = c
            .wait_event(common::WAIT, |e| matches!(e, Event::MediaPlane { .. }))
            .await
        else {
            panic!("no MediaPlane event");
        };
        let mut m = [0u8; 32];
        c.conn
            .export_keying_material(&mut m, KEY_LABEL, &id.to_be_bytes())
            .unwrap();
        Udp {
            socket: Self::socket(),
            relay: SocketAddr::from(([127, 0, 0, 1], port)),
            id,
            keys: Keys::from_exported(&m),
            sent: 0,
            window: ReplayWindow::new(),
        }
    }

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    }

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

    fn send(&mut self, plain: &[u8]) {
        let p = self.packet(plain);
        self.socket.send_to(&p, self.relay).unwrap();
    }

    /// The next authentic packet from the relay (within 300 ms), opened.
    fn recv(&mut self) -> Option<Vec<u8>> {
        let mut buf = [0u8; MAX_PACKET];
        loop {
            let (n, _) = self.socket.recv_from(&mut buf).ok()?;
            let window = &self.window;
            let Ok((c, plain)) =
                open_in_place(self.keys.key(Direction::Down), &mut buf[..n], |c| {
                    window.fresh(c)
                })
            else {
                continue;
            };
            let plain = plain.to_vec();
            self.window.accept(c);
            return Some(plain);
        }
    }

    /// Media frames from the relay, keep-alive echoes left out, until none comes.
    fn frames(&mut self) -> Vec<MediaFrame> {
        std::iter::from_fn(|| self.recv())
            .filter(|p| !p.is_empty())
            .map(|p| MediaFrame::decode(&p).unwrap())
            .collect()
    }
}

fn frame(call: u64, seq: u32) -> Vec<u8> {
    MediaFrame {
        call,
        source: 0,
        seq,
        timestamp: seq * 960,
        level: 30,
        payload: vec![7; 60],
    }
    .encode()
}

async fn speaking(relay: &ConfiguredRelay, version: u16) -> Client {
    let c = Client::connect_speaking(
        &client::endpoint(),
        relay.addr,
        "phone-relay",
        Trust::Any,
        version,
    )
    .await
    .expect("connect");
    c.provision("someone").await.expect("provision");
    c
}

/// `a` calls `b`, `b` answers; the call id once both see it active.
async fn call(a: &Client, b: &Client) -> u64 {
    let number = b.account(Request::AccountInfo).await.unwrap().number;
    let call = match a.request(Request::Dial { to: number }).await.unwrap() {
        Response::CallPlaced { call } => call,
        other => panic!("{other:?}"),
    };
    b.wait_event(common::WAIT, |e| matches!(e, Event::CallIncoming { .. }))
        .await
        .expect("rings");
    b.request(Request::Answer { call }).await.unwrap();
    for c in [a, b] {
        c.wait_event(common::WAIT, |e| {
            matches!(e, Event::CallState { call: id, phase: CallPhase::Active { .. } } if *id == call)
        })
        .await
        .expect("active");
    }
    call
}

fn relay() -> ConfiguredRelay {
    ConfiguredRelay::start(&format!(
        "{LOOPBACK}metrics_listen = \"127.0.0.1:0\"\nidle_timeout_ms = 60000"
    ))
}

#[test]
fn media_goes_both_ways_over_udp_and_follows_a_nat_rebinding() {
    let relay = relay();
    let at = endpoint(&relay);
    smol::block_on(async {
        let (alice, bob) = (speaking(&relay, 4).await, speaking(&relay, 4).await);
        let (mut ua, mut ub) = (Udp::of(&alice).await, Udp::of(&bob).await);
        let call = call(&alice, &bob).await;
        // Probes: each is echoed.
        ua.send(&[]);
        assert_eq!(ua.recv(), Some(vec![]), "keep-alive echo");
        ub.send(&[]);
        assert_eq!(ub.recv(), Some(vec![]), "keep-alive echo");
        for seq in 0..5 {
            ua.send(&frame(call, seq));
            ub.send(&frame(call, 100 + seq));
        }
        let seqs = |f: Vec<MediaFrame>| f.iter().map(|f| f.seq).collect::<Vec<_>>();
        assert_eq!(seqs(ub.frames()), [0, 1, 2, 3, 4]);
        assert_eq!(seqs(ua.frames()), [100, 101, 102, 103, 104]);

        // Alice's NAT gives her a new port: her next packet moves her, and Bob's media
        // follows her there.
        let old = std::mem::replace(&mut ua.socket, Udp::socket());
        ua.send(&frame(call, 5));
        assert_eq!(seqs(ub.frames()), [5]);
        ub.send(&frame(call, 105));
        assert_eq!(seqs(ua.frames()), [105]);
        old.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            old.recv_from(&mut [0u8; 64]).is_err(),
            "nothing to the old port"
        );
    });
    let s = scrape(at);
    // 2 probes + 12 frames, all authentic; each party's first packet and Alice's move.
    assert_eq!(get(&s, "phone_relay_media_udp_received_total"), 14.0);
    assert_eq!(get(&s, "phone_relay_media_udp_address_changes_total"), 3.0);
    assert_eq!(get(&s, "phone_relay_media_forwarded_total"), 12.0);
    assert_eq!(get(&s, "phone_relay_media_udp_sent_total"), 14.0);
}

#[test]
fn forged_replayed_and_foreign_packets_are_counted_and_never_forwarded() {
    let relay = relay();
    let at = endpoint(&relay);
    smol::block_on(async {
        let (alice, bob, eve) = (
            speaking(&relay, 4).await,
            speaking(&relay, 4).await,
            speaking(&relay, 4).await,
        );
        let (mut ua, mut ub, mut ue) = (
            Udp::of(&alice).await,
            Udp::of(&bob).await,
            Udp::of(&eve).await,
        );
        let call = call(&alice, &bob).await;
        ub.send(&[]);
        assert_eq!(ub.recv(), Some(vec![]));
        let attacker = Udp::socket();
        let relay_media = ua.relay;
        let send = |p: &[u8]| {
            attacker.send_to(p, relay_media).unwrap();
        };
        // Alice's id, sealed with a key that is not hers (the attacker knows the id).
        let mut forged = Udp::of_parts(&ua);
        forged.keys = Keys::from_exported(&[42; 32]);
        send(&forged.packet(&frame(call, 900)));
        // An id nobody has.
        forged.id = ua.id ^ 0x5a5a_5a5a;
        send(&forged.packet(&frame(call, 901)));
        // Alice's genuine packet, then the same bytes again from the attacker.
        let genuine = ua.packet(&frame(call, 1));
        ua.socket.send_to(&genuine, ua.relay).unwrap();
        send(&genuine);
        // A genuine packet with its bytes changed on the way.
        let mut changed = ua.packet(&frame(call, 2));
        changed[20] ^= 0xff;
        send(&changed);
        // Eve, a logged-in session with valid keys, sends on Alice and Bob's call.
        ue.send(&frame(call, 903));
        // Garbage and a runt.
        send(b"not a packet at all, long enough to have a header");
        send(&[1, 2, 3]);
        let got: Vec<u32> = ub.frames().iter().map(|f| f.seq).collect();
        assert_eq!(got, [1], "only Alice's genuine frame, once");
        // The call is undisturbed: Alice's next frame still goes through.
        ua.send(&frame(call, 3));
        assert_eq!(ub.frames().iter().map(|f| f.seq).collect::<Vec<_>>(), [3]);
    });
    let s = scrape(at);
    let dropped = |cause: &str| {
        get(
            &s,
            &format!("phone_relay_media_dropped_total{{cause=\"{cause}\"}}"),
        )
    };
    // Wrong key, unknown id, changed bytes, garbage.
    assert_eq!(dropped("auth_failed"), 4.0);
    assert_eq!(dropped("replayed"), 1.0);
    // Eve's frame: authentic, but she has no route on that call.
    assert_eq!(dropped("no_route"), 1.0);
    assert_eq!(dropped("malformed"), 1.0);
    assert_eq!(get(&s, "phone_relay_media_forwarded_total"), 2.0);
}

impl Udp {
    /// The same session's id and relay address, with a fresh socket and no keys of its
    /// own (the caller sets them).
    fn of_parts(u: &Udp) -> Udp {
        Udp {
            socket: Udp::socket(),
            relay: u.relay,
            id: u.id,
            keys: Keys::from_exported(&[0; 32]),
            sent: 0,
            window: ReplayWindow::new(),
        }
    }
}

#[test]
fn an_old_client_gets_its_media_over_quic_datagrams() {
    let relay = relay();
    smol::block_on(async {
        let alice = speaking(&relay, 4).await;
        let old = speaking(&relay, 3).await;
        let mut ua = Udp::of(&alice).await;
        // The old client's first event after its login is not a MediaPlane.
        let pong = old.request(Request::Ping { nonce: 1 }).await.unwrap();
        assert!(matches!(pong, Response::Pong { nonce: 1 }));
        assert!(
            old.wait_event(Duration::from_millis(200), |e| matches!(
                e,
                Event::MediaPlane { .. }
            ))
            .await
            .is_none(),
            "protocol 3 got a MediaPlane event"
        );
        let call = call(&alice, &old).await;
        // Alice over UDP → the old client as a QUIC datagram.
        ua.send(&frame(call, 1));
        let got = smol::future::or(async { old.conn.read_datagram().await.ok() }, async {
            smol::Timer::after(common::WAIT).await;
            None
        })
        .await
        .expect("a QUIC datagram");
        assert_eq!(got.as_ref(), &frame(call, 1)[..]);
        // The old client's QUIC datagram → Alice over UDP (she was heard just now).
        old.conn.send_datagram(frame(call, 50).into()).unwrap();
        assert_eq!(ua.frames().iter().map(|f| f.seq).collect::<Vec<_>>(), [50]);
    });
}
