//! The adaptive jitter buffer of one remote source, sans-IO: the caller passes the time in
//! (µs on any monotonic clock) with every packet it [`push`](JitterBuffer::push)es and every
//! frame it [`pop`](JitterBuffer::pop)s, and the buffer answers what to decode. No clock, no
//! threads, no allocation after [`JitterBuffer::new`], so tests replay any network exactly.
//!
//! How it plays:
//! - **Timing.** Each packet's transit time (arrival minus the send time its 48 kHz timestamp
//!   gives) goes into a window over the last packets (`jitter/window.rs`). The fastest is the
//!   base; the *delay* is how long a packet with base transit waits before it plays. The
//!   *target* delay is a high percentile (default 95th) of how much later than the base the
//!   packets came, plus a margin (default none), at least a floor (default one frame, so
//!   the next packet, and with it FEC, is usually here when a packet is missing; the call
//!   sets it to none on a clean path) and at most the hard maximum minus a frame. The delay
//!   sits between the target and a frame above it, by where the playout ticks fall: on a
//!   clean path 20–40 ms at 20 ms frames with the defaults. When the pops come in steps
//!   ([`JitterBuffer::set_pop_quantum_us`]: a device that takes a block at a time, whose
//!   clock drifts against the sender's) the band is two steps wide if that is more.
//! - **Bursty playout.** The pops follow the playback device, which may take audio in
//!   bursts (pipewire-pulse asks for a 21.3 ms quantum at a time, so every 16th 20 ms frame
//!   is popped at once after the one before). A pop that comes early sees less delay
//!   although nothing on the network changed. The buffer keeps the phases of recent pops
//!   (`jitter/pops.rs`) and holds the delay of the *earliest* ones between the target and
//!   a frame above it: growing is decided per pop as before (an early pop is the one a
//!   missing packet hurts), shrinking and shorter silences by the earliest pops' delay.
//!   Without that, a device bursting by a frame makes the buffer skip a frame of speech at
//!   the late pops and conceal one at the early pop, in turn, for the whole call.
//! - **Growing.** When the delay is below the target in speech and the frame's packet is
//!   here, the pop returns it with [`Scale::Expand`] ([`JitterBuffer::scale`]): the caller
//!   plays it a pitch period longer (`audio/timescale.rs`), so the next pop comes that much
//!   later and the delay grows by it without a click or a lost syllable. Otherwise (in
//!   silence, or nothing buffered) a pop holds the play position and returns
//!   [`Playout::Silence`] (or [`Playout::Conceal`] in speech): one frame more delay per tick.
//!   Either way the buffer catches up with a jump in jitter within a few frames.
//! - **Shrinking.** When the delay is a band (a frame) or more above the target, a frame that is
//!   silence or lost anyway ("free") is skipped at once; a frame of speech is played a pitch
//!   period shorter ([`Scale::Accelerate`]), at most one per
//!   [`JitterConfig::shrink_every_frames`] ticks, and only when the excess is also above the
//!   measured jitter (at most a quarter frame). The caller reports each scaled frame
//!   ([`JitterBuffer::time_scaled`]): the pops' phases move with it (`jitter/pops.rs`). That margin keeps estimate noise from
//!   dropping speech: the target moves with the jitter, and the base settles by up to the
//!   jitter after the first packets; without it the buffer would skip and stretch in turn.
//!   (So a clean path with 2 ms of jitter may sit at up to 42 ms until a pause.) After a
//!   burst of delay the target falls back once the burst's packets have left the window (128
//!   packets, about 2.5 s), and the delay follows within about a second.
//! - **Hard maximum.** If the delay exceeds [`JitterConfig::max_delay_ms`] (playout stalled,
//!   the path got faster, a flood), the buffer skips straight back to the target, dropping
//!   what it skips; a packet that waited longer than the maximum is never played.
//! - **Loss, DTX, order.** Packets are held by sequence number and played by timestamp. A
//!   gap in sequence numbers at the play position is loss: [`Playout::Fec`] if the packet
//!   after it is here, else [`Playout::Conceal`] (at most [`JitterConfig::max_conceal_ms`] in
//!   a row, then silence). A gap in timestamps with consecutive sequence numbers is the
//!   sender's DTX: [`Playout::Silence`]. With nothing buffered in speech the pop returns
//!   [`Playout::Conceal`] (after a DTX comfort-noise update that is what Opus means the
//!   receiver to play), and the next packet says what it was: a timestamp jump with the
//!   next sequence number counts those frames as `dtx`, a missing or late packet as
//!   `concealed`. Reordered packets are sorted (one that comes after its redundant copy
//!   filled its place takes that place); duplicates are ignored;
//!   packets behind the play position are late: dropped and counted (also in `lost`).
//! - **Wrap and restart.** Sequence numbers and timestamps are `u32` and unwrapped against
//!   the newest packet. A sequence jump beyond [`JitterConfig::resync_seq_jump`], a timestamp
//!   more than a second ahead of the stream's clock, or nothing but late and duplicate
//!   packets for [`JitterConfig::resync_after_late_ms`] mean the source restarted: the buffer
//!   drops what it holds and starts over with the new packet.
//!
//! ```
//! use phoned::audio::jitter::{JitterBuffer, JitterConfig, Playout};
//! let mut jb = JitterBuffer::new(JitterConfig::default())?;
//! jb.push(0, 7, 960 * 7, &[0x48, 1, 2, 3]);
//! let mut now = 5_000;
//! loop {
//!     match jb.pop(now) {
//!         Playout::Packet(opus) => { assert_eq!(opus, &[0x48, 1, 2, 3]); break; }
//!         Playout::Fec(_next) => unreachable!("nothing lost"),
//!         Playout::Conceal | Playout::Silence => now += 20_000, // waiting for the target delay
//!     }
//! }
//! assert!(jb.stats().delay_ms <= 40);
//! # Ok::<(), phoned::audio::jitter::JitterConfigError>(())
//! ```

mod config;
mod pops;
mod slots;
mod window;

#[cfg(test)]
mod fill_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use self::config::{JitterConfig, JitterConfigError, JitterStats};
use self::pops::PopClock;
use self::slots::{Held, Slots};
use self::window::TransitWindow;
use crate::audio::codec::{FrameDuration, MAX_PACKET_BYTES, SAMPLE_RATE};
pub use crate::audio::timescale::Scale;

/// A timestamp this far ahead of what the stream's clock allows for its arrival is not
/// jitter (which only makes packets later) but a restarted source or a jumped clock.
const RESYNC_CLOCK_JUMP_US: i64 = 1_000_000;

/// Unusable packets further apart than this are not one run (see `unusable`).
const UNUSABLE_RUN_GAP_US: i64 = 200_000;

/// How many sequence numbers behind the play position are remembered, to tell a duplicate
/// of a played packet from a late one.
const HISTORY: i64 = 64;

/// What to do for the frame at the play position; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Decode this packet normally.
    Packet(&'a [u8]),
    /// This frame's packet is lost but the next one is here: decode this (the next packet)
    /// with FEC. The next pop normally returns it again as a [`Playout::Packet`].
    Fec(&'a [u8]),
    /// Lost with nothing to recover from, or the buffer is stretching in speech: run the
    /// decoder's concealment for one frame.
    Conceal,
    /// Nothing to play: before the first packet, in the sender's DTX pauses, after long
    /// losses. Play silence (or comfort noise).
    Silence,
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Held for playout.
    Buffered,
    /// The source restarted: the buffer dropped what it held and started over with this
    /// packet.
    Resynced,
    /// Already held or played: ignored.
    Duplicate,
    /// Behind the play position: dropped.
    Late,
    /// Empty or larger than an Opus packet can be: dropped.
    Rejected,
}

/// Excess delay below which [`JitterBuffer::rephase_us`] leaves the phase alone, µs.
const REPHASE_MIN_US: i64 = 1_000;

/// Where the play position stands, from what is buffered.
#[derive(Clone, Copy, Debug)]
enum Class {
    /// The packet for this frame is here.
    Present(Held),
    /// This frame's packet is missing; `Some` with the next packet if it is here (FEC).
    Lost(Option<Held>),
    /// The sender sent nothing for this frame (DTX).
    Gap,
    /// Nothing buffered: loss, DTX or delay; cannot tell yet.
    Empty,
}

/// The adaptive jitter buffer of one source; see the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    frame: i64,
    frame_us: i64,
    min_delay_us: i64,
    max_delay_us: i64,
    max_conceal_frames: u32,
    jitter_margin_us: i64,
    rephase_headroom_us: i64,
    /// The steps the pops come in, µs (0: any time; see [`JitterBuffer::set_pop_quantum_us`]).
    pop_quantum_us: i64,
    slots: Slots,
    window: TransitWindow,
    pops: PopClock,
    /// A packet has been seen since creation or the last resync.
    started: bool,
    /// Unwrapping references: the newest packet's extended sequence number and timestamp.
    highest_seq: i64,
    highest_ts: i64,
    /// The lowest sequence number not yet played, lost or dropped.
    next_seq: i64,
    /// Timestamp of the frame the next pop plays; `None` until playout starts.
    play_ts: Option<i64>,
    /// Bit k: sequence number `next_seq - 1 - k` was received.
    recent: u64,
    in_talkspurt: bool,
    conceal_run: u32,
    since_shrink: u32,
    /// How the frame the latest pop returned should be played ([`JitterBuffer::scale`]).
    scale: Scale,
    /// Frames concealed while nothing was buffered, not yet known to be loss or DTX.
    unresolved: u64,
    /// Timestamp of the latest frame played from a packet (or FEC): a DTX pause shows as a
    /// jump from it to the next packet's.
    last_ts: Option<i64>,
    /// Arrival times of the first and the last of the current run of unusable (late or
    /// duplicate) packets.
    unusable: Option<(i64, i64)>,
    base_us: Option<i64>,
    jitter_us: i64,
    target_us: i64,
    delay_us: i64,
    /// The delay the earliest of the recent pops would see now (`delay_us` less how late
    /// this pop came): what shrinking and shorter silences go by.
    floor_us: i64,
    /// New transit samples since the target was computed.
    dirty: bool,
    stats: JitterStats,
}

/// Timestamp (48 kHz ticks) to µs. Saturating, like the time arithmetic around it: made-up
/// timestamps from a peer must not overflow, only look absurd (and get dropped or resynced).
fn ts_to_us(ts: i64) -> i64 {
    ts.saturating_mul(1_000_000)
        .div_euclid(i64::from(SAMPLE_RATE))
}

/// Times stay far from `i64` overflow whatever the caller passes.
fn clamp_time(now_us: u64) -> i64 {
    now_us.min(1 << 62) as i64
}

fn to_ms(us: i64) -> u32 {
    u32::try_from(us.max(0).saturating_add(500) / 1000).unwrap_or(u32::MAX)
}

impl JitterBuffer {
    /// Creates a buffer; its memory (slots for the packets the hard maximum allows, the
    /// window) is allocated here once.
    pub fn new(config: JitterConfig) -> Result<Self, JitterConfigError> {
        let frame_ms = config.frame.millis();
        config.check()?;
        // Enough for the hard maximum twice over, plus reordering slack: more would only
        // ever hold packets the hard maximum drops.
        let capacity = 2 * config.max_delay_ms.div_ceil(frame_ms) as usize + 4;
        let frame = config.frame.samples() as i64;
        Ok(Self {
            frame,
            frame_us: ts_to_us(frame),
            min_delay_us: i64::from(config.min_delay_ms) * 1000,
            max_delay_us: i64::from(config.max_delay_ms) * 1000,
            max_conceal_frames: config.max_conceal_ms / frame_ms,
            jitter_margin_us: i64::from(config.jitter_margin_ms) * 1000,
            rephase_headroom_us: i64::from(config.rephase_headroom_ms) * 1000,
            pop_quantum_us: 0,
            slots: Slots::new(capacity),
            window: TransitWindow::new(config.window_packets.into()),
            pops: PopClock::new(),
            started: false,
            highest_seq: 0,
            highest_ts: 0,
            next_seq: 0,
            play_ts: None,
            recent: 0,
            in_talkspurt: false,
            conceal_run: 0,
            since_shrink: 0,
            scale: Scale::Keep,
            unresolved: 0,
            last_ts: None,
            unusable: None,
            base_us: None,
            jitter_us: 0,
            target_us: (i64::from(config.min_delay_ms) * 1000)
                .max(i64::from(config.jitter_margin_ms) * 1000),
            delay_us: 0,
            floor_us: 0,
            dirty: false,
            stats: JitterStats::default(),
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Counters and current delay, target and jitter.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            delay_ms: if self.play_ts.is_some() {
                to_ms(self.delay_us)
            } else {
                0
            },
            target_ms: to_ms(self.target_us),
            jitter_ms: to_ms(self.jitter_us),
            playout_jitter_ms: to_ms(self.pops.spread_us()),
            buffered: u32::try_from(self.slots.len()).unwrap_or(u32::MAX),
            ..self.stats
        }
    }

    /// Takes a packet that arrived at `now_us`: its sequence number, its 48 kHz timestamp and
    /// its Opus payload (copied into a slot).
    pub fn push(&mut self, now_us: u64, seq: u32, timestamp: u32, payload: &[u8]) -> Push {
        if payload.is_empty() || payload.len() > MAX_PACKET_BYTES {
            self.stats.rejected += 1;
            return Push::Rejected;
        }
        self.stats.received += 1;
        let now = clamp_time(now_us);
        if !self.started {
            self.start(now, seq, timestamp, payload);
            return Push::Buffered;
        }
        // Unwrap against the newest packet: the u32 difference read as i32 is the step.
        let eseq = self.highest_seq + i64::from(seq.wrapping_sub(self.highest_seq as u32) as i32);
        let ets =
            self.highest_ts + i64::from(timestamp.wrapping_sub(self.highest_ts as u32) as i32);
        let transit = now.saturating_sub(ts_to_us(ets));
        let seq_jump =
            (eseq - self.highest_seq).unsigned_abs() > u64::from(self.config.resync_seq_jump);
        let clock_jump = self
            .base_us
            .is_some_and(|base| transit < base.saturating_sub(RESYNC_CLOCK_JUMP_US));
        if seq_jump || clock_jump {
            return self.resync(now, seq, timestamp, payload);
        }
        if eseq == self.next_seq {
            self.resolve(ets);
        }
        // Before playout starts, a packet overtaken by a later one is still welcome.
        if self.play_ts.is_none() && eseq < self.next_seq && self.next_seq - eseq < HISTORY {
            self.next_seq = eseq;
        }
        if eseq < self.next_seq {
            let age = self.next_seq - 1 - eseq;
            if age < HISTORY {
                if self.recent & (1 << age) != 0 {
                    return self.unusable(now, Push::Duplicate, (seq, timestamp, payload));
                }
                self.recent |= 1 << age;
            }
            return self.late(now, transit, (seq, timestamp, payload));
        }
        match self.slots.find(eseq) {
            // The packet came after a copy of it filled its place (reordered, or late by
            // less than the copy's lead): the packet itself takes the place, as a copy may
            // have been re-encoded at a lower bitrate by another encoder.
            Some(held) if held.copy => self.slots.remove(held.slot),
            Some(_) => return self.unusable(now, Push::Duplicate, (seq, timestamp, payload)),
            None => {}
        }
        if self.play_ts.is_some_and(|play| ets < play) {
            return self.late(now, transit, (seq, timestamp, payload));
        }
        self.unusable = None;
        self.window.push(transit);
        self.dirty = true;
        if eseq > self.highest_seq {
            self.highest_seq = eseq;
            self.highest_ts = ets;
        }
        if !self.slots.insert(eseq, ets, now, payload) {
            // Full: playout has stalled or the sender floods. Keep the newest packets.
            match self.slots.earliest() {
                Some(oldest) if oldest.seq < eseq => {
                    self.slots.remove(oldest.slot);
                    self.consume_seq(oldest.seq, true);
                    self.stats.dropped += 1;
                    self.slots.insert(eseq, ets, now, payload);
                }
                _ => self.stats.dropped += 1,
            }
        }
        Push::Buffered
    }

    /// Takes a redundant copy of an earlier packet that came at `now_us` inside a later
    /// datagram (RED-style): held as that sequence number's packet if it is still missing
    /// and not yet due; ignored otherwise (returns whether it was held). Unlike
    /// [`push`](Self::push), a copy says nothing of the network's timing (it comes a frame
    /// or two after its original would have), so it stays out of the jitter estimate, and a
    /// copy of a packet already here or played is no duplicate: only the packets themselves
    /// count towards a restart. If the packet itself comes while its copy is still held,
    /// it takes the copy's place.
    pub fn fill(&mut self, now_us: u64, seq: u32, timestamp: u32, payload: &[u8]) -> bool {
        if !self.started || payload.is_empty() || payload.len() > MAX_PACKET_BYTES {
            return false;
        }
        let eseq = self.highest_seq + i64::from(seq.wrapping_sub(self.highest_seq as u32) as i32);
        let ets =
            self.highest_ts + i64::from(timestamp.wrapping_sub(self.highest_ts as u32) as i32);
        if eseq < self.next_seq || eseq >= self.highest_seq || self.slots.contains(eseq) {
            return false;
        }
        if self.play_ts.is_some_and(|play| ets < play) {
            return false;
        }
        self.slots
            .insert_as(eseq, ets, clamp_time(now_us), payload, true)
    }

    /// Sets the floor of the target delay, ms (kept within what [`JitterBuffer::new`]
    /// checks): a sender that repeats each packet two frames later (redundancy) is only
    /// heard from the copy if the buffer holds that long.
    pub fn set_min_delay_ms(&mut self, ms: u32) {
        let frame_ms = self.config.frame.millis();
        let ms = ms.min(self.config.max_delay_ms - frame_ms);
        if ms != self.config.min_delay_ms {
            self.config.min_delay_ms = ms;
            self.min_delay_us = i64::from(ms) * 1000;
            self.dirty = true;
        }
    }

    /// The delay at the latest pop and the target, µs, once playout has started: a clock
    /// drift controller (`audio/drift.rs`) keeps the one from creeping away from the other
    /// in the long run, so the buffer need not skip or stretch for drift.
    pub fn delay_and_target_us(&self) -> Option<(i64, i64)> {
        self.play_ts.map(|_| (self.delay_us, self.target_us))
    }

    /// How much of the silent frame just popped the caller may leave out, µs, to bring the
    /// delay down to just above the target ([`JitterConfig::rephase_headroom_ms`]) with
    /// finer steps than a frame. Whole frames are only dropped
    /// once the delay is a frame or more above the target, so between talkspurts the delay
    /// can rest anywhere up to a frame too high; playing a shorter silence there makes the
    /// next pops come sooner, which is inaudible. Nonzero only after a pop that returned
    /// silence outside a talkspurt, and never more than half a frame at a time. With
    /// bursty pops it is the earliest pops' delay that comes down to there.
    pub fn rephase_us(&self) -> u64 {
        match self.rephase_excess_us() {
            Some(excess) if excess >= REPHASE_MIN_US => excess.min(self.frame_us / 2) as u64,
            _ => 0,
        }
    }

    /// How far the delay (of the earliest recent pops) is above where shorter silences
    /// would bring it, µs, negative when below; `None` unless the latest pop returned
    /// silence outside a talkspurt. For a caller whose pops come in steps
    /// ([`Self::set_pop_quantum_us`]) and who knows what a shorter silence does to them:
    /// one that only shortens what waits at the device before the next frame leaves the
    /// pops where they are.
    pub fn rephase_excess_us(&self) -> Option<i64> {
        if self.in_talkspurt || self.play_ts.is_none() {
            return None;
        }
        Some(self.floor_us - self.target_us - self.rephase_headroom_us)
    }

    /// The pops come in steps of `us` (the playback device's block: a pop when the device
    /// has taken one), so the delay at a pop moves by that much when the device's clock
    /// and the sender's drift past each other, although the audio does not move. The band
    /// the delay may rest in before the buffer shrinks is then at least two such steps
    /// wide, not one frame.
    pub fn set_pop_quantum_us(&mut self, us: u64) {
        self.pop_quantum_us = i64::try_from(us).unwrap_or(i64::MAX).min(self.max_delay_us);
    }

    /// How far above the target the delay may rest before the buffer shrinks, µs.
    fn band_us(&self) -> i64 {
        self.frame_us.max(2 * self.pop_quantum_us)
    }

    /// The timestamp of the latest frame played from its own packet or recovered with FEC,
    /// as the sender stamped it.
    pub fn last_played_ts(&self) -> Option<u32> {
        self.last_ts.map(|ts| ts as u32)
    }

    /// How to play the frame the latest [`pop`](Self::pop) returned: a pitch period
    /// longer while the delay grows in speech, shorter while it shrinks, else as it is.
    /// Only ever other than [`Scale::Keep`] for a [`Playout::Packet`]. The caller that
    /// scales tells [`Self::time_scaled`] by how much.
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// The frame just popped was played `delta_us` longer (or, negative, shorter) than a
    /// frame: the next pops come that much later (sooner). That is the delay moving as
    /// asked, not the playback device being irregular, so the pops' phases move with it.
    pub fn time_scaled(&mut self, delta_us: i64) {
        match delta_us.signum() {
            1 => self.stats.expanded += 1,
            -1 => self.stats.accelerated += 1,
            _ => return,
        }
        self.pops.shift(delta_us);
    }

    /// Says what to play for the next frame; call once per frame period at `now_us`. A
    /// returned payload borrows the buffer until the next call.
    pub fn pop(&mut self, now_us: u64) -> Playout<'_> {
        let now = clamp_time(now_us);
        self.refresh_target();
        self.scale = Scale::Keep;
        let play = match (self.play_ts, self.slots.earliest()) {
            (Some(play), _) => play,
            (None, Some(first)) => {
                self.play_ts = Some(first.ts);
                first.ts
            }
            (None, None) => return Playout::Silence,
        };
        // A stream with a packet always has a base; the fallback is only for safety.
        let since_sent = now.saturating_sub(ts_to_us(play));
        let mut delay = since_sent.saturating_sub(self.base_us.unwrap_or(since_sent));
        // How much more delay this pop sees than the earliest recent pops would, less a
        // quarter frame: irregularity that small (a media thread's 5 ms tick, clock drift
        // over the window) is covered by the frame-wide band between growing and shrinking,
        // and counting it would only keep excess delay longer.
        let late = (self.pops.record(now, self.frame_us, self.max_delay_us) - self.frame_us / 4)
            .clamp(0, delay.max(0));
        let mut floor = delay - late;
        if delay > self.max_delay_us {
            let frames = ((delay - self.target_us) / self.frame_us).clamp(1, i64::from(u32::MAX));
            self.skip(frames);
            delay -= frames * self.frame_us;
            floor -= frames * self.frame_us;
        } else if floor >= self.target_us + self.band_us() {
            let class = self.classify();
            let free = match class {
                Class::Present(_) => false,
                Class::Empty => !self.in_talkspurt,
                Class::Lost(_) | Class::Gap => true,
            };
            let margin = (self.frame_us / 4).min(self.jitter_us);
            let speech_ok = self.since_shrink >= self.config.shrink_every_frames
                && floor >= self.target_us + self.band_us() + margin;
            if free {
                self.skip(1);
                self.since_shrink = 0;
                delay -= self.frame_us;
                floor -= self.frame_us;
            } else if speech_ok && matches!(class, Class::Present(_)) {
                // Speech is not skipped but played a pitch period shorter.
                self.scale = Scale::Accelerate;
                self.since_shrink = 0;
            }
        }
        self.delay_us = delay;
        self.floor_us = floor;
        if delay < self.target_us {
            // In speech with the packet here, the frame is played a pitch period longer
            // instead of holding the play position for a frame of concealment; the delay
            // grows by that much at the next pop.
            if !(self.in_talkspurt && matches!(self.classify(), Class::Present(_))) {
                self.stats.stretched += 1;
                let known = !matches!(self.classify(), Class::Empty);
                return self.filler(known);
            }
            self.scale = Scale::Expand;
        }
        self.since_shrink = self.since_shrink.saturating_add(1);
        let Some(play) = self.play_ts else {
            return Playout::Silence;
        };
        match self.classify() {
            Class::Present(held) => {
                self.slots.remove(held.slot);
                self.consume_seq(held.seq, true);
                self.set_play(play.max(held.ts) + self.frame);
                if now - held.arrival_us > self.max_delay_us {
                    self.stats.dropped += 1;
                    self.scale = Scale::Keep;
                    return self.filler(true);
                }
                self.last_ts = Some(held.ts);
                self.stats.played += 1;
                self.in_talkspurt = true;
                self.conceal_run = 0;
                Playout::Packet(self.slots.payload(&held))
            }
            Class::Lost(next) => {
                self.consume_seq(self.next_seq, false);
                self.set_play(play + self.frame);
                self.scale = Scale::Keep;
                match next {
                    Some(next) => {
                        self.last_ts = Some(play);
                        self.stats.fec += 1;
                        self.in_talkspurt = true;
                        self.conceal_run = 0;
                        // Do not skip the packet just used for FEC to shrink: the decoder
                        // expects it next.
                        self.since_shrink = 0;
                        Playout::Fec(self.slots.payload(&next))
                    }
                    None => self.filler(true),
                }
            }
            Class::Gap => {
                self.set_play(play + self.frame);
                self.in_talkspurt = false;
                self.scale = Scale::Keep;
                Playout::Silence
            }
            Class::Empty => {
                self.set_play(play + self.frame);
                self.scale = Scale::Keep;
                self.filler(false)
            }
        }
    }

    fn start(&mut self, now: i64, seq: u32, timestamp: u32, payload: &[u8]) {
        self.slots.clear();
        self.window.clear();
        self.pops.clear();
        self.started = true;
        self.highest_seq = i64::from(seq);
        self.highest_ts = i64::from(timestamp);
        self.next_seq = self.highest_seq;
        self.play_ts = None;
        self.recent = 0;
        self.in_talkspurt = false;
        self.conceal_run = 0;
        self.since_shrink = 0;
        self.scale = Scale::Keep;
        // A restarted stream says nothing about why the old one went quiet.
        self.unresolved = 0;
        self.last_ts = None;
        self.unusable = None;
        self.base_us = None;
        self.window
            .push(now.saturating_sub(ts_to_us(self.highest_ts)));
        self.dirty = true;
        self.slots
            .insert(self.highest_seq, self.highest_ts, now, payload);
    }

    fn resync(&mut self, now: i64, seq: u32, timestamp: u32, payload: &[u8]) -> Push {
        self.stats.resyncs += 1;
        self.stats.dropped += self.slots.len() as u64;
        self.start(now, seq, timestamp, payload);
        Push::Resynced
    }

    fn late(&mut self, now: i64, transit: i64, packet: (u32, u32, &[u8])) -> Push {
        // Late packets are exactly the jitter the target failed to cover: count them in.
        self.window.push(transit);
        self.dirty = true;
        self.unusable(now, Push::Late, packet)
    }

    /// Counts a packet that cannot be played. A steady stream of them (every one late or
    /// "already seen") is a source that restarted behind us, or a clock that jumped back.
    fn unusable(&mut self, now: i64, outcome: Push, packet: (u32, u32, &[u8])) -> Push {
        match outcome {
            Push::Duplicate => self.stats.duplicates += 1,
            _ => self.stats.late += 1,
        }
        // A restarted source sends at its frame rate; a pause in the run means it was stray
        // packets around some pause (DTX, outage), not a stream.
        let since = match self.unusable {
            Some((since, last)) if now - last <= UNUSABLE_RUN_GAP_US => since,
            _ => now,
        };
        self.unusable = Some((since, now));
        if now - since >= i64::from(self.config.resync_after_late_ms) * 1000 {
            let (seq, timestamp, payload) = packet;
            return self.resync(now, seq, timestamp, payload);
        }
        outcome
    }

    fn refresh_target(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some((base, jitter)) = self.window.base_and_jitter(self.config.jitter_percentile) {
            self.base_us = Some(base);
            self.jitter_us = jitter;
            self.target_us = (jitter + self.jitter_margin_us)
                .min(self.max_delay_us - self.frame_us)
                .max(self.min_delay_us);
        }
    }

    fn classify(&self) -> Class {
        let (Some(play), Some(first)) = (self.play_ts, self.slots.earliest()) else {
            return Class::Empty;
        };
        if first.ts < play + self.frame {
            return Class::Present(first);
        }
        // `missing` sequence numbers are unaccounted for before `first`; they cover the
        // frames just before it. Earlier frames were never sent: DTX.
        let missing = first.seq - self.next_seq;
        if first.ts - play <= missing * self.frame {
            Class::Lost((first.ts - play < 2 * self.frame).then_some(first))
        } else {
            Class::Gap
        }
    }

    /// Concealment while in speech, up to the configured run; silence after. `lost`: a
    /// packet is known to be missing or late; else nothing is buffered and the next packet
    /// will tell whether the sender was in DTX ([`Self::resolve`]).
    fn filler(&mut self, lost: bool) -> Playout<'static> {
        if self.in_talkspurt && self.conceal_run < self.max_conceal_frames {
            self.conceal_run += 1;
            if lost {
                self.stats.concealed += 1;
            } else {
                self.unresolved += 1;
            }
            Playout::Conceal
        } else {
            self.in_talkspurt = false;
            Playout::Silence
        }
    }

    /// Moves the play position `frames` ahead, dropping what it passes.
    fn skip(&mut self, frames: i64) {
        if let Some(play) = self.play_ts {
            self.stats.skipped += frames.unsigned_abs();
            self.set_play(play + frames * self.frame);
        }
    }

    /// Sets the play position, dropping held packets that are now behind it.
    fn set_play(&mut self, play: i64) {
        self.play_ts = Some(play);
        while let Some(behind) = self.slots.earliest_before(play) {
            self.slots.remove(behind.slot);
            self.consume_seq(behind.seq, true);
            self.stats.dropped += 1;
        }
    }

    /// The packet after the frames concealed while nothing was buffered came, with
    /// timestamp `ts` and the next sequence number: the frames the sender skipped (its
    /// timestamp jumped) were its DTX pause, any others were this packet being late.
    fn resolve(&mut self, ts: i64) {
        if self.unresolved == 0 {
            return;
        }
        let skipped = self
            .last_ts
            .map_or(0, |last| ((ts - last) / self.frame - 1).max(0));
        let dtx = self.unresolved.min(skipped.unsigned_abs());
        self.stats.dtx += dtx;
        self.stats.concealed += self.unresolved - dtx;
        self.unresolved = 0;
    }

    /// Accounts sequence numbers up to `seq`: the ones before it were lost, and `seq` itself
    /// too unless `received`.
    fn consume_seq(&mut self, seq: i64, received: bool) {
        if seq < self.next_seq {
            return;
        }
        let gap = (seq - self.next_seq) as u64;
        if gap > 0 || !received {
            // A packet was lost: what was concealed waiting for it was concealment.
            self.stats.concealed += self.unresolved;
            self.unresolved = 0;
        }
        self.stats.lost += gap + u64::from(!received);
        let shift = seq + 1 - self.next_seq;
        self.recent = if shift >= HISTORY {
            0
        } else {
            self.recent << shift
        };
        if received {
            self.recent |= 1;
        }
        self.next_seq = seq + 1;
    }
}
