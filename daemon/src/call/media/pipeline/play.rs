//! The play half of [`MediaPipeline`]: frames out of the jitter buffer, decoded, time-scaled
//! and resampled into the playback queue, kept as full as the device needs.

use super::*;

/// A frame this quiet or quieter (RMS, full scale 1.0: −40 dBFS, some 14 dB below speech
/// at its usual level) is stretched as far as the jitter buffer's target asks at once.
const QUIET_RMS: f32 = 0.01;

/// Whether `frame` is quiet enough to be stretched further than a pitch period.
fn quiet(frame: &[f32]) -> bool {
    let energy: f32 = frame.iter().map(|x| x * x).sum();
    energy <= QUIET_RMS * QUIET_RMS * frame.len() as f32
}

impl MediaPipeline {
    /// Onset tracing on the playback side: the frame just played from its packet was a
    /// received onset.
    pub(super) fn trace_played(&mut self, queued: usize) {
        let Some(ts) = self.jitter.last_played_ts() else {
            return;
        };
        if let Some(slot) = self.onsets.iter_mut().find(|o| **o == Some(ts)) {
            *slot = None;
            self.out.events.push(MediaEvent::Onset(Onset {
                stage: Stage::Played,
                timestamp: ts,
                queued,
            }));
        }
    }

    /// The playback device takes `block` samples at a time, so the pops come in those
    /// steps. While the clocks drift past each other, the delay at the pops therefore
    /// moves by a block now and then, although the audio does not: the jitter buffer's
    /// band is widened for it, and the playout delay is held where the steps stay inside
    /// that band. (On matched clocks the delay at the pops does not move, and the band is
    /// a frame.)
    pub(super) fn set_block(&mut self, block: u64) {
        let us = |block: u64| block * 1_000_000 / u64::from(self.playback_rate.max(1));
        if block != self.block && block != 0 {
            self.block = block;
            // The delay at the pops is the playout delay less what waits at the device
            // before the frame (up to a block), and the buffer grows below its target and
            // shrinks a band above: held mid-way between a block above the target and the
            // band's top, the steps stay inside whatever the estimator's dead band leaves.
            let block_us = i64::try_from(us(block)).unwrap_or(i64::MAX);
            let frame_us = i64::from(self.jitter.config().frame.millis()) * 1000;
            self.drift_mid_us = (block_us + frame_us.max(2 * block_us)) / 2;
        }
        let quantum = if self.playback_drift.drifting() {
            us(self.block)
        } else {
            0
        };
        self.jitter.set_pop_quantum_us(quantum);
        self.extras.set_pop_quantum_us(quantum);
    }

    /// How much of the silent frame just popped to leave out (device samples): what waits
    /// at the device before it beyond the block the device takes next (`r`), and whole
    /// blocks of the jitter buffer's excess delay, never so much that the device would
    /// find less than its block (`spare`).
    ///
    /// The pops come when the device has taken a block, so a shorter silence moves them
    /// only by whole blocks (once it leaves less than a block queued, the device takes
    /// its next block a pop sooner); less than that only shortens the wait at the device.
    /// While the clocks drift the playout delay stays where the drift estimator holds it
    /// (see [`Self::set_block`]).
    pub(super) fn trim(&self, queued: usize, queue: usize, frame: usize) -> usize {
        let Some(mut excess_us) = self.jitter.rephase_excess_us() else {
            return 0;
        };
        let rate = i64::from(self.playback_rate.max(1));
        let spare = (queued + frame).saturating_sub(queue).min(frame / 2);
        let block = (self.block as usize).max(1).min(queue.max(1));
        let block_us = block as i64 * 1_000_000 / rate;
        if self.playback_drift.drifting() {
            // Down to where the drift estimator holds it (see `set_block`), not below.
            let frame_us = i64::from(self.jitter.config().frame.millis()) * 1000;
            let mid = (block_us + frame_us.max(2 * block_us)) / 2;
            excess_us -= mid - i64::from(REPHASE_HEADROOM_MS) * 1000;
        }
        let excess = excess_us * rate / 1_000_000;
        let r = (queued + block).saturating_sub(queue) as i64;
        let want = r + excess.div_euclid(block as i64) * block as i64;
        let trim = want.clamp(0, spare as i64) as usize;
        if trim * 1_000_000 < MIN_TRIM_US * self.playback_rate as usize {
            0
        } else {
            trim
        }
    }

    /// Jitter buffer → Opus → device rate, keeping a small queue at the device.
    pub(super) fn play(&mut self, now_us: u64, device: Device, paused: bool) {
        self.set_block(device.last_block);
        let queue = self.demand.queue(now_us, device, self.playback_rate);
        let mut queued = device.queued;
        if paused {
            // After a hold the buffer finds its delay anew.
            self.playback_drift.restart();
        }
        let n = self.receive_frame().samples();
        while queued < queue {
            let mut trim = 0;
            let mut scale = Scale::Keep;
            let decoded = &mut self.decoded[..n];
            if paused {
                decoded.fill(0.0);
                self.stats.silent += 1;
            } else {
                let before = self.jitter.stats();
                let mut from_packet = false;
                let stats = &mut self.stats;
                let result = match self.jitter.pop(now_us) {
                    Playout::Packet(p) => {
                        stats.decoded += 1;
                        from_packet = true;
                        self.decoder.decode(p, decoded)
                    }
                    Playout::Fec(p) => {
                        stats.recovered += 1;
                        self.decoder.decode_fec(p, decoded)
                    }
                    // Counted by the jitter buffer, which tells loss from DTX.
                    Playout::Conceal => self.decoder.conceal(decoded),
                    Playout::Silence => {
                        stats.silent += 1;
                        decoded.fill(0.0);
                        Ok(())
                    }
                };
                if from_packet {
                    scale = self.jitter.scale();
                    self.trace_played(queued);
                }
                // Between talkspurts, a shorter silence brings the delay down to target.
                let frame = n * self.playback_rate as usize / NETWORK_RATE as usize;
                trim = self.trim(queued, queue, frame);
                if let Err(e) = result {
                    self.out.events.push(MediaEvent::DecodeFailed(e));
                    self.decoded[..n].fill(0.0);
                    scale = Scale::Keep;
                }
                // A conference's other speakers, as much of theirs as this frame lasts.
                match self.extras.mix_into(now_us, &mut self.decoded[..n]) {
                    Ok(false) => {}
                    Ok(true) => {
                        // Another speaker talks: no frame of the mix is shortened.
                        trim = 0;
                        self.stats.mixed_frames += 1;
                        soft_clip(&mut self.decoded[..n]);
                    }
                    Err(e) => {
                        self.out.events.push(MediaEvent::DecodeFailed(e));
                        soft_clip(&mut self.decoded[..n]);
                    }
                }
                // Did the buffer move its own delay (once playing: not the start-up wait)?
                let after = self.jitter.stats();
                let moved = before.played > 0
                    && (trim > 0
                        || scale != Scale::Keep
                        || after.skipped != before.skipped
                        || after.stretched != before.stretched);
                if moved {
                    self.playback_drift.restart();
                } else {
                    self.follow_far_clock(now_us, queued);
                }
            }
            let out = match self.from_net.process(&self.decoded[..n]) {
                Ok(out) => &out[..out.len().saturating_sub(trim)],
                Err(e) => {
                    self.out.events.push(MediaEvent::ResampleFailed(e));
                    break;
                }
            };
            // Scaled at the device's rate, after resampling: the resampler takes whole
            // frames, and a frame played longer or shorter at the device makes the next pop
            // come that much later or sooner, which is the delay the jitter buffer asked for.
            // In a quiet frame the delay grows in one go, as far as the target asks (a
            // floor just raised for deep copies: 100 ms and more), rather than a pitch
            // period in each of the frames of speech that follow.
            let deficit_us = match self.jitter.delay_and_target_us() {
                Some((delay, target)) if scale == Scale::Expand && quiet(out) => target - delay,
                _ => 0,
            };
            let rate = u64::from(self.playback_rate.max(1));
            let scaled = self.scaler.scale_times(out, scale, |lag| {
                let lag_us = (lag as u64 * 1_000_000 / rate).max(1);
                (u64::try_from(deficit_us).unwrap_or(0).div_ceil(lag_us)) as usize
            });
            if scaled.len() != out.len() {
                let delta = scaled.len() as i64 - out.len() as i64;
                let delta_us = delta * 1_000_000 / i64::from(self.playback_rate.max(1));
                self.jitter.time_scaled(delta_us);
                self.extras.time_scaled(delta_us);
            }
            let out = scaled;
            self.out.playback.extend_from_slice(out);
            if out.is_empty() {
                break; // Never spin on a resampler that gives nothing.
            }
            queued += out.len();
        }
        self.demand.wrote(queued);
    }
}
