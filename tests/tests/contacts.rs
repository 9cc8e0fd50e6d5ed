//! Contacts through phonectl and the daemon's store, with vCard round trips.

mod common;

use phoned_tests::process::phonectl;

#[test]
fn contacts_round_trip_through_vcard() {
    let w = common::world();
    let a = w.phone("A");
    let b = w.phone("B");
    a.wait_online(common::ONLINE);
    b.wait_online(common::ONLINE);
    for (name, number) in [("Alice", "1042"), ("Bob Smith, Jr.", "2000")] {
        let out = a.ctl(&["contacts", "add", name, number]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let dup = a.ctl(&["contacts", "add", "Other", "1042"]);
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("already saved as \"Alice\""), "{dup:?}");
    let bad = a.ctl(&["contacts", "add", "Eve", "12-ab"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("InvalidNumber"), "{bad:?}");
    let out = a.ctl(&["contacts", "rename", "alice", "Alice Liddell"]);
    assert_eq!(out.code, 0, "{out:?}");

    let file = w.dir.path().join("contacts.vcf");
    let out = a.ctl(&["contacts", "export", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\n"), "{text}");
    let out = b.ctl(&["--json", "contacts", "import", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["imported"].as_array().unwrap().len(), 2);
    let strip = |v: serde_json::Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["number"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let la = strip(a.ctl(&["--json", "contacts", "ls"]).json());
    let lb = strip(b.ctl(&["--json", "contacts", "ls"]).json());
    assert_eq!(la, lb);
    assert_eq!(la[0], ("Alice Liddell".to_owned(), "1042".to_owned()));
    // Importing again adds nothing.
    let again = b.ctl(&["--json", "contacts", "import", file.to_str().unwrap()]);
    assert_eq!(again.json()["imported"].as_array().unwrap().len(), 0);
    // A real phone's address book: an international number is kept (as written, not
    // dialable here); cards without a usable number are skipped and named, the rest
    // imported.
    let phone_book = "BEGIN:VCARD\nVERSION:3.0\nFN:Carol\nTEL:3000\nEND:VCARD\n\
        BEGIN:VCARD\nVERSION:3.0\nFN:Dan\nTEL;TYPE=CELL:+44 20 7946 0958\nEND:VCARD\n\
        BEGIN:VCARD\nVERSION:3.0\nFN:Eve\nEMAIL:eve@example.org\nEND:VCARD\n\
        BEGIN:VCARD\nVERSION:3.0\nFN:Frank\nTEL:call me\nEND:VCARD\n";
    let out = phonectl(
        &b.bus.address,
        &["--json", "contacts", "import", "-"],
        phone_book,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let report = out.json();
    assert_eq!(report["imported"].as_array().unwrap().len(), 2, "{report}");
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert_eq!(skipped.len(), 2, "{report}");
    assert!(
        skipped[0].contains("card 3") && skipped[0].contains("Eve"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].contains("card 4") && skipped[1].contains("Frank"),
        "{skipped:?}"
    );
    let human = phonectl(&b.bus.address, &["contacts", "import", "-"], phone_book);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(human.stdout.contains("skipped 2"), "{human:?}");
    let list = b.ctl(&["--json", "contacts", "ls"]).json();
    let dan = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Dan")
        .expect("Dan imported");
    assert_eq!(dan["number"], "+44 20 7946 0958");
    assert_eq!(dan["dialable"], false);
    let carol = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Carol")
        .unwrap();
    assert_eq!(carol["dialable"], true);
    let ls = b.ctl(&["contacts", "ls"]).stdout;
    assert!(ls.contains("+44 20 7946 0958  (not on this relay)"), "{ls}");
    // Matched by the number however it is written; dialling it says why it cannot.
    let found = b.ctl(&["--json", "contacts", "rm", "+442079460958"]);
    assert_eq!(found.code, 0, "{found:?}");
    let out = phonectl(&b.bus.address, &["contacts", "import", "-"], phone_book);
    assert_eq!(out.code, 0, "{out:?}");
    let dial = b.ctl(&["dial", "dan"]);
    assert_eq!(dial.code, 1, "{dial:?}");
    assert!(
        dial.stderr.contains("not a number on this relay"),
        "{dial:?}"
    );
    // Nothing usable at all: nothing imported, and that is an error naming why.
    let useless = "BEGIN:VCARD\nVERSION:3.0\nFN:Gina\nEND:VCARD\n";
    let out = phonectl(&b.bus.address, &["contacts", "import", "-"], useless);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("Gina"), "{out:?}");
    assert_eq!(strip(b.ctl(&["--json", "contacts", "ls"]).json()).len(), 4);
    // Remove by name.
    let out = b.ctl(&["contacts", "rm", "bob smith, jr."]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(strip(b.ctl(&["--json", "contacts", "ls"]).json()).len(), 3);
}
