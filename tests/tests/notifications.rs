//! Desktop notifications as a notification server on the daemon's bus receives them:
//! what the other side chose (a display name, a message's text, a file name) arrives as text, escaped
//! for a server that renders body markup and as is for one that does not; a click on the
//! incoming-call notification answers; and one the user dismissed while the call still
//! rings comes back once.

mod common;

use common::{dial_bg, wait_call};
use phoned_tests::notifications::{DISMISSED, NotificationServer};
use phoned_tests::process::PhonedProcess;

/// A display name made of markup, which a markup server would render italic and huge.
const EVIL: &str = r#"<i>Evil</i> <span size="xx-large">Corp</span>"#;
const EVIL_ESCAPED: &str =
    "&lt;i&gt;Evil&lt;/i&gt; &lt;span size=&quot;xx-large&quot;&gt;Corp&lt;/span&gt;";
/// A text with a bare `<`, which breaks a markup parser, and a tag.
const TEXT: &str = "1 < 2 & <b>bold</b>";
const TEXT_ESCAPED: &str = "1 &lt; 2 &amp; &lt;b&gt;bold&lt;/b&gt;";

/// Two phones online, the first named [`EVIL`]; their numbers.
fn evil_and_bob(w: &common::World) -> (PhonedProcess, PhonedProcess, String, String) {
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
    let out = a.ctl(&["name", "set", EVIL]);
    assert_eq!(out.code, 0, "{out:?}");
    (a, b, na, nb)
}

#[test]
fn markup_from_the_other_side_is_escaped_for_a_markup_server() {
    let w = common::world();
    let (a, b, na, nb) = evil_and_bob(&w);
    let server = NotificationServer::start(&b.bus.address, true);

    let dialing = dial_bg(&a, &nb);
    wait_call(&b, "incoming");
    let call = server.wait_posted("Incoming call", 0);
    assert_eq!(call.body, format!("{EVIL_ESCAPED} ({na})"));
    assert_eq!(call.action_keys(), ["default", "answer", "decline"]);
    assert!(call.hints["sound-name"].contains("phone-incoming-call"));
    assert!(call.hints["resident"].contains("true"));

    // Dismissed while it rings: posted once more, the same; dismissed again: left closed.
    server.close(call.id, DISMISSED);
    let again = server.wait_posted("Incoming call", 1);
    assert_eq!(
        (&again.body, &again.actions, &again.hints),
        (&call.body, &call.actions, &call.hints)
    );
    server.close(again.id, DISMISSED);
    // A click on the notification itself answers. The daemon handles the server's signals
    // in order, so a third post, were there one, would be recorded by the time it answers.
    server.invoke(again.id, "default");
    assert_eq!(dialing.join().unwrap().json()["state"], "active");
    let calls = server
        .posted()
        .into_iter()
        .filter(|p| p.summary == "Incoming call")
        .count();
    assert_eq!(calls, 2, "posted again once only: {:?}", server.posted());
    assert!(
        server.wait_closed(again.id),
        "closed when it stopped ringing"
    );
    assert_eq!(a.ctl(&["hangup"]).code, 0);

    let out = a.ctl(&["msg", "send", &nb, TEXT]);
    assert_eq!(out.code, 0, "{out:?}");
    let message = server.wait_posted(&format!("{EVIL} ({na})"), 0);
    assert_eq!(message.body, TEXT_ESCAPED);

    // A file name is the sender's choice too (no `/`: the sender's own file system).
    let path = w.dir.path().join("<b>notes<b> & 'more'.txt");
    std::fs::write(&path, "hello").unwrap();
    let out = a.ctl(&["file", "send", &nb, path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let file = server.wait_posted(&format!("File from {EVIL} ({na})"), 0);
    assert_eq!(
        file.body,
        "&lt;b&gt;notes&lt;b&gt; &amp; &apos;more&apos;.txt"
    );
    assert_eq!(
        server.capabilities_asked(),
        1,
        "the capabilities are asked once per server"
    );
}

#[test]
fn a_plain_text_server_gets_the_text_as_is() {
    let w = common::world();
    let (a, b, na, nb) = evil_and_bob(&w);
    let server = NotificationServer::start(&b.bus.address, false);

    let dialing = dial_bg(&a, &nb);
    wait_call(&b, "incoming");
    let call = server.wait_posted("Incoming call", 0);
    assert_eq!(call.body, format!("{EVIL} ({na})"));
    server.invoke(call.id, "decline");
    assert_eq!(dialing.join().unwrap().json()["reason"], "rejected");
    assert!(
        server.wait_closed(call.id),
        "closed when it stopped ringing"
    );

    let out = a.ctl(&["msg", "send", &nb, TEXT]);
    assert_eq!(out.code, 0, "{out:?}");
    let message = server.wait_posted(&format!("{EVIL} ({na})"), 0);
    assert_eq!(message.body, TEXT);
}
