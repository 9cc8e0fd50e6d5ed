//! Clock drift between two audio clocks, sans-IO: [`DriftEstimator`] watches how full a
//! queue between them is and says how much faster (or slower) than nominal the resampler
//! between them should consume, in whole ppm. The media pipeline runs two: on the receive
//! side the queue is the jitter buffer (the far side's capture clock fills it, our playback
//! clock empties it), on the send side it is the audio the capture device delivered against
//! the monotonic clock. No clock, no allocation: the caller passes the time with each
//! measurement, so the tests feed synthetic fill levels.
//!
//! The controller, per measurement:
//! - **Filter.** The fill is noisy by a device block or a tick (5–20 ms); an exponential
//!   average over [`DriftConfig::filter_us`] keeps the slow part, which is the drift.
//! - **Dead band.** Within [`DriftConfig::dead_band_us`] of the set point the error counts
//!   as zero, so a clean path (no drift, or drift too small to matter in a call) stays at a
//!   ratio of exactly 1.0 and its audio is not resampled for nothing.
//! - **PI.** The error beyond the dead band drives a proportional term (pulls the fill back)
//!   and an integral term (learns the drift itself, so the fill stays put once learnt).
//!   The gains make a critically damped loop with a time constant of about 20 s: 300 ppm
//!   of drift moves the fill by at most ~2 ms beyond the dead band while it is learnt.
//! - **Clamp.** The output stays within [`DriftConfig::max_ppm`]: a fill that moves faster
//!   than that is not drift but a stall or a restart, and is not the controller's to fix.
//! - **Set point.** Either fixed (the jitter buffer: its delay should stay mid-way between
//!   stretching and skipping) or anchored at the first settled fill (the send side, where
//!   only the rate matters); an anchored one moves with a step larger than
//!   [`Setpoint::Anchored::max_step_us`] (a device gap, an overrun), keeping what it learnt.
//!
//! ```
//! use phoned::audio::drift::{DriftConfig, DriftEstimator, Setpoint};
//!
//! let mut drift = DriftEstimator::new(DriftConfig::new(Setpoint::Fixed(10_000)));
//! // A queue whose writer runs 300 ppm fast, read through a resampler that follows the
//! // estimator, measured every 20 ms for ten minutes.
//! let (mut fill_us, mut ppm) = (10_000.0, 0);
//! for k in 0..30_000u64 {
//!     ppm = drift.update(k * 20_000, fill_us as i64);
//!     fill_us += 20_000.0 * f64::from(300 - ppm) / 1e6;
//! }
//! assert!((ppm - 300).abs() <= 2, "{ppm}");
//! assert!((fill_us - 10_000.0).abs() < 8_000.0, "{fill_us}");
//! ```

/// How the set point of the fill is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setpoint {
    /// The fill should sit here, µs.
    Fixed(i64),
    /// The fill should stay where it settled first; a jump larger than `max_step_us`
    /// between the filtered and a measured fill moves the set point with it.
    Anchored { max_step_us: i64 },
}

/// Tuning; [`DriftConfig::new`] has the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriftConfig {
    pub setpoint: Setpoint,
    /// Measurements ignored after the first (and after [`DriftEstimator::restart`]) while
    /// the queue settles, µs. Then the filter runs for [`DriftConfig::filter_us`] before
    /// the first correction.
    pub warmup_us: u64,
    /// Time constant of the fill filter, µs.
    pub filter_us: u64,
    /// Half-width of the band around the set point where the error counts as zero, µs.
    pub dead_band_us: i64,
    /// Proportional gain: ppm per ms of filtered error beyond the dead band.
    pub kp: f64,
    /// Integral gain: ppm per ms of error beyond the dead band per second.
    pub ki: f64,
    /// Largest correction either way, ppm.
    pub max_ppm: i32,
}

impl DriftConfig {
    /// The defaults around `setpoint`: a 2 s filter, ±6 ms dead band, ±1000 ppm, 2 s of
    /// warm-up, and gains for a critically damped loop with ω = 0.05 rad/s (a correction
    /// of `ppm` moves the fill by `ppm / 1000` ms per second, so the loop is
    /// `s² + kp/1000·s + ki/1000`).
    pub fn new(setpoint: Setpoint) -> Self {
        Self {
            setpoint,
            warmup_us: 2_000_000,
            filter_us: 2_000_000,
            dead_band_us: 6_000,
            kp: 100.0,
            ki: 2.5,
            max_ppm: 1_000,
        }
    }
}

/// The filter's state once a measurement has been taken after the warm-up.
#[derive(Clone, Copy, Debug)]
struct Settled {
    filtered_us: f64,
    setpoint_us: f64,
    last_us: u64,
    /// The filter has run for a time constant from here on: no correction before.
    acting_us: u64,
}

/// One queue's drift controller; see the module docs.
#[derive(Clone, Debug)]
pub struct DriftEstimator {
    config: DriftConfig,
    /// When the current warm-up began.
    since_us: Option<u64>,
    settled: Option<Settled>,
    /// The learnt drift, ppm.
    integral: f64,
    ppm: i32,
}

impl DriftEstimator {
    pub fn new(config: DriftConfig) -> Self {
        Self {
            config,
            since_us: None,
            settled: None,
            integral: 0.0,
            ppm: 0,
        }
    }

    /// Takes the queue's fill (µs of audio, any offset) measured at `now_us` and returns the
    /// correction in ppm: positive when the queue fills up, so its reader should consume
    /// that much faster than nominal (a resampler's ratio × `1 − ppm / 10⁶`).
    pub fn update(&mut self, now_us: u64, fill_us: i64) -> i32 {
        let since = *self.since_us.get_or_insert(now_us);
        if now_us.saturating_sub(since) < self.config.warmup_us {
            return self.ppm;
        }
        let fill = fill_us as f64;
        let Some(s) = &mut self.settled else {
            let setpoint_us = match self.config.setpoint {
                Setpoint::Fixed(at) => at as f64,
                Setpoint::Anchored { .. } => fill,
            };
            self.settled = Some(Settled {
                filtered_us: fill,
                setpoint_us,
                last_us: now_us,
                acting_us: now_us + self.config.filter_us,
            });
            return self.ppm;
        };
        if let Setpoint::Anchored { max_step_us } = self.config.setpoint
            && (fill - s.filtered_us).abs() > max_step_us as f64
        {
            // Not drift: the queue jumped. Follow it, keep what was learnt.
            s.setpoint_us += fill - s.filtered_us;
            s.filtered_us = fill;
            s.last_us = now_us;
            return self.ppm;
        }
        // A long pause between measurements is not a long step of the filter.
        let dt_us = now_us.saturating_sub(s.last_us).min(self.config.filter_us) as f64;
        s.last_us = now_us;
        s.filtered_us += (fill - s.filtered_us) * dt_us / (self.config.filter_us as f64 + dt_us);
        if now_us < s.acting_us {
            // One noisy first measurement is not the fill yet.
            return self.ppm;
        }
        let error = s.filtered_us - s.setpoint_us;
        let band = self.config.dead_band_us as f64;
        let beyond_ms = (error.abs() - band).max(0.0).copysign(error) / 1000.0;
        let max = f64::from(self.config.max_ppm);
        self.integral = (self.integral + self.config.ki * beyond_ms * dt_us / 1e6).clamp(-max, max);
        let out = (self.integral + self.config.kp * beyond_ms).clamp(-max, max);
        // Whole ppm: the ratio changes rarely, and a decayed integral ends at exactly 1.0.
        self.ppm = out.round() as i32;
        self.ppm
    }

    /// The correction now, ppm (see [`DriftEstimator::update`]).
    pub fn ppm(&self) -> i32 {
        self.ppm
    }

    /// The queue was emptied or refilled from scratch (the far side restarted its stream):
    /// forget the filtered fill and settle again, but keep the learnt drift, which belongs
    /// to the clocks, not to the queue.
    pub fn restart(&mut self) {
        self.since_us = None;
        self.settled = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK_US: u64 = 20_000;

    /// A queue between a writer `drift_ppm` fast and a reader that follows the estimator,
    /// measured every 20 ms with a ±`noise_us / 2` zero-mean staircase (a device block's worth), for
    /// `seconds`. Returns the estimator and the fill (µs, noise-free) at every measurement.
    fn closed_loop(
        config: DriftConfig,
        start_us: f64,
        drift_ppm: f64,
        noise_us: i64,
        seconds: u64,
    ) -> (DriftEstimator, Vec<(u64, f64, i32)>) {
        let mut est = DriftEstimator::new(config);
        let mut fill = start_us;
        let mut log = Vec::new();
        for k in 0..seconds * 1_000_000 / TICK_US {
            let now = k * TICK_US;
            let noise = ((k % 4) as i64 * 2 - 3) * noise_us / 6;
            let ppm = est.update(now, fill as i64 + noise);
            // The writer adds 20 ms · (1 + drift); the reader takes 20 ms · (1 + ppm).
            fill += TICK_US as f64 * (drift_ppm - f64::from(ppm)) / 1e6;
            log.push((now, fill, ppm));
        }
        (est, log)
    }

    #[test]
    fn a_clean_queue_inside_the_dead_band_stays_at_exactly_one() {
        for start in [5_000.0, 10_000.0, 15_900.0] {
            let (est, log) = closed_loop(
                DriftConfig::new(Setpoint::Fixed(10_000)),
                start,
                0.0,
                5_000,
                600,
            );
            assert!(log.iter().all(|&(_, _, ppm)| ppm == 0), "from {start}");
            assert_eq!(est.ppm(), 0);
        }
    }

    #[test]
    fn drift_is_learnt_and_the_fill_stays_near_the_set_point() {
        for drift in [300.0, -300.0, 800.0, -50.0] {
            let (est, log) = closed_loop(
                DriftConfig::new(Setpoint::Fixed(10_000)),
                10_000.0,
                drift,
                5_000,
                600,
            );
            // The 6 ms dead band, plus what the warm-up and the filter let through before
            // the loop acts (4 s of drift) and its overshoot while it learns: 10 ms at
            // 300 ppm.
            let worst = log.iter().map(|l| (l.1 - 10_000.0).abs()).fold(0.0, f64::max);
            assert!(worst < 7_000.0 + 10.0 * drift.abs(), "{drift} ppm: fill off by {worst} µs");
            // After the first three minutes, the correction is the drift within a few ppm.
            for &(now, _, ppm) in log.iter().filter(|l| l.0 >= 180_000_000) {
                assert!(
                    (f64::from(ppm) - drift).abs() <= 8.0,
                    "{drift} ppm: {ppm} at {now} µs"
                );
            }
            assert!((f64::from(est.ppm()) - drift).abs() <= 2.0);
        }
    }

    #[test]
    fn a_fill_off_its_set_point_is_brought_back_and_the_ratio_returns_to_one() {
        let (_, log) = closed_loop(
            DriftConfig::new(Setpoint::Fixed(10_000)),
            19_000.0,
            0.0,
            0,
            600,
        );
        let &(_, fill, ppm) = log.last().expect("ran");
        assert!(fill < 16_100.0, "{fill}");
        assert_eq!(ppm, 0);
    }

    #[test]
    fn drift_beyond_the_clamp_saturates_it() {
        let (est, log) =
            closed_loop(DriftConfig::new(Setpoint::Fixed(0)), 0.0, 3_000.0, 0, 300);
        assert_eq!(est.ppm(), 1_000);
        assert!(log.iter().all(|l| l.2.abs() <= 1_000));
    }

    #[test]
    fn an_anchored_set_point_follows_a_step_and_keeps_the_learnt_drift() {
        let config = DriftConfig::new(Setpoint::Anchored {
            max_step_us: 40_000,
        });
        let mut est = DriftEstimator::new(config);
        let mut fill = 123_456.0; // any offset: anchored where it settles
        let mut step = 0.0;
        for k in 0..(300 * 1_000_000 / TICK_US) {
            let now = k * TICK_US;
            if k == 200 * 1_000_000 / TICK_US {
                step = -250_000.0; // the device stopped for a quarter second
                let learnt = est.ppm();
                assert!((learnt - 200).abs() <= 5, "{learnt}");
            }
            let ppm = est.update(now, (fill + step) as i64);
            fill += TICK_US as f64 * (200.0 - f64::from(ppm)) / 1e6;
        }
        assert!((est.ppm() - 200).abs() <= 5, "{}", est.ppm());
        assert!((fill - 123_456.0).abs() < 9_000.0, "{fill}");
    }

    #[test]
    fn restart_settles_again_but_keeps_the_learnt_drift() {
        let (mut est, _) = closed_loop(
            DriftConfig::new(Setpoint::Fixed(10_000)),
            10_000.0,
            300.0,
            0,
            300,
        );
        let learnt = est.ppm();
        est.restart();
        // Warm-up: measurements far off are ignored, the correction holds.
        assert_eq!(est.update(400_000_000, 90_000), learnt);
        assert_eq!(est.update(401_000_000, 90_000), learnt);
    }
}
