//! oFono's objects on the oFono bus, as oFono's `doc/*-api.txt` describe them: the
//! `org.ofono.Manager` at `/`, one `org.ofono.Modem` with `org.ofono.VoiceCallManager`, and
//! an `org.ofono.VoiceCall` per call. oFono has no D-Bus properties: each interface has
//! `GetProperties` and a `PropertyChanged(s, v)` signal.
//!
//! The model ([`Bridge`]) is behind one async lock; each step and the signals it yields
//! are sent under it, so clients hear everything in the model's order. Requests read the
//! model, release it, then ask phoned: what phoned does comes back as its signals.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_lock::Mutex;
use zbus::object_server::SignalEmitter;
use zbus::wire::{ObjectPath, OwnedObjectPath};
use zbus::{Connection, OwnedVariant, Variant, interface};

use crate::bridge::{Bridge, Event, Output, Props, Value};
use crate::error::OfonoError;
use crate::paths;
use crate::phone::Phone;
use crate::state::PhoneOp;

/// How long `Dial` waits for phoned's new call to show up before it replies anyway.
const DIAL_SHOWS_UP: Duration = Duration::from_secs(5);

/// What every interface shares.
pub struct Shared {
    pub model: Mutex<Bridge>,
    /// Notified after each step of the model.
    pub stepped: event_listener::Event,
    pub phone: Phone,
}

impl Shared {
    pub fn new(model: Bridge, phone: Phone) -> Arc<Shared> {
        Arc::new(Shared {
            model: Mutex::new(model),
            stepped: event_listener::Event::new(),
            phone,
        })
    }
}

fn variant(v: &Value) -> Variant<'static> {
    match v {
        Value::Str(s) => Variant::from(s.clone()),
        Value::Bool(b) => Variant::from(*b),
        Value::Strs(list) => Variant::from(list.clone()),
    }
}

/// A property dict as `a{sv}`.
pub fn dict(props: &Props) -> HashMap<String, OwnedVariant> {
    props
        .iter()
        .filter_map(|(k, v)| Some(((*k).to_owned(), OwnedVariant::try_from(variant(v)).ok()?)))
        .collect()
}

fn object_path(path: &str) -> zbus::Result<ObjectPath<'_>> {
    ObjectPath::try_from(path)
}

/// Applies `event` to the model and tells clients what changed, in order.
pub async fn apply(shared: &Arc<Shared>, conn: &Connection, event: Event) {
    let mut model = shared.model.lock().await;
    let outputs = model.step(event);
    for output in outputs {
        if let Err(e) = emit(shared, conn, output).await {
            tracing::warn!("cannot signal oFono clients: {e}");
        }
    }
    drop(model);
    shared.stepped.notify(usize::MAX);
}

async fn emit(shared: &Arc<Shared>, conn: &Connection, output: Output) -> zbus::Result<()> {
    let modem = SignalEmitter::new(conn, paths::MODEM)?;
    match output {
        Output::ModemChanged(name, value) => {
            ModemIface::property_changed(&modem, name, variant(&value)).await
        }
        Output::CallAdded { local, props } => {
            let path = paths::call(local);
            conn.object_server()
                .at(
                    path.as_str(),
                    VoiceCallIface {
                        shared: shared.clone(),
                        local,
                    },
                )
                .await?;
            VoiceCallManagerIface::call_added(&modem, object_path(&path)?, dict(&props)).await
        }
        Output::CallChanged { local, name, value } => {
            let path = paths::call(local);
            let call = SignalEmitter::new(conn, path.as_str())?;
            VoiceCallIface::property_changed(&call, name, variant(&value)).await
        }
        Output::DisconnectReason { local, reason } => {
            let path = paths::call(local);
            let call = SignalEmitter::new(conn, path.as_str())?;
            VoiceCallIface::disconnect_reason(&call, reason.as_str()).await
        }
        Output::CallRemoved { local } => {
            let path = paths::call(local);
            let sent = VoiceCallManagerIface::call_removed(&modem, object_path(&path)?).await;
            conn.object_server()
                .remove::<VoiceCallIface, _>(path.as_str())
                .await?;
            sent
        }
    }
}

/// Asks phoned for each operation in turn; marks the calls it ends as ended here first.
async fn perform(
    shared: &Arc<Shared>,
    conn: &Connection,
    ops: Vec<(u32, PhoneOp)>,
) -> Result<(), OfonoError> {
    for (local, op) in ops {
        if matches!(op, PhoneOp::Hangup | PhoneOp::Reject) {
            apply(shared, conn, Event::EndingHere(local)).await;
        }
        shared.phone.act(local, &op).await?;
    }
    Ok(())
}

/// `org.ofono.Manager` at `/`.
pub struct ManagerIface {
    pub shared: Arc<Shared>,
}

#[interface(name = "org.ofono.Manager")]
impl ManagerIface {
    /// The one modem, phoned's line, with its properties.
    async fn get_modems(&self) -> Vec<(OwnedObjectPath, HashMap<String, OwnedVariant>)> {
        let props = self.shared.model.lock().await.modem_props();
        let path = OwnedObjectPath::from(ObjectPath::from_static_str_unchecked(paths::MODEM));
        vec![(path, dict(&props))]
    }

    #[zbus(signal)]
    pub async fn modem_added(
        emitter: &SignalEmitter<'_>,
        path: ObjectPath<'_>,
        properties: HashMap<String, OwnedVariant>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn modem_removed(
        emitter: &SignalEmitter<'_>,
        path: ObjectPath<'_>,
    ) -> zbus::Result<()>;
}

/// `org.ofono.Modem` at [`paths::MODEM`].
pub struct ModemIface {
    pub shared: Arc<Shared>,
}

#[interface(name = "org.ofono.Modem")]
impl ModemIface {
    async fn get_properties(&self) -> HashMap<String, OwnedVariant> {
        dict(&self.shared.model.lock().await.modem_props())
    }

    /// `Powered` and `Online` can be set to true (they are); nothing else can be set.
    async fn set_property(&self, property: &str, value: OwnedVariant) -> Result<(), OfonoError> {
        match (property, &*value) {
            ("Powered" | "Online", Variant::Bool(true)) => Ok(()),
            ("Powered" | "Online", Variant::Bool(false)) => Err(OfonoError::NotImplemented(
                "phoned's line is not powered off or taken offline through oFono".into(),
            )),
            _ => Err(OfonoError::InvalidArguments(format!(
                "{property} cannot be set"
            ))),
        }
    }

    #[zbus(signal)]
    pub async fn property_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        value: Variant<'_>,
    ) -> zbus::Result<()>;
}

/// `org.ofono.VoiceCallManager` at [`paths::MODEM`].
pub struct VoiceCallManagerIface {
    pub shared: Arc<Shared>,
}

#[interface(name = "org.ofono.VoiceCallManager")]
impl VoiceCallManagerIface {
    async fn get_properties(&self) -> HashMap<String, OwnedVariant> {
        dict(&vec![("EmergencyNumbers", Value::Strs(Vec::new()))])
    }

    /// Calls `number` through phoned (a number, or a phoned contact's name); returns the
    /// new call's object once it is there. `hide_callerid` is `""`, `default`, `enabled`
    /// or `disabled`, as oFono takes it; phoned always shows its number.
    async fn dial(&self, number: &str, hide_callerid: &str) -> Result<OwnedObjectPath, OfonoError> {
        if !matches!(hide_callerid, "" | "default" | "enabled" | "disabled") {
            return Err(OfonoError::InvalidFormat(format!(
                "hide_callerid is \"\", default, enabled or disabled, not {hide_callerid:?}"
            )));
        }
        let local = self.shared.phone.dial(number).await?;
        // Reply with an object that is there (its CallAdded sent), as oFono does.
        let shows_up = async {
            loop {
                let listener = self.shared.stepped.listen();
                if self.shared.model.lock().await.seen(local) {
                    return;
                }
                listener.await;
            }
        };
        smol::future::or(shows_up, async {
            smol::Timer::after(DIAL_SHOWS_UP).await;
            tracing::warn!(local, "phoned's new call did not show up; replying anyway");
        })
        .await;
        let path = ObjectPath::try_from(paths::call(local))?;
        Ok(path.into())
    }

    async fn get_calls(&self) -> Vec<(OwnedObjectPath, HashMap<String, OwnedVariant>)> {
        let calls = self.shared.model.lock().await.calls();
        calls
            .into_iter()
            .filter_map(|(local, props)| {
                let path = ObjectPath::try_from(paths::call(local)).ok()?;
                Some((path.into(), dict(&props)))
            })
            .collect()
    }

    /// Ends every call.
    async fn hangup_all(&self, #[zbus(connection)] conn: &Connection) -> Result<(), OfonoError> {
        let locals: Vec<u32> = self
            .shared
            .model
            .lock()
            .await
            .calls()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        for local in locals {
            apply(&self.shared, conn, Event::EndingHere(local)).await;
        }
        Ok(self.shared.phone.hangup_all().await?)
    }

    /// DTMF to the active call: 0-9, `*`, `#`, A-D.
    async fn send_tones(
        &self,
        tones: &str,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), OfonoError> {
        let (local, pieces) = self.shared.model.lock().await.send_tones(tones)?;
        let ops = pieces
            .into_iter()
            .map(|p| (local, PhoneOp::SendDtmf(p)))
            .collect();
        perform(&self.shared, conn, ops).await
    }

    /// Answers the waiting call; phoned holds the active one as it does.
    async fn hold_and_answer(
        &self,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), OfonoError> {
        let ops = self.shared.model.lock().await.hold_and_answer()?;
        perform(&self.shared, conn, ops).await
    }

    /// Ends the active call and answers the waiting one.
    async fn release_and_answer(
        &self,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), OfonoError> {
        let ops = self.shared.model.lock().await.release_and_answer()?;
        perform(&self.shared, conn, ops).await
    }

    /// Resumes the held call (holding the active one), or holds the active call.
    async fn swap_calls(&self, #[zbus(connection)] conn: &Connection) -> Result<(), OfonoError> {
        let ops = self.shared.model.lock().await.swap_calls()?;
        perform(&self.shared, conn, ops).await
    }

    #[zbus(signal)]
    pub async fn call_added(
        emitter: &SignalEmitter<'_>,
        path: ObjectPath<'_>,
        properties: HashMap<String, OwnedVariant>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn call_removed(
        emitter: &SignalEmitter<'_>,
        path: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn property_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        value: Variant<'_>,
    ) -> zbus::Result<()>;
}

/// `org.ofono.VoiceCall` of phoned's call `local`, at [`paths::call`].
pub struct VoiceCallIface {
    shared: Arc<Shared>,
    local: u32,
}

#[interface(name = "org.ofono.VoiceCall")]
impl VoiceCallIface {
    async fn get_properties(&self) -> Result<HashMap<String, OwnedVariant>, OfonoError> {
        let props = self.shared.model.lock().await.call_props(self.local);
        props
            .map(|p| dict(&p))
            .ok_or_else(|| OfonoError::NotFound("the call is over".into()))
    }

    /// Answers an incoming or waiting call.
    async fn answer(&self, #[zbus(connection)] conn: &Connection) -> Result<(), OfonoError> {
        let op = self.shared.model.lock().await.answer(self.local)?;
        perform(&self.shared, conn, vec![(self.local, op)]).await
    }

    /// Ends the call; an incoming or waiting call is declined.
    async fn hangup(&self, #[zbus(connection)] conn: &Connection) -> Result<(), OfonoError> {
        let op = self.shared.model.lock().await.hangup(self.local)?;
        perform(&self.shared, conn, vec![(self.local, op)]).await
    }

    /// Not offered by phoned.
    async fn deflect(&self, number: &str) -> Result<(), OfonoError> {
        let _ = number;
        Err(OfonoError::NotImplemented(
            "phoned does not deflect calls".into(),
        ))
    }

    #[zbus(signal)]
    pub async fn property_changed(
        emitter: &SignalEmitter<'_>,
        name: &str,
        value: Variant<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn disconnect_reason(emitter: &SignalEmitter<'_>, reason: &str) -> zbus::Result<()>;
}
