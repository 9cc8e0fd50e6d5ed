//! How our sending adapts to what the far side reports, sans-IO: [`Adapter::on_report`]
//! takes each [`MediaReport`] with the time, and [`Adapter::settings`] says what the encoder
//! and the datagrams should be now: the Opus bitrate, in-band FEC's expected loss, and how
//! many earlier frames each datagram carries again ([`Settings::redundancy`], RED-style).
//!
//! The rules (`docs/architecture.md`, "Loss resilience"):
//! - **Loss estimate.** Lost and expected frames of the reports, each report's weight
//!   shrinking by a quarter with every newer one (about four seconds of memory); the mean burst is lost
//!   frames per run. A report of a DTX pause carries few frames and so little weight.
//! - **Redundancy, with hysteresis.** One earlier frame from [`Thresholds::one_on`] loss
//!   (a lost frame is then played from the next datagram's copy: with independent losses
//!   10 % becomes 1 %); two from [`Thresholds::two_on`], or from
//!   [`Thresholds::two_on_bursty`] when losses come in runs (mean burst at least
//!   [`Thresholds::bursty`]). The second copy comes two frames after the original, so
//!   a receiver that gets two copies holds two frames in its jitter buffer (the
//!   pipeline's `receive`). When losses come in runs and the loss is below `two_on`,
//!   the two copies become one copy two frames back ([`Settings::first_back`]): for a
//!   lone run it repairs as much (the run's last two frames) and the encoder keeps the
//!   bitrate of one copy; two copies again once the loss reaches `two_on` (and back below
//!   [`Thresholds::spread_on`]). A level is left only after the loss
//!   stayed below its lower `off` threshold for [`Thresholds::hold_us`], so a loss rate
//!   near one threshold does not flip the stream every second.
//! - **Start protected.** The first report, or the features datagram the far side sends
//!   with its first frame (a second earlier), shows that it reads copies; until the
//!   reports show a clean path for [`Thresholds::start_hold_us`], one copy is sent, so
//!   the first seconds of a call on a lossy path (before enough reports came to measure
//!   it) are protected too. A far side that reads deep copies gets [`START_SPREAD`]
//!   instead: copies one and six frames back, re-encoded as the deep copies are, so a
//!   bursty path is protected from the first frame, not from when the reports showed
//!   the bursts (on the speech bench's codec-alone plans, deep copies only from 2 s into
//!   the clip cost 0.4). The receiver holds six frames for them only after the network
//!   lost a run of frames (`copies_floor.rs`); a lone loss is repaired by the copy one
//!   back at its floor of a frame. (Deep copies as the start's copies when the receiver
//!   held six frames at any loss were tried: the first lone loss on a randomly lossy
//!   path made it time-scale its way up to six frames, and the first clip at 5 % loss
//!   scored 0.4 lower.)
//! - **Bitrate.** Copies repeat packets, so the encoder's bitrate is cut to keep what is
//!   sent (datagrams: the frame header, the packet, the copies and their few header
//!   bytes) within [`MAX_TOTAL_FACTOR`] (1.6×) of the clean stream's, aiming a little
//!   lower for VBR's overshoot: with a call's 32 kbit/s and a 15-byte header (a real call
//!   id; 6 kbit/s), 24.2 kbit/s with one copy (also the lone copy two back), 15.3 with two
//!   (at 24 kbit/s: 18.2 and 11.3).
//! - **Deep copies against bursts.** A far side whose features datagram says it reads
//!   deep redundant frames ([`Adapter::set_deep_copies`]) gets, instead of the lone copy
//!   two back, [`Thresholds::deep`]: copies three and six frames back ([`DEEP_SPREAD`]),
//!   re-encoded at [`DEEP_COPY_BITRATE_BPS`] by a second encoder
//!   ([`Settings::copy_bitrate_bps`]), so that both fit the budget with the frame at
//!   about the bitrate it has with one full-rate copy. They repair whole runs of up to six
//!   lost frames (with a mean burst of 3, 91 % of runs against 56 % for the copy two back
//!   and 80 % for one copy four back); the receiver holds six frames while such copies
//!   come and the network lost runs of frames lately (`copies_floor.rs`). They stay at any loss in runs (not left for copies one and
//!   two back above [`Thresholds::two_on`]). On the speech bench's codec-alone plans these score 3.58
//!   against 3.18 for one full-rate copy four back, at the same bitrate.
//! - **FEC.** Without redundancy, the expected loss is the measured loss: Opus spends bits
//!   on in-band FEC in proportion, none on a clean path (on the speech bench the codec
//!   alone at 32 kbit/s scores WB-PESQ 4.10 with FEC off against 3.53 at 10 % expected
//!   loss); [`MIN_FEC_PERCENT`] until the first report. With redundancy, only the loss it
//!   leaves (the frame and its copies all lost) is asked for: in-band FEC is a coarse copy
//!   of the frame the redundant copy carries whole.

use phoned_proto::media::{MAX_EARLIER, MediaReport};

/// Total bitrate (the encoder's and the copies') at most this times the clean bitrate.
pub const MAX_TOTAL_FACTOR: f64 = 1.6;
/// What the bitrate arithmetic aims at: below [`MAX_TOTAL_FACTOR`] by the few percent
/// Opus' VBR overshoots its target on steady sounds (measured up to 4 %).
const AIM_FACTOR: f64 = 1.52;
/// What a copy adds beyond its packet: `seq_back`, `ts_back` and the payload length, up to
/// six bytes a frame, 50 frames a second.
pub const COPY_OVERHEAD_BPS: u32 = 6 * 8 * 50;
/// What a redundant frame's header adds to a plain one's: the kind byte and the count of
/// copies.
pub const REDUNDANT_HEADER_BPS: u32 = 2 * 8 * 50;
/// In-band FEC's expected loss until the far side's first report (and always for a peer
/// that never reports): the first losses of a call come before any report. Once reports
/// come, the expected loss is what they show, 0 on a clean path.
pub const MIN_FEC_PERCENT: u8 = 5;
/// Opus' lowest bitrate: a redundancy level that would need less is not taken.
const MIN_BITRATE_BPS: u32 = 6_000;
/// The copies against bursts for a peer that reads deep copies: see `docs/benchmarks.md`,
/// speech quality, bursts.
pub const DEEP_SPREAD: Spread = Spread {
    count: 2,
    first_back: 3,
    step: 3,
    copy_bitrate_bps: DEEP_COPY_BITRATE_BPS,
};
/// The start's copies for a peer that reads deep copies, until the reports show the path:
/// one frame back, for lone losses at the floor of a frame, and six back, for runs once
/// the receiver saw one and holds six frames (`copies_floor.rs`: not for lone losses),
/// re-encoded as [`DEEP_SPREAD`]'s, so the frame keeps the bitrate it has with them.
pub const START_SPREAD: Spread = Spread {
    count: 2,
    first_back: 1,
    step: 5,
    copy_bitrate_bps: DEEP_COPY_BITRATE_BPS,
};
/// The bitrate deep copies are re-encoded at by a second encoder: low enough that two of
/// them and the frame fit the budget with the frame near the bitrate of one full copy.
pub const DEEP_COPY_BITRATE_BPS: u32 = 10_000;
/// Each report's weight is this times the next one's: about four seconds of memory
/// (some 200 frames of speech, so a 10 % loss reads as 8–12 %).
const DECAY: f64 = 0.75;

/// What the encoder and the datagrams should be now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Opus target bitrate, bit/s.
    pub bitrate_bps: u32,
    /// Opus expected loss, %, which sets in-band FEC's strength.
    pub expected_loss_percent: u8,
    /// Earlier frames each datagram carries, 0..=[`MAX_EARLIER`] (up to
    /// [`MAX_EARLIER_DEEP`](phoned_proto::media::MAX_EARLIER_DEEP) for a peer that reads
    /// deep copies).
    pub redundancy: u8,
    /// How many frames back the newest of them is: 1 (the frame before, and the one
    /// before that for a second copy), or more against bursts.
    pub first_back: u8,
    /// How many frames apart the copies are (1: frames one after the other).
    pub step: u8,
    /// The copies' own bitrate, bit/s, when they are re-encoded at a lower bitrate by a
    /// second encoder; 0: they are the packets as sent.
    pub copy_bitrate_bps: u32,
}

/// Which earlier frames a datagram carries against bursts for a peer that reads deep
/// copies: `count` copies, the newest `first_back` frames back, `step` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    pub count: u8,
    pub first_back: u8,
    pub step: u8,
    /// Re-encoded at this bitrate (0: the packets as sent).
    pub copy_bitrate_bps: u32,
}

impl Spread {
    /// How many frames back the oldest copy is.
    pub fn last_back(&self) -> u8 {
        self.first_back + self.count.saturating_sub(1) * self.step
    }
}

/// Loss rates (fractions) at which redundancy levels are taken and left.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub one_on: f64,
    pub one_off: f64,
    pub two_on: f64,
    pub two_on_bursty: f64,
    pub two_off: f64,
    /// A mean burst (lost frames per run) from which losses count as bursty.
    pub bursty: f64,
    /// Bursty loss below this takes one copy two frames back instead of two copies (left
    /// again from `two_on`).
    pub spread_on: f64,
    /// How long the loss must stay below a level's `off` threshold before it is left, µs.
    pub hold_us: u64,
    /// The same for the copy sent from the first report on, before any loss was seen.
    pub start_hold_us: u64,
    /// The copies sent against bursts to a peer that reads deep copies (otherwise one
    /// copy two frames back).
    pub deep: Spread,
    /// The start's copies for a peer that reads deep copies (otherwise one copy one
    /// frame back).
    pub deep_start: Spread,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            one_on: 0.03,
            one_off: 0.01,
            two_on: 0.18,
            two_on_bursty: 0.06,
            two_off: 0.05,
            bursty: 1.8,
            spread_on: 0.14,
            hold_us: 6_000_000,
            start_hold_us: 3_000_000,
            deep: DEEP_SPREAD,
            deep_start: START_SPREAD,
        }
    }
}

/// The sender's adaptation controller; see the module docs.
#[derive(Debug)]
pub struct Adapter {
    clean_bitrate_bps: u32,
    /// What each datagram's header costs, bit/s (sent once per frame, copies or not).
    header_bps: u32,
    thresholds: Thresholds,
    /// Decayed sums of the reports' lost frames, expected frames and loss runs.
    lost: f64,
    expected: f64,
    bursts: f64,
    redundancy: u8,
    /// Since when the loss has been low enough to leave the current level, µs.
    low_since: Option<u64>,
    /// The start's protection began (first report or features).
    started: bool,
    /// The level is the start's, not taken for loss seen.
    starting: bool,
    /// Losses come in runs at a rate that copies spread out serve best.
    spread: bool,
    /// The far side reads deep copies (its features said so).
    deep: bool,
    reports: u64,
}

impl Adapter {
    /// A controller for a stream whose clean-path Opus bitrate is `clean_bitrate_bps`, in
    /// datagrams whose frame header costs `header_bps`.
    pub fn new(clean_bitrate_bps: u32, header_bps: u32, thresholds: Thresholds) -> Self {
        Self {
            clean_bitrate_bps,
            header_bps,
            thresholds,
            lost: 0.0,
            expected: 0.0,
            bursts: 0.0,
            redundancy: 0,
            low_since: None,
            started: false,
            starting: false,
            spread: false,
            deep: false,
            reports: 0,
        }
    }

    /// What the far side's features say: whether it reads deep copies. A far side that
    /// sends features reads copies, so the start's protection begins here if no report
    /// came yet (the features come with the first frame, before the first report).
    pub fn set_deep_copies(&mut self, deep: bool) {
        self.deep = deep;
        self.start();
    }

    /// The start's protection, once: one copy ([`START_SPREAD`] for a peer that reads
    /// deep copies) until the reports show a clean path for the start hold.
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.redundancy = 1;
            self.starting = true;
        }
    }

    /// Reports taken so far.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// The smoothed loss rate, 0.0..=1.0.
    pub fn loss(&self) -> f64 {
        if self.expected < 1.0 {
            0.0
        } else {
            (self.lost / self.expected).clamp(0.0, 1.0)
        }
    }

    /// Lost frames per run of losses (1.0 when losses are isolated or there are none).
    pub fn mean_burst(&self) -> f64 {
        if self.bursts < 0.5 {
            1.0
        } else {
            (self.lost / self.bursts).max(1.0)
        }
    }

    /// Takes a report from the far side that arrived at `now_us`.
    pub fn on_report(&mut self, now_us: u64, report: &MediaReport) {
        self.reports += 1;
        // Start protected (if the features did not start it); left after the shorter
        // start hold if all is clean.
        self.start();
        self.lost = self.lost * DECAY + f64::from(report.lost);
        self.expected = self.expected * DECAY + f64::from(report.expected);
        self.bursts = self.bursts * DECAY + f64::from(report.bursts);
        // Losses in runs: one copy two frames back repairs the last two frames of a run as
        // the two copies one and two back do, at the bitrate of one copy (the lone copy of a
        // frame is sent two frames later, so the far side holds two frames either way).
        // Only when loss is high anyway are two copies kept, for runs close together. Deep
        // copies (three and six back) stay at any loss in runs: a frame is then lost only
        // with the frames three and six after it, which runs of losses leave far less often
        // than the two frames right after it.
        let t = &self.thresholds;
        let spread_below = if self.spread { t.two_on } else { t.spread_on };
        self.spread = MAX_EARLIER >= 2
            && self.mean_burst() >= t.bursty
            && (self.deep || self.loss() < spread_below);
        let wanted = self.wanted();
        if wanted >= self.redundancy {
            // Loss that keeps a level (or asks for more) ends the start's shorter hold.
            self.starting = false;
        }
        if wanted > self.redundancy {
            self.redundancy = wanted;
            self.low_since = None;
        } else if wanted < self.redundancy {
            let since = *self.low_since.get_or_insert(now_us);
            let hold = if self.starting {
                self.thresholds.start_hold_us
            } else {
                self.thresholds.hold_us
            };
            if now_us.saturating_sub(since) >= hold {
                self.redundancy -= 1;
                self.low_since = None;
                self.starting = false;
            }
        } else {
            self.low_since = None;
        }
    }

    /// The level the latest loss estimate asks for, with the current level's `off`
    /// threshold (not its `on`) deciding whether to stay.
    fn wanted(&self) -> u8 {
        let t = &self.thresholds;
        let loss = self.loss();
        let bursty = self.mean_burst() >= t.bursty;
        let two_on = loss >= t.two_on || (bursty && loss >= t.two_on_bursty);
        let two_stays = self.redundancy >= 2 && loss >= t.two_off;
        if MAX_EARLIER >= 2 && (two_on || two_stays) {
            2
        } else if loss >= t.one_on || (self.redundancy >= 1 && loss >= t.one_off) {
            1
        } else {
            0
        }
    }

    /// What the encoder and the datagrams should be now.
    pub fn settings(&self) -> Settings {
        let budget = (f64::from(self.clean_total_bps()) * AIM_FACTOR) as u32;
        // The encoder's bitrate with `level` copies, each the packet as sent (`copy` 0) or
        // re-encoded at `copy` bit/s.
        let rate_with = |level: u32, copy: u32| {
            let fixed = self.header_bps + REDUNDANT_HEADER_BPS + level * COPY_OVERHEAD_BPS;
            if copy == 0 {
                budget.saturating_sub(fixed) / (1 + level)
            } else {
                budget.saturating_sub(fixed + level * copy)
            }
        };
        let rate = |level: u32| rate_with(level, 0);
        // The most copies the cap leaves Opus a bitrate for (none for a clean rate near
        // Opus' floor).
        let mut level = (0..=u32::from(self.redundancy))
            .rev()
            .find(|&l| l == 0 || rate(l) >= MIN_BITRATE_BPS)
            .unwrap_or(0);
        let loss = self.loss();
        let mut copy_bitrate_bps = 0;
        // Deep copies against bursts, or the start's copies for a peer that reads them.
        let deep = match (self.spread, self.starting) {
            _ if !self.deep || level == 0 => None,
            (true, _) => Some(self.thresholds.deep),
            (false, true) => Some(self.thresholds.deep_start),
            (false, false) => None,
        };
        let (first_back, step) = match (deep, self.spread && level >= 1) {
            (Some(deep), _) => {
                level = u32::from(deep.count);
                copy_bitrate_bps = deep.copy_bitrate_bps;
                // Re-encoded copies only where they leave the frame more than themselves.
                if copy_bitrate_bps > 0 && rate_with(level, copy_bitrate_bps) < copy_bitrate_bps {
                    copy_bitrate_bps = 0;
                }
                if rate_with(level, copy_bitrate_bps) < MIN_BITRATE_BPS {
                    level = 1;
                    copy_bitrate_bps = 0;
                }
                (deep.first_back, deep.step)
            }
            (None, true) => {
                level = 1;
                (2, 1)
            }
            (None, false) => (1, 1),
        };
        let bitrate_bps = if level == 0 {
            self.clean_bitrate_bps
        } else {
            rate_with(level, copy_bitrate_bps).min(self.clean_bitrate_bps)
        };
        let fec = if level == 0 && self.reports == 0 {
            // No report yet (or a peer that never reports): losses may come unseen.
            f64::from(MIN_FEC_PERCENT)
        } else if level == 0 {
            // Reports show the loss: none on a clean path, and every bit goes to speech.
            (loss * 100.0).round()
        } else {
            // What is left when the frame and each of its copies are lost: with runs, the
            // chance that the next frame is lost too is about 1 − 1/burst (and the one two
            // frames on, for a lone copy two back, about its square).
            let next_lost = (1.0 - 1.0 / self.mean_burst()).max(loss);
            let last_back = u32::from(first_back) + (level - 1) * u32::from(step);
            let exponent = last_back as i32;
            (loss * next_lost.powi(exponent) * 100.0).round()
        };
        Settings {
            bitrate_bps,
            expected_loss_percent: fec.clamp(0.0, 30.0) as u8,
            redundancy: level as u8,
            first_back,
            step,
            copy_bitrate_bps,
        }
    }

    /// The total bitrate `settings` spend at most, bit/s: the headers', the encoder's and
    /// each copy's.
    pub fn total_bps(&self, settings: &Settings) -> u32 {
        let level = u32::from(settings.redundancy);
        let redundant = if level > 0 { REDUNDANT_HEADER_BPS } else { 0 };
        let copy = match settings.copy_bitrate_bps {
            0 => settings.bitrate_bps,
            re_encoded => re_encoded,
        };
        self.header_bps + redundant + settings.bitrate_bps + level * (copy + COPY_OVERHEAD_BPS)
    }

    /// The clean stream's bitrate, headers included: what the total is held to 1.6 times.
    pub fn clean_total_bps(&self) -> u32 {
        self.clean_bitrate_bps + self.header_bps
    }
}

#[cfg(test)]
mod tests;
