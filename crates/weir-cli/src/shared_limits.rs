//! `weir run --shared-limits redis://HOST:PORT[/DB]`: request limits shared with other weir
//! processes (issue 17) through `weir-redis`.
//!
//! Connecting happens before the output directory is touched; a store that cannot be reached
//! is a run failure, exit 3 (a URL that is not `redis://…`: exit 2), with a message naming the URL.
//! Every worker uses the key scope `default`, so every weir process on one Redis shares each
//! endpoint's limits (an endpoint's capacity is one, whichever job calls it). Mid-run losses
//! are the backend's business: it keeps the leases it holds and, as `--shared-fallback` says,
//! admits locally up to a share of the last known shared cap per endpoint (`local:25`, the
//! default) or admits nothing new (`pause`) until the store returns; it emits
//! `shared_limits_degraded` / `shared_limits_recovered`, and the summary's `shared_limits`
//! and the report say what happened.

use crate::error::CliError;
use std::str::FromStr;
use std::sync::Arc;
use weir_redis::{RedisSharedLimits, RedisSharedLimitsConfig, SharedFallback};

/// `--shared-limits` (or `--coordinator`) with its `--shared-fallback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLimitsOptions {
    /// The store: `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// The flag that named it (`--shared-limits`, or `--coordinator`), for error messages.
    pub flag: &'static str,
    /// What a worker does while the store is unreachable.
    pub fallback: FallbackChoice,
}

/// `--shared-fallback`: `local[:PERCENT]` (default `local:25`) or `pause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackChoice {
    /// Admit locally up to PERCENT (1–100) of the endpoint's last known shared cap.
    LocalPercent(u8),
    /// Admit nothing new until the store returns.
    Pause,
}

impl Default for FallbackChoice {
    fn default() -> Self {
        Self::LocalPercent(25)
    }
}

impl FromStr for FallbackChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected `local[:PERCENT]` (PERCENT 1-100) or `pause`");
        match s.split_once(':') {
            None if s == "pause" => Ok(Self::Pause),
            None if s == "local" => Ok(Self::default()),
            Some(("local", p)) => match p.trim_end_matches('%').parse::<u8>() {
                Ok(n @ 1..=100) => Ok(Self::LocalPercent(n)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for FallbackChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalPercent(p) => write!(f, "local:{p}"),
            Self::Pause => f.write_str("pause"),
        }
    }
}

impl FallbackChoice {
    fn backend(self) -> SharedFallback {
        match self {
            Self::LocalPercent(p) => SharedFallback::LocalShare(f64::from(p) / 100.0),
            Self::Pause => SharedFallback::Pause,
        }
    }
}

/// Connects to the store `opts` names on `runtime` (its renewal task runs there).
pub fn connect(
    runtime: &tokio::runtime::Runtime,
    opts: &SharedLimitsOptions,
) -> Result<Arc<RedisSharedLimits>, CliError> {
    let url = opts.url.as_str();
    if !url.starts_with("redis://") {
        return Err(CliError::invalid_input(format!(
            "{} {url:?}: expected redis://HOST:PORT[/DB]",
            opts.flag
        )));
    }
    let config = RedisSharedLimitsConfig {
        fallback: opts.fallback.backend(),
        ..RedisSharedLimitsConfig::default()
    };
    runtime
        .block_on(RedisSharedLimits::connect(url, config))
        .map_err(|e| CliError::run_failed(format!("{}: {e}", opts.flag)))
}

#[cfg(test)]
mod tests {
    use super::FallbackChoice;

    #[test]
    fn fallback_choices_parse_and_refuse_what_they_do_not_name() {
        assert_eq!("pause".parse(), Ok(FallbackChoice::Pause));
        assert_eq!("local".parse(), Ok(FallbackChoice::LocalPercent(25)));
        assert_eq!("local:50".parse(), Ok(FallbackChoice::LocalPercent(50)));
        assert_eq!("local:100%".parse(), Ok(FallbackChoice::LocalPercent(100)));
        for bad in ["local:0", "local:101", "local:x", "stop", "", "pause:1"] {
            assert!(bad.parse::<FallbackChoice>().is_err(), "{bad}");
        }
        assert_eq!(FallbackChoice::LocalPercent(25).to_string(), "local:25");
    }
}
