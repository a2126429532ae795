//! What a provider said about its request and token budgets on one response, and the tokens a
//! call used: plain data that provider adapters fill and request-admission budgets read.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One budget window as a response reported it (any part may be missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowObservation {
    /// The window's full size (`x-ratelimit-limit-*`, `anthropic-ratelimit-*-limit`).
    pub limit: Option<u64>,
    /// What is left in the current window (`x-ratelimit-remaining-*`).
    pub remaining: Option<u64>,
    /// Time until the window is full again (`x-ratelimit-reset-*`, relative to the response).
    pub reset_after: Option<Duration>,
}

impl WindowObservation {
    /// True when no part was reported.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_after.is_none()
    }
}

/// The budget windows one response reported (OpenAI, Anthropic and LiteLLM header forms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitObservation {
    /// Requests per window.
    pub requests: WindowObservation,
    /// Tokens per window (input + output together).
    pub tokens: WindowObservation,
    /// Input tokens per window, where the provider splits them (Anthropic).
    pub input_tokens: WindowObservation,
    /// Output tokens per window, where the provider splits them (Anthropic).
    pub output_tokens: WindowObservation,
}

impl RateLimitObservation {
    /// True when the response reported no window at all.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
            && self.tokens.is_empty()
            && self.input_tokens.is_empty()
            && self.output_tokens.is_empty()
    }
}

/// Tokens one call used, as the response's `usage` reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt (input) tokens.
    pub input_tokens: u64,
    /// Completion (output) tokens.
    pub output_tokens: u64,
}

impl TokenUsage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}
