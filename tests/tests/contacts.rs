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
    // Importing again adds nothing; a file with a bad card imports nothing.
    let again = b.ctl(&["--json", "contacts", "import", file.to_str().unwrap()]);
    assert_eq!(again.json()["imported"].as_array().unwrap().len(), 0);
    let mixed = "BEGIN:VCARD\nVERSION:3.0\nFN:Carol\nTEL:3000\nEND:VCARD\nBEGIN:VCARD\nVERSION:3.0\nFN:Dan\nTEL:+49 170\nEND:VCARD\n";
    let out = phonectl(&b.bus.address, &["contacts", "import", "-"], mixed);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("+49170"), "{out:?}");
    assert_eq!(strip(b.ctl(&["--json", "contacts", "ls"]).json()).len(), 2);
    // Remove by name.
    let out = b.ctl(&["contacts", "rm", "bob smith, jr."]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(strip(b.ctl(&["--json", "contacts", "ls"]).json()).len(), 1);
}
