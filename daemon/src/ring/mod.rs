//! Ringing: how an incoming call sounds on this device.
//!
//! [`ringer`] decides, sans-IO, when something sounds: the ring through the output device
//! while a call rings and no call has the devices, or the call-waiting tone inside the
//! call that has them. The core owns the one [`ringer::Ringer`] and turns what it says
//! into `Effect::Sound`; the driver carries that out: it starts and drops the
//! [`player::RingPlayer`] (a thread with its own playback stream) and flips each media
//! session's waiting-tone switch, which the media thread mixes in with a
//! [`tone::ToneGen`]. [`tone`] makes the built-in tones; [`wav`] reads a ring WAV
//! (`[audio] ring = "/path/to.wav"`, checked when the config loads).

pub mod player;
pub mod ringer;
pub mod tone;
pub mod wav;

pub use player::RingPlayer;
pub use ringer::{RingEvent, Ringer, Sound};
