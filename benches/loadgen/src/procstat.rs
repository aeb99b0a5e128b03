//! CPU time and memory of a process tree, read from /proc. A server such as nginx runs a
//! master and worker processes, so every figure sums the process and all its descendants.

use std::fs;

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Fields of /proc/PID/stat after the command name (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 2..];
    // Field 3 (state) is a letter; store 0 for it so indexes stay aligned with proc(5) - 3.
    Some(after_name.split(' ').map(|f| f.trim().parse().unwrap_or(0)).collect())
}

/// `pid` and all its living descendants.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(fields) = stat_fields(child) {
                parents.push((child, fields.get(1).copied().unwrap_or(0) as u32));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    // Bounded: each pass adds only processes not yet in the tree.
    while i < tree.len() && tree.len() <= parents.len() + 1 {
        let parent = tree[i];
        for &(child, ppid) in &parents {
            if ppid == parent && !tree.contains(&child) {
                tree.push(child);
            }
        }
        i += 1;
    }
    tree
}

/// CPU time (user + system, including reaped children) of the given processes, in ns.
pub fn cpu_ns(pids: &[u32]) -> u64 {
    let tick_ns = 1_000_000_000 / clock_ticks_per_second();
    pids.iter()
        .filter_map(|&pid| stat_fields(pid))
        // utime, stime, cutime, cstime are fields 14..=17 of proc(5).
        .map(|f| f.get(11..15).map(|t| t.iter().sum::<u64>()).unwrap_or(0) * tick_ns)
        .sum()
}

fn status_kib(pid: u32, key: &str, file: &str) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/{file}")) else { return 0 };
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident set size summed over the processes, in bytes. Pages shared between nginx's
/// processes are counted once per process, as `ps` would; see `pss_bytes` for the other view.
pub fn rss_bytes(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| status_kib(p, "VmRSS:", "status") * 1024).sum()
}

/// Proportional set size summed over the processes: shared pages split between them.
pub fn pss_bytes(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| status_kib(p, "Pss:", "smaps_rollup") * 1024).sum()
}

/// Raises this process's open-file limit to its hard limit (one socket per subscriber).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(process_tree(me).contains(&me));
        assert!(rss_bytes(&[me]) > 0);
        let spin_until = monotonic_ns() + 30_000_000;
        while monotonic_ns() < spin_until {}
        assert!(cpu_ns(&[me]) > 0);
    }
}
