//! Text messages, files and voice messages as the daemon shows them: which way they went
//! and where their delivery stands. The strings are public interface (D-Bus
//! `Messages.History`, `Files.List`, `VoiceMessages.List`, `StatusChanged`, JSON) and are
//! what the daemon's store keeps. A file's kind is [`crate::FileKind`].

use crate::names::string_enum;

string_enum! {
    /// Which way a message or file went, seen from this device.
    pub enum Direction as "direction" {
        /// Received.
        In = "in",
        /// Sent.
        Out = "out",
    }
}

impl Direction {
    /// `Out` for what this device sent, `In` for what it received.
    pub fn of(outgoing: bool) -> Direction {
        if outgoing {
            Direction::Out
        } else {
            Direction::In
        }
    }
}

string_enum! {
    /// Where a text message stands. Sent: `queued` → `stored` → `delivered`, or `failed`.
    pub enum MessageStatus as "message status" {
        /// Kept on this device until the relay takes it.
        Queued = "queued",
        /// On the relay's disk.
        Stored = "stored",
        /// On the recipient's device.
        Delivered = "delivered",
        /// The relay refused it.
        Failed = "failed",
        /// A message this device received.
        Received = "received",
    }
}

string_enum! {
    /// Where a file (or voice message) transfer stands. Sent: `queued` → `stored` →
    /// `delivered`, or `failed`; received: `receiving` → `received`.
    pub enum FileStatus as "file status" {
        /// Kept on this device until the relay has it all.
        Queued = "queued",
        /// On the relay's disk.
        Stored = "stored",
        /// On the recipient's device.
        Delivered = "delivered",
        /// The relay refused it.
        Failed = "failed",
        /// Being downloaded.
        Receiving = "receiving",
        /// Downloaded and checked.
        Received = "received",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileKind;
    use crate::names::assert_round_trips;

    #[test]
    fn names_round_trip() {
        assert_round_trips!(Direction);
        assert_round_trips!(MessageStatus);
        assert_round_trips!(FileStatus);
        assert_round_trips!(FileKind);
    }

    #[test]
    fn statuses_have_the_documented_names() {
        let names = |all: &[&str]| all.join(" ");
        assert_eq!(
            names(
                &MessageStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
            ),
            "queued stored delivered failed received"
        );
        assert_eq!(
            names(
                &FileStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
            ),
            "queued stored delivered failed receiving received"
        );
        assert_eq!(
            (Direction::In.as_str(), Direction::Out.as_str()),
            ("in", "out")
        );
        assert_eq!(
            (Direction::of(false), Direction::of(true)),
            (Direction::In, Direction::Out)
        );
        assert_eq!(
            (FileKind::File.as_str(), FileKind::Voice.as_str()),
            ("file", "voice")
        );
    }
}
