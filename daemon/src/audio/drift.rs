//! Clock drift between two audio clocks, sans-IO: [`DriftEstimator`] watches how full a
//! queue between them is and says how much faster (or slower) than nominal the resampler
//! between them should consume, in whole ppm. The media pipeline runs one on the receive
//! side, where the queue is the jitter buffer's delay (the far side's capture clock fills
//! it, our playback clock empties it). No clock, no allocation: the caller passes the time
//! with each measurement, so the tests feed synthetic fill levels.
//!
//! Why not a plain PI controller on the fill: the jitter buffer's delay is read on the
//! media thread's 5 ms tick, so on a clean path it moves in 5 ms steps, one every 17 s at
//! 300 ppm. A PI loop on such a staircase sees nothing for seconds, then a whole step,
//! and winds itself into a limit cycle of ±5–10 ms (measured: it skipped and stretched
//! more than no correction at all). So the drift is *measured* instead, and the level is
//! only nudged:
//! - **Drift.** What the fill would have done without us, `fill + ∫ correction dt` (the
//!   correction is ours, so known exactly), is a straight line whose slope is the drift,
//!   plus the tick's steps. A least-squares slope over the last [`DriftConfig::window_us`]
//!   (exponential forgetting: five sums, no buffer) measures it, 5 ms steps and all.
//!   A slope within [`DriftConfig::slope_dead_band_ppm`] counts as zero: a clean path's
//!   fill is constant, so its ratio stays at exactly 1.0.
//! - **Level.** The fill should stay at its anchor: where it settled, or the nearest
//!   point of [`DriftConfig::anchor_within`] (the pipeline gives one point, mid-way between
//!   the delays where the jitter buffer stretches and where it skips). A proportional
//!   nudge on its filtered error beyond [`DriftConfig::dead_band_us`], at most
//!   [`DriftConfig::max_level_ppm`], brings it back from what the drift moved it while it
//!   was being learnt; within the dead band a clean path is left where it is.
//! - **Steps.** A jump larger than [`DriftConfig::max_step_us`] between two measurements is
//!   not drift (a skip, a device gap, an overrun): the line is kept continuous over it and
//!   the anchor moves with it, within [`DriftConfig::anchor_within`]; so does
//!   [`DriftEstimator::restart`], for jumps the caller knows of.
//! - **Clamp.** The output stays within [`DriftConfig::max_ppm`]: a queue that moves faster
//!   than that is not drift but a stall, and not the resampler's to fix.
//!
//! ```
//! use phoned::audio::drift::{DriftConfig, DriftEstimator};
//!
//! let mut drift = DriftEstimator::new(DriftConfig::default());
//! // A queue whose writer runs 300 ppm fast, read through a resampler that follows the
//! // estimator, measured every 20 ms for ten minutes.
//! let (mut fill_us, mut ppm) = (10_000.0, 0);
//! for k in 0..30_000u64 {
//!     ppm = drift.update(k * 20_000, fill_us as i64);
//!     fill_us += 20_000.0 * f64::from(300 - ppm) / 1e6;
//! }
//! assert!((ppm - 300).abs() <= 3, "{ppm}");
//! assert!((fill_us - 10_000.0).abs() < 8_000.0, "{fill_us}");
//! ```

/// Tuning; `Default` is for a queue read on a 5 ms tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftConfig {
    /// Measurements ignored after the first (and after [`DriftEstimator::restart`]) while
    /// the queue settles, µs.
    pub warmup_us: u64,
    /// Memory of the slope measurement (time constant of its forgetting), µs.
    pub window_us: u64,
    /// The slope is trusted once this much has been measured, µs.
    pub min_span_us: u64,
    /// A measured slope this close to zero is zero, ppm.
    pub slope_dead_band_ppm: f64,
    /// Time constant of the level's filter, µs; the anchor is taken once it has run this
    /// long.
    pub filter_us: u64,
    /// Half-width of the band around the anchor where the level is left alone, µs.
    pub dead_band_us: i64,
    /// Level nudge: ppm per ms of filtered error beyond the dead band ...
    pub kp: f64,
    /// ... and at most this much, ppm.
    pub max_level_ppm: f64,
    /// A jump between two measurements larger than this is not drift, µs. (The default:
    /// more than two 5 ms ticks.)
    pub max_step_us: i64,
    /// Where the anchor may lie while the clocks drift (a measured slope beyond
    /// [`DriftConfig::slope_dead_band_ppm`]), µs of fill; `None`, and while they do not:
    /// where the fill settled.
    pub anchor_within: Option<(i64, i64)>,
    /// Largest correction either way, ppm.
    pub max_ppm: i32,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            warmup_us: 2_000_000,
            window_us: 120_000_000,
            min_span_us: 20_000_000,
            slope_dead_band_ppm: 5.0,
            filter_us: 2_000_000,
            dead_band_us: 3_000,
            kp: 100.0,
            max_level_ppm: 500.0,
            max_step_us: 12_500,
            anchor_within: None,
            max_ppm: 1_000,
        }
    }
}

/// Running least-squares sums of `(t, u)` with exponential forgetting.
#[derive(Clone, Copy, Debug, Default)]
struct Line {
    n: f64,
    t: f64,
    u: f64,
    tt: f64,
    tu: f64,
}

impl Line {
    fn add(&mut self, keep: f64, t: f64, u: f64) {
        self.n = self.n * keep + 1.0;
        self.t = self.t * keep + t;
        self.u = self.u * keep + u;
        self.tt = self.tt * keep + t * t;
        self.tu = self.tu * keep + t * u;
    }

    /// Slope in units of `u` per unit of `t`.
    fn slope(&self) -> f64 {
        let den = self.n * self.tt - self.t * self.t;
        if den.abs() < 1e-9 {
            return 0.0;
        }
        (self.n * self.tu - self.t * self.u) / den
    }
}

/// State once measuring.
#[derive(Clone, Copy, Debug)]
struct Measuring {
    /// When measuring began (for the slope's span and the anchor), µs.
    from_us: u64,
    last_us: u64,
    last_fill: i64,
    /// Added to the fill to keep it continuous over jumps, µs.
    offset: f64,
    /// The level's filter, over `fill + offset`, µs.
    filtered: f64,
    anchor: Option<f64>,
}

/// One queue's drift estimator; see the module docs.
#[derive(Clone, Debug)]
pub struct DriftEstimator {
    config: DriftConfig,
    /// When the current warm-up began.
    since_us: Option<u64>,
    measuring: Option<Measuring>,
    /// Fill our corrections have taken out since the start, µs.
    corrected_us: f64,
    line: Line,
    /// When the line's first point was taken, µs, and its latest value (µs of fill).
    line_from: Option<u64>,
    line_last: Option<f64>,
    ppm: i32,
    /// The drift measured last, ppm (0 within the slope's dead band).
    drift: f64,
}

impl DriftEstimator {
    pub fn new(config: DriftConfig) -> Self {
        Self {
            config,
            since_us: None,
            measuring: None,
            corrected_us: 0.0,
            line: Line::default(),
            line_from: None,
            line_last: None,
            ppm: 0,
            drift: 0.0,
        }
    }

    /// Whether the clocks were last measured to drift (beyond the slope's dead band).
    pub fn drifting(&self) -> bool {
        self.drift != 0.0
    }

    /// Changes where the anchor may lie while the clocks drift (see
    /// [`DriftConfig::anchor_within`]), e.g. for a device whose block size changed.
    pub fn set_anchor_within(&mut self, within: Option<(i64, i64)>) {
        self.config.anchor_within = within;
    }

    /// Takes the queue's fill (µs of audio, any offset) measured at `now_us` and returns the
    /// correction in ppm: positive when the queue fills up, so its reader should consume
    /// that much faster than nominal (a resampler's ratio × `1 − ppm / 10⁶`).
    pub fn update(&mut self, now_us: u64, fill_us: i64) -> i32 {
        let since = *self.since_us.get_or_insert(now_us);
        if now_us.saturating_sub(since) < self.config.warmup_us {
            return self.ppm;
        }
        let c = self.config;
        let Some(m) = &mut self.measuring else {
            // The line goes on where it was (a restart keeps it); the level starts here.
            let offset = self
                .line_last
                .map_or(0.0, |u| u - self.corrected_us - fill_us as f64);
            self.measuring = Some(Measuring {
                from_us: now_us,
                last_us: now_us,
                last_fill: fill_us,
                offset,
                filtered: fill_us as f64 + offset,
                anchor: None,
            });
            return self.ppm;
        };
        let dt_us = now_us.saturating_sub(m.last_us) as f64;
        // What our correction took out since the last measurement.
        self.corrected_us += f64::from(self.ppm) * dt_us / 1e6;
        let jump = fill_us - m.last_fill;
        if jump.abs() > c.max_step_us {
            m.offset -= jump as f64;
            // The level is kept continuous, so the anchor goes with the jump; it stays where
            // the fill may rest.
            if let (Some(anchor), Some((lo, hi)), true) =
                (&mut m.anchor, c.anchor_within, self.drift != 0.0)
            {
                *anchor = anchor.clamp(lo as f64 + m.offset, hi as f64 + m.offset);
            }
        }
        m.last_us = now_us;
        m.last_fill = fill_us;
        let level = fill_us as f64 + m.offset;
        let dt = dt_us.min(c.filter_us as f64);
        m.filtered += (level - m.filtered) * dt / (c.filter_us as f64 + dt);
        let t = now_us as f64 / 1e6;
        let keep = (-dt_us / c.window_us as f64).exp();
        self.line.add(keep, t, (level + self.corrected_us) / 1000.0);
        self.line_last = Some(level + self.corrected_us);
        let line_from = *self.line_from.get_or_insert(now_us);
        if now_us - m.from_us < c.filter_us {
            return self.ppm;
        }
        let anchor = m.anchor.get_or_insert(m.filtered);
        // Only a span long enough tells drift from the steps; until then, nothing is
        // touched (a clean path that settled at the edge of its band is not nudged
        // during a short call for nothing).
        if now_us - line_from < c.min_span_us {
            return self.ppm;
        }
        let mut drift = self.line.slope() * 1000.0; // ms per s → ppm
        if drift.abs() < c.slope_dead_band_ppm {
            drift = 0.0;
        }
        self.drift = drift;
        if let (Some((lo, hi)), true) = (c.anchor_within, drift != 0.0) {
            *anchor = anchor.clamp(lo as f64 + m.offset, hi as f64 + m.offset);
        }
        let error = m.filtered - *anchor;
        let beyond_ms = (error.abs() - c.dead_band_us as f64)
            .max(0.0)
            .copysign(error)
            / 1000.0;
        let nudge = (c.kp * beyond_ms).clamp(-c.max_level_ppm, c.max_level_ppm);
        let max = f64::from(c.max_ppm);
        self.ppm = (drift + nudge).clamp(-max, max).round() as i32;
        self.ppm
    }

    /// The correction now, ppm (see [`DriftEstimator::update`]).
    pub fn ppm(&self) -> i32 {
        self.ppm
    }

    /// The queue's level was moved by someone else (its owner skipped or stretched, the
    /// far side restarted its stream): settle again and re-read the level, but keep
    /// measuring the drift, which belongs to the clocks, not to the queue.
    pub fn restart(&mut self) {
        self.since_us = None;
        self.measuring = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK_US: u64 = 20_000;

    /// A queue between a writer `drift_ppm` fast and a reader that follows the estimator,
    /// measured every 20 ms, read in steps of `quantum_us` (the media thread's 5 ms tick;
    /// 1 for a fine reading) plus a zero-mean ±`noise_us / 2` staircase (device blocks),
    /// for `seconds`. Returns the estimator and `(µs, true fill µs, ppm)` per measurement.
    fn closed_loop(
        config: DriftConfig,
        start_us: f64,
        drift_ppm: f64,
        quantum_us: i64,
        noise_us: i64,
        seconds: u64,
    ) -> (DriftEstimator, Vec<(u64, f64, i32)>) {
        let mut est = DriftEstimator::new(config);
        let mut fill = start_us;
        let mut log = Vec::new();
        for k in 0..seconds * 1_000_000 / TICK_US {
            let now = k * TICK_US;
            let noise = ((k % 4) as i64 * 2 - 3) * noise_us / 6;
            let read = (fill as i64).div_euclid(quantum_us) * quantum_us + noise;
            let ppm = est.update(now, read);
            // The writer adds 20 ms · (1 + drift); the reader takes 20 ms · (1 + ppm).
            fill += TICK_US as f64 * (drift_ppm - f64::from(ppm)) / 1e6;
            log.push((now, fill, ppm));
        }
        (est, log)
    }

    #[test]
    fn a_clean_queue_stays_at_exactly_one_wherever_it_settled() {
        for (start, quantum, noise) in [(0.0, 5_000, 0), (15_000.0, 5_000, 0), (7_000.0, 1, 10_000)]
        {
            let (est, log) = closed_loop(DriftConfig::default(), start, 0.0, quantum, noise, 600);
            assert!(log.iter().all(|&(_, _, ppm)| ppm == 0), "from {start}");
            assert_eq!(est.ppm(), 0);
        }
    }

    #[test]
    fn drift_read_in_5_ms_steps_is_learnt_and_the_fill_stays_within_a_step_or_two() {
        for drift in [300.0, -300.0, 800.0, -100.0, 30.0] {
            let start = 7_500.0;
            let (est, log) = closed_loop(DriftConfig::default(), start, drift, 5_000, 0, 600);
            // Until the slope is trusted (22 s), only the level's nudge (100 ppm) holds the
            // fill: within 10 ms for a crystal's drift, 20 ms for a wild one.
            let bound = if drift.abs() <= 300.0 {
                10_000.0
            } else {
                20_000.0
            };
            let worst = log.iter().map(|l| (l.1 - start).abs()).fold(0.0, f64::max);
            assert!(worst < bound, "{drift} ppm: fill off by {worst} µs");
            // After the first three minutes, the correction is the drift within a few ppm
            // (plus the level's nudge, at most one step's worth).
            let late: Vec<i32> = log
                .iter()
                .filter(|l| l.0 >= 180_000_000)
                .map(|l| l.2)
                .collect();
            let mean = late.iter().map(|&p| f64::from(p)).sum::<f64>() / late.len() as f64;
            assert!((mean - drift).abs() <= 10.0, "{drift} ppm: mean {mean}");
            assert!(
                (f64::from(est.ppm()) - drift).abs() <= 60.0,
                "{}",
                est.ppm()
            );
        }
    }

    #[test]
    fn drift_read_finely_through_device_block_noise_is_learnt() {
        let config = DriftConfig {
            dead_band_us: 6_000,
            max_step_us: 40_000,
            ..DriftConfig::default()
        };
        for drift in [200.0, -200.0] {
            let (est, log) = closed_loop(config, 123_456.0, drift, 1, 10_000, 600);
            let worst = log
                .iter()
                .map(|l| (l.1 - 123_456.0).abs())
                .fold(0.0, f64::max);
            assert!(worst < 12_000.0, "{drift} ppm: fill off by {worst} µs");
            assert!(
                (f64::from(est.ppm()) - drift).abs() <= 10.0,
                "{}",
                est.ppm()
            );
        }
    }

    #[test]
    fn drift_beyond_the_clamp_saturates_it() {
        let (est, log) = closed_loop(DriftConfig::default(), 0.0, 3_000.0, 1, 0, 300);
        assert_eq!(est.ppm(), 1_000);
        assert!(log.iter().all(|l| l.2.abs() <= 1_000));
    }

    #[test]
    fn a_jump_is_not_drift_and_the_anchor_stays_where_the_fill_may_rest() {
        let config = DriftConfig {
            anchor_within: Some((5_000, 10_000)),
            ..DriftConfig::default()
        };
        let mut est = DriftEstimator::new(config);
        let mut fill = 7_500.0;
        for k in 0..(400 * 1_000_000 / TICK_US) {
            let now = k * TICK_US;
            if k == 200 * 1_000_000 / TICK_US {
                assert!((est.ppm() - 200).abs() <= 60, "{}", est.ppm());
                fill += 20_000.0; // the owner stretched a frame
            }
            let read = (fill as i64).div_euclid(5_000) * 5_000;
            let ppm = est.update(now, read);
            fill += TICK_US as f64 * (200.0 - f64::from(ppm)) / 1e6;
        }
        // Still learnt, and the fill is on its way back to 10 ms from 27.5 ms, at the
        // nudge's 100 ppm (0.1 ms per second).
        assert!((est.ppm() - 200).abs() <= 60, "{}", est.ppm());
        assert!((10_000.0..17_500.0).contains(&fill), "{fill}");
    }

    #[test]
    fn restart_settles_again_but_keeps_the_learnt_drift() {
        let config = DriftConfig {
            anchor_within: Some((5_000, 10_000)),
            ..DriftConfig::default()
        };
        let (mut est, log) = closed_loop(config, 7_500.0, 300.0, 5_000, 0, 300);
        let learnt = est.ppm();
        est.restart();
        // Warm-up: measurements far off are ignored, the correction holds.
        let now = log.last().expect("ran").0;
        assert_eq!(est.update(now + 20_000, 90_000), learnt);
        assert_eq!(est.update(now + 1_000_000, 90_000), learnt);
    }
}
