//! The `null` backend: a microphone that delivers paced silence and a speaker that plays
//! into nothing, both at 48 kHz — for daemons that need no audio, and for tests.

use std::sync::Arc;

use super::counters::StreamCounters;
use super::error::AudioError;
use super::paced::{Sink, Source};
use super::{Backend, Capture, Options, Playback, start_paced_capture, start_paced_playback};

/// The rate the null device runs at: the network rate, so nothing needs resampling.
pub const NULL_RATE: u32 = 48_000;

/// Paced silence in, output discarded. Both sides still run in real time, so the rest of
/// the pipeline sees the same timing as with a sound card.
#[derive(Debug, Clone)]
pub struct NullBackend {
    options: Options,
}

impl NullBackend {
    pub fn new(options: Options) -> NullBackend {
        NullBackend { options }
    }
}

impl Backend for NullBackend {
    fn kind(&self) -> &'static str {
        "null"
    }

    fn start_capture(&mut self) -> Result<Capture, AudioError> {
        start_paced_capture("audio-null-in", Source::Silence, NULL_RATE, self.options)
    }

    fn start_playback(&mut self) -> Result<Playback, AudioError> {
        let counters = Arc::new(StreamCounters::default());
        start_paced_playback(
            "audio-null-out",
            Sink::Discard,
            NULL_RATE,
            self.options,
            counters,
        )
    }
}
