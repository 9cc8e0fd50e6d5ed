//! PostgreSQL goes away under a running relay: sessions stay up and what needs no
//! database goes on (presence, pings, calls); logins and messages fail with a clear
//! `Unavailable`; once PostgreSQL is back, everything works again without a restart.

mod common;

use phoned_proto::{ErrorCode, Request, Response};

#[test]
fn with_postgres_down_sessions_go_on_and_logins_fail_clearly_until_it_is_back() {
    // A cluster of its own: this test stops it.
    let Some(cluster) = phoned_tests::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database();
    let relay = common::relay(&format!("store = \"{url}\""));
    smol::block_on(async {
        let (alice, _, _) = relay.provisioned("Alice").await;
        let (bob, bob_number, bob_secret) = relay.provisioned("Bob").await;

        cluster.stop();
        // Logged-in sessions carry on.
        alice.request(Request::Ping { nonce: 7 }).await.unwrap();
        assert!(matches!(
            alice.request(Request::ListOnline).await,
            Ok(Response::Online(users)) if users.len() == 2
        ));
        // Finding an account (a login, a message's recipient, a callee) needs the
        // database: refused clearly, not as a wrong password.
        let e = relay
            .client()
            .await
            .login(&bob_number, &bob_secret)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}");
        assert!(e.to_string().contains("database is unavailable"), "{e}");
        let sent = alice
            .request(Request::SendMessage {
                client_id: "while-down".into(),
                to: bob_number.clone(),
                text: "hello?".into(),
            })
            .await;
        assert_eq!(sent.unwrap_err().code(), Some(ErrorCode::Unavailable));

        cluster.restart();
        // The pool and the committer connect again on their next use.
        let again = relay.client().await;
        again.login(&bob_number, &bob_secret).await.unwrap();
        assert!(matches!(
            alice
                .request(Request::SendMessage {
                    client_id: "after".into(),
                    to: bob_number.clone(),
                    text: "back".into(),
                })
                .await,
            Ok(Response::Stored { .. })
        ));
        drop(bob);
    });
}
