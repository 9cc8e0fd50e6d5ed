//! Rate conversion between a device's rate and the network's 48 kHz, in the frames that
//! Opus encodes (20 ms, 960 samples, or with [`ToNetwork::with_frame`] and
//! [`FromNetwork::with_frame`] 10 ms, 480): [`ToNetwork`] on the capture path,
//! [`FromNetwork`] on the playback path. Both pass samples straight through when the device already runs at
//! 48 kHz. They run on an ordinary thread or task that drains or fills a device ring —
//! never inside a device callback.
//!
//! [`FromNetwork`] uses rubato's asynchronous resampler, whose ratio can be nudged while
//! it runs: [`FromNetwork::set_drift_ppm`] makes it consume that many ppm faster (or,
//! negative, slower) than nominal, which is how the media pipeline follows the far side's
//! clock (`audio/drift.rs`) without dropping or inserting audio. So it resamples even when
//! the device runs at 48 kHz: a 48 kHz sound card on its own crystal still drifts against
//! the far side's.
//! - **Device at another rate**: windowed-sinc interpolation, 64 taps (Blackman-Harris²,
//!   rubato's automatic cutoff), 128 sub-sample phases linearly interpolated: ~25 µs per
//!   20 ms frame (`docs/benchmarks.md`), a 64-tap filter's delay.
//! - **Device at 48 kHz**: the ratio is 1 ± at most 1000 ppm, so there is nothing to
//!   filter out, only a sub-sample shift to follow: cubic interpolation, ~7 µs per frame.
//!   At a ratio of exactly 1.0 it passes the samples through, one sample late.
//!
//! [`ToNetwork`] is not steered (the capture ring is drained every tick, so no queue grows
//! there; see `docs/architecture.md`), and keeps rubato's synchronous FFT resampler, the
//! cheapest (~4 µs per frame), or none at 48 kHz. It must produce a frame as soon as its
//! last sample arrives: an asynchronous resampler needs a few samples beyond it, which
//! with device blocks aligned to frames costs a whole block (measured: +20 ms end to end
//! with 20 ms blocks).
//!
//! The delay is rubato's `output_delay()`; [`ToNetwork::delay`] and [`FromNetwork::delay`]
//! return it, and the tests measure it with an impulse. Measured (= reported) figures:
//!
//! | device rate | capture delay (48 kHz samples) | playback delay (device samples) |
//! | --- | --- | --- |
//! | 48 kHz | 0 | 2 reported, 1 measured (0.02 ms) |
//! | 44.1 kHz | 160 (3.3 ms) | 29 (0.7 ms) |
//! | 22.05 kHz | 160 (3.3 ms) | 14 (0.6 ms) |
//! | 16 kHz | 160 (3.3 ms) | 10 (0.6 ms) |
//! | 8 kHz | 162 (3.4 ms) | 5 (0.6 ms) |
//! | 96 kHz | 160 (3.3 ms) | 64 (0.7 ms) |
//!
//! (The FFT resampler on the playback side before drift correction cost 3.3 ms at every
//! rate.) [`FromNetwork`] also puts the few samples its interpolation holds back from the
//! first frame (3 at 48 kHz) as silence before it, so that every frame comes out whole
//! and a playback queue of one device block is not a few samples short of it;
//! [`FromNetwork::delay`] counts them once the first frame is out. On top of that, [`ToNetwork`] holds input until a whole frame can be produced
//! (up to 20 ms, inherent in framing) and [`FromNetwork`] none.
//!
//! ```
//! use phoned::audio::resample::{FRAME, FromNetwork, ToNetwork};
//!
//! let mut up = ToNetwork::new(44_100)?;
//! up.push(&vec![0.0; 882]); // 20 ms from the device
//! let mut frame = [0f32; FRAME];
//! while up.pop_frame(&mut frame)? { /* encode `frame` */ }
//!
//! let mut down = FromNetwork::new(44_100)?;
//! let device_samples: &[f32] = down.process(&frame)?; // about 882 samples
//! # let _ = device_samples;
//! # Ok::<(), phoned::audio::resample::ResampleError>(())
//! ```

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Adjustable, Async, Fft, FixedAsync, FixedSync, PolynomialDegree, Resampler,
    SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use thiserror::Error;

/// The rate every media frame is encoded at.
pub const NETWORK_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`NETWORK_RATE`].
pub const FRAME: usize = 960;

/// The largest drift correction either way, ppm: far beyond any crystal (±100 ppm is a bad
/// one), so more is a stall or a restart, not drift.
pub const MAX_DRIFT_PPM: i32 = 1_000;

/// The smallest common divisor of the device rate and 48 kHz we accept. rubato's FFT
/// resampler (capture) works in blocks of `rate / gcd` samples; with a divisor of 50 or
/// more such a block is at most 20 ms, so its delay stays small. Every standard rate (8 k,
/// 11.025 k, 16 k, 22.05 k, 32 k, 44.1 k, 88.2 k, 96 k, 192 k …) qualifies.
const MIN_GCD: u32 = 50;

/// Taps of the windowed sinc between a device at another rate and 48 kHz: each halving
/// nearly halves the cost; 64 keeps the passband flat over the voice band Opus carries.
const SINC_TAPS: usize = 64;

#[derive(Debug, Error)]
pub enum ResampleError {
    #[error(
        "cannot resample {rate} Hz to or from 48 kHz: use a standard rate (8000, 16000, 44100, 48000 …)"
    )]
    UnsupportedRate { rate: u32 },
    #[error("cannot set up resampling {from} Hz -> {to} Hz: {source}")]
    Construct {
        from: u32,
        to: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },
    #[error("resampling failed: {0}")]
    Process(#[from] rubato::ResampleError),
    #[error("resampling buffer: {0}")]
    Buffer(#[from] rubato::audioadapter_buffers::SizeError),
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// An adjustable resampler from `from` to `to` Hz with one side fixed at `chunk` frames,
/// whose ratio can move by [`MAX_DRIFT_PPM`] (with room to spare) either way.
fn resampler(
    from: u32,
    to: u32,
    chunk: usize,
    fixed: FixedAsync,
) -> Result<Async<f32>, ResampleError> {
    let device = if from == NETWORK_RATE { to } else { from };
    if device == 0 || gcd(device, NETWORK_RATE) < MIN_GCD {
        return Err(ResampleError::UnsupportedRate { rate: device });
    }
    let ratio = f64::from(to) / f64::from(from);
    let max_relative = 1.0 + 2.0 * f64::from(MAX_DRIFT_PPM) / 1e6;
    let made = if from == to {
        Async::new_poly(
            ratio,
            max_relative,
            PolynomialDegree::Cubic,
            chunk,
            1,
            fixed,
        )
    } else {
        let sinc = SincInterpolationParameters::new(SINC_TAPS, WindowFunction::BlackmanHarris2)
            .oversampling_factor(128)
            .interpolation(SincInterpolationType::Linear);
        Async::new_sinc(ratio, max_relative, &sinc, chunk, 1, fixed)
    };
    made.map_err(|source| ResampleError::Construct { from, to, source })
}

/// Sets `r` to consume `ppm` faster than nominal: fewer output samples per input sample.
fn set_drift(r: &mut Async<f32>, ppm: i32) -> Result<(), ResampleError> {
    let ppm = ppm.clamp(-MAX_DRIFT_PPM, MAX_DRIFT_PPM);
    // Ramped over the next chunk, so the change is a glide, not a step in pitch.
    r.set_resample_ratio_relative(1.0 - f64::from(ppm) / 1e6, true)?;
    Ok(())
}

/// An FFT resampler from `from` to `to` Hz with one side fixed at `chunk` frames, or `None`
/// when the rates are equal.
fn fft(
    from: u32,
    to: u32,
    chunk: usize,
    fixed: FixedSync,
) -> Result<Option<Fft<f32>>, ResampleError> {
    let device = if from == NETWORK_RATE { to } else { from };
    if device == 0 || gcd(device, NETWORK_RATE) < MIN_GCD {
        return Err(ResampleError::UnsupportedRate { rate: device });
    }
    if from == to {
        return Ok(None);
    }
    Fft::new(from as usize, to as usize, chunk, 1, fixed)
        .map(Some)
        .map_err(|source| ResampleError::Construct { from, to, source })
}

/// Capture path: device-rate mono samples in, 48 kHz frames out (960 samples, or what
/// [`ToNetwork::with_frame`] says).
pub struct ToNetwork {
    fft: Option<Fft<f32>>,
    /// Samples per frame at 48 kHz.
    frame: usize,
    /// Device samples not yet resampled.
    pending: Vec<f32>,
}

impl ToNetwork {
    /// 20 ms frames from a device at `device_rate`.
    pub fn new(device_rate: u32) -> Result<ToNetwork, ResampleError> {
        Self::with_frame(device_rate, FRAME)
    }

    /// Frames of `frame` samples (at 48 kHz) from a device at `device_rate`.
    pub fn with_frame(device_rate: u32, frame: usize) -> Result<ToNetwork, ResampleError> {
        let fft = fft(device_rate, NETWORK_RATE, frame, FixedSync::Output)?;
        let capacity = fft.as_ref().map_or(frame, |f| f.input_frames_max()) * 4;
        Ok(ToNetwork {
            fft,
            frame,
            pending: Vec::with_capacity(capacity),
        })
    }

    /// Samples per frame at 48 kHz.
    pub fn frame(&self) -> usize {
        self.frame
    }

    /// Queues device samples (any amount).
    pub fn push(&mut self, samples: &[f32]) {
        self.pending.extend_from_slice(samples);
    }

    /// Writes the next frame into `frame` (a frame long) if enough input has been pushed;
    /// returns whether it did. Call until it returns `false`.
    pub fn pop_frame(&mut self, frame: &mut [f32]) -> Result<bool, ResampleError> {
        let n = self.frame;
        let frame = &mut frame[..n];
        let used = match &mut self.fft {
            None => {
                if self.pending.len() < n {
                    return Ok(false);
                }
                frame.copy_from_slice(&self.pending[..n]);
                n
            }
            Some(fft) => {
                let need = fft.input_frames_next();
                if self.pending.len() < need {
                    return Ok(false);
                }
                let input = InterleavedSlice::new(&self.pending[..need], 1, need)?;
                let mut output = InterleavedSlice::new_mut(frame, 1, n)?;
                let (read, _written) = fft.process_into_buffer(&input, &mut output, None)?;
                read
            }
        };
        self.pending.drain(..used);
        Ok(true)
    }

    /// Device samples queued but not yet in a frame.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// The resampler's delay in 48 kHz samples (0 when passing through).
    pub fn delay(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Forgets queued input and filter state, e.g. between calls.
    pub fn reset(&mut self) {
        self.pending.clear();
        if let Some(f) = &mut self.fft {
            f.reset();
        }
    }
}

/// Playback path: 48 kHz frames in (960 samples, or what [`FromNetwork::with_frame`]
/// says), device-rate mono samples out.
pub struct FromNetwork {
    resampler: Async<f32>,
    frame: usize,
    out: Vec<f32>,
    drift_ppm: i32,
    /// Device samples in a frame, rounded down.
    nominal: usize,
    /// The next frame is the first since a start or a reset.
    first: bool,
    /// The silence put before the first frame.
    lead: usize,
}

impl FromNetwork {
    /// 20 ms frames to a device at `device_rate`.
    pub fn new(device_rate: u32) -> Result<FromNetwork, ResampleError> {
        Self::with_frame(device_rate, FRAME)
    }

    /// Frames of `frame` samples (at 48 kHz) to a device at `device_rate`.
    pub fn with_frame(device_rate: u32, frame: usize) -> Result<FromNetwork, ResampleError> {
        let resampler = resampler(NETWORK_RATE, device_rate, frame, FixedAsync::Input)?;
        let nominal = frame * device_rate as usize / NETWORK_RATE as usize;
        let capacity = resampler.output_frames_max().max(nominal) + nominal / 8;
        Ok(FromNetwork {
            resampler,
            frame,
            out: vec![0.0; capacity],
            drift_ppm: 0,
            nominal,
            first: true,
            lead: 0,
        })
    }

    /// Resamples one frame (a frame long); returns this frame's device-rate samples
    /// (`device_rate` × the frame's duration on average, less by the drift correction;
    /// the count varies by a sample or so from frame to frame).
    ///
    /// The first frame after a start or a reset comes out a few samples short (what the
    /// interpolation holds back until the next); it is preceded by as much silence, so
    /// that it comes out whole. (Otherwise a playback queue kept at one device block
    /// would always be those few samples short of it, and hold a whole frame more than it
    /// needs.)
    pub fn process(&mut self, frame: &[f32]) -> Result<&[f32], ResampleError> {
        let input = InterleavedSlice::new(&frame[..self.frame], 1, self.frame)?;
        let reserve = self.nominal / 8;
        let cap = self.out.len() - reserve;
        let mut output = InterleavedSlice::new_mut(&mut self.out[..cap], 1, cap)?;
        let (_read, written) = self
            .resampler
            .process_into_buffer(&input, &mut output, None)?;
        let pad = if std::mem::take(&mut self.first) {
            self.lead = self.nominal.saturating_sub(written).min(reserve);
            self.lead
        } else {
            0
        };
        self.out.copy_within(..written, pad);
        self.out[..pad].fill(0.0);
        Ok(&self.out[..pad + written])
    }

    /// The delay in device samples: the filter's, and the silence put before the first
    /// frame (once it is out: a sample or two).
    pub fn delay(&self) -> usize {
        self.resampler.output_delay() + self.lead
    }

    /// Consumes 48 kHz samples `ppm` faster than nominal (fewer device samples per frame),
    /// clamped to ±[`MAX_DRIFT_PPM`]: for a far side whose clock is `ppm` faster than the
    /// playback device's.
    pub fn set_drift_ppm(&mut self, ppm: i32) -> Result<(), ResampleError> {
        if ppm != self.drift_ppm {
            set_drift(&mut self.resampler, ppm)?;
            self.drift_ppm = ppm;
        }
        Ok(())
    }

    /// Forgets filter state, e.g. between calls.
    pub fn reset(&mut self) {
        self.resampler.reset();
        self.drift_ppm = 0;
        self.first = true;
    }
}

#[cfg(test)]
mod tests {
    use std::f32::consts::TAU;

    use super::*;

    fn tone(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.5 * (TAU * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Power of `freq` in `x` (Goertzel), normalised so a full-length sine of amplitude `a`
    /// gives about `a² / 4`.
    fn goertzel(x: &[f32], freq: f32, rate: u32) -> f32 {
        let w = TAU * freq / rate as f32;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        power / (x.len() * x.len()) as f32
    }

    fn all_frames(up: &mut ToNetwork) -> Vec<f32> {
        let mut out = Vec::new();
        let mut frame = [0f32; FRAME];
        while up.pop_frame(&mut frame).expect("resample") {
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn a_1khz_tone_keeps_its_frequency_from_44k1_to_48k() {
        let mut up = ToNetwork::new(44_100).expect("44.1 kHz is supported");
        let input = tone(1000.0, 44_100, 44_100);
        // Pushed in device-sized pieces, as a capture ring would deliver it.
        for chunk in input.chunks(441) {
            up.push(chunk);
        }
        let out = all_frames(&mut up);
        assert!(out.len() >= 47 * FRAME, "{} samples out", out.len());
        let steady = &out[FRAME..]; // past the filter's start-up
        let at_1k = goertzel(steady, 1000.0, 48_000);
        // 1088 Hz is where the tone would land if the rate were not converted.
        for other in [900.0, 1088.4, 1100.0, 2000.0] {
            let p = goertzel(steady, other, 48_000);
            assert!(at_1k > 1000.0 * p, "1 kHz {at_1k} vs {other} Hz {p}");
        }
        assert!((at_1k - 0.0625).abs() < 0.01, "amplitude kept: {at_1k}");
    }

    #[test]
    fn a_1khz_tone_keeps_its_frequency_from_48k_to_44k1() {
        let mut down = FromNetwork::new(44_100).expect("supported");
        let input = tone(1000.0, 48_000, 48_000);
        let mut out = Vec::new();
        for frame in input.chunks_exact(FRAME) {
            let frame: &[f32; FRAME] = frame.try_into().expect("960 samples");
            out.extend_from_slice(down.process(frame).expect("resample"));
        }
        // One second in, one second out, less the few samples the resampler holds back
        // until its next frame (the long-run rate is exact: see below).
        assert!((44_098..=44_100).contains(&out.len()), "{}", out.len());
        let steady = &out[FRAME..];
        let at_1k = goertzel(steady, 1000.0, 44_100);
        for other in [918.75, 900.0, 1100.0] {
            assert!(
                at_1k > 1000.0 * goertzel(steady, other, 44_100),
                "{other} Hz"
            );
        }
    }

    #[test]
    fn matching_rates_pass_samples_through_unchanged_or_one_sample_late() {
        let input: Vec<f32> = (0..2500).map(|i| i as f32 / 2500.0).collect();
        let mut up = ToNetwork::new(48_000).expect("ok");
        assert_eq!(up.delay(), 0);
        up.push(&input);
        let out = all_frames(&mut up);
        assert_eq!(out, input[..2 * FRAME]);
        assert_eq!(up.queued(), 2500 - 2 * FRAME);

        // Playback is resampled at 48 kHz too, to follow the far clock; at a ratio of
        // exactly 1.0 the cubic interpolation lands on the input samples, one sample late
        // (rubato reports 2: half the cubic's four points), after the three samples of
        // silence that make up for the three it holds back.
        let delay = 4;
        let mut down = FromNetwork::new(48_000).expect("ok");
        let mut out = Vec::new();
        for frame in input.chunks_exact(FRAME) {
            let frame: &[f32; FRAME] = frame.try_into().expect("960");
            out.extend_from_slice(down.process(frame).expect("ok"));
        }
        assert!(down.delay().abs_diff(delay) <= 1, "{}", down.delay());
        // Whole frames: the silence made up for what the interpolation holds back.
        assert_eq!(out.len(), 2 * FRAME);
        for (i, (got, want)) in out[delay..].iter().zip(&input).enumerate() {
            assert!(
                (got - want).abs() < 1e-6,
                "playback sample {i}: {got} != {want}"
            );
        }
    }

    #[test]
    fn a_drift_correction_changes_the_rate_by_its_ppm_and_keeps_the_tone_whole() {
        for rate in [48_000u32, 44_100] {
            for ppm in [500i32, -500] {
                // 100 s of a 1 kHz tone at 48 kHz, played `ppm` faster than nominal.
                let mut down = FromNetwork::new(rate).expect("ok");
                down.set_drift_ppm(ppm).expect("in range");
                let input = tone(1000.0, 48_000, 48_000);
                let (mut total, mut last) = (0usize, Vec::new());
                for second in 0..100 {
                    for frame in input.chunks_exact(FRAME) {
                        let frame: &[f32; FRAME] = frame.try_into().expect("960");
                        let out = down.process(frame).expect("ok");
                        total += out.len();
                        if second == 99 {
                            last.extend_from_slice(out);
                        }
                    }
                }
                // 100 s · rate · ppm fewer (or more) samples, to within the filter's delay.
                let expected = f64::from(rate) * 100.0 * (1.0 - f64::from(ppm) / 1e6);
                assert!(
                    (total as f64 - expected).abs() <= 2.0 * down.delay() as f64 + 2.0,
                    "{rate} Hz at {ppm} ppm: {total} samples, expected {expected}"
                );
                // The end is still a clean 1 kHz tone at its level (500 ppm shift it by
                // 0.5 Hz, which 100 ms cannot tell apart).
                let last = &last[last.len() - rate as usize / 10..];
                let at_1k = goertzel(last, 1000.0, rate);
                assert!((at_1k - 0.0625).abs() < 0.01, "{rate} {ppm}: {at_1k}");
                for other in [900.0, 1100.0, 2000.0] {
                    assert!(at_1k > 1000.0 * goertzel(last, other, rate), "{other} Hz");
                }
            }
        }
    }

    #[test]
    fn changing_the_correction_mid_stream_makes_no_click() {
        // The correction moves every frame between +1000 and −1000 ppm: the output stays a
        // sine, its samples never step further than the tone's own slope allows.
        for rate in [48_000u32, 44_100] {
            let mut down = FromNetwork::new(rate).expect("ok");
            let input = tone(1000.0, 48_000, 48_000 * 2);
            let mut out = Vec::new();
            for (i, frame) in input.chunks_exact(FRAME).enumerate() {
                let frame: &[f32; FRAME] = frame.try_into().expect("960");
                down.set_drift_ppm(if i % 2 == 0 { 1000 } else { -1000 })
                    .expect("in range");
                out.extend_from_slice(down.process(frame).expect("ok"));
            }
            // A ±0.5 sine at 1 kHz moves at most 0.5 · 2π · 1000 / rate per sample.
            let slope = 0.5 * std::f32::consts::TAU * 1000.0 / rate as f32;
            let steepest = out[FRAME..]
                .windows(2)
                .map(|w| (w[1] - w[0]).abs())
                .fold(0.0, f32::max);
            assert!(steepest < slope * 1.05, "{rate}: {steepest}");
        }
    }

    #[test]
    fn every_frame_is_exactly_20_ms_and_the_rate_is_exact_over_time() {
        for rate in [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 96_000] {
            let mut up = ToNetwork::new(rate).expect("standard rate");
            up.push(&vec![0.1; rate as usize * 2]);
            let frames = all_frames(&mut up).len() / FRAME;
            // Two seconds in; all but the resampler's input look-ahead comes out.
            assert!((98..=100).contains(&frames), "{rate}: {frames} frames");

            // The output side varies per frame and lags by part of an FFT block, but never
            // drifts: after 2 s and after 20 s it is short by the same few samples.
            let mut down = FromNetwork::new(rate).expect("standard rate");
            let (mut total, mut frames) = (0, 0);
            for seconds in [2, 20] {
                while frames < seconds * 50 {
                    total += down.process(&[0.0; FRAME]).expect("ok").len();
                    frames += 1;
                }
                let expected = rate as usize * seconds;
                assert!(
                    total <= expected && expected - total <= 2 * down.delay(),
                    "{rate} Hz after {seconds} s: {total} samples"
                );
            }
        }
    }

    /// Position of the largest absolute sample.
    fn peak(x: &[f32]) -> usize {
        x.iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map_or(0, |(i, _)| i)
    }

    #[test]
    fn measured_delay_matches_the_reported_one() {
        for rate in [8_000u32, 16_000, 22_050, 44_100, 96_000] {
            // Capture path: an impulse at device sample `at` should come out at
            // `at · 48000 / rate + delay`.
            let at = rate as usize / 10;
            let mut impulse = vec![0.0f32; rate as usize / 2];
            impulse[at] = 1.0;
            let mut up = ToNetwork::new(rate).expect("ok");
            up.push(&impulse);
            let out = all_frames(&mut up);
            let expected = at * 48_000 / rate as usize + up.delay();
            let got = peak(&out);
            assert!(
                got.abs_diff(expected) <= 1,
                "{rate} up: peak {got}, expected {expected}"
            );

            // Playback path, the same in reverse.
            let at = 4800;
            let mut impulse = vec![0.0f32; 24_000];
            impulse[at] = 1.0;
            let mut down = FromNetwork::new(rate).expect("ok");
            let mut out = Vec::new();
            for frame in impulse.chunks_exact(FRAME) {
                let frame: &[f32; FRAME] = frame.try_into().expect("960");
                out.extend_from_slice(down.process(frame).expect("ok"));
            }
            let expected = at * rate as usize / 48_000 + down.delay();
            let got = peak(&out);
            assert!(
                got.abs_diff(expected) <= 1,
                "{rate} down: peak {got}, expected {expected}"
            );
        }
    }

    #[test]
    fn reported_delays_are_the_documented_ones() {
        let up = |r| ToNetwork::new(r).expect("ok").delay();
        let down = |r| FromNetwork::new(r).expect("ok").delay();
        assert_eq!(
            [up(44_100), up(22_050), up(16_000), up(8_000), up(96_000)],
            [160, 160, 160, 162, 160]
        );
        assert_eq!(
            [
                down(44_100),
                down(22_050),
                down(16_000),
                down(8_000),
                down(96_000)
            ],
            [29, 14, 10, 5, 64]
        );
    }

    #[test]
    fn odd_rates_are_refused_with_a_typed_error() {
        for rate in [0, 44_101, 5_512] {
            assert!(matches!(
                ToNetwork::new(rate),
                Err(ResampleError::UnsupportedRate { rate: r }) if r == rate
            ));
            assert!(matches!(
                FromNetwork::new(rate),
                Err(ResampleError::UnsupportedRate { .. })
            ));
        }
    }

    #[test]
    fn reset_forgets_queued_input() {
        let mut up = ToNetwork::new(44_100).expect("ok");
        up.push(&[0.5; 500]);
        up.reset();
        assert_eq!(up.queued(), 0);
    }
}
