//! Configuration from the environment. The only module in pylon that reads environment
//! variables (DESIGN.md section 6); everything else receives typed config.

use anyhow::{Context, bail};

/// Settings the binary understands so far.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PYLON_TICK_THREADS`: tick threads (default: available cores; 1 to 256).
    pub tick_threads: usize,
}

impl Config {
    /// Reads and validates the environment.
    ///
    /// # Errors
    /// One line naming the variable and what is wrong with it.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Config::from_env`] over any lookup (tests pass a map).
    ///
    /// # Errors
    /// One line naming the variable and what is wrong with it.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let tick_threads = match get("PYLON_TICK_THREADS") {
            None => pylon_tick::TickConfig::default().threads,
            Some(raw) => {
                let n: usize = raw.trim().parse().with_context(|| {
                    format!("PYLON_TICK_THREADS must be a whole number, got {raw:?}")
                })?;
                if !(1..=256).contains(&n) {
                    bail!("PYLON_TICK_THREADS must be between 1 and 256, got {n}");
                }
                n
            }
        };
        Ok(Self { tick_threads })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid thread count is taken, and bad ones are refused naming the variable.
    #[test]
    fn tick_threads() {
        let cfg = Config::from_lookup(|_| Some("3".into())).unwrap();
        assert_eq!(cfg.tick_threads, 3);
        for bad in ["0", "x", "1000"] {
            let err = Config::from_lookup(|_| Some(bad.into())).unwrap_err().to_string();
            assert!(err.contains("PYLON_TICK_THREADS"), "{err}");
        }
    }
}
