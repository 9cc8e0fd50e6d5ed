//! Each active call's live quality (`Call.Quality`): the media thread reports it once a
//! second (`call/media/quality.rs` measures it); the core keeps the latest report of each
//! call that is active and announces it when it changed. A call on hold (by either side)
//! or over has none,
//! so the property reads empty then instead of showing stale figures.

use super::{Change, Core};
use crate::call::engine::Local;
use crate::call::quality::Quality;
use phoned_proto::call::CallState;

impl Core {
    /// The media of call `local` measured `quality`.
    pub(super) fn quality(&mut self, local: Local, quality: Quality) {
        // A report that crossed a hold (by either side) or the end in the channel is
        // stale.
        let talking = self
            .engine
            .get(local)
            .is_some_and(|c| c.state == CallState::Active && !c.remote_held);
        if !talking {
            return;
        }
        if self.quality.insert(local, quality) != Some(quality) {
            self.change(Change::CallQuality(local));
        }
    }

    /// Call `local` is no longer active (on hold, or over): its figures go until its
    /// media reports again.
    pub(super) fn forget_quality(&mut self, local: Local) {
        self.quality.remove(&local);
    }
}
