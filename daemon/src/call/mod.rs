//! Calls on this device: the sans-IO [`engine`] that decides, and [`media`], a call's audio
//! (the sans-IO `MediaPipeline` and the thread that drives it). `crate::phone` drives both.

pub mod engine;
pub mod media;
