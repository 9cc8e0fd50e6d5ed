//! `phone-relay admin` against a running relay: changes reach live sessions.

mod common;

common::on_both_stores!(
    disabling_an_account_closes_its_session_and_blocks_login,
    admin_manages_users_while_the_relay_runs,
);

use std::time::Duration;

use phoned_proto::{ErrorCode, Event};

fn disabling_an_account_closes_its_session_and_blocks_login(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let (victim, number, secret) = relay.provisioned("Victim").await;
        let (ok, out, err) = relay.process.admin(&["users", "disable", &number], "");
        assert!(ok, "{out}{err}");
        let closed = victim.closed(common::WAIT).await;
        assert!(closed.is_some(), "session still open after disable");
        assert_eq!(
            victim.goodbye().map(|g| g.code),
            Some(ErrorCode::SessionRevoked)
        );
        let again = relay.client().await;
        let e = again.login(&number, &secret).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::AccountDisabled));
        let (ok, _, _) = relay.process.admin(&["users", "enable", &number], "");
        assert!(ok);
        again.login(&number, &secret).await.unwrap();
    });
}

fn admin_manages_users_while_the_relay_runs(store: common::Store) {
    let Some(relay) = common::relay_on(store, "") else {
        return;
    };
    smol::block_on(async {
        let (ok, out, err) = relay.process.admin(
            &[
                "users",
                "add",
                "--number",
                "2001",
                "--name",
                "Front door",
                "--password-stdin",
            ],
            "door password\n",
        );
        assert!(ok, "{out}{err}");
        let door = relay.client().await;
        door.login("2001", "door password").await.unwrap();
        let (watcher, _, _) = relay.provisioned("Watcher").await;

        // Renumbering an online account: others see the old number leave and the new arrive.
        let (ok, _, err) = relay
            .process
            .admin(&["users", "set-number", "2001", "2002"], "");
        assert!(ok, "{err}");
        let moved = watcher
            .wait_event(
                common::WAIT,
                |e| matches!(e, Event::Presence { number, online: true, .. } if number == "2002"),
            )
            .await;
        assert!(moved.is_some());
        let pushed = door
            .wait_event(
                common::WAIT,
                |e| matches!(e, Event::AccountChanged(i) if i.number == "2002"),
            )
            .await;
        assert!(pushed.is_some());

        let (ok, out, _) = relay.process.admin(&["users", "list", "--json"], "");
        assert!(ok);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        let door_row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["number"] == "2002")
            .unwrap();
        assert_eq!(door_row["display_name"], "Front door");

        // Reset: the old password stops working and the live session is closed.
        let (ok, out, _) = relay
            .process
            .admin(&["users", "reset-password", "2002"], "");
        assert!(ok);
        let new_password = out
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .unwrap()
            .to_owned();
        assert!(door.closed(common::WAIT).await.is_some());
        let c = relay.client().await;
        assert_eq!(
            c.login("2002", "door password").await.unwrap_err().code(),
            Some(ErrorCode::InvalidCredentials)
        );
        c.login("2002", &new_password).await.unwrap();

        let (ok, _, _) = relay.process.admin(&["users", "delete", "2002"], "");
        assert!(ok);
        assert!(c.closed(common::WAIT).await.is_some());

        // Bad input: a clear message and a failing exit status.
        for args in [
            &["users", "disable", "12x"][..],
            &["users", "delete", "2002"][..],
            &["users", "set-number", "2001", "nope"][..],
        ] {
            let (ok, _, err) = relay.process.admin(args, "");
            assert!(!ok && !err.is_empty(), "{args:?}");
        }
        let _ = Duration::ZERO;
    });
}
