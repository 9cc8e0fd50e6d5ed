//! The send half of [`MediaPipeline`]: the adaptation applied to the encoders, capture
//! frames encoded into datagrams (with the copies of earlier frames the adaptation asks
//! for), and the reports and features told to the far side.

use super::*;

impl MediaPipeline {
    /// The encoder takes what the adapter asks for now.
    pub(super) fn adapt(&mut self) {
        let wanted = self.adapter.settings();
        if wanted == self.applied {
            return;
        }
        let mut set = self
            .encoder
            .set_bitrate(wanted.bitrate_bps)
            .and_then(|()| self.encoder.set_expected_loss(wanted.expected_loss_percent));
        if wanted.copy_bitrate_bps != 0 && wanted.copy_bitrate_bps != self.applied.copy_bitrate_bps
        {
            // Re-encoded copies start (or change rate): a second encoder, fresh if it was
            // idle, so it does not carry the state of frames long gone.
            if self.applied.copy_bitrate_bps == 0 {
                set = set.and_then(|()| self.copy_encoder.reset());
            }
            set = set.and_then(|()| self.copy_encoder.set_bitrate(wanted.copy_bitrate_bps));
        }
        if let Err(e) = set {
            // Out of Opus' range cannot happen with the adapter's numbers; keep what works.
            self.out.events.push(MediaEvent::EncodeFailed(e));
        }
        self.applied = wanted;
        self.stats.bitrate_bps = self.encoder.config().bitrate_bps;
        self.stats.expected_loss_percent = self.encoder.config().expected_loss_percent;
        self.stats.redundancy = wanted.redundancy;
        self.stats.first_copy_back = wanted.first_back;
        self.stats.copy_step = wanted.step;
        self.stats.copy_bitrate_bps = wanted.copy_bitrate_bps;
    }

    /// Capture → 48 kHz frames → Opus → datagrams.
    pub(super) fn send(&mut self, flags: Flags) {
        self.adapt();
        let n = self.send_frame.samples();
        loop {
            match self.to_net.pop_frame(&mut self.frame[..n]) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.out.events.push(MediaEvent::ResampleFailed(e));
                    break;
                }
            }
            if flags.paused {
                // Keep the sample clock running so the far side sees a pause, not loss.
                self.timestamp = self.timestamp.wrapping_add(n as u32);
                continue;
            }
            let frame = &mut self.frame[..n];
            if flags.muted {
                frame.fill(0.0);
            }
            let level = speech_level(frame);
            let loud = level <= ONSET_LEVEL;
            // While copies are re-encoded, every frame goes through the second encoder too
            // (DTX or not, so its state follows the speech); its packet is the copy.
            let copy = if self.applied.copy_bitrate_bps == 0 {
                None
            } else {
                match self.copy_encoder.encode(frame, &mut self.copy_packet) {
                    Ok(len) => len,
                    Err(e) => {
                        self.out.events.push(MediaEvent::EncodeFailed(e));
                        None
                    }
                }
            };
            match self.encoder.encode(frame, &mut self.packet) {
                Ok(Some(len)) => {
                    if loud && !self.loud_sent {
                        self.out.events.push(MediaEvent::Onset(Onset {
                            stage: Stage::Sent,
                            timestamp: self.timestamp,
                            queued: 0,
                        }));
                    }
                    self.loud_sent = loud;
                    let frame = MediaFrame {
                        call: self.call,
                        source: self.source,
                        seq: self.seq,
                        timestamp: self.timestamp,
                        level,
                        payload: self.packet[..len].to_vec(),
                    };
                    let earlier = self.sent_recently.earlier(
                        &self.applied,
                        self.seq,
                        self.timestamp,
                        n as u32,
                    );
                    let datagram = MediaDatagram::Redundant(RedundantFrame { frame, earlier });
                    let bytes = Bytes::from(datagram.encode());
                    self.stats.sent_bytes += bytes.len() as u64;
                    self.out.datagrams.push(bytes);
                    // The copy later datagrams carry: the re-encoded one if there is one
                    // (not when the second encoder took the frame for DTX), else the packet.
                    let copy = match copy {
                        Some(c) => &self.copy_packet[..c],
                        None => &self.packet[..len],
                    };
                    self.sent_recently.push(self.seq, self.timestamp, copy);
                    // Sequence numbers count packets sent, so that a DTX pause (a
                    // timestamp gap with no sequence gap) is not taken for loss.
                    self.seq = self.seq.wrapping_add(1);
                    self.stats.sent += 1;
                }
                Ok(None) => self.loud_sent = false, // DTX: nothing worth sending.
                Err(e) => self.out.events.push(MediaEvent::EncodeFailed(e)),
            }
            self.timestamp = self.timestamp.wrapping_add(n as u32);
        }
    }

    /// Once a second while the far side sends: a report of what arrived.
    pub(super) fn report(&mut self, now_us: u64) {
        let j = self.jitter.stats();
        let (late, repaired) = self.reported;
        let Some(report) = self.meter.report(
            now_us,
            self.call,
            self.source,
            j.late.saturating_sub(late),
            self.stats.repaired.saturating_sub(repaired),
            j.delay_ms,
        ) else {
            return;
        };
        self.reported = (j.late, self.stats.repaired);
        self.out
            .datagrams
            .push(Bytes::from(MediaDatagram::Report(report).encode()));
        self.stats.reports_sent += 1;
        self.send_features();
    }

    /// What we read beyond frames and reports, sent with each report and with the far
    /// side's first frame (so its sender may protect the call's first seconds before our
    /// first report): a sender takes deep copies only from a peer that said so (an older
    /// peer drops this datagram).
    pub(super) fn send_features(&mut self) {
        let features = MediaFeatures::new(self.call, self.source, self.features_sent, FEATURES);
        self.features_sent = self.features_sent.wrapping_add(1);
        self.out
            .datagrams
            .push(Bytes::from(MediaDatagram::Features(features).encode()));
    }

    /// The far side's first frame: our features at once, not a report later.
    pub(super) fn first_frame_features(&mut self) {
        if self.features_sent == 0 {
            self.send_features();
        }
    }
}
