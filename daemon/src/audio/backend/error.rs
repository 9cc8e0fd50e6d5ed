//! What can go wrong when opening or starting an audio device.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// Which way audio flows through a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a microphone (or input WAV) into the daemon.
    Capture,
    /// From the daemon to a speaker (or output WAV).
    Playback,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Capture => "capture",
            Direction::Playback => "playback",
        })
    }
}

/// An audio backend failed to open or start a stream. Each variant names the device or
/// file it concerns, so the one-line message is enough to fix the configuration.
#[derive(Debug, Error)]
pub enum AudioError {
    #[error("no {direction} audio device named {name:?}; available: {available}")]
    DeviceNotFound {
        direction: Direction,
        name: String,
        /// Comma-separated ids and descriptions of the devices that do exist.
        available: String,
    },
    #[error("the audio host has no default {direction} device")]
    NoDefaultDevice { direction: Direction },
    #[error("cannot list audio devices: {0}")]
    Enumerate(#[source] cpal::Error),
    #[error("audio device {device:?}: cannot {action}: {source}")]
    Device {
        device: String,
        action: &'static str,
        #[source]
        source: cpal::Error,
    },
    #[error("audio device {device:?} offers no usable {direction} configuration")]
    NoUsableConfig {
        device: String,
        direction: Direction,
    },
    #[error("cannot open WAV {path}: {source}")]
    WavOpen {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("WAV {path}: {message}")]
    WavFormat { path: PathBuf, message: String },
    #[error("audio server ({direction}, device {device:?}): {source}")]
    Pulse {
        direction: Direction,
        device: String,
        #[source]
        source: super::pulse::PaError,
    },
    #[error(transparent)]
    PulseMissing(#[from] super::pulse::LoadError),
    #[error("cannot list the audio server's devices: {source}")]
    PulseList {
        #[source]
        source: super::pulse::PaError,
    },
    #[error("cannot create WAV {path}: {source}")]
    WavCreate {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("{path} is already being written by another playback stream")]
    OutputBusy { path: PathBuf },
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
