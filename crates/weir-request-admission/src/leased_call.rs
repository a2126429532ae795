//! Running one call under a request lease: acquire, call, classify, release — in one place, so
//! a caller cannot forget the release or release a success as `local_cancelled`.

use crate::controller::AdaptiveRequestAdmissionController;
use crate::lease::{RequestAdmissionError, RequestAdmissionItem};
use std::fmt;
use std::future::Future;
use weir_contracts::{RequestReleaseOutcome, RequestReleaseOutcomeKind};

/// How a call's failure maps to the outcome its request lease is released with.
///
/// Implement it for your client's error type; a success is always released as `success`.
/// Return `rate_limited` only for provider pressure (HTTP 429, a saturated server's 503):
/// it is the one outcome that lowers the adaptive limit.
pub trait ClassifyRelease {
    /// The outcome to release the lease with when the call failed with `self`.
    fn release_outcome(&self) -> RequestReleaseOutcome;
}

impl ClassifyRelease for RequestReleaseOutcome {
    fn release_outcome(&self) -> RequestReleaseOutcome {
        self.clone()
    }
}

/// Why [`AdaptiveRequestAdmissionController::call`] returned no result of the call.
#[derive(Debug)]
pub enum LeasedCallError<E> {
    /// Admission refused or timed out; the call was never made.
    Admission(RequestAdmissionError),
    /// The call ran under the lease and failed; the lease was released with its
    /// classified outcome.
    Call(E),
}

impl<E: fmt::Display> fmt::Display for LeasedCallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admission(e) => write!(f, "request admission: {e}"),
            Self::Call(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for LeasedCallError<E> {}

impl AdaptiveRequestAdmissionController {
    /// Acquires a lease for `item`, runs `call` under it and releases the lease exactly once:
    /// `success` when the call returns `Ok`, the error's [`ClassifyRelease`] outcome when it
    /// returns `Err`. Dropping the returned future mid-call releases the lease as
    /// `local_cancelled` (its drop guard), so cancellation never leaks it.
    pub async fn call<T, E, F, Fut>(
        &self,
        item: RequestAdmissionItem,
        call: F,
    ) -> Result<T, LeasedCallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: ClassifyRelease,
    {
        let lease = self
            .acquire(item)
            .await
            .map_err(LeasedCallError::Admission)?;
        let result = call().await;
        let outcome = match &result {
            Ok(_) => RequestReleaseOutcome::of(RequestReleaseOutcomeKind::Success),
            Err(e) => e.release_outcome(),
        };
        self.release(lease, outcome);
        result.map_err(LeasedCallError::Call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RequestAdmissionConfig;
    use weir_contracts::{ReleaseReason, RequestDomain, RequestResourceKey};

    #[tokio::test(start_paused = true)]
    async fn a_call_dropped_mid_flight_releases_its_lease_as_cancelled() {
        let c = AdaptiveRequestAdmissionController::new(RequestAdmissionConfig::default())
            .expect("valid config");
        c.register("p", "m", "a", 2).expect("register");
        let chat = RequestResourceKey::new("p", "m", RequestDomain::Chat).expect("key");
        let call = c.call(RequestAdmissionItem::new(chat.clone()), || async {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            Ok::<(), RequestReleaseOutcome>(())
        });
        // Poll until the call holds its lease, then drop it mid-call.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), call).await;
        let snap = c.pressure().snapshot(&chat).expect("used");
        assert_eq!((snap.in_flight_count, snap.active_lease_count), (0, 0));
        assert_eq!(
            snap.last_outcome,
            Some(RequestReleaseOutcomeKind::LocalCancelled)
        );
        assert!(c
            .pressure()
            .release_diagnostics()
            .iter()
            .all(|(r, n)| *r == ReleaseReason::Released || *n == 0));
        // A classified failure is released with the error's outcome, not as a success.
        let failed = c
            .call(RequestAdmissionItem::new(chat.clone()), || async {
                Err::<(), _>(RequestReleaseOutcome::rate_limited(Some(1.0)))
            })
            .await;
        assert!(matches!(failed, Err(LeasedCallError::Call(_))));
        let snap = c.pressure().snapshot(&chat).expect("used");
        assert_eq!(
            snap.last_outcome,
            Some(RequestReleaseOutcomeKind::RateLimited)
        );
        c.shutdown();
    }
}
