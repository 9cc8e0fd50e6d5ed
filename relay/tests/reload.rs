//! `phone-relay serve` re-reads its config on SIGHUP: what is safe applies at once
//! without dropping connections, restart-only keys are named and kept, and a broken
//! config changes nothing.

mod common;

use std::path::Path;
use std::process::Command;

use common::configured::{ConfiguredRelay, LOOPBACK};
use phoned_proto::call::{CallPhase, EndReason};
use phoned_proto::{ErrorCode, Event, Request, Response};

fn config(extra: &str) -> String {
    format!("{LOOPBACK}{extra}\n")
}

#[test]
fn closing_provisioning_applies_to_new_requests_and_keeps_connections() {
    let relay = ConfiguredRelay::start(&config("allow_provision = true"));
    smol::block_on(async {
        let early = relay.client().await;
        let (account, _) = early.provision("Early").await.unwrap();

        let outcome = relay.reload();
        assert!(
            outcome.contains("config reloaded: nothing changed"),
            "{outcome}"
        );

        let outcome = relay.reload_with(&config("allow_provision = false"));
        assert!(
            outcome.contains("config reloaded: allow_provision"),
            "{outcome}"
        );
        let late = relay.client().await;
        let refused = late.provision("Late").await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::RegistrationClosed));

        // The connection from before the reload is still up and answering.
        let info = early.account(Request::AccountInfo).await.unwrap();
        assert_eq!(info.number, account.number);
        assert!(early.conn.close_reason().is_none());

        relay.reload_with(&config("allow_provision = true"));
        late.provision("Late").await.unwrap();
    });
}

#[test]
fn a_shorter_ring_timeout_applies_to_the_next_call() {
    // Without the reload the call would ring for ten minutes, far beyond the wait below.
    let relay = ConfiguredRelay::start(&config("ring_timeout_ms = 600000"));
    smol::block_on(async {
        let alice = relay.client().await;
        alice.provision("Alice").await.unwrap();
        let bob = relay.client().await;
        let (b, _) = bob.provision("Bob").await.unwrap();
        let outcome = relay.reload_with(&config("ring_timeout_ms = 1000"));
        assert!(
            outcome.contains("config reloaded: ring_timeout_ms"),
            "{outcome}"
        );
        let call = match alice.request(Request::Dial { to: b.number }).await.unwrap() {
            Response::CallPlaced { call } => call,
            other => panic!("{other:?}"),
        };
        let ended = alice
            .wait_event(common::WAIT, |e| {
                matches!(e, Event::CallState { call: id, phase: CallPhase::Ended(_) } if *id == call)
            })
            .await;
        assert_eq!(
            ended,
            Some(Event::CallState {
                call,
                phase: CallPhase::Ended(EndReason::NoAnswer)
            })
        );
    });
}

#[test]
fn a_broken_config_changes_nothing() {
    let relay = ConfiguredRelay::start(&config("allow_provision = false"));
    let dir = relay.dir.path().to_owned();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    let tls = |cert: &Path| {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            cert.display(),
            cert.display()
        )
    };
    // Each file would open provisioning if any of it were applied.
    let cases = [
        (config("allow_provision = \"yes\""), "allow_provision"),
        (
            config("allow_provision = true\nno_such_key = 1"),
            "no_such_key",
        ),
        (
            config("allow_provision = true\nidle_timeout_ms = 10"),
            "idle_timeout_ms",
        ),
        // A largest file above the mailbox quota could never be delivered.
        (
            config("allow_provision = true\nmailbox_quota_kib = 65536\nmax_file_mib = 100"),
            "max_file_mib: 100 MiB is more than mailbox_quota_kib",
        ),
        (
            config(&format!("allow_provision = true\n{}", tls(&missing))),
            "missing.pem",
        ),
        (
            config(&format!("allow_provision = true\n{}", tls(&garbage))),
            "garbage.pem: no certificate found",
        ),
    ];
    let mut relay = relay;
    smol::block_on(async {
        let before = relay.client().await;
        for (text, problem) in &cases {
            let outcome = relay.reload_with(text);
            assert!(
                outcome.contains("ERROR")
                    && outcome.contains("config reload failed")
                    && outcome.contains(problem),
                "{text}: {outcome}"
            );
            let c = relay.client().await;
            assert_eq!(
                c.provision("Nobody").await.unwrap_err().code(),
                Some(ErrorCode::RegistrationClosed),
                "{text}"
            );
            assert_eq!(c.fingerprint.as_deref(), Some(relay.fingerprint.as_str()));
        }
        // An unreadable (here: missing) config file.
        std::fs::remove_file(relay.config_path()).unwrap();
        let outcome = relay.reload();
        assert!(outcome.contains("cannot read config"), "{outcome}");
        assert!(relay.alive());

        // One error line per failed reload, nothing else above info.
        let log = relay.log();
        let errors = log.lines().filter(|l| l.contains("ERROR")).count();
        assert_eq!(errors, cases.len() + 1, "{log}");
        assert!(!log.contains("WARN"), "{log}");

        // The connection from before is fine, and a good config applies again.
        before.request(Request::Ping { nonce: 7 }).await.unwrap();
        relay.reload_with(&config("allow_provision = true"));
        relay.client().await.provision("Somebody").await.unwrap();
    });
    assert!(relay.terminate().success());
}

/// A certificate and key in PEM, and the certificate's fingerprint.
fn pem_identity() -> (String, String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["phone-relay".to_owned()]).unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        phoned_proto::fingerprint::of_der(made.cert.der()),
    )
}

#[test]
fn a_renewed_certificate_at_the_same_path_serves_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("fullchain.pem"),
        dir.path().join("privkey.pem"),
    );
    let install = |(c, k, fp): (String, String, String)| {
        // As certbot does: new files, then the names switched over.
        std::fs::write(dir.path().join("new-cert"), c).unwrap();
        std::fs::write(dir.path().join("new-key"), k).unwrap();
        std::fs::rename(dir.path().join("new-cert"), &cert).unwrap();
        std::fs::rename(dir.path().join("new-key"), &key).unwrap();
        fp
    };
    let first = install(pem_identity());
    let tls = config(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    ));
    let relay = ConfiguredRelay::start(&tls);
    assert_eq!(relay.fingerprint, first);
    smol::block_on(async {
        let old = relay.client().await;
        assert_eq!(old.fingerprint.as_deref(), Some(first.as_str()));
        old.provision("Before renewal").await.unwrap();

        let renewed = install(pem_identity());
        assert_ne!(renewed, first);
        let outcome = relay.reload();
        assert!(
            outcome.contains("certificate") && outcome.contains(&renewed),
            "{outcome}"
        );
        let new = relay.client().await;
        assert_eq!(new.fingerprint.as_deref(), Some(renewed.as_str()));
        // The connection made with the old certificate carries on.
        assert!(old.account(Request::AccountInfo).await.is_ok());

        // Without tls_cert/tls_key the relay goes back to its own self-signed identity.
        let outcome = relay.reload_with(&config(""));
        assert!(
            outcome.contains("tls_cert, tls_key, certificate"),
            "{outcome}"
        );
        let stored = Command::new(common::BIN)
            .args(["fingerprint", "--state-dir"])
            .arg(relay.state_dir())
            .output()
            .unwrap();
        assert!(stored.status.success());
        let stored = String::from_utf8_lossy(&stored.stdout).trim().to_owned();
        let own = relay.client().await;
        assert_eq!(own.fingerprint.as_deref(), Some(stored.as_str()));
        assert!(stored != first && stored != renewed);
        assert!(outcome.contains(&stored), "{outcome}");
        assert!(old.account(Request::AccountInfo).await.is_ok());
    });
}

#[test]
fn a_changed_listen_address_waits_for_a_restart() {
    let relay = ConfiguredRelay::start(&config(""));
    let outcome =
        relay.reload_with("listen = \"127.0.0.1:1\"\nallow_register = false\nmap_size_mib = 64\n");
    assert!(
        outcome.contains("config reloaded: allow_register"),
        "{outcome}"
    );
    let log = relay.log();
    for key in ["listen", "map_size_mib"] {
        let warning = format!("{key} changed; takes effect after a restart");
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains(&warning)),
            "{log}"
        );
    }
    smol::block_on(async {
        // Still at the old address, with the live change applied.
        let c = relay.client().await;
        let r = c
            .request(Request::Register {
                number: "1042".into(),
                password: "password1".into(),
                display_name: "Late".into(),
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Some(ErrorCode::RegistrationClosed));
        assert!(matches!(
            c.request(Request::Ping { nonce: 1 }).await,
            Ok(Response::Pong { nonce: 1 })
        ));
    });
}
