//! `RuntimeCorrelationProvider`: the current task's `RuntimeCorrelation` on a tokio task-local.

use std::future::Future;
use std::sync::Arc;
use weir_contracts::RuntimeCorrelation;

tokio::task_local! {
    static CURRENT: Arc<RuntimeCorrelation>;
}

/// Set/current access to the runtime correlation of the running task.
///
/// The scheduler runs each task execution inside [`RuntimeCorrelationProvider::scope`]; code in
/// that task (e.g. the model request executor) reads it with [`RuntimeCorrelationProvider::current`].
/// A task-local does not flow into `tokio::spawn`ed children by itself: spawn them through
/// [`RuntimeCorrelationProvider::spawn_with_current`] (or wrap with [`RuntimeCorrelationProvider::carry`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RuntimeCorrelationProvider;

impl RuntimeCorrelationProvider {
    /// The correlation of the running task, if any.
    pub fn current() -> Option<Arc<RuntimeCorrelation>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// Runs `fut` with `correlation` as the current correlation (reset when it completes or is dropped).
    pub async fn scope<F: Future>(correlation: Arc<RuntimeCorrelation>, fut: F) -> F::Output {
        CURRENT.scope(correlation, fut).await
    }

    /// Runs a synchronous closure with `correlation` current.
    pub fn sync_scope<R>(correlation: Arc<RuntimeCorrelation>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(correlation, f)
    }

    /// Wraps `fut` so it runs under the caller's current correlation (if any), wherever it is polled.
    pub fn carry<F>(fut: F) -> impl Future<Output = F::Output>
    where
        F: Future,
    {
        let current = Self::current();
        async move {
            match current {
                Some(c) => CURRENT.scope(c, fut).await,
                None => fut.await,
            }
        }
    }

    /// `tokio::spawn` that carries the current correlation into the child task.
    pub fn spawn_with_current<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(Self::carry(fut))
    }
}
