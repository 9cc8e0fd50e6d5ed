//! Hostile or broken input over real connections: each bad client gets an error or a
//! closed connection, and the relay keeps serving everyone else.

mod common;

use std::time::Duration;

use phoned_proto::error::close;
use phoned_proto::{
    ClientFrame, ErrorCode, FrameDecoder, Hello, Request, Response, ServerMsg, decode_server,
    encode_client, frame::write_frame,
};
use phoned_tests::client::{self, connect_raw};

/// Reads server messages from a raw stream until it ends or `within` passes.
async fn read_all(recv: &mut quinn::RecvStream, within: Duration) -> Vec<ServerMsg> {
    let mut out = Vec::new();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let deadline = smol::Timer::after(within);
    let read = async {
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            decoder.push(&buf[..n]);
            while let Ok(Some(body)) = decoder.next_frame() {
                out.push(decode_server(body).expect("relay sends valid frames"));
            }
        }
    };
    smol::future::or(read, async {
        deadline.await;
    })
    .await;
    out
}

fn hello(version: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    let req = Request::Hello(Hello {
        version,
        client: "hostile".into(),
    });
    encode_client(&mut bytes, &ClientFrame { id: 1, req }).unwrap();
    bytes
}

async fn still_serving(relay: &common::Relay) {
    let c = relay.client().await;
    assert!(matches!(
        c.request(Request::Ping { nonce: 9 }).await,
        Ok(Response::Pong { nonce: 9 })
    ));
}

#[test]
fn random_bytes_close_the_connection_and_others_are_unaffected() {
    let relay = common::relay("");
    smol::block_on(async {
        let bystander = relay.client().await;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..8 {
            let (conn, mut send, mut recv, _) =
                connect_raw(&client::endpoint(), relay.process.addr, None)
                    .await
                    .unwrap();
            // More than one maximum frame, so whatever length the garbage declares, a frame
            // completes (or the header is refused) and the relay must decide.
            let bytes: Vec<u8> = (0..70_000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = send.write_all(&bytes).await;
            let _ = read_all(&mut recv, Duration::from_secs(5)).await;
            let reason = smol::future::or(async { Some(conn.closed().await) }, async {
                smol::Timer::after(Duration::from_secs(5)).await;
                None
            })
            .await;
            assert!(
                reason.is_some(),
                "round {round}: connection left open after garbage"
            );
        }
        assert!(matches!(
            bystander.request(Request::Ping { nonce: 1 }).await,
            Ok(Response::Pong { nonce: 1 })
        ));
        still_serving(&relay).await;
    });
}

#[test]
fn an_oversized_frame_gets_goodbye_and_close() {
    let relay = common::relay("");
    smol::block_on(async {
        let (conn, mut send, mut recv, _) =
            connect_raw(&client::endpoint(), relay.process.addr, None)
                .await
                .unwrap();
        send.write_all(&hello(1)).await.unwrap();
        // Header announcing 1 MiB, then some of it.
        send.write_all(&[0x80, 0x80, 0x40]).await.unwrap();
        let _ = send.write_all(&vec![0u8; 70_000]).await;
        let msgs = read_all(&mut recv, Duration::from_secs(5)).await;
        assert!(matches!(
            msgs.first(),
            Some(ServerMsg::Response {
                id: 1,
                result: Ok(Response::Welcome(_))
            })
        ));
        assert!(
            matches!(msgs.last(), Some(ServerMsg::Goodbye(e)) if e.code == ErrorCode::ProtocolViolation),
            "{msgs:?}"
        );
        let reason = conn.closed().await;
        assert!(
            matches!(reason, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == close::PROTOCOL.into()),
            "{reason:?}"
        );
        still_serving(&relay).await;
    });
}

#[test]
fn an_unknown_request_is_answered_and_the_connection_stays_up() {
    let relay = common::relay("");
    smol::block_on(async {
        let (_conn, mut send, mut recv, _) =
            connect_raw(&client::endpoint(), relay.process.addr, None)
                .await
                .unwrap();
        let mut bytes = hello(1);
        // id 7, request variant 250: from a newer client.
        write_frame(&mut bytes, &[7, 0xfa, 0x01, 1, 2, 3]).unwrap();
        let mut ping = Vec::new();
        encode_client(
            &mut ping,
            &ClientFrame {
                id: 8,
                req: Request::Ping { nonce: 5 },
            },
        )
        .unwrap();
        bytes.extend_from_slice(&ping);
        send.write_all(&bytes).await.unwrap();
        let msgs = read_all(&mut recv, Duration::from_secs(2)).await;
        assert!(
            matches!(&msgs[1], ServerMsg::Response { id: 7, result: Err(e) } if e.code == ErrorCode::UnknownRequest),
            "{msgs:?}"
        );
        assert!(matches!(
            &msgs[2],
            ServerMsg::Response {
                id: 8,
                result: Ok(Response::Pong { nonce: 5 })
            }
        ));
    });
}

#[test]
fn wrong_version_and_missing_hello_are_refused() {
    let relay = common::relay("");
    smol::block_on(async {
        let (conn, mut send, mut recv, _) =
            connect_raw(&client::endpoint(), relay.process.addr, None)
                .await
                .unwrap();
        send.write_all(&hello(99)).await.unwrap();
        let msgs = read_all(&mut recv, Duration::from_secs(5)).await;
        assert!(
            matches!(&msgs[0], ServerMsg::Response { id: 1, result: Err(e) } if e.code == ErrorCode::UnsupportedVersion),
            "{msgs:?}"
        );
        let reason = conn.closed().await;
        assert!(
            matches!(reason, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == close::VERSION.into())
        );

        let (conn, mut send, mut recv, _) =
            connect_raw(&client::endpoint(), relay.process.addr, None)
                .await
                .unwrap();
        let mut bytes = Vec::new();
        encode_client(
            &mut bytes,
            &ClientFrame {
                id: 1,
                req: Request::ListOnline,
            },
        )
        .unwrap();
        send.write_all(&bytes).await.unwrap();
        let msgs = read_all(&mut recv, Duration::from_secs(5)).await;
        assert!(
            matches!(&msgs[..], [ServerMsg::Goodbye(e)] if e.code == ErrorCode::ProtocolViolation),
            "{msgs:?}"
        );
        let _ = conn.closed().await;
        still_serving(&relay).await;
    });
}

#[test]
fn garbage_datagrams_and_silent_connections_do_not_disturb_the_relay() {
    let relay = common::relay("");
    smol::block_on(async {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..500u32 {
            let junk: Vec<u8> = (0..(i % 1400) as usize)
                .map(|j| (j as u32 ^ i) as u8)
                .collect();
            sock.send_to(&junk, relay.process.addr).unwrap();
        }
        // A client that connects but never opens its control stream is dropped later;
        // meanwhile everyone else is served.
        let endpoint = client::endpoint();
        let _silent = endpoint.connect(relay.process.addr, "phone-relay").err();
        still_serving(&relay).await;
    });
}
