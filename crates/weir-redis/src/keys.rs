//! Key names: `weir:{SCOPE|PROVIDER|MODEL}:leases|meta|released|workers|waiting`.
//!
//! The braces are a Redis Cluster hash tag: one endpoint's three keys hash to one slot, so each
//! script's keys are co-located. Different endpoints (and scopes) spread over slots.

use weir_contracts::ProviderModelKey;

/// One endpoint's keys in one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointKeys {
    /// Sorted set of held leases (member `worker:lease`, score = expiry, server µs).
    pub leases: String,
    /// Hash: learned cap, hold, successes, cooldown-until, observed budgets, GCRA state.
    pub meta: String,
    /// Sorted set of members released within the last lease TTL.
    pub released: String,
    /// Sorted set of workers seen (id → expiry), for the fair share.
    pub workers: String,
    /// Sorted set of workers waiting for a slot (id → expiry), for the fair share.
    pub waiting: String,
}

impl EndpointKeys {
    /// The keys of `endpoint` in `scope`. `{` and `}` in names are replaced so a name cannot
    /// break the hash tag.
    pub fn new(scope: &str, endpoint: &ProviderModelKey) -> Self {
        let clean = |s: &str| s.replace(['{', '}'], "_");
        let tag = format!(
            "{}|{}|{}",
            clean(scope),
            clean(&endpoint.provider_name),
            clean(&endpoint.model_id)
        );
        Self {
            leases: format!("weir:{{{tag}}}:leases"),
            meta: format!("weir:{{{tag}}}:meta"),
            released: format!("weir:{{{tag}}}:released"),
            workers: format!("weir:{{{tag}}}:workers"),
            waiting: format!("weir:{{{tag}}}:waiting"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_endpoints_keys_share_one_hash_tag() {
        let e = ProviderModelKey::new("open{ai}", "gpt").expect("key");
        let k = EndpointKeys::new("job", &e);
        assert_eq!(k.leases, "weir:{job|open_ai_|gpt}:leases");
        assert_eq!(k.meta, "weir:{job|open_ai_|gpt}:meta");
        assert_eq!(k.released, "weir:{job|open_ai_|gpt}:released");
    }
}
