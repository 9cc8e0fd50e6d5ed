//! The receive side's account of one far source, sans-IO: which of its frames arrived and
//! when ([`ReceptionMeter::record`]), and once a second a [`MediaReport`] of the latest
//! interval (the first at once: the far side learns from it that we read redundant
//! frames) for the far side's [`Adapter`](super::adapt::Adapter): frames expected by
//! their sequence numbers, lost, in how many runs, the interarrival jitter, and what the
//! pipeline adds (late frames, repairs from redundancy, the jitter buffer's delay).
//!
//! Loss is counted before redundancy or FEC repaired anything: the sender adapts to the
//! network, not to what its own protection hid.

use phoned_proto::call::CallId;
use phoned_proto::media::MediaReport;

/// How often a report goes out while frames come, µs.
pub const REPORT_EVERY_US: u64 = 1_000_000;

/// A sequence step larger than this is a restarted stream, not loss (the jitter buffer's
/// own resync default).
const RESYNC_SEQ_JUMP: i64 = 1000;

/// Counts one far source's frames for the next report; see the module docs.
#[derive(Debug, Default)]
pub struct ReceptionMeter {
    /// Extended highest sequence number seen, once a frame came.
    highest: Option<i64>,
    /// `highest` when the interval began: frames after it are this interval's.
    base: i64,
    /// Frames of this interval that arrived (each counted once: duplicates are not).
    received: u32,
    /// Runs of missing sequence numbers seen in this interval.
    bursts: u32,
    /// The previous frame's transit (arrival less send time), µs, for the jitter.
    last_transit_us: Option<i64>,
    /// RFC 3550 interarrival jitter, µs × 16 (the estimator's gain is 1/16).
    jitter16_us: i64,
    /// When the latest report went out (or the first frame came), µs.
    last_report_us: Option<u64>,
    number: u32,
}

impl ReceptionMeter {
    /// Takes a frame that arrived at `now_us` (not a redundant copy).
    pub fn record(&mut self, now_us: u64, seq: u32, timestamp: u32) {
        let transit = now_us as i64 - i64::from(timestamp) * 1000 / 48;
        let Some(highest) = self.highest else {
            self.restart(now_us, seq, transit);
            return;
        };
        let eseq = highest + i64::from(seq.wrapping_sub(highest as u32) as i32);
        if (eseq - highest).abs() > RESYNC_SEQ_JUMP {
            self.restart(now_us, seq, transit);
            return;
        }
        if eseq == highest || eseq <= self.base {
            return; // A duplicate, or a frame of an interval already reported.
        }
        if eseq > highest {
            if eseq > highest + 1 {
                self.bursts += 1;
            }
            self.highest = Some(eseq);
        }
        self.received += 1;
        // The timestamp wraps every 24.8 h; a transit step that large is the wrap (or a
        // restart), not jitter.
        if let Some(last) = self.last_transit_us.replace(transit) {
            let d = (transit - last).abs();
            if d < 1_000_000 {
                self.jitter16_us += d - self.jitter16_us / 16;
            }
        }
    }

    fn restart(&mut self, now_us: u64, seq: u32, transit: i64) {
        let eseq = i64::from(seq);
        self.highest = Some(eseq);
        self.base = eseq - 1;
        self.received = 1;
        self.bursts = 0;
        self.last_transit_us = Some(transit);
        self.last_report_us.get_or_insert(now_us);
    }

    /// The report due at `now_us`, if one is (a second after the last; none before the first
    /// frame): `late`, `repaired` and `delay_ms` are the pipeline's since the last report.
    pub fn report(
        &mut self,
        now_us: u64,
        call: CallId,
        source: u32,
        late: u64,
        repaired: u64,
        delay_ms: u32,
    ) -> Option<MediaReport> {
        let since = self.last_report_us?;
        let highest = self.highest?;
        let interval = now_us.checked_sub(since)?;
        // The first goes out at once: it tells the sender that we read redundant frames.
        if interval < REPORT_EVERY_US && self.number > 0 {
            return None;
        }
        let clamp = |n: u64| u16::try_from(n).unwrap_or(u16::MAX);
        let mut r = MediaReport::new(
            call,
            source,
            self.number,
            u32::try_from(interval / 1000).unwrap_or(u32::MAX),
        );
        let expected = (highest - self.base).max(0) as u64;
        r.expected = clamp(expected);
        let lost = expected.saturating_sub(u64::from(self.received));
        r.lost = clamp(lost).min(r.expected);
        r.bursts = clamp(self.bursts.into()).min(r.lost);
        r.repaired = clamp(repaired).min(r.lost);
        r.late = clamp(late);
        r.jitter_ms = clamp((self.jitter16_us / 16 / 1000) as u64);
        r.delay_ms = clamp(delay_ms.into());
        self.number = self.number.wrapping_add(1);
        self.last_report_us = Some(now_us);
        self.base = highest;
        self.received = 0;
        self.bursts = 0;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_US: u64 = 20_000;

    /// Frames `0..n` sent every 20 ms, arriving 30 ms later (plus `extra(seq)` µs), except
    /// those `lost` says.
    fn run(
        meter: &mut ReceptionMeter,
        n: u32,
        lost: impl Fn(u32) -> bool,
        extra: impl Fn(u32) -> u64,
    ) {
        for seq in 0..n {
            if !lost(seq) {
                let sent = u64::from(seq) * FRAME_US;
                meter.record(sent + 30_000 + extra(seq), seq, seq * 960);
            }
        }
    }

    #[test]
    fn a_report_counts_loss_and_its_runs_once_a_second() {
        let mut m = ReceptionMeter::default();
        assert!(m.report(5_000, 7, 2, 0, 0, 0).is_none(), "nothing came yet");
        // The first frame: a first report at once, of that frame.
        m.record(30_000, 0, 0);
        let r = m.report(30_000, 7, 2, 0, 0, 0).expect("the first at once");
        assert_eq!((r.expected, r.lost, r.number, r.interval_ms), (1, 0, 0, 0));
        // Frames 10, 11, 12 and 30 lost: two runs, four frames.
        run(
            &mut m,
            51,
            |s| s == 0 || (10..13).contains(&s) || s == 30,
            |_| 0,
        );
        assert!(
            m.report(900_000, 7, 2, 0, 0, 40).is_none(),
            "not a second yet"
        );
        let r = m.report(1_030_000, 7, 2, 1, 2, 40).expect("due");
        assert_eq!((r.expected, r.lost, r.bursts), (50, 4, 2), "{r:?}");
        assert_eq!((r.late, r.repaired, r.delay_ms, r.jitter_ms), (1, 2, 40, 0));
        assert_eq!((r.call, r.source, r.number, r.interval_ms), (7, 2, 1, 1000));
        // The next interval starts where this one ended.
        for seq in 51..101 {
            m.record(u64::from(seq) * FRAME_US + 30_000, seq, seq * 960);
        }
        let r = m.report(2_030_000, 7, 2, 0, 0, 40).expect("due");
        assert_eq!((r.expected, r.lost, r.bursts, r.number), (50, 0, 0, 2));
    }

    #[test]
    fn duplicates_and_reordering_are_not_loss() {
        let mut m = ReceptionMeter::default();
        for seq in [0u32, 1, 3, 2, 2, 4, 4, 5] {
            m.record(u64::from(seq) * FRAME_US, seq, seq * 960);
        }
        let r = m.report(1_000_000, 7, 2, 0, 0, 0).expect("due");
        assert_eq!((r.expected, r.lost), (6, 0), "{r:?}");
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let mut m = ReceptionMeter::default();
        // Every other frame 10 ms late: |D| = 10 ms for each frame, J converges to 10 ms.
        run(&mut m, 200, |_| false, |s| u64::from(s % 2) * 10_000);
        let r = m.report(5_000_000, 7, 2, 0, 0, 0).expect("due");
        assert!((9..=10).contains(&r.jitter_ms), "{r:?}");
    }

    #[test]
    fn a_restarted_stream_is_not_counted_as_loss() {
        let mut m = ReceptionMeter::default();
        run(&mut m, 20, |_| false, |_| 0);
        for k in 0..20u32 {
            let seq = 60_000 + k;
            m.record(400_000 + u64::from(k) * FRAME_US, seq, k * 960);
        }
        let r = m.report(1_100_000, 7, 2, 0, 0, 0).expect("due");
        assert_eq!((r.expected, r.lost), (20, 0), "{r:?}");
    }
}
