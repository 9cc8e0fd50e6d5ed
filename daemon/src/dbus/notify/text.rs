//! What the notifier sends as a notification's summary and body: remote strings (a
//! caller's display name, a message's text, a file name) made fit for the server.
//!
//! Servers that advertise `body-markup` parse the body as a subset of XML/Pango markup, so
//! a caller named `<i>Evil</i>` would show in italics and a text with a bare `<` would
//! break the parser; for them every remote string is escaped. Others show the body as
//! plain text and get it as is. The summary is never markup (Desktop Notifications spec),
//! so it is only kept to one line without control characters.

/// `s` escaped for a `body-markup` server: the five XML entities, in the spellings every
/// server's parser knows (GLib's markup parser, GNOME Shell's filter, Qt's XML reader);
/// numeric references like `&#39;` are not on GNOME Shell's list.
pub fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A notification body from remote text: control characters other than line breaks and
/// tabs dropped (markup parsers reject most of them), then escaped when the server takes
/// markup.
pub fn body(s: &str, markup: bool) -> String {
    let plain: String = s
        .chars()
        .filter(|&c| !c.is_control() || c == '\n' || c == '\t')
        .collect();
    if markup { escape_markup(&plain) } else { plain }
}

/// A notification summary: one line, no control characters (line breaks and tabs become
/// spaces). Never escaped: the spec says servers show the summary as plain text.
pub fn summary(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_name_is_escaped_to_text() {
        assert_eq!(
            escape_markup(r#"<i>Evil</i> <span size="xx-large">Corp</span>"#),
            "&lt;i&gt;Evil&lt;/i&gt; &lt;span size=&quot;xx-large&quot;&gt;Corp&lt;/span&gt;"
        );
    }

    #[test]
    fn a_bare_less_than_and_ampersands_are_escaped() {
        assert_eq!(escape_markup("1 < 2"), "1 &lt; 2");
        assert_eq!(escape_markup("a & b"), "a &amp; b");
        // An entity already in the text is text too: shown as typed, not decoded.
        assert_eq!(escape_markup("&lt;"), "&amp;lt;");
        assert_eq!(escape_markup("it's"), "it&apos;s");
        assert_eq!(escape_markup("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn the_body_is_escaped_only_for_a_markup_server() {
        let evil = "<b>hi</b> & 1 < 2";
        assert_eq!(body(evil, false), evil);
        assert_eq!(body(evil, true), "&lt;b&gt;hi&lt;/b&gt; &amp; 1 &lt; 2");
    }

    #[test]
    fn the_body_keeps_line_breaks_and_drops_other_controls() {
        assert_eq!(body("a\nb\tc\u{0}d\u{7f}e\u{9b}f", false), "a\nb\tcdef");
    }

    #[test]
    fn the_summary_is_one_line_of_plain_text() {
        assert_eq!(summary("<i>x</i>\nnext\u{1b}"), "<i>x</i> next");
    }
}
