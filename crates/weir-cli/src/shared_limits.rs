//! `weir run --shared-limits redis://HOST:PORT[/DB]`: request limits shared with other weir
//! processes (issue 17) through `weir-redis`.
//!
//! Connecting happens before the output directory is touched; a store that cannot be reached
//! is a run failure, exit 3 (a URL that is not `redis://…`: exit 2), with a message naming the URL.
//! Every worker uses the key scope `default`, so every weir process on one Redis shares each
//! endpoint's limits (an endpoint's capacity is one, whichever job calls it). Mid-run losses
//! are the backend's business: it falls back to a quarter of the last known shared cap per
//! endpoint (`local_share`), emits `shared_limits_degraded` / `shared_limits_recovered`, and
//! the summary's `shared_limits` says what happened.

use crate::error::CliError;
use std::sync::Arc;
use weir_redis::{RedisSharedLimits, RedisSharedLimitsConfig};

/// Connects to the store at `url` on `runtime` (its renewal task runs there).
pub fn connect(
    runtime: &tokio::runtime::Runtime,
    url: &str,
) -> Result<Arc<RedisSharedLimits>, CliError> {
    if !url.starts_with("redis://") {
        return Err(CliError::invalid_input(format!(
            "--shared-limits {url:?}: expected redis://HOST:PORT[/DB]"
        )));
    }
    runtime
        .block_on(RedisSharedLimits::connect(
            url,
            RedisSharedLimitsConfig::default(),
        ))
        .map_err(|e| CliError::run_failed(e.to_string()))
}
