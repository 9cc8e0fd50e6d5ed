//! Relay load benchmark on loopback, against the real `phone-relay` binary:
//! - connections accepted and logged in per second (QUIC + TLS handshake, Hello, Login
//!   with an Argon2id verify), and the same without login;
//! - control messages (Ping → Pong round trips) per second, pipelined over many clients,
//!   and the round-trip time of a lone request (median, p99).
//!
//! Run: `cargo bench -p phone-relay --bench relay_load` (add `-- --quick` for a short run).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phoned_proto::{Number, Request, Response};
use phoned_tests::client::{self, Client};
use phoned_tests::join_all;
use phoned_tests::process::RelayProcess;

const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");
const PASSWORD: &str = "benchmark password";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let accounts = if quick { 64 } else { 256 };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Accounts are made directly in the store, with one hash, so setup costs no hashing.
    {
        let store = phone_relay::store::Store::open(&phone_relay::store::Backend::Heed, &state, 64)
            .unwrap();
        let hash = phone_relay::password::hash(PASSWORD).unwrap();
        for i in 0..accounts {
            let n: Number = (100_000 + i).to_string().parse().unwrap();
            store
                .create_account(phone_relay::store::NewNumber::Exact(&n), "bench", &hash, 0)
                .unwrap();
        }
    }
    let relay = RelayProcess::start(
        BIN.as_ref(),
        &state,
        "127.0.0.1:0",
        "max_connections_per_address = 10000",
    );
    let addr = relay.addr;
    let fp = relay.fingerprint.clone();
    println!(
        "# phone-relay load on loopback ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| measure | result |");
    println!("| --- | --- |");

    smol::block_on(async {
        // Spread over loopback addresses: the relay holds one address to a few
        // concurrent logins without a device token (its login back-off).
        let endpoints: Vec<quinn::Endpoint> = (0..32u8)
            .map(|e| client::endpoint_on(([127, 0, 0, 1 + e], 0).into()).unwrap())
            .collect();
        // 1. Handshake + Hello only.
        let n = accounts as usize;
        let t = Instant::now();
        let mut clients = Vec::with_capacity(n);
        for chunk in 0..n.div_ceil(32) {
            let batch = (chunk * 32..((chunk + 1) * 32).min(n))
                .map(|i| Client::connect(&endpoints[i % 32], addr, Some(&fp)));
            for c in join_all(batch).await {
                clients.push(c.unwrap());
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| connections accepted (QUIC+TLS handshake, Hello/Welcome), 32 in flight | {:.0} /s ({n} in {secs:.2} s) |",
            n as f64 / secs
        );

        // 2. Login on each (Argon2id verify on the relay's blocking pool).
        let t = Instant::now();
        for (ci, chunk) in clients.chunks(32).enumerate() {
            let logins = chunk.iter().enumerate().map(|(i, c)| {
                let number = (100_000 + ci * 32 + i).to_string();
                async move { c.login(&number, PASSWORD).await }
            });
            for r in join_all(logins).await {
                r.unwrap();
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| logins (Argon2id m=19 MiB t=2 verify), 32 in flight | {:.0} /s ({n} in {secs:.2} s) |",
            n as f64 / secs
        );

        // 3. Lone round trips: latency.
        let one = &clients[0];
        let mut rtts = Vec::new();
        for i in 0..(if quick { 500 } else { 3000 }) {
            let t = Instant::now();
            let r = one.request(Request::Ping { nonce: i }).await.unwrap();
            assert_eq!(r, Response::Pong { nonce: i });
            rtts.push(t.elapsed());
        }
        rtts.sort();
        let med = rtts[rtts.len() / 2];
        let p99 = rtts[rtts.len() * 99 / 100];
        println!(
            "| control round trip, one client, one in flight | median {:.0} µs, p99 {:.0} µs |",
            us(med),
            us(p99)
        );

        // 4. Pipelined: every client keeps 8 requests in flight.
        let run_for = if quick {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(5)
        };
        let done = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let deadline = t + run_for;
        let workers = clients.iter().flat_map(|c| {
            (0..8).map({
                let done = done.clone();
                move |_| {
                    let done = done.clone();
                    async move {
                        let mut nonce = 0;
                        while Instant::now() < deadline {
                            c.request(Request::Ping { nonce }).await.unwrap();
                            nonce += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        });
        join_all(workers).await;
        let secs = t.elapsed().as_secs_f64();
        let total = done.load(Ordering::Relaxed);
        println!(
            "| control messages (Ping/Pong round trips), {n} clients × 8 in flight | {:.0} /s ({total} in {secs:.2} s) |",
            total as f64 / secs
        );
    });
    println!();
    println!("Client and relay share this machine's cores; the relay runs as its own process.");
    drop(relay);
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
