//! Login back-off under attack: parallel connections get no more password checks than
//! one client trying in turn, and strangers' failures on a number, from other addresses,
//! do not lock out the owner's device that has logged in before (its login token).
//! Every failed check is one `failed login` line in the relay's log.

mod common;

use std::time::{Duration, Instant};

use common::configured::{ConfiguredRelay, LOOPBACK};
use phoned_proto::ErrorCode;
use phoned_tests::client::{self, Client, ClientError};
use phoned_tests::join_all;

/// Password checks the back-off allows one key at once: five free failures and the
/// first one that starts the back-off (docs/protocol.md §10).
const DESIGNED_CHECKS: usize = 6;

/// A client endpoint on loopback address 127.0.0.`last`: another "address" for the relay.
fn from(last: u8) -> quinn::Endpoint {
    client::endpoint_on(([127, 0, 0, last], 0).into()).expect("endpoint on 127.0.0.x")
}

fn failed_checks(relay: &ConfiguredRelay) -> usize {
    relay.log().matches("failed login").count()
}

#[test]
fn parallel_wrong_passwords_get_no_more_checks_than_the_design() {
    let relay = ConfiguredRelay::start(&format!(
        "{LOOPBACK}max_connections_per_address = 100\nlogin_timeout_ms = 120000\n"
    ));
    smol::block_on(async {
        let (owner, _) = relay.client().await.provision("Owner").await.unwrap();
        let attacker = from(2);
        let conns: Vec<Client> =
            join_all((0..64).map(|_| Client::connect(&attacker, relay.addr, None)))
                .await
                .into_iter()
                .map(|c| c.expect("connect"))
                .collect();
        let answers = join_all(conns.iter().map(|c| c.login(&owner.number, "wrong"))).await;
        let code = |r: &Result<_, ClientError>| r.as_ref().err().and_then(ClientError::code);
        let checked = answers
            .iter()
            .filter(|r| code(r) == Some(ErrorCode::InvalidCredentials))
            .count();
        let limited = answers
            .iter()
            .filter(|r| code(r) == Some(ErrorCode::RateLimited))
            .count();
        assert_eq!(checked + limited, 64, "{answers:?}");
        eprintln!("64 parallel attempts: {checked} password checks, {limited} refused at once");
        assert!(
            checked <= DESIGNED_CHECKS,
            "{checked} password checks for 64 parallel attempts"
        );
        // The relay's own count agrees (each answer follows its log line).
        assert_eq!(failed_checks(&relay), checked, "{}", relay.log());
    });
}

/// Fails one login for `number` from `c`, waiting out any back-off the relay names.
async fn fail_once(c: &Client, number: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = c.login(number, "wrong").await.unwrap_err();
        match e {
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
fn a_strangers_failures_do_not_lock_out_the_owners_known_device() {
    let relay = ConfiguredRelay::start(LOOPBACK);
    smol::block_on(async {
        // The owner's device: provisioned, with a login token for its next login.
        let device = relay.client().await;
        let (owner, secret) = device.provision("Owner").await.unwrap();
        let token = device.device_token().await.unwrap().expect("a token");
        drop(device);

        // Strangers from eight other addresses, each under its own back-off, fail on
        // the owner's number until it is blocked for everyone without a token: six
        // failures block it for 1 s, two more (each after the block ends) for 4 s.
        let strangers =
            join_all((2..10).map(|i| async move {
                Client::connect(&from(i), relay.addr, None).await.unwrap()
            }))
            .await;
        for s in &strangers {
            fail_once(s, &owner.number).await;
        }
        let blocked = strangers[0]
            .login(&owner.number, "wrong")
            .await
            .unwrap_err();
        assert_eq!(blocked.code(), Some(ErrorCode::RateLimited), "{blocked}");
        let fresh = relay.client().await;
        let e = fresh.login(&owner.number, &secret).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::RateLimited), "{e}");

        // The known device gets in all the same, and keeps its token.
        let known = relay.client().await;
        let (account, again) = known
            .login_device(&owner.number, &secret, Some(&token))
            .await
            .expect("the known device logs in");
        assert_eq!(account.number, owner.number);
        assert_eq!(again.as_deref(), Some(token.as_str()));

        // The token alone logs nothing in.
        let thief = Client::connect(&from(2), relay.addr, None).await.unwrap();
        let e = thief
            .login_device(&owner.number, "wrong", Some(&token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidCredentials), "{e}");
        // A token from another account's login does not pass for this one.
        let (other, other_secret) = relay.client().await.provision("Other").await.unwrap();
        let (_, other_token) = relay
            .client()
            .await
            .login_device(&other.number, &other_secret, None)
            .await
            .unwrap();
        let e = relay
            .client()
            .await
            .login_device(&owner.number, &secret, other_token.as_deref())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::RateLimited), "{e}");
    });
    assert!(failed_checks(&relay) >= 9, "{}", relay.log());
}
