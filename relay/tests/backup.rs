//! `phone-relay admin backup` while the relay runs, and a relay started on the backup.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use phoned_proto::{Event, Request, Response};
use phoned_tests::client::{self, Client};
use phoned_tests::process::RelayProcess;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_taken_while_serving_starts_a_relay_with_the_same_accounts_identity_and_mail() {
    let relay = common::relay("");
    let file: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let dest = relay.dir.path().join("backup");
    let (alice_number, alice_secret) = smol::block_on(async {
        let (ok, out, err) = relay.process.admin(
            &[
                "users",
                "add",
                "--number",
                "3001",
                "--name",
                "Bob",
                "--password-stdin",
            ],
            "bob password\n",
        );
        assert!(ok, "{out}{err}");
        // Bob is offline: a text and a file wait for him on the relay.
        let (alice, number, secret) = relay.provisioned("Alice").await;
        let stored = alice
            .request(Request::SendMessage {
                client_id: "m1".into(),
                to: "3001".into(),
                text: "written before the backup".into(),
            })
            .await
            .unwrap();
        assert!(matches!(stored, Response::Stored { .. }), "{stored:?}");
        common::files::upload(&alice, "3001", "plan.bin", &file).await;

        let (ok, out, err) = relay.process.admin(&["backup", dest.to_str().unwrap()], "");
        assert!(ok, "{out}{err}");
        for written in [
            "db/data.mdb",
            "relay-cert.der",
            "relay-key.der",
            "login-token.key",
        ] {
            let path = dest.join(written);
            assert!(out.contains(&path.display().to_string()), "{out}");
            assert_eq!(mode(&path), 0o600, "{written}");
        }
        assert!(out.contains("(1 files, 200000 bytes)"), "{out}");
        assert_eq!(mode(&dest), 0o700);
        // The relay served on throughout.
        alice.request(Request::Ping { nonce: 1 }).await.unwrap();
        (number, secret)
    });

    // Never into a directory that holds something, even a backup.
    let before = std::fs::read(dest.join("db/data.mdb")).unwrap();
    let (ok, _, err) = relay.process.admin(&["backup", dest.to_str().unwrap()], "");
    assert!(!ok && err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read(dest.join("db/data.mdb")).unwrap(), before);

    // Nothing to back up: refused before DEST is made.
    let elsewhere = relay.dir.path().join("elsewhere");
    let (ok, _, err) = phoned_tests::process::run_admin(
        common::BIN.as_ref(),
        &relay.dir.path().join("never-started"),
        &["backup", elsewhere.to_str().unwrap()],
        "",
    );
    assert!(!ok && err.contains("no relay database"), "{err}");
    assert!(!elsewhere.exists());

    // Restore: a relay whose state dir is the backup.
    let restored = RelayProcess::start(common::BIN.as_ref(), &dest, "127.0.0.1:0", "");
    assert_eq!(restored.fingerprint, relay.process.fingerprint);
    smol::block_on(async {
        let connect = || async {
            Client::connect(
                &client::endpoint(),
                restored.addr,
                Some(&restored.fingerprint),
            )
            .await
            .expect("connect to the restored relay")
        };
        connect()
            .await
            .login(&alice_number, &alice_secret)
            .await
            .unwrap();
        let bob = connect().await;
        bob.login("3001", "bob password").await.unwrap();
        let (mut text, mut offer) = (None, None);
        while text.is_none() || offer.is_none() {
            let mail = |e: &Event| matches!(e, Event::Message(_) | Event::File(_));
            match bob.wait_event(common::WAIT, mail).await {
                Some(Event::Message(m)) => text = Some(m.text),
                Some(Event::File(f)) => offer = Some(f),
                other => panic!("waiting for Bob's mail: {other:?}"),
            }
        }
        assert_eq!(text.as_deref(), Some("written before the backup"));
        let offer = offer.unwrap();
        assert_eq!(offer.name, "plan.bin");
        assert_eq!(common::files::download(&bob, offer.id).await, file);
    });
}
