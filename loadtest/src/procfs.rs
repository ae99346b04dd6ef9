//! Process figures from Linux `/proc`: resident memory and CPU time, per process and per
//! named thread. Elsewhere they read as zero and the report says so.

use std::fs;

/// `/proc` times are in USER_HZ, which Linux fixes at 100 for user space.
const USER_HZ: f64 = 100.0;

/// Resident set size of this process in bytes (0 if unknown).
#[must_use]
pub fn rss_bytes() -> u64 {
    let Ok(statm) = fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// User + system CPU seconds of the whole process.
#[must_use]
pub fn process_cpu_secs() -> f64 {
    fs::read_to_string("/proc/self/stat").map_or(0.0, |s| cpu_of_stat(&s).1)
}

/// User + system CPU seconds of this process's threads whose name starts with `prefix`.
#[must_use]
pub fn threads_cpu_secs(prefix: &str) -> f64 {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| cpu_of_stat(&stat))
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, secs)| secs)
        .sum()
}

/// (thread name, user + system seconds) from one `stat` line.
fn cpu_of_stat(stat: &str) -> (String, f64) {
    let (name, user, system) = split_of_stat(stat);
    (name, user + system)
}

/// (thread name, user seconds, system seconds) from one `stat` line.
fn split_of_stat(stat: &str) -> (String, f64, f64) {
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return (String::new(), 0.0, 0.0);
    };
    let name = stat[open + 1..close].to_owned();
    // Fields after the name: state is field 3; utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (name, field(14) / USER_HZ, field(15) / USER_HZ)
}

/// What a process has used so far: CPU seconds in user and kernel mode, and context
/// switches (voluntary and not) summed over its live threads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds in user mode.
    pub user_secs: f64,
    /// CPU seconds in the kernel.
    pub system_secs: f64,
    /// Context switches of the process's threads (a thread that has exited is not
    /// counted, which a run's long-lived threads make negligible).
    pub context_switches: u64,
}

/// [`Usage`] of process `pid` (`"self"` for this one); zeros where `/proc` is missing.
#[must_use]
pub fn usage(pid: &str) -> Usage {
    let (_, user_secs, system_secs) = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or((String::new(), 0.0, 0.0), |s| split_of_stat(&s));
    let context_switches = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| fs::read_to_string(task.path().join("status")).ok())
                .map(|status| switches_of_status(&status))
                .sum()
        })
        .unwrap_or(0);
    Usage { user_secs, system_secs, context_switches }
}

/// Voluntary plus involuntary context switches from one `status` file.
fn switches_of_status(status: &str) -> u64 {
    status
        .lines()
        .filter(|line| {
            line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
        })
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Resident set size of process `pid` in bytes (0 if unknown).
#[must_use]
pub fn pid_rss_bytes(pid: u32) -> u64 {
    let Ok(statm) = fs::read_to_string(format!("/proc/{pid}/statm")) else {
        return 0;
    };
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line with spaces and parentheses in the name parses to the right fields.
    #[test]
    fn parses_stat_line() {
        let line = "42 (pylon-tick-0 (x)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        let (name, secs) = cpu_of_stat(line);
        assert_eq!(name, "pylon-tick-0 (x)");
        assert!((secs - 3.0).abs() < 1e-9);
    }

    /// Both kinds of context switch are summed; other lines are ignored.
    #[test]
    fn parses_status_switches() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches_of_status(status), 127);
    }

    /// This process's usage grows with work and it has switched context at least once.
    #[test]
    fn own_usage_is_read() {
        let before = usage("self");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        std::thread::yield_now();
        let after = usage("self");
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(after.user_secs + after.system_secs >= before.user_secs + before.system_secs);
            assert!(after.context_switches >= 1, "{after:?}");
        }
    }

    /// This process has a resident size on Linux.
    #[test]
    fn rss_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 0);
        }
    }
}
