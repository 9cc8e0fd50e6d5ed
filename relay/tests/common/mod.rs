//! Shared setup for the relay's end-to-end tests: a real `phone-relay` process on
//! loopback with a temp state dir, and clients built on `phoned-proto`.
#![allow(dead_code)]

pub mod configured;
pub mod files;
pub mod scrape;
pub mod space;

use std::time::Duration;

use phoned_tests::client::{self, Client, Trust};
use phoned_tests::process::RelayProcess;

pub const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Relay {
    pub process: RelayProcess,
    pub dir: tempfile::TempDir,
}

pub fn relay(extra: &str) -> Relay {
    let dir = tempfile::tempdir().expect("temp dir");
    let process = RelayProcess::start(
        BIN.as_ref(),
        &dir.path().join("state"),
        "127.0.0.1:0",
        extra,
    );
    Relay { process, dir }
}

impl Relay {
    pub async fn client(&self) -> Client {
        Client::connect(
            &client::endpoint(),
            self.process.addr,
            Some(&self.process.fingerprint),
        )
        .await
        .expect("connect")
    }

    /// A client that says `Hello` with protocol `version` (an older device).
    pub async fn client_speaking(&self, version: u16) -> Client {
        let trust = Trust::Pinned {
            fingerprint: self.process.fingerprint.clone(),
            learnt: false,
        };
        let c = Client::connect_speaking(
            &client::endpoint(),
            self.process.addr,
            "phone-relay",
            trust,
            version,
        )
        .await
        .expect("connect");
        assert_eq!(c.version(), version);
        c
    }

    /// A connected client with a freshly provisioned account: (client, number, secret).
    pub async fn provisioned(&self, name: &str) -> (Client, String, String) {
        let c = self.client().await;
        let (account, secret) = c.provision(name).await.expect("provision");
        (c, account.number, secret)
    }
}
