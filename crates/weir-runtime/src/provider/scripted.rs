//! `ScriptedProvider`: a test double answering each model's calls from a queue of scripted steps.

use super::error::{ProviderError, ProviderErrorKind};
use super::{ModelProvider, ProviderRequest, ProviderResponse};
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::sleep;

/// What a scripted call ends with.
// ProviderError grew with the rate-limit fields (0f9a83f); a test double's script is not a hot
// path, so boxing the result would only churn every script.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptedOutcome {
    /// Return this result.
    Respond(Result<ProviderResponse, ProviderError>),
    /// Never finish (until the call future is dropped): for cancellation tests.
    Hang,
}

/// One scripted call: wait `delay` (tokio time), then the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedStep {
    /// How long the call takes before its outcome.
    pub delay: Duration,
    /// The outcome.
    pub outcome: ScriptedOutcome,
}

impl ScriptedStep {
    /// Answers `response` immediately.
    pub fn ok(response: ProviderResponse) -> Self {
        Self {
            delay: Duration::ZERO,
            outcome: ScriptedOutcome::Respond(Ok(response)),
        }
    }

    /// Answers with text, status 200.
    pub fn text(text: impl Into<String>) -> Self {
        Self::ok(ProviderResponse::text(text))
    }

    /// Fails with `error` immediately.
    pub fn err(error: ProviderError) -> Self {
        Self {
            delay: Duration::ZERO,
            outcome: ScriptedOutcome::Respond(Err(error)),
        }
    }

    /// Never finishes.
    pub fn hang() -> Self {
        Self {
            delay: Duration::ZERO,
            outcome: ScriptedOutcome::Hang,
        }
    }

    /// The same step, taking `delay` first.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Per-model call counters of a scripted provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptedModelStats {
    /// Calls received.
    pub calls: u64,
    /// Calls in flight now.
    pub in_flight: u64,
    /// Highest in flight at once.
    pub max_in_flight: u64,
    /// Calls whose future was dropped before finishing.
    pub cancelled: u64,
}

/// A provider whose answers are scripted per model, consumed in call-arrival order.
///
/// When a model's queue is empty, the fallback step (if set) answers every further call;
/// otherwise the call fails with a `Malformed` error saying the script ran out.
#[derive(Debug)]
pub struct ScriptedProvider {
    name: String,
    state: Mutex<ScriptState>,
}

#[derive(Debug, Default)]
struct ScriptState {
    queues: BTreeMap<String, VecDeque<ScriptedStep>>,
    fallback: Option<ScriptedStep>,
    requests: Vec<ProviderRequest>,
    stats: BTreeMap<String, ScriptedModelStats>,
}

impl ScriptedProvider {
    /// An empty script under provider name `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::new(ScriptState::default()),
        }
    }

    /// Appends a step to `model_id`'s queue.
    pub fn push(&self, model_id: &str, step: ScriptedStep) -> &Self {
        lock(&self.state)
            .queues
            .entry(model_id.to_owned())
            .or_default()
            .push_back(step);
        self
    }

    /// Appends several steps to `model_id`'s queue.
    pub fn extend(&self, model_id: &str, steps: impl IntoIterator<Item = ScriptedStep>) -> &Self {
        lock(&self.state)
            .queues
            .entry(model_id.to_owned())
            .or_default()
            .extend(steps);
        self
    }

    /// Sets the step used by any model whose queue is empty.
    pub fn set_fallback(&self, step: ScriptedStep) -> &Self {
        lock(&self.state).fallback = Some(step);
        self
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<ProviderRequest> {
        lock(&self.state).requests.clone()
    }

    /// Steps still queued for `model_id`.
    pub fn remaining(&self, model_id: &str) -> usize {
        lock(&self.state)
            .queues
            .get(model_id)
            .map_or(0, VecDeque::len)
    }

    /// Counters of `model_id` (zero if it was never called).
    pub fn stats(&self, model_id: &str) -> ScriptedModelStats {
        lock(&self.state)
            .stats
            .get(model_id)
            .copied()
            .unwrap_or_default()
    }
}

#[async_trait]
impl ModelProvider for ScriptedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let model_id = request.model_id.clone();
        let step = {
            let mut state = lock(&self.state);
            state.requests.push(request);
            let step = match state
                .queues
                .get_mut(&model_id)
                .and_then(VecDeque::pop_front)
            {
                Some(step) => Some(step),
                None => state.fallback.clone(),
            };
            let stats = state.stats.entry(model_id.clone()).or_default();
            stats.calls += 1;
            stats.in_flight += 1;
            stats.max_in_flight = stats.max_in_flight.max(stats.in_flight);
            step
        };
        let mut guard = ScriptGuard {
            provider: self,
            model_id,
            finished: false,
        };
        let Some(step) = step else {
            guard.finished = true;
            return Err(ProviderError::new(
                ProviderErrorKind::Malformed,
                None,
                None,
                "scripted provider: no scripted result left for this model",
            ));
        };
        if !step.delay.is_zero() {
            sleep(step.delay).await;
        }
        match step.outcome {
            ScriptedOutcome::Respond(result) => {
                guard.finished = true;
                result
            }
            ScriptedOutcome::Hang => std::future::pending().await,
        }
    }
}

/// Gives back the in-flight count on every exit, counting a dropped future as cancelled.
struct ScriptGuard<'a> {
    provider: &'a ScriptedProvider,
    model_id: String,
    finished: bool,
}

impl Drop for ScriptGuard<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.provider.state);
        if let Some(stats) = state.stats.get_mut(&self.model_id) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
            if !self.finished {
                stats.cancelled += 1;
            }
        }
    }
}

/// Locks the script; it holds plain data, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
