//! Each `phonectl` command: a few D-Bus calls and the output, human or `--json`.

use std::io::{Read, Write};

use clap::CommandFactory;
use phoned_proto::dbus::{AccountProxy, ManagerProxy, PresenceProxy};
use serde_json::json;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;
use crate::calls::{self, Pick};
use crate::cli::{
    AudioAction, Cli, Command, NameAction, NumberAction, OnOff, PasswordAction, RelayAction, Shell,
};
use crate::{contacts, messaging};
use phoned_proto::call::EndReason;
use phoned_proto::dbus::CallProxy;
use phoned_proto::state::ConnectionState;

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
        Command::Contacts { action } => contacts::run(&conn, g.json, action).await,
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
        Command::Msg { action } => messaging::msg(&conn, g.json, action).await,
        Command::File { action } => messaging::file(&conn, g.json, action).await,
        Command::Voice { action } => messaging::voice(&conn, g.json, action).await,
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
