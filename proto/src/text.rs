//! The one sanitiser for short text other people chose and this device shows: display
//! names and file names. It knows the characters that change how text around them
//! looks without being seen themselves (control characters, bidirectional overrides
//! and isolates, byte-order marks) and terminal escape sequences. Local names that
//! contain them are refused ([`crate::ident::check_display_name`]); names that arrive
//! from the relay are cleaned with [`clean_name`] and [`clean_file_name`].

/// Whether `c` is a character a name must not hold: a control character (C0, DEL,
/// C1), a bidirectional formatting character (LRM, RLM, ALM, the embeddings and
/// overrides U+202A–U+202E, the isolates U+2066–U+2069), a byte-order mark (U+FEFF), a
/// line or paragraph separator, a deprecated format control (U+206A–U+206F) or an
/// interlinear annotation mark (U+FFF9–U+FFFB).
///
/// U+202E (RIGHT-TO-LEFT OVERRIDE) makes `invoice\u{202E}fdp.exe` read as
/// `invoiceexe.pdf`; the others hide or reorder text in the same way. Joiners
/// (U+200C, U+200D) stay allowed: scripts and emoji need them.
///
/// ```
/// use phoned_proto::text::is_hidden;
/// assert!(is_hidden('\u{202E}'));
/// assert!(is_hidden('\u{FEFF}'));
/// assert!(is_hidden('\u{1b}'));
/// assert!(!is_hidden('é'));
/// assert!(!is_hidden('\u{200D}'));
/// ```
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{206A}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `s` without terminal escape sequences: CSI (`ESC [` or U+009B, parameters,
/// intermediates, one final byte), OSC and the other string sequences (`ESC ]`, `ESC P`,
/// `ESC X`, `ESC ^`, `ESC _`, up to BEL or `ESC \`), and two-character `ESC x` ones. A
/// sequence cut short at the end of `s` is dropped whole.
///
/// ```
/// use phoned_proto::text::strip_escapes;
/// assert_eq!(strip_escapes("\u{1b}[31mred\u{1b}[0m"), "red");
/// assert_eq!(strip_escapes("\u{1b}]0;title\u{7}x"), "x");
/// ```
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let csi = match c {
            '\u{9B}' => true,
            '\u{1b}' => match chars.next() {
                Some('[') => true,
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    // A string sequence: ends at BEL or ST (ESC \).
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                    continue;
                }
                // `ESC x`: one more character (or none, at the end).
                _ => continue,
            },
            other => {
                out.push(other);
                continue;
            }
        };
        if csi {
            // Parameters and intermediates (0x20–0x3F), then one final byte (0x40–0x7E).
            while chars
                .next_if(|c| ('\u{20}'..='\u{3F}').contains(c))
                .is_some()
            {}
            chars.next_if(|c| ('\u{40}'..='\u{7E}').contains(c));
        }
    }
    out
}

/// `s` without what is left of SGR and erase sequences whose ESC was removed on the
/// way (by an older sender, or by a filter that drops control characters only): `[31m`,
/// `[0;1m`, `[2J`, `[K`-like text with at least one digit. Repeated until nothing is
/// left, as removing one can join the text around it into another (`[3[1mm`).
fn strip_residue(s: &str) -> String {
    let mut s = s.to_owned();
    loop {
        let next = strip_residue_once(&s);
        if next == s {
            return s;
        }
        s = next;
    }
}

fn strip_residue_once(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let params = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        let digit = after[..params].bytes().any(|b| b.is_ascii_digit());
        let fin = after[params..].chars().next();
        if digit && matches!(fin, Some('m' | 'K' | 'J' | 'H')) {
            rest = &after[params + 1..];
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A display name from the relay (a caller's, a contact online, a sender's), fit to
/// show: escape sequences and [hidden](is_hidden) characters removed, spaces trimmed.
///
/// ```
/// use phoned_proto::text::clean_name;
/// assert_eq!(clean_name("\u{FEFF}Alice\u{202E}ecilA"), "AliceecilA");
/// assert_eq!(clean_name("Bob\u{1b}[31m"), "Bob");
/// ```
pub fn clean_name(s: &str) -> String {
    strip_escapes(s)
        .chars()
        .filter(|&c| !is_hidden(c))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A file name from a sender, fit to show and to save: as [`clean_name`], and what is
/// left of escape sequences whose ESC was already gone (`[31m`) removed too. Path
/// separators are the caller's business (the daemon keeps the last component).
///
/// ```
/// use phoned_proto::text::clean_file_name;
/// assert_eq!(clean_file_name("[31mreport[0m.pdf"), "report.pdf");
/// assert_eq!(clean_file_name("photo\u{202E}gpj.exe"), "photogpj.exe");
/// ```
pub fn clean_file_name(s: &str) -> String {
    strip_residue(&clean_name(s)).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_bidi_control_and_bom_is_hidden() {
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}', '\u{FEFF}'])
        {
            assert!(is_hidden(c), "U+{:04X}", c as u32);
            assert_eq!(clean_name(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn escape_sequences_go_whole() {
        assert_eq!(strip_escapes("a\u{1b}[1;31;40mb"), "ab");
        assert_eq!(strip_escapes("a\u{9B}2Jb"), "ab");
        assert_eq!(strip_escapes("a\u{1b}]8;;http://x\u{1b}\\b"), "ab");
        assert_eq!(strip_escapes("a\u{1b}cb"), "ab");
        assert_eq!(strip_escapes("a\u{1b}"), "a");
        assert_eq!(strip_escapes("a\u{1b}[12"), "a");
        assert_eq!(strip_escapes("[plain] text"), "[plain] text");
    }

    #[test]
    fn residue_of_escapes_goes_from_file_names_only() {
        assert_eq!(clean_file_name("[31mred[0m.txt"), "red.txt");
        assert_eq!(clean_file_name("a[0;1mb[2Jc[K"), "abc[K");
        assert_eq!(clean_file_name("notes [draft].txt"), "notes [draft].txt");
        assert_eq!(clean_file_name("[1] intro.md"), "[1] intro.md");
        assert_eq!(clean_file_name("x[12"), "x[12");
        assert_eq!(clean_file_name("[3[1mm.txt"), ".txt");
        assert_eq!(clean_name("[31mname"), "[31mname");
    }

    #[test]
    fn ordinary_names_are_kept() {
        for name in [
            "Alice",
            "Zoë Müller",
            "山田 太郎",
            "👩\u{200D}💻 dev",
            "أحمد",
        ] {
            assert_eq!(clean_name(name), name);
            assert_eq!(clean_file_name(name), name);
        }
    }

    proptest! {
        #[test]
        fn cleaned_text_has_nothing_hidden_and_cleans_to_itself(s in "\\PC{0,40}|.{0,40}") {
            for cleaned in [clean_name(&s), clean_file_name(&s)] {
                prop_assert!(!cleaned.chars().any(is_hidden), "{cleaned:?}");
                prop_assert!(!cleaned.contains('\u{1b}'), "{:?}", cleaned);
            }
            let once = clean_file_name(&s);
            prop_assert_eq!(clean_file_name(&once), once.clone());
        }
    }
}
