//! Round trips and strictness of the media datagrams, and what a receiver that knows only
//! `MediaFrame` makes of the newer kinds.

use super::*;
use proptest::prelude::*;

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..MAX_MEDIA_PAYLOAD)
}

fn frame() -> impl Strategy<Value = MediaFrame> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        0u8..=127,
        payload(),
    )
        .prop_map(
            |(call, source, seq, timestamp, level, payload)| MediaFrame {
                call,
                source,
                seq,
                timestamp,
                level,
                payload,
            },
        )
}

fn earlier() -> impl Strategy<Value = Vec<Earlier>> {
    let one = |seq_back| {
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 1..300)).prop_map(
            move |(ts_back, payload)| Earlier {
                seq_back,
                ts_back,
                payload,
            },
        )
    };
    prop_oneof![
        Just(Vec::new()),
        one(1).prop_map(|e| vec![e]),
        // A lone copy two frames back (against bursts of loss).
        one(2).prop_map(|e| vec![e]),
        (one(1), one(2)).prop_map(|(a, b)| vec![a, b]),
    ]
}

fn report() -> impl Strategy<Value = MediaReport> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<[u16; 6]>(),
    )
        .prop_map(|(call, source, number, interval, expected, f)| {
            let mut r = MediaReport::new(call, source, number, interval);
            r.expected = expected;
            r.lost = f[0] % (expected.saturating_add(1)).max(1);
            r.bursts = f[1] % r.lost.saturating_add(1);
            r.repaired = f[2] % r.lost.saturating_add(1);
            (r.late, r.jitter_ms, r.delay_ms) = (f[3], f[4], f[5]);
            r
        })
}

proptest! {
    #[test]
    fn media_frames_round_trip(f in frame()) {
        let bytes = f.encode();
        prop_assert_eq!(peek_call(&bytes), Some(f.call));
        prop_assert_eq!(peek_level(&bytes), Some(Peeked { call: f.call, source: f.source, level: Some(f.level) }));
        prop_assert_eq!(MediaFrame::decode(&bytes).unwrap(), f.clone());
        prop_assert_eq!(MediaDatagram::decode(&bytes).unwrap(), MediaDatagram::Frame(f));
    }

    #[test]
    fn redundant_frames_round_trip_and_an_old_receiver_drops_them(f in frame(), earlier in earlier()) {
        let r = RedundantFrame { frame: f.clone(), earlier };
        let bytes = MediaDatagram::Redundant(r.clone()).encode();
        prop_assert_eq!(peek_call(&bytes), Some(f.call));
        prop_assert_eq!(peek_level(&bytes), Some(Peeked { call: f.call, source: f.source, level: Some(f.level) }));
        let back = MediaDatagram::decode(&bytes).unwrap();
        if r.earlier.is_empty() {
            // Nothing to add: it goes as the plain frame every receiver reads.
            prop_assert_eq!(back, MediaDatagram::Frame(f));
        } else {
            prop_assert_eq!(back, MediaDatagram::Redundant(r));
            prop_assert!(MediaFrame::decode(&bytes).is_err());
        }
    }

    #[test]
    fn reports_round_trip_and_an_old_receiver_drops_them(r in report()) {
        let bytes = MediaDatagram::Report(r).encode();
        prop_assert_eq!(peek_call(&bytes), Some(r.call));
        prop_assert_eq!(peek_level(&bytes), Some(Peeked { call: r.call, source: r.source, level: None }));
        prop_assert_eq!(MediaDatagram::decode(&bytes).unwrap(), MediaDatagram::Report(r));
        prop_assert!(MediaFrame::decode(&bytes).is_err());
    }

    #[test]
    fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let _ = MediaFrame::decode(&bytes);
        if let Some(Peeked { level: Some(level), .. }) = peek_level(&bytes) {
            prop_assert!(level <= 127);
        }
        if let Ok(d) = MediaDatagram::decode(&bytes) {
            // Whatever decodes re-encodes to the same value, no longer than it came.
            let again = d.encode();
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(MediaDatagram::decode(&again).unwrap(), d);
        }
    }
}

#[test]
fn a_report_is_a_few_dozen_bytes_and_its_layout_is_the_documented_one() {
    let mut r = MediaReport::new(7, 1, 3, 1000);
    (r.expected, r.lost, r.bursts, r.repaired) = (50, 5, 4, 4);
    (r.late, r.jitter_ms, r.delay_ms) = (0, 2, 40);
    let bytes = MediaDatagram::Report(r).encode();
    assert_eq!(
        bytes,
        [0x07, 0x01, 0x03, 0xe8, 0x07, 0x81, 50, 5, 4, 0, 4, 2, 40]
    );
}

#[test]
fn the_documented_redundant_frame_decodes() {
    // docs/protocol.md §13.3's example.
    let bytes = [
        0x07, 0x01, 0xad, 0x02, 0x80, 0x0f, 0x80, 0x03, 0x03, 0xf8, 0xff, 0xfe, 0x01, 0x01, 0xc0,
        0x07, 0x02, 0xf8, 0xaa,
    ];
    let expected = RedundantFrame {
        frame: MediaFrame {
            call: 7,
            source: 1,
            seq: 301,
            timestamp: 1920,
            level: 3,
            payload: vec![0xf8, 0xff, 0xfe],
        },
        earlier: vec![Earlier {
            seq_back: 1,
            ts_back: 960,
            payload: vec![0xf8, 0xaa],
        }],
    };
    assert_eq!(
        MediaDatagram::decode(&bytes),
        Ok(MediaDatagram::Redundant(expected.clone()))
    );
    assert_eq!(MediaDatagram::Redundant(expected).encode(), bytes);
}

#[test]
fn out_of_range_redundancy_and_reports_are_refused() {
    let base = RedundantFrame {
        frame: MediaFrame {
            call: 7,
            source: 1,
            seq: 10,
            timestamp: 9600,
            level: 3,
            payload: vec![1, 2, 3],
        },
        earlier: vec![Earlier {
            seq_back: 1,
            ts_back: 960,
            payload: vec![4],
        }],
    };
    let refused = |r: &RedundantFrame| {
        MediaDatagram::decode(&MediaDatagram::Redundant(r.clone()).encode()).is_err()
    };
    assert!(!refused(&base));
    let mut r = base.clone();
    r.earlier[0].seq_back = 0;
    assert!(refused(&r), "seq_back 0 is the frame itself");
    r.earlier[0].seq_back = 3;
    assert!(refused(&r), "beyond MAX_EARLIER");
    let mut r = base.clone();
    r.earlier[0].payload.clear();
    assert!(refused(&r), "empty copy");
    let mut r = base.clone();
    r.earlier.push(r.earlier[0].clone());
    assert!(refused(&r), "two copies of one frame");
    let mut r = base.clone();
    r.frame.level = 200;
    assert!(refused(&r), "level");

    let mut report = MediaReport::new(7, 1, 0, 1000);
    report.expected = 5;
    report.lost = 6;
    assert!(MediaDatagram::decode(&MediaDatagram::Report(report).encode()).is_err());
    // An unknown kind is refused, whatever follows.
    assert!(MediaDatagram::decode(&[7, 1, 0, 0, 0x82, 0]).is_err());
}
