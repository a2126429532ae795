//! Request and token budgets per limit scope: GCRA pacing beside the adaptive concurrency limit.
//!
//! A [`BudgetLedger`] keeps, per scope (a [`weir_contracts::ProviderModelKey`], never an alias),
//! up to four per-minute windows ([`BudgetKind`]): requests, tokens, input tokens, output
//! tokens. Each window's limit is configured ([`BudgetLimits`], the spec's `rate_limits`) and/or
//! learned from response headers ([`weir_contracts::RateLimitObservation`]); pacing uses
//! min(configured, learned), so a header can only tighten. A request
//! [`reserve`](BudgetLedger::reserve)s one request plus its estimated tokens
//! ([`BudgetDemand`]) and gets its own slot (GCRA virtual scheduling: FIFO, one timer per
//! waiter, no polling); it then [`ready`](BudgetReservation::ready)s, is sent, and
//! [`settle`](BudgetReservation::settle)s against the response's usage and headers. A window
//! 429 [`block`](BudgetLedger::block)s its window until the reset. The ledger never decides
//! concurrency: the executor reserves the budget first, then acquires a concurrency lease.
//!
//! ```
//! use std::time::Duration;
//! use weir_contracts::ProviderModelKey;
//! use weir_request_admission::{BudgetConfig, BudgetDemand, BudgetLedger, BudgetLimits};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
//! let ledger = BudgetLedger::new(BudgetConfig::default())?;
//! let scope = ProviderModelKey::new("openai", "gpt-x")?;
//! ledger.register(&scope, BudgetLimits::none().with_requests_per_minute(600))?;
//! let start = tokio::time::Instant::now();
//! for i in 0..3u32 {
//!     let mut r = ledger.reserve(&scope, BudgetDemand::new(10, 20));
//!     r.ready().await; // 600 per minute: one every 100 ms, in order
//!     assert_eq!(start.elapsed(), Duration::from_millis(100) * i);
//!     r.mark_used();
//!     r.settle(None, None);
//! }
//! assert_eq!(ledger.snapshot(&scope, tokio::time::Instant::now()).map(|s| s.outstanding), Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod charge;
mod ledger;
mod limits;
mod probe;
mod snapshot;
mod window;

pub use ledger::{BudgetLedger, BudgetReservation};
pub use limits::{BudgetConfig, BudgetConfigError, BudgetDemand, BudgetKind, BudgetLimits};
pub use snapshot::{BudgetScopeSnapshot, BudgetWindowSnapshot};
