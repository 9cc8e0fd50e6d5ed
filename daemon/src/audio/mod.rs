//! The audio pipeline: sound devices, resampling to the network rate, Opus, jitter buffering.
//! See `design.md` §Audio pipeline. [`backend`] owns the devices and the lock-free rings
//! that connect their real-time callbacks to the rest of the daemon; [`resample`] converts
//! between a device's rate and the 48 kHz, 20 ms frames the network carries.
//! [`codec`] turns those frames into Opus packets and back (with FEC and concealment);
//! [`jitter`] orders a remote source's packets in time and says, frame by frame, what to
//! decode, and [`timescale`] plays a decoded frame a pitch period longer or shorter
//! when the jitter buffer moves its delay. [`analysis`] measures signals (tones, SNR, alignment) for tests and diagnostics.
//! In test builds, `netsim` is the seeded network the simulations send packets through.

pub mod analysis;
pub mod backend;
pub mod codec;
pub mod drift;
pub mod jitter;
#[cfg(test)]
pub(crate) mod netsim;
pub mod resample;
pub mod timescale;
