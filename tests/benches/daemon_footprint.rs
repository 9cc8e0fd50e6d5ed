//! phoned's footprint and start-up, measured on the release binaries against a real
//! relay on loopback: binary sizes (stripped), time from process start to `online`
//! (first start, which provisions, and later starts, which log in), idle RSS and idle
//! CPU of the daemon and the relay.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p phoned-tests --bench daemon_footprint`

use std::process::Command;
use std::time::{Duration, Instant};

use phoned_proto::dbus::AccountProxy;
use phoned_tests::process::{PhonedProcess, RelayProcess, bin};
use phoned_tests::pulse::status_kib;
use zbus::proxy::CacheProperties;

fn stripped_size(path: &std::path::Path) -> u64 {
    let tmp = std::env::temp_dir().join(format!("phoned-size-{}", std::process::id()));
    std::fs::copy(path, &tmp).unwrap();
    let ok = Command::new("strip")
        .arg(&tmp)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let size = std::fs::metadata(&tmp).unwrap().len();
    let _ = std::fs::remove_file(&tmp);
    if ok { size } else { 0 }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// Waits for the daemon's ConnectionState to be `online`, polling its bus every 2 ms.
fn time_to_online(p: &PhonedProcess, started: Instant) -> Duration {
    smol::block_on(async {
        loop {
            if started.elapsed() > Duration::from_secs(30) {
                panic!("phoned not online after 30 s:\n{}", p.log());
            }
            if let Ok(conn) = zbus::connection::Builder::address(p.bus.address.as_str())
                .build()
                .await
            {
                loop {
                    let proxy = AccountProxy::builder(&conn)
                        .cache_properties(CacheProperties::No)
                        .build()
                        .await;
                    if let Ok(proxy) = proxy
                        && proxy.connection_state().await.as_deref() == Ok("online")
                    {
                        return started.elapsed();
                    }
                    smol::Timer::after(Duration::from_millis(2)).await;
                    if started.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                }
            }
            smol::Timer::after(Duration::from_millis(2)).await;
        }
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 10 };
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        &bin("phone-relay"),
        &dir.path().join("relay"),
        "127.0.0.1:0",
        "provision_burst = 1000",
    );

    println!("# phoned footprint (release binaries, loopback relay)\n");
    println!("| measure | result |\n| --- | --- |");
    for name in ["phoned", "phonectl", "phone-relay"] {
        let path = bin(name);
        println!(
            "| `{name}` binary size | {:.1} MiB stripped ({:.1} MiB unstripped) |",
            stripped_size(&path) as f64 / 1048576.0,
            std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0
        );
    }

    let pin = format!("relay_fingerprint = \"{}\"", relay.fingerprint);
    let mut first = Vec::new();
    let mut again = Vec::new();
    let mut last = None;
    for i in 0..runs {
        let home = dir.path().join(format!("phone{i}"));
        let t = Instant::now();
        let p = PhonedProcess::start(&home, relay.addr, &pin);
        first.push(time_to_online(&p, t));
        let mut p = p;
        p.stop();
        let t = Instant::now();
        p.restart();
        again.push(time_to_online(&p, t));
        last = Some(p);
    }
    println!(
        "| start to online, first start (provision + Argon2id hash on the relay), median of {runs} | {:.0} ms |",
        ms(median(first))
    );
    println!(
        "| start to online, later start (login), median of {runs} | {:.0} ms |",
        ms(median(again))
    );

    let p = last.unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (dpid, rpid) = (p.child.id(), relay.child.id());
    let ticks = |pid| cpu_ticks(pid);
    let (d0, r0, t0) = (ticks(dpid), ticks(rpid), Instant::now());
    std::thread::sleep(Duration::from_secs(if quick { 3 } else { 10 }));
    let secs = t0.elapsed().as_secs_f64();
    let hz = 100.0;
    println!(
        "| `phoned` idle, online: RSS (anonymous + file-backed) / peak RSS | {:.1} MiB ({:.1} + {:.1}) / {:.1} MiB |",
        status_kib(dpid, "VmRSS:") as f64 / 1024.0,
        status_kib(dpid, "RssAnon:") as f64 / 1024.0,
        status_kib(dpid, "RssFile:") as f64 / 1024.0,
        status_kib(dpid, "VmHWM:") as f64 / 1024.0
    );
    println!(
        "| `phoned` idle CPU | {:.2} % of a core |",
        (ticks(dpid) - d0) as f64 / hz / secs * 100.0
    );
    println!(
        "| `phone-relay` after the runs above ({} accounts): RSS (anonymous + file-backed) / peak RSS | {:.1} MiB ({:.1} + {:.1}) / {:.1} MiB |",
        runs,
        status_kib(rpid, "VmRSS:") as f64 / 1024.0,
        status_kib(rpid, "RssAnon:") as f64 / 1024.0,
        status_kib(rpid, "RssFile:") as f64 / 1024.0,
        status_kib(rpid, "VmHWM:") as f64 / 1024.0
    );
    println!(
        "| `phone-relay` idle CPU | {:.2} % of a core |",
        (ticks(rpid) - r0) as f64 / hz / secs * 100.0
    );
}
