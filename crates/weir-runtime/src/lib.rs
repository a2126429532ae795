//! weir's engine: workflow model, readiness, AsyncTaskScheduler, ModelRequestExecutor, providers.
