//! A stand-in desktop notification server (`org.freedesktop.Notifications`) on a daemon's
//! bus: records what `Notify` posts and `CloseNotification` closes, says `body-markup` in
//! its capabilities or not, and emits `ActionInvoked` and `NotificationClosed` as a user's
//! click or dismissal would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::wait_for;

const PATH: &str = "/org/freedesktop/Notifications";

/// One `Notify` call.
#[derive(Clone, Debug)]
pub struct Posted {
    pub id: u32,
    /// The notification it replaces (`replaces_id`), 0 for none. The mock gives every
    /// `Notify` a new id all the same.
    pub replaces: u32,
    pub summary: String,
    pub body: String,
    /// Keys and labels, as sent: key, label, key, label, …
    pub actions: Vec<String>,
    /// The hints' values as debug text (`Bool(true)`, `Str("call.incoming")`).
    pub hints: HashMap<String, String>,
}

impl Posted {
    /// The action keys (every other entry of `actions`).
    pub fn action_keys(&self) -> Vec<&str> {
        self.actions.iter().step_by(2).map(String::as_str).collect()
    }
}

#[derive(Default, Clone)]
struct Mock {
    body_markup: bool,
    posted: Arc<Mutex<Vec<Posted>>>,
    closed: Arc<Mutex<Vec<u32>>>,
    capabilities_asked: Arc<AtomicU32>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Mock {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: &str,
        replaces_id: u32,
        _app_icon: &str,
        summary: &str,
        body: &str,
        actions: Vec<String>,
        hints: HashMap<String, zbus::OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut posted = lock(&self.posted);
        let id = posted.len() as u32 + 1;
        let hints = hints
            .into_iter()
            .map(|(k, v)| (k, format!("{v:?}")))
            .collect();
        posted.push(Posted {
            id,
            replaces: replaces_id,
            summary: summary.to_owned(),
            body: body.to_owned(),
            actions,
            hints,
        });
        id
    }

    fn close_notification(&self, id: u32) {
        lock(&self.closed).push(id);
    }

    fn get_capabilities(&self) -> Vec<String> {
        self.capabilities_asked.fetch_add(1, Ordering::SeqCst);
        let mut caps = vec!["actions".into(), "body".into(), "sound".into()];
        if self.body_markup {
            caps.push("body-markup".into());
        }
        caps
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "mock".into(),
            "phoned-tests".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn notification_closed(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: u32,
        reason: u32,
    ) -> zbus::Result<()>;
}

/// `NotificationClosed`'s reason when the user dismissed the notification.
pub const DISMISSED: u32 = 2;

/// The stand-in server, holding the name while it lives.
pub struct NotificationServer {
    mock: Mock,
    conn: zbus::Connection,
}

impl NotificationServer {
    /// Takes `org.freedesktop.Notifications` on the bus at `bus_address`; `body_markup`
    /// says whether its capabilities include `body-markup`.
    pub fn start(bus_address: &str, body_markup: bool) -> NotificationServer {
        let mock = Mock {
            body_markup,
            ..Mock::default()
        };
        let conn = smol::block_on(async {
            zbus::connection::Builder::address(bus_address)
                .name("org.freedesktop.Notifications")
                .serve_at(PATH, mock.clone())
                .build()
                .await
        })
        .expect("the mock notification server on the bus");
        NotificationServer { mock, conn }
    }

    /// Everything posted so far.
    pub fn posted(&self) -> Vec<Posted> {
        lock(&self.mock.posted).clone()
    }

    /// The `n`th (from 0) notification posted with `summary`, waiting for it.
    pub fn wait_posted(&self, summary: &str, n: usize) -> Posted {
        wait_for(Duration::from_secs(10), || {
            self.posted()
                .into_iter()
                .filter(|p| p.summary == summary)
                .nth(n)
        })
        .unwrap_or_else(|| panic!("no notification #{n} {summary:?}: {:?}", self.posted()))
    }

    /// Whether the daemon closed the notification `id`, waiting for it a while.
    pub fn wait_closed(&self, id: u32) -> bool {
        wait_for(Duration::from_secs(10), || {
            lock(&self.mock.closed).contains(&id).then_some(())
        })
        .is_some()
    }

    /// How many times `GetCapabilities` was called.
    pub fn capabilities_asked(&self) -> u32 {
        self.mock.capabilities_asked.load(Ordering::SeqCst)
    }

    /// The user clicked the action `key` (`default`: the notification itself) of `id`.
    pub fn invoke(&self, id: u32, key: &str) {
        smol::block_on(async {
            let iface = self.conn.object_server().interface::<_, Mock>(PATH).await?;
            Mock::action_invoked(iface.signal_emitter(), id, key).await
        })
        .expect("ActionInvoked emitted");
    }

    /// The server closed `id` for `reason` (2: the user dismissed it).
    pub fn close(&self, id: u32, reason: u32) {
        smol::block_on(async {
            let iface = self.conn.object_server().interface::<_, Mock>(PATH).await?;
            Mock::notification_closed(iface.signal_emitter(), id, reason).await
        })
        .expect("NotificationClosed emitted");
    }
}
