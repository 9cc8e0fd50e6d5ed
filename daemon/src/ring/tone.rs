//! The built-in tones, generated sample by sample: the ring ([`RING`], a double ring of two
//! sines) and the call-waiting beep ([`WAITING`]). A [`ToneGen`] follows its tone's
//! cadence on the sample clock of the device it plays on, so the rhythm is exact whatever
//! the thread that feeds it does; after [`ToneGen::new`] it never allocates, which is what
//! lets the media thread mix the waiting tone into a call's playback.

use std::f64::consts::TAU;

/// A tone: one or two sines sounded together, switched on and off by a cadence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    /// The frequencies sounded together, Hz.
    pub freqs: &'static [f32],
    /// The peak of their sum at full volume (each sine gets an equal share), full scale 1.0.
    pub peak: f32,
    /// On, off, on, off … in ms; the pattern repeats. At most [`MAX_CADENCE`] entries.
    pub cadence_ms: &'static [u32],
}

/// The most entries a cadence may have (two rings and their pauses).
pub const MAX_CADENCE: usize = 4;

/// Fade in and out of each burst: a tone switched on at full level clicks.
const RAMP_MS: u32 = 10;

/// The ring: 660 Hz and 880 Hz together (a fourth, E5 and A5: two-tone but consonant),
/// in the double-ring cadence of British phones (0.4 s on, 0.2 s off, 0.4 s on, 2 s off),
/// peaking at −1 dBFS at 100 % volume. Neither frequency is one the tests use as a voice
/// (440 Hz, 1000 Hz), so a recording tells the ring from the call.
pub const RING: ToneSpec = ToneSpec {
    freqs: &[660.0, 880.0],
    peak: 0.9,
    cadence_ms: &[400, 200, 400, 2000],
};

/// The call-waiting tone mixed into a call: 440 Hz for 300 ms every 4 s, at −20 dBFS peak,
/// under a voice (speech peaks near full scale) but heard.
pub const WAITING: ToneSpec = ToneSpec {
    freqs: &[440.0],
    peak: 0.1,
    cadence_ms: &[300, 3700],
};

/// The amplitude factor of a `ring_volume` in percent (0–100, more is taken as 100): the
/// cube of the fraction, as PulseAudio's and most desktops' volume sliders, so equal steps
/// sound like equal steps (70 % is −9.3 dB, 50 % is −18 dB).
pub fn gain(volume_percent: u8) -> f32 {
    let v = f32::from(volume_percent.min(100)) / 100.0;
    v * v * v
}

/// Plays a [`ToneSpec`] at one sample rate and gain, from the start of its cadence.
#[derive(Debug, Clone)]
pub struct ToneGen {
    spec: ToneSpec,
    rate: f64,
    /// Amplitude of each sine.
    amplitude: f64,
    /// End of each cadence entry, in samples from the start of the period.
    ends: [u64; MAX_CADENCE],
    entries: usize,
    ramp: u64,
    /// Position in the period, in samples.
    at: u64,
}

impl ToneGen {
    /// A generator of `spec` at `rate` Hz, its peak scaled by `gain` (see [`gain`]).
    /// Cadence entries past [`MAX_CADENCE`] are ignored.
    pub fn new(spec: &ToneSpec, rate: u32, gain: f32) -> ToneGen {
        let samples = |ms: u32| u64::from(rate) * u64::from(ms) / 1000;
        let mut ends = [0u64; MAX_CADENCE];
        let mut end = 0;
        let entries = spec.cadence_ms.len().min(MAX_CADENCE);
        for (slot, &ms) in ends.iter_mut().zip(spec.cadence_ms) {
            end += samples(ms);
            *slot = end;
        }
        let sines = spec.freqs.len().max(1) as f64;
        ToneGen {
            spec: *spec,
            rate: f64::from(rate.max(1)),
            amplitude: f64::from(spec.peak) * f64::from(gain.clamp(0.0, 1.0)) / sines,
            ends,
            entries,
            ramp: samples(RAMP_MS).max(1),
            at: 0,
        }
    }

    /// Back to the start of the cadence: the next sample begins a burst.
    pub fn rewind(&mut self) {
        self.at = 0;
    }

    /// Writes the next `out.len()` samples of the tone over `out`.
    pub fn fill(&mut self, out: &mut [f32]) {
        for slot in out {
            *slot = self.next_sample();
        }
    }

    /// Adds the next `out.len()` samples of the tone to what `out` holds (clipped to full
    /// scale).
    pub fn mix(&mut self, out: &mut [f32]) {
        for slot in out {
            *slot = (*slot + self.next_sample()).clamp(-1.0, 1.0);
        }
    }

    fn next_sample(&mut self) -> f32 {
        let period = if self.entries == 0 {
            0
        } else {
            self.ends[self.entries - 1]
        };
        if period == 0 {
            return 0.0;
        }
        let t = self.at;
        self.at = (self.at + 1) % period;
        let mut start = 0;
        for (i, &end) in self.ends[..self.entries].iter().enumerate() {
            if t < end {
                if i % 2 == 1 {
                    return 0.0;
                }
                // Linear fade over the ramp at both ends of the burst.
                let envelope =
                    (t - start + 1).min(end - t).min(self.ramp) as f64 / self.ramp as f64;
                // `t` stays below one period (seconds of samples), so f64 keeps the phase
                // exact; each burst starts at phase 0 of every sine.
                let secs = (t - start) as f64 / self.rate;
                let sum: f64 = self
                    .spec
                    .freqs
                    .iter()
                    .map(|&f| (TAU * f64::from(f) * secs).sin())
                    .sum();
                return (self.amplitude * envelope * sum) as f32;
            }
            start = end;
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::analysis::{goertzel_power, rms};

    const RATE: u32 = 48_000;

    fn render(spec: &ToneSpec, rate: u32, gain: f32, seconds: f32) -> Vec<f32> {
        let mut tone = ToneGen::new(spec, rate, gain);
        let mut out = vec![0f32; (rate as f32 * seconds) as usize];
        tone.fill(&mut out);
        out
    }

    fn ms(rate: u32, ms: u32) -> usize {
        (u64::from(rate) * u64::from(ms) / 1000) as usize
    }

    #[test]
    fn the_ring_sounds_both_tones_in_its_double_ring_cadence() {
        let out = render(&RING, RATE, 1.0, 6.0);
        let at = |from, to| &out[ms(RATE, from)..ms(RATE, to)];
        // Bursts at 0–400 and 600–1000 ms of every 3 s, silence between.
        for (from, to) in [(20, 380), (620, 980), (3020, 3380), (3620, 3980)] {
            assert!(rms(at(from, to)) > 0.3, "{from}–{to} ms is quiet");
        }
        for (from, to) in [(400, 600), (1000, 3000), (4000, 6000)] {
            assert!(
                at(from, to).iter().all(|&s| s == 0.0),
                "{from}–{to} ms is not silent"
            );
        }
        let burst = at(0, 400);
        let (p660, p880) = (
            goertzel_power(burst, RATE as f32, 660.0),
            goertzel_power(burst, RATE as f32, 880.0),
        );
        // Each sine has half the peak: 0.45² / 4 ≈ 0.05, a little less for the fades.
        assert!(p660 > 0.04 && p880 > 0.04, "660: {p660}, 880: {p880}");
        for other in [440.0, 1000.0] {
            let p = goertzel_power(burst, RATE as f32, other);
            assert!(p < p660 / 1000.0, "{other} Hz: {p} against {p660}");
        }
    }

    #[test]
    fn volume_scales_the_peak_and_full_volume_stays_below_full_scale() {
        for (volume, peak) in [(100, 0.9), (70, 0.9 * 0.343), (0, 0.0)] {
            let out = render(&RING, RATE, gain(volume), 1.0);
            let max = out.iter().fold(0f32, |m, s| m.max(s.abs()));
            assert!(
                max <= peak + 1e-4 && max >= peak * 0.95,
                "volume {volume}: peak {max}, expected {peak}"
            );
        }
        assert_eq!(gain(100), 1.0);
        assert_eq!(gain(255), 1.0);
        assert!((gain(50) - 0.125).abs() < 1e-6);
    }

    #[test]
    fn bursts_fade_in_and_out_without_a_click() {
        let out = render(&RING, RATE, 1.0, 3.0);
        assert!(out[0].abs() < 1e-3, "starts at {}", out[0]);
        let biggest_step = out
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        // The steepest a 0.45 + 0.45 sine pair gets at 880 Hz: 2π·880/48000·0.9 ≈ 0.10 per
        // sample; a hard edge would jump by up to 0.9.
        assert!(biggest_step < 0.11, "a step of {biggest_step}");
        let end_of_burst = ms(RATE, 400) - 1;
        assert!(out[end_of_burst].abs() < 0.01);
    }

    #[test]
    fn the_waiting_tone_beeps_300_ms_every_4_s_quietly() {
        let out = render(&WAITING, RATE, 1.0, 8.0);
        let at = |from, to| &out[ms(RATE, from)..ms(RATE, to)];
        for from in [0, 4000] {
            let beep = at(from + 20, from + 280);
            assert!(goertzel_power(beep, RATE as f32, 440.0) > 0.002);
            assert!(at(from + 300, from + 4000).iter().all(|&s| s == 0.0));
        }
        let max = out.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.09..=0.1001).contains(&max), "peak {max}");
    }

    #[test]
    fn mixing_adds_to_what_is_there_and_clips_at_full_scale() {
        let mut tone = ToneGen::new(&WAITING, RATE, 1.0);
        let mut alone = vec![0f32; 4800];
        tone.fill(&mut alone);
        tone.rewind();
        let mut mixed = vec![0.25f32; 4800];
        tone.mix(&mut mixed);
        for (m, a) in mixed.iter().zip(&alone) {
            assert!((m - (0.25 + a)).abs() < 1e-6);
        }
        tone.rewind();
        let mut loud = vec![0.99f32; 4800];
        tone.mix(&mut loud);
        assert!(loud.iter().all(|s| (-1.0..=1.0).contains(s)));
    }

    #[test]
    fn the_cadence_follows_the_device_rate() {
        for rate in [8_000, 44_100, 96_000] {
            let out = render(&RING, rate, 1.0, 3.0);
            // The first burst ends where the first 10 ms of silence starts.
            let quiet = ms(rate, 10);
            let first_silence =
                (1..out.len() - quiet).find(|&i| out[i..i + quiet].iter().all(|&s| s == 0.0));
            assert_eq!(first_silence, Some(ms(rate, 400)), "{rate} Hz");
            let burst = &out[..ms(rate, 400)];
            assert!(
                goertzel_power(burst, rate as f32, 660.0) > 0.04,
                "{rate} Hz"
            );
        }
    }

    #[test]
    fn an_empty_cadence_is_silence() {
        let spec = ToneSpec {
            freqs: &[440.0],
            peak: 1.0,
            cadence_ms: &[],
        };
        assert!(render(&spec, RATE, 1.0, 0.1).iter().all(|&s| s == 0.0));
    }
}
