//! `docs/dbus-api.md` names every method, signal and property of the daemon with the
//! signature the daemon really has. The signatures come from `docs/org.phoned.Phone1.xml`,
//! which `robustness.rs` checks against the live daemon's introspection (and regenerates
//! with `PHONED_BLESS=1`); so the hand-written reference cannot drift from the daemon.

use std::collections::BTreeMap;

fn doc(name: &str) -> String {
    let path = format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (interface, member) → "method (in) -> (out)", "signal (args)" or "property type".
type Members = BTreeMap<(String, String), String>;

/// The value of `attr="…"` in an XML tag.
fn attr<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// A signature with one enclosing struct removed, so that `(ss)` (the docs' way of
/// writing a returned tuple) and `ss` (two out arguments) compare equal.
fn flat(sig: &str) -> String {
    let b = sig.as_bytes();
    if b.first() == Some(&b'(') && b.last() == Some(&b')') {
        // Only if the first parenthesis closes at the end.
        let mut depth = 0;
        for (i, c) in sig.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 && i + 1 < sig.len() {
                        return sig.to_owned();
                    }
                }
                _ => {}
            }
        }
        return sig[1..sig.len() - 1].to_owned();
    }
    sig.to_owned()
}

fn from_xml(xml: &str) -> Members {
    let mut out = Members::new();
    let (mut iface, mut member, mut kind) = (String::new(), String::new(), "");
    let (mut ins, mut outs) = (String::new(), String::new());
    for tag in xml.split('<').map(|t| t.split('>').next().unwrap_or("")) {
        let name = attr(tag, "name").unwrap_or("").to_owned();
        if tag.starts_with("interface ") {
            iface = name;
        } else if tag.starts_with("method ") || tag.starts_with("signal ") {
            member = name;
            kind = if tag.starts_with("method") {
                "method"
            } else {
                "signal"
            };
            ins.clear();
            outs.clear();
            if tag.ends_with('/') {
                out.insert((iface.clone(), member.clone()), format!("{kind} () -> ()"));
            }
        } else if tag.starts_with("arg ") {
            let ty = attr(tag, "type").unwrap_or("?");
            if attr(tag, "direction") == Some("out") {
                outs.push_str(ty);
            } else {
                ins.push_str(ty);
            }
        } else if tag == "/method" || tag == "/signal" {
            let sig = if kind == "method" {
                format!("method ({ins}) -> ({})", flat(&outs))
            } else {
                format!("signal ({ins})")
            };
            out.insert((iface.clone(), member.clone()), sig);
        } else if tag.starts_with("property ") {
            let ty = attr(tag, "type").unwrap_or("?");
            out.insert((iface.clone(), name), format!("property {ty}"));
        }
    }
    out.retain(|(i, _), _| i.starts_with("org.phoned.Phone1."));
    out
}

/// The types of a documented argument list: `s to, h file` → `sh`.
fn arg_types(list: &str) -> String {
    let mut types = String::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in list.chars() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            types.push_str(current.split_whitespace().next().unwrap_or(""));
            current.clear();
        } else {
            current.push(c);
        }
    }
    types.push_str(current.split_whitespace().next().unwrap_or(""));
    types
}

fn from_markdown(md: &str) -> Members {
    let mut out = Members::new();
    let mut iface = String::new();
    for line in md.lines() {
        if let Some(rest) = line.strip_prefix("## `") {
            iface = rest.split('`').next().unwrap_or("").to_owned();
            continue;
        }
        if !iface.starts_with("org.phoned.Phone1.") || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split(" | ").collect();
        let (names, kind) = (
            cells[0].trim_start_matches("| "),
            cells.get(1).unwrap_or(&""),
        );
        // `Hold()` / `Resume()`, or `State`, `Reason`: several members in one row.
        let separators: &[char] = if names.contains('(') {
            &['/']
        } else {
            &['/', ',']
        };
        for name in names.split(separators).map(|n| n.trim().trim_matches('`')) {
            if name.is_empty() {
                continue;
            }
            if kind.starts_with("propert") {
                let ty = kind.split('`').nth(1).unwrap_or("?");
                out.insert((iface.clone(), name.to_owned()), format!("property {ty}"));
                continue;
            }
            let Some((member, rest)) = name.split_once('(') else {
                continue; // an error name or a state
            };
            let (args, ret) = match rest.split_once(") →") {
                Some((args, ret)) => (args, ret.trim()),
                None => (rest.trim_end_matches(')'), ""),
            };
            let ins = arg_types(args);
            let sig = match kind.trim() {
                "signal" => format!("signal ({ins})"),
                "method" => {
                    let ret = flat(ret);
                    let outs = if ret.contains(' ') {
                        arg_types(&ret)
                    } else {
                        ret
                    };
                    format!("method ({ins}) -> ({outs})")
                }
                _ => continue,
            };
            out.insert((iface.clone(), member.to_owned()), sig);
        }
    }
    out
}

#[test]
fn the_reference_names_every_member_with_the_daemons_signature() {
    let live = from_xml(&doc("org.phoned.Phone1.xml"));
    let documented = from_markdown(&doc("dbus-api.md"));
    assert!(
        live.len() > 50,
        "parsed only {} members from the XML",
        live.len()
    );
    let mut wrong = Vec::new();
    for (key, sig) in &live {
        match documented.get(key) {
            None => wrong.push(format!("{}.{} ({sig}) is not documented", key.0, key.1)),
            Some(d) if d != sig => wrong.push(format!(
                "{}.{}: the daemon has {sig}, the docs {d}",
                key.0, key.1
            )),
            Some(_) => {}
        }
    }
    for key in documented.keys().filter(|k| !live.contains_key(*k)) {
        wrong.push(format!(
            "{}.{} is documented but the daemon has no such member",
            key.0, key.1
        ));
    }
    assert!(
        wrong.is_empty(),
        "docs/dbus-api.md is wrong:\n{}",
        wrong.join("\n")
    );
}
