//! Store and forward through the real relay on loopback: text messages stored durably
//! (LMDB commit before `Stored`) and delivered to an online recipient who acks each one,
//! per second; and file throughput over a bulk stream, upload and download.
//!
//! Run: `cargo bench -p phone-relay --bench store_forward` (`-- --quick` for a short run,
//! `-- --in-flight N` for N messages in flight, sent and acked; 16 by default).

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
    let relay = RelayProcess::start(
        BIN.as_ref(),
        &dir.path().join("state"),
        "127.0.0.1:0",
        "max_file_mib = 1024\nmailbox_quota_kib = 4194304",
    );
    println!("# store and forward on loopback\n\n| measure | result |\n| --- | --- |");
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

        // Messages: `in_flight` sent without waiting; the receiver acks what has arrived,
        // up to `in_flight` acks at a time.
        let total = if quick { 500 } else { 3000 }.max(in_flight * 20);
        let t = Instant::now();
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
                        to: to.number.clone(),
                        text: format!("message number {i} with a little text in it"),
                    })
                });
                for r in join_all(sends).await {
                    assert!(matches!(r, Ok(Response::Stored { .. })));
                }
            }
        };
        join_all([
            Box::pin(acker) as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
            Box::pin(sending),
        ])
        .await;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| text messages stored (fsync'd) and delivered + acked, {in_flight} in flight | {:.0} /s ({total} in {secs:.2} s) |",
            total as f64 / secs
        );
        // What the relay keeps once the burst is over (allocator arenas included).
        std::thread::sleep(Duration::from_millis(500));
        println!(
            "| relay RSS after the messages, anonymous | {} |",
            anon_rss(relay.child.id())
        );

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
