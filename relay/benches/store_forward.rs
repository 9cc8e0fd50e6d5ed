//! Store and forward through the real relay on loopback: text messages stored durably
//! (LMDB commit before `Stored`) and delivered to an online recipient who acks each one,
//! per second; and file throughput over a bulk stream, upload and download.
//!
//! Run: `cargo bench -p phone-relay --bench store_forward` (`-- --quick` for a short run,
//! `-- --in-flight N` for N messages in flight, sent and acked; 16 by default;
//! `-- --messages N` to send N messages, `-- --pairs P` for P senders, each with its own
//! receiver, at once, `-- --messages-only` to skip the file transfer). `PHONE_RELAY_BIN=/path/to/phone-relay`
//! measures another build of the relay. `-- --postgres` runs the relay on PostgreSQL (a
//! throw-away cluster of `phoned_tests::postgres`, fsync on) instead of LMDB. The relay's
//! CPU per message is broken down by
//! thread kind (executor, group commit, blocking pool) from `/proc/<pid>/task`.

use std::time::{Duration, Instant};

use phoned_proto::codec::{decode, encode_framed};
use phoned_proto::{BulkReply, BulkRequest, Event, FileKind, FrameDecoder, Request, Response};
use phoned_tests::client::{self, Client};
use phoned_tests::join_all;
use phoned_tests::process::RelayProcess;
use sha2::Digest;

const BIN: &str = env!("CARGO_BIN_EXE_phone-relay");

async fn frames(recv: &mut quinn::RecvStream, dec: &mut FrameDecoder) -> BulkReply {
    let mut buf = vec![0u8; 4096];
    loop {
        if let Ok(Some(body)) = dec.next_frame() {
            return decode(body).unwrap();
        }
        let n = recv.read(&mut buf).await.unwrap().unwrap();
        dec.push(&buf[..n]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let in_flight: usize = args
        .iter()
        .position(|a| a == "--in-flight")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--in-flight takes a number"))
        .unwrap_or(16);
    let dir = tempfile::tempdir().unwrap();
    // Another build of the relay (an older one, for a before/after), if given.
    let bin = std::env::var("PHONE_RELAY_BIN").unwrap_or_else(|_| BIN.to_owned());
    // This build's relay serves its metrics: the group commits are read from them.
    let metrics = (bin == BIN).then(|| {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    });
    let cluster = args
        .iter()
        .any(|a| a == "--postgres")
        .then(|| phoned_tests::postgres::Cluster::start().expect("PostgreSQL is not installed"));
    let store = cluster
        .as_ref()
        .map_or(String::new(), |c| format!("store = \"{}\"\n", c.database()));
    let relay = RelayProcess::start(
        bin.as_ref(),
        &dir.path().join("state"),
        "127.0.0.1:0",
        &format!(
            "max_file_mib = 1024\nmailbox_quota_kib = 4194304\nprovision_burst = 100\n{store}{}",
            metrics.map_or(String::new(), |a| format!("metrics_listen = \"{a}\""))
        ),
    );
    println!(
        "# store and forward on loopback, {}\n\n| measure | result |\n| --- | --- |",
        if cluster.is_some() {
            "PostgreSQL"
        } else {
            "LMDB"
        }
    );
    smol::block_on(async {
        let ep = client::endpoint();
        let sender = Client::connect(&ep, relay.addr, Some(&relay.fingerprint))
            .await
            .unwrap();
        sender.provision("sender").await.unwrap();
        let receiver = Client::connect(&ep, relay.addr, Some(&relay.fingerprint))
            .await
            .unwrap();
        let (to, _) = receiver.provision("receiver").await.unwrap();

        // Messages: each of `pairs` senders keeps `in_flight` messages in flight to its
        // own receiver, which acks what has arrived, up to `in_flight` acks at a time.
        let total: usize = args
            .iter()
            .position(|a| a == "--messages")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse().expect("--messages takes a number"))
            .unwrap_or_else(|| if quick { 500 } else { 3000 }.max(in_flight * 20));
        let pairs: usize = args
            .iter()
            .position(|a| a == "--pairs")
            .and_then(|i| args.get(i + 1))
            .map(|n| n.parse().expect("--pairs takes a number"))
            .unwrap_or(1);
        let mut others = Vec::new();
        for p in 1..pairs {
            let s = Client::connect(&ep, relay.addr, Some(&relay.fingerprint))
                .await
                .unwrap();
            s.provision(&format!("sender {p}")).await.unwrap();
            let r = Client::connect(&ep, relay.addr, Some(&relay.fingerprint))
                .await
                .unwrap();
            let (info, _) = r.provision(&format!("receiver {p}")).await.unwrap();
            others.push((s, r, info.number));
        }
        let relay_pid = relay.child.id();
        let threads_before = thread_cpu(relay_pid);
        let relay_before = process_cpu(relay_pid);
        let own_before = process_cpu(std::process::id());
        let commits_before = metrics.map(scrape).unwrap_or_default();
        let pg_before = cluster.as_ref().map(|c| c.cpu_seconds());
        let t = Instant::now();
        let each = total.div_ceil(pairs);
        let runs = std::iter::once(exchange(&sender, &receiver, &to.number, each, in_flight))
            .chain(
                others
                    .iter()
                    .map(|(s, r, n)| exchange(s, r, n, each, in_flight)),
            );
        join_all(runs).await;
        let total = each * pairs;
        let secs = t.elapsed().as_secs_f64();
        let threads = thread_cpu(relay_pid);
        let relay_used = process_cpu(relay_pid) - relay_before;
        let own = process_cpu(std::process::id()) - own_before;
        let pg_used = cluster
            .as_ref()
            .zip(pg_before)
            .map(|(c, before)| c.cpu_seconds() - before);
        println!(
            "| text messages stored (fsync'd) and delivered + acked, {pairs} sender(s) × {in_flight} in flight | {:.0} /s ({total} in {secs:.2} s) |",
            total as f64 / secs
        );
        // Where the CPU went, per message: the relay's threads by kind, and this process
        // (the sender and the receiver, QUIC and the client library).
        let per = |seconds: f64| seconds * 1e6 / total as f64;
        let mut relay_total = 0.0;
        for (kind, used) in &threads {
            let used = used - threads_before.get(kind).copied().unwrap_or(0.0);
            relay_total += used;
            println!(
                "| relay CPU per message, {kind} threads | {:.1} µs |",
                per(used)
            );
        }
        // Blocking-pool threads that went idle and exited took their time with them.
        println!(
            "| relay CPU per message, threads that ended meanwhile | {:.1} µs |",
            per((relay_used - relay_total).max(0.0))
        );
        println!(
            "| relay CPU per message, the whole process | {:.1} µs ({:.0} % of a core) |",
            per(relay_used),
            relay_used * 100.0 / secs
        );
        println!(
            "| bench CPU per message (sender and receiver clients) | {:.1} µs |",
            per(own)
        );
        if let Some(used) = pg_used {
            println!(
                "| PostgreSQL server CPU per message (its processes still running) | {:.1} µs ({:.0} % of a core) |",
                per(used),
                used * 100.0 / secs
            );
        }
        if let Some(addr) = metrics {
            let after = scrape(addr);
            let d = |k: &str| {
                after.get(k).copied().unwrap_or(0.0) - commits_before.get(k).copied().unwrap_or(0.0)
            };
            let commits = d("phone_relay_store_commit_seconds_count");
            // The smallest bucket bound holding a share `q` of the commits.
            let quantile = |q: f64| {
                let mut bounds: Vec<(f64, f64)> = after
                    .keys()
                    .filter_map(|k| {
                        let le = k
                            .strip_prefix("phone_relay_store_commit_seconds_bucket{le=\"")?
                            .strip_suffix("\"}")?;
                        Some((le.parse::<f64>().unwrap_or(f64::INFINITY), d(k)))
                    })
                    .collect();
                bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
                bounds
                    .into_iter()
                    .find(|(_, n)| *n >= q * commits)
                    .map_or(f64::NAN, |(le, _)| le * 1e3)
            };
            println!(
                "| group commits (commit + fsync, one transaction each) | {commits:.0}, {:.0} writes each on average; {:.1} ms on average, p50 ≤ {:.1} ms, p99 ≤ {:.1} ms |",
                d("phone_relay_store_commit_writes_sum") / commits.max(1.0),
                d("phone_relay_store_commit_seconds_sum") * 1e3 / commits.max(1.0),
                quantile(0.5),
                quantile(0.99)
            );
        }
        // What the relay keeps once the burst is over (allocator arenas included).
        std::thread::sleep(Duration::from_millis(500));
        println!(
            "| relay RSS after the messages, anonymous | {} |",
            anon_rss(relay.child.id())
        );

        if args.iter().any(|a| a == "--messages-only") {
            return;
        }
        // A file: upload, then download, on bulk streams.
        let size: usize = if quick { 32 << 20 } else { 128 << 20 };
        let mut x = 0x1234_5678_9abc_def1u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let sha: [u8; 32] = sha2::Sha256::digest(&data).into();
        let t = Instant::now();
        let (mut send, mut recv) = sender.conn.open_bi().await.unwrap();
        let mut head = Vec::new();
        let up = BulkRequest::Upload {
            client_id: "file".into(),
            to: to.number.clone(),
            name: "bench.bin".into(),
            size: size as u64,
            sha256: sha,
            kind: FileKind::File,
        };
        encode_framed(&mut head, &up).unwrap();
        send.write_all(&head).await.unwrap();
        let mut dec = FrameDecoder::new();
        assert!(matches!(
            frames(&mut recv, &mut dec).await,
            BulkReply::Resume { offset: 0 }
        ));
        for chunk in data.chunks(256 << 10) {
            send.write_all(chunk).await.unwrap();
        }
        send.finish().unwrap();
        let id = match frames(&mut recv, &mut dec).await {
            BulkReply::Stored { id } => id,
            other => panic!("{other:?}"),
        };
        let up_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (mut send, mut recv) = receiver.conn.open_bi().await.unwrap();
        let mut head = Vec::new();
        encode_framed(&mut head, &BulkRequest::Download { id, offset: 0 }).unwrap();
        send.write_all(&head).await.unwrap();
        send.finish().unwrap();
        let mut dec = FrameDecoder::new();
        assert!(matches!(
            frames(&mut recv, &mut dec).await,
            BulkReply::Sending { .. }
        ));
        let mut got = dec.take_rest().len();
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(Some(n)) = recv.read(&mut buf).await {
            got += n;
        }
        let down_secs = t.elapsed().as_secs_f64();
        assert_eq!(got, size);
        let mib = size as f64 / 1048576.0;
        println!(
            "| file upload (QUIC stream → relay disk, SHA-256 checked, fsync'd) | {:.0} MiB/s ({mib:.0} MiB in {up_secs:.2} s) |",
            mib / up_secs
        );
        println!(
            "| file download (relay disk → QUIC stream) | {:.0} MiB/s ({mib:.0} MiB in {down_secs:.2} s) |",
            mib / down_secs
        );
    });
    println!(
        "\nClient and relay share this machine's two cores; the relay runs as its own process."
    );
}

/// `RssAnon` of a process, from `/proc`, as written there (e.g. `5120 kB`).
fn anon_rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// user + system CPU seconds of a process or thread from its `stat` file.
fn stat_cpu(path: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    Some((
        comm,
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64,
    ))
}

fn process_cpu(pid: u32) -> f64 {
    stat_cpu(&format!("/proc/{pid}/stat")).map_or(0.0, |(_, s)| s)
}

/// CPU seconds of a process' threads so far, summed by kind: the thread's name without
/// trailing digits and dashes (`group-commit`, `smol`, `blocking`, …). Threads that ended
/// before the call are not counted.
fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_kind = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_kind;
    };
    for task in tasks.flatten() {
        let path = format!("{}/stat", task.path().display());
        if let Some((comm, seconds)) = stat_cpu(&path) {
            let kind = comm
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
                .to_owned();
            *by_kind.entry(kind).or_insert(0.0) += seconds;
        }
    }
    by_kind
}

/// `sender` sends `total` messages to `to` (whose client is `receiver`), `in_flight` at a
/// time, and `receiver` acknowledges each as it arrives.
async fn exchange(sender: &Client, receiver: &Client, to: &str, total: usize, in_flight: usize) {
    let acker = async {
        let mut acked = 0;
        while acked < total {
            let mut ids = Vec::new();
            let mut within = Duration::from_secs(30);
            while ids.len() < in_flight.min(total - acked) {
                match receiver
                    .wait_event(within, |e| matches!(e, Event::Message(_)))
                    .await
                {
                    Some(Event::Message(m)) => ids.push(m.id),
                    _ => break,
                }
                // Take what has arrived already, without waiting for more.
                within = Duration::ZERO;
            }
            assert!(!ids.is_empty(), "messages stopped arriving after {acked}");
            acked += ids.len();
            let acks = ids
                .into_iter()
                .map(|id| receiver.request(Request::Delivered { id }));
            for r in join_all(acks).await {
                assert!(matches!(r, Ok(Response::Done)));
            }
        }
    };
    let sending = async {
        for chunk in (0..total).collect::<Vec<_>>().chunks(in_flight) {
            let sends = chunk.iter().map(|i| {
                sender.request(Request::SendMessage {
                    client_id: format!("m{i}"),
                    to: to.to_owned(),
                    text: format!("message number {i} with a little text in it"),
                })
            });
            for r in join_all(sends).await {
                assert!(matches!(r, Ok(Response::Stored { .. })));
            }
        }
    };
    join_all([
        Box::pin(acker) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>,
        Box::pin(sending),
    ])
    .await;
}

/// The relay's metrics, `name{labels}` → value (the OpenMetrics text, plainly parsed).
fn scrape(addr: std::net::SocketAddr) -> std::collections::BTreeMap<String, f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}
