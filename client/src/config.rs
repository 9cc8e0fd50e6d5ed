//! What the relay's and the daemon's config loaders share: their error, reading the file,
//! and pointing at the line of a TOML file that does not parse.

use std::ops::Range;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a config does not load; every message names the file or the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl ConfigError {
    /// The parser's `message` about `text` (read from `path`), with the [`line_hint`] of
    /// `span`.
    pub fn parse(path: &Path, text: &str, message: &str, span: Option<Range<usize>>) -> Self {
        ConfigError::Parse {
            path: path.to_owned(),
            message: format!("{message}{}", line_hint(text, span)),
        }
    }
}

/// The text of the config file at `path`.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// ` (line N: CONTENT)` for the line holding `span` of `text` (the content trimmed and
/// cut at 80 characters), or "" without a span. Appended to the parser's message.
///
/// ```
/// let text = "relay = \"r:1\"\ncolour = 1\n";
/// let at = text.find("colour").unwrap();
/// assert_eq!(
///     phoned_client::config::line_hint(text, Some(at..at + 6)),
///     " (line 2: colour = 1)"
/// );
/// assert_eq!(phoned_client::config::line_hint(text, None), "");
/// ```
pub fn line_hint(text: &str, span: Option<Range<usize>>) -> String {
    match span {
        Some(s) => {
            let at = s.start.min(text.len());
            let line = text[..at].matches('\n').count() + 1;
            let content: String = text
                .lines()
                .nth(line - 1)
                .unwrap_or_default()
                .trim()
                .chars()
                .take(80)
                .collect();
            format!(" (line {line}: {content})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_past_the_end_names_the_last_line() {
        assert_eq!(line_hint("a = 1\nb =", Some(100..101)), " (line 2: b =)");
    }

    #[test]
    fn long_lines_are_cut_at_80_characters() {
        let text = format!("x = \"{}\"", "é".repeat(200));
        let hint = line_hint(&text, Some(0..1));
        assert_eq!(hint.chars().count(), " (line 1: )".chars().count() + 80);
    }
}
