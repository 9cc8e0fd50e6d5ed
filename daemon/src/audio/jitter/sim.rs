//! A seeded network (`audio/netsim.rs`) between a 20 ms sender and the jitter buffer, and
//! the properties that must hold whatever it does: random and burst loss, reordering,
//! duplication, jitter, delay spikes, DTX pauses, clock drift, sequence/timestamp
//! wrap-around, and sound devices that work a quantum at a time at either end.

use super::*;
use crate::audio::netsim::{Link, Path};
use proptest::prelude::*;

#[derive(Clone, Debug)]
pub(super) struct Net {
    pub seed: u64,
    pub seconds: u32,
    /// Independent loss probability per packet.
    pub loss: f64,
    /// Probability per packet of starting a loss burst of `burst_len` packets.
    pub burst: f64,
    pub burst_len: u32,
    /// Extra delay per packet, uniform in 0..=jitter_ms (reorders when above 20 ms).
    pub jitter_ms: u64,
    pub duplicate: f64,
    /// Delay spikes `(start_ms, len_ms)`: everything sent in them arrives at their end.
    pub spikes: Vec<(u64, u64)>,
    /// Talk 2 s, then 1 s of DTX (nothing sent), repeatedly.
    pub dtx: bool,
    /// Receiver clock error in parts per million.
    pub drift_ppm: i64,
    pub seq0: u32,
    pub ts0: u32,
    /// Frame length of sender and receiver.
    pub frame: FrameDuration,
    /// The sender's microphone delivers audio a quantum (µs) at a time, 0 for a steady
    /// one: a frame leaves at the first quantum boundary after it is due.
    pub capture_quantum_us: u64,
    /// The receiver's speaker takes audio a quantum (µs) at a time, 0 for a steady one: a
    /// pop comes at the first quantum boundary after it is due, so with PipeWire's 21.3 ms
    /// against 20 ms frames, 15 pops 21.3 ms apart and then two at once.
    pub playout_quantum_us: u64,
}

impl Net {
    pub(super) fn clean(seconds: u32) -> Self {
        Self {
            seed: 1,
            seconds,
            loss: 0.0,
            burst: 0.0,
            burst_len: 0,
            jitter_ms: 2,
            duplicate: 0.0,
            spikes: Vec::new(),
            dtx: false,
            drift_ppm: 0,
            seq0: 1000,
            ts0: 5_000_000,
            frame: FrameDuration::Ms20,
            capture_quantum_us: 0,
            playout_quantum_us: 0,
        }
    }
}

/// What a pop returned, with the sender's frame index for packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Played {
    Packet(u64),
    Fec(u64),
    Conceal,
    Silence,
}

pub(super) struct Run {
    /// `(time µs, what played, stats after the pop)` per tick.
    pub ticks: Vec<(u64, Played, JitterStats)>,
    pub stats: JitterStats,
    /// Frames the sender sent.
    pub sent: u64,
}

const BASE_TRANSIT_US: u64 = 30_000;

/// When a device working `quantum` µs at a time (0: steadily) gets to something due at
/// `due_us`.
fn on_quantum(due_us: u64, quantum: u64) -> u64 {
    if quantum == 0 {
        due_us
    } else {
        due_us.div_ceil(quantum) * quantum
    }
}

fn index_of(payload: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&payload[..8]);
    u64::from_be_bytes(bytes)
}

/// Runs the network and checks the invariants on every tick: packets play at most once and
/// in order, FEC only ever looks ahead, no played packet waited longer than the hard
/// maximum, and the reported delay never exceeds it.
pub(super) fn run(net: &Net, config: JitterConfig) -> Run {
    let frame_us = u64::from(net.frame.millis()) * 1000;
    let max_us = u64::from(config.max_delay_ms) * 1000;
    let mut jb = JitterBuffer::new(config).expect("config");
    let mut link = Link::new(
        Path {
            base_transit_us: BASE_TRANSIT_US,
            loss: net.loss,
            burst: net.burst,
            burst_len: net.burst_len,
            jitter_ms: net.jitter_ms,
            duplicate: net.duplicate,
            duplicate_spread_us: frame_us,
            spikes: net.spikes.clone(),
        },
        net.seed,
    );
    // Arrivals: (time, frame index, seq, ts).
    let mut arrivals = Vec::new();
    let frames = u64::from(net.seconds) * 1_000_000 / frame_us;
    // The first and last second are loss-free, so every frame is accounted for.
    let (mut seq, mut sent) = (net.seq0, 0u64);
    for i in 0..frames {
        let send = on_quantum(i * frame_us, net.capture_quantum_us);
        let edge = send < 1_000_000 || send + 1_000_000 >= frames * frame_us;
        if net.dtx && (send / 1_000_000) % 3 == 2 {
            continue;
        }
        let ts = net
            .ts0
            .wrapping_add((i * net.frame.samples() as u64) as u32);
        let this_seq = seq;
        seq = seq.wrapping_add(1);
        sent += 1;
        for at in link.carry(send, edge).into_iter().flatten() {
            arrivals.push((at, i, this_seq, ts));
        }
    }
    arrivals.sort_by_key(|a| a.0);

    let phase = link.rng.upto(frame_us - 1);
    let mut held_since = std::collections::HashMap::new();
    let mut next_arrival = arrivals.iter().peekable();
    let mut ticks = Vec::new();
    let mut last_played: Option<u64> = None;
    let end = frames * frame_us + 2 * max_us;
    let mut k = 0u64;
    // How much later (µs) the playout runs for the frames played longer or shorter.
    let mut scaled_us = 0i64;
    loop {
        let tick = phase
            + on_quantum(
                (k * frame_us * 1_000_000u64.saturating_add_signed(net.drift_ppm) / 1_000_000)
                    .saturating_add_signed(scaled_us),
                net.playout_quantum_us,
            );
        if tick > end {
            break;
        }
        k += 1;
        while let Some(&&(at, i, s, ts)) = next_arrival.peek() {
            if at > tick {
                break;
            }
            next_arrival.next();
            let mut payload = [0u8; 40];
            payload[..8].copy_from_slice(&i.to_be_bytes());
            if matches!(
                jb.push(at, s, ts, &payload),
                Push::Buffered | Push::Resynced
            ) {
                held_since.insert(i, at);
            }
        }
        let played = match jb.pop(tick) {
            Playout::Packet(p) => Played::Packet(index_of(p)),
            Playout::Fec(p) => Played::Fec(index_of(p)),
            Playout::Conceal => Played::Conceal,
            Playout::Silence => Played::Silence,
        };
        // A time-scaler plays the frame a pitch period (here 2.5–10 ms) longer or
        // shorter, and the device then asks for the next frame that much later or sooner.
        let period_us = 2_500 + (k * 1_237 % 7_500) as i64;
        let delta = match jb.scale() {
            Scale::Keep => 0,
            Scale::Expand => period_us,
            Scale::Accelerate => -period_us,
        };
        if delta != 0 {
            assert!(matches!(played, Played::Packet(_)), "{played:?} scaled");
            jb.time_scaled(delta);
            scaled_us += delta;
        }
        match played {
            Played::Packet(i) => {
                assert!(
                    last_played.is_none_or(|l| i > l),
                    "frame {i} after {last_played:?}"
                );
                last_played = Some(i);
                let waited = tick - held_since[&i];
                assert!(waited <= max_us, "frame {i} waited {waited} µs");
            }
            Played::Fec(i) => {
                assert!(
                    last_played.is_none_or(|l| i > l + 1),
                    "FEC from {i} after {last_played:?}"
                );
            }
            Played::Conceal | Played::Silence => {}
        }
        let stats = jb.stats();
        assert!(
            u64::from(stats.delay_ms) * 1000 <= max_us,
            "delay {} ms",
            stats.delay_ms
        );
        ticks.push((tick, played, stats));
    }
    Run {
        ticks,
        stats: jb.stats(),
        sent,
    }
}

#[test]
fn clean_path_converges_to_one_frame_of_delay() {
    let run = run(&Net::clean(20), JitterConfig::default());
    let stats = run.stats;
    assert_eq!(stats.played, run.sent, "{stats:?}");
    assert_eq!(
        (stats.lost, stats.late, stats.skipped),
        (0, 0, 0),
        "{stats:?}"
    );
    // No concealment, not even the fade-out after the sender's last packet: that is
    // concealed (five frames) while nothing is buffered, and no packet after it ever tells
    // whether it was loss or a DTX pause, so it counts as neither.
    assert_eq!((stats.concealed, stats.dtx), (0, 0), "{stats:?}");
    let speech = run
        .ticks
        .iter()
        .filter(|t| matches!(t.1, Played::Packet(_)));
    for (at, _, s) in speech {
        assert!(
            s.delay_ms >= 20 && s.delay_ms <= 40,
            "delay {} ms at {at}",
            s.delay_ms
        );
    }
    assert_eq!(stats.target_ms, 20);
}

#[test]
fn a_200ms_delay_spike_is_absorbed_then_the_delay_shrinks_back() {
    let mut net = Net::clean(20);
    net.spikes = vec![(5_000, 200)];
    let run = run(&net, JitterConfig::default());
    let after = |from_ms: u64| run.ticks.iter().filter(move |t| t.0 >= from_ms * 1000);
    let peak = after(5_200)
        .take(100)
        .map(|t| t.2.delay_ms)
        .max()
        .unwrap_or(0);
    assert!(
        peak >= 60,
        "the spike should have raised the delay, peak {peak} ms"
    );
    // Back to one frame of delay within 4 s of clean traffic after the spike, and staying.
    let settled = after(9_200).take_while(|t| t.0 < 20_000_000);
    for (at, _, s) in settled {
        assert!(
            s.delay_ms <= 40,
            "delay {} ms at {} ms",
            s.delay_ms,
            at / 1000
        );
    }
    let stats = run.stats;
    // In the spike nothing is buffered to play longer, so the buffer stretches (concealing:
    // the packets are late); the excess delay after it goes by playing speech shorter, not
    // by skipping frames of it.
    assert!(stats.accelerated >= 2 && stats.stretched >= 2, "{stats:?}");
    assert_eq!(stats.skipped, 0, "{stats:?}");
}

#[test]
fn dtx_pauses_take_up_excess_delay_without_dropping_speech() {
    let mut net = Net::clean(20);
    net.dtx = true;
    net.spikes = vec![(1_000, 200)];
    let config = JitterConfig {
        // No skipping in speech: only pauses may shrink the delay.
        shrink_every_frames: 1000,
        ..JitterConfig::default()
    };
    let run = run(&net, config);
    let stats = run.stats;
    // The spike's late packets are the only loss; nothing that came in time was dropped.
    assert_eq!(stats.lost, stats.late, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert!(stats.skipped > 0, "{stats:?}");
    // The window forgets the spike during the talk spurt at 3–5 s; the pause at 5–6 s
    // takes the excess up, and the spurt from 6 s plays with one frame of delay.
    let spurt = run
        .ticks
        .iter()
        .filter(|t| t.0 >= 6_100_000 && t.0 < 8_000_000);
    for (at, _, s) in spurt {
        assert!(
            s.delay_ms <= 40,
            "delay {} ms at {} ms",
            s.delay_ms,
            at / 1000
        );
    }
}

#[test]
fn heavy_jitter_raises_the_target_and_few_packets_are_late() {
    let mut net = Net::clean(30);
    net.jitter_ms = 60;
    let run = run(&net, JitterConfig::default());
    let stats = run.stats;
    assert!(stats.target_ms >= 45 && stats.target_ms <= 62, "{stats:?}");
    assert!(
        stats.late * 100 <= run.sent * 5,
        "late {} of {}",
        stats.late,
        run.sent
    );
    assert!(stats.played * 100 >= run.sent * 93, "{stats:?}");
}

#[test]
fn random_loss_is_mostly_recovered_with_fec() {
    let mut net = Net::clean(30);
    net.loss = 0.10;
    let run = run(&net, JitterConfig::default());
    let stats = run.stats;
    let lost = run.sent - stats.played;
    // Isolated losses are all FEC; only the second of two in a row needs concealment.
    assert!(
        stats.fec * 100 >= lost * 85,
        "{stats:?} of {} sent",
        run.sent
    );
    assert_eq!(stats.lost, lost, "{stats:?}");
}

/// PipeWire's default quantum, 1024 samples at 48 kHz.
const PIPEWIRE_QUANTUM_US: u64 = 21_333;

/// What the tests' private PipeWire does (measured): the graph runs at 256 samples, so a
/// 20 ms capture fragment leaves at the first 5.3 ms boundary after it is complete, while
/// pipewire-pulse asks for playback 1024 samples at a time.
#[test]
fn a_pipewire_quantum_at_both_ends_conceals_and_skips_nothing() {
    let mut net = Net::clean(20);
    net.capture_quantum_us = PIPEWIRE_QUANTUM_US / 4;
    net.playout_quantum_us = PIPEWIRE_QUANTUM_US;
    let run = run(&net, JitterConfig::default());
    let stats = run.stats;
    assert_eq!((stats.played, stats.lost), (run.sent, 0), "{stats:?}");
    // The first early pop (the first burst, at 0.35 s) finds the delay a frame short and
    // stretches once; from then on the buffer knows the bursts. Until the talker stops
    // (20 s), every packet plays in its turn: no frame skipped at the late pops, none
    // concealed at the early ones.
    let at = |us: u64| run.ticks.iter().find(|t| t.0 >= us).expect("ticks").2;
    let (start, end) = (at(1_000_000), at(20_000_000));
    // (Since time-scaling: that once is an expanded frame, a pitch period longer, and the
    // concealment a stretch would need is gone.)
    assert_eq!(
        (
            start.stretched,
            start.expanded,
            start.skipped,
            start.concealed
        ),
        (0, 1, 0, 0),
        "{start:?}"
    );
    assert_eq!(
        (end.stretched, end.skipped, end.concealed, end.dropped),
        (start.stretched, start.skipped, start.concealed, 0),
        "{end:?}"
    );
    assert_eq!(
        (end.expanded, end.accelerated),
        (start.expanded, start.accelerated),
        "{end:?}"
    );
    // The pops' spread is the frame the device catches up by; the early pops sit at the
    // target, the late ones up to that spread (and a frame) above it.
    assert!((19..=22).contains(&stats.playout_jitter_ms), "{stats:?}");
    let speech = run
        .ticks
        .iter()
        .filter(|t| t.0 >= 1_000_000 && matches!(t.1, Played::Packet(_)));
    for (at, _, s) in speech {
        assert!(
            s.delay_ms >= s.target_ms && s.delay_ms <= s.target_ms + 2 * 20 + 2,
            "delay {} ms (target {}) at {at}",
            s.delay_ms,
            s.target_ms
        );
    }
}

#[test]
fn a_two_quantum_playout_with_drift_and_jitter_settles_without_concealing() {
    // 2048-sample bursts (PipeWire's maximum quantum) at the speaker, the default quantum
    // at the microphone, 5 ms of network jitter and 150 ppm between the clocks.
    let mut net = Net::clean(30);
    net.capture_quantum_us = PIPEWIRE_QUANTUM_US;
    net.playout_quantum_us = 2 * PIPEWIRE_QUANTUM_US;
    net.jitter_ms = 5;
    net.drift_ppm = 150;
    let run = run(&net, JitterConfig::default());
    let stats = run.stats;
    let settled = run
        .ticks
        .iter()
        .find(|t| t.0 >= 2_000_000)
        .expect("ticks")
        .2;
    // 4.5 ms of drift over the call: at most one frame to settle it, nothing concealed
    // while the talker talks, nor after its last packet (concealed while nothing is
    // buffered, then never known to be loss).
    assert_eq!(stats.lost, 0, "{stats:?}");
    assert!(
        stats.skipped - settled.skipped <= 1,
        "{stats:?} {settled:?}"
    );
    assert_eq!(
        stats.concealed - settled.concealed,
        0,
        "{stats:?} {settled:?}"
    );
    assert!(stats.played + stats.dropped == run.sent, "{stats:?}");
}

fn arb_net() -> impl Strategy<Value = Net> {
    (
        (
            any::<u64>(),
            0.0..0.15f64,
            0.0..0.03f64,
            1u32..12,
            0u64..=60,
            0.0..0.1f64,
        ),
        (any::<bool>(), -300i64..=300, any::<u32>(), any::<u32>()),
        prop::option::of((1_000u64..8_000, 50u64..=400)),
        any::<bool>(),
        // Steady, or a PipeWire quantum of 256..=2048 samples at 48 kHz.
        (
            prop::sample::select(vec![0u64, 5_333, 10_667, 21_333, 42_667]),
            prop::sample::select(vec![0u64, 5_333, 10_667, 21_333, 42_667]),
        ),
    )
        .prop_map(
            |(network, (dtx, drift_ppm, seq0, ts0), spike, ten_ms, quanta)| {
                let (seed, loss, burst, burst_len, jitter_ms, duplicate) = network;
                Net {
                    seed,
                    seconds: 10,
                    loss,
                    burst,
                    burst_len,
                    jitter_ms,
                    duplicate,
                    spikes: spike.into_iter().collect(),
                    dtx,
                    drift_ppm,
                    seq0,
                    ts0,
                    frame: if ten_ms {
                        FrameDuration::Ms10
                    } else {
                        FrameDuration::Ms20
                    },
                    capture_quantum_us: quanta.0,
                    playout_quantum_us: quanta.1,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `run` asserts the per-tick invariants (each payload at most once, in order, no wait
    /// over the hard maximum); here also the totals.
    #[test]
    fn any_network_keeps_the_invariants(net in arb_net()) {
        let run = run(&net, JitterConfig::for_frame(net.frame));
        let s = run.stats;
        prop_assert_eq!(s.resyncs, 0, "{:?}", s);
        prop_assert!(s.target_ms <= 200 - net.frame.millis());
        // Every frame sent is played, lost or dropped, once; only packets overtaken before
        // playout even started can escape the count.
        let accounted = s.played + s.lost + s.dropped;
        prop_assert!(accounted <= run.sent, "{:?} sent {}", s, run.sent);
        prop_assert!(accounted + 8 >= run.sent, "{:?} sent {}", s, run.sent);
    }

    /// Whatever the clocks, sequence origin and tick phase, a clean path (0–2 ms jitter)
    /// settles at one to two frames of delay plus at most that jitter within a second and
    /// stays there.
    #[test]
    fn any_clean_path_settles_at_one_frame_of_delay(
        seed in any::<u64>(),
        drift_ppm in -300i64..=300,
        seq0 in any::<u32>(),
        ts0 in any::<u32>(),
        ten_ms in any::<bool>(),
    ) {
        let frame = if ten_ms { FrameDuration::Ms10 } else { FrameDuration::Ms20 };
        let net = Net { seed, drift_ppm, seq0, ts0, frame, ..Net::clean(10) };
        let run = run(&net, JitterConfig::for_frame(frame));
        let frame_ms = frame.millis();
        for (at, played, s) in &run.ticks {
            if *at >= 1_000_000 && matches!(played, Played::Packet(_)) {
                let most = 2 * frame_ms + s.jitter_ms;
                prop_assert!(s.delay_ms <= most, "{} ms at {} µs", s.delay_ms, at);
            }
        }
        // Clock drift (3 ms in 10 s at 300 ppm) may need one frame skipped; nothing else.
        let s = run.stats;
        prop_assert_eq!(s.played + s.dropped, run.sent, "{:?}", s);
        prop_assert!(s.dropped <= 1, "{:?}", s);
    }
}

/// One step of hostile input: a push of made-up values, or a pop.
#[derive(Clone, Debug)]
enum Step {
    Push {
        dt_us: u32,
        seq: u32,
        ts: u32,
        len: u16,
    },
    Pop {
        dt_us: u32,
    },
}

fn arb_step() -> impl Strategy<Value = Step> {
    // Mostly plausible numbers, so packets meet in the buffer; sometimes wild ones.
    let number = || prop_oneof![4 => 0u32..64, 1 => any::<u32>()];
    prop_oneof![
        (0u32..100_000, number(), number(), 0u16..1300).prop_map(|(dt_us, seq, frame, len)| {
            Step::Push {
                dt_us,
                seq,
                ts: frame.wrapping_mul(960),
                len,
            }
        }),
        (0u32..40_000).prop_map(|dt_us| Step::Pop { dt_us }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Packets come from another machine through the relay: whatever they claim, the buffer
    /// does not panic, never plays a packet twice, and never holds one past the hard maximum.
    #[test]
    fn hostile_packets_never_break_the_buffer(steps in prop::collection::vec(arb_step(), 1..400)) {
        let mut jb = JitterBuffer::new(JitterConfig::default()).expect("config");
        let (mut now, mut id) = (0u64, 0u64);
        let mut arrived = std::collections::HashMap::new();
        let mut played = std::collections::HashSet::new();
        for step in steps {
            match step {
                Step::Push { dt_us, seq, ts, len } => {
                    now += u64::from(dt_us);
                    id += 1;
                    let mut payload = vec![0u8; usize::from(len)];
                    if payload.len() >= 8 {
                        payload[..8].copy_from_slice(&id.to_be_bytes());
                    }
                    let outcome = jb.push(now, seq, ts, &payload);
                    prop_assert_eq!(outcome == Push::Rejected, len == 0 || len > 1275);
                    arrived.insert(id, now);
                }
                Step::Pop { dt_us } => {
                    now += u64::from(dt_us);
                    if let Playout::Packet(p) = jb.pop(now)
                        && p.len() >= 8
                    {
                        let id = index_of(p);
                        prop_assert!(played.insert(id), "packet {} played twice", id);
                        prop_assert!(now - arrived[&id] <= 200_000);
                    }
                    prop_assert!(jb.stats().delay_ms <= 200);
                }
            }
        }
    }
}
