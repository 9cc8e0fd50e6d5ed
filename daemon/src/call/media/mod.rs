//! One call's media: capture → 48 kHz → Opus → `MediaFrame` datagrams to the relay;
//! datagrams from the relay → jitter buffer → Opus (FEC, PLC) → device rate → playback.
//!
//! [`pipeline`] decides all of it, sans-IO: [`MediaPipeline::tick`] takes the time, the
//! captured samples, the received datagrams, the playback device's fill level and the
//! mute/hold flags, and returns datagrams, samples and events. `session.rs` is the thread
//! around it ([`MediaSession`]): the real clock, the devices and the QUIC connection. The
//! device callbacks only touch the lock-free rings inside the backend; everything that may
//! allocate or take time happens on the media thread, and opening or closing a device on
//! the opener thread (`opener.rs`). [`health`] decides, sans-IO, which direction works,
//! when a failed one is opened again and what the user is told; a direction without a
//! device runs on a stand-in (`standin.rs`), so the call goes on with what exists.
//! [`streams`] holds the far streams beyond the first (a conference forwards up to
//! three speakers) and mixes them without clipping.
//! [`quality`] turns the pipeline's counters into the call's live quality once a second,
//! with an E-model MOS ([`emodel`]). In test
//! builds, `sim` runs two pipelines through a seeded network on virtual time.

use std::time::Duration;

pub mod adapt;
mod copies_floor;
#[cfg(test)]
mod delay_sim;
mod demand;
pub mod emodel;
mod health;
mod loss_runs;
mod opener;
pub mod pipeline;
mod quality;
pub mod report;
mod routes;
mod session;
#[cfg(test)]
mod sim;
pub mod speakers;
#[cfg(test)]
mod speech_sim;
mod standin;
pub mod streams;
#[cfg(test)]
mod tests;

pub use health::{DeviceHealth, HealthAction};
pub use pipeline::{
    Device, Flags, MediaEvent, MediaPipeline, MediaStats, Onset, PipelineError, Stage, TickOutput,
};
pub use quality::{PathNow, Quality, QualityMeter};
pub use routes::{Inlet, MediaRoutes};
pub use session::{MediaSession, QualityReporter, Reporter};

/// The longest the media thread sleeps. It wakes whenever a device moves a block (the
/// microphone delivered one, the speaker took one: [`StreamCounters::set_waker`]) and
/// whenever a datagram comes, and runs a tick then; this is only the pace for a direction
/// on a stand-in, which has no blocks of its own, and a safety net.
///
/// [`StreamCounters::set_waker`]: crate::audio::backend::StreamCounters::set_waker
pub const TICK: Duration = Duration::from_millis(10);
/// The least audio kept queued for the playback device, ms, before it has taken a block.
/// Otherwise the queue is the block the device takes at once ([`playback_queue`]), or more
/// for a device that takes several at a time (`demand.rs`): the media thread tops it up
/// as soon as the device has taken a block, so what is queued then only has to last
/// until the next block, and every millisecond more is mouth-to-ear delay.
pub const PLAYBACK_QUEUE_MIN_MS: usize = 10;

/// Samples (at the device's `rate`) to keep queued for playback, given how much the device
/// took in its latest callback or period.
pub fn playback_queue(rate: u32, last_block: u64) -> usize {
    let ms = |ms: usize| rate as usize * ms / 1000;
    if last_block == 0 {
        ms(PLAYBACK_QUEUE_MIN_MS)
    } else {
        last_block as usize
    }
}
/// Opus complexity of a call's encoder. 10, not the codec's default 5: at 5, SILK's voice
/// detection takes a steady tone (a dial tone, a test signal, music on hold) for noise and
/// DTX stops sending it.
pub const ENCODER_COMPLEXITY: u8 = 10;
/// Opus target bitrate of a call on a clean path, bit/s (VBR; less while copies are sent,
/// see `adapt.rs`). 32 kbit/s, not the codec's default 24: on the speech bench's clips
/// libopus alone scores WB-PESQ 3.84 at 32 and 3.63 at 24, and the 1.6× budget for copies
/// under loss is counted from it, so one copy still gets some 26 kbit/s
/// (`docs/benchmarks.md`, speech quality).
pub const CALL_BITRATE_BPS: u32 = 32_000;
