//! Accounts and numbers over a real QUIC connection to a real relay process.

mod common;

common::on_both_stores!(
    provision_gives_a_number_in_range_and_the_secret_logs_in,
    register_validates_and_refuses_a_taken_number,
    sixteen_way_race_for_one_number_has_exactly_one_winner,
    name_and_password_changes_reach_other_devices,
);

use std::time::Duration;

use phoned_proto::{ErrorCode, Request, Response};
use phoned_tests::client::{self, Client, ClientError};

fn provision_gives_a_number_in_range_and_the_secret_logs_in(store: common::Store) {
    let Some(relay) = common::relay_on(store, "numbers = \"5000-5099\"") else {
        return;
    };
    smol::block_on(async {
        let (first, number, secret) = relay.provisioned("Kitchen").await;
        let n: u32 = number.parse().unwrap();
        assert!((5000..=5099).contains(&n), "{number}");
        assert!(secret.len() >= 32);
        let again = relay.client().await;
        let info = again.login(&number, &secret).await.unwrap();
        assert_eq!(info.display_name, "Kitchen");
        assert_eq!(info.devices_online, 2);
        let info = first.account(Request::AccountInfo).await.unwrap();
        assert_eq!(info.devices_online, 2);
        // A logged-in session cannot log in again.
        let e = again.login(&number, &secret).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::AlreadyLoggedIn));
    });
}

#[test]
fn unknown_number_and_wrong_password_get_the_same_error_then_back_off() {
    let relay = common::relay("");
    smol::block_on(async {
        let (_owner, number, _secret) = relay.provisioned("Owner").await;
        let c = relay.client().await;
        let wrong = c.login(&number, "not the password").await.unwrap_err();
        let unknown = c.login("99999", "not the password").await.unwrap_err();
        let (ClientError::Relay(a), ClientError::Relay(b)) = (wrong, unknown) else {
            panic!("expected relay errors")
        };
        assert_eq!(a.code, ErrorCode::InvalidCredentials);
        assert_eq!((a.code, &a.message), (b.code, &b.message));
        // Keep failing from this address: the relay starts refusing before hashing.
        let mut limited = None;
        for _ in 0..6 {
            match c.login(&number, "still wrong").await.unwrap_err() {
                ClientError::Relay(e) if e.code == ErrorCode::RateLimited => {
                    limited = Some(e);
                    break;
                }
                ClientError::Relay(e) => assert_eq!(e.code, ErrorCode::InvalidCredentials),
                other => panic!("{other}"),
            }
        }
        let limited = limited.expect("rate limited after repeated failures");
        assert!(limited.retry_after_ms.unwrap() > 0);
    });
}

fn register_validates_and_refuses_a_taken_number(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let c = relay.client().await;
        let reg = |number: &str, password: &str, name: &str| Request::Register {
            number: number.into(),
            password: password.into(),
            display_name: name.into(),
        };
        let codes = [
            (reg("12a4", "password1", "A"), ErrorCode::InvalidNumber),
            (reg("1042", "short", "A"), ErrorCode::InvalidPassword),
            (reg("1042", "password1", ""), ErrorCode::InvalidName),
        ];
        for (req, code) in codes {
            assert_eq!(c.request(req).await.unwrap_err().code(), Some(code));
        }
        let info = c.account(reg("1042", "password1", "Alice")).await.unwrap();
        assert_eq!(info.number, "1042");
        let other = relay.client().await;
        let e = other
            .request(reg("1042", "password2", "Mallory"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NumberTaken));
        // Requests that need an account are refused before login.
        let e = other.request(Request::AccountInfo).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::NotLoggedIn));
    });
}

fn sixteen_way_race_for_one_number_has_exactly_one_winner(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let mut clients = Vec::new();
        for i in 0..16 {
            clients.push(relay.provisioned(&format!("Racer {i}")).await.0);
        }
        let answers = phoned_tests::join_all(clients.iter().map(|c| {
            c.request(Request::ChangeNumber {
                number: "7777".into(),
            })
        }))
        .await;
        let wins = answers
            .iter()
            .filter(|a| matches!(a, Ok(Response::Account(i)) if i.number == "7777"))
            .count();
        let taken = answers
            .iter()
            .filter(|a| matches!(a, Err(e) if e.code() == Some(ErrorCode::NumberTaken)))
            .count();
        assert_eq!((wins, taken), (1, 15), "{answers:?}");
        let e = clients[0]
            .request(Request::ChangeNumber {
                number: "0123".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidNumber));
    });
}

fn name_and_password_changes_reach_other_devices(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let (phone, number, _secret) = relay.provisioned("Old name").await;
        let info = phone
            .account(Request::SetDisplayName {
                name: "Hall".into(),
            })
            .await
            .unwrap();
        assert_eq!(info.display_name, "Hall");
        let e = phone
            .request(Request::SetDisplayName {
                name: "bad\nname".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::InvalidName));
        assert!(matches!(
            phone
                .request(Request::SetPassword {
                    password: "a new password".into()
                })
                .await,
            Ok(Response::Done)
        ));
        let second = relay.client().await;
        let info = second.login(&number, "a new password").await.unwrap();
        assert_eq!(info.display_name, "Hall");
        // A rename on the second device is pushed to the first.
        second
            .account(Request::SetDisplayName {
                name: "Porch".into(),
            })
            .await
            .unwrap();
        let pushed = phone
            .wait_event(Duration::from_secs(5), |e| {
                matches!(e, phoned_proto::Event::AccountChanged(i) if i.display_name == "Porch")
            })
            .await;
        assert!(
            pushed.is_some(),
            "rename on the second device not pushed to the first"
        );
    });
}

#[test]
fn a_wrong_pinned_fingerprint_is_refused() {
    let relay = common::relay("");
    smol::block_on(async {
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = Client::connect(&client::endpoint(), relay.process.addr, Some(&wrong))
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("does not match"), "{err}");
        let ok = Client::connect(&client::endpoint(), relay.process.addr, None)
            .await
            .unwrap();
        assert_eq!(
            ok.fingerprint.as_deref(),
            Some(relay.process.fingerprint.as_str())
        );
    });
}

#[test]
fn one_address_cannot_provision_the_whole_range() {
    let relay = common::relay("provision_burst = 3\nprovision_per_hour = 1");
    smol::block_on(async {
        for i in 0..3 {
            relay.provisioned(&format!("ok {i}")).await;
        }
        let c = relay.client().await;
        let e = c.provision("one too many").await.unwrap_err();
        let ClientError::Relay(e) = e else {
            panic!("{e}")
        };
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after_ms.unwrap() > 60_000);
    });
}
