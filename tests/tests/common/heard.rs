//! What a speaker played in a call test with a tone on each side: how long, its quietest
//! 20 ms window after the first 500 ms, and the power at the far side's tone against its
//! own; and the check the sound-stack tests make of it.

use phoned::audio::analysis::{goertzel_power, rms};
use phoned_tests::pulse::RATE;

/// −26 dBFS as an RMS level: a 20 ms window quieter than this is a gap.
pub const GAP_FLOOR: f64 = 0.050_118_7;

pub struct Heard {
    pub seconds: f64,
    pub quietest: f64,
    pub quietest_at_ms: usize,
    pub other: f64,
    pub own: f64,
}

pub fn dbfs(rms: f64) -> f64 {
    20.0 * rms.max(1e-9).log10()
}

impl Heard {
    /// `samples` at [`RATE`], from a speaker whose far side plays `other_tone` Hz and whose
    /// own microphone plays `own_tone` Hz.
    pub fn of(samples: &[f32], other_tone: u32, own_tone: u32) -> Heard {
        let skip = (RATE as usize / 2).min(samples.len());
        let talk = &samples[skip..];
        let (at, quietest) = talk
            .chunks_exact(RATE as usize / 50)
            .map(rms)
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        Heard {
            seconds: samples.len() as f64 / f64::from(RATE),
            quietest,
            quietest_at_ms: 500 + at * 20,
            other: goertzel_power(talk, RATE as f32, other_tone as f32),
            own: goertzel_power(talk, RATE as f32, own_tone as f32),
        }
    }

    /// One line for the test's output.
    pub fn describe(&self) -> String {
        format!(
            "heard {:.2} s, quietest 20 ms window {:.1} dBFS at {} ms; the far tone {:.2e}, the own {:.2e}",
            self.seconds,
            dbfs(self.quietest),
            self.quietest_at_ms,
            self.other,
            self.own
        )
    }

    /// At least `min_seconds` recorded, no gap below −26 dBFS, and the far side's tone a
    /// hundred times the own; `log` (the daemon's) goes into the failure message.
    pub fn assert_without_a_gap(&self, name: &str, min_seconds: f64, log: &str) {
        assert!(
            self.seconds >= min_seconds,
            "{name}: only {:.2} s recorded\n{log}",
            self.seconds
        );
        assert!(
            self.quietest >= GAP_FLOOR,
            "{name}: a 20 ms window at {:.1} dBFS ({} ms in), below −26 dBFS\n{log}",
            dbfs(self.quietest),
            self.quietest_at_ms
        );
        assert!(
            self.other > 100.0 * self.own,
            "{name} should hear the other side's tone: {:e} vs its own {:e}",
            self.other,
            self.own
        );
    }
}
