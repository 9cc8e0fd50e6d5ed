//! Media forwarding through the real `phone-relay` binary on loopback: many simulated calls,
//! every caller sending `MediaFrame` datagrams (60-byte payloads) to its callee through the
//! relay (with `--both-ways`, the callee to its caller too), at fixed aggregate rates and
//! then as fast as the relay forwards them (a closed loop with two datagrams in flight per
//! stream).
//!
//! Each datagram carries its send time (ns on this process' monotonic clock) in its payload;
//! the receiving task stamps its arrival on the same clock, so the delay is the relay's
//! added delay plus both client stacks (QUIC encryption, UDP, task wake-ups) on loopback —
//! an upper bound for what the relay adds. The relay's CPU comes from `/proc/<pid>/stat`
//! (user + system) over each measured window; socket drops from `/proc/net/udp`.
//!
//! The load generator runs in this process and shares the machine's cores with the relay:
//! its CPU is reported next to the relay's, and so is the CPU everything else on the
//! machine used meanwhile (a run with "other CPU" well above zero was disturbed).
//!
//! Run: `cargo bench -p phone-relay --bench forwarding` (add `-- --quick` for a short run,
//! `--calls N` to change the number of calls, `--rate R` to measure only R datagrams/s,
//! `--both-ways` to have both parties of every call send, as in a real call).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use phoned_proto::call::CallPhase;
use phoned_proto::media::MediaFrame;
use phoned_proto::{Event, Request, Response};
use phoned_tests::client::{self, Client};
use phoned_tests::join_all;
use phoned_tests::process::RelayProcess;
use smol::channel::{Receiver, Sender};

use histogram::Histogram;
use phone_relay::store::Backend;

#[path = "common/accounts.rs"]
mod accounts;
#[path = "common/histogram.rs"]
mod histogram;

const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");
const PASSWORD: &str = "benchmark password";
/// Opus payload size of a 20 ms frame at about 24 kbit/s.
const PAYLOAD: usize = 60;
/// Client-side QUIC endpoints (UDP sockets) the connections are spread over.
const ENDPOINTS: usize = 8;
/// Pacing tasks of the open-loop generator.
const PACERS: usize = 8;
/// Datagrams in flight per stream in the closed-loop ("as fast as it forwards") phase.
const WINDOW: usize = 2;
const WAIT: Duration = Duration::from_secs(30);

/// What the generator and the receivers share.
struct State {
    base: Instant,
    /// Stamped into every datagram. Measured phases are even.
    phase: AtomicU32,
    /// The measured phase whose datagrams the receivers count (kept while draining).
    counting: AtomicU32,
    stop: AtomicBool,
    sent: AtomicU64,
    send_errors: AtomicU64,
    received: AtomicU64,
    delays: Histogram,
}

impl State {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

/// One stream: one direction of one call.
#[derive(Clone)]
struct Leg {
    conn: quinn::Connection,
    call: u64,
    /// Credits for the closed-loop phase: the receiving side adds one per datagram.
    credits: Receiver<()>,
}

fn datagram(st: &State, call: u64, seq: u32) -> (u32, Bytes) {
    let phase = st.phase.load(Ordering::Relaxed);
    let mut payload = vec![0u8; PAYLOAD];
    payload[..8].copy_from_slice(&st.now_ns().to_le_bytes());
    payload[8..12].copy_from_slice(&phase.to_le_bytes());
    let f = MediaFrame {
        call,
        source: 0,
        seq,
        timestamp: seq.wrapping_mul(960),
        level: 30,
        payload,
    };
    (phase, Bytes::from(f.encode()))
}

fn send(st: &State, leg: &Leg, seq: u32) {
    let (phase, d) = datagram(st, leg.call, seq);
    if leg.conn.send_datagram(d).is_err() {
        st.send_errors.fetch_add(1, Ordering::Relaxed);
    } else if phase % 2 == 0 {
        st.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// The receiving side of a stream: stamps arrivals, returns a credit to the sender.
async fn receive(conn: quinn::Connection, credit: Sender<()>, st: Arc<State>) {
    while let Ok(d) = conn.read_datagram().await {
        let now = st.now_ns();
        let _ = credit.try_send(());
        let Ok(f) = MediaFrame::decode(&d) else {
            continue;
        };
        let sent = u64::from_le_bytes(f.payload[..8].try_into().unwrap());
        let phase = u32::from_le_bytes(f.payload[8..12].try_into().unwrap());
        if phase == st.counting.load(Ordering::Relaxed) {
            st.received.fetch_add(1, Ordering::Relaxed);
            st.delays.record(now.saturating_sub(sent) / 1000);
        }
    }
}

/// Open loop: `rate` datagrams/s spread round-robin over `legs`, paced every millisecond.
async fn pace(legs: Vec<Leg>, rate: f64, st: Arc<State>) {
    let start = Instant::now();
    let (mut sent, mut i, mut seq) = (0u64, 0usize, 0u32);
    while !st.stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            send(&st, &legs[i], seq);
            i += 1;
            if i == legs.len() {
                i = 0;
                seq = seq.wrapping_add(1);
            }
            sent += 1;
        }
        smol::Timer::after(Duration::from_millis(1)).await;
    }
}

/// Closed loop: one stream keeps `WINDOW` datagrams in flight (a credit comes back with each
/// one received; a lost one is written off after 20 ms).
async fn closed_loop(leg: Leg, st: Arc<State>) {
    let mut seq = 0u32;
    while !st.stop.load(Ordering::Relaxed) {
        let credit = smol::future::or(async { Some(leg.credits.recv().await.is_ok()) }, async {
            smol::Timer::after(Duration::from_millis(20)).await;
            None
        })
        .await;
        if credit == Some(false) {
            return; // the receiving connection is gone
        }
        send(&st, &leg, seq);
        seq = seq.wrapping_add(1);
    }
}

/// user + system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces):
    // state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The kernel's softirq threads: under heavy packet load the kernel hands network
/// processing (on loopback, delivering every datagram to its socket) to them, and it is
/// then nobody's process CPU.
fn ksoftirqd() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{name}/comm")).ok()?;
            comm.starts_with("ksoftirqd/").then_some(name)
        })
        .collect()
}

/// Machine-wide busy CPU time so far from `/proc/stat`, in clock ticks.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal …
    cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7]
}

/// Datagrams the kernel dropped so far because a socket's receive buffer was full, per
/// local UDP port (`/proc/net/udp`, last column).
fn socket_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local == port).then(|| fields.last()?.parse::<u64>().ok())?
        })
        .sum()
}

#[derive(Clone, Copy)]
enum Load {
    /// Open loop at this many datagrams/s.
    Rate(u32),
    /// Closed loop, `WINDOW` per stream in flight.
    Max,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let both_ways = args.iter().any(|a| a == "--both-ways");
    let value = |name: &str| -> Option<usize> {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse().ok()
    };
    let calls = value("--calls").unwrap_or(if quick { 100 } else { 200 });
    let (warm, window) = if quick {
        (Duration::from_millis(500), Duration::from_millis(1500))
    } else {
        (Duration::from_secs(1), Duration::from_secs(4))
    };
    let loads: Vec<Load> = if let Some(rate) = value("--rate") {
        vec![Load::Rate(rate as u32)]
    } else if quick {
        vec![
            Load::Rate(10_000),
            Load::Rate(50_000),
            Load::Rate(100_000),
            Load::Max,
        ]
    } else {
        vec![
            Load::Rate(10_000),
            Load::Rate(50_000),
            Load::Rate(100_000),
            Load::Rate(150_000),
            Load::Max,
        ]
    };

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    accounts::make(&Backend::Heed, &state, 64, 100_000, 2 * calls, PASSWORD);
    let relay = RelayProcess::start(
        BIN.as_ref(),
        &state,
        "127.0.0.1:0",
        "max_connections_per_address = 10000",
    );
    let relay_pid = relay.child.id().to_string();
    // The relay started with this process' environment (its own default is one executor
    // thread per core). The generator's tasks (connection drivers, receivers, pacers) run
    // on two executor threads, started on first use below.
    // SAFETY: the only other thread (the relay's stdout reader) does not touch the
    // environment.
    unsafe { std::env::set_var("SMOL_THREADS", "2") };
    let (addr, fp) = (relay.addr, relay.fingerprint.clone());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    smol::block_on(async {
        // Set up: 2N clients over a few endpoints, logged in; N calls dialled and answered.
        let t = Instant::now();
        // Each on its own loopback address: the relay holds one address to a few
        // concurrent logins without a device token, and to a number of connections.
        let endpoints: Vec<quinn::Endpoint> = (0..ENDPOINTS)
            .map(|e| client::endpoint_on(([127, 0, 0, 1 + e as u8], 0).into()).unwrap())
            .collect();
        let mut clients = Vec::with_capacity(2 * calls);
        for chunk in (0..2 * calls).collect::<Vec<_>>().chunks(32) {
            let batch = chunk
                .iter()
                .map(|&i| Client::connect(&endpoints[i % ENDPOINTS], addr, Some(&fp)));
            for c in join_all(batch).await {
                clients.push(c.unwrap());
            }
        }
        let connected = t.elapsed();
        let t = Instant::now();
        for (n, chunk) in clients.chunks(32).enumerate() {
            let batch = chunk.iter().enumerate().map(|(i, c)| {
                let number = (100_000 + 32 * n + i).to_string();
                async move { c.login(&number, PASSWORD).await }
            });
            for r in join_all(batch).await {
                r.unwrap();
            }
        }
        // Every login is broadcast as presence to every other session: drop those events.
        for c in &clients {
            c.wait_event(Duration::ZERO, |_| false).await;
        }
        let logged_in = t.elapsed();
        let t = Instant::now();
        let mut call_ids = Vec::with_capacity(calls);
        for chunk in (0..calls).collect::<Vec<_>>().chunks(64) {
            let batch = chunk.iter().map(|&k| {
                let (caller, callee) = (&clients[2 * k], &clients[2 * k + 1]);
                async move { set_up_call(caller, callee, &(100_001 + 2 * k).to_string()).await }
            });
            call_ids.extend(join_all(batch).await);
        }
        let dialled = t.elapsed();

        let client_ports: Vec<u16> = endpoints
            .iter()
            .map(|e| e.local_addr().unwrap().port())
            .collect();
        let drops = || {
            (
                socket_drops(addr.port()),
                client_ports.iter().map(|&p| socket_drops(p)).sum::<u64>(),
            )
        };
        let softirq_threads = ksoftirqd();
        let st = Arc::new(State {
            base: Instant::now(),
            phase: AtomicU32::new(1),
            counting: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            received: AtomicU64::new(0),
            delays: Histogram::new(),
        });
        // A leg is one direction of one call: caller → callee, and callee → caller too when
        // both parties talk.
        let mut legs = Vec::with_capacity(2 * calls);
        let mut receivers = Vec::with_capacity(2 * calls);
        for (k, &call) in call_ids.iter().enumerate() {
            let (caller, callee) = (&clients[2 * k].conn, &clients[2 * k + 1].conn);
            let directions = if both_ways {
                vec![(caller, callee), (callee, caller)]
            } else {
                vec![(caller, callee)]
            };
            for (from, to) in directions {
                let (credit, credits) = smol::channel::bounded(WINDOW);
                for _ in 0..WINDOW {
                    credit.try_send(()).unwrap();
                }
                legs.push(Leg {
                    conn: from.clone(),
                    call,
                    credits,
                });
                receivers.push(smol::spawn(receive(to.clone(), credit, st.clone())));
            }
        }

        println!(
            "# phone-relay media forwarding on loopback ({cores} cores, shared by the relay and the generator)"
        );
        println!();
        println!(
            "{calls} calls, {} QUIC connections on {ENDPOINTS} client endpoints: connected in {:.1} s, logged in in {:.1} s, calls dialled and answered in {:.1} s. {}, {PAYLOAD}-byte payloads, the offered rate spread evenly over the {} streams. {:.1} s warm-up, then {:.1} s measured per load.",
            2 * calls,
            connected.as_secs_f64(),
            logged_in.as_secs_f64(),
            dialled.as_secs_f64(),
            if both_ways {
                "Both parties of every call send"
            } else {
                "Every caller sends to its callee"
            },
            legs.len(),
            warm.as_secs_f64(),
            window.as_secs_f64(),
        );
        println!();
        println!(
            "| offered | per stream | sent | forwarded (received) | loss | delay p50 | p99 | p99.9 | relay CPU | relay CPU per datagram | relay datagrams per CPU-second | generator CPU | ksoftirqd CPU | socket drops: relay / clients | other CPU |"
        );
        println!("| --- |{}", " --- |".repeat(14));
        for (i, &load) in loads.iter().enumerate() {
            let measured = 2 * (i as u32 + 1);
            // Warm-up: traffic flows, nothing is counted.
            st.phase.store(measured - 1, Ordering::Relaxed);
            st.stop.store(false, Ordering::Relaxed);
            let tasks: Vec<smol::Task<()>> = match load {
                Load::Rate(rate) => legs
                    .chunks(legs.len().div_ceil(PACERS))
                    .map(|chunk| {
                        let share = f64::from(rate) * chunk.len() as f64 / legs.len() as f64;
                        smol::spawn(pace(chunk.to_vec(), share, st.clone()))
                    })
                    .collect(),
                Load::Max => legs
                    .iter()
                    .map(|leg| smol::spawn(closed_loop(leg.clone(), st.clone())))
                    .collect(),
            };
            smol::Timer::after(warm).await;
            // Measure.
            st.sent.store(0, Ordering::Relaxed);
            st.received.store(0, Ordering::Relaxed);
            st.send_errors.store(0, Ordering::Relaxed);
            st.delays.reset();
            st.counting.store(measured, Ordering::Relaxed);
            let drops0 = drops();
            let softirq0: f64 = softirq_threads.iter().map(|p| cpu_seconds(p)).sum();
            let machine0 = machine_busy_ticks();
            let (relay0, own0, t0) = (cpu_seconds(&relay_pid), cpu_seconds("self"), Instant::now());
            st.phase.store(measured, Ordering::Relaxed);
            smol::Timer::after(window).await;
            st.phase.store(measured + 1, Ordering::Relaxed);
            let secs = t0.elapsed().as_secs_f64();
            let (relay1, own1) = (cpu_seconds(&relay_pid), cpu_seconds("self"));
            let drops1 = drops();
            let softirq1: f64 = softirq_threads.iter().map(|p| cpu_seconds(p)).sum();
            // SAFETY: sysconf has no preconditions.
            let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            let busy = (machine_busy_ticks() - machine0) as f64 / tick / secs;
            st.stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await;
            }
            // Drain: datagrams of the window still in flight are counted.
            smol::Timer::after(Duration::from_millis(300)).await;
            let sent = st.sent.load(Ordering::Relaxed);
            let received = st.received.load(Ordering::Relaxed);
            let relay_cpu = relay1 - relay0;
            let own = own1 - own0;
            let softirq = softirq1 - softirq0;
            let (offered, per_stream) = match load {
                Load::Rate(r) => (
                    format!("{r} /s"),
                    format!("{:.0} /s", f64::from(r) / legs.len() as f64),
                ),
                Load::Max => ("max".to_owned(), format!("{WINDOW} in flight")),
            };
            println!(
                "| {offered} | {per_stream} | {:.0} /s | **{:.0} /s** | {:.2} % | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} % | {:.1} µs | {:.0} | {:.0} % | {:.0} % | {} / {} | {:.0} % |",
                sent as f64 / secs,
                received as f64 / secs,
                100.0 * (1.0 - received as f64 / sent.max(1) as f64),
                st.delays.quantile(0.5),
                st.delays.quantile(0.99),
                st.delays.quantile(0.999),
                100.0 * relay_cpu / secs,
                relay_cpu * 1e6 / received.max(1) as f64,
                received as f64 / relay_cpu.max(1e-9),
                100.0 * own / secs,
                100.0 * softirq / secs,
                drops1.0 - drops0.0,
                drops1.1 - drops0.1,
                100.0 * (busy - (relay_cpu + own + softirq) / secs).max(0.0),
            );
            let errors = st.send_errors.load(Ordering::Relaxed);
            if errors > 0 {
                println!("|  |  | {errors} send errors |{}", "  |".repeat(12));
            }
        }
        println!();
        println!(
            "The generator (this process) and the relay share the machine's {cores} cores. CPU is per cent of one core; \"other CPU\" is what the rest of the machine used meanwhile (other processes, kernel threads): a figure well above zero means the run was disturbed."
        );
        st.stop.store(true, Ordering::Relaxed);
        drop(receivers);
        drop(clients);
    });
    drop(relay);
}

/// Dials `number` from `caller`, answers on `callee`, waits until both see the call active.
async fn set_up_call(caller: &Client, callee: &Client, number: &str) -> u64 {
    let call = match caller
        .request(Request::Dial { to: number.into() })
        .await
        .unwrap()
    {
        Response::CallPlaced { call } => call,
        other => panic!("dial: {other:?}"),
    };
    callee
        .wait_event(
            WAIT,
            |e| matches!(e, Event::CallIncoming { call: c, .. } if *c == call),
        )
        .await
        .expect("incoming call");
    callee.request(Request::Answer { call }).await.unwrap();
    caller
        .wait_event(WAIT, |e| {
            matches!(e, Event::CallState { call: c, phase: CallPhase::Active { .. } } if *c == call)
        })
        .await
        .expect("call active");
    call
}
