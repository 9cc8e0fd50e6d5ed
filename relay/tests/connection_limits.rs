//! Connections that never log in cost the relay and hold its connection limits: they are
//! closed after `login_timeout_ms`, and one address holds at most
//! `max_connections_per_address` of them, so it cannot lock real devices out. The
//! clients here are hand-made: they say `Hello` and then nothing.

mod common;

use common::WAIT;
use common::configured::{ConfiguredRelay, LOOPBACK};
use phoned_proto::{ErrorCode, Request, Response};
use phoned_tests::client::{self, Client};
use phoned_tests::join_all;

/// A client endpoint on loopback address 127.0.0.`last` (all of 127.0.0.0/8 is local):
/// another "address" for the relay.
fn from(last: u8) -> quinn::Endpoint {
    client::endpoint_on(([127, 0, 0, last], 0).into()).expect("endpoint on 127.0.0.x")
}

#[test]
fn connections_that_do_not_log_in_are_closed_after_the_login_timeout() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}login_timeout_ms = 2000\nmax_connections_per_address = 100\n"
    ));
    smol::block_on(async {
        let attacker = from(2);
        let idle: Vec<Client> =
            join_all((0..30).map(|_| Client::connect(&attacker, relay.addr, None)))
                .await
                .into_iter()
                .map(|c| c.expect("Hello answered"))
                .collect();
        // A device that logs in in time is not affected.
        let device = relay.client().await;
        device.provision("Device").await.expect("provision");

        for c in &idle {
            assert!(
                c.closed(WAIT).await.is_some(),
                "still open after the timeout"
            );
            let goodbye = c.goodbye().expect("a Goodbye says why");
            assert_eq!(goodbye.code, ErrorCode::NotLoggedIn, "{goodbye}");
            assert_eq!(goodbye.message, "not logged in within 2 s");
        }
        // Every idle one is gone, so the timeout has passed for the device too.
        assert_eq!(device.conn.close_reason(), None);
        let pong = device.request(Request::Ping { nonce: 7 }).await;
        assert_eq!(pong.unwrap(), Response::Pong { nonce: 7 });
    });
}

#[test]
fn one_address_cannot_take_every_connection() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}max_connections = 20\nmax_connections_per_address = 8\nlogin_timeout_ms = 600000\n"
    ));
    smol::block_on(async {
        let attacker = from(2);
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..30 {
            match Client::connect(&attacker, relay.addr, None).await {
                Ok(c) => held.push(c),
                Err(e) => {
                    assert!(e.to_string().contains("refused"), "{e}");
                    refused += 1;
                }
            }
        }
        assert_eq!((held.len(), refused), (8, 22));

        // Real devices from another address still get in, and log in.
        let (account, secret) = relay.client().await.provision("Owner").await.unwrap();
        let second = relay.client().await;
        second.login(&account.number, &secret).await.expect("login");

        // The attacker's connections are still the only ones refused.
        assert!(Client::connect(&attacker, relay.addr, None).await.is_err());
        drop(held);
    });
    let log = relay.log();
    assert!(
        log.contains("connection limit for this address reached"),
        "{log}"
    );
}
