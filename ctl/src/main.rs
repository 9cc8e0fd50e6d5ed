//! `phonectl`: drive the phoned daemon over D-Bus.

mod calls;
mod cli;
mod commands;
mod conference;
mod contacts;
mod manpages;
mod messaging;
mod quality;
mod transfer;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use phoned_proto::dbus::PhoneError;

/// Why a command failed, and so its exit status.
pub enum Failure {
    /// The daemon answered with one of its typed errors (exit 1).
    Phone { kind: String, message: String },
    /// The daemon answered with an error, or its answer could not be used (exit 1).
    Daemon(String),
    /// The daemon is not running or the bus is unreachable (exit 3).
    NotRunning(String),
    /// Bad input found before asking the daemon (exit 2).
    Usage(String),
}

const NOT_RUNNING: [&str; 3] = [
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
];

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Failure {
        match &e {
            zbus::Error::MethodError(name, _, _) if NOT_RUNNING.contains(&name.as_str()) => {
                Failure::NotRunning(
                    "phoned is not running on this bus (start it, or try --system/--session)"
                        .into(),
                )
            }
            zbus::Error::InputOutput(_)
            | zbus::Error::Address(_)
            | zbus::Error::Handshake(_)
            | zbus::Error::Connection(..) => {
                Failure::NotRunning(format!("cannot reach the D-Bus bus: {e}"))
            }
            zbus::Error::FDO(fdo) => match &**fdo {
                zbus::fdo::Error::ServiceUnknown(_)
                | zbus::fdo::Error::NameHasNoOwner(_)
                | zbus::fdo::Error::NoReply(_) => Failure::NotRunning(
                    "phoned is not running on this bus (start it, or try --system/--session)"
                        .into(),
                ),
                other => Failure::Daemon(other.to_string()),
            },
            _ => Failure::Daemon(e.to_string()),
        }
    }
}

impl From<zbus::fdo::Error> for Failure {
    fn from(e: zbus::fdo::Error) -> Failure {
        Failure::from(zbus::Error::FDO(Box::new(e)))
    }
}

impl From<PhoneError> for Failure {
    fn from(e: PhoneError) -> Failure {
        match e {
            PhoneError::ZBus(z) => Failure::from(z),
            other => Failure::Phone {
                kind: other.kind(),
                message: other.message(),
            },
        }
    }
}

impl Failure {
    /// The exit status, a name for the kind of failure, and the message.
    fn parts(self) -> (u8, String, String) {
        match self {
            Failure::Phone { kind, message } => (1, kind, message),
            Failure::Daemon(m) => (1, "Failed".into(), m),
            Failure::Usage(m) => (2, "Usage".into(), m),
            Failure::NotRunning(m) => (3, "NotRunning".into(), m),
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.global.json;
    match smol::block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let typed = matches!(f, Failure::Phone { .. });
            let (code, kind, message) = f.parts();
            if json {
                // Scripts read one JSON object on stderr, as they read answers on stdout.
                let error = serde_json::json!({ "error": kind, "message": message, "exit": code });
                eprintln!("{error}");
            } else if typed {
                eprintln!("phonectl: {message} ({kind})");
            } else {
                eprintln!("phonectl: {message}");
            }
            ExitCode::from(code)
        }
    }
}
