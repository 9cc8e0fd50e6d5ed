//! Calls on this device: the sans-IO [`engine`] that decides, and the [`media`] session
//! that carries a call's audio. `crate::phone` drives both.

pub mod engine;
pub mod media;
