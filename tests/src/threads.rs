//! CPU time per thread of a process, from `/proc/<pid>/task/*/stat`: where a daemon's CPU
//! goes, by thread name, for the figures the measurement tests print.

use std::collections::BTreeMap;
use std::time::Duration;

/// CPU time (user + system) of each live thread of `pid`, by thread id: its name
/// (`comm`) and time so far.
pub fn thread_times(pid: u32) -> BTreeMap<u32, (String, Duration)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    tasks
        .flatten()
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // `tid (comm) state …`: utime and stime are fields 14 and 15; the name may
            // hold spaces and parentheses, so split at the last `)`.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = [11, 12]
                .iter()
                .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
                .sum();
            Some((tid, (name, Duration::from_micros(ticks * 1_000_000 / hz))))
        })
        .collect()
}

/// The CPU each thread name used between two [`thread_times`] snapshots, as a share of
/// one core over `wall`, largest first (threads of one name added up; a thread that
/// started in between counts from zero, one that ended is missed).
pub fn shares(
    before: &BTreeMap<u32, (String, Duration)>,
    after: &BTreeMap<u32, (String, Duration)>,
    wall: Duration,
) -> Vec<(String, f64)> {
    let mut by_name: BTreeMap<String, Duration> = BTreeMap::new();
    for (tid, (name, time)) in after {
        let start = before.get(tid).map_or(Duration::ZERO, |(_, t)| *t);
        *by_name.entry(name.clone()).or_default() += time.saturating_sub(start);
    }
    let mut out: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(n, t)| (n, 100.0 * t.as_secs_f64() / wall.as_secs_f64().max(1e-9)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}
