//! Call history: one record per finished call, newest last, and the count of missed
//! calls not yet seen.

use phoned_proto::call::{CallDirection, CallResult};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, named};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub number: String,
    pub name: String,
    #[serde(with = "named")]
    pub direction: CallDirection,
    /// Answered, or why the call never became active (busy, no answer, …).
    #[serde(with = "named")]
    pub result: CallResult,
    pub start_ms: u64,
    pub duration_ms: u64,
    pub missed: bool,
}

const MISSED: &str = "missed_unseen";
const NEXT: &str = "next_history_id";
/// Entries kept; the oldest go first.
const MAX_ENTRIES: u64 = 10_000;

impl Store {
    /// Appends an entry (and counts it if missed).
    pub fn add_history(&self, entry: &HistoryEntry) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let next = self.append(&mut wtxn, self.history, NEXT, entry)?;
        if next > MAX_ENTRIES {
            self.history.delete(&mut wtxn, &(next - MAX_ENTRIES))?;
        }
        if entry.missed {
            let missed: u32 = self
                .settings
                .get(&wtxn, MISSED)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            self.settings
                .put(&mut wtxn, MISSED, &(missed + 1).to_string())?;
        }
        wtxn.commit()?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for entry in self.history.rev_iter(&rtxn)?.take(limit) {
            let (_, bytes) = entry?;
            out.push(postcard::from_bytes(bytes).map_err(StoreError::Corrupt)?);
        }
        Ok(out)
    }

    pub fn missed_count(&self) -> Result<u32, StoreError> {
        Ok(self
            .setting(MISSED)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub fn clear_missed(&self) -> Result<(), StoreError> {
        self.set_setting(MISSED, "0")
    }
}

#[cfg(test)]
mod tests {
    use phoned_proto::call::EndReason;

    use super::*;

    fn entry(n: u64, missed: bool) -> HistoryEntry {
        HistoryEntry {
            number: format!("{}", 1000 + n),
            name: "x".into(),
            direction: CallDirection::Incoming,
            result: if missed {
                CallResult::NotAnswered(EndReason::NoAnswer)
            } else {
                CallResult::Answered
            },
            start_ms: n,
            duration_ms: 0,
            missed,
        }
    }

    #[test]
    fn newest_first_and_missed_counted() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        for n in 0..5 {
            s.add_history(&entry(n, n % 2 == 0)).unwrap();
        }
        let h = s.history(2).unwrap();
        assert_eq!(h.iter().map(|e| e.start_ms).collect::<Vec<_>>(), [4, 3]);
        assert_eq!(s.missed_count().unwrap(), 3);
        s.clear_missed().unwrap();
        assert_eq!(s.missed_count().unwrap(), 0);
    }

    /// The entry as daemons before the typed fields wrote it.
    #[derive(Serialize, Deserialize)]
    struct StringEntry {
        number: String,
        name: String,
        direction: String,
        result: String,
        start_ms: u64,
        duration_ms: u64,
        missed: bool,
    }

    #[test]
    fn entries_written_with_string_fields_still_read() {
        let old = StringEntry {
            number: "1042".into(),
            name: "Alice".into(),
            direction: "outgoing".into(),
            result: "no-answer".into(),
            start_ms: 7,
            duration_ms: 0,
            missed: false,
        };
        let old_bytes = postcard::to_allocvec(&old).unwrap();
        let entry: HistoryEntry = postcard::from_bytes(&old_bytes).unwrap();
        assert_eq!(entry.direction, CallDirection::Outgoing);
        assert_eq!(entry.result, CallResult::NotAnswered(EndReason::NoAnswer));
        assert_eq!(postcard::to_allocvec(&entry).unwrap(), old_bytes);

        let answered = StringEntry {
            direction: "incoming".into(),
            result: "answered".into(),
            ..old
        };
        let entry: HistoryEntry =
            postcard::from_bytes(&postcard::to_allocvec(&answered).unwrap()).unwrap();
        assert_eq!(
            (entry.direction, entry.result),
            (CallDirection::Incoming, CallResult::Answered)
        );
    }

    #[test]
    fn an_unknown_name_is_a_corrupt_record() {
        let odd = StringEntry {
            number: "1042".into(),
            name: String::new(),
            direction: "sideways".into(),
            result: "answered".into(),
            start_ms: 0,
            duration_ms: 0,
            missed: false,
        };
        let bytes = postcard::to_allocvec(&odd).unwrap();
        assert!(postcard::from_bytes::<HistoryEntry>(&bytes).is_err());
    }
}
