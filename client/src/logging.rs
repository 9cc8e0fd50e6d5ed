//! Log output for the services: `tracing` to stderr, in the shape that reads best where
//! stderr goes.
//!
//! - Under systemd, stderr is the journal (`$JOURNAL_STREAM` names it). The journal stamps
//!   each line with the time and the unit already, so a line carries neither a timestamp
//!   nor colour, and starts with the syslog priority (`<3>` error, `<4>` warning, `<6>`
//!   info, `<7>` debug), which journald takes as the entry's priority (see sd-daemon(3)):
//!   `journalctl -p warning -u phone-relay` then shows warnings and errors only.
//! - Elsewhere: a timestamp and the level on each line, colour on a terminal.
//!
//! `RUST_LOG` picks what is logged (default `info`).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if stderr_is_journal() {
        builder
            .with_ansi(false)
            .event_format(Journal(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false),
            ))
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// The syslog priority journald reads from a `<N>` line prefix.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM` is
/// `DEVICE:INODE` of that stream, and must match stderr itself (a child whose stderr was
/// redirected elsewhere inherits the variable but not the journal).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    matches_stream(&expected.to_string_lossy(), meta.dev(), meta.ino())
}

/// Whether `DEVICE:INODE` (as in `$JOURNAL_STREAM`) names the file `dev`/`ino`.
pub fn matches_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// Prefixes each event with its `<priority>`, then formats it as `inner` does.
struct Journal(Format<tracing_subscriber::fmt::format::Full, ()>);

impl<S> FormatEvent<S, DefaultFields> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_syslog_levels() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn journal_stream_must_name_the_same_file() {
        assert!(matches_stream("27:5121", 27, 5121));
        assert!(matches_stream("27:5121\n", 27, 5121));
        for other in ["27:5122", "28:5121", "", "27", ":5121", "x:y", "27:5121:1"] {
            assert!(!matches_stream(other, 27, 5121), "{other:?}");
        }
    }
}
