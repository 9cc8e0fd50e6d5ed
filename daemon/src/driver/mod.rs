//! The one task that owns the daemon's [`Core`]: it feeds the core commands (from D-Bus),
//! link events and relay answers, wakes it at its deadline, and carries out its effects:
//! requests to the relay (their answers come back as inputs), replies to waiting callers,
//! changes for the D-Bus announcer, call media, the ring and the call-waiting tone,
//! history, settings and credentials, and the hand-off of messages and files to their
//! adapters. It also owns the live relay client, the media sessions and the ring player. Nothing else touches the core; adapters hold a
//! [`Handle`]. Names in what the relay sends are cleaned on the way in ([`untrusted`]).

mod handle;
#[cfg(test)]
mod tests;
mod untrusted;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phoned_proto::call::CallId;
use phoned_proto::state::AutoAnswer;
use phoned_proto::{Event, Request};
use smol::channel::{Receiver, Sender};

use crate::call::engine::{Local, Record};
use crate::call::media::{MediaRoutes, MediaSession, QualityReporter, Reporter};
use crate::config::Config;
use crate::core::{
    AudioSource, CallSettings, Change, Core, CoreError, Effect, Input, LinkEvent, Media, Remember,
    Reply, ReplyTo, Setting, Token,
};
use crate::link::media::MediaLink;
use crate::ring::{RingPlayer, Sound};
use crate::store::{self, Store};
use crate::work::Work;
use crate::{credentials, files, messages};
pub use handle::Handle;
use handle::{Msg, ReplySender, SnapshotCell};
use phoned_client::Client;

/// What `main` wires together: the handle for adapters, the driver to run, and the
/// ends the D-Bus announcer and the link take.
pub struct Parts {
    pub handle: Handle,
    pub driver: Driver,
    /// Changes to announce on D-Bus.
    pub changes: Receiver<Change>,
    /// Fires when the core wants the link to reconnect.
    pub relink: Receiver<()>,
    /// Where the link delivers media datagrams: straight to the calls' media threads.
    pub media: MediaRoutes,
}

pub struct Driver {
    core: Core,
    handle: Handle,
    rx: Receiver<Msg>,
    relink: Sender<()>,
    client: Option<Arc<Client>>,
    /// Where the calls' media goes out (UDP media plane or QUIC), with the client.
    media_link: Option<Arc<MediaLink>>,
    /// Media of the calls that are active or held now.
    media: HashMap<Local, (CallId, MediaSession)>,
    /// The same calls' media threads, for the link's readers to deliver datagrams to.
    routes: MediaRoutes,
    /// The ring playing through the output device, if one is.
    ring: Option<RingPlayer>,
    /// Whether the calls' playback carries the call-waiting tone.
    waiting_tone: bool,
    replies: HashMap<ReplyTo, ReplySender>,
    next_reply: ReplyTo,
}

/// Do-not-disturb and auto-answer as last stored.
fn stored_settings(store: &Store) -> CallSettings {
    let setting = |k: &str| store.setting(k).ok().flatten();
    CallSettings {
        do_not_disturb: setting(store::DND).as_deref() == Some("true"),
        auto_answer: setting(store::AUTO_ANSWER)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
    }
}

/// Builds the core from `config` and the stored settings, and everything around it.
pub fn new(config: Config, config_path: PathBuf, state_dir: PathBuf, store: Store) -> Parts {
    let core = Core::new(Arc::new(config), stored_settings(&store));
    let (tx, rx) = smol::channel::unbounded();
    let (changes_tx, changes) = smol::channel::unbounded();
    let (relink_tx, relink) = smol::channel::bounded(1);
    let media = MediaRoutes::default();
    let handle = Handle {
        tx,
        snapshot: Arc::new(SnapshotCell::new(core.snapshot())),
        changes: changes_tx,
        store,
        state_dir,
        config_path,
        work: Arc::new(Work::default()),
        audio_work: Arc::new(Work::new(1, 0)),
        outbox: Arc::default(),
    };
    let driver = Driver {
        core,
        handle: handle.clone(),
        rx,
        relink: relink_tx,
        client: None,
        media_link: None,
        media: HashMap::new(),
        routes: media.clone(),
        ring: None,
        waiting_tone: false,
        replies: HashMap::new(),
        next_reply: 1,
    };
    Parts {
        handle,
        driver,
        changes,
        relink,
        media,
    }
}

/// Wall-clock Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What woke the driver.
enum Wake {
    Msg(Msg),
    Deadline,
    Closed,
}

impl Driver {
    /// Runs until every handle is gone.
    pub async fn run(mut self) {
        loop {
            let wake = {
                let deadline = self.core.next_deadline();
                let msgs = async {
                    match self.rx.recv().await {
                        Ok(m) => Wake::Msg(m),
                        Err(_) => Wake::Closed,
                    }
                };
                let timer = async {
                    match deadline {
                        Some(at) => {
                            let wait = at.saturating_sub(unix_ms());
                            smol::Timer::after(Duration::from_millis(wait)).await;
                            Wake::Deadline
                        }
                        None => std::future::pending().await,
                    }
                };
                smol::future::or(msgs, timer).await
            };
            match wake {
                Wake::Msg(m) => self.msg(m),
                Wake::Deadline => self.input(Input::Timeout),
                Wake::Closed => return,
            }
        }
    }

    fn msg(&mut self, msg: Msg) {
        match msg {
            Msg::Command { command, reply } => {
                let reply = reply.map(|r| {
                    let to = self.next_reply;
                    self.next_reply += 1;
                    self.replies.insert(to, r);
                    to
                });
                self.input(Input::Command { command, reply });
            }
            Msg::Online {
                client,
                media,
                mut account,
                mut online,
            } => {
                untrusted::account(&mut account);
                untrusted::online(&mut online);
                self.client = Some(client);
                self.media_link = Some(media);
                self.input(Input::Link(LinkEvent::Online { account, online }));
            }
            Msg::Link(event) => {
                let offline = matches!(event, LinkEvent::Offline { .. });
                self.input(Input::Link(event));
                if offline {
                    self.client = None;
                    self.media_link = None;
                }
            }
            Msg::Event(mut event) => {
                untrusted::event(&mut event);
                let caller_known = match &event {
                    Event::CallIncoming { from_number, .. } => self
                        .handle
                        .store
                        .lookup_contact(from_number)
                        .is_ok_and(|c| c.number == *from_number),
                    _ => false,
                };
                self.input(Input::Link(LinkEvent::Relay {
                    event,
                    caller_known,
                }));
            }
            Msg::Answer { token, mut result } => {
                if let Ok(response) = &mut result {
                    untrusted::response(response);
                }
                self.input(Input::Answer { token, result })
            }
            Msg::Client(tx) => {
                let _ = tx.try_send(self.client.clone());
            }
            Msg::Audio { source, problem } => self.audio(source, problem),
            Msg::Quality { local, quality } => {
                // Only while its media runs: a report can cross the call's end.
                if self.media.contains_key(&local) {
                    self.input(Input::Quality { local, quality });
                }
            }
        }
    }

    /// An audio problem report: logged when it appears (one warning) and when it clears
    /// (one line), then given to the core, which keeps and announces it.
    fn audio(&mut self, source: AudioSource, problem: Option<String>) {
        let call = match source {
            AudioSource::Call(local) => match self.media.get(&local) {
                Some((call, _)) => Some((local, *call)),
                None => return, // The call's media has stopped since.
            },
            AudioSource::Recording => None,
        };
        let span = match call {
            Some((local, call)) => tracing::info_span!("call", local, relay_call = call),
            None => tracing::info_span!("recording"),
        };
        let _in = span.enter();
        let before = self.core.audio_problem(source);
        match (&before, &problem) {
            (None, Some(p)) => tracing::warn!("audio problem: {p}"),
            (Some(_), None) => tracing::info!("audio works again"),
            (Some(old), Some(p)) if old != p => tracing::info!("audio problem now: {p}"),
            _ => {}
        }
        self.input(Input::Audio { source, problem });
    }

    fn input(&mut self, input: Input) {
        let effects = self.core.handle(unix_ms(), input);
        // Published before the effects run, so the announcer reads what it announces.
        self.handle.snapshot.set(self.core.snapshot());
        for effect in effects {
            self.effect(effect);
        }
    }

    fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::Send { token, request } => self.send(token, request),
            Effect::Reply { to, result } => {
                if let Some(tx) = self.replies.remove(&to) {
                    let _ = tx.try_send(result);
                }
            }
            Effect::Change(c) => self.handle.announce(c),
            Effect::Media(m) => self.media(m),
            Effect::Sound(s) => self.sound(s),
            Effect::Record(r) => self.record(r),
            Effect::Save { setting, reply } => {
                let (key, value) = match setting {
                    Setting::DoNotDisturb(on) => (store::DND, if on { "true" } else { "false" }),
                    Setting::AutoAnswer(mode) => (store::AUTO_ANSWER, AutoAnswer::as_str(mode)),
                };
                let result = self
                    .handle
                    .store
                    .set_setting(key, value)
                    .map(|()| Reply::Done)
                    .map_err(|e| CoreError::failed(e.to_string()));
                if let Some(tx) = reply.and_then(|to| self.replies.remove(&to)) {
                    let _ = tx.try_send(result);
                }
            }
            Effect::Remember(r) => self.remember(r),
            Effect::Reconnect => {
                let _ = self.relink.try_send(());
            }
            Effect::FlushOutbox => {
                smol::spawn(messages::flush(self.handle.clone())).detach();
                smol::spawn(files::flush(self.handle.clone())).detach();
            }
            Effect::Message(m) => messages::received(&self.handle, m),
            Effect::File(f) => files::offered(&self.handle, f),
            Effect::Delivered { client_id, id } => {
                // One owner per receipt: a file if the files outbox has that id, else a
                // text.
                let is_file = self.handle.store.file(&client_id).ok().flatten().is_some();
                let recorded = if is_file {
                    files::delivered(&self.handle, &client_id, id);
                    true
                } else {
                    messages::delivered(&self.handle, &client_id, id)
                };
                // Recorded (the store writes are durable): the relay may forget it. A
                // protocol 1 relay forgot it already and has no `ReceiptSeen`.
                if recorded && self.client.as_ref().is_some_and(|c| c.version() >= 2) {
                    messages::receipt_seen(&self.handle, id);
                }
            }
        }
    }

    /// Sends a request on the live client; its answer comes back as an input.
    fn send(&mut self, token: Token, request: Request) {
        let tx = self.handle.tx.clone();
        let Some(client) = self.client.clone() else {
            // The link went down and the core has not heard yet.
            let result = Err(CoreError::offline("not connected to the relay"));
            let _ = tx.try_send(Msg::Answer { token, result });
            return;
        };
        smol::spawn(async move {
            let result = client.request(request).await.map_err(CoreError::from);
            if let Err(e) = &result {
                tracing::debug!(token, "relay request failed: {e}");
            }
            let _ = tx.send(Msg::Answer { token, result }).await;
        })
        .detach();
    }

    fn media(&mut self, m: Media) {
        match m {
            Media::Start {
                local,
                call,
                source,
                muted,
            } => {
                let span = tracing::info_span!("call", local, relay_call = call);
                let _in_call = span.enter();
                // Resuming from hold: the session is there, paused. A call moved into a
                // conference has a new id and source: its media starts anew.
                match self.media.get(&local) {
                    Some((c, session)) if *c == call => {
                        session.set_paused(false);
                        return;
                    }
                    Some(_) => drop(self.take_media(local)),
                    None => {}
                }
                let Some(link) = &self.media_link else { return };
                let audio = &self.core.config().audio;
                let handle = self.handle.clone();
                let report: Reporter =
                    Box::new(move |problem| handle.audio(AudioSource::Call(local), problem));
                let handle = self.handle.clone();
                let quality: QualityReporter = Box::new(move |q| handle.quality(local, q));
                let reporters = (report, quality);
                match MediaSession::start(audio, link.clone(), call, source, muted, reporters) {
                    Ok(session) => {
                        tracing::info!(source, "call media started");
                        session.set_waiting_tone(self.waiting_tone);
                        self.routes.set(local, call, session.inlet());
                        self.media.insert(local, (call, session));
                    }
                    Err(e) => tracing::error!("no audio for the call: {e}"),
                }
            }
            Media::Pause(local) => {
                if let Some((_, session)) = self.media.get(&local) {
                    session.set_paused(true);
                }
            }
            Media::Mute(local, muted) => {
                if let Some((_, session)) = self.media.get(&local) {
                    session.set_muted(muted);
                }
            }
            Media::Stop(local) => {
                if let Some((call, session)) = self.take_media(local) {
                    let span = tracing::info_span!("call", local, relay_call = call);
                    let _in_call = span.enter();
                    // Joining the media thread takes at most one of its 5 ms ticks.
                    drop(session);
                    tracing::info!("call media stopped");
                }
            }
        }
    }

    /// Takes a call's media out of the table and out of the link's routes, in step: no
    /// datagram is delivered to it from now on.
    fn take_media(&mut self, local: Local) -> Option<(CallId, MediaSession)> {
        self.routes.remove(local);
        self.media.remove(&local)
    }

    /// Rings, plays the waiting tone in the calls, or stops both. Dropping the ring player
    /// closes its stream before returning: a call that the same batch starts finds the
    /// device free.
    fn sound(&mut self, sound: Sound) {
        self.ring = None;
        if sound == Sound::Ring {
            match RingPlayer::start(&self.core.config().audio) {
                Ok(player) => self.ring = Some(player),
                Err(e) => tracing::error!("cannot start the ring thread: {e}"),
            }
        }
        self.waiting_tone = sound == Sound::Waiting;
        for (_, session) in self.media.values() {
            session.set_waiting_tone(self.waiting_tone);
        }
    }

    fn record(&self, r: Record) {
        let entry = store::history::HistoryEntry {
            number: r.number,
            name: r.name,
            direction: r.direction,
            result: r.result,
            start_ms: r.start_ms,
            duration_ms: r.duration_ms,
            missed: r.missed,
        };
        if let Err(e) = self.handle.store.add_history(&entry) {
            tracing::error!("recording call history: {e}");
        }
    }

    /// Updates the stored credentials (the core asks only when the config has none).
    fn remember(&self, r: Remember) {
        let dir = &self.handle.state_dir;
        match credentials::load(dir) {
            Ok(Some(mut c)) => {
                let before = c.clone();
                match r {
                    Remember::Number(n) => c.number = n,
                    Remember::Password(p) => c.password = p,
                }
                if c != before
                    && let Err(e) = credentials::save(dir, &c)
                {
                    tracing::error!("saving credentials: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!("reading credentials: {e}"),
        }
    }
}
