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

/// Copies a deep redundant frame carries: 1..=MAX_EARLIER_DEEP distinct `seq_back`s in
/// 1..=MAX_SEQ_BACK_DEEP, newest first.
fn deep_earlier() -> impl Strategy<Value = Vec<Earlier>> {
    (
        proptest::sample::subsequence(
            (1..=MAX_SEQ_BACK_DEEP).collect::<Vec<_>>(),
            1..=MAX_EARLIER_DEEP,
        ),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 1..300),
    )
        .prop_map(|(backs, ts_back, payload)| {
            backs
                .into_iter()
                .map(|seq_back| Earlier {
                    seq_back,
                    ts_back: ts_back.wrapping_mul(u32::from(seq_back)),
                    payload: payload.clone(),
                })
                .collect()
        })
}

fn features() -> impl Strategy<Value = MediaFeatures> {
    (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>())
        .prop_map(|(call, source, number, bits)| MediaFeatures::new(call, source, number, bits))
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
    fn deep_redundant_frames_round_trip_and_older_receivers_drop_them(f in frame(), earlier in deep_earlier()) {
        let r = RedundantFrame { frame: f.clone(), earlier };
        let bytes = MediaDatagram::Redundant(r.clone()).encode();
        prop_assert_eq!(peek_call(&bytes), Some(f.call));
        prop_assert_eq!(peek_level(&bytes), Some(Peeked { call: f.call, source: f.source, level: Some(f.level) }));
        prop_assert_eq!(MediaDatagram::decode(&bytes).unwrap(), MediaDatagram::Redundant(r.clone()));
        prop_assert!(MediaFrame::decode(&bytes).is_err());
        // Only what every reader of redundant frames reads goes as KIND_REDUNDANT.
        let kind = if r.is_deep() { KIND_REDUNDANT_DEEP } else { KIND_REDUNDANT };
        let head = postcard::to_allocvec(&(f.call, f.source, f.seq, f.timestamp)).unwrap();
        prop_assert_eq!(bytes[head.len()], kind);
        // A reader of KIND_REDUNDANT alone (the decoder with the deep kind unknown) would
        // refuse these bytes with the deep kind relabelled: it never misreads them.
        if r.is_deep() {
            let mut relabelled = bytes.clone();
            relabelled[head.len()] = KIND_REDUNDANT;
            prop_assert!(MediaDatagram::decode(&relabelled).is_err());
        }
    }

    #[test]
    fn features_round_trip_and_an_old_receiver_drops_them(f in features()) {
        let bytes = MediaDatagram::Features(f).encode();
        prop_assert_eq!(peek_call(&bytes), Some(f.call));
        prop_assert_eq!(peek_level(&bytes), Some(Peeked { call: f.call, source: f.source, level: None }));
        prop_assert_eq!(MediaDatagram::decode(&bytes).unwrap(), MediaDatagram::Features(f));
        prop_assert!(MediaFrame::decode(&bytes).is_err());
        prop_assert_eq!(f.deep_copies(), f.features & FEATURE_DEEP_COPIES != 0);
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
fn the_documented_deep_frame_and_features_decode() {
    // docs/protocol.md §13.3's examples: frame 304 with a copy of frame 301, three back,
    // and a party's features saying it reads deep copies.
    let bytes = [
        0x07, 0x01, 0xb0, 0x02, 0xc0, 0x25, 0x82, 0x03, 0x03, 0xf8, 0xff, 0xfe, 0x01, 0x03, 0xc0,
        0x16, 0x02, 0xf8, 0xaa,
    ];
    let expected = RedundantFrame {
        frame: MediaFrame {
            call: 7,
            source: 1,
            seq: 304,
            timestamp: 4800,
            level: 3,
            payload: vec![0xf8, 0xff, 0xfe],
        },
        earlier: vec![Earlier {
            seq_back: 3,
            ts_back: 2880,
            payload: vec![0xf8, 0xaa],
        }],
    };
    assert_eq!(
        MediaDatagram::decode(&bytes),
        Ok(MediaDatagram::Redundant(expected.clone()))
    );
    assert_eq!(MediaDatagram::Redundant(expected).encode(), bytes);
    let features = MediaFeatures::new(7, 1, 0, FEATURE_DEEP_COPIES);
    let bytes = [0x07, 0x01, 0x00, 0x00, 0x83, 0x01];
    assert_eq!(MediaDatagram::Features(features).encode(), bytes);
    assert_eq!(
        MediaDatagram::decode(&bytes),
        Ok(MediaDatagram::Features(features))
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
    r.earlier[0].seq_back = MAX_SEQ_BACK_DEEP + 1;
    assert!(refused(&r), "beyond MAX_SEQ_BACK_DEEP");
    r.earlier[0].seq_back = 3;
    assert!(!refused(&r), "a deep copy, as KIND_REDUNDANT_DEEP");
    let mut bytes = MediaDatagram::Redundant(r.clone()).encode();
    assert_eq!(bytes[5], KIND_REDUNDANT_DEEP);
    bytes[5] = KIND_REDUNDANT;
    assert!(
        MediaDatagram::decode(&bytes).is_err(),
        "KIND_REDUNDANT beyond MAX_EARLIER"
    );
    let mut r = base.clone();
    r.earlier = (1..=MAX_EARLIER_DEEP as u8 + 1)
        .map(|seq_back| Earlier {
            seq_back,
            ts_back: 960 * u32::from(seq_back),
            payload: vec![4],
        })
        .collect();
    assert!(refused(&r), "more copies than MAX_EARLIER_DEEP");
    r.earlier.pop();
    assert!(!refused(&r));
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
    // Features with the reserved field set are refused.
    assert!(MediaDatagram::decode(&[7, 1, 0, 1, KIND_FEATURES, 1]).is_err());
    assert!(MediaDatagram::decode(&[7, 1, 0, 0, KIND_FEATURES, 1]).is_ok());
    // An unknown kind is refused, whatever follows.
    assert!(MediaDatagram::decode(&[7, 1, 0, 0, 0x84, 0]).is_err());
}
