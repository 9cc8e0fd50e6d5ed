//! Whether a recording from the input device is what was asked for, sans-IO: the
//! recorder (`message::record`) counts what the device delivered, what it dropped (the
//! capture ring's overruns) and whether it reported a problem; [`Take::verdict`] says
//! whether that is a message of the asked length (±[`TOLERANCE_MS`]) or why not. A
//! recording that is not is never sent: a message shorter than asked, or with holes,
//! would say less than the user meant without anyone noticing.

use std::time::Duration;

/// How far a recording may be from the asked length, ms: two Opus frames.
pub const TOLERANCE_MS: u64 = 40;

/// How long the device may deliver nothing before the recording is given up: longer
/// than any device period or start-up delay, short enough not to keep the user waiting.
pub const STALL: Duration = Duration::from_secs(2);

/// How much wall time past the asked length a recording may take before it is given up
/// (a device that delivers slower than real time).
pub const GRACE: Duration = Duration::from_secs(3);

/// Why a recording was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    #[error(
        "the input device failed after {got_ms} ms of the {want_ms} ms asked: {why}; nothing was sent"
    )]
    DeviceFailed {
        got_ms: u64,
        want_ms: u64,
        why: String,
    },
    #[error(
        "the input device dropped {lost_ms} ms of the {want_ms} ms recording (it could not keep up); nothing was sent"
    )]
    Dropped { lost_ms: u64, want_ms: u64 },
    #[error(
        "the input device delivered only {got_ms} ms of the {want_ms} ms asked; nothing was sent"
    )]
    Short { got_ms: u64, want_ms: u64 },
}

/// A recording of a given length from a device at a given rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    rate: u32,
    /// Samples asked for.
    want: u64,
}

impl Take {
    pub fn new(rate: u32, seconds: u32) -> Take {
        Take {
            rate,
            want: u64::from(rate) * u64::from(seconds),
        }
    }

    /// Samples to record.
    pub fn want(&self) -> u64 {
        self.want
    }

    fn ms(&self, samples: u64) -> u64 {
        samples * 1000 / u64::from(self.rate.max(1))
    }

    /// Whether `got` samples, of which the device dropped `lost` on the way (so the
    /// recording has holes that long), and the device's `problem`, make a message of
    /// the asked length.
    pub fn verdict(&self, got: u64, lost: u64, problem: Option<&str>) -> Result<(), TakeError> {
        let (got_ms, want_ms) = (self.ms(got), self.ms(self.want));
        if let Some(why) = problem {
            return Err(TakeError::DeviceFailed {
                got_ms,
                want_ms,
                why: why.to_owned(),
            });
        }
        let tolerance = u64::from(self.rate) * TOLERANCE_MS / 1000;
        if lost > tolerance {
            return Err(TakeError::Dropped {
                lost_ms: self.ms(lost),
                want_ms,
            });
        }
        if got + tolerance < self.want {
            return Err(TakeError::Short { got_ms, want_ms });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asked_length_within_40_ms_is_a_message() {
        let take = Take::new(48_000, 5);
        assert_eq!(take.want(), 240_000);
        assert_eq!(take.verdict(240_000, 0, None), Ok(()));
        assert_eq!(take.verdict(240_000 - 1920, 1920, None), Ok(()));
        let short = take.verdict(240_000 - 1921, 0, None);
        assert_eq!(
            short,
            Err(TakeError::Short {
                got_ms: 4959,
                want_ms: 5000
            })
        );
        assert_eq!(
            short.map_err(|e| e.to_string()),
            Err(
                "the input device delivered only 4959 ms of the 5000 ms asked; nothing was sent"
                    .into()
            )
        );
    }

    #[test]
    fn holes_from_overruns_are_not_a_message_even_at_full_length() {
        let take = Take::new(44_100, 3);
        assert_eq!(
            take.verdict(take.want(), 44_100, None),
            Err(TakeError::Dropped {
                lost_ms: 1000,
                want_ms: 3000
            })
        );
    }

    #[test]
    fn a_device_problem_is_named_with_what_was_recorded() {
        let take = Take::new(48_000, 5);
        let e = take
            .verdict(67_200, 0, Some("audio server connection lost"))
            .map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err("the input device failed after 1400 ms of the 5000 ms asked: audio server connection lost; nothing was sent".into())
        );
    }
}
