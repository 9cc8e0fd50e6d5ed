//! Unfinished uploads, sans-IO: what each file in `partial/` counts against its sender's
//! quota and the relay-wide cap, which uploads are running, and which abandoned ones have
//! expired. The bulk streams ([`crate::bulk`]) report to it; the upkeep task deletes the
//! files it names as expired. Times are Unix milliseconds (a file's mtime is one, after a
//! restart).

use std::collections::HashMap;

use super::Shortage;

/// Least an unfinished upload counts, even empty: bounds how many files a sender can
/// leave in `partial/` (a file costs a block and an inode however small).
pub const MIN_CHARGE: u64 = 4096;

/// The limits an upload starts under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most one sender's unfinished uploads may count (`mailbox_quota_kib`).
    pub per_sender: u64,
    /// Most all unfinished uploads together may count (`max_partial_mib`).
    pub total: u64,
}

/// Why an upload may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The sender's unfinished uploads would pass its quota.
    SenderQuota { used: u64, quota: u64 },
    /// All unfinished uploads would pass the relay-wide cap.
    Cap(Shortage),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    sender: u64,
    /// Size the upload announced; 0 for a file found at start-up.
    announced: u64,
    /// Bytes in the file.
    have: u64,
    running: bool,
    touched_ms: u64,
    /// Which stream owns the upload: a resume on a new connection takes it over from
    /// one the relay has not yet seen die.
    owner: u64,
}

impl Entry {
    /// A running upload counts the whole file it announced, so that parallel uploads
    /// cannot each pass the check and together overshoot; a stopped one what it left.
    fn charge(&self) -> u64 {
        if self.running {
            self.announced.max(self.have)
        } else {
            self.have.max(MIN_CHARGE)
        }
    }

    /// Bytes a running upload has yet to write.
    fn promise(&self) -> u64 {
        if self.running {
            self.announced.saturating_sub(self.have)
        } else {
            0
        }
    }
}

/// Every file in `partial/`, by file name.
#[derive(Debug, Default)]
pub struct Partials {
    entries: HashMap<String, Entry>,
    by_sender: HashMap<u64, u64>,
    total: u64,
    /// Sum of [`Entry::promise`], kept in step like `total` (read for every message).
    promised: u64,
    next_owner: u64,
}

/// The stream that owns an upload, from [`Partials::begin`].
pub type Owner = u64;

impl Partials {
    /// Bytes all unfinished uploads count.
    pub fn used(&self) -> u64 {
        self.total
    }

    /// Bytes `sender`'s unfinished uploads count.
    pub fn used_by(&self, sender: u64) -> u64 {
        self.by_sender.get(&sender).copied().unwrap_or(0)
    }

    /// Bytes running uploads announced but have not written yet: the disk check counts
    /// them as used.
    pub fn promised(&self) -> u64 {
        self.promised
    }

    /// Replaces the entry of `name`, keeping the totals in step.
    fn set(&mut self, name: &str, entry: Option<Entry>) {
        let old = match entry {
            Some(e) => self.entries.insert(name.to_owned(), e),
            None => self.entries.remove(name),
        };
        if let Some(old) = old {
            self.total -= old.charge();
            self.promised -= old.promise();
            let sender = self.by_sender.entry(old.sender).or_default();
            *sender -= old.charge();
            if *sender == 0 {
                self.by_sender.remove(&old.sender);
            }
        }
        if let Some(new) = entry {
            self.total += new.charge();
            self.promised += new.promise();
            *self.by_sender.entry(new.sender).or_default() += new.charge();
        }
    }

    /// Upload `name` of `sender`, announced at `announced` bytes, starts (or resumes
    /// with `have` bytes already in its file). If it runs on another stream already (a
    /// connection the relay has not yet seen die), this one takes it over: the other's
    /// reports are ignored from now on, and it should stop writing.
    pub fn begin(
        &mut self,
        name: &str,
        sender: u64,
        announced: u64,
        have: u64,
        now_ms: u64,
        limits: Limits,
    ) -> Result<Owner, Refused> {
        let old = self.entries.get(name).copied();
        let entry = Entry {
            sender,
            announced,
            have,
            running: true,
            touched_ms: now_ms,
            owner: self.next_owner + 1,
        };
        // What the others count: this upload's old entry is replaced, not added to.
        let before = old.map_or(0, |e| e.charge());
        // (A name belongs to one sender; a file of another's found at start-up is not
        // this sender's to discount.)
        let mine_before = old.filter(|e| e.sender == sender).map_or(0, |e| e.charge());
        let mine = self.used_by(sender) - mine_before;
        if mine + entry.charge() > limits.per_sender {
            return Err(Refused::SenderQuota {
                used: mine,
                quota: limits.per_sender,
            });
        }
        let all = self.total - before;
        if all + entry.charge() > limits.total {
            return Err(Refused::Cap(Shortage::Partials {
                used: all,
                cap: limits.total,
            }));
        }
        self.next_owner += 1;
        self.set(name, Some(entry));
        Ok(self.next_owner)
    }

    /// The entry of `name` if `owner` still owns it.
    fn owned(&self, name: &str, owner: Owner) -> Option<Entry> {
        self.entries.get(name).copied().filter(|e| e.owner == owner)
    }

    /// Upload `name` has `have` bytes in its file. `false` if another stream took it
    /// over: this one must stop writing.
    pub fn progress(&mut self, name: &str, owner: Owner, have: u64, now_ms: u64) -> bool {
        let Some(e) = self.owned(name, owner) else {
            return false;
        };
        let e = Entry {
            have,
            touched_ms: now_ms,
            ..e
        };
        self.set(name, Some(e));
        true
    }

    /// Upload `name` stopped with `have` bytes in its file, which stays for a resume.
    pub fn stopped(&mut self, name: &str, owner: Owner, have: u64, now_ms: u64) {
        if let Some(e) = self.owned(name, owner) {
            let e = Entry {
                have,
                running: false,
                touched_ms: now_ms,
                ..e
            };
            self.set(name, Some(e));
        }
    }

    /// The file of `name` is gone (it became a blob or was damaged) by its owner.
    pub fn finished(&mut self, name: &str, owner: Owner) {
        if self.owned(name, owner).is_some() {
            self.set(name, None);
        }
    }

    /// A file found in `partial/` at start-up: `len` bytes, last written at `touched_ms`.
    /// `sender` is 0 when the name does not say.
    pub fn restore(&mut self, name: &str, sender: u64, len: u64, touched_ms: u64) {
        let e = Entry {
            sender,
            announced: 0,
            have: len,
            running: false,
            touched_ms,
            owner: 0,
        };
        self.set(name, Some(e));
    }

    /// Files of stopped uploads not touched for `expiry_ms`: forgotten here at once (so a
    /// resume from now on starts afresh), to be deleted by the caller.
    pub fn take_expired(&mut self, now_ms: u64, expiry_ms: u64) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.running && e.touched_ms.saturating_add(expiry_ms) <= now_ms)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        for name in &names {
            self.set(name, None);
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        per_sender: 1 << 20,
        total: 3 << 20,
    };

    #[test]
    fn abandoned_uploads_count_against_the_sender_until_refused() {
        let mut p = Partials::default();
        let size = 300 << 10;
        let mut started = 0;
        // All but the last byte, then the stream is reset: over and over.
        for i in 0..40 {
            let name = format!("7-{i}");
            match p.begin(&name, 7, size, 0, i, LIMITS) {
                Ok(owner) => {
                    assert!(p.progress(&name, owner, size - 1, i));
                    p.stopped(&name, owner, size - 1, i);
                    started += 1;
                }
                Err(e) => {
                    assert_eq!(
                        e,
                        Refused::SenderQuota {
                            used: 3 * (size - 1),
                            quota: 1 << 20
                        }
                    );
                    break;
                }
            }
        }
        assert_eq!(started, 3);
        assert_eq!(p.used_by(7), 3 * (size - 1));
        // Another sender is not held back by the first one's leftovers.
        assert!(p.begin("8-a", 8, size, 0, 50, LIMITS).is_ok());
    }

    #[test]
    fn the_relay_wide_cap_holds_across_senders() {
        let mut p = Partials::default();
        let owners: Vec<Owner> = (0..3)
            .map(|s| {
                p.begin(&format!("{s}-x"), s, 1 << 20, 0, 0, LIMITS)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            p.begin("9-x", 9, 1, 0, 0, LIMITS).map(|_| ()),
            Err(Refused::Cap(Shortage::Partials {
                used: 3 << 20,
                cap: 3 << 20
            }))
        );
        // Running uploads count what they announced: all of it is promised to the disk.
        assert_eq!(p.promised(), 3 << 20);
        assert!(p.progress("0-x", owners[0], 1 << 19, 1));
        assert_eq!(p.promised(), (3 << 20) - (1 << 19));
        p.finished("0-x", owners[0]);
        assert!(p.begin("9-x", 9, 1, 0, 0, LIMITS).is_ok());
    }

    #[test]
    fn a_resume_replaces_its_own_entry_and_takes_over_a_stale_stream() {
        let mut p = Partials::default();
        let first = p.begin("1-a", 1, 900 << 10, 0, 0, LIMITS).unwrap();
        assert!(p.progress("1-a", first, 100 << 10, 1));
        // A resume on a new connection while the old stream still looks alive.
        let second = p.begin("1-a", 1, 900 << 10, 100 << 10, 2, LIMITS).unwrap();
        assert_eq!(p.used_by(1), 900 << 10, "counted once");
        assert!(
            !p.progress("1-a", first, 200 << 10, 3),
            "the old stream must stop"
        );
        p.stopped("1-a", first, 200 << 10, 4);
        p.finished("1-a", first);
        assert_eq!(p.promised(), 800 << 10, "the old stream changed nothing");
        p.stopped("1-a", second, 500 << 10, 5);
        // Resuming does not count the old leftovers on top of the new upload.
        let third = p.begin("1-a", 1, 900 << 10, 500 << 10, 6, LIMITS).unwrap();
        assert_eq!(p.used_by(1), 900 << 10);
        p.finished("1-a", third);
        assert_eq!((p.used(), p.used_by(1)), (0, 0));
    }

    #[test]
    fn stopped_uploads_expire_running_ones_do_not() {
        let mut p = Partials::default();
        p.restore("old", 0, 0, 1_000);
        p.begin("1-run", 1, 10, 0, 1_000, LIMITS).unwrap();
        let stop = p.begin("1-stop", 1, 10, 0, 1_000, LIMITS).unwrap();
        p.stopped("1-stop", stop, 5, 5_000);
        assert_eq!(p.used(), MIN_CHARGE + 10 + MIN_CHARGE);
        assert!(p.take_expired(1_999, 1_000).is_empty());
        assert_eq!(p.take_expired(5_999, 1_000), ["old"]);
        assert_eq!(p.used(), 10 + MIN_CHARGE);
        assert_eq!(p.take_expired(6_000, 1_000), ["1-stop"]);
        assert_eq!(p.used(), 10);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin {
            name: u8,
            sender: u8,
            size: u16,
            have: u16,
        },
        Progress {
            name: u8,
            stale: bool,
            have: u16,
        },
        Stop {
            name: u8,
            stale: bool,
            have: u16,
        },
        Finish {
            name: u8,
        },
        Expire {
            at: u16,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, 0..3u8, any::<u16>(), any::<u16>()).prop_map(|(name, sender, size, have)| {
                Op::Begin {
                    name,
                    sender,
                    size,
                    have,
                }
            }),
            (0..6u8, any::<bool>(), any::<u16>()).prop_map(|(name, stale, have)| Op::Progress {
                name,
                stale,
                have
            }),
            (0..6u8, any::<bool>(), any::<u16>()).prop_map(|(name, stale, have)| Op::Stop {
                name,
                stale,
                have
            }),
            (0..6u8).prop_map(|name| Op::Finish { name }),
            any::<u16>().prop_map(|at| Op::Expire { at }),
        ]
    }

    proptest::proptest! {
        /// Whatever the streams do (resumes that take over, stale owners reporting late,
        /// expiry), the running totals equal a recount, and within the limits.
        #[test]
        fn totals_always_match_a_recount(ops in proptest::collection::vec(op(), 0..100)) {
            let limits = Limits { per_sender: 100_000, total: 200_000 };
            let mut p = Partials::default();
            let mut owners: HashMap<String, Vec<Owner>> = HashMap::new();
            for (t, op) in ops.into_iter().enumerate() {
                let now = t as u64 * 100;
                // A stale report comes from the oldest owner, a fresh one from the newest.
                let pick = |owners: &HashMap<String, Vec<Owner>>, name: &str, stale: bool| {
                    owners.get(name).and_then(|o| if stale { o.first() } else { o.last() }).copied()
                };
                match op {
                    Op::Begin { name, sender, size, have } => {
                        let name = name.to_string();
                        let have = u64::from(have.min(size));
                        if let Ok(o) = p.begin(&name, sender.into(), size.into(), have, now, limits) {
                            owners.entry(name).or_default().push(o);
                        }
                    }
                    Op::Progress { name, stale, have } => {
                        let name = name.to_string();
                        if let Some(o) = pick(&owners, &name, stale) {
                            p.progress(&name, o, have.into(), now);
                        }
                    }
                    Op::Stop { name, stale, have } => {
                        let name = name.to_string();
                        if let Some(o) = pick(&owners, &name, stale) {
                            p.stopped(&name, o, have.into(), now);
                        }
                    }
                    Op::Finish { name } => {
                        let name = name.to_string();
                        if let Some(o) = pick(&owners, &name, false) {
                            p.finished(&name, o);
                        }
                    }
                    Op::Expire { at } => {
                        p.take_expired(now, at.into());
                    }
                }
                let total: u64 = p.entries.values().map(Entry::charge).sum();
                let promised: u64 = p.entries.values().map(Entry::promise).sum();
                proptest::prop_assert_eq!(p.used(), total);
                proptest::prop_assert_eq!(p.promised(), promised);
                for sender in 0..3u64 {
                    let mine: u64 = p.entries.values().filter(|e| e.sender == sender).map(Entry::charge).sum();
                    proptest::prop_assert_eq!(p.used_by(sender), mine);
                }
            }
        }
    }
}
