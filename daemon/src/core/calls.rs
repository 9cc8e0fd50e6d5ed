//! How the call engine's outputs become the core's effects: requests (kept by token),
//! D-Bus changes, media, history, and the reconnect a reload left waiting for calls to end.

use phoned_proto::Request;

use super::{Change, Core, Effect, Media, Purpose};
use crate::call::engine::Output;

impl Core {
    /// Turns what the call engine decided into effects.
    pub(super) fn run_calls(&mut self, now_ms: u64, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send(local, request) => {
                    let dial = matches!(request, Request::Dial { .. });
                    self.request(now_ms, request, Purpose::Call { local, dial });
                }
                Output::Added(l) => self.change(Change::CallAdded(l)),
                Output::Changed(l) => self.change(Change::CallChanged(l)),
                Output::Removed(l, reason) => {
                    self.forget_audio(l);
                    self.change(Change::CallRemoved(l, reason));
                    self.relink_if_idle();
                }
                Output::Ring(l) => {
                    if let Some(c) = self.engine.get(l) {
                        let ring = Change::Ring(l, c.remote_number.clone(), c.remote_name.clone());
                        self.change(ring);
                    }
                }
                Output::StopRinging(l) => self.change(Change::StopRinging(l)),
                Output::Missed(_) => {}
                Output::DtmfReceived(l, digits) => self.change(Change::Dtmf(l, digits)),
                Output::StartMedia {
                    local,
                    call,
                    source,
                } => {
                    let muted = self.engine.get(local).is_some_and(|c| c.muted);
                    self.push(Effect::Media(Media::Start {
                        local,
                        call,
                        source,
                        muted,
                    }));
                }
                Output::PauseMedia(l) => self.push(Effect::Media(Media::Pause(l))),
                Output::StopMedia(l) => self.push(Effect::Media(Media::Stop(l))),
                Output::Record(r) => {
                    let (missed, number, name) = (r.missed, r.number.clone(), r.name.clone());
                    self.push(Effect::Record(r));
                    if missed {
                        self.change(Change::Missed(number, name));
                    }
                    self.change(Change::History);
                }
            }
        }
    }
}
