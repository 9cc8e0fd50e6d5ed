//! Signal measurements for tests and diagnostics: tone energy (Goertzel), RMS, SNR and the lag
//! that best aligns two signals. The end-to-end tests check "each side hears the other's tone"
//! with these, and the codec tests use them to compare loss recovery methods. Samples are
//! `f32` at full scale ±1.0; none of these functions allocate.

/// Power of `samples` at `freq` Hz, normalised so that a full-scale sine at exactly that
/// frequency gives about 0.25 (amplitude² / 4) whatever the length.
///
/// Goertzel is a single DFT bin: O(n) and no buffers, which is all a "is the 1 kHz tone
/// there?" check needs.
pub fn goertzel_power(samples: &[f32], sample_rate: f32, freq: f32) -> f64 {
    if samples.is_empty() || sample_rate <= 0.0 {
        return 0.0;
    }
    let omega = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(sample_rate);
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    power / (n * n)
}

/// Root mean square of `samples` (0.0 for an empty slice).
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Signal-to-noise ratio in dB of `signal` against `reference`, where the noise is their
/// difference. Compares the common prefix; `+inf` when they are identical, and a very low
/// value when the reference is silent.
pub fn snr_db(reference: &[f32], signal: &[f32]) -> f64 {
    let (mut sig, mut noise) = (0.0f64, 0.0f64);
    for (&r, &s) in reference.iter().zip(signal) {
        let (r, s) = (f64::from(r), f64::from(s));
        sig += r * r;
        noise += (r - s) * (r - s);
    }
    if noise == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (sig.max(f64::MIN_POSITIVE) / noise).log10()
}

/// Normalised cross-correlation (−1..=1) of the common prefix of `a` and `b`; 0.0 when either
/// is silent.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    ab / (aa * bb).sqrt()
}

/// The delay in samples (0..=`max_lag`) by which `delayed` best matches `reference`, by
/// maximum correlation. A codec or a whole pipeline delays its output (Opus alone by its
/// 6.5 ms look-ahead); comparisons must undo that first.
pub fn best_lag(reference: &[f32], delayed: &[f32], max_lag: usize) -> usize {
    let mut best = (0usize, f64::NEG_INFINITY);
    for lag in 0..=max_lag.min(delayed.len()) {
        let c = correlation(reference, &delayed[lag..]);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best.0
}

/// Converts 16-bit PCM to `f32` full scale, in place into `out` (the shorter length wins).
pub fn i16_to_f32(input: &[i16], out: &mut [f32]) {
    for (o, &i) in out.iter_mut().zip(input) {
        *o = f32::from(i) / 32768.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn goertzel_finds_the_tone_and_not_its_neighbours() {
        let x = sine(1000.0, 0.5, 4800);
        let on = goertzel_power(&x, 48_000.0, 1000.0);
        assert!((on - 0.0625).abs() < 0.005, "on-bin power {on}");
        for off in [500.0, 1500.0, 3000.0] {
            assert!(goertzel_power(&x, 48_000.0, off) < on / 1000.0);
        }
        assert_eq!(goertzel_power(&[], 48_000.0, 1000.0), 0.0);
    }

    #[test]
    fn snr_rms_and_correlation_behave() {
        let x = sine(440.0, 0.5, 4800);
        assert!((rms(&x) - 0.5 / 2f64.sqrt()).abs() < 1e-3);
        assert_eq!(snr_db(&x, &x), f64::INFINITY);
        let half: Vec<f32> = x.iter().map(|v| v * 0.9).collect();
        assert!((snr_db(&x, &half) - 20.0).abs() < 0.01);
        assert!((correlation(&x, &half) - 1.0).abs() < 1e-9);
        assert_eq!(correlation(&x, &[0.0; 10]), 0.0);
    }

    #[test]
    fn best_lag_undoes_a_delay() {
        let x: Vec<f32> = (0..4800)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut delayed = vec![0.0; 312];
        delayed.extend_from_slice(&x);
        assert_eq!(best_lag(&x, &delayed, 600), 312);
    }
}
