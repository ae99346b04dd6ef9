//! Choosing a ticket's region from the latencies its client measured.

use std::time::Duration;

/// Default latency threshold of [`pick_region`]: a region farther than 80 ms is not chosen
/// from latencies.
pub const DEFAULT_LATENCY_THRESHOLD: Duration = Duration::from_millis(80);

/// The configured region with the lowest measured latency that is at most `threshold`
/// (ties: the lexically smaller name); `own` (the process's region) when no configured
/// region qualifies. Unknown regions, negative and non-finite latencies are ignored.
#[must_use]
pub fn pick_region<'a, L, C>(
    latencies: L,
    configured: C,
    own: &'a str,
    threshold: Duration,
) -> String
where
    L: IntoIterator<Item = (&'a str, f64)>,
    C: IntoIterator<Item = &'a str> + Clone,
{
    let limit = threshold.as_secs_f64() * 1000.0;
    let mut best: Option<(f64, &str)> = None;
    for (region, ms) in latencies {
        if !ms.is_finite() || ms < 0.0 || ms > limit {
            continue;
        }
        if !configured.clone().into_iter().any(|r| r == region) {
            continue;
        }
        let better =
            best.is_none_or(|(b_ms, b_region)| ms < b_ms || (ms == b_ms && region < b_region));
        if better {
            best = Some((ms, region));
        }
    }
    best.map_or(own, |(_, region)| region).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fastest configured region within the threshold wins; unknown regions, slow
    /// ones and garbage fall back to the process's own region.
    #[test]
    fn best_within_threshold_else_own() {
        let configured = ["eu", "us", "ap"];
        let t = DEFAULT_LATENCY_THRESHOLD;
        let pick = |lat: &[(&'static str, f64)]| {
            pick_region(lat.iter().copied(), configured.iter().copied(), "eu", t)
        };
        assert_eq!(pick(&[("eu", 60.0), ("us", 20.0), ("ap", 5.0)]), "ap");
        assert_eq!(pick(&[("us", 30.0), ("mars", 1.0)]), "us");
        assert_eq!(pick(&[("us", 120.0), ("ap", 81.0)]), "eu");
        assert_eq!(pick(&[("us", f64::NAN), ("ap", -3.0)]), "eu");
        assert_eq!(pick(&[("us", 40.0), ("ap", 40.0)]), "ap");
        assert_eq!(pick(&[]), "eu");
    }
}
