//! RuntimeCorrelationProvider: scope sets current; spawn_with_current carries it; tokio::spawn doesn't.

use std::sync::Arc;
use weir_contracts::{RuntimeCorrelation, TaskExecutionId};
use weir_telemetry::RuntimeCorrelationProvider as Rcp;

fn corr(exec: u64) -> Arc<RuntimeCorrelation> {
    let mut c = RuntimeCorrelation::for_run("run-1");
    c.task_execution_id = Some(TaskExecutionId(exec));
    Arc::new(c)
}

#[tokio::test(start_paused = true)]
async fn scope_sets_and_resets_current() {
    assert!(Rcp::current().is_none());
    let seen = Rcp::scope(corr(1), async {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        Rcp::current().and_then(|c| c.task_execution_id)
    })
    .await;
    assert_eq!(seen, Some(TaskExecutionId(1)));
    assert!(Rcp::current().is_none(), "reset after the scope");
    let sync_seen = Rcp::sync_scope(corr(2), || Rcp::current().and_then(|c| c.task_execution_id));
    assert_eq!(sync_seen, Some(TaskExecutionId(2)));
}

#[tokio::test(start_paused = true)]
async fn spawn_with_current_carries_but_plain_spawn_does_not() {
    let (carried, plain) = Rcp::scope(corr(3), async {
        let carried = Rcp::spawn_with_current(async {
            tokio::task::yield_now().await;
            Rcp::current().and_then(|c| c.task_execution_id)
        });
        let plain = tokio::spawn(async { Rcp::current().and_then(|c| c.task_execution_id) });
        (carried.await, plain.await)
    })
    .await;
    assert_eq!(carried.ok().flatten(), Some(TaskExecutionId(3)));
    assert_eq!(plain.ok().flatten(), None);
}

#[tokio::test(start_paused = true)]
async fn nested_scopes_shadow_and_restore() {
    Rcp::scope(corr(4), async {
        Rcp::scope(corr(5), async {
            assert_eq!(
                Rcp::current().and_then(|c| c.task_execution_id),
                Some(TaskExecutionId(5))
            );
        })
        .await;
        assert_eq!(
            Rcp::current().and_then(|c| c.task_execution_id),
            Some(TaskExecutionId(4))
        );
    })
    .await;
}
