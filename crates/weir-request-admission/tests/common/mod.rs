//! Shared helpers for the request-admission integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use weir_contracts::{RequestAdmissionEvent, RequestDomain, RequestEventKind, RequestResourceKey};
use weir_request_admission::{
    AdaptiveRequestAdmissionController, RequestAdmissionConfig, RequestAdmissionItem,
    RequestAdmissionPolicy,
};
use weir_telemetry::{EventStream, InMemoryAdmissionEventSink, MonotonicClock};

pub fn key(domain: RequestDomain) -> RequestResourceKey {
    RequestResourceKey::new("prov", "model", domain).unwrap()
}

pub fn chat() -> RequestResourceKey {
    key(RequestDomain::Chat)
}

pub fn item(domain: RequestDomain) -> RequestAdmissionItem {
    RequestAdmissionItem::new(key(domain))
}

pub fn plan_config() -> RequestAdmissionConfig {
    RequestAdmissionConfig {
        policy: RequestAdmissionPolicy::PlanAimd,
        ..RequestAdmissionConfig::default()
    }
}

/// A controller with an in-memory sink, registered with `cap`.
pub fn controller_with_sink(
    config: RequestAdmissionConfig,
    cap: u32,
) -> (
    Arc<AdaptiveRequestAdmissionController>,
    Arc<InMemoryAdmissionEventSink>,
) {
    let sink = Arc::new(InMemoryAdmissionEventSink::new());
    let stream = EventStream::single(sink.clone(), MonotonicClock::start());
    let c = AdaptiveRequestAdmissionController::builder()
        .config(config)
        .events(stream)
        .build()
        .unwrap();
    c.register("prov", "model", "alias", cap).unwrap();
    (Arc::new(c), sink)
}

pub fn controller(
    config: RequestAdmissionConfig,
    cap: u32,
) -> Arc<AdaptiveRequestAdmissionController> {
    let c = AdaptiveRequestAdmissionController::new(config).unwrap();
    c.register("prov", "model", "alias", cap).unwrap();
    Arc::new(c)
}

pub fn kinds(events: &[RequestAdmissionEvent]) -> Vec<RequestEventKind> {
    events.iter().map(|e| e.event_kind()).collect()
}

pub fn count(events: &[RequestAdmissionEvent], kind: RequestEventKind) -> usize {
    events.iter().filter(|e| e.event_kind() == kind).count()
}

/// Polls a future exactly once with the current task's context.
pub async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// Lets spawned tasks (and the shard timer) run.
pub async fn settle() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// In-flight count of a resource (0 if unknown).
pub fn in_flight(c: &AdaptiveRequestAdmissionController, r: &RequestResourceKey) -> u32 {
    c.pressure().snapshot(r).map_or(0, |s| s.in_flight_count)
}

pub fn limit(c: &AdaptiveRequestAdmissionController, r: &RequestResourceKey) -> u32 {
    c.pressure().snapshot(r).map_or(0, |s| s.current_limit)
}
