//! The receive half of [`MediaPipeline`]: datagrams from the relay into the jitter buffer
//! (or a conference's extra streams), the copies they carry, the far clock followed, and
//! the jitter buffer's floor.

use super::*;

impl MediaPipeline {
    /// A frame from a far source: the first far source's go to the pipeline's own jitter
    /// buffer, others' to [`Extras`]. A source that finds no place takes the first's when
    /// that has been silent for a while (a conference's speakers changed).
    pub(super) fn route_frame(&mut self, now_us: u64, f: &MediaFrame, earlier: &[Earlier]) {
        self.speakers.heard(now_us, f.source, f.level);
        let primary = match self.primary {
            None => true,
            Some((source, _)) if source == f.source => true,
            Some((_, last)) => {
                !self.extras.has_place(now_us, f.source) && now_us.saturating_sub(last) >= STALE_US
            }
        };
        if primary {
            if self.primary.is_some_and(|(source, _)| source != f.source) {
                // Another speaker's stream: its own sequence numbers and copies.
                self.copies_back = CopiesBack::default();
            }
            self.primary = Some((f.source, now_us));
            self.take_frame(now_us, f, earlier);
            return;
        }
        match self
            .extras
            .take(now_us, f.source, f.seq, f.timestamp, &f.payload, earlier)
        {
            Taken::Buffered => {}
            Taken::Dropped => self.stats.dropped_streams += 1,
        }
    }

    /// A frame from the far side, and the copies of earlier ones it carries.
    pub(super) fn take_frame(&mut self, now_us: u64, f: &MediaFrame, earlier: &[Earlier]) {
        if let Some(frame) = FrameDuration::of_packet(&f.payload)
            && frame != self.receive_frame()
            && let Err(e) = self.set_receive_frame(frame)
        {
            // Cannot happen with our two frames and a playback rate that worked before.
            tracing::warn!("cannot play {} ms frames: {e}", frame.millis());
        }
        self.meter.record(now_us, f.seq, f.timestamp);
        self.copies_back.frame_arrived(now_us, f.seq);
        let pushed = self.jitter.push(now_us, f.seq, f.timestamp, &f.payload);
        if matches!(pushed, Push::Buffered | Push::Resynced) {
            self.trace_received(f);
        }
        for e in earlier {
            let seq = f.seq.wrapping_sub(u32::from(e.seq_back));
            let ts = f.timestamp.wrapping_sub(e.ts_back);
            if self.jitter.fill(now_us, seq, ts, &e.payload) {
                self.stats.repaired += 1;
            }
            self.copies_back.arrived(now_us, e.seq_back);
        }
    }

    /// Onset tracing on the receive side: a loud frame that does not follow a loud one.
    pub(super) fn trace_received(&mut self, f: &MediaFrame) {
        if f.level > ONSET_LEVEL {
            self.loud_received = None;
            return;
        }
        let frame = self.jitter.config().frame.samples() as u32;
        let follows = self
            .loud_received
            .is_some_and(|ts| f.timestamp.wrapping_sub(ts) == frame);
        self.loud_received = Some(f.timestamp);
        if follows {
            return;
        }
        self.onsets.rotate_right(1);
        self.onsets[0] = Some(f.timestamp);
        self.out.events.push(MediaEvent::Onset(Onset {
            stage: Stage::Received,
            timestamp: f.timestamp,
            queued: 0,
        }));
    }

    /// Datagrams → jitter buffer (frames and copies), the meter, the adapter (reports).
    pub(super) fn receive<D: AsRef<[u8]>>(
        &mut self,
        now_us: u64,
        received: impl IntoIterator<Item = D>,
    ) {
        for datagram in received {
            self.stats.datagrams += 1;
            let ours = |call: CallId, source: u32| call == self.call && source != self.source;
            match MediaDatagram::decode(datagram.as_ref()) {
                Ok(MediaDatagram::Frame(f)) if ours(f.call, f.source) => {
                    self.stats.received_bytes += datagram.as_ref().len() as u64;
                    self.route_frame(now_us, &f, &[]);
                    self.first_frame_features();
                }
                Ok(MediaDatagram::Redundant(r)) if ours(r.frame.call, r.frame.source) => {
                    self.stats.received_bytes += datagram.as_ref().len() as u64;
                    self.route_frame(now_us, &r.frame, &r.earlier);
                    self.first_frame_features();
                }
                Ok(MediaDatagram::Report(r)) if ours(r.call, r.source) => {
                    self.adapter.on_report(now_us, &r);
                    self.stats.reports_received += 1;
                    self.stats.far_loss_permille = (self.adapter.loss() * 1000.0).round() as u32;
                }
                Ok(MediaDatagram::Features(f)) if ours(f.call, f.source) => {
                    self.adapter.set_deep_copies(f.deep_copies());
                }
                _ => self.stats.foreign += 1,
            }
        }
        // A restarted source starts a new stream: the decoder must not carry the old one's
        // state.
        let resyncs = self.jitter.stats().resyncs;
        if resyncs != self.resyncs {
            self.resyncs = resyncs;
            if let Err(e) = self.decoder.reset() {
                self.out.events.push(MediaEvent::DecodeFailed(e));
            }
            self.stats.decoder_resets += 1;
            self.out.events.push(MediaEvent::DecoderReset);
            // A new stream settles anew; the clocks' drift is what it was.
            self.playback_drift.restart();
        }
    }

    /// Steers the playback resampler from the playout delay after a pop, `queued` samples
    /// waiting at the device before the frame: the jitter buffer's delay (at the pop) and
    /// the queue. The pops come when the device takes a block, so the delay at the pop
    /// alone moves in steps of a block while the queue before the frame takes up what is
    /// between; their sum moves only with the clocks (and when the buffer moves it itself:
    /// a restart of the estimator). Not less the target, which moves with the jitter.
    pub(super) fn follow_far_clock(&mut self, now_us: u64, queued: usize) {
        let Some((delay_us, target_us)) = self.jitter.delay_and_target_us() else {
            return;
        };
        let queued_us = i64::try_from(queued).unwrap_or(i64::MAX) * 1_000_000
            / i64::from(self.playback_rate.max(1));
        // While the clocks drift: held where the steps stay inside the band (`set_block`).
        let anchor = target_us + self.drift_mid_us;
        self.playback_drift
            .set_anchor_within(Some((anchor, anchor)));
        let ppm = self.playback_drift.update(now_us, delay_us + queued_us);
        self.stats.playback_drift_ppm = ppm;
        if let Err(e) = self.from_net.set_drift_ppm(ppm) {
            self.out.events.push(MediaEvent::ResampleFailed(e));
        }
    }

    /// The jitter buffer's floor: none on a clean path, where its target follows the
    /// measured jitter; a frame at first (until packets have come for [`PATH_LEARNT_US`] it
    /// does not know the path, and the first pause after that lowers the delay by
    /// skipping silence, which costs nothing) and while packets are lost (in the last
    /// [`LOSS_HOLD_US`]), so that the next packet, with its in-band FEC or a copy of the
    /// lost one, is there in time; while the far side sends copies two or more frames
    /// back, as many frames and a margin (`copies_floor.rs`: for deep copies only after
    /// a run of losses).
    pub(super) fn set_floor(&mut self, now_us: u64) {
        let lost = self.jitter.stats().lost;
        self.copies_back.lost_so_far(now_us, lost);
        if lost != self.lost {
            self.lost = lost;
            self.loss_until = Some(now_us + LOSS_HOLD_US);
        }
        if self.loss_until.is_some_and(|until| now_us >= until) {
            self.loss_until = None;
        }
        let frame = self.jitter.config().frame.millis();
        let received = self.jitter.stats().received;
        if received > 0 && self.first_packet_us.is_none() {
            self.first_packet_us = Some(now_us);
        }
        let first = self.first_packet_us.unwrap_or(now_us);
        if !self.path_known
            && now_us.saturating_sub(first) >= PATH_LEARNT_US
            && received >= PATH_LEARNT_PACKETS
            && self.jitter.rephase_excess_us().is_some()
        {
            self.path_known = true;
        }
        // The packet that repairs a lost one (its copy, or FEC in the next packet) comes a
        // frame or two after it, as late as any packet may be: the floor is that much
        // more than the measured jitter (a floor of just a frame played the lost frame
        // when the next packet was due, so any jitter made the repair late).
        let measured = self.jitter.stats().jitter_ms;
        let jitter = measured + JITTER_MARGIN_MS;
        let floor = if let Some(floor) = self.copies_back.floor_ms(now_us, frame, measured) {
            floor
        } else if self.loss_until.is_some() {
            frame + jitter
        } else if !self.path_known {
            frame
        } else {
            0
        };
        self.jitter.set_min_delay_ms(floor);
    }
}
