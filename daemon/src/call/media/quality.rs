//! A call's live quality, sans-IO: [`QualityMeter`] samples the pipeline's counters
//! ([`MediaStats`], [`JitterStats`]) once a [`REPORT_EVERY`] and turns them into a
//! [`Quality`]: loss, jitter, delay, bitrates and an E-model MOS (`emodel.rs`), over the
//! last [`WINDOW`] and over the whole call. The media thread (`session.rs`) polls it every
//! tick with the time; it keeps a fixed ring of samples, so polling allocates nothing
//! and costs a comparison between reports. What it reports goes to the driver and the
//! core, which show it as the Call object's `Quality` property.
//!
//! - **Loss** is what the jitter buffer counted lost — sequence numbers whose packet did
//!   not come in time, late ones included — over those expected (played, lost, or
//!   received and dropped while the buffer shrank its delay).
//! - **Unrecovered loss** is that loss less what FEC restored: what the listener hears
//!   concealed, and what the E-model scores.
//! - **Bitrates** count the media datagrams' bytes (the `MediaFrame` with its header),
//!   not QUIC's, UDP's or IP's overhead.
//! - **Mouth-to-ear** is an estimate: the far side's capture (half its device's block
//!   on average), its frame (10 or 20 ms) and the codec's 6.5 ms look-ahead, the path (this
//!   device's round trip to the relay, taken as both legs' one-way times), the jitter
//!   buffer's delay and the audio queued for the playback device. What the far side's
//!   capture holds is not seen here: this side's own is taken for it, as the path's far
//!   leg is. The devices' own latency beyond their blocks is not seen either.

use std::time::Duration;

pub use crate::call::quality::Quality;

use super::emodel;
use super::pipeline::MediaStats;
use crate::audio::codec::FrameDuration;
use crate::audio::jitter::JitterStats;

/// How often a quality report is made: a D-Bus property that changes more often would
/// flood `PropertiesChanged`.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The recent window the live figures cover.
pub const WINDOW: Duration = Duration::from_secs(5);
/// Samples in the ring: one per report over the window, and its start.
const SAMPLES: usize = (WINDOW.as_secs() / REPORT_EVERY.as_secs()) as usize + 1;
/// Opus's algorithmic delay at 48 kHz VoIP: 312 samples (`VoiceEncoder::lookahead_samples`).
const CODEC_DELAY_MS: f64 = 6.5;

/// What the media thread knows of the rest of the path now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathNow {
    /// The frame the far side sends: it waits a frame's time for the audio to encode.
    pub frame: FrameDuration,
    /// How long a frame's last sample waits before the frame is encoded, ms: half the
    /// capture device's block and half a media tick, on average (this side's, standing
    /// in for the far side's).
    pub capture_ms: u32,
    /// Round-trip time to the relay, ms (QUIC's estimate).
    pub rtt_ms: u32,
    /// Audio queued for the playback device and not yet played, ms.
    pub playback_queue_ms: u32,
}

/// Cumulative counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sample {
    at_ms: u64,
    expected: u64,
    lost: u64,
    unrecovered: u64,
    sent_bytes: u64,
    received_bytes: u64,
}

impl Sample {
    fn new(now: Duration, media: &MediaStats, jitter: &JitterStats) -> Sample {
        Sample {
            at_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            expected: jitter.played + jitter.lost + jitter.dropped,
            lost: jitter.lost,
            unrecovered: jitter.lost.saturating_sub(jitter.fec),
            sent_bytes: media.sent_bytes,
            received_bytes: media.received_bytes,
        }
    }
}

/// Percent `part` of `whole`, 0 when nothing was expected.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part.min(whole) as f64 * 100.0 / whole as f64).min(100.0)
    }
}

/// kbit/s from `bytes` over `ms`.
fn kbps(bytes: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / ms as f64
    }
}

/// Rounded to `places` decimals, so that a property does not change for noise.
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// Loss, unrecovered loss (%) and send and receive rates (kbit/s) between two samples.
fn between(from: &Sample, to: &Sample) -> (f64, f64, f64, f64) {
    let expected = to.expected.saturating_sub(from.expected);
    let ms = to.at_ms.saturating_sub(from.at_ms);
    (
        percent(to.lost.saturating_sub(from.lost), expected),
        percent(to.unrecovered.saturating_sub(from.unrecovered), expected),
        kbps(to.sent_bytes.saturating_sub(from.sent_bytes), ms),
        kbps(to.received_bytes.saturating_sub(from.received_bytes), ms),
    )
}

/// Samples a call's counters and reports its quality; see the module docs.
///
/// ```
/// use std::time::Duration;
/// use phoned::audio::jitter::JitterStats;
/// use phoned::call::media::{MediaStats, PathNow, QualityMeter};
///
/// let mut meter = QualityMeter::default();
/// let (media, jitter) = (MediaStats::default(), JitterStats::default());
/// let path = PathNow::default();
/// assert!(meter.poll(Duration::ZERO, &media, &jitter, || path).is_none()); // starts here
/// let q = meter.poll(Duration::from_secs(1), &media, &jitter, || path).expect("a second on");
/// assert_eq!(q.loss_percent, 0.0);
/// assert!(q.mos > 4.0);
/// ```
#[derive(Debug, Default)]
pub struct QualityMeter {
    /// The call's first sample.
    first: Option<Sample>,
    /// The window's samples, oldest at `(next + SAMPLES - len) % SAMPLES`.
    ring: [Sample; SAMPLES],
    len: usize,
    next: usize,
    /// When the next report is due, ms.
    due_ms: u64,
    /// Sum and count of the mouth-to-ear estimates reported, for the call's mean.
    delay_sum_ms: u64,
    delay_reports: u64,
}

impl QualityMeter {
    /// A report at `now` if one is due (one per [`REPORT_EVERY`], the first a period after
    /// the first poll), from the pipeline's counters and the path as it is now (asked
    /// only when a report is made: it takes the connection's lock).
    pub fn poll(
        &mut self,
        now: Duration,
        media: &MediaStats,
        jitter: &JitterStats,
        path: impl FnOnce() -> PathNow,
    ) -> Option<Quality> {
        let sample = Sample::new(now, media, jitter);
        let every = REPORT_EVERY.as_millis() as u64;
        if self.first.is_none() {
            self.first = Some(sample);
        }
        if self.len == 0 {
            self.push(sample);
            self.due_ms = sample.at_ms + every;
            return None;
        }
        if sample.at_ms < self.due_ms {
            return None;
        }
        // A stalled thread does not make up for missed reports.
        self.due_ms = (self.due_ms + every).max(sample.at_ms + every / 2);
        self.push(sample);
        // The ring now holds the window's start and its end (this sample).
        let oldest = self.ring[(self.next + SAMPLES - self.len) % SAMPLES];
        let first = self.first.unwrap_or(oldest);
        let (loss, unrecovered, send, receive) = between(&oldest, &sample);
        let (call_loss, ..) = between(&first, &sample);
        let delay = mouth_to_ear_ms(jitter, path());
        self.delay_sum_ms += u64::from(delay);
        self.delay_reports += 1;
        Some(quality(
            jitter,
            (loss, call_loss, unrecovered),
            delay,
            (send, receive),
        ))
    }

    /// The call is on hold: the window starts again when it goes on, so that the pause
    /// does not count (the call's totals keep counting).
    pub fn pause(&mut self) {
        self.len = 0;
    }

    /// The whole call's figures at `now`, for the end-of-call log: loss and bitrates over
    /// the call, the mean mouth-to-ear delay reported (the current one if none was), and
    /// the MOS they score.
    pub fn summary(
        &self,
        now: Duration,
        media: &MediaStats,
        jitter: &JitterStats,
        path: PathNow,
    ) -> Quality {
        let sample = Sample::new(now, media, jitter);
        let first = self.first.unwrap_or(Sample {
            at_ms: sample.at_ms,
            ..Sample::default()
        });
        let (loss, unrecovered, send, receive) = between(&first, &sample);
        let delay = match self.delay_reports {
            0 => mouth_to_ear_ms(jitter, path),
            n => u32::try_from(self.delay_sum_ms / n).unwrap_or(u32::MAX),
        };
        quality(jitter, (loss, loss, unrecovered), delay, (send, receive))
    }

    fn push(&mut self, sample: Sample) {
        self.ring[self.next] = sample;
        self.next = (self.next + 1) % SAMPLES;
        self.len = (self.len + 1).min(SAMPLES);
    }
}

/// The mouth-to-ear estimate of the module docs, ms.
fn mouth_to_ear_ms(jitter: &JitterStats, path: PathNow) -> u32 {
    let ms = f64::from(path.capture_ms)
        + f64::from(path.frame.millis())
        + CODEC_DELAY_MS
        + f64::from(path.rtt_ms)
        + f64::from(jitter.delay_ms)
        + f64::from(path.playback_queue_ms);
    ms.round() as u32
}

fn quality(
    jitter: &JitterStats,
    (loss, call_loss, unrecovered): (f64, f64, f64),
    delay_ms: u32,
    (send, receive): (f64, f64),
) -> Quality {
    let r = emodel::rating(unrecovered, f64::from(delay_ms));
    Quality {
        loss_percent: round(loss, 1),
        call_loss_percent: round(call_loss, 1),
        unrecovered_percent: round(unrecovered, 1),
        jitter_ms: jitter.jitter_ms,
        jitter_buffer_ms: jitter.delay_ms,
        mouth_to_ear_ms: delay_ms,
        send_kbps: round(send, 1),
        receive_kbps: round(receive, 1),
        r_factor: round(r, 1),
        mos: round(emodel::mos(r), 2),
        speaking: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::codec::{EncoderConfig, VoiceEncoder};

    const SECOND: Duration = Duration::from_secs(1);

    /// A stream the tests advance a second at a time: 50 frames expected, `lost` of them
    /// lost (`fec` of those recovered), 60 bytes a frame each way.
    #[derive(Default)]
    struct Stream {
        media: MediaStats,
        jitter: JitterStats,
    }

    impl Stream {
        fn second(&mut self, lost: u64, fec: u64) {
            self.jitter.played += 50 - lost;
            self.jitter.lost += lost;
            self.jitter.fec += fec;
            self.media.sent_bytes += 50 * 60;
            self.media.received_bytes += (50 - lost) * 60;
        }
    }

    fn poll(m: &mut QualityMeter, s: &Stream, at: Duration) -> Option<Quality> {
        let path = PathNow {
            frame: FrameDuration::Ms20,
            capture_ms: 12,
            rtt_ms: 2,
            playback_queue_ms: 15,
        };
        m.poll(at, &s.media, &s.jitter, || path)
    }

    #[test]
    fn a_clean_stream_reports_once_a_second_no_loss_its_bitrate_and_a_good_mos() {
        let (mut m, mut s) = (QualityMeter::default(), Stream::default());
        s.jitter.delay_ms = 30;
        s.jitter.jitter_ms = 2;
        assert_eq!(poll(&mut m, &s, Duration::ZERO), None);
        let mut reports = 0;
        // Polled every 5 ms tick for 10 s: ten reports, on the second.
        for tick in 1..=2000u32 {
            let now = Duration::from_millis(u64::from(tick) * 5);
            if tick % 200 == 0 {
                s.second(0, 0);
            }
            if let Some(q) = poll(&mut m, &s, now) {
                reports += 1;
                assert_eq!(now.as_millis() % 1000, 0, "{now:?}");
                assert_eq!(q.loss_percent, 0.0);
                assert_eq!(q.call_loss_percent, 0.0);
                // 3000 bytes a second each way: 24 kbit/s.
                assert_eq!((q.send_kbps, q.receive_kbps), (24.0, 24.0));
                assert_eq!(q.jitter_ms, 2);
                assert_eq!(q.jitter_buffer_ms, 30);
                // 12 + 20 + 6.5 + 2 + 30 + 15, rounded.
                assert_eq!(q.mouth_to_ear_ms, 86);
                assert!(q.mos > 4.3, "{q:?}");
            }
        }
        assert_eq!(reports, 10);
    }

    #[test]
    fn the_window_forgets_a_burst_of_loss_after_five_seconds_and_the_call_does_not() {
        let (mut m, mut s) = (QualityMeter::default(), Stream::default());
        poll(&mut m, &s, Duration::ZERO);
        // Two seconds at 10 % loss, then clean.
        let mut seen = Vec::new();
        for sec in 1..=10u32 {
            s.second(if sec <= 2 { 5 } else { 0 }, 0);
            let q = poll(&mut m, &s, SECOND * sec).expect("a report each second");
            seen.push((q.loss_percent, q.call_loss_percent, q.mos));
        }
        // The window: 10 % while it holds only lossy seconds, then diluted, then gone.
        let window: Vec<f64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(window, [10.0, 10.0, 6.7, 5.0, 4.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
        // The call: 10 of 500 expected at the end.
        assert_eq!(seen[9].1, 2.0);
        // Unrecovered loss costs MOS, and the score comes back with the window.
        assert!(seen[0].2 < 3.5, "{seen:?}");
        assert!(seen[9].2 > 4.3, "{seen:?}");
        // Receiving 45 of 50 frames' bytes: the receive rate shows it too.
        let mut m = QualityMeter::default();
        let mut s = Stream::default();
        poll(&mut m, &s, Duration::ZERO);
        s.second(5, 0);
        let q = poll(&mut m, &s, SECOND).expect("report");
        assert_eq!((q.send_kbps, q.receive_kbps), (24.0, 21.6));
    }

    #[test]
    fn loss_that_fec_recovered_counts_as_loss_but_does_not_cost_mos() {
        let (mut m, mut s) = (QualityMeter::default(), Stream::default());
        poll(&mut m, &s, Duration::ZERO);
        s.second(5, 5);
        let q = poll(&mut m, &s, SECOND).expect("report");
        assert_eq!((q.loss_percent, q.unrecovered_percent), (10.0, 0.0));
        assert!(q.mos > 4.3, "{q:?}");
        s.second(5, 1);
        let q = poll(&mut m, &s, 2 * SECOND).expect("report");
        assert_eq!((q.loss_percent, q.unrecovered_percent), (10.0, 4.0));
    }

    #[test]
    fn a_hold_restarts_the_window_and_a_stalled_thread_does_not_catch_up() {
        let (mut m, mut s) = (QualityMeter::default(), Stream::default());
        poll(&mut m, &s, Duration::ZERO);
        s.second(10, 0);
        assert!(poll(&mut m, &s, SECOND).is_some());
        // On hold for a while: nothing moves; the next poll after it starts anew.
        m.pause();
        assert_eq!(poll(&mut m, &s, 30 * SECOND), None);
        s.second(0, 0);
        let q = poll(&mut m, &s, 31 * SECOND).expect("report");
        assert_eq!(q.loss_percent, 0.0);
        assert_eq!(q.send_kbps, 24.0);
        assert_eq!(q.call_loss_percent, 10.0);
        // A thread that stalled 10 s reports once, then half a period later at the soonest.
        s.second(0, 0);
        assert!(poll(&mut m, &s, 41 * SECOND).is_some());
        assert!(poll(&mut m, &s, 41 * SECOND + SECOND / 4).is_none());
        assert!(poll(&mut m, &s, 41 * SECOND + SECOND / 2).is_some());
    }

    #[test]
    fn the_summary_covers_the_call_with_its_mean_delay() {
        let (mut m, mut s) = (QualityMeter::default(), Stream::default());
        poll(&mut m, &s, Duration::ZERO);
        for (sec, delay) in [(1u32, 20u32), (2, 40)] {
            s.jitter.delay_ms = delay;
            s.second(if sec == 1 { 5 } else { 0 }, 0);
            poll(&mut m, &s, SECOND * sec);
        }
        let q = m.summary(2 * SECOND, &s.media, &s.jitter, PathNow::default());
        assert_eq!((q.loss_percent, q.call_loss_percent), (5.0, 5.0));
        assert_eq!((q.send_kbps, q.receive_kbps), (24.0, 22.8));
        // Mean of 12+20+6.5+2+20+15 and 12+20+6.5+2+40+15 (75.5 and 95.5, rounded).
        assert_eq!(q.mouth_to_ear_ms, 86);
        // A call too short for a report: its current delay, no division by zero.
        let q = QualityMeter::default().summary(
            Duration::ZERO,
            &MediaStats::default(),
            &JitterStats::default(),
            PathNow::default(),
        );
        assert_eq!((q.loss_percent, q.send_kbps), (0.0, 0.0));
        assert_eq!(q.mouth_to_ear_ms, 27);
    }

    #[test]
    fn the_codec_delay_is_the_encoders_look_ahead() {
        let enc = VoiceEncoder::new(&EncoderConfig {
            complexity: super::super::ENCODER_COMPLEXITY,
            ..EncoderConfig::default()
        })
        .expect("encoder");
        let samples = enc.lookahead_samples().expect("look-ahead");
        assert_eq!(f64::from(samples) * 1000.0 / 48_000.0, CODEC_DELAY_MS);
    }
}
