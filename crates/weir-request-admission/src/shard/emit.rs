//! The one place a shard's state changes become events: immediate admissions, denials, a
//! release's limit transition, and the pressure snapshots those events carry. Called under the
//! shard lock; the events are emitted after it (see `Shard::finish`).

use super::{di, Denial, Effects, EventRefs, ShardState, Shared};
use crate::events::PendingEvent;
use crate::lease::RequestAdmissionItem;
use crate::ledger::Grant;
use crate::limit::Transition;
use std::sync::Arc;
use tokio::time::Instant;
use weir_contracts::payload::{
    LimitChangeCause, LimitChanged, RequestDenied, RequestOutcome, RequestRateLimited,
    RequestSoftCeilingRecovered, RequestWaitCompleted,
};
use weir_contracts::{
    LeaseId, RequestAdmissionDenyReason, RequestDomain, RequestEventKind, RequestEventPayload,
    RequestPressureSnapshot, RequestReleaseOutcome, RequestReleaseOutcomeKind, RequestResourceKey,
};

impl ShardState {
    /// Events of an immediate admission: a zero-length wait, then the lease.
    pub(super) fn immediate_events(
        &self,
        shared: &Shared,
        item: &RequestAdmissionItem,
        grant: Grant,
        fx: &mut Effects,
    ) {
        if !shared.events.is_enabled() {
            return;
        }
        let lease_id = LeaseId::new(shared.generation, grant.counter);
        let base = |payload| {
            PendingEvent::of(payload)
                .resource(&item.resource)
                .group(Some(&item.group.key))
                .context(Some(&item.event_context))
        };
        if shared.events.wants(RequestEventKind::RequestWaitStarted) {
            fx.events.push(base(RequestEventPayload::RequestWaitStarted(
                Default::default(),
            )));
        }
        if shared.events.wants(RequestEventKind::RequestWaitCompleted) {
            fx.events.push(
                base(RequestEventPayload::RequestWaitCompleted(
                    RequestWaitCompleted { wait_seconds: 0.0 },
                ))
                .lease(lease_id),
            );
        }
        if shared.events.wants(RequestEventKind::RequestLeaseAcquired) {
            let snap = self.resource_snapshot(shared, item.resource.domain, grant.acquired_at);
            fx.events.push(
                base(RequestEventPayload::RequestLeaseAcquired(Default::default()))
                    .lease(lease_id)
                    .snapshot(snap),
            );
        }
    }

    pub(super) fn denied_event(
        &self,
        shared: &Shared,
        item: &RequestAdmissionItem,
        denial: &Denial,
        kind: RequestEventKind,
        fx: &mut Effects,
    ) {
        if shared.events.wants(kind) {
            let denied = RequestDenied {
                last_denial: denial
                    .diagnostics
                    .get("last_denial")
                    .and_then(|v| RequestAdmissionDenyReason::from_name(v)),
            };
            let payload = match kind {
                RequestEventKind::RequestWaitTimeout => {
                    RequestEventPayload::RequestWaitTimeout(denied)
                }
                RequestEventKind::RequestWaitCancelled => {
                    RequestEventPayload::RequestWaitCancelled(denied)
                }
                _ => RequestEventPayload::RequestAcquireDenied(denied),
            };
            let mut e = PendingEvent::of(payload)
                .resource(&item.resource)
                .group(Some(&item.group.key))
                .context(Some(&item.event_context))
                .reason(denial.reason.as_str());
            if let Some(s) = &denial.snapshot {
                e = e.snapshot(s.clone());
            }
            fx.events.push(e);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn release_events(
        &self,
        shared: &Shared,
        counter: u64,
        d: RequestDomain,
        outcome: &RequestReleaseOutcome,
        t: &Transition,
        refs: EventRefs<'_>,
        now: Instant,
        fx: &mut Effects,
    ) {
        let lease_id = LeaseId::new(shared.generation, counter);
        let ev = |payload| PendingEvent::of(payload).resource(refs.resource);
        let policy = || Some(shared.config.policy.name().to_owned());
        let wants = |kind| shared.events.wants(kind);
        if let Some((p, c)) = t.ramp.filter(|(p, c)| c > p) {
            if wants(RequestEventKind::RequestLimitIncreased) {
                fx.events
                    .push(ev(RequestEventPayload::RequestLimitIncreased(
                        LimitChanged {
                            previous: p,
                            current: c,
                            policy: None,
                            cause: Some(LimitChangeCause::StartupRamp),
                        },
                    )));
            }
        }
        if let Some((p, c)) = t.decreased {
            if wants(RequestEventKind::RequestLimitDecreased) {
                fx.events
                    .push(ev(RequestEventPayload::RequestLimitDecreased(
                        LimitChanged {
                            previous: p,
                            current: c,
                            policy: policy(),
                            cause: t
                                .latency_decrease
                                .then_some(LimitChangeCause::LatencySaturation),
                        },
                    )));
            }
        }
        if let Some((p, c)) = t.increased {
            if wants(RequestEventKind::RequestLimitIncreased) {
                fx.events
                    .push(ev(RequestEventPayload::RequestLimitIncreased(
                        LimitChanged {
                            previous: p,
                            current: c,
                            policy: policy(),
                            cause: None,
                        },
                    )));
            }
        }
        if let Some(ceiling) = t.soft_ceiling_recovered {
            if wants(RequestEventKind::RequestSoftCeilingRecovered) {
                fx.events
                    .push(ev(RequestEventPayload::RequestSoftCeilingRecovered(
                        RequestSoftCeilingRecovered {
                            rate_limit_ceiling: ceiling,
                        },
                    )));
            }
        }
        if t.fully_recovered && wants(RequestEventKind::RequestFullyRecovered) {
            fx.events
                .push(ev(RequestEventPayload::RequestFullyRecovered(
                    Default::default(),
                )));
        }
        if outcome.kind == RequestReleaseOutcomeKind::RateLimited
            && wants(RequestEventKind::RequestRateLimited)
        {
            let e = ev(RequestEventPayload::RequestRateLimited(
                RequestRateLimited {
                    cooldown_seconds: t.cooldown.map(|cd| cd.as_secs_f64()),
                    classification: t.rate_limit_class.map(|c| c.classification()),
                    rate_limit_signal: outcome.rate_limit_signal,
                    retry_after_seconds: outcome.retry_after_seconds.filter(|v| v.is_finite()),
                },
            ))
            .group(refs.group)
            .context(refs.context)
            .lease(lease_id)
            .reason(outcome.kind.as_str());
            fx.events.push(e);
        }
        if wants(RequestEventKind::RequestLeaseReleased) {
            let snap = self.resource_snapshot(shared, d, now);
            let e = ev(RequestEventPayload::RequestLeaseReleased(RequestOutcome {
                provider_status: outcome.provider_status,
            }))
            .group(refs.group)
            .context(refs.context)
            .lease(lease_id)
            .reason(outcome.kind.as_str())
            .snapshot(snap);
            fx.events.push(e);
        }
    }

    pub(super) fn resource_snapshot(
        &self,
        shared: &Shared,
        d: RequestDomain,
        now: Instant,
    ) -> RequestPressureSnapshot {
        let ramp = shared.config.startup_ramp();
        match self.domains[di(d)].as_ref() {
            Some(s) => {
                let target = self.initial_limit(shared, &s.resource);
                let blocked = s.cooldown_end().filter(|b| *b > now);
                RequestPressureSnapshot {
                    captured_at: shared.clock.seconds_at(now),
                    sequence: shared.next_snapshot_sequence(),
                    resource: s.resource.clone(),
                    effective_max: self.effective_max(shared, &s.resource),
                    current_limit: s.limit_at(target, ramp, now),
                    in_flight_count: s.in_flight,
                    active_lease_count: s.in_flight,
                    waiters: s.waiters,
                    blocked_until_monotonic: blocked.map(|b| shared.clock.seconds_at(b)),
                    cooldown_remaining_seconds: blocked
                        .map_or(0.0, |b| b.saturating_duration_since(now).as_secs_f64()),
                    rate_limit_ceiling: s.core().rate_limit_ceiling,
                    consecutive_rate_limits: s.core().consecutive_rate_limits,
                    last_outcome: s.core().last_outcome,
                    leak_diagnostics: shared.leak_diagnostics(),
                }
            }
            None => RequestPressureSnapshot {
                captured_at: shared.clock.seconds_at(now),
                sequence: shared.next_snapshot_sequence(),
                resource: RequestResourceKey {
                    provider_name: Arc::from(""),
                    model_id: Arc::from(""),
                    domain: d,
                },
                effective_max: 0,
                current_limit: 0,
                in_flight_count: 0,
                active_lease_count: 0,
                waiters: 0,
                blocked_until_monotonic: None,
                cooldown_remaining_seconds: 0.0,
                rate_limit_ceiling: 0,
                consecutive_rate_limits: 0,
                last_outcome: None,
                leak_diagnostics: shared.leak_diagnostics(),
            },
        }
    }
}
