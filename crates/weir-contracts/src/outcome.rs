//! Outcomes and reasons: request release outcomes, release results, task and request denial reasons.

use crate::json::opt_finite_f64;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in plan order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The plan's snake_case string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value whose plan string is `name`, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// How a request lease ended; only `rate_limited` is provider pressure for the plan's AIMD.
    RequestReleaseOutcomeKind {
        /// The provider answered.
        Success => "success",
        /// HTTP 429 or equivalent.
        RateLimited => "rate_limited",
        /// A provider error after the attempt started.
        ProviderFailure => "provider_failure",
        /// A timeout after the outbound attempt started.
        ProviderTimeout => "provider_timeout",
        /// The caller was cancelled while holding the lease.
        LocalCancelled => "local_cancelled",
        /// A caller or controller deadline, not provider pressure.
        LocalTimeout => "local_timeout",
        /// Anything else (a bug or an unclassified error).
        UnexpectedException => "unexpected_exception",
    }
);

str_enum!(
    /// What a rate-limit answer says about its cause, when the provider says anything.
    ///
    /// Request admission treats only `concurrency` (and an unexplained 429 while the endpoint
    /// was serving at its limit) as "too many in flight"; a window 429 is a budget wait, not a
    /// reason to lower the concurrency limit.
    RateLimitSignal {
        /// Too many requests in flight (an explicit concurrency limit, or a saturated server's 503).
        Concurrency => "concurrency",
        /// A requests-per-interval window is exhausted (headers or body say so).
        RequestWindow => "request_window",
        /// A tokens-per-interval window is exhausted (headers or body say so).
        TokenWindow => "token_window",
    }
);

str_enum!(
    /// Result reason of a task or request lease release.
    ReleaseReason {
        /// Released now, exactly once.
        Released => "released",
        /// Already released before.
        Duplicate => "duplicate",
        /// The lease is older than anything the controller still remembers.
        StaleLease => "stale_lease",
        /// Issued by a different controller instance.
        WrongControllerGeneration => "wrong_controller_generation",
        /// Never issued by this controller.
        UnknownLease => "unknown_lease",
    }
);

str_enum!(
    /// Why task admission denied a candidate.
    TaskAdmissionDenyReason {
        /// A requested resource has no free units.
        NoCapacity => "no_capacity",
        /// The group is at its admitted cap while a peer waits.
        GroupCap => "group_cap",
        /// The group has borrow debt while an eligible peer waits.
        BorrowDebt => "borrow_debt",
        /// The controller is shutting down.
        Shutdown => "shutdown",
        /// Any other policy rule.
        PolicyDenial => "policy_denial",
    }
);

str_enum!(
    /// Why request admission denied (or stopped waiting for) an item.
    RequestAdmissionDenyReason {
        /// Static cap or adaptive limit reached.
        NoCapacity => "no_capacity",
        /// The resource is cooling down after a rate limit.
        Cooldown => "cooldown",
        /// The item's queue-wait deadline passed.
        QueueTimeout => "queue_timeout",
        /// An eligible waiter would be served first.
        QueuedWaitersAhead => "queued_waiters_ahead",
        /// The caller was cancelled while waiting.
        Cancellation => "cancellation",
        /// The controller is shut down.
        Shutdown => "shutdown",
        /// The item can never be admitted (e.g. unregistered resource).
        HardPolicyDenial => "hard_policy_denial",
    }
);

/// The classified outcome a request lease is released with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestReleaseOutcome {
    /// Outcome kind.
    pub kind: RequestReleaseOutcomeKind,
    /// Provider-supplied Retry-After, when rate limited.
    #[serde(with = "opt_finite_f64")]
    pub retry_after_seconds: Option<f64>,
    /// Provider status code, safe for telemetry.
    pub provider_status: Option<u16>,
    /// What the provider said about a rate limit's cause (`None`: nothing, or not rate limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_signal: Option<RateLimitSignal>,
    /// Sanitized diagnostics (never bodies, prompts or secrets).
    pub diagnostics: BTreeMap<String, Value>,
}

impl RequestReleaseOutcome {
    /// An outcome of `kind` with no extra fields.
    pub fn of(kind: RequestReleaseOutcomeKind) -> Self {
        Self {
            kind,
            retry_after_seconds: None,
            provider_status: None,
            rate_limit_signal: None,
            diagnostics: BTreeMap::new(),
        }
    }

    /// `success`.
    pub fn success() -> Self {
        Self::of(RequestReleaseOutcomeKind::Success)
    }

    /// `rate_limited`, with the provider's Retry-After when it sent one.
    pub fn rate_limited(retry_after_seconds: Option<f64>) -> Self {
        Self {
            retry_after_seconds,
            provider_status: Some(429),
            ..Self::of(RequestReleaseOutcomeKind::RateLimited)
        }
    }

    /// The same outcome with the provider's statement of a rate limit's cause.
    pub fn with_rate_limit_signal(mut self, signal: RateLimitSignal) -> Self {
        self.rate_limit_signal = Some(signal);
        self
    }

    /// `local_cancelled`.
    pub fn local_cancelled() -> Self {
        Self::of(RequestReleaseOutcomeKind::LocalCancelled)
    }
}

/// What a release call did. Never an error: terminal cleanup paths must not fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResult {
    /// True exactly when capacity was returned.
    pub released: bool,
    /// Why.
    pub reason: ReleaseReason,
    /// Sanitized diagnostics.
    pub diagnostics: ReleaseDiagnostics,
}

impl ReleaseResult {
    /// A successful release.
    pub fn released() -> Self {
        Self {
            released: true,
            reason: ReleaseReason::Released,
            diagnostics: ReleaseDiagnostics::default(),
        }
    }

    /// A rejected release (duplicate, stale, wrong generation, unknown); nothing changed.
    pub fn rejected(reason: ReleaseReason) -> Self {
        Self {
            released: reason == ReleaseReason::Released,
            reason,
            diagnostics: ReleaseDiagnostics::default(),
        }
    }
}

/// A release's sanitized diagnostics: a string map, serialized as a JSON object.
///
/// Only rejected releases carry entries, so the map is boxed and absent until the first insert:
/// a successful release's result is 16 bytes, returned in registers, and dropping it frees
/// nothing (an empty `BTreeMap` field made every release pay for a 32-byte return through memory
/// and an out-of-line drop on the dispatch path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
// The box is the point: it keeps the field one pointer wide (see above).
#[allow(clippy::box_collection)]
pub struct ReleaseDiagnostics(Option<Box<BTreeMap<String, String>>>);

impl ReleaseDiagnostics {
    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        self.0
            .get_or_insert_with(Default::default)
            .insert(key, value)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.as_ref()?.get(key)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().flat_map(|m| m.iter())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Serialize for ReleaseDiagnostics {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ReleaseDiagnostics {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        Ok(Self((!map.is_empty()).then(|| Box::new(map))))
    }
}
