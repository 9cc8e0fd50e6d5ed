//! A login storm against the real `phone-relay` binary on loopback: N devices connect and
//! log in, paced evenly over a window (10 000 within a minute, say), and stay online. Every
//! device drains the events the relay pushes and counts the presence ones; the storm is
//! over once every device has heard of every device that logged in after it (N(N-1)/2
//! `Presence` events in all), which also checks that none was lost.
//!
//! Measured: the relay's CPU (user + system from `/proc/<pid>/stat`) over the storm, in
//! all and per login; when the last login was answered and when presence had settled;
//! login latency; and the relay's CPU while the N devices then sit idle (their QUIC
//! keep-alives, one a second each), which is part of the storm's figure too.
//!
//! Accounts are made directly in the store with tiny Argon2id parameters (the relay
//! verifies with the parameters in the stored hash): password hashing, ~25 ms of a core
//! per login with the real parameters, is left out so that what grows with N shows.
//!
//! Run: `cargo bench -p phone-relay --bench login_storm -- --devices 2000 --within 60`
//! (`--quick`: 500 devices within 10 s). `PHONE_RELAY_BIN=/path/to/phone-relay` measures
//! another build of the relay (an older one, for a before/after). `--postgres` runs the
//! relay on PostgreSQL (a throw-away cluster of `phoned_tests::postgres`) instead of LMDB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phoned_proto::{ErrorCode, Event};
use phoned_tests::client::{self, Client};
use phoned_tests::process::RelayProcess;

#[path = "common/accounts.rs"]
mod accounts;

const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");
const PASSWORD: &str = "benchmark password";
/// Client-side QUIC endpoints (UDP sockets, one loopback address each): the relay's
/// login back-off counts attempts in flight per address.
const ENDPOINTS: usize = 64;
/// How long presence may take to settle after the window before the run gives up
/// (`--settle S` to change).
const SETTLE: Duration = Duration::from_secs(300);

/// user + system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

struct Counts {
    presence: AtomicU64,
    logged_in: AtomicU64,
    retries: AtomicU64,
    /// Connections or logins that failed (timed out, reset) and were tried again.
    failed: AtomicU64,
    last_login_ms: AtomicU64,
    last_presence_ms: AtomicU64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| -> Option<usize> {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse().ok()
    };
    let devices = value("--devices").unwrap_or(if quick { 500 } else { 2000 });
    let within =
        Duration::from_secs(value("--within").unwrap_or(if quick { 10 } else { 60 }) as u64);
    let bin = std::env::var("PHONE_RELAY_BIN").unwrap_or_else(|_| BIN.to_owned());

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cluster = args
        .iter()
        .any(|a| a == "--postgres")
        .then(|| phoned_tests::postgres::Cluster::start().expect("PostgreSQL is not installed"));
    let url = cluster.as_ref().map(|c| c.database());
    let backend = match &url {
        Some(u) => phone_relay::store::Backend::Postgres(u.parse().unwrap()),
        None => phone_relay::store::Backend::Heed,
    };
    accounts::make(&backend, &state, 256, 100_000, devices, PASSWORD);
    let relay = RelayProcess::start(
        bin.as_ref(),
        &state,
        "127.0.0.1:0",
        &format!(
            "max_connections = {}\nmax_connections_per_address = {}\nmap_size_mib = 256\n{}",
            devices + 100,
            devices + 100,
            url.as_ref()
                .map_or(String::new(), |u| format!("store = \"{u}\""))
        ),
    );
    let pid = relay.child.id();
    // The bench's own tasks (connection drivers, the devices' event loops) on two threads.
    // SAFETY: the only other thread (the relay's stdout reader) does not touch the
    // environment.
    unsafe { std::env::set_var("SMOL_THREADS", "2") };
    let (addr, fp) = (relay.addr, relay.fingerprint.clone());
    let endpoints: Vec<quinn::Endpoint> = (0..ENDPOINTS)
        .map(|e| client::endpoint_on(([127, 0, 1, 1 + e as u8], 0).into()).unwrap())
        .collect();
    let counts = Arc::new(Counts {
        presence: AtomicU64::new(0),
        logged_in: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_login_ms: AtomicU64::new(0),
        last_presence_ms: AtomicU64::new(0),
    });
    let expected = (devices as u64) * (devices as u64 - 1) / 2;
    println!(
        "# login storm: {devices} devices within {} s, {}, relay {}",
        within.as_secs(),
        if url.is_some() { "PostgreSQL" } else { "LMDB" },
        if bin == BIN { "of this build" } else { &bin }
    );
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(devices)));

    let (relay_cpu0, own_cpu0) = (cpu_seconds(pid), own_cpu_seconds());
    let start = Instant::now();
    smol::block_on(async {
        for i in 0..devices {
            let due = start + within.mul_f64(i as f64 / devices as f64);
            smol::Timer::at(due).await;
            let ep = endpoints[i % ENDPOINTS].clone();
            let (counts, fp, latencies) = (counts.clone(), fp.clone(), latencies.clone());
            smol::spawn(async move {
                let t = Instant::now();
                let number = (100_000 + i).to_string();
                // As a daemon would: a connection or login that fails is tried again
                // after a second.
                let c = loop {
                    let c = match Client::connect(&ep, addr, Some(&fp)).await {
                        Ok(c) => c,
                        Err(_) => {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                            smol::Timer::after(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                    match c.login(&number, PASSWORD).await {
                        Ok(_) => break c,
                        Err(e) if e.code() == Some(ErrorCode::RateLimited) => {
                            counts.retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    smol::Timer::after(Duration::from_secs(1)).await;
                };
                latencies.lock().unwrap().push(t.elapsed());
                counts.logged_in.fetch_add(1, Ordering::Relaxed);
                counts
                    .last_login_ms
                    .fetch_max(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                while let Some(e) = c.next_event().await {
                    if let Event::Presence { online: true, .. } = e {
                        counts.presence.fetch_add(1, Ordering::Relaxed);
                        counts
                            .last_presence_ms
                            .fetch_max(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                }
            })
            .detach();
        }
    });
    // Wait for every login, then for every presence event.
    let settle = value("--settle").map_or(SETTLE, |s| Duration::from_secs(s as u64));
    let deadline = Instant::now() + within + settle;
    // The relay's CPU once every device is logged in (presence may still be on its way).
    let mut all_in = false;
    while (counts.logged_in.load(Ordering::Relaxed) as usize) < devices
        || counts.presence.load(Ordering::Relaxed) < expected
    {
        if !all_in && counts.logged_in.load(Ordering::Relaxed) as usize == devices {
            all_in = true;
            println!(
                "all logged in after {:.1} s: relay CPU {:.2} s so far, {} of {expected} presence events received",
                start.elapsed().as_secs_f64(),
                cpu_seconds(pid) - relay_cpu0,
                counts.presence.load(Ordering::Relaxed)
            );
        }
        if Instant::now() > deadline {
            println!(
                "NOT SETTLED after {:.0} s: {} logged in, {} of {expected} presence events, \
                 {} connections or logins failed, relay CPU {:.1} s",
                start.elapsed().as_secs_f64(),
                counts.logged_in.load(Ordering::Relaxed),
                counts.presence.load(Ordering::Relaxed),
                counts.failed.load(Ordering::Relaxed),
                cpu_seconds(pid) - relay_cpu0
            );
            drop(relay);
            drop(dir);
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let settled = start.elapsed();
    let (relay_cpu, own_cpu) = (cpu_seconds(pid) - relay_cpu0, own_cpu_seconds() - own_cpu0);
    // Then idle: the devices' keep-alives alone.
    let idle_for = Duration::from_secs(5);
    let idle0 = cpu_seconds(pid);
    std::thread::sleep(idle_for);
    let idle = (cpu_seconds(pid) - idle0) / idle_for.as_secs_f64();
    let extra = counts.presence.load(Ordering::Relaxed) - expected;

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e3;
    // Keep-alives during the storm: on average half the devices were online for the window,
    // all of them from the last login until the end.
    let keep_alive_share = idle
        * (within.as_secs_f64() / 2.0 + (settled.as_secs_f64() - within.as_secs_f64()).max(0.0));
    println!();
    println!("| measure | result |");
    println!("| --- | --- |");
    println!(
        "| last login answered / presence settled | {:.1} s / {:.1} s |",
        ms(&counts.last_login_ms),
        ms(&counts.last_presence_ms).max(ms(&counts.last_login_ms))
    );
    println!(
        "| login latency (connect + login) p50 / p99 | {:.1} ms / {:.1} ms |",
        q(0.5),
        q(0.99)
    );
    println!(
        "| presence events received | {} (expected {expected}; {extra} extra) |",
        counts.presence.load(Ordering::Relaxed)
    );
    println!(
        "| logins refused for back-off / connections or logins failed, tried again | {} / {} |",
        counts.retries.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed)
    );
    println!(
        "| relay CPU over the storm | {relay_cpu:.2} s = {:.2} ms per login |",
        relay_cpu * 1e3 / devices as f64
    );
    println!(
        "| relay CPU idle with {devices} devices online (keep-alives) | {:.1} % of a core |",
        idle * 100.0
    );
    println!(
        "| relay CPU over the storm less the keep-alives' share (≈ {keep_alive_share:.1} s) | {:.2} ms per login |",
        (relay_cpu - keep_alive_share).max(0.0) * 1e3 / devices as f64
    );
    println!("| bench process CPU (the devices: QUIC, decoding every event) | {own_cpu:.2} s |");
    drop(relay);
}
