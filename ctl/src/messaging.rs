//! Store-and-forward commands: `msg` (send, history), `file` (send, ls) and `voice` (send, ls, play).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use phoned_proto::dbus::{ContactsProxy, FilesProxy, MessagesProxy, VoiceMessagesProxy};
use serde_json::json;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::Failure;
use crate::cli::{FileAction, MsgAction, VoiceAction};
use crate::commands::{date, print};
use crate::transfer::Follow;
use phoned_proto::FileKind;
use phoned_proto::transfer::{Direction, FileStatus};

pub async fn voice(conn: &Connection, json: bool, action: VoiceAction) -> Result<(), Failure> {
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

pub async fn file(conn: &Connection, json: bool, action: FileAction) -> Result<(), Failure> {
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

pub async fn msg(conn: &Connection, json: bool, action: MsgAction) -> Result<(), Failure> {
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

/// How a history line shows which way a message or file went.
fn direction_arrow(direction: &str) -> &'static str {
    if direction == Direction::Out.as_str() {
        "→"
    } else {
        "←"
    }
}
