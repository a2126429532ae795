//! `ExecutorFacade`: the `ModelFacade` generators call, routing each alias through the executor.

use crate::executor::{ModelRequestExecutor, ModelRoute};
use crate::inference::{ChatOptions, ChatRequest};
use crate::model_facade::{ModelCallError, ModelCallErrorKind, ModelFacade, ModelReply};
use crate::provider::ProviderRequest;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use weir_contracts::RequestDomain;

/// Routes model aliases to providers; every call becomes admitted attempts via the executor.
pub struct ExecutorFacade {
    executor: Arc<ModelRequestExecutor>,
    routes: HashMap<String, ModelRoute>,
    attempts_per_call: u32,
}

impl ExecutorFacade {
    /// A facade over `executor` with one route per alias.
    pub fn new(executor: Arc<ModelRequestExecutor>, routes: HashMap<String, ModelRoute>) -> Self {
        Self {
            executor,
            routes,
            attempts_per_call: 1,
        }
    }

    /// The executor's `max_attempts`: a transient (non-rate-limit) failure comes back from the
    /// executor only after that many attempts, and is stamped so, so the scheduler does not
    /// multiply them by its own task retries (one retry budget per cell).
    pub fn with_attempts_per_call(mut self, attempts: u32) -> Self {
        self.attempts_per_call = attempts.max(1);
        self
    }

    async fn call(
        &self,
        alias: &str,
        domain: RequestDomain,
        input: &str,
        options: Option<&ChatOptions>,
    ) -> Result<crate::provider::ProviderResponse, ModelCallError> {
        let route = self
            .routes
            .get(alias)
            .ok_or_else(|| ModelCallError::unknown_alias(alias))?;
        let resource = route.endpoint.with_domain(domain);
        let mut request = ProviderRequest::new(route.endpoint.model_id.to_string(), domain, input);
        if let Some(options) = options {
            request = request.with_options(options.clone());
        }
        self.executor
            .execute(alias, route.provider.as_ref(), &resource, request)
            .await
            .map_err(|e| {
                if e.attempts == 0 && e.is_retryable() && !e.is_wait() {
                    let attempts = self.attempts_per_call;
                    e.with_attempts(attempts)
                } else {
                    e
                }
            })
    }
}

#[async_trait]
impl ModelFacade for ExecutorFacade {
    async fn chat_request(
        &self,
        alias: &str,
        request: &ChatRequest,
    ) -> Result<ModelReply, ModelCallError> {
        let response = self
            .call(
                alias,
                RequestDomain::Chat,
                &request.prompt,
                Some(&request.options),
            )
            .await?;
        match response.text {
            Some(text) => Ok(ModelReply::new(text)),
            None => Err(ModelCallError::new(
                alias,
                ModelCallErrorKind::MalformedResponse,
                "chat response has no text",
            )),
        }
    }

    async fn embed(&self, alias: &str, input: &str) -> Result<Vec<f32>, ModelCallError> {
        let response = self
            .call(alias, RequestDomain::Embedding, input, None)
            .await?;
        response.embedding.ok_or_else(|| {
            ModelCallError::new(
                alias,
                ModelCallErrorKind::MalformedResponse,
                "embedding response has no vector",
            )
        })
    }
}
