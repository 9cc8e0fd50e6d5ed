//! The jitter buffer's tuning ([`JitterConfig`], checked on construction) and the
//! figures it reports ([`JitterStats`]).

use super::*;

/// Tuning. `Default` is for 20 ms frames; [`JitterConfig::for_frame`] for others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitterConfig {
    /// Frame length: the timestamp step of one pop.
    pub frame: FrameDuration,
    /// Floor of the target delay, ms (default: one frame, so that the next packet, and
    /// with it FEC, is usually here when one is missing). 0 lets the target follow the
    /// measured jitter alone (plus [`JitterConfig::jitter_margin_ms`]): the call's
    /// pipeline does so on a clean path and raises the floor to a frame while packets are
    /// lost.
    pub min_delay_ms: u32,
    /// Added to the measured jitter for the target, ms, 0..=100 (default 0): what the
    /// percentile leaves out, and the noise of the arrival and pop times.
    pub jitter_margin_ms: u32,
    /// Where shorter silences ([`JitterBuffer::rephase_excess_us`]) bring the delay: this
    /// far above the target, ms, 0..=100 (default 5, for arrival and pop times read on a
    /// 5 ms tick).
    pub rephase_headroom_ms: u32,
    /// Hard maximum delay, ms (default 200); at least two frames, at most 1000.
    pub max_delay_ms: u32,
    /// Which percentile of the measured jitter the target covers, 50..=100 (default 95).
    pub jitter_percentile: u8,
    /// How many recent packets the jitter estimate looks at, 8..=1024 (default 128).
    pub window_packets: u16,
    /// At most one frame of speech is played shorter (by a pitch period, 2.5–10 ms) per
    /// this many frames while shrinking (default 2: up to about a quarter faster, 100 ms
    /// of excess delay gone in under two seconds of speech); silence is skipped at once.
    pub shrink_every_frames: u32,
    /// Longest run of concealment before silence, ms (default 100: Opus has faded out by then).
    pub max_conceal_ms: u32,
    /// A sequence jump larger than this means a restarted source (default 1000), at least 100.
    pub resync_seq_jump: u32,
    /// Only late or duplicate packets arriving for this long, ms, mean a restarted source
    /// (default 500), 20..=10 000. Measured in arrival time, not packets: the late packets
    /// of a delay spike arrive together and never add up to it.
    pub resync_after_late_ms: u32,
}

impl JitterConfig {
    /// The defaults for frames of `frame`.
    pub fn for_frame(frame: FrameDuration) -> Self {
        Self {
            frame,
            min_delay_ms: frame.millis(),
            jitter_margin_ms: 0,
            rephase_headroom_ms: 5,
            max_delay_ms: 200,
            jitter_percentile: 95,
            window_packets: 128,
            shrink_every_frames: 2,
            max_conceal_ms: 100,
            resync_seq_jump: 1000,
            resync_after_late_ms: 500,
        }
    }
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self::for_frame(FrameDuration::Ms20)
    }
}

/// A [`JitterConfig`] value out of range.
#[derive(Debug, thiserror::Error)]
#[error("jitter buffer setting {what} = {value} is out of range ({allowed})")]
pub struct JitterConfigError {
    /// The setting's name.
    pub what: &'static str,
    /// The rejected value.
    pub value: u32,
    /// The accepted range for this configuration.
    pub allowed: String,
}

fn check(what: &'static str, value: u32, lo: u32, hi: u32) -> Result<(), JitterConfigError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(JitterConfigError {
            what,
            value,
            allowed: format!("{lo}..={hi}"),
        })
    }
}

/// Counters and the current delay figures, for logs, D-Bus properties and call statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Delay the buffer adds now, ms: how long a packet that came as fast as any waits.
    pub delay_ms: u32,
    /// Delay the buffer aims for, ms.
    pub target_ms: u32,
    /// Measured jitter at the configured percentile, ms.
    pub jitter_ms: u32,
    /// How irregular the pops are, ms: the spread of the recent pops' phases against a
    /// steady frame clock (a device that takes audio in bursts; 0 for a regular one).
    pub playout_jitter_ms: u32,
    /// Packets held now.
    pub buffered: u32,
    /// Packets pushed (including duplicates, late ones and resyncs; not rejected ones).
    pub received: u64,
    /// Frames played from their own packet.
    pub played: u64,
    /// Lost frames recovered with FEC from the next packet.
    pub fec: u64,
    /// Frames of concealment asked for because a packet was lost or late (loss without FEC,
    /// stretching in speech while the packet is missing). A frame concealed while nothing
    /// was buffered is counted once the next packet tells why: here if a packet was
    /// missing, in `dtx` if the sender had sent nothing (a timestamp gap with no sequence
    /// gap). Frames after a stream's last packet are in neither.
    pub concealed: u64,
    /// Frames of the decoder's comfort noise played in the sender's DTX pauses (asked for
    /// as [`Playout::Conceal`], the way Opus fills a pause after its last packet).
    pub dtx: u64,
    /// Frames played a pitch period longer to grow the delay ([`Scale::Expand`], applied).
    pub expanded: u64,
    /// Frames played a pitch period shorter to shrink the delay ([`Scale::Accelerate`],
    /// applied).
    pub accelerated: u64,
    /// Sequence numbers passed without their packet (late ones included).
    pub lost: u64,
    /// Packets that came after their time.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets received in time but not played: skipped while shrinking, over the hard
    /// maximum, or pushed out of a full buffer.
    pub dropped: u64,
    /// Frames of delay removed (silence or loss while shrinking, or the hard maximum).
    pub skipped: u64,
    /// Frames of delay added by holding the play position for a tick (silence, or
    /// concealment in speech when the packet is not here to be expanded).
    pub stretched: u64,
    /// Packets rejected as empty or oversized.
    pub rejected: u64,
    /// Times the source restarted and the buffer started over.
    pub resyncs: u64,
}

impl JitterConfig {
    /// Every setting within its range (for this frame length).
    pub(super) fn check(&self) -> Result<(), JitterConfigError> {
        let frame_ms = self.frame.millis();
        check("max_delay_ms", self.max_delay_ms, 2 * frame_ms, 1000)?;
        check(
            "min_delay_ms",
            self.min_delay_ms,
            0,
            self.max_delay_ms - frame_ms,
        )?;
        check("jitter_margin_ms", self.jitter_margin_ms, 0, 100)?;
        check("rephase_headroom_ms", self.rephase_headroom_ms, 0, 100)?;
        check("jitter_percentile", self.jitter_percentile.into(), 50, 100)?;
        check("window_packets", self.window_packets.into(), 8, 1024)?;
        check("shrink_every_frames", self.shrink_every_frames, 1, 1000)?;
        check("max_conceal_ms", self.max_conceal_ms, 0, 10_000)?;
        check("resync_seq_jump", self.resync_seq_jump, 100, 1 << 30)?;
        check(
            "resync_after_late_ms",
            self.resync_after_late_ms,
            20,
            10_000,
        )?;
        Ok(())
    }
}
