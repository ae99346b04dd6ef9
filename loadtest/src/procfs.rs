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
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return (String::new(), 0.0);
    };
    let name = stat[open + 1..close].to_owned();
    // Fields after the name: state is field 3; utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (name, (field(14) + field(15)) / USER_HZ)
}

/// User + system CPU seconds of process `pid` (another process, e.g. the server).
#[must_use]
pub fn pid_cpu_secs(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(0.0, |s| cpu_of_stat(&s).1)
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

    /// This process has a resident size on Linux.
    #[test]
    fn rss_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 0);
        }
    }
}
