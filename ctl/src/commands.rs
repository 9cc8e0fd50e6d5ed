//! Each `phonectl` command: a few D-Bus calls and the output, human or `--json`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use clap::CommandFactory;
use phoned_proto::dbus::{
    AccountProxy, ContactsProxy, FilesProxy, ManagerProxy, MessagesProxy, PresenceProxy,
    VoiceMessagesProxy,
};
use serde_json::json;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;
use crate::calls::{self, Pick};
use crate::cli::{
    AudioAction, Cli, Command, ContactsAction, FileAction, MsgAction, NameAction, NumberAction,
    OnOff, PasswordAction, RelayAction, Shell, VoiceAction,
};
use crate::transfer::Follow;
use phoned_proto::FileKind;
use phoned_proto::call::EndReason;
use phoned_proto::dbus::CallProxy;
use phoned_proto::state::ConnectionState;
use phoned_proto::transfer::{Direction, FileStatus};

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let g = cli.global;
    match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Man { dir } => return man(dir.as_deref()),
        _ => {}
    }
    let conn = if g.system {
        Connection::system().await
    } else {
        Connection::session().await
    }
    .map_err(Failure::from)?;
    match cli.command {
        Command::Status => status(&conn, g.json).await,
        Command::Account => account(&conn, g.json).await,
        Command::Who => who(&conn, g.json).await,
        Command::Number {
            action: NumberAction::Change { number },
        } => {
            let new = account_proxy(&conn).await?.change_number(&number).await?;
            print(
                g.json,
                json!({ "number": new }),
                &format!("number is now {new}"),
            )
        }
        Command::Name {
            action: NameAction::Set { name },
        } => {
            account_proxy(&conn).await?.set_display_name(&name).await?;
            print(
                g.json,
                json!({ "display_name": name }),
                &format!("name is now {name}"),
            )
        }
        Command::Password {
            action: PasswordAction::Set,
        } => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Usage(format!("reading the password from stdin: {e}")))?;
            let password = text.lines().next().unwrap_or_default();
            if password.is_empty() {
                return Err(Failure::Usage("give the new password on stdin".into()));
            }
            account_proxy(&conn).await?.set_password(password).await?;
            print(g.json, json!({ "ok": true }), "password set")
        }
        Command::Contacts { action } => contacts(&conn, g.json, action).await,
        Command::Dnd { state } => {
            let m = manager(&conn).await?;
            let on = match state {
                Some(state) => {
                    let on = state == OnOff::On;
                    m.set_do_not_disturb(on).await?;
                    on
                }
                None => m.do_not_disturb().await?,
            };
            print(
                g.json,
                json!({ "do_not_disturb": on }),
                if on {
                    "do not disturb is on"
                } else {
                    "do not disturb is off"
                },
            )
        }
        Command::Autoanswer { mode } => {
            let m = manager(&conn).await?;
            let mode = match mode {
                Some(mode) => {
                    m.set_auto_answer(mode.as_str()).await?;
                    mode.as_str().to_owned()
                }
                None => m.auto_answer().await?,
            };
            print(
                g.json,
                json!({ "auto_answer": mode }),
                &format!("auto-answer: {mode}"),
            )
        }
        Command::Relay {
            action: RelayAction::Trust,
        } => {
            let (fingerprint, source) = account_proxy(&conn).await?.relay_trust().await?;
            let human = match source.as_str() {
                "config" => format!("{fingerprint} (relay_fingerprint in the config)"),
                "learnt" => format!("{fingerprint} (learnt on the first connection)"),
                _ => "none yet: the next connection trusts the certificate the relay presents"
                    .to_owned(),
            };
            print(
                g.json,
                json!({ "fingerprint": fingerprint, "source": source }),
                &human,
            )
        }
        Command::Relay {
            action: RelayAction::Forget,
        } => {
            account_proxy(&conn).await?.forget_relay().await?;
            print(
                g.json,
                json!({ "ok": true }),
                "forgot the relay's fingerprint: the next connection trusts the certificate the relay presents",
            )
        }
        Command::Reload => reload(&conn, g.json).await,
        Command::Watch => crate::watch::run(&conn).await,
        Command::Audio {
            action: AudioAction::Devices,
        } => audio_devices(&conn, g.json).await,
        Command::Msg { action } => msg(&conn, g.json, action).await,
        Command::File { action } => file(&conn, g.json, action).await,
        Command::Voice { action } => voice(&conn, g.json, action).await,
        Command::Dial { target, wait } => calls::dial(&conn, g.json, &target, wait).await,
        Command::Conference { action } => crate::conference::run(&conn, g.json, action).await,
        Command::Calls { stats } => calls::list(&conn, g.json, stats).await,
        Command::History { limit } => calls::history(&conn, g.json, limit).await,
        Command::Answer { call } => {
            act(&conn, g.json, call, Pick::Ringing, "answered", |c| {
                Box::pin(async move { c.answer().await })
            })
            .await
        }
        Command::Reject { call, busy } => {
            let reason = if busy {
                EndReason::Busy
            } else {
                EndReason::Rejected
            }
            .as_str();
            let c = calls::resolve(&conn, call.as_deref(), Pick::Ringing).await?;
            c.reject(reason).await?;
            print(
                g.json,
                json!({ "path": c.inner().path().as_str() }),
                "rejected",
            )
        }
        Command::Hangup { call } => {
            act(&conn, g.json, call, Pick::Any, "hung up", |c| {
                Box::pin(async move { c.hangup().await })
            })
            .await
        }
        Command::Hold { call } => {
            act(&conn, g.json, call, Pick::Active, "on hold", |c| {
                Box::pin(async move { c.hold().await })
            })
            .await
        }
        Command::Resume { call } => {
            act(&conn, g.json, call, Pick::Held, "resumed", |c| {
                Box::pin(async move { c.resume().await })
            })
            .await
        }
        Command::Mute { call } => {
            let c = calls::resolve(&conn, call.as_deref(), Pick::Active).await?;
            c.set_muted(true).await?;
            print(
                g.json,
                json!({ "path": c.inner().path().as_str(), "muted": true }),
                "muted",
            )
        }
        Command::Unmute { call } => {
            let c = calls::resolve(&conn, call.as_deref(), Pick::Active).await?;
            c.set_muted(false).await?;
            print(
                g.json,
                json!({ "path": c.inner().path().as_str(), "muted": false }),
                "unmuted",
            )
        }
        Command::Dtmf { digits, call } => {
            let c = calls::resolve(&conn, call.as_deref(), Pick::Active).await?;
            c.send_dtmf(&digits).await?;
            print(
                g.json,
                json!({ "path": c.inner().path().as_str(), "digits": digits }),
                &format!("sent {digits}"),
            )
        }
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
    }
}

async fn voice(conn: &Connection, json: bool, action: VoiceAction) -> Result<(), Failure> {
    let v = VoiceMessagesProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    match action {
        VoiceAction::Send {
            to,
            file,
            seconds,
            wait,
        } => {
            // Listening before handing it over: a refusal may come before the id does.
            let follow = Follow::subscribe(conn).await?;
            let id = match (file, seconds) {
                (Some(path), _) => {
                    // Opened here, with this user's rights, as `file send` does.
                    let file = open_to_send(&path)?;
                    v.send_file_fd(&to, zbus::wire::Fd::from(&file)).await?
                }
                (None, Some(s)) => v.record(&to, s).await?,
                (None, None) => return Err(Failure::Usage("give --file or --seconds".into())),
            };
            follow.finish(conn, &id, "voice message", wait, json).await
        }
        VoiceAction::Ls => {
            let rows = v.list().await?;
            let names = contact_names(conn).await?;
            let sender = |peer: &str| match names.get(peer) {
                Some(name) => format!("{name} ({peer})"),
                None => peer.to_owned(),
            };
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(id, peer, direction, path, ms, status, at)| {
                        json!({ "id": id, "peer": peer, "name": names.get(peer),
                                "direction": direction, "path": path,
                                "duration_ms": ms, "status": status, "at": at })
                    })
                    .collect();
                return print(true, json!(rows), "");
            }
            let mut human = String::new();
            for (id, peer, direction, path, ms, status, at) in &rows {
                let (arrow, way) = if direction == Direction::Out.as_str() {
                    ("→", "to")
                } else {
                    ("←", "from")
                };
                human.push_str(&format!(
                    "{} {arrow} {way} {} {:.1} s [{status}] {id}{}\n",
                    date(*at),
                    sender(peer),
                    *ms as f64 / 1000.0,
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!(" {path}")
                    }
                ));
            }
            if rows.is_empty() {
                human.push_str("no voice messages");
            }
            print(false, json!(null), human.trim_end())
        }
        VoiceAction::Play { id } => {
            v.play(&id).await?;
            print(json, json!({ "played": id }), "played")
        }
    }
}

/// Opens a file to hand to the daemon, with this user's rights. Non-blocking, so a FIFO
/// does not hang the open (the daemon refuses anything but a regular file).
fn open_to_send(path: &std::path::Path) -> Result<std::fs::File, Failure> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

async fn file(conn: &Connection, json: bool, action: FileAction) -> Result<(), Failure> {
    let f = FilesProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    match action {
        FileAction::Send { to, path, wait } => {
            // Opened here, with this user's rights; the daemon gets the descriptor and
            // reads nothing else.
            let file = open_to_send(&path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let follow = Follow::subscribe(conn).await?;
            let id = f.send_fd(&to, zbus::wire::Fd::from(&file), &name).await?;
            follow.finish(conn, &id, &name, wait, json).await
        }
        FileAction::Ls { all, voice } => {
            let rows = f.list().await?;
            let reasons = f.reasons().await?;
            // Voice messages have their own listing (`voice ls`); here on request.
            let wanted = |kind: &str| {
                let is_voice = kind == FileKind::Voice.as_str();
                all || is_voice == voice
            };
            let rows: Vec<_> = rows.into_iter().filter(|r| wanted(&r.3)).collect();
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(id, peer, direction, kind, name, path, size, status, at)| {
                        json!({ "id": id, "peer": peer, "direction": direction, "kind": kind, "name": name,
                                "path": path, "size": size, "status": status,
                                "reason": reasons.get(id), "at": at })
                    })
                    .collect();
                return print(true, json!(rows), "");
            }
            let mut human = String::new();
            for (id, peer, direction, _, name, path, size, status, at) in &rows {
                let arrow = direction_arrow(direction);
                let status = match reasons.get(id) {
                    Some(reason) if status == FileStatus::Failed.as_str() => {
                        format!("{status}: {reason}")
                    }
                    _ => status.clone(),
                };
                human.push_str(&format!(
                    "{} {arrow} {peer:<12} {name} ({size} B) [{status}] {path}\n",
                    date(*at)
                ));
            }
            if rows.is_empty() {
                human.push_str(if voice {
                    "no voice messages"
                } else {
                    "no files"
                });
            }
            print(false, json!(null), human.trim_end())
        }
    }
}

/// Contacts' names by number, to show who a voice message is from.
async fn contact_names(conn: &Connection) -> Result<HashMap<String, String>, Failure> {
    let c = ContactsProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    Ok(c.list()
        .await?
        .into_iter()
        .map(|(_, name, number)| (number, name))
        .collect())
}

async fn msg(conn: &Connection, json: bool, action: MsgAction) -> Result<(), Failure> {
    let m = MessagesProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    match action {
        MsgAction::Send { to, text } => {
            let text = if text == ["-"] {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| Failure::Usage(format!("reading the message from stdin: {e}")))?;
                text.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                text.join(" ")
            };
            let id = m.send(&to, &text).await?;
            print(json, json!({ "id": id }), &format!("message {id} queued"))
        }
        MsgAction::History { peer, limit } => {
            let rows = m.history(peer.as_deref().unwrap_or(""), limit).await?;
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(id, peer, direction, text, status, at)| {
                        json!({ "id": id, "peer": peer, "direction": direction, "text": text, "status": status, "at": at })
                    })
                    .collect();
                return print(true, json!(rows), "");
            }
            let mut human = String::new();
            for (_, peer, direction, text, status, at) in &rows {
                let arrow = direction_arrow(direction);
                human.push_str(&format!(
                    "{} {arrow} {peer:<12} {text} [{status}]\n",
                    date(*at)
                ));
            }
            if rows.is_empty() {
                human.push_str("no messages");
            }
            print(false, json!(null), human.trim_end())
        }
    }
}

type CallOp = fn(
    CallProxy<'static>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), phoned_proto::dbus::PhoneError>> + Send>,
>;

/// Runs `op` on the named call, or the one `pick` finds, and says `done`.
async fn act(
    conn: &Connection,
    json: bool,
    which: Option<String>,
    pick: Pick,
    done: &str,
    op: CallOp,
) -> Result<(), Failure> {
    let c = calls::resolve(conn, which.as_deref(), pick).await?;
    let path = c.inner().path().to_string();
    op(c).await?;
    print(json, json!({ "path": path }), done)
}

/// How a history line shows which way a message or file went.
fn direction_arrow(direction: &str) -> &'static str {
    if direction == Direction::Out.as_str() {
        "→"
    } else {
        "←"
    }
}

pub fn print(json: bool, value: serde_json::Value, human: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let r = if json {
        writeln!(out, "{value}")
    } else {
        writeln!(out, "{human}")
    };
    r.map_err(|e| Failure::Daemon(format!("writing output: {e}")))
}

async fn account_proxy(conn: &Connection) -> Result<AccountProxy<'static>, Failure> {
    Ok(AccountProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?)
}

async fn reload(conn: &Connection, json: bool) -> Result<(), Failure> {
    let changes: std::collections::BTreeMap<String, String> =
        manager(conn).await?.reload().await?.into_iter().collect();
    let human = if changes.is_empty() {
        "config reloaded: nothing changed".to_owned()
    } else {
        let list: Vec<String> = changes
            .iter()
            .map(|(key, when)| format!("{key} ({when})"))
            .collect();
        format!("config reloaded: {}", list.join(", "))
    };
    print(json, json!({ "changes": changes }), &human)
}

async fn audio_devices(conn: &Connection, json: bool) -> Result<(), Failure> {
    let (backend, devices) = match manager(conn).await?.audio_devices().await {
        Ok(found) => found,
        Err(phoned_proto::dbus::PhoneError::ZBus(zbus::Error::MethodError(name, _, _)))
            if name.as_str() == "org.freedesktop.DBus.Error.UnknownMethod" =>
        {
            return Err(Failure::Daemon(
                "this phoned cannot list audio devices (older than phonectl?)".into(),
            ));
        }
        Err(phoned_proto::dbus::PhoneError::ZBus(e)) => return Err(e.into()),
        Err(e) => {
            return Err(Failure::Daemon(format!(
                "cannot list audio devices: {}",
                e.message()
            )));
        }
    };
    let value = json!(
        devices
            .iter()
            .map(|(direction, name, description, default)| json!({
                "backend": backend,
                "direction": direction,
                "name": name,
                "description": description,
                "default": default,
            }))
            .collect::<Vec<_>>()
    );
    let mut table = format!("backend: {backend}\n");
    if devices.is_empty() {
        table.push_str("no devices");
    } else {
        let width = devices
            .iter()
            .map(|d| d.1.chars().count())
            .max()
            .unwrap_or(0);
        table.push_str(&format!("   {:<6}  {:<width$}  DESCRIPTION", "DIR", "NAME"));
        for (direction, name, description, default) in &devices {
            let mark = if *default { '*' } else { ' ' };
            table.push_str(&format!(
                "\n{mark}  {direction:<6}  {name:<width$}  {description}"
            ));
        }
        table.push_str("\n(* the default)");
    }
    print(json, value, table.trim_end())
}

async fn status(conn: &Connection, json: bool) -> Result<(), Failure> {
    let a = account_proxy(conn).await?;
    let state = a.connection_state().await?;
    let number = a.number().await?;
    let name = a.display_name().await?;
    let relay = a.relay().await?;
    let error = a.last_error().await?;
    let m = manager(conn).await?;
    let audio = m.audio_error().await?;
    let (dnd, auto_answer) = (m.do_not_disturb().await?, m.auto_answer().await?);
    let mut human = match state.parse() {
        Ok(ConnectionState::Online) => format!("online as {number} ({name}) via {relay}"),
        _ if error.is_empty() => format!("{state} ({relay})"),
        _ => format!("{state} ({relay}): {error}"),
    };
    // Settings that change how calls are met are named when they are on.
    if dnd {
        human.push_str("; do not disturb");
    }
    if auto_answer != "off" {
        human.push_str(&format!("; auto-answer: {auto_answer}"));
    }
    if !audio.is_empty() {
        human.push_str(&format!("\naudio: {audio}"));
    }
    print(
        json,
        json!({ "connection_state": state, "number": number, "display_name": name, "relay": relay,
                "last_error": error, "audio_error": audio, "do_not_disturb": dnd,
                "auto_answer": auto_answer }),
        &human,
    )
}

async fn account(conn: &Connection, json: bool) -> Result<(), Failure> {
    let a = account_proxy(conn).await?;
    let (number, name, state, relay, created, devices) = (
        a.number().await?,
        a.display_name().await?,
        a.connection_state().await?,
        a.relay().await?,
        a.created_at().await?,
        a.devices_online().await?,
    );
    let human = format!(
        "number:      {number}\nname:        {name}\nconnection:  {state}\nrelay:       {relay}\ncreated:     {}\ndevices:     {devices} online",
        date(created)
    );
    print(
        json,
        json!({ "number": number, "display_name": name, "connection_state": state, "relay": relay,
                "created_at": created, "devices_online": devices }),
        &human,
    )
}

/// Unix ms as a UTC date, e.g. `2026-11-24 10:31 UTC` (or `-` for 0).
pub fn date(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

async fn who(conn: &Connection, json: bool) -> Result<(), Failure> {
    let p = PresenceProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let list = p.list_online().await?;
    if json {
        let rows: Vec<_> = list
            .iter()
            .map(|(n, name)| json!({ "number": n, "name": name }))
            .collect();
        return print(true, json!(rows), "");
    }
    let mut human = String::new();
    for (n, name) in &list {
        human.push_str(&format!("{n:<16} {name}\n"));
    }
    if list.is_empty() {
        human.push_str("nobody else is online");
    }
    print(false, json!(null), human.trim_end())
}

/// Whether a contact's number can be called on the relay: the daemon keeps phoned
/// numbers in their canonical form and external ones (`+44 …`, `0…`) as written.
fn dialable(number: &str) -> bool {
    number.parse::<phoned_proto::Number>().is_ok()
}

async fn contacts(conn: &Connection, json: bool, action: ContactsAction) -> Result<(), Failure> {
    let c = ContactsProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    match action {
        ContactsAction::Add { name, number } => {
            let id = c.add(&name, &number).await?;
            print(
                json,
                json!({ "id": id, "name": name, "number": number }),
                &format!("added {name} ({number}) as {id}"),
            )
        }
        ContactsAction::Rm { contact } => {
            let (id, name, _) = c.lookup(&contact).await?;
            c.remove(&id).await?;
            print(json, json!({ "id": id }), &format!("removed {name}"))
        }
        ContactsAction::Rename { contact, name } => {
            let (id, old, _) = c.lookup(&contact).await?;
            c.rename(&id, &name).await?;
            print(
                json,
                json!({ "id": id, "name": name }),
                &format!("renamed {old} to {name}"),
            )
        }
        ContactsAction::Ls => {
            let list = c.list().await?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|(id, name, number)| {
                        json!({ "id": id, "name": name, "number": number, "dialable": dialable(number) })
                    })
                    .collect();
                return print(true, json!(rows), "");
            }
            let mut human = String::new();
            for (id, name, number) in &list {
                let reach = if dialable(number) {
                    ""
                } else {
                    "  (not on this relay)"
                };
                human.push_str(&format!("{id:<6} {name:<32} {number}{reach}\n"));
            }
            if list.is_empty() {
                human.push_str("no contacts");
            }
            print(false, json!(null), human.trim_end())
        }
        ContactsAction::Import { file } => {
            let text = if file.as_os_str() == "-" {
                let mut t = String::new();
                std::io::stdin()
                    .read_to_string(&mut t)
                    .map_err(|e| Failure::Usage(format!("reading stdin: {e}")))?;
                t
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?
            };
            let (ids, skipped) = c.import_vcard_report(&text).await?;
            let mut human = format!("imported {} contacts", ids.len());
            if !skipped.is_empty() {
                human.push_str(&format!(", skipped {}:", skipped.len()));
                for why in &skipped {
                    human.push_str(&format!("\n  {why}"));
                }
            }
            print(json, json!({ "imported": ids, "skipped": skipped }), &human)
        }
        ContactsAction::Export { file } => {
            let text = c.export_vcard().await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .map_err(|e| Failure::Daemon(format!("{}: {e}", path.display())))?;
                    print(
                        json,
                        json!({ "file": path }),
                        &format!("exported to {}", path.display()),
                    )
                }
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .map_err(|e| Failure::Daemon(format!("writing output: {e}"))),
            }
        }
    }
}

fn completions(shell: Shell) -> Result<(), Failure> {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "phonectl", &mut std::io::stdout());
    Ok(())
}

fn man(dir: Option<&std::path::Path>) -> Result<(), Failure> {
    let written = match dir {
        Some(dir) => crate::manpages::write_all(dir).map(|n| {
            eprintln!("wrote {n} man pages to {}", dir.display());
        }),
        None => crate::manpages::print(&mut std::io::stdout().lock()),
    };
    written.map_err(|e| Failure::Daemon(format!("writing the man pages: {e}")))
}

async fn manager(conn: &Connection) -> Result<ManagerProxy<'static>, Failure> {
    Ok(ManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await?)
}

#[cfg(test)]
mod tests {
    use super::date;

    #[test]
    fn dates() {
        assert_eq!(date(0), "-");
        assert_eq!(date(1_000), "1970-01-01 00:00 UTC");
        assert_eq!(date(1_795_510_260_000), "2026-11-24 08:51 UTC");
        assert_eq!(date(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
