//! The driver without a relay: commands reach the core and come back as replies,
//! settings are stored, snapshots follow, and a reload reads the file it was given.

use phoned_proto::state::AutoAnswer;

use super::*;
use crate::core::{Command, ErrorKind};

fn parts(dir: &std::path::Path, config: &str) -> Parts {
    let path = dir.join("phoned.toml");
    std::fs::write(&path, config).unwrap();
    let config = Config::load(&path).unwrap();
    let store = Store::open(dir).unwrap();
    new(config, path, dir.to_path_buf(), store)
}

#[test]
fn commands_get_replies_and_settings_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let p = parts(dir.path(), "relay = \"r:1\"\n");
    let handle = p.handle.clone();
    smol::block_on(async {
        let _driver = smol::spawn(p.driver.run());
        let dial = Command::Dial {
            number: "2000".into(),
            name: String::new(),
        };
        let e = handle.command(dial).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Offline);
        assert_eq!(handle.command(Command::SetDnd(true)).await, Ok(Reply::Done));
        assert!(handle.snapshot().settings.do_not_disturb);
        handle
            .command(Command::SetAutoAnswer(AutoAnswer::Contacts))
            .await
            .unwrap();
        assert_eq!(
            handle.store.setting(store::DND).unwrap().as_deref(),
            Some("true")
        );
        assert_eq!(
            stored_settings(&handle.store).auto_answer,
            AutoAnswer::Contacts
        );
        assert!(handle.client().await.is_none());
        assert!(p.changes.is_empty(), "nothing to announce offline");
    });
}

#[test]
fn a_reload_reads_the_config_file_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = parts(dir.path(), "relay = \"r:1\"\n");
    let handle = p.handle.clone();
    smol::block_on(async {
        let _driver = smol::spawn(p.driver.run());
        std::fs::write(&handle.config_path, "relay = \"s:1\"\ncolour = 1\n").unwrap();
        let e = handle.reload().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("colour"), "{e}");
        assert_eq!(handle.config().relay, "r:1");
        std::fs::write(&handle.config_path, "relay = \"s:1\"\n").unwrap();
        let changes = handle.reload().await.unwrap();
        assert_eq!(changes, vec![("relay", crate::reload::Effect::Reconnect)]);
        assert_eq!(handle.config().relay, "s:1");
        // Idle: the link is asked to reconnect at once.
        assert_eq!(p.relink.try_recv(), Ok(()));
    });
}
