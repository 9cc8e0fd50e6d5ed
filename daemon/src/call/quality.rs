//! A call's quality figures and who speaks in it: plain data that the media thread
//! measures (`media::quality`, `media::speakers`) and the core keeps and shows as the
//! Call and Conference objects' properties. Here, beside both, because the sans-IO core
//! must not name the media adapter.

/// The most far streams one pipeline decodes at once (the relay's forwarded speakers).
pub const MAX_STREAMS: usize = 3;

/// The far sources speaking at one moment (at most [`MAX_STREAMS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Speaking([Option<u32>; MAX_STREAMS]);

impl Speaking {
    /// The first [`MAX_STREAMS`] of `sources`.
    pub fn of(sources: impl IntoIterator<Item = u32>) -> Speaking {
        let mut out = Speaking::default();
        for (place, source) in out.0.iter_mut().zip(sources) {
            *place = Some(source);
        }
        out
    }

    pub fn contains(&self, source: u32) -> bool {
        self.0.contains(&Some(source))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// A call's quality, as the Call object's `Quality` property shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quality {
    /// Received packets lost or late over those expected, %, over the last `WINDOW`
    /// of `media::quality` (over the call in a summary).
    pub loss_percent: f64,
    /// The same over the whole call.
    pub call_loss_percent: f64,
    /// Of the loss, what FEC did not recover (the listener heard it concealed), %, over
    /// the window.
    pub unrecovered_percent: f64,
    /// Packet delay variation the jitter buffer measured (95th percentile), ms.
    pub jitter_ms: u32,
    /// The jitter buffer's delay now, ms.
    pub jitter_buffer_ms: u32,
    /// Estimated one-way delay from the far side's mouth to this ear, ms (see the module
    /// docs; the mean over the call in a summary).
    pub mouth_to_ear_ms: u32,
    /// Media sent and received, kbit/s, over the window (over the call in a summary).
    pub send_kbps: f64,
    pub receive_kbps: f64,
    /// The E-model rating from the unrecovered loss and the mouth-to-ear delay.
    pub r_factor: f64,
    /// The MOS it predicts (1..=4.5).
    pub mos: f64,
    /// The far sources speaking when the report was made (a conference's `speaking`).
    pub speaking: Speaking,
}
