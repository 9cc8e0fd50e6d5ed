//! The desktop's notification server as the notifier sees it: the
//! `org.freedesktop.Notifications` proxy and what the server now on the bus can do
//! (`GetCapabilities`), asked once per server and asked again when another one takes the
//! name (a desktop restart, a different server).

use std::collections::HashMap;
use std::sync::Mutex;

use zbus::names::{BusName, OwnedUniqueName};
use zbus::{Connection, proxy};

use super::lock;

pub const NAME: &str = "org.freedesktop.Notifications";

#[proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
pub trait Notifications {
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

    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;

    /// `reason`: 1 expired, 2 dismissed by the user, 3 closed by `CloseNotification`,
    /// 4 undefined.
    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;
}

/// The connection to the notification server and what it is known to support.
pub struct Server {
    conn: Connection,
    /// The unique name of the server last asked and whether it takes body markup.
    markup: Mutex<Option<(OwnedUniqueName, bool)>>,
}

impl Server {
    pub fn new(conn: Connection) -> Server {
        Server {
            conn,
            markup: Mutex::new(None),
        }
    }

    pub async fn proxy(&self) -> Option<NotificationsProxy<'static>> {
        NotificationsProxy::builder(&self.conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .ok()
    }

    /// The unique name now owning the notification server's name, if any.
    async fn owner(&self) -> Option<OwnedUniqueName> {
        let bus = zbus::fdo::DBusProxy::builder(&self.conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .ok()?;
        let name = BusName::try_from(NAME).ok()?;
        bus.get_name_owner(name).await.ok()
    }

    /// Whether the server renders body markup (`body-markup` in its capabilities), so
    /// that remote text has to be escaped. Asked once per server: the answer is kept
    /// with the server's unique name. A server that cannot say gets plain text.
    pub async fn body_markup(&self, p: &NotificationsProxy<'static>) -> bool {
        let owner = self.owner().await;
        if let (Some(owner), Some((known, markup))) = (&owner, &*lock(&self.markup))
            && owner == known
        {
            return *markup;
        }
        // Asking may start a D-Bus activated server; its name is known only after.
        let markup = match p.get_capabilities().await {
            Ok(caps) => caps.iter().any(|c| c == "body-markup"),
            Err(e) => {
                tracing::debug!("notification server capabilities: {e}");
                return false;
            }
        };
        let owner = match owner {
            Some(owner) => Some(owner),
            None => self.owner().await,
        };
        if let Some(owner) = owner {
            *lock(&self.markup) = Some((owner, markup));
        }
        markup
    }
}
