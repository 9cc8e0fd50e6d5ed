//! Calls on this device: the sans-IO [`engine`] that decides, and [`media`], a call's audio
//! (the sans-IO `MediaPipeline` and the thread that drives it). `crate::core` owns the
//! engine and `crate::driver` runs the media sessions.

pub mod engine;
pub mod media;
pub mod quality;
