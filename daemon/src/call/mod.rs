//! Calls on this device: the sans-IO [`engine`] that decides, and the [`media`] session
//! that carries a call's audio. `crate::core` owns the engine and
//! `crate::driver` runs the media sessions.

pub mod engine;
pub mod media;
