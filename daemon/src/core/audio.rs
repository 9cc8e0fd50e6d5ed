//! The audio problems the user sees: each call's (`Call.AudioError`) and the account's
//! (`Manager.AudioError`: the latest problem any call or voice message recording ran
//! into, kept until a call's or a recording's devices are reported working again). The
//! media threads and the recorder report ([`AudioSource`]); the core keeps the state and
//! announces what changed.

use std::collections::BTreeMap;

use super::{Change, Core};
use crate::call::engine::Local;

/// Who reports an audio problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioSource {
    /// The media of a call.
    Call(Local),
    /// Recording a voice message from the input device.
    Recording,
}

/// What the D-Bus properties show ("" when all works).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioStatus {
    /// Calls whose audio has a problem now.
    pub calls: BTreeMap<Local, String>,
    /// The latest recording's problem, if it had one.
    pub recording: Option<String>,
    /// The account's: the latest problem reported that still stands.
    pub latest: String,
}

impl AudioStatus {
    /// The problem `source` last reported and that still stands.
    pub fn of(&self, source: AudioSource) -> Option<&str> {
        match source {
            AudioSource::Call(l) => self.calls.get(&l).map(String::as_str),
            AudioSource::Recording => self.recording.as_deref(),
        }
    }
}

impl Core {
    /// The problem `source` last reported that still stands, if any.
    pub fn audio_problem(&self, source: AudioSource) -> Option<String> {
        self.audio.of(source).map(str::to_owned)
    }

    /// `source` reports its audio problem (`None`: its devices work).
    pub(super) fn audio(&mut self, source: AudioSource, problem: Option<String>) {
        match source {
            AudioSource::Call(l) => {
                if self.engine.get(l).is_none() {
                    return; // Reported as the call ended.
                }
                let old = self.audio.calls.get(&l);
                if old == problem.as_ref() {
                    return;
                }
                match &problem {
                    Some(p) => self.audio.calls.insert(l, p.clone()),
                    None => self.audio.calls.remove(&l),
                };
                self.change(Change::CallAudio(l));
            }
            AudioSource::Recording => self.audio.recording = problem.clone(),
        }
        let latest = match problem {
            Some(p) => p,
            // Working again here; another call's problem may still stand.
            None => self
                .audio
                .calls
                .values()
                .next_back()
                .cloned()
                .unwrap_or_default(),
        };
        if latest != self.audio.latest {
            self.audio.latest = latest;
            self.change(Change::AudioError);
        }
    }

    /// A call ended: its problem goes with it (the account's stays until something
    /// reports working devices).
    pub(super) fn forget_audio(&mut self, local: Local) {
        self.audio.calls.remove(&local);
    }
}
