//! `phonectl`: drive the phoned daemon over D-Bus.

mod calls;
mod cli;
mod commands;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use phoned_proto::dbus::PhoneError;

/// Why a command failed, and so its exit status.
pub enum Failure {
    /// The daemon answered with an error (exit 1).
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
            other => Failure::Daemon(format!("{} ({})", other.message(), other.kind())),
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match smol::block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let (code, msg) = match f {
                Failure::Daemon(m) => (1, m),
                Failure::Usage(m) => (2, m),
                Failure::NotRunning(m) => (3, m),
            };
            eprintln!("phonectl: {msg}");
            ExitCode::from(code)
        }
    }
}
