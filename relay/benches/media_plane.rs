//! The UDP media plane of the real `phone-relay` binary on loopback: N two-way calls set up
//! by real logins over QUIC (protocol 4, each session's keys from its connection's TLS
//! exporter), then every party sending sealed `MediaFrame` packets (60-byte payloads) to
//! the relay's media port, at fixed aggregate rates. The generator is cheap on purpose, so
//! that the figures measure the relay: one thread seals and sends every packet with
//! `sendmmsg` (paced each millisecond), one thread per generator socket receives with
//! `recvmmsg` and opens what comes back.
//!
//! Each packet carries its send time (ns on this process' monotonic clock) in its
//! payload; the receiving thread stamps its arrival on the same clock, so the delay is the
//! relay's added delay plus the generator's own (both on loopback) — an upper bound for
//! what the relay adds. Relay CPU comes from `/proc/<pid>/stat` over each measured window;
//! an idle window first measures what the relay spends with the same sessions connected
//! and no media (their liveness: as daemons beat, each session's plane keep-alive each
//! second, echoed by the relay, and QUIC keep-alives every 10 s; with `--old-daemons`,
//! QUIC keep-alives each second on each of the 2N connections), reported beside the raw
//! figure. The keep-alives go on during the media windows, as daemons' do.
//!
//! Run: `cargo bench -p phone-relay --bench media_plane` (`-- --calls N` to change the
//! number of calls, default 1000; `--rate R` to measure only R packets/s; `--threads T`
//! for the relay's `media_threads`; `--sockets S` generator sockets, default 2; `--quick`
//! for short windows; `--poll-us P`: the receiving threads drain their sockets every P µs
//! instead of waiting in `recvmmsg`, as a client on another machine would cost the relay:
//! on loopback the relay's `sendmmsg` delivers each packet into the receiving socket and
//! wakes a thread waiting there, in the relay's own time; `--old-daemons`: the sessions
//! keep alive as daemons did before the beat). `PHONE_RELAY_BIN=path` runs another relay
//! binary (an older one, to compare); `PHONE_RELAY_EXTRA` adds lines to its config.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phoned_proto::call::CallPhase;
use phoned_proto::liveness::SILENT_AFTER;
use phoned_proto::media::MediaFrame;
use phoned_proto::plane::{Direction, KEY_LABEL, Keys, MAX_PACKET, open_in_place, seal};
use phoned_proto::{Event, Request, Response};
use phoned_tests::client::{self, Client, KeepAlive, Trust};
use phoned_tests::join_all;
use phoned_tests::process::RelayProcess;

use histogram::Histogram;
use phone_relay::store::Backend;

#[path = "common/accounts.rs"]
mod accounts;
#[path = "common/histogram.rs"]
mod histogram;

const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");
const PASSWORD: &str = "benchmark password";
const PAYLOAD: usize = 60;
const ENDPOINTS: usize = 8;
const WAIT: Duration = Duration::from_secs(30);
const BATCH: usize = 64;

/// One session as the generator holds it.
struct Session {
    id: u32,
    keys: Keys,
    /// Its generator socket (index).
    socket: usize,
}

/// One stream: a party sending on its call.
struct Leg {
    from: usize,
    /// The encoded frame; its payload (the last `PAYLOAD` bytes) is stamped per packet.
    frame: Vec<u8>,
    counter: u64,
}

struct State {
    base: Instant,
    phase: AtomicU32,
    counting: AtomicU32,
    stop: AtomicBool,
    /// Offered packets/s (0: none).
    rate: AtomicU64,
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

fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

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
    cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7]
}

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

fn socket_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local == port).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}

fn sockaddr_v4(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = addr else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// The sending thread: `rate` packets/s over all legs, round-robin, paced each ms, sealed
/// and sent in `sendmmsg` batches on each leg's socket. With `beat`, also every session's
/// keep-alive (an empty sealed packet) once a second, spread over the second, as daemons
/// beat (`phoned_proto::liveness`); those are not counted as sent.
fn sender(
    sockets: Vec<UdpSocket>,
    relay: SocketAddr,
    sessions: Arc<Vec<Session>>,
    mut legs: Vec<Leg>,
    st: Arc<State>,
    beat: bool,
) {
    let mut dest = sockaddr_v4(relay);
    let mut bufs = vec![[0u8; MAX_PACKET]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut i = 0usize;
    let mut start = Instant::now();
    let mut done = 0u64;
    let mut rate_seen = 0;
    let beat_start = Instant::now();
    let mut beats_done = 0u64;
    let mut beat_next = 0usize;
    // Per socket, the packets of this batch.
    let mut pending: Vec<Vec<usize>> = vec![Vec::with_capacity(BATCH); sockets.len()];
    while !st.stop.load(Ordering::Relaxed) {
        if beat {
            let due = (beat_start.elapsed().as_secs_f64() * sessions.len() as f64) as u64;
            while beats_done < due {
                let n = ((due - beats_done) as usize).min(BATCH);
                for p in pending.iter_mut() {
                    p.clear();
                }
                for b in 0..n {
                    // Leg `k` is session `k`'s (one leg per party), and holds its counter.
                    let leg = &mut legs[beat_next];
                    let s = &sessions[beat_next];
                    beat_next = (beat_next + 1) % sessions.len();
                    lens[b] = seal(
                        s.keys.key(Direction::Up),
                        s.id,
                        leg.counter,
                        &[],
                        &mut bufs[b],
                    )
                    .unwrap();
                    leg.counter += 1;
                    pending[s.socket].push(b);
                }
                send_batches(&sockets, &pending, &mut bufs, &lens, &mut dest, &st, false);
                beats_done += n as u64;
            }
        }
        let rate = st.rate.load(Ordering::Relaxed);
        if rate != rate_seen {
            rate_seen = rate;
            start = Instant::now();
            done = 0;
        }
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while done < due {
            let n = ((due - done) as usize).min(BATCH);
            for p in pending.iter_mut() {
                p.clear();
            }
            let phase = st.phase.load(Ordering::Relaxed);
            for b in 0..n {
                let count = legs.len();
                let leg = &mut legs[i];
                i = (i + 1) % count;
                let s = &sessions[leg.from];
                let len = leg.frame.len();
                let at = len - PAYLOAD;
                leg.frame[at..at + 8].copy_from_slice(&st.now_ns().to_le_bytes());
                leg.frame[at + 8..at + 12].copy_from_slice(&phase.to_le_bytes());
                lens[b] = seal(
                    s.keys.key(Direction::Up),
                    s.id,
                    leg.counter,
                    &leg.frame,
                    &mut bufs[b],
                )
                .unwrap();
                leg.counter += 1;
                pending[s.socket].push(b);
            }
            let counted = phase.is_multiple_of(2);
            send_batches(
                &sockets, &pending, &mut bufs, &lens, &mut dest, &st, counted,
            );
            done += n as u64;
        }
        std::thread::sleep(Duration::from_micros(1000));
    }
}

/// Sends the packets `pending` lists per socket with `sendmmsg`; `counted`: they count as
/// sent.
fn send_batches(
    sockets: &[UdpSocket],
    pending: &[Vec<usize>],
    bufs: &mut [[u8; MAX_PACKET]],
    lens: &[usize],
    dest: &mut libc::sockaddr_in,
    st: &State,
    counted: bool,
) {
    for (k, socket) in sockets.iter().enumerate() {
        let mut iovs: Vec<libc::iovec> = pending[k]
            .iter()
            .map(|&b| libc::iovec {
                iov_base: bufs[b].as_mut_ptr().cast(),
                iov_len: lens[b],
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: all-zero is a valid mmsghdr.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (dest as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let mut off = 0;
        while off < msgs.len() {
            // SAFETY: the messages point at live buffers and the destination.
            let r = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    msgs[off..].as_mut_ptr(),
                    (msgs.len() - off) as u32,
                    0,
                )
            };
            if r <= 0 {
                st.send_errors
                    .fetch_add((msgs.len() - off) as u64, Ordering::Relaxed);
                break;
            }
            off += r as usize;
            if counted {
                st.sent.fetch_add(r as u64, Ordering::Relaxed);
            }
        }
    }
}

/// A receiving thread: opens what the relay sends to this socket's sessions, stamps it.
///
/// With `poll` non-zero the thread does not wait in the socket: it drains it, then sleeps
/// that long (see `--poll-us`).
fn receiver(
    socket: UdpSocket,
    by_id: Arc<HashMap<u32, usize>>,
    sessions: Arc<Vec<Session>>,
    st: Arc<State>,
    poll: Duration,
) {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_PACKET]; BATCH];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: MAX_PACKET,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: all-zero is a valid mmsghdr.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let flags = if poll.is_zero() {
        libc::MSG_WAITFORONE
    } else {
        libc::MSG_DONTWAIT
    };
    while !st.stop.load(Ordering::Relaxed) {
        // SAFETY: the messages point at BATCH live buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            if !poll.is_zero() {
                std::thread::sleep(poll);
            }
            continue;
        }
        let now = st.now_ns();
        let counting = st.counting.load(Ordering::Relaxed);
        for k in 0..n as usize {
            let len = msgs[k].msg_len as usize;
            let p = &mut bufs[k][..len];
            let Some(&s) = phoned_proto::plane::peek_id(p).and_then(|id| by_id.get(&id)) else {
                continue;
            };
            let Ok((_, plain)) = open_in_place(sessions[s].keys.key(Direction::Down), p, |_| true)
            else {
                continue;
            };
            if plain.len() < PAYLOAD {
                continue;
            }
            let at = plain.len() - PAYLOAD;
            let sent = u64::from_le_bytes(plain[at..at + 8].try_into().unwrap());
            let phase = u32::from_le_bytes(plain[at + 8..at + 12].try_into().unwrap());
            if phase == counting {
                st.received.fetch_add(1, Ordering::Relaxed);
                st.delays.record(now.saturating_sub(sent) / 1000);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |name: &str| -> Option<usize> {
        let i = args.iter().position(|a| a == name)?;
        args.get(i + 1)?.parse().ok()
    };
    let calls = value("--calls").unwrap_or(1000);
    // Sessions as daemons before the beat kept alive: QUIC keep-alives each second, no
    // plane keep-alive while not in a call.
    let old_daemons = args.iter().any(|a| a == "--old-daemons");
    let keep_alive = if old_daemons {
        KeepAlive::Quic
    } else {
        KeepAlive::Beat
    };
    // An older relay binary to compare with (`PHONE_RELAY_BIN`).
    let bin = std::env::var_os("PHONE_RELAY_BIN").map_or_else(|| BIN.into(), PathBuf::from);
    let threads = value("--threads").unwrap_or(1);
    let nsockets = value("--sockets").unwrap_or(2);
    let poll = Duration::from_micros(value("--poll-us").unwrap_or(0) as u64);
    let (warm, window) = if quick {
        (Duration::from_millis(500), Duration::from_millis(1500))
    } else {
        (Duration::from_secs(1), Duration::from_secs(5))
    };
    let rates: Vec<u64> = match value("--rate") {
        Some(r) => vec![r as u64],
        None => vec![10_000, 25_000, 50_000, 100_000],
    };

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    accounts::make(&Backend::Heed, &state, 64, 100_000, 2 * calls, PASSWORD);
    let relay = RelayProcess::start(
        &bin,
        &state,
        "127.0.0.1:0",
        &format!(
            "max_connections_per_address = 10000\nmedia_threads = {threads}\n{}",
            std::env::var("PHONE_RELAY_EXTRA").unwrap_or_default()
        ),
    );
    let relay_pid = relay.child.id().to_string();
    let media = relay.media.expect("the relay has a media plane");
    // SAFETY: the only other thread (the relay's stdout reader) does not touch the environment.
    unsafe { std::env::set_var("SMOL_THREADS", "1") };
    let (addr, fp) = (relay.addr, relay.fingerprint.clone());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    smol::block_on(async {
        let t = Instant::now();
        let endpoints: Vec<quinn::Endpoint> = (0..ENDPOINTS)
            .map(|e| client::endpoint_on(([127, 0, 0, 1 + e as u8], 0).into()).unwrap())
            .collect();
        let mut clients = Vec::with_capacity(2 * calls);
        for chunk in (0..2 * calls).collect::<Vec<_>>().chunks(32) {
            let batch = chunk.iter().map(|&i| {
                let trust = Trust::Pinned {
                    fingerprint: fp.clone(),
                    learnt: false,
                };
                Client::connect_keeping(
                    &endpoints[i % ENDPOINTS],
                    addr,
                    "phone-relay",
                    trust,
                    keep_alive,
                )
            });
            for c in join_all(batch).await {
                clients.push(c.unwrap());
            }
        }
        for (n, chunk) in clients.chunks(32).enumerate() {
            let batch = chunk.iter().enumerate().map(|(i, c)| {
                let number = (100_000 + 32 * n + i).to_string();
                async move { c.login(&number, PASSWORD).await }
            });
            for r in join_all(batch).await {
                r.unwrap();
            }
        }
        // Sessions that beat ask the relay to watch them, as daemons do.
        if !old_daemons {
            for chunk in clients.chunks(64) {
                let batch = chunk.iter().map(|c| c.ask_watch(SILENT_AFTER));
                for r in join_all(batch).await {
                    if !r.unwrap() {
                        eprintln!("(this relay does not watch sessions: older than the beat)");
                    }
                }
            }
        }
        // Each session's media id and keys.
        let mut sessions = Vec::with_capacity(2 * calls);
        for (i, c) in clients.iter().enumerate() {
            let Some(Event::MediaPlane { id, .. }) = c
                .wait_event(WAIT, |e| matches!(e, Event::MediaPlane { .. }))
                .await
            else {
                panic!("no MediaPlane event");
            };
            let mut m = [0u8; 32];
            c.conn
                .export_keying_material(&mut m, KEY_LABEL, &id.to_be_bytes())
                .unwrap();
            sessions.push(Session {
                id,
                keys: Keys::from_exported(&m),
                socket: i % nsockets,
            });
        }
        for c in &clients {
            c.wait_event(Duration::ZERO, |_| false).await;
        }
        let mut call_ids = Vec::with_capacity(calls);
        for chunk in (0..calls).collect::<Vec<_>>().chunks(64) {
            let batch = chunk.iter().map(|&k| {
                let (caller, callee) = (&clients[2 * k], &clients[2 * k + 1]);
                async move { set_up_call(caller, callee, &(100_001 + 2 * k).to_string()).await }
            });
            call_ids.extend(join_all(batch).await);
        }
        let set_up = t.elapsed();

        let sockets: Vec<UdpSocket> = (0..nsockets)
            .map(|_| {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
                    let v: libc::c_int = 4 << 20;
                    // SAFETY: setsockopt reads one c_int.
                    unsafe {
                        libc::setsockopt(
                            s.as_raw_fd(),
                            libc::SOL_SOCKET,
                            opt,
                            (&v as *const libc::c_int).cast(),
                            4,
                        )
                    };
                }
                s
            })
            .collect();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        let by_id: Arc<HashMap<u32, usize>> = Arc::new(
            sessions
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id, i))
                .collect(),
        );
        let sessions = Arc::new(sessions);
        let mut legs = Vec::with_capacity(2 * calls);
        for (k, &call) in call_ids.iter().enumerate() {
            for from in [2 * k, 2 * k + 1] {
                let frame = MediaFrame {
                    call,
                    source: (from % 2) as u32,
                    seq: 1,
                    timestamp: 960,
                    level: 30,
                    payload: vec![0; PAYLOAD],
                }
                .encode();
                legs.push(Leg {
                    from,
                    frame,
                    counter: 0,
                });
            }
        }
        let st = Arc::new(State {
            base: Instant::now(),
            phase: AtomicU32::new(1),
            counting: AtomicU32::new(0),
            stop: AtomicBool::new(false),
            rate: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            received: AtomicU64::new(0),
            delays: Histogram::new(),
        });
        let receivers: Vec<_> = sockets
            .iter()
            .map(|s| {
                let (s, by_id, sessions, st) = (
                    s.try_clone().unwrap(),
                    by_id.clone(),
                    sessions.clone(),
                    st.clone(),
                );
                std::thread::spawn(move || receiver(s, by_id, sessions, st, poll))
            })
            .collect();
        let sender_thread = {
            let (socks, sessions, st) = (
                sockets.iter().map(|s| s.try_clone().unwrap()).collect(),
                sessions.clone(),
                st.clone(),
            );
            std::thread::spawn(move || sender(socks, media, sessions, legs, st, !old_daemons))
        };
        let drops = || {
            (
                socket_drops(media.port()),
                ports.iter().map(|&p| socket_drops(p)).sum::<u64>(),
            )
        };
        let softirq_threads = ksoftirqd();
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;

        println!(
            "# phone-relay UDP media plane on loopback ({cores} cores, shared by the relay and the generator)"
        );
        println!();
        println!(
            "{calls} two-way calls ({} sessions logged in over QUIC, protocol 4) set up in {:.1} s; relay media_threads = {threads}; generator: 1 sending thread, {nsockets} receiving threads/sockets ({}). {PAYLOAD}-byte payloads, the rate spread evenly over the {} streams. {:.1} s warm-up, {:.1} s measured per load.",
            2 * calls,
            set_up.as_secs_f64(),
            if poll.is_zero() {
                "each blocked in recvmmsg".to_owned()
            } else {
                format!("each draining its socket every {} µs", poll.as_micros())
            },
            2 * calls,
            warm.as_secs_f64(),
            window.as_secs_f64()
        );
        println!();
        // The idle cost: sessions connected, no media. The window spans a whole QUIC
        // keep-alive period (10 s for sessions that beat; the relay's keep-alive is 10 s
        // too), so that each connection's keep-alive is in it once, as in a steady state
        // (the connections were all busy within the set-up's last seconds, so their
        // keep-alives come together 10 s later).
        smol::Timer::after(Duration::from_secs(1)).await;
        let idle_window = if quick {
            window
        } else {
            Duration::from_secs(11)
        };
        let (r0, t0) = (cpu_seconds(&relay_pid), Instant::now());
        smol::Timer::after(idle_window).await;
        let idle = (cpu_seconds(&relay_pid) - r0) / t0.elapsed().as_secs_f64();
        println!(
            "Relay CPU with the sessions connected and no media ({}): {:.1} % of a core.",
            if old_daemons {
                "QUIC keep-alives each second, as daemons before the beat"
            } else {
                "each session's plane keep-alive each second, QUIC keep-alives every 10 s"
            },
            100.0 * idle
        );
        println!();
        println!(
            "| offered | per stream | sent | forwarded (received) | loss | delay p50 | p99 | p99.9 | relay CPU | relay CPU per packet | same, less idle | generator CPU | ksoftirqd CPU | socket drops: relay / generator | other CPU |"
        );
        println!("| --- |{}", " --- |".repeat(14));
        for (i, &rate) in rates.iter().enumerate() {
            let measured = 2 * (i as u32 + 1);
            st.phase.store(measured - 1, Ordering::Relaxed);
            st.rate.store(rate, Ordering::Relaxed);
            smol::Timer::after(warm).await;
            st.sent.store(0, Ordering::Relaxed);
            st.received.store(0, Ordering::Relaxed);
            st.send_errors.store(0, Ordering::Relaxed);
            st.delays.reset();
            st.counting.store(measured, Ordering::Relaxed);
            let drops0 = drops();
            let soft0: f64 = softirq_threads.iter().map(|p| cpu_seconds(p)).sum();
            let m0 = machine_busy_ticks();
            let (relay0, own0, t0) = (cpu_seconds(&relay_pid), cpu_seconds("self"), Instant::now());
            st.phase.store(measured, Ordering::Relaxed);
            smol::Timer::after(window).await;
            st.phase.store(measured + 1, Ordering::Relaxed);
            let secs = t0.elapsed().as_secs_f64();
            let (relay1, own1) = (cpu_seconds(&relay_pid), cpu_seconds("self"));
            let drops1 = drops();
            let soft1: f64 = softirq_threads.iter().map(|p| cpu_seconds(p)).sum();
            let busy = (machine_busy_ticks() - m0) as f64 / tick / secs;
            st.rate.store(0, Ordering::Relaxed);
            smol::Timer::after(Duration::from_millis(300)).await;
            let (sent, received) = (
                st.sent.load(Ordering::Relaxed),
                st.received.load(Ordering::Relaxed),
            );
            let relay_cpu = relay1 - relay0;
            let (own, soft) = (own1 - own0, soft1 - soft0);
            println!(
                "| {rate} /s | {:.0} /s | {:.0} /s | **{:.0} /s** | {:.2} % | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} % | {:.2} µs | **{:.2} µs** | {:.0} % | {:.0} % | {} / {} | {:.0} % |",
                rate as f64 / (2 * calls) as f64,
                sent as f64 / secs,
                received as f64 / secs,
                100.0 * (1.0 - received as f64 / sent.max(1) as f64),
                st.delays.quantile(0.5),
                st.delays.quantile(0.99),
                st.delays.quantile(0.999),
                100.0 * relay_cpu / secs,
                relay_cpu * 1e6 / received.max(1) as f64,
                (relay_cpu - idle * secs).max(0.0) * 1e6 / received.max(1) as f64,
                100.0 * own / secs,
                100.0 * soft / secs,
                drops1.0 - drops0.0,
                drops1.1 - drops0.1,
                100.0 * (busy - (relay_cpu + own + soft) / secs).max(0.0),
            );
            let errors = st.send_errors.load(Ordering::Relaxed);
            if errors > 0 {
                println!("|  |  | {errors} send errors |{}", "  |".repeat(12));
            }
        }
        println!();
        println!(
            "CPU is per cent of one core. \"Generator CPU\" is this process (the sealing, sending, receiving and opening threads, and the 2N idle QUIC clients); \"other CPU\" is what the rest of the machine used meanwhile (other processes, kernel threads): a figure well above zero means the run was disturbed."
        );
        st.stop.store(true, Ordering::Relaxed);
        let _ = sender_thread.join();
        for r in receivers {
            let _ = r.join();
        }
        drop(clients);
    });
    drop(relay);
}

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
    caller.wait_event(WAIT, |e| matches!(e, Event::CallState { call: c, phase: CallPhase::Active { .. } } if *c == call)).await.expect("call active");
    call
}
