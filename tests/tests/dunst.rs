//! The notifications through a real notification server: `dunst` on a private X server
//! (`Xvfb`), on the callee daemon's bus. dunst renders body markup: a caller's markup name
//! and a message's tags must reach it escaped (dunst's `-print` shows what it was given and
//! what it formatted), and `dunstctl action 0` (a click on the notification) answers the
//! call. Skipped, saying so, where dunst or Xvfb is not installed (`scripts/deps.sh`
//! installs both).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{dial_bg, wait_call};
use phoned_tests::wait_for;

const EVIL: &str = r#"<i>Evil</i> <span size="xx-large">Corp</span>"#;
const EVIL_ESCAPED: &str =
    "&lt;i&gt;Evil&lt;/i&gt; &lt;span size=&quot;xx-large&quot;&gt;Corp&lt;/span&gt;";
const TEXT: &str = "1 < 2 & <b>bold</b>";
const TEXT_ESCAPED: &str = "1 &lt; 2 &amp; &lt;b&gt;bold&lt;/b&gt;";

/// A process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free X display number: one whose lock file does not exist.
fn free_display() -> u32 {
    (90..200)
        .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
        .expect("a free X display")
}

/// dunst's `-print` output, one string per notification (`{ … }` blocks).
fn notifications(out: &Mutex<Vec<String>>) -> Vec<String> {
    let lines = out.lock().unwrap();
    let mut all = Vec::new();
    let mut current = String::new();
    for line in lines.iter() {
        current.push_str(line);
        current.push('\n');
        if line.trim() == "}" {
            all.push(std::mem::take(&mut current));
        }
    }
    all
}

#[test]
fn dunst_shows_remote_markup_as_text_and_a_click_answers() {
    if !phoned_tests::on_path("dunst")
        || !phoned_tests::on_path("Xvfb")
        || !phoned_tests::on_path("dunstctl")
    {
        eprintln!("skipped: needs dunst and Xvfb (scripts/deps.sh installs them)");
        return;
    }
    let w = common::world();
    let a = w.phone("Eve");
    let b = w.phone("Bob");
    let na = a.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let nb = b.wait_online(common::ONLINE)["number"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(a.ctl(&["name", "set", EVIL]).code, 0);

    let display = format!(":{}", free_display());
    let _x = Killed(
        Command::new("Xvfb")
            .args([&display, "-screen", "0", "800x600x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb"),
    );
    let config = w.dir.path().join("dunstrc");
    std::fs::write(
        &config,
        "[global]\n    markup = full\n[urgency_normal]\n    timeout = 0\n[urgency_critical]\n    timeout = 0\n",
    )
    .unwrap();
    let mut dunst = Command::new("dunst")
        .arg("-config")
        .arg(&config)
        .arg("-print")
        .env("DISPLAY", &display)
        .env("DBUS_SESSION_BUS_ADDRESS", &b.bus.address)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dunst");
    let printed = Arc::new(Mutex::new(Vec::new()));
    let stdout = dunst.stdout.take().unwrap();
    let sink = printed.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let _dunst = Killed(dunst);
    // dunst owns the name once it is up (X may take a moment).
    let up = wait_for(Duration::from_secs(10), || {
        let out = Command::new("dunstctl")
            .arg("is-paused")
            .env("DBUS_SESSION_BUS_ADDRESS", &b.bus.address)
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    assert!(up.is_some(), "dunst did not come up on {display}");

    let dialing = dial_bg(&a, &nb);
    wait_call(&b, "incoming");
    let call = wait_for(Duration::from_secs(10), || {
        notifications(&printed)
            .into_iter()
            .find(|n| n.contains("summary: 'Incoming call'"))
    })
    .unwrap_or_else(|| panic!("dunst showed no call: {:?}", printed.lock().unwrap()));
    // Given escaped, formatted as the literal text: no italic, no huge span.
    assert!(
        call.contains(&format!("body: '{EVIL_ESCAPED} ({na})'")),
        "{call}"
    );
    assert!(!call.contains("<i>Evil"), "{call}");
    // A click on it (dunst's default action) answers.
    let clicked = Command::new("dunstctl")
        .args(["action", "0"])
        .env("DBUS_SESSION_BUS_ADDRESS", &b.bus.address)
        .status()
        .unwrap();
    assert!(clicked.success());
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    assert_eq!(a.ctl(&["hangup"]).code, 0);

    assert_eq!(a.ctl(&["msg", "send", &nb, TEXT]).code, 0);
    let message = wait_for(Duration::from_secs(10), || {
        notifications(&printed)
            .into_iter()
            .find(|n| n.contains("category: im.received"))
    })
    .unwrap_or_else(|| panic!("dunst showed no message: {:?}", printed.lock().unwrap()));
    assert!(
        message.contains(&format!("body: '{TEXT_ESCAPED}'")),
        "{message}"
    );
}
