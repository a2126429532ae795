//! weir's engine: the workflow model, readiness tracking, providers, and (with issue 5) the scheduler.

pub mod completion;
pub mod engine;
pub mod executor;
pub mod generators;
pub mod inference;
pub mod model_facade;
pub mod provider;
pub mod resolver;
pub mod scheduler;
pub mod seed;
pub mod template;
pub mod workflow;
