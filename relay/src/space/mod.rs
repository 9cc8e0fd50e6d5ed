//! Disk space decisions, sans-IO: how much free space the relay keeps in reserve (on the
//! filesystem of its state dir, and inside the LMDB map), whether a new write fits above
//! that reserve, and when the relay counts as out of space. Sizes come in as inputs; the
//! probes that measure them live in `crate::upkeep` (the filesystem) and the store (the
//! map). [`partials`] owns the accounting of unfinished uploads, [`acks`] the retries of
//! acknowledgements the store could not apply.
//!
//! Why a reserve at all: deleting from LMDB writes pages too (copy-on-write), so a relay
//! that let messages fill the disk or the map could no longer forget delivered messages.
//! New messages and uploads stop at the reserve; deletes may use it.

pub mod acks;
pub mod partials;

use std::fmt;

const MIB: u64 = 1 << 20;

/// Free space kept on the state dir's filesystem when `min_free_space_mib` is not set:
/// 5 % of the filesystem, at most 1 GiB (a small disk keeps a proportionate share, a
/// large one does not lose tens of GiB).
pub fn default_disk_reserve(total_bytes: u64) -> u64 {
    (total_bytes / 20).min(1024 * MIB)
}

/// Room kept free inside the LMDB map for deletes: an eighth of the map, at least 2 MiB,
/// never more than half. Without it, a full 16 MiB map failed every delete of the
/// committer's batches (313 of 313, `MapFull`); with it, batches of up to 1 024 deletes
/// of 300-byte to 50 KB messages all commit (`store::heed::commit`'s test
/// `deletes_fit_in_the_map_reserve`).
pub fn map_reserve(map_size: u64) -> u64 {
    (map_size / 8).max(2 * MIB).min(map_size / 2)
}

/// Space on the filesystem that holds the state dir, as `statvfs` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// Why a write was refused, or why the relay counts as out of space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// The filesystem of the state dir is within its reserve.
    Disk { available: u64, reserve: u64 },
    /// The LMDB map is within its reserve (`map_size_mib`).
    Map { room: u64, reserve: u64 },
    /// Unfinished uploads take all the room `max_partial_mib` allows.
    Partials { used: u64, cap: u64 },
    /// Writes failed because the disk or the database was full, though the reserve was
    /// not reached when measured (another process filled the disk, or the reserve is 0).
    Writes { failed: u64 },
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shortage::Disk { available, reserve } => write!(
                f,
                "the disk has {} MiB free and keeps {} MiB in reserve (min_free_space_mib)",
                available / MIB,
                reserve / MIB
            ),
            Shortage::Map { room, reserve } => write!(
                f,
                "the database has {} MiB of room and keeps {} MiB in reserve (map_size_mib)",
                room / MIB,
                reserve / MIB
            ),
            Shortage::Writes { failed } => write!(
                f,
                "writes fail because the disk or the database is full, or the disk \
                 fails ({failed} since the last check)"
            ),
            Shortage::Partials { used, cap } => write!(
                f,
                "unfinished uploads take {} of {} MiB (max_partial_mib)",
                used / MIB,
                cap / MIB
            ),
        }
    }
}

/// Whether `want` more bytes fit on the disk above the reserve, with `promised` bytes
/// already promised to uploads in progress. `reserve` is `min_free_space_mib` if set,
/// else [`default_disk_reserve`].
pub fn check_disk(
    space: FsSpace,
    reserve: Option<u64>,
    promised: u64,
    want: u64,
) -> Result<(), Shortage> {
    let reserve = reserve.unwrap_or_else(|| default_disk_reserve(space.total));
    let free = space.available.saturating_sub(promised);
    if free < reserve.saturating_add(want) {
        return Err(Shortage::Disk {
            available: space.available,
            reserve,
        });
    }
    Ok(())
}

/// Whether a record of `want` bytes fits in an LMDB map of `map_size` bytes of which
/// `used` are in use, above [`map_reserve`].
pub fn check_map(map_size: u64, used: u64, want: u64) -> Result<(), Shortage> {
    let reserve = map_reserve(map_size);
    let room = map_size.saturating_sub(used);
    if room < reserve.saturating_add(want) {
        return Err(Shortage::Map { room, reserve });
    }
    Ok(())
}

/// How long the relay must have had room before it says it has recovered: writes that
/// fail on and off (a disk at the edge) make one pair of lines, not one per failure.
pub const RECOVER_AFTER_MS: u64 = 2_000;

/// What the relay tells its operator about space: one log line when it runs out and one
/// when it has had room again for [`RECOVER_AFTER_MS`], not one per refused write or per
/// measurement. While short, the reason may change (disk, database, failed writes)
/// without a new line; [`Health::short`] has the latest for the service status.
#[derive(Debug, Default)]
pub struct Health {
    short: Option<Shortage>,
    /// Since when the measurements have found room again, while still counted short.
    clear_since: Option<u64>,
}

/// A change [`Health::observe`] reports, for the log and the service status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Short(Shortage),
    Recovered,
}

impl Health {
    /// Takes the measurement at `now_ms` (monotonic): `Some` while short of space,
    /// `None` when there is room. Returns a change worth one log line.
    pub fn observe(&mut self, now_ms: u64, now: Option<Shortage>) -> Option<Change> {
        match (self.short, now) {
            (None, None) => None,
            (None, Some(s)) => {
                self.short = Some(s);
                Some(Change::Short(s))
            }
            (Some(_), Some(s)) => {
                self.short = Some(s);
                self.clear_since = None;
                None
            }
            (Some(_), None) => {
                let since = *self.clear_since.get_or_insert(now_ms);
                if now_ms.saturating_sub(since) < RECOVER_AFTER_MS {
                    return None;
                }
                self.short = None;
                self.clear_since = None;
                Some(Change::Recovered)
            }
        }
    }

    /// Why the relay is short of space right now, if it is.
    pub fn short(&self) -> Option<Shortage> {
        self.short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_default_disk_reserve_is_five_percent_up_to_one_gib() {
        assert_eq!(default_disk_reserve(10 * GIB), GIB / 2);
        assert_eq!(default_disk_reserve(20 * GIB), GIB);
        assert_eq!(default_disk_reserve(500 * GIB), GIB);
    }

    #[test]
    fn writes_stop_at_the_disk_reserve() {
        let space = FsSpace {
            available: 100 * MIB,
            total: 10 * GIB,
        };
        // 5 % of 10 GiB is 512 MiB: nothing fits.
        assert_eq!(
            check_disk(space, None, 0, 1),
            Err(Shortage::Disk {
                available: 100 * MIB,
                reserve: GIB / 2
            })
        );
        let reserve = Some(50 * MIB);
        assert!(check_disk(space, reserve, 0, 50 * MIB).is_ok());
        assert!(check_disk(space, reserve, 0, 50 * MIB + 1).is_err());
        // Bytes promised to running uploads are as good as written.
        assert!(check_disk(space, reserve, 10 * MIB, 40 * MIB).is_ok());
        assert!(check_disk(space, reserve, 10 * MIB, 41 * MIB).is_err());
        assert!(check_disk(space, reserve, 200 * MIB, 0).is_err());
    }

    #[test]
    fn the_map_keeps_an_eighth_free() {
        assert_eq!(map_reserve(1024 * MIB), 128 * MIB);
        assert_eq!(map_reserve(16 * MIB), 2 * MIB);
        assert_eq!(map_reserve(2 * MIB), MIB);
        assert!(check_map(16 * MIB, 13 * MIB, MIB).is_ok());
        assert_eq!(
            check_map(16 * MIB, 13 * MIB, MIB + 1),
            Err(Shortage::Map {
                room: 3 * MIB,
                reserve: 2 * MIB
            })
        );
    }

    #[test]
    fn health_reports_running_out_once_and_recovering_once() {
        let mut h = Health::default();
        assert_eq!(h.observe(0, None), None);
        let disk = |available| Shortage::Disk {
            available,
            reserve: MIB,
        };
        assert_eq!(h.observe(0, Some(disk(0))), Some(Change::Short(disk(0))));
        // The free space moves, the reason changes: no new line, the latest is kept.
        for t in 1..100 {
            assert_eq!(h.observe(t, Some(disk(t))), None);
        }
        let writes = Shortage::Writes { failed: 3 };
        assert_eq!(h.observe(100, Some(writes)), None);
        assert_eq!(h.short(), Some(writes));
        // Room on and off: still short until it has lasted.
        assert_eq!(h.observe(200, None), None);
        assert_eq!(h.observe(200 + RECOVER_AFTER_MS - 1, Some(writes)), None);
        assert_eq!(h.observe(300 + RECOVER_AFTER_MS, None), None);
        assert_eq!(
            h.observe(300 + 2 * RECOVER_AFTER_MS, None),
            Some(Change::Recovered)
        );
        assert_eq!(h.short(), None);
        assert_eq!(h.observe(400 + 2 * RECOVER_AFTER_MS, None), None);
    }
}
