//! vCard 3.0/4.0 import and vCard 4.0 export of contacts (RFC 6350 / RFC 2426).
//!
//! Parsed by hand: the `ical` crate (0.11) drops leading colons from values (`FN::)`
//! reads as `)`), and only a handful of properties matter here. Unfolding, groups,
//! quoted parameter values and escapes are handled; anything else is ignored.

use thiserror::Error;

use crate::store::contacts::{Contact, normalized};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VcardError {
    #[error("line {0}: {1}")]
    Syntax(usize, &'static str),
    #[error("card {index}: {why}")]
    Card { index: usize, why: String },
    #[error("no vCard found in the text")]
    Empty,
}

/// A content line: property name (upper case, group dropped) and raw value.
struct Line {
    no: usize,
    name: String,
    value: String,
}

/// Joins folded lines (a line starting with a space or tab continues the previous one).
fn unfold(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match raw.strip_prefix([' ', '\t']) {
            Some(rest) if !out.is_empty() => out.last_mut().expect("not empty").1.push_str(rest),
            _ => out.push((i + 1, raw.to_owned())),
        }
    }
    out.retain(|(_, l)| !l.trim().is_empty());
    out
}

fn content_line(no: usize, line: &str) -> Result<Line, VcardError> {
    // The value starts after the first colon outside double quotes.
    let mut quoted = false;
    let colon = line
        .char_indices()
        .find(|&(_, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            c == ':' && !quoted
        })
        .map(|(i, _)| i)
        .ok_or(VcardError::Syntax(no, "no ':' in a content line"))?;
    let head = &line[..colon];
    let name = head.split(';').next().unwrap_or_default();
    let name = name
        .rsplit('.')
        .next()
        .unwrap_or(name)
        .trim()
        .to_ascii_uppercase();
    if name.is_empty() {
        return Err(VcardError::Syntax(
            no,
            "a content line without a property name",
        ));
    }
    Ok(Line {
        no,
        name,
        value: line[colon + 1..].to_owned(),
    })
}

/// One card: (name, number as written), or why it has none.
pub type Card = Result<(String, String), VcardError>;

/// The (name, number) of every card, in order, or for a card without a name (FN, else N)
/// or a telephone number (the first TEL) or its `END:VCARD`, a [`VcardError::Card`]
/// saying so: one bad card does not spoil the others. The number is as written (a
/// `tel:` URI's prefix and parameters dropped) and judged by the caller. Text that is
/// no vCard at all is an error for the whole.
pub fn parse(text: &str) -> Result<Vec<Card>, VcardError> {
    let mut out = Vec::new();
    let mut card: Option<Vec<Line>> = None;
    for (no, raw) in unfold(text) {
        let line = content_line(no, &raw)?;
        match (line.name.as_str(), card.as_mut()) {
            ("BEGIN", None) if line.value.trim().eq_ignore_ascii_case("VCARD") => {
                card = Some(Vec::new())
            }
            ("BEGIN", Some(_)) => return Err(VcardError::Syntax(no, "BEGIN inside a card")),
            ("END", Some(_)) if line.value.trim().eq_ignore_ascii_case("VCARD") => {
                let lines = card.take().unwrap_or_default();
                out.push(card_entry(out.len() + 1, &lines));
            }
            (_, Some(lines)) => lines.push(line),
            (_, None) => {
                return Err(VcardError::Syntax(
                    line.no,
                    "text outside BEGIN:VCARD … END:VCARD",
                ));
            }
        }
    }
    if card.is_some() {
        out.push(Err(VcardError::Card {
            index: out.len() + 1,
            why: "no END:VCARD".into(),
        }));
    }
    if out.is_empty() {
        return Err(VcardError::Empty);
    }
    Ok(out)
}

fn card_entry(index: usize, lines: &[Line]) -> Card {
    let prop = |name: &str| {
        lines
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    };
    let name = prop("FN")
        .map(unescape)
        .filter(|v| !v.trim().is_empty())
        .or_else(|| prop("N").map(name_from_n))
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| VcardError::Card {
            index,
            why: "no name (FN or N)".into(),
        })?;
    let number = prop("TEL")
        .map(written_number)
        .ok_or_else(|| VcardError::Card {
            index,
            why: format!("{name:?} has no TEL"),
        })?;
    Ok((name.trim().to_owned(), number))
}

/// Contacts as vCard 4.0, lines folded at 75 octets, CRLF line ends.
pub fn export(contacts: &[Contact]) -> String {
    let mut out = String::new();
    for c in contacts {
        out.push_str("BEGIN:VCARD\r\nVERSION:4.0\r\n");
        push_folded(&mut out, &format!("FN:{}", escape(&c.name)));
        // A tel: URI has no spaces: the number without its separators.
        let number = normalized(&c.number).unwrap_or_else(|| c.number.clone());
        push_folded(&mut out, &format!("TEL;VALUE=uri:tel:{number}"));
        out.push_str("END:VCARD\r\n");
    }
    out
}

/// A TEL value as the person wrote it: `tel:+1-201-555-0123;ext=1` → `+1-201-555-0123`.
fn written_number(tel: &str) -> String {
    let t = unescape(tel.trim());
    let t = t.trim();
    let t = t
        .strip_prefix("tel:")
        .or_else(|| t.strip_prefix("TEL:"))
        .unwrap_or(t);
    t.split(';').next().unwrap_or(t).trim().to_owned()
}

/// `N:Family;Given;Additional;Prefix;Suffix` → "Given Family".
fn name_from_n(n: &str) -> String {
    let parts: Vec<String> = n.split(';').map(unescape).collect();
    let given = parts.get(1).map(String::as_str).unwrap_or("");
    let family = parts.first().map(String::as_str).unwrap_or("");
    format!("{given} {family}").trim().to_owned()
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line, folded so no line exceeds 75 octets (RFC 6350 §3.2),
/// never splitting a UTF-8 character.
fn push_folded(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_3_0_and_4_0() {
        let text = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;Jane;;;\r\nitem1.TEL;TYPE=\"CELL:x\":+49 (170) 12-34\r\nEND:VCARD\r\n\
                    BEGIN:VCARD\nVERSION:4.0\nFN:Smith\\, \n Bob\nTEL;VALUE=uri:tel:2000\nEND:VCARD\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                Ok(("Jane Doe".to_string(), "+49 (170) 12-34".to_string())),
                Ok(("Smith, Bob".to_string(), "2000".to_string()))
            ]
        );
    }

    #[test]
    fn cards_without_name_or_number_are_named_and_the_others_kept() {
        let no_tel = "BEGIN:VCARD\nVERSION:4.0\nFN:Alice\nEND:VCARD\n\
                      BEGIN:VCARD\nVERSION:4.0\nFN:Bob\nTEL:+44 20 7946 0958\nEND:VCARD\n";
        let cards = parse(no_tel).unwrap();
        assert!(matches!(cards[0], Err(VcardError::Card { index: 1, .. })));
        assert_eq!(
            cards[1],
            Ok(("Bob".to_string(), "+44 20 7946 0958".to_string()))
        );
        assert_eq!(parse(""), Err(VcardError::Empty));
        assert!(matches!(parse("hello"), Err(VcardError::Syntax(1, _))));
        assert!(matches!(
            parse("BEGIN:VCARD\nFN:x\n").unwrap()[..],
            [Err(VcardError::Card { index: 1, .. })]
        ));
        assert!(matches!(
            parse("BEGIN:VCARD\n:x\nEND:VCARD"),
            Err(VcardError::Syntax(2, _))
        ));
    }

    fn contact(name: String, number: String) -> Contact {
        Contact {
            id: 1,
            name,
            number,
        }
    }

    proptest! {
        #[test]
        fn export_then_import_round_trips(name in "[^\\x00-\\x1f\\x7f]{1,64}", number in "[1-9][0-9]{1,14}") {
            prop_assume!(!name.trim().is_empty() && name.trim() == name);
            let text = export(&[contact(name.clone(), number.clone())]);
            for line in text.split("\r\n") {
                prop_assert!(line.len() <= 75);
            }
            prop_assert_eq!(parse(&text).unwrap(), vec![Ok((name, number))]);
        }

        #[test]
        fn random_text_never_panics(text in ".{0,400}") {
            let _ = parse(&text);
        }
    }
}
