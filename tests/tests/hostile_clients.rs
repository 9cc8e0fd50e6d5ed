//! Hand-made clients against a real relay and a real daemon: one address holding
//! connections it never logs in on, and strangers failing logins on the daemon's number
//! from other addresses. Neither keeps the daemon offline. (All of 127.0.0.0/8 is local:
//! clients bound to 127.0.0.2 and up are other addresses for the relay; the daemon comes
//! from 127.0.0.1.)

mod common;

use std::time::{Duration, Instant};

use phoned_proto::ErrorCode;
use phoned_tests::client::{self, Client, ClientError};

/// Connects from 127.0.0.`last` and says `Hello`.
async fn connect_from(last: u8, relay: std::net::SocketAddr) -> Result<Client, ClientError> {
    let endpoint = client::endpoint_on(([127, 0, 0, last], 0).into()).expect("endpoint");
    Client::connect(&endpoint, relay, None).await
}

#[test]
fn one_address_holding_connections_does_not_lock_out_a_daemon() {
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nmax_connections = 20\n\
         max_connections_per_address = 8\nlogin_timeout_ms = 600000",
    );
    let held = smol::block_on(async {
        let mut held = Vec::new();
        for _ in 0..30 {
            if let Ok(c) = connect_from(2, w.relay.addr).await {
                held.push(c);
            }
        }
        held
    });
    assert_eq!(held.len(), 8, "connections one address may hold");
    let a = w.phone("A");
    a.wait_online(common::ONLINE);
    assert!(held.iter().all(|c| c.conn.close_reason().is_none()));
}

/// Fails one login for `number` from `c`, waiting out any back-off the relay names.
async fn fail_once(c: &Client, number: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match c.login(number, "wrong").await.unwrap_err() {
            ClientError::Relay(w) if w.code == ErrorCode::InvalidCredentials => return,
            ClientError::Relay(w) if w.code == ErrorCode::RateLimited => {
                assert!(Instant::now() < deadline, "never let through");
                let wait = u64::from(w.retry_after_ms.unwrap_or(1_000));
                smol::Timer::after(Duration::from_millis(wait)).await;
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn strangers_failing_on_its_number_do_not_keep_a_known_daemon_offline() {
    // Strangers keep their connections while they try (no login timeout in the way).
    let w = common::world_with(
        "idle_timeout_ms = 2000\nkeep_alive_ms = 500\nlogin_timeout_ms = 600000",
    );
    let mut a = w.phone("A");
    let number = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .expect("number")
        .to_owned();
    a.stop();

    // Strangers from 60 addresses, each failing rarely enough that its own back-off never
    // holds it up: the number's block is what they renew, the moment it ends.
    let addr = w.relay.addr;
    let strangers: Vec<Client> = smol::block_on(phoned_tests::join_all(
        (2..62).map(|i| async move { connect_from(i, addr).await.expect("connect") }),
    ));
    // Eight failures: the number is blocked for 4 s for anyone without a token.
    smol::block_on(async {
        for s in &strangers[..8] {
            fail_once(s, &number).await;
        }
        let fresh = connect_from(1, addr).await.expect("connect");
        let e = fresh.login(&number, "any").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::RateLimited), "{e}");
    });
    let attack = {
        let number = number.clone();
        smol::spawn(async move {
            for s in strangers[8..].iter().cycle() {
                fail_once(s, &number).await;
            }
        })
    };

    // The daemon that logged in before comes back all the same: its token lets it past.
    a.restart();
    let s = a.wait_online(common::ONLINE);
    assert_eq!(s["number"], number.as_str());
    drop(attack);
}
