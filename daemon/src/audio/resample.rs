//! Rate conversion between a device's rate and the network's 48 kHz, in the 20 ms frames
//! (960 samples) that Opus encodes: [`ToNetwork`] on the capture path, [`FromNetwork`] on
//! the playback path. Both pass samples straight through when the device already runs at
//! 48 kHz. They run on an ordinary thread or task that drains or fills a device ring —
//! never inside a device callback.
//!
//! Both use rubato's synchronous FFT resampler: device and network rates are fixed, so no
//! ratio adjustment is needed (clock drift between two devices is the jitter buffer's
//! business), and it is the cheapest rubato resampler (~4 µs per 10 ms, stack notes §6).
//! Its algorithmic delay is half its FFT block, which rubato reports as
//! `output_delay()`; [`ToNetwork::delay`] and [`FromNetwork::delay`] return it, and the
//! tests measure it with an impulse. Measured (= reported) figures:
//!
//! | device rate | capture delay (48 kHz samples) | playback delay (device samples) |
//! | --- | --- | --- |
//! | 48 kHz | 0 | 0 |
//! | 44.1 kHz, 22.05 kHz | 160 (3.3 ms) | 147 / 73 (3.3 ms) |
//! | 16 kHz | 160 (3.3 ms) | 53 (3.3 ms) |
//! | 8 kHz | 162 (3.4 ms) | 27 (3.4 ms) |
//! | 96 kHz | 160 (3.3 ms) | 320 (3.3 ms) |
//!
//! On top of that, [`ToNetwork`] holds input until a whole frame can be produced (up to
//! 20 ms, inherent in framing) and [`FromNetwork`] none.
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
use rubato::{Fft, FixedSync, Resampler};
use thiserror::Error;

/// The rate every media frame is encoded at.
pub const NETWORK_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`NETWORK_RATE`].
pub const FRAME: usize = 960;

/// The smallest common divisor of the device rate and 48 kHz we accept. rubato's FFT
/// resampler works in blocks of `rate / gcd` samples; with a divisor of 50 or more such a
/// block is at most 20 ms, so its delay stays small. Every standard rate (8 k, 11.025 k,
/// 16 k, 22.05 k, 32 k, 44.1 k, 88.2 k, 96 k, 192 k …) qualifies.
const MIN_GCD: u32 = 50;

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

/// Capture path: device-rate mono samples in, 48 kHz 960-sample frames out.
pub struct ToNetwork {
    fft: Option<Fft<f32>>,
    /// Device samples not yet resampled.
    pending: Vec<f32>,
}

impl ToNetwork {
    pub fn new(device_rate: u32) -> Result<ToNetwork, ResampleError> {
        let fft = fft(device_rate, NETWORK_RATE, FRAME, FixedSync::Output)?;
        let capacity = fft.as_ref().map_or(FRAME, |f| f.input_frames_max()) * 4;
        Ok(ToNetwork {
            fft,
            pending: Vec::with_capacity(capacity),
        })
    }

    /// Queues device samples (any amount).
    pub fn push(&mut self, samples: &[f32]) {
        self.pending.extend_from_slice(samples);
    }

    /// Writes the next 20 ms frame into `frame` if enough input has been pushed; returns
    /// whether it did. Call until it returns `false`.
    pub fn pop_frame(&mut self, frame: &mut [f32; FRAME]) -> Result<bool, ResampleError> {
        let used = match &mut self.fft {
            None => {
                if self.pending.len() < FRAME {
                    return Ok(false);
                }
                frame.copy_from_slice(&self.pending[..FRAME]);
                FRAME
            }
            Some(fft) => {
                let need = fft.input_frames_next();
                if self.pending.len() < need {
                    return Ok(false);
                }
                let input = InterleavedSlice::new(&self.pending[..need], 1, need)?;
                let mut output = InterleavedSlice::new_mut(&mut frame[..], 1, FRAME)?;
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

/// Playback path: 48 kHz 960-sample frames in, device-rate mono samples out.
pub struct FromNetwork {
    fft: Option<Fft<f32>>,
    out: Vec<f32>,
}

impl FromNetwork {
    pub fn new(device_rate: u32) -> Result<FromNetwork, ResampleError> {
        let fft = fft(NETWORK_RATE, device_rate, FRAME, FixedSync::Input)?;
        let capacity = fft.as_ref().map_or(FRAME, |f| f.output_frames_max());
        Ok(FromNetwork {
            fft,
            out: vec![0.0; capacity],
        })
    }

    /// Resamples one frame; returns this frame's device-rate samples (`device_rate / 50`
    /// on average; the count varies by a few samples from frame to frame).
    pub fn process(&mut self, frame: &[f32; FRAME]) -> Result<&[f32], ResampleError> {
        let written = match &mut self.fft {
            None => {
                self.out[..FRAME].copy_from_slice(frame);
                FRAME
            }
            Some(fft) => {
                let input = InterleavedSlice::new(&frame[..], 1, FRAME)?;
                let cap = self.out.len();
                let mut output = InterleavedSlice::new_mut(&mut self.out[..], 1, cap)?;
                fft.process_into_buffer(&input, &mut output, None)?.1
            }
        };
        Ok(&self.out[..written])
    }

    /// The resampler's delay in device samples (0 when passing through).
    pub fn delay(&self) -> usize {
        self.fft.as_ref().map_or(0, |f| f.output_delay())
    }

    /// Forgets filter state, e.g. between calls.
    pub fn reset(&mut self) {
        if let Some(f) = &mut self.fft {
            f.reset();
        }
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
        assert_eq!(out.len(), 44_100, "one second in, one second out");
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
    fn matching_rates_pass_samples_through_unchanged() {
        let input: Vec<f32> = (0..2500).map(|i| i as f32 / 2500.0).collect();
        let mut up = ToNetwork::new(48_000).expect("ok");
        assert_eq!(up.delay(), 0);
        up.push(&input);
        let out = all_frames(&mut up);
        assert_eq!(out, input[..2 * FRAME]);
        assert_eq!(up.queued(), 2500 - 2 * FRAME);

        let mut down = FromNetwork::new(48_000).expect("ok");
        let frame: &[f32; FRAME] = input[..FRAME].try_into().expect("960");
        assert_eq!(down.process(frame).expect("ok"), frame);
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
            [147, 73, 53, 27, 320]
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
