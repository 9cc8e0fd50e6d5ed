//! `phonectl man`: the man pages, rendered from the clap definitions so that they name
//! every command and option the binary accepts.
//!
//! `phonectl(1)` lists the commands and points at one page per command (`phonectl-dial(1)`,
//! `phonectl-msg-send(1)`, …); `phonectl man --dir DIR` writes all of them, which is what
//! the package ships. Every page ends with the sections clap does not make: EXIT STATUS,
//! ENVIRONMENT, FILES and SEE ALSO.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;

use crate::cli::Cli;

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
The daemon refused or failed the request (an unknown number, a call in the wrong state, a
relay error, a file that cannot be read); the message says why. With \fB\-\-json\fR, stderr
holds one JSON object with \fBerror\fR, \fBmessage\fR and \fBexit\fR.
.TP
\fB2\fR
Usage error: an unknown command or option, or a bad argument.
.TP
\fB3\fR
The daemon is not running on the chosen bus (or the bus itself is not reachable).
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBDBUS_SESSION_BUS_ADDRESS\fR
The session bus the daemon is looked for on (the default, or \fB\-\-session\fR).
.TP
\fBDBUS_SYSTEM_BUS_ADDRESS\fR
The system bus, with \fB\-\-system\fR (default \fIunix:path=/run/dbus/system_bus_socket\fR).
"#;

const FILES: &str = r#".SH FILES
phonectl reads no configuration of its own. The files it names to the daemon (\fBfile
send\fR, \fBvoice send \-\-file\fR, \fBcontacts import\fR) are opened by phonectl with the
caller's rights and passed to the daemon as open files.
.TP
\fI/etc/phoned/phoned.toml\fR, \fI$XDG_CONFIG_HOME/phoned/phoned.toml\fR
The daemon's config (see \fBphoned\fR(8)); \fBphonectl reload\fR makes it re\-read.
"#;

/// One page: clap's sections, then ours.
fn render(cmd: &clap::Command, see_also: &str, w: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    w.write_all(EXIT_STATUS.as_bytes())?;
    w.write_all(ENVIRONMENT.as_bytes())?;
    w.write_all(FILES.as_bytes())?;
    writeln!(w, ".SH \"SEE ALSO\"\n{see_also}")?;
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// The built command tree, so that subcommands carry their full names (`phonectl-msg-send`).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

const SEE_ALSO_ROOT: &str = "\\fBphoned\\fR(8), \\fBphone\\-relay\\fR(8), \\fBbusctl\\fR(1)";

/// `phonectl(1)` to `w`.
pub fn print(w: &mut dyn Write) -> std::io::Result<()> {
    render(&command(), SEE_ALSO_ROOT, w)
}

/// Every page, `phonectl.1` and one per command and nested command, into `dir`; returns
/// how many were written.
pub fn write_all(dir: &Path) -> std::io::Result<usize> {
    fn walk(cmd: &clap::Command, dir: &Path, root: bool) -> std::io::Result<usize> {
        let mut written = 0;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            written += walk(sub, dir, false)?;
        }
        let see_also = if root {
            SEE_ALSO_ROOT.to_owned()
        } else {
            format!("\\fBphonectl\\fR(1), {SEE_ALSO_ROOT}")
        };
        let path = dir.join(Man::new(cmd.clone()).get_filename());
        // Never leave a half-written page behind.
        let tmp = path.with_extension("1.tmp");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        render(cmd, &see_also, &mut file)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(written + 1)
    }
    std::fs::create_dir_all(dir)?;
    walk(&command(), dir, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page `phonectl(1)` or a command's page refers to is written, and each has
    /// the sections a man page needs.
    #[test]
    fn every_referenced_page_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_all(dir.path()).unwrap();
        assert!(n > 30, "only {n} pages");
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let page = std::fs::read_to_string(&path).unwrap().replace("\\-", "-");
            for section in [
                ".SH NAME",
                ".SH SYNOPSIS",
                ".SH \"EXIT STATUS\"",
                ".SH ENVIRONMENT",
                ".SH FILES",
                ".SH \"SEE ALSO\"",
            ] {
                assert!(page.contains(section), "{} lacks {section}", path.display());
            }
            for word in page.split_whitespace() {
                if let Some(name) = word
                    .strip_prefix("phonectl-")
                    .and_then(|w| w.strip_suffix("(1)"))
                {
                    let referenced = dir.path().join(format!("phonectl-{name}.1"));
                    assert!(
                        referenced.exists(),
                        "{} refers to {word}, not written",
                        path.display()
                    );
                }
            }
        }
        let dial = std::fs::read_to_string(dir.path().join("phonectl-dial.1")).unwrap();
        assert!(dial.contains("wait"), "phonectl-dial(1) documents --wait");
    }

    /// Every argument of every command says what it is (the man pages and --help show it).
    #[test]
    fn every_argument_is_documented() {
        fn walk(cmd: &clap::Command, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!(
                        "{} {}",
                        cmd.get_display_name().unwrap_or(cmd.get_name()),
                        arg.get_id()
                    ));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }
}
