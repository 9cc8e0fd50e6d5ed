//! Desktop notifications through `org.freedesktop.Notifications`: an incoming call (a
//! click answers, with Answer / Decline actions and the `phone-incoming-call` sound name,
//! resident, posted once more if the server closes it while the call still rings, closed
//! when it stops ringing; "Call waiting", without a sound name, for a call that comes
//! during another, replaced when it turns into an incoming call or back), missed calls,
//! messages and files. Remote strings go in as text,
//! never as markup ([`text`]). Without a notification server nothing happens, and nothing
//! fails.

mod server;
mod text;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use smol::stream::StreamExt;
use zbus::Connection;

use crate::call::engine::Local;
use crate::config::RingSound;
use crate::core::{CallOp, Command};
use crate::driver::Handle;
use server::{ActionInvoked, NotificationClosed, NotificationsProxy, Server};

/// Locks the notifier's own bookkeeping (not the core: answering goes through the driver).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The hints of the incoming-call notification.
///
/// `resident` keeps it on screen after an action was clicked (the spec's hint); the daemon
/// closes it when the call stops ringing. `sound-name` is the freedesktop sound theme's
/// name for the event. While the daemon sounds itself (`rings_itself`: the ring through
/// the output device, or the call-waiting beep inside a call), `suppress-sound` asks the
/// server not to play it too: the spec's hint for "the client plays its own sound", and
/// the daemon's ring goes on until the call stops ringing, which a notification sound
/// cannot. With `ring = "off"` the server may play it: that one sound is then the
/// desktop's way of ringing.
///
/// A waiting call (one that comes during another) has no `sound-name` and always
/// `suppress-sound`: its sound is the quiet call-waiting tone the daemon mixes into the
/// call, and a desktop sound would play over the conversation.
fn incoming_hints(
    waiting: bool,
    rings_itself: bool,
) -> HashMap<&'static str, zbus::Variant<'static>> {
    let mut hints = HashMap::new();
    hints.insert("category", zbus::Variant::from("call.incoming"));
    hints.insert("urgency", zbus::Variant::from(2u8));
    hints.insert("resident", zbus::Variant::from(true));
    if !waiting {
        hints.insert("sound-name", zbus::Variant::from(SOUND_NAME));
    }
    if rings_itself || waiting {
        hints.insert("suppress-sound", zbus::Variant::from(true));
    }
    hints
}

/// The incoming-call notification's summary.
fn call_summary(waiting: bool) -> &'static str {
    if waiting {
        "Call waiting"
    } else {
        "Incoming call"
    }
}

/// The incoming-call notification's actions (key, label): `default` is what a click on
/// the notification itself invokes, and answers like `answer`.
const CALL_ACTIONS: [&str; 6] = [DEFAULT, "Answer", ANSWER, "Answer", DECLINE, "Decline"];
const DEFAULT: &str = "default";
const ANSWER: &str = "answer";
const DECLINE: &str = "decline";
/// The `sound-name` of an incoming call (freedesktop Sound Naming Specification).
const SOUND_NAME: &str = "phone-incoming-call";

/// What the call's action key asks of the call, if anything.
fn call_op(action_key: &str) -> Option<CallOp> {
    match action_key {
        DEFAULT | ANSWER => Some(CallOp::Answer),
        DECLINE => Some(CallOp::Reject { busy: false }),
        _ => None,
    }
}

/// "Name (number)", or the number alone.
fn who(number: &str, name: &str) -> String {
    if name.is_empty() {
        number.to_owned()
    } else {
        format!("{name} ({number})")
    }
}

/// A ringing call's notification.
struct Ringing {
    id: u32,
    /// The caller, as the notification names them ("Name (number)", unescaped).
    who: String,
    /// Posted as a waiting call ("Call waiting") rather than an incoming one.
    waiting: bool,
    /// Posted a second time already (the server closed the first while it rang).
    reposted: bool,
    /// An action was clicked: the close that may follow is the server's doing.
    acted: bool,
}

pub struct Notifier {
    server: Server,
    phone: Handle,
    ringing: Mutex<HashMap<Local, Ringing>>,
    listening: Mutex<bool>,
}

impl Notifier {
    pub fn new(conn: Connection, phone: Handle) -> Arc<Notifier> {
        Arc::new(Notifier {
            server: Server::new(conn),
            phone,
            ringing: Mutex::new(HashMap::new()),
            listening: Mutex::new(false),
        })
    }

    /// Shows the incoming-call notification (`waiting`: the call-waiting one); an
    /// invitation to a conference says so and names who invited.
    pub async fn ring(
        self: &Arc<Self>,
        local: Local,
        number: &str,
        name: &str,
        waiting: bool,
        conference: bool,
    ) {
        let Some(p) = self.server.proxy().await else {
            return;
        };
        self.listen(&p).await;
        let who = if conference {
            format!("Conference call, invited by {}", who(number, name))
        } else {
            who(number, name)
        };
        if let Some(id) = self.post_call(&p, &who, waiting, 0).await {
            lock(&self.ringing).insert(
                local,
                Ringing {
                    id,
                    who,
                    waiting,
                    reposted: false,
                    acted: false,
                },
            );
        }
    }

    /// A call's state changed: if it still rings and has turned from waiting into
    /// incoming (the other call ended) or back (another call was answered), its
    /// notification is replaced by the one for what it is now.
    pub async fn update(&self, local: Local, waiting: bool) {
        let stale = lock(&self.ringing)
            .get(&local)
            .filter(|r| r.waiting != waiting)
            .map(|r| (r.id, r.who.clone()));
        let (Some((id, who)), Some(p)) = (stale, self.server.proxy().await) else {
            return;
        };
        let Some(new) = self.post_call(&p, &who, waiting, id).await else {
            return;
        };
        let kept = match lock(&self.ringing).get_mut(&local) {
            Some(r) if r.id == id => {
                r.id = new;
                r.waiting = waiting;
                true
            }
            _ => false,
        };
        if !kept {
            let _ = p.close_notification(new).await;
        }
    }

    /// Posts the incoming-call notification for `who` (replacing notification `replaces`
    /// unless 0); its id.
    async fn post_call(
        &self,
        p: &NotificationsProxy<'static>,
        who: &str,
        waiting: bool,
        replaces: u32,
    ) -> Option<u32> {
        let body = text::body(who, self.server.body_markup(p).await);
        let rings_itself = self.phone.config().audio.ring.sound != RingSound::Off;
        let hints = incoming_hints(waiting, rings_itself);
        let posted = p
            .notify(
                "phoned",
                replaces,
                "call-start",
                call_summary(waiting),
                &body,
                &CALL_ACTIONS,
                hints,
                0,
            )
            .await;
        posted
            .map_err(|e| tracing::debug!("no incoming-call notification: {e}"))
            .ok()
    }

    /// Closes the incoming-call notification of `local`, if any.
    pub async fn stop_ringing(&self, local: Local) {
        let id = lock(&self.ringing).remove(&local).map(|r| r.id);
        if let (Some(id), Some(p)) = (id, self.server.proxy().await) {
            let _ = p.close_notification(id).await;
        }
    }

    pub async fn missed(&self, number: &str, name: &str) {
        self.post(
            "call-missed",
            "Missed call",
            &who(number, name),
            "call.missed",
        )
        .await;
    }

    /// A text message arrived.
    pub async fn message(&self, number: &str, name: &str, text: &str) {
        // Cut before escaping, so that no entity is cut in half.
        let body: String = text.chars().take(200).collect();
        self.post("mail-message-new", &who(number, name), &body, "im.received")
            .await;
    }

    /// A file or voice message arrived.
    pub async fn file(&self, number: &str, name: &str, file: &str) {
        let summary = format!("File from {}", who(number, name));
        self.post("document-save", &summary, file, "transfer.complete")
            .await;
    }

    /// Posts a notification without actions that expires as the server likes; `summary`
    /// and `body` are plain text, made fit for the server here.
    async fn post(&self, icon: &str, summary: &str, body: &str, category: &str) {
        let Some(p) = self.server.proxy().await else {
            return;
        };
        let body = text::body(body, self.server.body_markup(&p).await);
        let summary = text::summary(summary);
        let mut hints: HashMap<&str, zbus::Variant<'_>> = HashMap::new();
        hints.insert("category", zbus::Variant::from(category));
        if let Err(e) = p
            .notify("phoned", 0, icon, &summary, &body, &[], hints, -1)
            .await
        {
            tracing::debug!("no {category} notification: {e}");
        }
    }

    /// Follows the server's signals once it has answered: a click or Answer / Decline acts
    /// on the call whose notification it was, and a ringing call's notification that the
    /// server closed (the user dismissed it, or it expired) is posted once more. One
    /// stream for both, so that they are handled in the order the server sent them.
    async fn listen(self: &Arc<Self>, p: &NotificationsProxy<'static>) {
        {
            let mut listening = lock(&self.listening);
            if *listening {
                return;
            }
            *listening = true;
        }
        let Ok(mut signals) = p.inner().receive_all_signals().await else {
            *lock(&self.listening) = false;
            return;
        };
        let me = self.clone();
        let p = p.clone();
        smol::spawn(async move {
            while let Some(msg) = signals.next().await {
                if let Some(signal) = ActionInvoked::from_message(msg.clone()) {
                    if let Ok(args) = signal.args() {
                        me.action(args.id, &args.action_key).await;
                    }
                } else if let Some(signal) = NotificationClosed::from_message(msg)
                    && let Ok(args) = signal.args()
                {
                    me.closed(&p, args.id, args.reason).await;
                }
            }
        })
        .detach();
    }

    /// The user clicked the notification `id` or one of its actions.
    async fn action(&self, id: u32, key: &str) {
        let local = lock(&self.ringing)
            .iter_mut()
            .find(|(_, r)| r.id == id)
            .map(|(l, r)| {
                r.acted = true;
                *l
            });
        let (Some(local), Some(op)) = (local, call_op(key)) else {
            return;
        };
        if let Err(e) = self.phone.command(Command::Call(local, op)).await {
            tracing::info!(local, "notification action {key}: {e}");
        }
    }

    /// The server closed the notification `id`: if it was a call's that still rings, and
    /// not already posted twice, post it again so that the call stays in reach. Once per
    /// call: a user who dismisses it again means it.
    async fn closed(&self, p: &NotificationsProxy<'static>, id: u32, reason: u32) {
        let again = lock(&self.ringing).iter_mut().find_map(|(l, r)| {
            (r.id == id && !r.reposted && !r.acted).then(|| {
                r.reposted = true;
                (*l, r.who.clone(), r.waiting)
            })
        });
        let Some((local, who, waiting)) = again else {
            return;
        };
        tracing::debug!(
            local,
            reason,
            "the ringing call's notification was closed; posting it again"
        );
        let Some(new) = self.post_call(p, &who, waiting, 0).await else {
            return;
        };
        // The call may have stopped ringing meanwhile: then its notification goes too.
        let kept = match lock(&self.ringing).get_mut(&local) {
            Some(r) if r.id == id => {
                r.id = new;
                true
            }
            _ => false,
        };
        if !kept {
            let _ = p.close_notification(new).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incoming_call_names_its_sound_and_suppresses_it_only_while_the_daemon_rings() {
        let ringing = incoming_hints(false, true);
        assert_eq!(
            ringing.get("sound-name"),
            Some(&zbus::Variant::from("phone-incoming-call"))
        );
        assert_eq!(
            ringing.get("suppress-sound"),
            Some(&zbus::Variant::from(true))
        );
        assert_eq!(ringing.get("resident"), Some(&zbus::Variant::from(true)));
        let off = incoming_hints(false, false);
        assert_eq!(off.get("sound-name"), ringing.get("sound-name"));
        assert!(!off.contains_key("suppress-sound"));
        assert_eq!(
            off.get("category"),
            Some(&zbus::Variant::from("call.incoming"))
        );
        assert_eq!(call_summary(false), "Incoming call");
    }

    #[test]
    fn a_waiting_call_says_so_and_asks_for_no_sound() {
        for rings_itself in [true, false] {
            let waiting = incoming_hints(true, rings_itself);
            assert!(!waiting.contains_key("sound-name"), "no ringtone");
            assert_eq!(
                waiting.get("suppress-sound"),
                Some(&zbus::Variant::from(true))
            );
            assert_eq!(waiting.get("resident"), Some(&zbus::Variant::from(true)));
        }
        assert_eq!(call_summary(true), "Call waiting");
    }

    #[test]
    fn a_click_on_the_call_notification_answers_like_answer() {
        assert!(CALL_ACTIONS.chunks(2).any(|a| a[0] == "default"));
        assert!(matches!(call_op("default"), Some(CallOp::Answer)));
        assert!(matches!(call_op("answer"), Some(CallOp::Answer)));
        assert!(matches!(
            call_op("decline"),
            Some(CallOp::Reject { busy: false })
        ));
        assert!(call_op("inline-reply").is_none());
    }
}
