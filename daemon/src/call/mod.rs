//! Calls on this device: the sans-IO [`engine`] that decides, and (later) the driver
//! that connects it to the relay link, D-Bus and the media pipeline.

pub mod engine;
