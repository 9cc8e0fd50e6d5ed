//! Desktop notifications through `org.freedesktop.Notifications`: an incoming call with
//! Answer / Decline actions and the `phone-incoming-call` sound name (closed when it stops
//! ringing) and missed calls. Without a
//! notification server nothing happens, and nothing fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use smol::stream::StreamExt;
use zbus::{Connection, proxy};

use crate::call::engine::Local;
use crate::config::RingSound;
use crate::core::{CallOp, Command};
use crate::driver::Handle;

/// Locks the notifier's own bookkeeping (not the core: answering goes through the driver).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, zbus::Variant<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;
}

/// The hints of the incoming-call notification.
///
/// `sound-name` is the freedesktop sound theme's name for the event. While the daemon
/// sounds itself (`rings_itself`: the ring through the output device, or the call-waiting
/// beep inside a call), `suppress-sound` asks the server not to play it too: the spec's
/// hint for "the client plays its own sound", and the daemon's ring goes on until the call
/// stops ringing, which a notification sound cannot. With `ring = "off"` the server may
/// play it: that one sound is then the desktop's way of ringing.
fn incoming_hints(rings_itself: bool) -> HashMap<&'static str, zbus::Variant<'static>> {
    let mut hints = HashMap::new();
    hints.insert("category", zbus::Variant::from("call.incoming"));
    hints.insert("urgency", zbus::Variant::from(2u8));
    hints.insert("resident", zbus::Variant::from(true));
    hints.insert("sound-name", zbus::Variant::from(SOUND_NAME));
    if rings_itself {
        hints.insert("suppress-sound", zbus::Variant::from(true));
    }
    hints
}

pub struct Notifier {
    conn: Connection,
    phone: Handle,
    /// Ringing calls' notification ids.
    ringing: Mutex<HashMap<Local, u32>>,
    listening: Mutex<bool>,
}

const ANSWER: &str = "answer";
/// The `sound-name` of an incoming call (freedesktop Sound Naming Specification).
const SOUND_NAME: &str = "phone-incoming-call";

/// "Name (number)", or the number alone.
fn who(number: &str, name: &str) -> String {
    if name.is_empty() {
        number.to_owned()
    } else {
        format!("{name} ({number})")
    }
}
const DECLINE: &str = "decline";

impl Notifier {
    pub fn new(conn: Connection, phone: Handle) -> Arc<Notifier> {
        Arc::new(Notifier {
            conn,
            phone,
            ringing: Mutex::new(HashMap::new()),
            listening: Mutex::new(false),
        })
    }

    async fn proxy(&self) -> Option<NotificationsProxy<'static>> {
        NotificationsProxy::builder(&self.conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .ok()
    }

    /// Shows the incoming-call notification.
    pub async fn ring(self: &Arc<Self>, local: Local, number: &str, name: &str) {
        let Some(p) = self.proxy().await else { return };
        self.listen(&p).await;
        let who = who(number, name);
        let rings_itself = self.phone.config().audio.ring.sound != RingSound::Off;
        let hints = incoming_hints(rings_itself);
        let actions = [ANSWER, "Answer", DECLINE, "Decline"];
        match p
            .notify(
                "phoned",
                0,
                "call-start",
                "Incoming call",
                &who,
                &actions,
                hints,
                0,
            )
            .await
        {
            Ok(id) => {
                lock(&self.ringing).insert(local, id);
            }
            Err(e) => tracing::debug!("no incoming-call notification: {e}"),
        }
    }

    /// Closes the incoming-call notification of `local`, if any.
    pub async fn stop_ringing(&self, local: Local) {
        let id = lock(&self.ringing).remove(&local);
        if let (Some(id), Some(p)) = (id, self.proxy().await) {
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

    /// Posts a notification without actions that expires as the server likes.
    async fn post(&self, icon: &str, summary: &str, body: &str, category: &str) {
        let Some(p) = self.proxy().await else { return };
        let mut hints: HashMap<&str, zbus::Variant<'_>> = HashMap::new();
        hints.insert("category", zbus::Variant::from(category));
        if let Err(e) = p
            .notify("phoned", 0, icon, summary, body, &[], hints, -1)
            .await
        {
            tracing::debug!("no {category} notification: {e}");
        }
    }

    /// Follows `ActionInvoked` once a notification server has answered: Answer and Decline
    /// act on the call whose notification it was.
    async fn listen(self: &Arc<Self>, p: &NotificationsProxy<'static>) {
        {
            let mut listening = lock(&self.listening);
            if *listening {
                return;
            }
            *listening = true;
        }
        let Ok(mut actions) = p.receive_action_invoked().await else {
            *lock(&self.listening) = false;
            return;
        };
        let me = self.clone();
        smol::spawn(async move {
            while let Some(signal) = actions.next().await {
                let Ok(args) = signal.args() else { continue };
                let local = lock(&me.ringing)
                    .iter()
                    .find(|(_, id)| **id == args.id)
                    .map(|(l, _)| *l);
                let Some(local) = local else { continue };
                let op = match args.action_key.as_str() {
                    ANSWER => CallOp::Answer,
                    DECLINE => CallOp::Reject { busy: false },
                    _ => continue,
                };
                if let Err(e) = me.phone.command(Command::Call(local, op)).await {
                    tracing::info!(local, "notification action {}: {e}", args.action_key);
                }
            }
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incoming_call_names_its_sound_and_suppresses_it_only_while_the_daemon_rings() {
        let ringing = incoming_hints(true);
        assert_eq!(
            ringing.get("sound-name"),
            Some(&zbus::Variant::from("phone-incoming-call"))
        );
        assert_eq!(
            ringing.get("suppress-sound"),
            Some(&zbus::Variant::from(true))
        );
        let off = incoming_hints(false);
        assert_eq!(off.get("sound-name"), ringing.get("sound-name"));
        assert!(!off.contains_key("suppress-sound"));
        assert_eq!(
            off.get("category"),
            Some(&zbus::Variant::from("call.incoming"))
        );
    }
}
