//! `phoned-ofono`: serves phoned's line as an oFono modem (`org.ofono`) until SIGTERM or
//! SIGINT, so that oFono dialers such as GNOME Calls use phoned. See docs/operations.md,
//! "Use GNOME Calls as phoned's dialer".

use std::process::ExitCode;

use clap::Parser;
use phoned_client::signals::Signals;
use phoned_ofono::bridge::Options;
use phoned_ofono::run::{self, Bus, Failure, Settings};
use phoned_ofono::state::Waiting;

/// Exit status when `org.ofono` is already owned (the systemd unit does not restart then).
const NAME_TAKEN: u8 = 3;

#[derive(Parser)]
#[command(
    name = "phoned-ofono",
    version,
    about = "phoned's line as an oFono modem, for oFono dialers such as GNOME Calls",
    after_help = "Exits with status 3 if org.ofono is already owned (a real oFono runs). SIGTERM or SIGINT stops it."
)]
struct Cli {
    /// Where phoned serves org.phoned.Phone1: session, system, or a D-Bus address.
    #[arg(long, value_name = "BUS", default_value = "session", value_parser = Bus::parse)]
    phone_bus: Bus,
    /// Where to serve org.ofono: system (where oFono clients look), session, or a D-Bus
    /// address.
    #[arg(long, value_name = "BUS", default_value = "system", value_parser = Bus::parse)]
    ofono_bus: Bus,
    /// Show a call that comes while another is in progress as `incoming` rather than
    /// oFono's `waiting`, for clients that do not know `waiting` (GNOME Calls).
    #[arg(long)]
    waiting_as_incoming: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    phoned_client::logging::init();
    let settings = Settings {
        phone_bus: cli.phone_bus,
        ofono_bus: cli.ofono_bus,
        options: Options {
            waiting: if cli.waiting_as_incoming {
                Waiting::Incoming
            } else {
                Waiting::Waiting
            },
            revision: env!("CARGO_PKG_VERSION").to_owned(),
        },
    };
    let result = smol::block_on(async {
        let signals = Signals::new().map_err(|e| (1, format!("cannot handle signals: {e}")))?;
        let stop = async {
            let signal = signals
                .until_stopped(async || "serving org.ofono for phoned".to_owned())
                .await;
            tracing::info!(?signal, "stopping");
            phoned_client::systemd::stopping();
        };
        run::run(settings, stop).await.map_err(|e| {
            let code = match e {
                Failure::NameTaken { .. } => NAME_TAKEN,
                _ => 1,
            };
            (code, e.to_string())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("phoned-ofono: {message}");
            ExitCode::from(code)
        }
    }
}
