//! What the relay acknowledged survives a clean restart and a `kill -9`.

mod common;

common::on_both_stores!(accounts_survive_restart_and_kill9,);

use phoned_proto::{Request, Response};

fn accounts_survive_restart_and_kill9(store: common::Store) {
    let Some(mut relay) = common::relay_on(store, "") else {
        return;
    };
    let fingerprint = relay.process.fingerprint.clone();
    let (number, secret) = smol::block_on(async {
        let (c, number, secret) = relay.provisioned("Survivor").await;
        c.account(Request::SetDisplayName {
            name: "Renamed".into(),
        })
        .await
        .unwrap();
        (number, secret)
    });
    let status = relay.process.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");
    relay.process.restart();
    assert_eq!(
        relay.process.fingerprint, fingerprint,
        "identity kept across restarts"
    );
    smol::block_on(async {
        let c = relay.client().await;
        let info = c.login(&number, &secret).await.unwrap();
        assert_eq!(info.display_name, "Renamed");
        // Acknowledged, then killed at once.
        let r = c
            .request(Request::Register {
                number: "4242".into(),
                password: "kill nine survivor".into(),
                display_name: "Late".into(),
            })
            .await;
        assert_eq!(
            r.unwrap_err().code(),
            Some(phoned_proto::ErrorCode::AlreadyLoggedIn)
        );
        let fresh = relay.client().await;
        assert!(matches!(
            fresh
                .request(Request::Register {
                    number: "4242".into(),
                    password: "kill nine survivor".into(),
                    display_name: "Late".into(),
                })
                .await,
            Ok(Response::LoggedIn(_))
        ));
        assert!(matches!(
            c.request(Request::ChangeNumber {
                number: "4343".into()
            })
            .await,
            Ok(Response::Account(_))
        ));
    });
    relay.process.kill();
    relay.process.restart();
    smol::block_on(async {
        let c = relay.client().await;
        c.login("4242", "kill nine survivor").await.unwrap();
        let d = relay.client().await;
        let info = d.login("4343", &secret).await.unwrap();
        assert_eq!(info.display_name, "Renamed");
    });
}
