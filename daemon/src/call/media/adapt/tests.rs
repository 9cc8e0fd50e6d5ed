//! The controller against a simulated network: a second's worth of frames per report,
//! lost at random or in Gilbert–Elliott bursts, the far side's jitter buffer at a chosen
//! delay; loss rising, falling, bursting and hovering at a threshold.

use super::*;
use crate::audio::netsim::Rng;

const S: u64 = 1_000_000;
const CLEAN: u32 = 24_000;
/// A 15-byte header (a call id of 10 bytes) 50 times a second.
const HEADER: u32 = 6_000;

/// A loss process per frame.
enum Loss {
    Random(f64),
    /// Gilbert–Elliott with a lossless good state and a lossy bad state: `(share of
    /// frames lost, mean burst)`.
    Bursts(f64, f64),
}

struct Net {
    rng: Rng,
    bad: bool,
    number: u32,
}

impl Net {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            bad: false,
            number: 0,
        }
    }

    fn lost(&mut self, loss: &Loss) -> bool {
        match *loss {
            Loss::Random(p) => self.rng.chance(p),
            Loss::Bursts(share, burst) => {
                // Leave the bad state with 1/burst; enter it so that `share` of frames are in it.
                let enter = share / (burst * (1.0 - share));
                self.bad = if self.bad {
                    !self.rng.chance(1.0 / burst)
                } else {
                    self.rng.chance(enter)
                };
                self.bad
            }
        }
    }

    /// One second: 50 frames through `loss`, reported.
    fn report(&mut self, loss: &Loss) -> MediaReport {
        let mut r = MediaReport::new(7, 2, self.number, 1000);
        self.number += 1;
        let mut in_run = false;
        for _ in 0..50 {
            let lost = self.lost(loss);
            r.expected += 1;
            if lost {
                r.lost += 1;
                if !in_run {
                    r.bursts += 1;
                }
            }
            in_run = lost;
        }
        r
    }
}

/// Runs `adapter` from `from_s` to `to_s` (one report a second) and returns the settings
/// after each report.
fn run(adapter: &mut Adapter, net: &mut Net, loss: Loss, from_s: u64, to_s: u64) -> Vec<Settings> {
    (from_s..to_s)
        .map(|s| {
            adapter.on_report(s * S, &net.report(&loss));
            let settings = adapter.settings();
            assert!(
                f64::from(adapter.total_bps(&settings))
                    <= f64::from(CLEAN + HEADER) * MAX_TOTAL_FACTOR,
                "{settings:?} over the cap"
            );
            settings
        })
        .collect()
}

fn levels(settings: &[Settings]) -> Vec<u8> {
    settings.iter().map(|s| s.redundancy).collect()
}

/// How often the redundancy level changed (the FEC setting follows the estimate freely).
fn changes(settings: &[Settings]) -> usize {
    settings
        .windows(2)
        .filter(|w| w[0].redundancy != w[1].redundancy)
        .count()
}

#[test]
fn a_clean_path_is_protected_for_the_start_hold_then_keeps_the_clean_bitrate_without_fec() {
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    // Before any report (and for a peer that never reports): light FEC.
    assert_eq!(a.settings().expected_loss_percent, MIN_FEC_PERCENT);
    let s = run(&mut a, &mut Net::new(1), Loss::Random(0.0), 0, 60);
    // One copy from the first report (at 0 s) until the reports showed 3 s of a clean path.
    assert_eq!(levels(&s[..4]), [1, 1, 1, 0]);
    assert!(s[3..].iter().all(|s| *s
        == Settings {
            bitrate_bps: CLEAN,
            expected_loss_percent: 0,
            redundancy: 0,
            first_back: 1,
            step: 1,
            copy_bitrate_bps: 0,
        }));
}

#[test]
fn rising_loss_turns_on_one_copy_then_two_within_seconds() {
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let mut net = Net::new(2);
    run(&mut a, &mut net, Loss::Random(0.0), 0, 10);
    assert_eq!(a.settings().redundancy, 0);
    // 10 %: one copy within two reports, and it stays.
    let s = run(&mut a, &mut net, Loss::Random(0.10), 10, 40);
    assert!(s[1..].iter().all(|s| s.redundancy == 1), "{:?}", levels(&s));
    let one = s[s.len() - 1];
    let budget = (CLEAN + HEADER) * 152 / 100;
    let fixed = HEADER + REDUNDANT_HEADER_BPS;
    assert_eq!(one.bitrate_bps, (budget - fixed - COPY_OVERHEAD_BPS) / 2);
    assert_eq!(one.bitrate_bps, 18_200);
    assert!(one.expected_loss_percent <= 3, "{one:?}");
    // 25 %: two copies.
    let s = run(&mut a, &mut net, Loss::Random(0.25), 40, 60);
    assert!(s[2..].iter().all(|s| s.redundancy == 2), "{:?}", levels(&s));
    assert_eq!(
        s[s.len() - 1].bitrate_bps,
        (budget - fixed - 2 * COPY_OVERHEAD_BPS) / 3
    );
}

#[test]
fn falling_loss_steps_down_only_after_the_hold() {
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let mut net = Net::new(3);
    run(&mut a, &mut net, Loss::Random(0.25), 0, 20);
    assert_eq!(a.settings().redundancy, 2);
    let s = run(&mut a, &mut net, Loss::Random(0.0), 20, 60);
    let l = levels(&s);
    // Two copies kept for the hold (6 s) after the estimate fell below 4 %, then one
    // for another hold, then none; never back up.
    let first_one = l.iter().position(|&x| x < 2).expect("left two copies");
    let first_none = l.iter().position(|&x| x == 0).expect("left redundancy");
    assert!(first_one >= 6, "{l:?}");
    assert!(first_none >= first_one + 6, "{l:?}");
    assert!(l.windows(2).all(|w| w[1] <= w[0]), "{l:?}");
    assert_eq!(s[s.len() - 1].bitrate_bps, CLEAN);
}

#[test]
fn loss_hovering_at_the_threshold_does_not_flip_the_stream() {
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let mut net = Net::new(4);
    // 3 % on average, reports scattering around it (1–6 % a second).
    let s = run(&mut a, &mut net, Loss::Random(0.03), 0, 120);
    assert!(
        changes(&s) <= 2,
        "{} changes: {:?}",
        changes(&s),
        levels(&s)
    );
    // At 2 %, between the thresholds of one copy: a few changes in two minutes at most.
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let s = run(&mut a, &mut net, Loss::Random(0.02), 0, 120);
    assert!(
        changes(&s) <= 4,
        "{} changes: {:?}",
        changes(&s),
        levels(&s)
    );
    // Near two copies' threshold (18 %) likewise.
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let s = run(&mut a, &mut net, Loss::Random(0.17), 0, 120);
    assert!(
        changes(&s) <= 4,
        "{} changes: {:?}",
        changes(&s),
        levels(&s)
    );
}

#[test]
fn bursty_loss_takes_a_copy_two_back_where_random_loss_of_the_same_rate_takes_one_back() {
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let mut net = Net::new(5);
    let s = run(&mut a, &mut net, Loss::Bursts(0.10, 3.0), 0, 60);
    assert!(a.mean_burst() > 2.0, "{}", a.mean_burst());
    // One copy, two frames back, at the bitrate of one copy.
    assert!(
        s[10..]
            .iter()
            .all(|s| (s.redundancy, s.first_back) == (1, 2)),
        "{:?}",
        &s[10..]
    );
    let one_copy = s[59].bitrate_bps;
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let s = run(&mut a, &mut net, Loss::Random(0.10), 0, 60);
    assert!(
        s[3..]
            .iter()
            .all(|s| (s.redundancy, s.first_back) == (1, 1)),
        "{:?}",
        levels(&s)
    );
    assert_eq!(s[59].bitrate_bps, one_copy);
}

/// Of `seconds` of frames through `loss`, those neither arriving nor repaired by a copy
/// that arrived, with the settings `adapter` takes from a report each second.
fn unrepaired(adapter: &mut Adapter, seed: u64, loss: &Loss, seconds: u64) -> f64 {
    let mut net = Net::new(seed);
    let mut lost = Vec::new();
    let mut plan = Vec::new();
    for s in 0..seconds {
        let settings = adapter.settings();
        let mut r = MediaReport::new(7, 2, s as u32, 1000);
        let mut in_run = false;
        for _ in 0..50 {
            let l = net.lost(loss);
            (r.expected, r.lost) = (r.expected + 1, r.lost + u16::from(l));
            r.bursts += u16::from(l && !in_run);
            in_run = l;
            lost.push(l);
            plan.push(settings);
        }
        adapter.on_report(s * S, &r);
    }
    let gone = (0..lost.len())
        .filter(|&i| lost[i])
        .filter(|&i| {
            let p = plan[i];
            (0..p.redundancy).all(|k| {
                let carrier = i + usize::from(p.first_back + k * p.step);
                lost.get(carrier).copied().unwrap_or(true)
            })
        })
        .count();
    gone as f64 / lost.len() as f64
}

#[test]
fn bursty_loss_takes_the_deep_copies_re_encoded_to_a_peer_that_reads_them() {
    let deep = DEEP_SPREAD;
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    a.set_deep_copies(true);
    let s = run(&mut a, &mut Net::new(5), Loss::Bursts(0.10, 3.0), 0, 60);
    assert!(
        s[10..]
            .iter()
            .all(|s| (s.redundancy, s.first_back, s.step, s.copy_bitrate_bps)
                == (
                    deep.count,
                    deep.first_back,
                    deep.step,
                    deep.copy_bitrate_bps
                )),
        "{:?}",
        &s[10..]
    );
    // The frame gets what the budget leaves after the low-rate copies: more than a copy,
    // and the whole within the cap (`run` checks it every second).
    let last = s[59];
    let budget = (CLEAN + HEADER) * 152 / 100;
    let level = u32::from(deep.count);
    let fixed = HEADER + REDUNDANT_HEADER_BPS + level * COPY_OVERHEAD_BPS;
    assert_eq!(
        last.bitrate_bps,
        budget - fixed - level * deep.copy_bitrate_bps
    );
    assert!(last.bitrate_bps > deep.copy_bitrate_bps, "{last:?}");
    assert!(
        f64::from(a.total_bps(&last)) >= f64::from(CLEAN + HEADER) * 1.4,
        "{last:?} leaves the budget unused"
    );
    // Random loss of the same rate still takes the copy one back, the packet as sent.
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    a.set_deep_copies(true);
    let s = run(&mut a, &mut Net::new(5), Loss::Random(0.10), 0, 60);
    assert!(
        s[3..]
            .iter()
            .all(|s| (s.redundancy, s.first_back, s.copy_bitrate_bps) == (1, 1, 0)),
        "{:?}",
        levels(&s)
    );
}

#[test]
fn at_a_clean_bitrate_too_low_for_re_encoded_copies_they_are_the_packets_as_sent() {
    // 10 kbit/s: two copies at their own 10 kbit/s would leave the frame less than a copy.
    let mut a = Adapter::new(10_000, HEADER, Thresholds::default());
    a.set_deep_copies(true);
    let s = run(&mut a, &mut Net::new(5), Loss::Bursts(0.10, 3.0), 0, 60);
    assert!(
        s[10..].iter().all(|s| s.copy_bitrate_bps == 0),
        "{:?}",
        &s[10..]
    );
    assert!(s.iter().all(|s| s.bitrate_bps >= 6_000), "{s:?}");
}

#[test]
fn on_a_bursty_network_deep_copies_leave_half_the_frames_lost_that_copies_two_back_leave() {
    let bursts = Loss::Bursts(0.10, 3.0);
    let mut deep = Adapter::new(CLEAN, HEADER, Thresholds::default());
    deep.set_deep_copies(true);
    let with = unrepaired(&mut deep, 21, &bursts, 300);
    let mut shallow = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let without = unrepaired(&mut shallow, 21, &bursts, 300);
    // With a mean burst of 3: (2/3)^6 of the lost frames stay lost with copies three and
    // six back against (2/3)^2, about 0.9 % of all frames against 4.4 %.
    assert!(with < 0.028, "{with}");
    assert!(without > 0.035, "{without}");
    assert!(with < without * 0.6, "{with} {without}");
}

#[test]
fn high_loss_takes_two_copies_one_and_two_back_but_bursts_keep_the_deep_copies() {
    // Random loss, or bursts to a peer that reads no deep copies: runs close together need
    // the copies one after the other.
    for (seed, deep) in [(11, false), (12, false), (11, true)] {
        let loss = if seed == 11 {
            Loss::Random(0.25)
        } else {
            Loss::Bursts(0.25, 3.0)
        };
        let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
        a.set_deep_copies(deep);
        let mut net = Net::new(seed);
        let s = run(&mut a, &mut net, loss, 0, 60);
        assert!(
            s[20..]
                .iter()
                .all(|s| (s.redundancy, s.first_back, s.copy_bitrate_bps) == (2, 1, 0)),
            "{:?}",
            &s[20..]
        );
    }
    // Bursts to a peer that reads deep copies: those, at any loss (a frame is lost only
    // with the frames three and six after it).
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    a.set_deep_copies(true);
    let s = run(&mut a, &mut Net::new(12), Loss::Bursts(0.25, 3.0), 0, 60);
    assert!(
        s[10..]
            .iter()
            .all(|s| (s.redundancy, s.first_back) == (DEEP_SPREAD.count, DEEP_SPREAD.first_back)),
        "{:?}",
        &s[10..]
    );
    // And they leave fewer frames unrepaired there than copies one and two back.
    let bursts = Loss::Bursts(0.25, 3.0);
    let mut deep = Adapter::new(CLEAN, HEADER, Thresholds::default());
    deep.set_deep_copies(true);
    let with = unrepaired(&mut deep, 22, &bursts, 300);
    let mut shallow = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let without = unrepaired(&mut shallow, 22, &bursts, 300);
    assert!(with < without * 0.8, "{with} {without}");
}

#[test]
fn dtx_pauses_weigh_little() {
    let mut a = Adapter::new(CLEAN, HEADER, Thresholds::default());
    let mut net = Net::new(6);
    run(&mut a, &mut net, Loss::Random(0.0), 0, 10);
    // A second of DTX: three frames, one lost (33 %), against the clean seconds before.
    let mut r = MediaReport::new(7, 2, 99, 1000);
    (r.expected, r.lost, r.bursts, r.delay_ms) = (3, 1, 1, 40);
    a.on_report(10 * S, &r);
    assert!(a.loss() < 0.03, "{}", a.loss());
    assert_eq!(a.settings().redundancy, 0);
}

#[test]
fn the_cap_holds_for_any_clean_bitrate_and_level() {
    for clean in [6_000, 12_000, 24_000, 32_000, 64_000] {
        let mut a = Adapter::new(clean, HEADER, Thresholds::default());
        let mut net = Net::new(u64::from(clean));
        a.set_deep_copies(true);
        let losses = [
            Loss::Random(0.0),
            Loss::Random(0.05),
            Loss::Bursts(0.10, 3.0),
            Loss::Random(0.3),
            Loss::Random(0.6),
        ];
        for loss in &losses {
            for _ in 0..10 {
                a.on_report(0, &net.report(loss));
                let s = a.settings();
                let total = f64::from(a.total_bps(&s));
                assert!(
                    total <= f64::from(clean + HEADER) * MAX_TOTAL_FACTOR,
                    "{clean} {s:?}"
                );
                assert!(s.bitrate_bps >= 6_000, "{clean} {s:?}");
            }
        }
    }
}

#[test]
fn a_peer_that_reads_deep_copies_gets_the_start_spread_until_the_reports_show_the_path() {
    let start = |a: &Adapter| {
        let s = a.settings();
        (s.redundancy, s.first_back, s.step, s.copy_bitrate_bps)
    };
    let spread = |s: Spread| (s.count, s.first_back, s.step, s.copy_bitrate_bps);
    let clean_bitrate = 32_000;
    for (loss, then) in [
        (Loss::Random(0.0), (0, 1, 1, 0)),
        (Loss::Random(0.10), (1, 1, 1, 0)),
        (Loss::Bursts(0.10, 3.0), spread(DEEP_SPREAD)),
    ] {
        let mut a = Adapter::new(clean_bitrate, HEADER, Thresholds::default());
        // The features come with the first frame, before any report: copies one and six
        // back from then on, re-encoded, the frame within the cap.
        a.set_deep_copies(true);
        assert_eq!(start(&a), spread(START_SPREAD));
        let s = a.settings();
        assert!(
            f64::from(a.total_bps(&s)) <= f64::from(clean_bitrate + HEADER) * MAX_TOTAL_FACTOR,
            "{s:?}"
        );
        assert!(s.bitrate_bps >= 24_000, "{s:?}");
        // The reports then show the path: a clean one leaves the copies after the start
        // hold, random loss takes one copy one back, bursts the deep copies.
        let mut net = Net::new(5);
        for k in 0..8 {
            a.on_report(k * S, &net.report(&loss));
        }
        assert_eq!(start(&a), then);
    }
    // A peer that reads no deep copies gets one copy one back, as before.
    let mut a = Adapter::new(clean_bitrate, HEADER, Thresholds::default());
    a.set_deep_copies(false);
    assert_eq!(start(&a), (1, 1, 1, 0));
}
