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

/// Which store a relay under test keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The embedded LMDB store in the state dir (the default).
    Lmdb,
    /// A fresh database on the test process's throw-away PostgreSQL cluster.
    Postgres,
}

/// Runs test function `$case(store: common::Store)` as two tests, `$case::lmdb` and
/// `$case::postgres`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn lmdb() {
                    super::$case(crate::common::Store::Lmdb);
                }

                #[test]
                fn postgres() {
                    super::$case(crate::common::Store::Postgres);
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;

/// A relay on `store` with `extra` config; `None` (the test skips, saying why) when the
/// store is PostgreSQL and it is not installed here (never in CI).
pub fn relay_on(store: Store, extra: &str) -> Option<Relay> {
    match store {
        Store::Lmdb => Some(relay(extra)),
        Store::Postgres => {
            let url = phoned_tests::postgres::shared()?.database();
            Some(relay(&format!("store = \"{url}\"\n{extra}")))
        }
    }
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

/// A media frame of `call` from source 0, numbered `seq` (its timestamp 20 ms of 48 kHz
/// per number), carrying `payload`, encoded as a datagram.
pub fn media_frame(call: u64, seq: u32, payload: Vec<u8>) -> bytes::Bytes {
    let f = phoned_proto::media::MediaFrame {
        call,
        source: 0,
        seq,
        timestamp: seq * 960,
        level: 30,
        payload,
    };
    bytes::Bytes::from(f.encode())
}
