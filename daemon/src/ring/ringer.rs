//! When this device makes a sound for an incoming call, sans-IO: the [`Ringer`] follows
//! which calls ring (the call engine's `Ring` / `StopRinging`) and which calls have media
//! (`StartMedia` / `StopMedia`), and says what should sound: nothing, the ring through
//! the output device, or the call-waiting tone inside the call that has the device.
//!
//! Do-not-disturb and auto-answer need nothing here: the engine does not ring for the
//! calls they take. There is no clock either: the cadences are the tones' own, counted
//! in device samples (`tone.rs`), and a ring ends when its call stops ringing (answered,
//! declined, given up or timed out at the relay).
//!
//! The order of what it says matters to the device: a sound that must stop is reported
//! at once, by [`Ringer::event`], so the driver closes the ring's playback stream before
//! it opens the call's devices for the media that the same batch starts; a sound that
//! may start is reported once the whole batch is in, by [`Ringer::settle`], so a batch
//! that ends every call at once (the link dropped) does not open the device for a ring
//! that is over before it starts.

use std::collections::BTreeSet;

use crate::call::engine::Local;

/// What the device should sound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sound {
    #[default]
    Silent,
    /// Ring through the output device: a call rings and no call has media.
    Ring,
    /// Mix the call-waiting tone into the calls' playback: a call rings while another has
    /// the devices.
    Waiting,
}

/// What the ringer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingEvent {
    /// An incoming call rings here.
    Ring(Local),
    /// It stopped ringing (answered, declined, ended).
    StopRinging(Local),
    /// A call's media started (`true`) or stopped (`false`); a held call keeps its media.
    Media(Local, bool),
}

#[derive(Debug, Default)]
pub struct Ringer {
    ringing: BTreeSet<Local>,
    in_media: BTreeSet<Local>,
    sound: Sound,
}

impl Ringer {
    pub fn new() -> Ringer {
        Ringer::default()
    }

    /// What sounds now.
    pub fn sound(&self) -> Sound {
        self.sound
    }

    /// What the calls ask for.
    fn wanted(&self) -> Sound {
        match (self.ringing.is_empty(), self.in_media.is_empty()) {
            (true, _) => Sound::Silent,
            (false, true) => Sound::Ring,
            (false, false) => Sound::Waiting,
        }
    }

    /// Takes one event; returns [`Sound::Silent`] when what sounds must stop now.
    pub fn event(&mut self, event: RingEvent) -> Option<Sound> {
        match event {
            RingEvent::Ring(l) => self.ringing.insert(l),
            RingEvent::StopRinging(l) => self.ringing.remove(&l),
            RingEvent::Media(l, true) => self.in_media.insert(l),
            RingEvent::Media(l, false) => self.in_media.remove(&l),
        };
        if self.sound != Sound::Silent && self.wanted() != self.sound {
            self.sound = Sound::Silent;
            return Some(Sound::Silent);
        }
        None
    }

    /// After a batch of events: the sound to start, if one should and `enabled` (the
    /// config's `ring` is not `off`) allows it. A sound already playing is left alone.
    pub fn settle(&mut self, enabled: bool) -> Option<Sound> {
        let wanted = self.wanted();
        if self.sound != Sound::Silent || wanted == Sound::Silent || !enabled {
            return None;
        }
        self.sound = wanted;
        Some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RingEvent::*;
    use proptest::prelude::*;

    /// Feeds one batch of events; returns everything the ringer said, in order.
    fn batch(r: &mut Ringer, events: &[RingEvent]) -> Vec<Sound> {
        let mut said: Vec<Sound> = events.iter().filter_map(|&e| r.event(e)).collect();
        said.extend(r.settle(true));
        said
    }

    #[test]
    fn a_call_rings_until_it_is_answered_and_the_ring_stops_before_the_media_starts() {
        let mut r = Ringer::new();
        assert_eq!(batch(&mut r, &[Ring(1)]), [Sound::Ring]);
        let mut said = Vec::new();
        said.extend(r.event(StopRinging(1)));
        assert_eq!(said, [Sound::Silent], "stopped before the media opens");
        said.extend(r.event(Media(1, true)));
        said.extend(r.settle(true));
        assert_eq!(said, [Sound::Silent]);
        assert_eq!(r.sound(), Sound::Silent);
    }

    #[test]
    fn declined_or_given_up_stops_the_ring() {
        let mut r = Ringer::new();
        batch(&mut r, &[Ring(1)]);
        assert_eq!(batch(&mut r, &[StopRinging(1)]), [Sound::Silent]);
        assert_eq!(batch(&mut r, &[]), []);
    }

    #[test]
    fn a_second_call_during_a_call_gets_the_waiting_tone_not_the_ring() {
        let mut r = Ringer::new();
        batch(&mut r, &[Ring(1)]);
        batch(&mut r, &[StopRinging(1), Media(1, true)]);
        assert_eq!(batch(&mut r, &[Ring(2)]), [Sound::Waiting]);
        // Answering it puts the first on hold (its media stays) and starts the second's.
        assert_eq!(
            batch(&mut r, &[StopRinging(2), Media(2, true)]),
            [Sound::Silent]
        );
        assert_eq!(r.sound(), Sound::Silent);
    }

    #[test]
    fn the_waiting_call_rings_out_loud_once_the_call_before_it_ends() {
        let mut r = Ringer::new();
        batch(&mut r, &[Media(1, true)]);
        assert_eq!(batch(&mut r, &[Ring(2)]), [Sound::Waiting]);
        assert_eq!(
            batch(&mut r, &[Media(1, false)]),
            [Sound::Silent, Sound::Ring]
        );
    }

    #[test]
    fn a_call_that_gets_media_while_another_rings_turns_the_ring_into_the_waiting_tone() {
        let mut r = Ringer::new();
        batch(&mut r, &[Ring(2)]);
        // An outgoing call answered while this one rings: the device is the call's now.
        assert_eq!(
            batch(&mut r, &[Media(1, true)]),
            [Sound::Silent, Sound::Waiting]
        );
    }

    #[test]
    fn two_ringing_calls_ring_until_both_stop() {
        let mut r = Ringer::new();
        assert_eq!(batch(&mut r, &[Ring(1), Ring(2)]), [Sound::Ring]);
        assert_eq!(batch(&mut r, &[StopRinging(1)]), []);
        assert_eq!(batch(&mut r, &[StopRinging(2)]), [Sound::Silent]);
    }

    #[test]
    fn everything_ending_at_once_opens_nothing() {
        let mut r = Ringer::new();
        batch(&mut r, &[Media(1, true)]);
        batch(&mut r, &[Ring(2)]);
        // The link dropped: the call's media stops, then the ringing one ends.
        assert_eq!(
            batch(&mut r, &[Media(1, false), StopRinging(2)]),
            [Sound::Silent]
        );
    }

    #[test]
    fn ring_off_sounds_nothing() {
        let mut r = Ringer::new();
        assert_eq!(r.event(Ring(1)), None);
        assert_eq!(r.settle(false), None);
        r.event(Media(2, true));
        assert_eq!(r.settle(false), None);
        assert_eq!(r.event(StopRinging(1)), None);
        assert_eq!(r.sound(), Sound::Silent);
    }

    fn event() -> impl Strategy<Value = RingEvent> {
        prop_oneof![
            (0u32..4).prop_map(Ring),
            (0u32..4).prop_map(StopRinging),
            (0u32..4, any::<bool>()).prop_map(|(l, on)| Media(l, on)),
        ]
    }

    proptest! {
        /// Whatever happens: two different sounds are always separated by silence (the
        /// ring's stream is closed before anything else uses the device), and after each
        /// batch what sounds is what the calls ask for.
        #[test]
        fn sounds_follow_the_calls_and_never_switch_without_stopping(
            batches in prop::collection::vec(prop::collection::vec(event(), 0..5), 0..30)
        ) {
            let mut r = Ringer::new();
            let mut ringing = BTreeSet::new();
            let mut media = BTreeSet::new();
            let mut last = Sound::Silent;
            for events in batches {
                for &e in &events {
                    match e {
                        Ring(l) => { ringing.insert(l); }
                        StopRinging(l) => { ringing.remove(&l); }
                        Media(l, on) => { if on { media.insert(l); } else { media.remove(&l); } }
                    }
                }
                for said in batch(&mut r, &events) {
                    prop_assert!(
                        last == Sound::Silent || said == Sound::Silent,
                        "{last:?} → {said:?}"
                    );
                    prop_assert_ne!(said, last);
                    last = said;
                }
                let expected = match (ringing.is_empty(), media.is_empty()) {
                    (true, _) => Sound::Silent,
                    (false, true) => Sound::Ring,
                    (false, false) => Sound::Waiting,
                };
                prop_assert_eq!(r.sound(), expected);
                prop_assert_eq!(last, expected);
            }
        }
    }
}
