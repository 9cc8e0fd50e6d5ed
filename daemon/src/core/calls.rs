//! How the call engine's outputs become the core's effects: requests (kept by token),
//! D-Bus changes, media, sounds (through the ringer), history, and the reconnect a reload
//! left waiting for calls to end.

use phoned_proto::Request;
use phoned_proto::call::CallState;

use super::{Change, Core, Effect, Media, Purpose};
use crate::call::engine::Output;
use crate::config::RingSound;
use crate::ring::RingEvent;

impl Core {
    /// Tells the ringer; a sound that must stop stops here, in order with the media.
    fn ring_event(&mut self, event: RingEvent) {
        if let Some(sound) = self.ringer.event(event) {
            self.push(Effect::Sound(sound));
        }
    }

    /// After an input: starts the sound the calls ask for, unless `ring = "off"`.
    pub(super) fn settle_sound(&mut self) {
        let enabled = self.config.audio.ring.sound != RingSound::Off;
        if let Some(sound) = self.ringer.settle(enabled) {
            self.push(Effect::Sound(sound));
        }
    }

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
                    self.forget_quality(l);
                    self.change(Change::CallRemoved(l, reason));
                    self.relink_if_idle();
                }
                Output::Ring(l) => {
                    self.ring_event(RingEvent::Ring(l));
                    if let Some(c) = self.engine.get(l) {
                        let ring = Change::Ring {
                            local: l,
                            number: c.remote_number.clone(),
                            name: c.remote_name.clone(),
                            waiting: c.state == CallState::Waiting,
                        };
                        self.change(ring);
                    }
                }
                Output::StopRinging(l) => {
                    self.ring_event(RingEvent::StopRinging(l));
                    self.change(Change::StopRinging(l));
                }
                Output::Missed(_) => {}
                Output::Conference(l) => self.change(Change::Conference(l)),
                Output::DtmfReceived(l, digits) => self.change(Change::Dtmf(l, digits)),
                Output::StartMedia {
                    local,
                    call,
                    source,
                } => {
                    let muted = self.engine.get(local).is_some_and(|c| c.muted);
                    // A ring stops before the call's devices open.
                    self.ring_event(RingEvent::Media(local, true));
                    self.push(Effect::Media(Media::Start {
                        local,
                        call,
                        source,
                        muted,
                    }));
                }
                Output::PauseMedia(l) => {
                    self.forget_quality(l);
                    self.push(Effect::Media(Media::Pause(l)));
                }
                Output::StopMedia(l) => {
                    self.forget_quality(l);
                    self.ring_event(RingEvent::Media(l, false));
                    self.push(Effect::Media(Media::Stop(l)));
                }
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
