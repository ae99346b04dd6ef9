//! What every socket scenario reports: latency histograms (HDR, microseconds) summarized
//! as p50/p90/p99/p99.9/max, a flat map of named figures for `--json`, and the
//! `--assert 'p99_ms<=60,errors==0'` checks that turn a run into a pass/fail exit code.

use std::fmt::Write as _;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{Map, Value};

/// A latency histogram in microseconds (1 us to 10 min, 3 significant digits).
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    #[expect(clippy::expect_used, reason = "constant bounds: low >= 1, high >= 2 * low, 3 digits")]
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid constant bounds"))
    }
}

impl Latency {
    /// Records one value in microseconds (clamped into range).
    pub fn record_us(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, 600_000_000));
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Self) {
        let _ = self.0.add(&other.0);
    }

    /// Values recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// Quantile `q` (0 to 1) in milliseconds.
    #[must_use]
    pub fn ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// Adds `<prefix>p50_ms`, `p90_ms`, `p99_ms`, `p999_ms`, `max_ms` to `out`.
    pub fn put(&self, out: &mut Map<String, Value>, prefix: &str) {
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)]
        {
            out.insert(format!("{prefix}{name}_ms"), Value::from(round(self.ms(q))));
        }
    }

    /// `p50 / p90 / p99 / p99.9 / max` in ms, for the human summary.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "p50 {:.1} / p90 {:.1} / p99 {:.1} / p99.9 {:.1} / max {:.1} ms",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.ms(1.0)
        )
    }
}

/// CPU of this process and of the server over a run, and the server's RSS at its end.
#[derive(Debug, Clone, Copy)]
pub struct CpuWatch {
    server_pid: Option<u32>,
    own0: crate::procfs::Usage,
    server0: crate::procfs::Usage,
    started: std::time::Instant,
}

impl CpuWatch {
    /// Starts watching (the server too, when its pid is known).
    #[must_use]
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            server_pid,
            own0: crate::procfs::usage("self"),
            server0: server_pid
                .map_or_else(Default::default, |pid| crate::procfs::usage(&pid.to_string())),
            started: std::time::Instant::now(),
        }
    }

    /// Adds `bot_cpu_pct` (with its user/system split and context switches per second),
    /// and the same for the server with `server_rss_mib` when watching it.
    pub fn put(&self, out: &mut Map<String, Value>) {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        put_usage(out, "bot", self.own0, crate::procfs::usage("self"), wall);
        if let Some(pid) = self.server_pid {
            put_usage(out, "server", self.server0, crate::procfs::usage(&pid.to_string()), wall);
            let rss = crate::procfs::pid_rss_bytes(pid) as f64 / 1_048_576.0;
            out.insert("server_rss_mib".into(), Value::from(round(rss)));
        }
    }
}

/// `<who>_cpu_pct` (user + system), `<who>_user_pct`, `<who>_sys_pct` and
/// `<who>_ctx_switches_s` between two readings.
fn put_usage(
    out: &mut Map<String, Value>,
    who: &str,
    before: crate::procfs::Usage,
    after: crate::procfs::Usage,
    wall: f64,
) {
    let user = (after.user_secs - before.user_secs) / wall * 100.0;
    let system = (after.system_secs - before.system_secs) / wall * 100.0;
    let switches = after.context_switches.saturating_sub(before.context_switches) as f64 / wall;
    out.insert(format!("{who}_cpu_pct"), Value::from(round(user + system)));
    out.insert(format!("{who}_user_pct"), Value::from(round(user)));
    out.insert(format!("{who}_sys_pct"), Value::from(round(system)));
    out.insert(format!("{who}_ctx_switches_s"), Value::from(round(switches)));
}

/// Host and port of a `http://host:port` URL (the port must be explicit: the other
/// ports of the server are counted from it).
///
/// # Errors
/// The URL has no port.
pub fn host_port(base: &str) -> anyhow::Result<(String, u16)> {
    let rest = base.trim_start_matches("http://").trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').context("--url needs an explicit port")?;
    let port = port.parse().context("--url needs an explicit port")?;
    Ok((host.to_owned(), port))
}

/// Three decimals.
#[must_use]
pub fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Checks `spec` (`key<=v,key==v,key>=v,key<v,key>v`, comma separated) against `figures`.
///
/// # Errors
/// Every failed or malformed condition, one line each.
pub fn check(figures: &Map<String, Value>, spec: &str) -> Result<(), Vec<String>> {
    let mut failed = Vec::new();
    for cond in spec.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some((key, op, want)) = ["<=", ">=", "==", "<", ">"].iter().find_map(|op| {
            let (k, v) = cond.split_once(op)?;
            Some((k.trim(), *op, v.trim()))
        }) else {
            failed.push(format!("{cond}: not a condition (use key<=v, key==v, …)"));
            continue;
        };
        let Ok(want) = want.parse::<f64>() else {
            failed.push(format!("{cond}: {want:?} is not a number"));
            continue;
        };
        let Some(got) = figures.get(key).and_then(Value::as_f64) else {
            failed.push(format!("{cond}: no figure named {key}"));
            continue;
        };
        let ok = match op {
            "<=" => got <= want,
            ">=" => got >= want,
            "==" => (got - want).abs() < 1e-9,
            "<" => got < want,
            _ => got > want,
        };
        if !ok {
            failed.push(format!("{cond}: got {got}"));
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(failed) }
}

/// `key=value` pairs on one line, in insertion order.
#[must_use]
pub fn summary_line(scenario: &str, figures: &Map<String, Value>) -> String {
    let mut out = scenario.to_owned();
    for (k, v) in figures {
        let _ = write!(out, " {k}={v}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    /// Conditions pass and fail as written; unknown keys and bad syntax fail loudly.
    #[test]
    fn asserts() {
        let figures = json!({"p99_ms": 42.0, "errors": 0}).as_object().unwrap().clone();
        assert!(check(&figures, "p99_ms<=60, errors==0").is_ok());
        assert_eq!(check(&figures, "p99_ms<40").unwrap_err().len(), 1);
        assert_eq!(check(&figures, "nope<=1,errors=0").unwrap_err().len(), 2);
    }

    /// Quantiles come out in milliseconds.
    #[test]
    fn latency_quantiles() {
        let mut h = Latency::default();
        for us in 1..=1000 {
            h.record_us(us * 100);
        }
        assert!((h.ms(0.5) - 50.0).abs() < 0.5);
        assert!((h.ms(1.0) - 100.0).abs() < 0.5);
    }

    #[test]
    fn host_and_port_of_a_url() {
        assert_eq!(host_port("http://127.0.0.1:4600").unwrap(), ("127.0.0.1".into(), 4600));
        assert_eq!(host_port("http://localhost:80/").unwrap(), ("localhost".into(), 80));
        assert!(host_port("http://localhost").is_err());
        assert!(host_port("http://localhost:http").is_err());
    }
}
