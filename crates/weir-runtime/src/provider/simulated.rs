//! `SimulatedProvider`: the embedded default provider — hidden capacity, rpm, faults, latency.
//!
//! Each model hides a concurrency capacity C (optionally changing over time) and an optional
//! requests-per-minute limit. A call over either limit gets a fast 429; a served call sleeps a
//! sampled latency and answers with text derived only from the prompt. Only tokio's clock is
//! used, so the provider runs under `tokio::time::pause()` exactly as in real time.

use super::error::ProviderError;
use super::latency::{ms_to_duration, LatencySampler};
use super::simulated_config::{validate_all, SimulatedConfigError, SimulatedModelConfig};
use super::{ModelProvider, ProviderRequest, ProviderResponse};
use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::{sleep, Instant};
use weir_contracts::{Fnv64, RequestDomain};

/// How long a rejected (429) call takes: small, but non-zero so a caller that retries
/// immediately still lets paused time advance.
pub const RATE_LIMIT_LATENCY: Duration = Duration::from_millis(1);

/// Wait of an injected timeout when the request has no timeout of its own.
pub const DEFAULT_INJECTED_TIMEOUT: Duration = Duration::from_secs(30);

/// The sliding window of the requests-per-minute limit.
pub const RPM_WINDOW: Duration = Duration::from_secs(60);

/// Dimension of simulated embeddings.
pub const EMBEDDING_DIM: usize = 8;

const WORDS: [&str; 16] = [
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "granite", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "meadow", "nectar", "onyx", "prism",
];

/// Live counters of one simulated model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SimulatedModelStats {
    /// Every call that reached the model (served or rejected).
    pub calls: u64,
    /// Calls answered successfully.
    pub succeeded: u64,
    /// Calls rejected with 429 (capacity or rpm).
    pub rate_limited: u64,
    /// Calls failed with an injected 5xx.
    pub server_errors: u64,
    /// Calls that timed out (injected, or latency beyond the request's timeout).
    pub timeouts: u64,
    /// Served calls whose future was dropped before they finished.
    pub cancelled: u64,
    /// Highest number of served calls in flight at once.
    pub max_in_flight: u64,
    /// Served calls in flight now.
    pub in_flight: u64,
}

/// The embedded default provider: a set of simulated models behind one provider name.
#[derive(Debug)]
pub struct SimulatedProvider {
    name: String,
    started_at: Instant,
    models: BTreeMap<String, SimulatedModel>,
}

#[derive(Debug)]
struct SimulatedModel {
    config: SimulatedModelConfig,
    sampler: LatencySampler,
    state: Mutex<ModelState>,
}

#[derive(Debug)]
struct ModelState {
    rng: ChaCha8Rng,
    /// Start instants of admitted calls inside the rpm window (only kept when rpm is set).
    window: VecDeque<Instant>,
    stats: SimulatedModelStats,
}

/// What the model decided for one arriving call (decided under the lock, acted on after).
enum Decision {
    Reject(Option<Duration>),
    Serve(Served),
}

enum Served {
    Answer(Duration),
    ServerError(Duration),
    /// Fails with a timeout after waiting this long.
    Timeout(Duration),
}

#[derive(Clone, Copy)]
enum Finish {
    Succeeded,
    ServerError,
    Timeout,
}

impl SimulatedProvider {
    /// A provider named `name` serving `models`; one `seed` drives all latency and fault draws.
    ///
    /// The capacity schedule is measured from this call (`tokio::time::Instant::now()`), so
    /// build the provider inside the runtime (and after `pause()` in tests).
    pub fn new(
        name: impl Into<String>,
        seed: u64,
        models: Vec<SimulatedModelConfig>,
    ) -> Result<Self, SimulatedConfigError> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(SimulatedConfigError::new("name", "must be non-empty"));
        }
        validate_all(&models)?;
        let mut built = BTreeMap::new();
        for (i, config) in models.into_iter().enumerate() {
            let sampler = LatencySampler::new(&config.latency_ms, "latency_ms")
                .map_err(|e| e.within(&format!("models[{i}]")))?;
            // One seed per provider; each model reads its own ChaCha stream so one model's
            // traffic never shifts another model's draws.
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(fnv(config.model_id.as_bytes()));
            let state = Mutex::new(ModelState {
                rng,
                window: VecDeque::new(),
                stats: SimulatedModelStats::default(),
            });
            built.insert(
                config.model_id.clone(),
                SimulatedModel {
                    config,
                    sampler,
                    state,
                },
            );
        }
        Ok(Self {
            name,
            started_at: Instant::now(),
            models: built,
        })
    }

    /// A provider named `"simulated"` with one model.
    pub fn single(config: SimulatedModelConfig, seed: u64) -> Result<Self, SimulatedConfigError> {
        Self::new("simulated", seed, vec![config])
    }

    /// When the capacity schedule's clock started.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The model ids served, sorted.
    pub fn model_ids(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// The config of `model_id`.
    pub fn config(&self, model_id: &str) -> Option<&SimulatedModelConfig> {
        self.models.get(model_id).map(|m| &m.config)
    }

    /// The hidden capacity of `model_id` right now.
    pub fn capacity_now(&self, model_id: &str) -> Option<u32> {
        let model = self.models.get(model_id)?;
        Some(model.config.capacity_at(self.started_at.elapsed()))
    }

    /// A copy of the live counters of `model_id`.
    pub fn stats(&self, model_id: &str) -> Option<SimulatedModelStats> {
        self.models.get(model_id).map(|m| lock(&m.state).stats)
    }

    /// Counters of every model, by model id.
    pub fn all_stats(&self) -> BTreeMap<String, SimulatedModelStats> {
        self.models
            .iter()
            .map(|(id, m)| (id.clone(), lock(&m.state).stats))
            .collect()
    }

    /// Decides an arriving call under the model lock: capacity, then rpm, then fault/latency draws.
    fn decide(&self, model: &SimulatedModel, request_timeout: Option<Duration>) -> Decision {
        let now = Instant::now();
        let capacity = u64::from(
            model
                .config
                .capacity_at(now.saturating_duration_since(self.started_at)),
        );
        let mut state = lock(&model.state);
        state.stats.calls += 1;
        if state.stats.in_flight >= capacity {
            state.stats.rate_limited += 1;
            let retry_after = model
                .config
                .retry_after_s
                .and_then(|s| Duration::try_from_secs_f64(s).ok());
            return Decision::Reject(retry_after);
        }
        if let Some(rpm) = model.config.rpm {
            while state
                .window
                .front()
                .is_some_and(|start| now.saturating_duration_since(*start) >= RPM_WINDOW)
            {
                state.window.pop_front();
            }
            if state.window.len() >= rpm as usize {
                state.stats.rate_limited += 1;
                // The oldest call leaves the window at front + 60 s: that is the next free slot.
                let next_free = state.window.front().map_or(Duration::ZERO, |oldest| {
                    (*oldest + RPM_WINDOW).saturating_duration_since(now)
                });
                return Decision::Reject(Some(next_free));
            }
            state.window.push_back(now);
        }
        state.stats.in_flight += 1;
        state.stats.max_in_flight = state.stats.max_in_flight.max(state.stats.in_flight);
        let draw: f64 = state.rng.gen();
        let latency = model.sampler.sample(&mut state.rng);
        drop(state);

        let config = &model.config;
        if draw < config.error_rate {
            Decision::Serve(Served::ServerError(latency))
        } else if draw < config.error_rate + config.timeout_rate {
            Decision::Serve(Served::Timeout(injected_timeout_wait(
                config,
                request_timeout,
            )))
        } else {
            match request_timeout {
                Some(limit) if latency > limit => Decision::Serve(Served::Timeout(limit)),
                _ => Decision::Serve(Served::Answer(latency)),
            }
        }
    }
}

#[async_trait]
impl ModelProvider for SimulatedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let Some(model) = self.models.get(&request.model_id) else {
            return Err(ProviderError::client(404, "unknown model"));
        };
        let served = match self.decide(model, request.timeout) {
            Decision::Reject(retry_after) => {
                sleep(RATE_LIMIT_LATENCY).await;
                return Err(ProviderError::rate_limited(retry_after));
            }
            Decision::Serve(served) => served,
        };
        // Created before the first await: a dropped call future always gives its slot back.
        let guard = InFlightGuard {
            model,
            finish: None,
        };
        match served {
            Served::Answer(latency) => {
                sleep(latency).await;
                guard.finish(Finish::Succeeded);
                Ok(respond(&request))
            }
            Served::ServerError(latency) => {
                sleep(latency).await;
                guard.finish(Finish::ServerError);
                Err(ProviderError::server_error(500))
            }
            Served::Timeout(wait) => {
                sleep(wait).await;
                guard.finish(Finish::Timeout);
                Err(ProviderError::timeout())
            }
        }
    }
}

/// How long a timing-out call waits before failing.
///
/// The request's own timeout when it is shorter than 5× the mean latency, otherwise 5× the mean
/// latency (at least 1 ms): a real client would wait its full timeout, but a report run should
/// not stall for 30 s per injected fault. Without a request timeout, 30 s caps the wait.
pub fn injected_timeout_wait(
    config: &SimulatedModelConfig,
    request_timeout: Option<Duration>,
) -> Duration {
    let five_means =
        ms_to_duration(config.latency_ms.mean_ms() * 5.0).max(Duration::from_millis(1));
    request_timeout
        .unwrap_or(DEFAULT_INJECTED_TIMEOUT)
        .min(five_means)
}

/// Releases the in-flight slot on every exit path, including a dropped (cancelled) future.
struct InFlightGuard<'a> {
    model: &'a SimulatedModel,
    finish: Option<Finish>,
}

impl InFlightGuard<'_> {
    fn finish(mut self, finish: Finish) {
        self.finish = Some(finish);
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.model.state);
        state.stats.in_flight = state.stats.in_flight.saturating_sub(1);
        match self.finish {
            Some(Finish::Succeeded) => state.stats.succeeded += 1,
            Some(Finish::ServerError) => state.stats.server_errors += 1,
            Some(Finish::Timeout) => state.stats.timeouts += 1,
            None => state.stats.cancelled += 1,
        }
    }
}

/// The deterministic answer to `request`: text for chat-like domains, a vector for embeddings.
fn respond(request: &ProviderRequest) -> ProviderResponse {
    match request.domain {
        RequestDomain::Embedding => {
            ProviderResponse::embedding(simulated_embedding(&request.input))
        }
        RequestDomain::Chat | RequestDomain::Image | RequestDomain::Healthcheck => {
            ProviderResponse::text(simulated_text(&request.model_id, &request.input))
        }
    }
}

/// `"<score>/10 sim:<model>:<16-hex FNV-1a of input> w1 w2 w3 w4"`: a pure function of model
/// and input. The leading score (1–10, from the hash) makes replies usable by judge columns,
/// which read the first integer of a reply, whatever digits the model id contains.
pub fn simulated_text(model_id: &str, input: &str) -> String {
    let hash = fnv(input.as_bytes());
    let score = 1 + (hash >> 60) % 10;
    let mut text = format!("{score}/10 sim:{model_id}:{hash:016x}");
    for i in 0..4 {
        text.push(' ');
        text.push_str(WORDS[((hash >> (4 * i)) & 0xf) as usize]);
    }
    text
}

/// An [`EMBEDDING_DIM`]-long unit vector derived only from the FNV-1a hash of `input`.
pub fn simulated_embedding(input: &str) -> Vec<f32> {
    let hash = fnv(input.as_bytes());
    let raw: Vec<f32> = (0..EMBEDDING_DIM)
        .map(|i| {
            let byte = (hash >> (8 * (i % 8))) as u8 ^ (i as u8).wrapping_mul(0x9d);
            f32::from(byte) / 127.5 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        raw.into_iter().map(|x| x / norm).collect()
    } else {
        raw
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.write(bytes);
    h.finish()
}

/// Locks a state mutex; the state is plain counters, so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
