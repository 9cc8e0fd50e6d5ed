//! Conference media through the real `phone-relay` binary on loopback: the relay's CPU per
//! party of a 16-party room with 3 parties talking, against a 2-party call.
//!
//! The room: 16 clients, one creates it inviting the 15 others, who answer. Three parties
//! talk: each sends a `MediaFrame` (60-byte payload) every 20 ms with a speech level
//! (`level` 20, 25 and 30: −20 to −30 dBov); the 13 others are silent and send what a
//! client in DTX sends, a frame at level 127 every 400 ms. The relay forwards to each
//! party the 3 loudest speakers other than itself. The call: two clients, one dials and
//! the other answers, both talking (a frame every 20 ms each).
//!
//! Each measured window (10 s after 2 s of warm-up; `--quick`: 3 s after 1 s) runs one
//! scenario alone; the windows alternate room, call, room, call… for `--rounds` rounds
//! (default 3) so both see the same machine load, and the medians are printed last. The
//! relay's CPU is the run time of its threads (`/proc/<pid>/task/*/schedstat`, ns, user
//! and system), read at the window's edges; with no traffic at all (the connections
//! idle) it is measured too, for what keeping 18 sessions costs. Datagrams received are
//! counted per listener and per source.
//!
//! Run: `cargo bench -p phone-relay --bench conference` (add `-- --quick` for a short
//! run, `--rounds N` for N rounds).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use phoned_proto::call::CallPhase;
use phoned_proto::conference::Roster;
use phoned_proto::media::MediaFrame;
use phoned_proto::{Event, Request, Response};
use phoned_tests::client::{self, Client};
use phoned_tests::process::RelayProcess;

use phone_relay::store::Backend;

#[path = "common/accounts.rs"]
mod accounts;

const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");
const PASSWORD: &str = "benchmark password";
/// Opus payload size of a 20 ms frame at about 24 kbit/s.
const PAYLOAD: usize = 60;
/// Parties in the room, and how many of them talk.
const PARTIES: usize = 16;
const TALKERS: usize = 3;
/// The talkers' levels (RFC 6464 style: 0 loud, 127 silent).
const TALK_LEVELS: [u8; TALKERS] = [20, 25, 30];
/// A silent party in DTX sends a frame this often.
const DTX_EVERY: Duration = Duration::from_millis(400);
const FRAME_EVERY: Duration = Duration::from_millis(20);
const WAIT: Duration = Duration::from_secs(30);

/// One party: its connection, its media source in the room or call, and what it received
/// (datagrams per source index; the last slot for a source not known).
struct Party {
    client: Client,
    source: u32,
    received: Vec<AtomicU64>,
}

/// The relay's threads' run time so far (user + system), in seconds, from their
/// `schedstat` (ns resolution, where `/proc/<pid>/stat` counts 10 ms ticks).
fn run_time_seconds(pid: &str) -> f64 {
    let ns: u64 = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    ns as f64 / 1e9
}

/// Machine-wide busy CPU time so far from `/proc/stat`, in seconds.
fn machine_busy_seconds() -> f64 {
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
    let ticks = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7];
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn frame(call: u64, source: u32, seq: u32, level: u8) -> Bytes {
    Bytes::from(
        MediaFrame {
            call,
            source,
            seq,
            timestamp: seq.wrapping_mul(960),
            level,
            payload: vec![0x5a; PAYLOAD],
        }
        .encode(),
    )
}

/// Sends a frame every `every` until `stop`.
async fn sender(party: Arc<Party>, call: u64, level: u8, every: Duration, stop: Arc<AtomicBool>) {
    let mut next = Instant::now();
    let mut seq = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let _ = party
            .client
            .conn
            .send_datagram(frame(call, party.source, seq, level));
        seq = seq.wrapping_add(1);
        next += every;
        smol::Timer::at(next).await;
    }
}

/// Counts what reaches `party`, per source (index in `sources`).
async fn receiver(party: Arc<Party>, sources: Vec<u32>) {
    while let Ok(d) = party.client.conn.read_datagram().await {
        let Ok(f) = MediaFrame::decode(&d) else {
            continue;
        };
        let i = sources
            .iter()
            .position(|&s| s == f.source)
            .unwrap_or(sources.len());
        party.received[i].fetch_add(1, Ordering::Relaxed);
    }
}

fn snapshot(parties: &[Arc<Party>]) -> Vec<Vec<u64>> {
    parties
        .iter()
        .map(|p| {
            p.received
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect()
        })
        .collect()
}

/// What one measured window showed.
#[derive(Clone, Copy, Default)]
struct Window {
    /// Relay CPU, per cent of one core.
    relay_percent: f64,
    /// Relay CPU µs per second per party.
    per_party_us: f64,
    /// Relay CPU µs per datagram received by the listeners.
    per_datagram_us: f64,
    /// Datagrams received per second by all listeners together.
    received_per_s: f64,
    /// Datagrams per second received by the busiest listener, and the most streams
    /// (sources) any listener received more than a few frames of.
    max_listener_per_s: f64,
    max_streams: usize,
    /// Machine-wide busy CPU other than the relay's, per cent of one core.
    other_percent: f64,
}

/// Runs the senders of `talking` (index, level) and the DTX senders of the other parties
/// (when `dtx`) for `warm`, then measures for `window`.
async fn measure(
    relay_pid: &str,
    parties: &[Arc<Party>],
    call: u64,
    talking: &[(usize, u8)],
    dtx: bool,
    warm: Duration,
    window: Duration,
) -> Window {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, p) in parties.iter().enumerate() {
        let talk = talking.iter().find(|(t, _)| *t == i);
        let (level, every) = match talk {
            Some(&(_, level)) => (level, FRAME_EVERY),
            None if dtx => (127, DTX_EVERY),
            None => continue,
        };
        tasks.push(smol::spawn(sender(
            p.clone(),
            call,
            level,
            every,
            stop.clone(),
        )));
    }
    smol::Timer::after(warm).await;
    let before = snapshot(parties);
    let (relay0, busy0, t0) = (
        run_time_seconds(relay_pid),
        machine_busy_seconds(),
        Instant::now(),
    );
    smol::Timer::after(window).await;
    let (relay1, busy1, secs) = (
        run_time_seconds(relay_pid),
        machine_busy_seconds(),
        t0.elapsed().as_secs_f64(),
    );
    let after = snapshot(parties);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await;
    }
    let relay = relay1 - relay0;
    let mut total = 0u64;
    let (mut max_listener, mut max_streams) = (0u64, 0usize);
    for (b, a) in before.iter().zip(&after) {
        let per_source: Vec<u64> = a.iter().zip(b).map(|(a, b)| a - b).collect();
        let sum: u64 = per_source.iter().sum();
        total += sum;
        max_listener = max_listener.max(sum);
        // A stream is a source heard for more than a second's worth of DTX frames: a
        // silent party's DTX frame may be ranked for a moment when a talker's frames
        // come late.
        let streams = per_source
            .iter()
            .filter(|&&n| n as f64 > 5.0 * secs)
            .count();
        max_streams = max_streams.max(streams);
    }
    Window {
        relay_percent: 100.0 * relay / secs,
        per_party_us: relay * 1e6 / secs / parties.len() as f64,
        per_datagram_us: relay * 1e6 / total.max(1) as f64,
        received_per_s: total as f64 / secs,
        max_listener_per_s: max_listener as f64 / secs,
        max_streams,
        other_percent: 100.0 * ((busy1 - busy0) - relay).max(0.0) / secs,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let (warm, window) = if quick {
        (Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (Duration::from_secs(2), Duration::from_secs(10))
    };
    let accounts = PARTIES + 2;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    accounts::make(&Backend::Heed, &state, 64, 200_000, accounts, PASSWORD);
    let relay = RelayProcess::start(
        BIN.as_ref(),
        &state,
        "127.0.0.1:0",
        "max_connections_per_address = 64",
    );
    let relay_pid = relay.child.id().to_string();
    // SAFETY: the only other thread (the relay's stdout reader) does not touch the
    // environment.
    unsafe { std::env::set_var("SMOL_THREADS", "2") };
    let (addr, fp) = (relay.addr, relay.fingerprint.clone());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let number = |i: usize| (200_000 + i).to_string();

    smol::block_on(async {
        let endpoint = client::endpoint_on(([127, 0, 0, 1], 0).into()).unwrap();
        let mut clients = Vec::with_capacity(accounts);
        for i in 0..accounts {
            let c = Client::connect(&endpoint, addr, Some(&fp)).await.unwrap();
            c.login(&number(i), PASSWORD).await.unwrap();
            clients.push(c);
        }
        for c in &clients {
            c.wait_event(Duration::ZERO, |_| false).await;
        }
        let mut clients = clients.into_iter();
        let room: Vec<Client> = clients.by_ref().take(PARTIES).collect();
        let call: Vec<Client> = clients.collect();

        // The room: party 0 invites the 15 others, who answer.
        let room_id = match room[0]
            .request(Request::ConferenceCreate {
                numbers: (1..PARTIES).map(number).collect(),
            })
            .await
            .unwrap()
        {
            Response::ConferencePlaced { conference } => conference,
            other => panic!("create: {other:?}"),
        };
        let mut room_sources = Vec::with_capacity(PARTIES);
        room_sources.push(active_source(&room[0], room_id).await);
        for c in &room[1..] {
            c.wait_event(
                WAIT,
                |e| matches!(e, Event::ConferenceIncoming { conference, .. } if *conference == room_id),
            )
            .await
            .expect("invitation");
            c.request(Request::Answer { call: room_id }).await.unwrap();
            room_sources.push(active_source(c, room_id).await);
        }
        room[0]
            .wait_event(WAIT, |e| {
                matches!(e, Event::ConferenceRoster { roster, .. } if present(roster) == PARTIES)
            })
            .await
            .expect("all joined");

        // The call.
        let call_id = match call[0]
            .request(Request::Dial {
                to: number(PARTIES + 1),
            })
            .await
            .unwrap()
        {
            Response::CallPlaced { call } => call,
            other => panic!("dial: {other:?}"),
        };
        call[1]
            .wait_event(
                WAIT,
                |e| matches!(e, Event::CallIncoming { call, .. } if *call == call_id),
            )
            .await
            .expect("incoming call");
        call[1]
            .request(Request::Answer { call: call_id })
            .await
            .unwrap();
        let mut call_sources = Vec::new();
        for c in &call {
            call_sources.push(active_source(c, call_id).await);
        }

        let wrap = |clients: Vec<Client>, sources: &[u32]| -> Vec<Arc<Party>> {
            clients
                .into_iter()
                .zip(sources)
                .map(|(client, &source)| {
                    Arc::new(Party {
                        client,
                        source,
                        received: (0..=sources.len()).map(|_| AtomicU64::new(0)).collect(),
                    })
                })
                .collect()
        };
        let room = wrap(room, &room_sources);
        let call = wrap(call, &call_sources);
        let _receivers: Vec<smol::Task<()>> = room
            .iter()
            .map(|p| smol::spawn(receiver(p.clone(), room_sources.clone())))
            .chain(
                call.iter()
                    .map(|p| smol::spawn(receiver(p.clone(), call_sources.clone()))),
            )
            .collect();

        println!(
            "# phone-relay conference forwarding on loopback ({cores} cores, shared by the relay and the generator)"
        );
        println!();
        println!(
            "A {PARTIES}-party room ({TALKERS} talking: a frame every 20 ms each at levels {TALK_LEVELS:?}; the others silent, a DTX frame every 400 ms) against a 2-party call (both talking). {PAYLOAD}-byte payloads; {:.0} s warm-up, {:.0} s measured per window; {rounds} rounds, the scenarios alternating. Relay CPU from its threads' run time.",
            warm.as_secs_f64(),
            window.as_secs_f64()
        );
        println!();
        println!(
            "| round | scenario | relay CPU | relay CPU per party | relay CPU per datagram received | datagrams received, all listeners | busiest listener | most streams a listener received | other CPU |"
        );
        println!("| --- |{}", " --- |".repeat(8));
        let talking: Vec<(usize, u8)> = TALK_LEVELS.iter().copied().enumerate().collect();
        let scenarios = [
            "idle (18 sessions, no media)",
            "16-party room, 3 talking",
            "2-party call, both talking",
        ];
        let mut results: Vec<Vec<Window>> = vec![Vec::new(); scenarios.len()];
        for r in 1..=rounds {
            for (s, name) in scenarios.iter().enumerate() {
                let w = match s {
                    0 => {
                        let all: Vec<Arc<Party>> = room.iter().chain(&call).cloned().collect();
                        measure(&relay_pid, &all, 0, &[], false, warm, window).await
                    }
                    1 => measure(&relay_pid, &room, room_id, &talking, true, warm, window).await,
                    _ => {
                        measure(
                            &relay_pid,
                            &call,
                            call_id,
                            &[(0, 25), (1, 25)],
                            false,
                            warm,
                            window,
                        )
                        .await
                    }
                };
                print_row(&r.to_string(), name, &w);
                results[s].push(w);
            }
        }
        for (s, name) in scenarios.iter().enumerate() {
            let m = |f: fn(&Window) -> f64| median(results[s].iter().map(f).collect());
            let w = Window {
                relay_percent: m(|w| w.relay_percent),
                per_party_us: m(|w| w.per_party_us),
                per_datagram_us: m(|w| w.per_datagram_us),
                received_per_s: m(|w| w.received_per_s),
                max_listener_per_s: m(|w| w.max_listener_per_s),
                max_streams: results[s].iter().map(|w| w.max_streams).max().unwrap_or(0),
                other_percent: m(|w| w.other_percent),
            };
            print_row("**median**", name, &w);
        }
        println!();
        println!(
            "Relay CPU is per cent of one core; \"per party\" divides it by the parties of the scenario (16, 2; 18 idle). \"Most streams\" counts the sources a listener received more than 5 datagrams/s from (the maximum over the rounds in the median row). \"Other CPU\" is what the rest of the machine used meanwhile (this generator included), per cent of one core."
        );
        drop(room);
        drop(call);
    });
    drop(relay);
}

fn print_row(round: &str, scenario: &str, w: &Window) {
    println!(
        "| {round} | {scenario} | {:.2} % | **{:.1} µs/s** | {} | {:.0} /s | {:.0} /s | {} | {:.0} % |",
        w.relay_percent,
        w.per_party_us,
        if w.received_per_s > 0.0 {
            format!("{:.1} µs", w.per_datagram_us)
        } else {
            "—".to_owned()
        },
        w.received_per_s,
        w.max_listener_per_s,
        w.max_streams,
        w.other_percent,
    );
}

fn present(roster: &Roster) -> usize {
    roster.present().count()
}

/// Waits for `call` to be active on `c`; its media source.
async fn active_source(c: &Client, call: u64) -> u32 {
    match c
        .wait_event(WAIT, |e| {
            matches!(e, Event::CallState { call: id, phase: CallPhase::Active { .. } } if *id == call)
        })
        .await
        .expect("active")
    {
        Event::CallState {
            phase: CallPhase::Active { source },
            ..
        } => source,
        _ => unreachable!(),
    }
}
