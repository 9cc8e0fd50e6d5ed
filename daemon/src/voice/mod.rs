//! Voice messages: recorded speech sent to a number and received as a standard
//! `.opus` file (`design.md` §Daemon: "Voice messages are standard Ogg Opus files").
//!
//! [`ogg`] makes and reads those files: a WAV file or mono samples in, Ogg Opus bytes out
//! (RFC 7845, 48 kHz mono, 20 ms Opus frames from the call codec's
//! [`VoiceEncoder`](crate::audio::codec::VoiceEncoder)), and back to 48 kHz samples with
//! pre-skip and end trimming applied. It is self-contained: no I/O besides reading the WAV,
//! so the recording, sending and playback paths can use it from any thread.
//! [`message`] is those paths: from a WAV or the microphone, sent as a file of kind
//! `voice`, and played through the output device; [`take`] judges whether a recording
//! from the device is as long as asked, so that none is sent half-recorded.

pub mod message;
pub mod ogg;
pub mod take;
