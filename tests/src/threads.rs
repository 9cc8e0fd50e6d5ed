//! CPU time per thread of a process, from `/proc/<pid>/task/*`: where a daemon's CPU goes,
//! by thread name, for the figures the measurement tests and benches print.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// CPU time of each live thread of `pid`, by thread id: its name (`comm`, see [`per_call`])
/// and time on a CPU so far.
pub fn thread_times(pid: u32) -> BTreeMap<u32, (String, Duration)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let name = per_call(name.trim());
            let time = run_time(&t.path()).or_else(|| user_and_system(&t.path()))?;
            Some((tid, (name, time)))
        })
        .collect()
}

/// A thread's name with a call's id replaced by `call`, so that calls compare: the media
/// thread (`media-<id>`) and the device opener (`audio-open-<id>`, whose name the threads
/// an audio library starts from it inherit, such as libjack's).
fn per_call(name: &str) -> String {
    for prefix in ["media-", "audio-open-"] {
        if let Some(id) = name.strip_prefix(prefix)
            && !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
        {
            return format!("{prefix}call");
        }
    }
    name.to_owned()
}

/// The thread's time on a CPU from `schedstat`, in nanoseconds: `stat`'s 10 ms ticks
/// resolve only 0.2 points of a core over a 5 s window.
fn run_time(task: &Path) -> Option<Duration> {
    let schedstat = std::fs::read_to_string(task.join("schedstat")).ok()?;
    Some(Duration::from_nanos(
        schedstat.split_whitespace().next()?.parse().ok()?,
    ))
}

/// `utime + stime` from `stat` in a `/proc` directory of a process or a thread (for
/// kernels without `schedstat`, and for whole processes).
pub fn user_and_system(dir: &Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `tid (comm) state …`: utime and stime are fields 14 and 15; the name may hold spaces
    // and parentheses, so split at the last `)`.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
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

#[cfg(test)]
mod tests {
    use super::per_call;

    #[test]
    fn call_ids_in_thread_names_are_folded_and_other_names_kept() {
        assert_eq!(per_call("media-100333431"), "media-call");
        assert_eq!(per_call("audio-open-1408"), "audio-open-call");
        assert_eq!(per_call("media-udp"), "media-udp");
        assert_eq!(per_call("smol-1"), "smol-1");
        assert_eq!(per_call("media-"), "media-");
    }
}
