//! TaskSchedulingResolver: default local, alias min-merge, fallback diagnostics, fatal errors, cache.

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use weir_contracts::{
    SchedulerResourceRequest, SchedulingKind, SchedulingMetadata, SchedulingMetadataError,
    SchedulingMetadataErrorCode,
};
use weir_runtime::generators::{ColumnGenerator, Custom, CustomCalls, LlmText, UniformInt};
use weir_runtime::resolver::{ResolverConfig, ResolverError, TaskSchedulingResolver};
use weir_runtime::workflow::{ColumnSpec, ModelAlias, ModelRegistry, Strategy, Workflow};

/// A generator returning scripted metadata and counting how often it is asked.
struct Meta {
    result: Result<SchedulingMetadata, SchedulingMetadataError>,
    calls: AtomicUsize,
}

impl Meta {
    fn new(result: Result<SchedulingMetadata, SchedulingMetadataError>) -> Arc<Self> {
        Arc::new(Self {
            result,
            calls: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl ColumnGenerator for Meta {
    fn get_scheduling_metadata(&self) -> Result<SchedulingMetadata, SchedulingMetadataError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.result.clone()
    }
    fn strategy(&self) -> Strategy {
        Strategy::Cell
    }
    fn required_columns(&self) -> Vec<String> {
        Vec::new()
    }
}

fn registry() -> ModelRegistry {
    ModelRegistry::new([
        ModelAlias::new("fast", "openai", "gpt-x", 16),
        ModelAlias::new("careful", "openai", "gpt-x", 4),
        ModelAlias::new("other", "anthropic", "claude-y", 8),
    ])
}

fn resolve(
    cols: Vec<(&str, Arc<dyn ColumnGenerator>)>,
) -> Result<TaskSchedulingResolver, ResolverError> {
    TaskSchedulingResolver::new(
        cols.into_iter().map(|(c, g)| (c.to_string(), g)),
        ResolverConfig::default(),
    )
}

#[test]
fn default_metadata_is_local_with_flow_identity_and_submission() {
    let r = resolve(vec![("n", Arc::new(UniformInt::new(0, 1).unwrap()))]).unwrap();
    let s = r.resolve("n").unwrap();
    assert_eq!(s.group.key.kind, SchedulingKind::Local);
    assert_eq!(&*s.group.key.identity, ["local", "default", "n"]);
    assert_eq!(s.group.weight, 1);
    assert_eq!(s.group.admitted_limit, None);
    assert_eq!(s.resource_request, SchedulerResourceRequest::submission());
    assert_eq!(r.metadata("n"), Some(&SchedulingMetadata::default_local()));
    assert!(r.diagnostics().is_empty());
}

#[test]
fn model_generator_gets_registry_endpoint_and_admitted_limit() {
    let reg = registry();
    let r = resolve(vec![
        ("a", Arc::new(LlmText::new(&reg, "careful", "x").unwrap())),
        ("b", Arc::new(LlmText::new(&reg, "fast", "x").unwrap())),
    ])
    .unwrap();
    let a = r.resolve("a").unwrap();
    assert_eq!(
        &*a.group.key.identity,
        ["model", "openai", "gpt-x", "chat", "a"]
    );
    assert_eq!(a.group.weight, 4);
    assert_eq!(a.group.admitted_limit, Some(8)); // min(256, 2 * 4)
    let b = r.resolve("b").unwrap();
    assert_eq!(b.group.weight, 16);
    assert_eq!(b.group.admitted_limit, Some(32));
    // Separate flow identity: same endpoint, different groups.
    assert_ne!(a.group.key, b.group.key);
    let capped = TaskSchedulingResolver::new(
        [(
            "b".to_string(),
            Arc::new(LlmText::new(&reg, "fast", "x").unwrap()) as Arc<dyn ColumnGenerator>,
        )],
        ResolverConfig {
            model_group_limit_multiplier: 2,
            model_group_limit_cap: 10,
        },
    )
    .unwrap();
    assert_eq!(capped.resolve("b").unwrap().group.admitted_limit, Some(10));
}

#[test]
fn aliases_on_one_endpoint_merge_with_min_cap() {
    let meta = registry()
        .metadata_for(&["fast".into(), "careful".into()], "chat", "ns")
        .unwrap();
    let r = resolve(vec![("j", Meta::new(Ok(meta)))]).unwrap();
    let s = r.resolve("j").unwrap();
    assert_eq!(s.group.weight, 4);
    assert_eq!(
        &*s.group.key.identity,
        ["model", "openai", "gpt-x", "chat", "j"]
    );
}

#[test]
fn multi_endpoint_aliases_fall_back_with_diagnostics() {
    let err = registry()
        .metadata_for(&["other".into(), "fast".into()], "chat", "plugin.ns")
        .unwrap_err();
    let r = resolve(vec![("j", Meta::new(Err(err)))]).unwrap();
    let s = r.resolve("j").unwrap();
    assert_eq!(s.group.key.kind, SchedulingKind::CustomModel);
    assert_eq!(s.group.key.identity[1], "plugin.ns");
    assert!(s.group.key.identity[2].starts_with("alias-set-"));
    assert_eq!(s.group.weight, 24); // 16 + 8, one min cap per endpoint
    let d = &r.diagnostics()[0];
    assert_eq!(d.column, "j");
    assert_eq!(d.code, SchedulingMetadataErrorCode::AmbiguousModelAliases);
    assert_eq!(d.fallback_identity[0], "custom_model");
    assert_eq!(d.diagnostics["aliases"], "fast,other");
    assert_eq!(d.diagnostics["fallback_reason"], "multi_endpoint_alias_set");
}

#[test]
fn error_without_fallback_is_fatal_before_scheduling() {
    let reg = registry();
    let err = resolve(vec![
        ("ok", Arc::new(UniformInt::new(0, 1).unwrap())),
        ("bad", Arc::new(LlmText::new(&reg, "missing", "x").unwrap())),
    ])
    .unwrap_err();
    match err {
        ResolverError::Metadata { column, error } => {
            assert_eq!(column, "bad");
            assert_eq!(error.code, SchedulingMetadataErrorCode::UnknownModelAlias);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn metadata_is_resolved_once_per_generator_instance() {
    let shared = Meta::new(Ok(SchedulingMetadata::local("gpu", 3).unwrap()));
    let r = resolve(vec![("x", shared.clone()), ("y", shared.clone())]).unwrap();
    for _ in 0..5 {
        assert!(r.resolve("x").is_some());
        assert!(r.resolve("y").is_some());
    }
    assert_eq!(shared.calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.resolve("y").unwrap().group.weight, 3);
    assert_eq!(
        &*r.resolve("y").unwrap().group.key.identity,
        ["local", "gpu", "y"]
    );
    assert!(r.resolve("z").is_none());
}

#[test]
fn custom_generators_declare_custom_model() {
    let reg = registry();
    let wf = Workflow::new("w", 1, 1)
        .with_column(ColumnSpec::new(
            "local",
            Arc::new(Custom::new(Vec::<String>::new(), |_| async {
                Ok(1.into())
            })),
        ))
        .with_column(ColumnSpec::new(
            "multi",
            Arc::new(
                Custom::new(Vec::<String>::new(), |_| async { Ok(1.into()) })
                    .with_model_aliases(["other", "fast"]),
            ),
        ))
        .with_column(ColumnSpec::new(
            "calls",
            Arc::new(CustomCalls::new(&reg, "fast", "p", 0, 3).unwrap()),
        ));
    let r = TaskSchedulingResolver::for_workflow(&wf, ResolverConfig::default()).unwrap();
    assert_eq!(
        r.resolve("local").unwrap().group.key.kind,
        SchedulingKind::Local
    );
    let m = r.resolve("multi").unwrap();
    assert_eq!(
        &*m.group.key.identity,
        ["custom_model", "custom_column", "fast-other", "v1", "multi"]
    );
    assert_eq!(m.group.weight, 2);
    let c = r.resolve("calls").unwrap();
    assert_eq!(
        &*c.group.key.identity,
        ["custom_model", "custom_calls", "fast", "v1", "calls"]
    );
    assert_eq!(c.group.weight, 16);
    assert_eq!(c.group.admitted_limit, Some(32));
}
