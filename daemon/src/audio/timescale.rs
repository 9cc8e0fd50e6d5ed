//! Time-scale modification of decoded speech, in the WSOLA family (as WebRTC's NetEq does
//! it): the jitter buffer changes its delay by playing a frame a pitch period longer
//! ([`Scale::Expand`]) or shorter ([`Scale::Accelerate`]) instead of concealing a whole
//! frame or skipping one. The [`TimeScaler`] owns one output buffer, allocated in
//! [`TimeScaler::new`]; scaling a frame allocates nothing, so it runs on the media path.
//!
//! How a frame `x` of `n` samples is scaled: the lag `L` (2.5–10 ms, less than `n / 2`)
//! whose two segments `A = x[0..L]` and `B = x[L..2L]` are the most alike (normalised
//! cross-correlation) is found; in voiced speech that is a pitch period, so `A` and `B`
//! are one period after another.
//! - **Accelerate** (`n − L` samples out): `A` and `B` are replaced by one segment that fades
//!   from `A` into `B`, then the rest of the frame: one period less.
//! - **Expand** (`n + L` out): `A`, then a segment that fades from `B` into `A`, then `B`
//!   and the rest: one period more.
//!
//! Each splice starts like the audio just before it and ends like the audio just after it,
//! so the output has no step larger than the input's largest step plus
//! `2 · peak / (L + 1)` (the linear crossfade's share of the difference between `A` and
//! `B`; nil for a periodic signal at its period): see [`TimeScaler::splice_bound`]. The first
//! and last samples of the frame are kept, so frames still join their neighbours.

/// The shortest lag tried, µs: a 400 Hz pitch period.
const MIN_LAG_US: u32 = 2_500;
/// The longest lag tried, µs: a 100 Hz pitch period. Longer would need two periods of a
/// 20 ms frame; lower voices get the best match below it (their period's fraction is
/// still a similar segment, crossfaded).
pub const MAX_LAG_US: u32 = 10_000;

/// The most lags [`TimeScaler::scale_times`] inserts into one frame.
pub const MAX_EXPAND_TIMES: usize = 8;

/// What to do with a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scale {
    /// Play it as it is.
    #[default]
    Keep,
    /// Play it a lag longer (the jitter buffer's delay grows by that much).
    Expand,
    /// Play it a lag shorter (the delay shrinks by that much).
    Accelerate,
}

/// A time-scaler for frames of at most `max_input` samples at one sample rate.
#[derive(Debug)]
pub struct TimeScaler {
    min_lag: usize,
    max_lag: usize,
    max_input: usize,
    out: Vec<f32>,
    /// Running sums of squares of the input, for the segments' energies in O(1).
    energy: Vec<f64>,
}

impl TimeScaler {
    /// A scaler for frames of up to `max_input` samples at `rate` Hz. Allocates its buffers.
    pub fn new(rate: u32, max_input: usize) -> Self {
        let samples = |us: u32| (u64::from(rate) * u64::from(us) / 1_000_000).max(1) as usize;
        let min_lag = samples(MIN_LAG_US);
        let max_lag = samples(MAX_LAG_US).max(min_lag);
        Self {
            min_lag,
            max_lag,
            max_input,
            out: Vec::with_capacity(max_input + MAX_EXPAND_TIMES * max_lag),
            energy: Vec::with_capacity(max_input + 1),
        }
    }

    /// The shortest lag a scaled frame changes length by, samples.
    pub fn min_lag(&self) -> usize {
        self.min_lag
    }

    /// The longest lag a scaled frame changes length by, samples.
    pub fn max_lag(&self) -> usize {
        self.max_lag
    }

    /// The largest step between two output samples that scaling `input` may add to the
    /// largest step already in it: `2 · peak / (min_lag + 1)` (see the module docs).
    pub fn splice_bound(&self, input: &[f32]) -> f32 {
        let peak = input.iter().fold(0f32, |m, x| m.max(x.abs()));
        2.0 * peak / (self.min_lag + 1) as f32
    }

    /// Scales `input` and returns the result, borrowed until the next call. [`Scale::Keep`]
    /// returns `input` unchanged; the others return `input.len() ± L` samples for some `L`
    /// in `min_lag..=max_lag`. A frame of two minimum lags or less, or longer than
    /// `max_input`, is returned unchanged whatever was asked.
    pub fn scale(&mut self, input: &[f32], how: Scale) -> &[f32] {
        self.scale_times(input, how, |_| 1)
    }

    /// As [`Self::scale`], but an expansion inserts its splice `times(L)` times (1 to
    /// [`MAX_EXPAND_TIMES`]) once the lag `L` is found: `input.len() + k·L` samples out.
    /// Each inserted splice fades from `B` into `A`, and `A` is followed by `B` in the
    /// input, so one splice joins the next as the first joins `B`: the same bound on the
    /// steps. For a quiet frame, where a longer stretch is not heard, so that the delay
    /// grows there in one go rather than a pitch period per frame of speech.
    pub fn scale_times(
        &mut self,
        input: &[f32],
        how: Scale,
        times: impl FnOnce(usize) -> usize,
    ) -> &[f32] {
        self.out.clear();
        let n = input.len();
        if how == Scale::Keep || n <= 2 * self.min_lag || n > self.max_input {
            self.out.extend_from_slice(input);
            return &self.out;
        }
        let lag = self.best_lag(input);
        let (a, b) = (&input[..lag], &input[lag..2 * lag]);
        // Weights strictly between 0 and 1, rising: the splice starts nearer its first
        // segment and ends nearer its second.
        let w = |i: usize| (i + 1) as f32 / (lag + 1) as f32;
        match how {
            Scale::Keep => unreachable!("handled above"),
            Scale::Accelerate => {
                self.out
                    .extend((0..lag).map(|i| a[i] * (1.0 - w(i)) + b[i] * w(i)));
                self.out.extend_from_slice(&input[2 * lag..]);
            }
            Scale::Expand => {
                self.out.extend_from_slice(a);
                for _ in 0..times(lag).clamp(1, MAX_EXPAND_TIMES) {
                    self.out
                        .extend((0..lag).map(|i| b[i] * (1.0 - w(i)) + a[i] * w(i)));
                }
                self.out.extend_from_slice(&input[lag..]);
            }
        }
        &self.out
    }

    /// The lag in `min_lag..=min(max_lag, (n - 1) / 2)` with the most alike segments.
    fn best_lag(&mut self, x: &[f32]) -> usize {
        self.energy.clear();
        self.energy.push(0.0);
        let mut sum = 0.0f64;
        for &v in x {
            sum += f64::from(v) * f64::from(v);
            self.energy.push(sum);
        }
        let e = &self.energy;
        // At least one sample stays after the splice: the frame's last is kept.
        let longest = self.max_lag.min((x.len() - 1) / 2);
        let mut best = (self.min_lag, f64::NEG_INFINITY);
        for lag in self.min_lag..=longest {
            let cross: f64 = x[..lag]
                .iter()
                .zip(&x[lag..2 * lag])
                .map(|(&p, &q)| f64::from(p) * f64::from(q))
                .sum();
            let ea = e[lag] - e[0];
            let eb = e[2 * lag] - e[lag];
            // Silence correlates with anything; a tiny floor keeps it finite and
            // prefers the shortest lag there.
            let score = cross / ((ea * eb).sqrt() + 1e-9);
            if score > best.1 + 1e-9 {
                best = (lag, score);
            }
        }
        best.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RATE: u32 = 48_000;
    const FRAME: usize = 960;

    fn sine(freq: f64, amp: f64, phase: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (amp * (std::f64::consts::TAU * freq * i as f64 / f64::from(RATE) + phase).sin())
                    as f32
            })
            .collect()
    }

    /// Harmonics of a pitch gliding around `f0` under a syllable-rate envelope, from `t0` s.
    fn speechlike(f0: f64, t0: f64, n: usize) -> Vec<f32> {
        let mut phase = 0.0f64;
        (0..n)
            .map(|i| {
                let t = t0 + i as f64 / f64::from(RATE);
                let f = f0 * (1.0 + 0.2 * (std::f64::consts::TAU * 3.0 * t).sin());
                phase += std::f64::consts::TAU * f / f64::from(RATE);
                let env = 0.2 + 0.8 * (std::f64::consts::TAU * 4.0 * t).sin().abs();
                let voiced: f64 = (1..=12).map(|k| (k as f64 * phase).sin() / k as f64).sum();
                (0.15 * env * voiced) as f32
            })
            .collect()
    }

    fn max_step(x: &[f32]) -> f32 {
        x.windows(2).fold(0f32, |m, w| m.max((w[1] - w[0]).abs()))
    }

    /// Checks the length promise and returns the lag.
    fn lag_of(scaler: &TimeScaler, n: usize, out: usize, how: Scale) -> usize {
        let lag = match how {
            Scale::Keep => {
                assert_eq!(out, n);
                return 0;
            }
            Scale::Expand => out.checked_sub(n).expect("expanded"),
            Scale::Accelerate => n.checked_sub(out).expect("accelerated"),
        };
        assert!(
            (scaler.min_lag()..=scaler.max_lag()).contains(&lag),
            "lag {lag}"
        );
        lag
    }

    #[test]
    fn lags_are_pitch_periods_at_the_rate() {
        let s = TimeScaler::new(48_000, 1000);
        assert_eq!((s.min_lag(), s.max_lag()), (120, 480));
        let s = TimeScaler::new(44_100, 1000);
        assert_eq!((s.min_lag(), s.max_lag()), (110, 441));
    }

    #[test]
    fn a_sine_loses_or_gains_exactly_its_period() {
        // 200 Hz: a 240-sample period, inside the lag range (and its double too).
        let x = sine(200.0, 0.5, 0.3, FRAME);
        let mut s = TimeScaler::new(RATE, FRAME);
        for how in [Scale::Expand, Scale::Accelerate] {
            let y = s.scale(&x, how).to_vec();
            assert_eq!(lag_of(&s, FRAME, y.len(), how) % 240, 0, "{how:?}");
            // One period more or less of the same sine: it continues as if nothing happened.
            let expected = sine(200.0, 0.5, 0.3, y.len());
            let err = y
                .iter()
                .zip(&expected)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-3, "{how:?}: off by {err}");
        }
    }

    #[test]
    fn silence_stays_silent() {
        let mut s = TimeScaler::new(RATE, FRAME);
        let y = s.scale(&[0.0; FRAME], Scale::Accelerate);
        assert_eq!(y.len(), FRAME - 120);
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn frames_too_short_or_too_long_are_kept() {
        let mut s = TimeScaler::new(RATE, FRAME);
        let short = sine(300.0, 0.5, 0.0, 200);
        assert_eq!(s.scale(&short, Scale::Expand), &short[..]);
        let long = sine(300.0, 0.5, 0.0, FRAME + 1);
        assert_eq!(s.scale(&long, Scale::Accelerate), &long[..]);
    }

    fn arb_how() -> impl Strategy<Value = Scale> {
        prop_oneof![
            Just(Scale::Keep),
            Just(Scale::Expand),
            Just(Scale::Accelerate)
        ]
    }

    proptest! {
        /// Keep is the identity; the others change the length by a lag in range, keep the
        /// frame's first and last samples (so it joins its neighbours), and add no step
        /// beyond the stated bound, whatever the input.
        #[test]
        fn any_frame_keeps_its_length_promise_and_the_splice_bound(
            x in prop::collection::vec(-1.0f32..1.0, 241..=1100),
            how in arb_how(),
        ) {
            let mut s = TimeScaler::new(RATE, 1100);
            let bound = max_step(&x) + s.splice_bound(&x) + 1e-5;
            let y = s.scale(&x, how).to_vec();
            let lag = lag_of(&s, x.len(), y.len(), how);
            if how == Scale::Keep {
                prop_assert_eq!(&y, &x);
            }
            prop_assert!(2 * lag < x.len());
            prop_assert!(max_step(&y) <= bound, "step {} > {}", max_step(&y), bound);
            // Away from the splice the frame is untouched.
            prop_assert_eq!(y.last(), x.last());
            if how != Scale::Accelerate {
                prop_assert_eq!(y.first(), x.first());
            }
        }

        /// A sine whose period is in the lag range is spliced at a period: no step larger
        /// than the sine's own (a click would be), the level unchanged.
        #[test]
        fn sines_are_spliced_without_a_click(
            freq in 100.0f64..400.0,
            amp in 0.01f64..1.0,
            phase in 0.0f64..6.3,
            how in prop_oneof![Just(Scale::Expand), Just(Scale::Accelerate)],
        ) {
            let x = sine(freq, amp, phase, FRAME);
            let mut s = TimeScaler::new(RATE, FRAME);
            let y = s.scale(&x, how).to_vec();
            lag_of(&s, FRAME, y.len(), how);
            let (sx, sy) = (max_step(&x), max_step(&y));
            // The lag is a whole number of samples, the period is not: a splice a fraction
            // of a sample off the period steps at most that much further.
            prop_assert!(sy <= sx * 1.05 + 1e-4, "step {} against the sine's {}", sy, sx);
            let peak = y.iter().fold(0f32, |m, v| m.max(v.abs()));
            prop_assert!(f64::from(peak) <= amp * 1.001 + 1e-6, "peak {}", peak);
        }

        /// Speech-like frames (voiced harmonics, gliding pitch, any point of a syllable):
        /// the splice adds at most half the largest step already there.
        #[test]
        fn speechlike_frames_are_spliced_without_a_click(
            f0 in 90.0f64..260.0,
            t0 in 0.0f64..2.0,
            how in prop_oneof![Just(Scale::Expand), Just(Scale::Accelerate)],
        ) {
            let x = speechlike(f0, t0, FRAME);
            let mut s = TimeScaler::new(RATE, FRAME);
            let y = s.scale(&x, how).to_vec();
            lag_of(&s, FRAME, y.len(), how);
            let (sx, sy) = (max_step(&x), max_step(&y));
            prop_assert!(sy <= sx * 1.5, "step {} against {}", sy, sx);
        }
    }

    proptest! {
        /// An expansion repeated `times`: the frame grows by that many lags, keeps its ends
        /// and adds no step beyond the bound of one splice, whatever the input.
        #[test]
        fn a_repeated_expansion_keeps_the_length_promise_and_the_splice_bound(
            x in prop::collection::vec(-1.0f32..1.0, 241..=1100),
            times in 1usize..=MAX_EXPAND_TIMES,
        ) {
            let mut s = TimeScaler::new(RATE, 1100);
            let bound = max_step(&x) + s.splice_bound(&x) + 1e-5;
            let y = s.scale_times(&x, Scale::Expand, |_| times).to_vec();
            let grown = y.len() - x.len();
            prop_assert_eq!(grown % times, 0);
            prop_assert!((s.min_lag()..=s.max_lag()).contains(&(grown / times)));
            prop_assert!(max_step(&y) <= bound, "step {} > {}", max_step(&y), bound);
            prop_assert_eq!(y.first(), x.first());
            prop_assert_eq!(y.last(), x.last());
        }
    }

    #[test]
    fn a_sine_expanded_several_times_gains_as_many_periods_without_a_click() {
        let x = sine(200.0, 0.5, 0.3, FRAME);
        let mut s = TimeScaler::new(RATE, FRAME);
        let y = s
            .scale_times(&x, Scale::Expand, |lag| 40 * 48 / lag)
            .to_vec();
        // 200 Hz: a 5 ms period, 240 samples, inserted 8 times (the most).
        assert_eq!(y.len(), FRAME + MAX_EXPAND_TIMES * 240);
        assert!(max_step(&y) <= max_step(&x) * 1.05 + 1e-4);
    }

    #[test]
    fn scaling_allocates_nothing_after_construction() {
        let mut s = TimeScaler::new(RATE, FRAME);
        let x = speechlike(120.0, 0.3, FRAME);
        let (out, energy) = (s.out.capacity(), s.energy.capacity());
        for how in [Scale::Expand, Scale::Accelerate, Scale::Keep] {
            s.scale(&x, how);
        }
        s.scale_times(&x, Scale::Expand, |_| MAX_EXPAND_TIMES);
        assert_eq!((s.out.capacity(), s.energy.capacity()), (out, energy));
    }
}
