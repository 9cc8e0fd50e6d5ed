//! Names from the relay, cleaned where they enter the daemon: every display name (a
//! caller's, a sender's, someone online, this account's own as the relay reports it) and
//! every file name passes [`phoned_proto::text`]'s sanitiser before the core, the store,
//! D-Bus or a notification sees it. Other daemons and old relays may send anything;
//! bidirectional overrides, byte-order marks and escapes would let them disguise a
//! name (`invoice\u{202E}fdp.exe`) or write to a terminal running `phonectl watch`.
//! Message texts are not names and are left as sent (right-to-left text needs its
//! marks).

use phoned_proto::text::{clean_file_name, clean_name};
use phoned_proto::{AccountInfo, Event, Response};

fn name(s: &mut String) {
    let cleaned = clean_name(s);
    if cleaned != *s {
        *s = cleaned;
    }
}

pub(super) fn account(a: &mut AccountInfo) {
    name(&mut a.display_name);
}

pub(super) fn online(list: &mut [(String, String)]) {
    for (_, n) in list {
        name(n);
    }
}

pub(super) fn event(e: &mut Event) {
    match e {
        Event::Presence { name: n, .. } => name(n),
        Event::AccountChanged(a) => account(a),
        Event::CallIncoming { from_name, .. } => name(from_name),
        Event::Message(m) => name(&mut m.from_name),
        Event::File(f) => {
            name(&mut f.from_name);
            f.name = clean_file_name(&f.name);
        }
        Event::ConferenceIncoming { from_name, .. } => name(from_name),
        Event::ConferenceRoster { roster, .. } => {
            for p in &mut roster.parties {
                name(&mut p.name);
            }
        }
        Event::CallState { .. }
        | Event::CallDtmf { .. }
        | Event::CallHold { .. }
        | Event::MessageDelivered { .. }
        | Event::ConferenceMoved { .. }
        | Event::MediaPlane { .. } => {}
    }
}

pub(super) fn response(r: &mut Response) {
    match r {
        Response::Provisioned { account: a, .. }
        | Response::LoggedIn(a)
        | Response::DeviceLoggedIn { account: a, .. }
        | Response::Account(a) => account(a),
        Response::Online(users) => {
            for u in users {
                name(&mut u.name);
            }
        }
        Response::Welcome(_)
        | Response::Done
        | Response::Pong { .. }
        | Response::CallPlaced { .. }
        | Response::ConferencePlaced { .. }
        | Response::Stored { .. }
        | Response::DeviceToken { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoned_proto::{FileKind, StoredFile};

    #[test]
    fn names_in_events_and_answers_are_cleaned() {
        let mut e = Event::CallIncoming {
            call: 1,
            from_number: "1042".into(),
            from_name: "\u{FEFF}Bank\u{202E}knaB".into(),
        };
        event(&mut e);
        assert!(matches!(e, Event::CallIncoming { from_name, .. } if from_name == "BankknaB"));
        let mut e = Event::File(StoredFile {
            id: 1,
            from_number: "1042".into(),
            from_name: "Eve\u{2066}".into(),
            name: "[31mcv\u{202E}fdp.exe".into(),
            size: 1,
            sha256: [0; 32],
            kind: FileKind::File,
            sent_ms: 0,
        });
        event(&mut e);
        let Event::File(f) = e else { unreachable!() };
        assert_eq!(
            (f.from_name.as_str(), f.name.as_str()),
            ("Eve", "cvfdp.exe")
        );
        let mut r = Response::LoggedIn(AccountInfo {
            number: "1042".into(),
            display_name: "Me\u{1b}[2J".into(),
            created_ms: 0,
            devices_online: 1,
        });
        response(&mut r);
        assert!(matches!(r, Response::LoggedIn(a) if a.display_name == "Me"));
    }
}
