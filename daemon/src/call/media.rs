//! One call's media, on a thread of its own: capture → 48 kHz → Opus → `MediaFrame`
//! datagrams to the relay; datagrams from the relay → jitter buffer → Opus (FEC, PLC) →
//! device rate → playback. The device callbacks only touch the lock-free rings inside
//! the backend; everything that may allocate or take time happens here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use phoned_proto::call::CallId;
use phoned_proto::media::MediaFrame;
use smol::channel::{Receiver, Sender};

use crate::audio::backend::{self, Capture, Options, Playback};
use crate::audio::codec::{
    EncoderConfig, FrameDuration, MAX_PACKET_BYTES, VoiceDecoder, VoiceEncoder, speech_level,
};
use crate::audio::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::audio::resample::{FRAME, FromNetwork, ToNetwork};
use crate::config::Audio;

/// How often the media thread wakes up.
pub const TICK: Duration = Duration::from_millis(5);
/// The least audio kept queued for the playback device, ms. The queue also covers the
/// block the device takes at once plus one [`TICK`] (see [`playback_queue`]),
/// so a device with long periods gets what it needs and a short-period one (the file
/// backend's 10 ms) is not made to wait: every millisecond here is mouth-to-ear delay.
pub const PLAYBACK_QUEUE_MIN_MS: usize = 15;

/// Samples (at the device's `rate`) to keep queued for playback, given how much the device
/// took in its latest callback or period.
pub fn playback_queue(rate: u32, last_block: u64) -> usize {
    let ms = |ms: usize| rate as usize * ms / 1000;
    let tick = ms(TICK.as_millis() as usize);
    ms(PLAYBACK_QUEUE_MIN_MS).max(last_block as usize + tick)
}
/// Opus complexity of a call's encoder. 10, not the codec's default 5: at 5, SILK's voice
/// detection takes a steady tone (a dial tone, a test signal, music on hold) for noise and
/// DTX stops sending it.
pub const ENCODER_COMPLEXITY: u8 = 10;
/// Datagrams waiting for the media thread; beyond this they are dropped (stale anyway).
const INBOX: usize = 256;

pub struct MediaSession {
    stop: Arc<AtomicBool>,
    muted: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    inbox: Sender<Bytes>,
    thread: Option<JoinHandle<()>>,
}

impl MediaSession {
    /// Opens the audio devices and starts the media thread for `call`, sending as `source`.
    pub fn start(
        audio: &Audio,
        conn: quinn::Connection,
        call: CallId,
        source: u32,
        muted: bool,
    ) -> Result<MediaSession, String> {
        let mut backend = backend::open(audio, Options::default()).map_err(|e| e.to_string())?;
        let capture = backend.start_capture().map_err(|e| e.to_string())?;
        let playback = backend.start_playback().map_err(|e| e.to_string())?;
        let pipeline = Pipeline::new(capture, playback, conn, call, source)?;
        let stop = Arc::new(AtomicBool::new(false));
        let muted = Arc::new(AtomicBool::new(muted));
        let paused = Arc::new(AtomicBool::new(false));
        let (inbox, rx) = smol::channel::bounded(INBOX);
        let (s, m, p) = (stop.clone(), muted.clone(), paused.clone());
        let thread = std::thread::Builder::new()
            .name(format!("media-{call}"))
            .spawn(move || {
                // Keep the backend (device streams, file threads) alive with the pipeline.
                let _backend = backend;
                pipeline.run(&s, &m, &p, &rx);
            })
            .map_err(|e| format!("cannot start the media thread: {e}"))?;
        Ok(MediaSession {
            stop,
            muted,
            paused,
            inbox,
            thread: Some(thread),
        })
    }

    /// Hands a datagram from the relay to the media thread (dropped if it is behind).
    pub fn deliver(&self, datagram: Bytes) {
        let _ = self.inbox.try_send(datagram);
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// On hold: nothing is sent and silence is played, with the devices kept open.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Pipeline {
    capture: Capture,
    playback: Playback,
    conn: quinn::Connection,
    call: CallId,
    source: u32,
    to_net: ToNetwork,
    from_net: FromNetwork,
    encoder: VoiceEncoder,
    decoder: VoiceDecoder,
    jitter: JitterBuffer,
}

impl Pipeline {
    fn new(
        capture: Capture,
        playback: Playback,
        conn: quinn::Connection,
        call: CallId,
        source: u32,
    ) -> Result<Pipeline, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        Ok(Pipeline {
            to_net: ToNetwork::new(capture.rate()).map_err(|e| err(&e))?,
            from_net: FromNetwork::new(playback.rate()).map_err(|e| err(&e))?,
            encoder: VoiceEncoder::new(&EncoderConfig {
                complexity: ENCODER_COMPLEXITY,
                ..EncoderConfig::default()
            })
            .map_err(|e| err(&e))?,
            decoder: VoiceDecoder::new(FrameDuration::Ms20).map_err(|e| err(&e))?,
            jitter: JitterBuffer::new(JitterConfig::default()).map_err(|e| err(&e))?,
            capture,
            playback,
            conn,
            call,
            source,
        })
    }

    fn run(
        mut self,
        stop: &AtomicBool,
        muted: &AtomicBool,
        paused: &AtomicBool,
        inbox: &Receiver<Bytes>,
    ) {
        let started = Instant::now();
        let mut captured = vec![0f32; 4800];
        let mut frame = [0f32; FRAME];
        let mut decoded = [0f32; FRAME];
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let (mut seq, mut timestamp) = (0u32, 0u32);
        let mut next = Instant::now();
        let mut max_delay_ms = 0;
        let mut resyncs = 0;
        let (mut datagrams, mut foreign) = (0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            // Capture → network.
            loop {
                let n = self.capture.read(&mut captured);
                if n == 0 {
                    break;
                }
                self.to_net.push(&captured[..n]);
            }
            let held = paused.load(Ordering::Relaxed);
            while let Ok(true) = self.to_net.pop_frame(&mut frame) {
                if held {
                    // Keep the sample clock running so the far side sees a pause, not loss.
                    timestamp = timestamp.wrapping_add(FRAME as u32);
                    continue;
                }
                if muted.load(Ordering::Relaxed) {
                    frame.fill(0.0);
                }
                let level = speech_level(&frame);
                match self.encoder.encode(&frame, &mut packet) {
                    Ok(Some(len)) => {
                        let f = MediaFrame {
                            call: self.call,
                            source: self.source,
                            seq,
                            timestamp,
                            level,
                            payload: packet[..len].to_vec(),
                        };
                        // A full send buffer drops the frame: late audio is worthless.
                        let _ = self.conn.send_datagram(Bytes::from(f.encode()));
                        // Sequence numbers count packets sent, so that a DTX pause (a
                        // timestamp gap with no sequence gap) is not taken for loss.
                        seq = seq.wrapping_add(1);
                    }
                    Ok(None) => {} // DTX: nothing worth sending.
                    Err(e) => tracing::warn!(call = self.call, "encoding: {e}"),
                }
                timestamp = timestamp.wrapping_add(FRAME as u32);
            }
            // Network → jitter buffer.
            let now_us = started.elapsed().as_micros() as u64;
            while let Ok(d) = inbox.try_recv() {
                datagrams += 1;
                match MediaFrame::decode(&d) {
                    Ok(f) if f.call == self.call && f.source != self.source => {
                        self.jitter.push(now_us, f.seq, f.timestamp, &f.payload);
                    }
                    _ => foreign += 1,
                }
            }
            // A restarted source starts a new stream: the decoder must not carry the old one's state.
            let now_resyncs = self.jitter.stats().resyncs;
            if now_resyncs != resyncs {
                resyncs = now_resyncs;
                let _ = self.decoder.reset();
            }
            // Jitter buffer → playback, keeping a small queue at the device.
            let queue = playback_queue(self.playback.rate(), self.playback.counters().last_block);
            while self.playback.pending() < queue {
                if held {
                    decoded.fill(0.0);
                    match self.from_net.process(&decoded) {
                        Ok(out) => {
                            self.playback.write(out);
                            continue;
                        }
                        Err(_) => break,
                    }
                }
                let result = match self.jitter.pop(now_us) {
                    Playout::Packet(p) => self.decoder.decode(p, &mut decoded),
                    Playout::Fec(p) => self.decoder.decode_fec(p, &mut decoded),
                    Playout::Conceal => self.decoder.conceal(&mut decoded),
                    Playout::Silence => {
                        decoded.fill(0.0);
                        Ok(())
                    }
                };
                // Between talkspurts, a shorter silence brings the delay down to target.
                let trim =
                    self.jitter.rephase_us() as usize * self.playback.rate() as usize / 1_000_000;
                if let Err(e) = result {
                    tracing::debug!(call = self.call, "decoding: {e}");
                    decoded.fill(0.0);
                }
                match self.from_net.process(&decoded) {
                    Ok(out) => {
                        self.playback.write(&out[..out.len().saturating_sub(trim)]);
                    }
                    Err(e) => {
                        tracing::warn!(call = self.call, "resampling: {e}");
                        break;
                    }
                }
            }
            max_delay_ms = max_delay_ms.max(self.jitter.stats().delay_ms);
            next += TICK;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        let s = self.jitter.stats();
        let (capture, playback) = (self.capture.counters(), self.playback.counters());
        tracing::info!(
            call = self.call,
            sent = seq,
            datagrams,
            foreign,
            received = s.received,
            played = s.played,
            fec = s.fec,
            concealed = s.concealed,
            lost = s.lost,
            late = s.late,
            duplicates = s.duplicates,
            delay_ms = s.delay_ms,
            max_delay_ms,
            max_allowed_ms = self.jitter.config().max_delay_ms,
            capture_overruns = capture.xruns,
            playback_underruns = playback.xruns,
            playback_queue_ms = playback_queue(self.playback.rate(), playback.last_block) as u64
                * 1000
                / u64::from(self.playback.rate().max(1)),
            "call media ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playback_queue_covers_the_devices_largest_block_and_a_tick() {
        // Nothing played yet, or short periods: the floor.
        assert_eq!(playback_queue(48_000, 0), 720);
        assert_eq!(playback_queue(48_000, 480), 720);
        // ALSA dmix's 1024-frame periods: the block plus 5 ms.
        assert_eq!(playback_queue(48_000, 1024), 1024 + 240);
        assert_eq!(playback_queue(44_100, 0), 661);
    }
}
