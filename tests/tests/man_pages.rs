//! The hand-written man pages (`docs/man/`) name every option and command the binaries
//! accept, so that they cannot fall behind the `--help` the code prints.

use std::process::Command;

use phoned_tests::process::bin;

/// The man page's text with roff's escaped hyphens made plain.
fn page(name: &str) -> String {
    let path = format!("{}/../docs/man/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("\\-", "-")
}

fn help(binary: &str, args: &[&str]) -> String {
    let out = Command::new(bin(binary))
        .args(args)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success(), "{binary} {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--long` options in a help text.
fn options(help: &str) -> Vec<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .filter(|w| w != "--help" && w != "--version")
        .collect()
}

/// Subcommand names listed under "Commands:" in a help text.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

fn assert_documented(page_name: &str, text: &str, words: &[String], what: &str) {
    for w in words {
        assert!(
            text.contains(w.as_str()),
            "docs/man/{page_name} does not mention {what} {w}"
        );
    }
}

#[test]
fn phoned_8_names_every_option() {
    let text = page("phoned.8");
    let opts = options(&help("phoned", &[]));
    assert!(opts.len() >= 3, "{opts:?}");
    assert_documented("phoned.8", &text, &opts, "option");
    assert!(text.contains("SIGHUP"));
}

#[test]
fn phone_relay_8_names_every_command_and_option() {
    let text = page("phone-relay.8");
    let mut checked = 0;
    let mut queue = vec![Vec::<String>::new()];
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let h = help("phone-relay", &args);
        let opts = options(&h);
        assert_documented("phone-relay.8", &text, &opts, "option");
        for c in commands(&h) {
            assert_documented("phone-relay.8", &text, std::slice::from_ref(&c), "command");
            let mut next = path.clone();
            next.push(c);
            queue.push(next);
        }
        checked += 1;
    }
    // serve, fingerprint, admin, users and its seven commands, backup, and the top level.
    assert!(checked >= 12, "only {checked} help texts");
}
