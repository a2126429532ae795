//! Workflow validation (every error kind) and the execution graph it builds.

use std::sync::Arc;
use weir_runtime::generators::{
    Category, ColumnGenerator, Expression, LlmText, UniformInt, Validator,
};
use weir_runtime::workflow::{
    ColumnSpec, ModelAlias, ModelRegistry, Strategy, Workflow, WorkflowError,
};

fn int() -> Arc<dyn ColumnGenerator> {
    Arc::new(UniformInt::new(1, 6).unwrap())
}

fn expr(t: &str) -> Arc<dyn ColumnGenerator> {
    Arc::new(Expression::new(t).unwrap())
}

fn base() -> Workflow {
    Workflow::new("wf", 10, 7).with_buffer_size(4)
}

#[test]
fn field_errors_are_typed() {
    let col = || ColumnSpec::new("a", int());
    assert_eq!(
        Workflow::new("w", 0, 1)
            .with_column(col())
            .validate()
            .unwrap_err(),
        WorkflowError::ZeroRecords
    );
    assert_eq!(
        base()
            .with_buffer_size(0)
            .with_column(col())
            .validate()
            .unwrap_err(),
        WorkflowError::ZeroBufferSize
    );
    assert_eq!(
        base()
            .with_max_concurrent_row_groups(0)
            .with_column(col())
            .validate()
            .unwrap_err(),
        WorkflowError::ZeroMaxConcurrentRowGroups
    );
    assert_eq!(base().validate().unwrap_err(), WorkflowError::NoColumns);
    assert_eq!(
        base()
            .with_column(ColumnSpec::new(" ", int()))
            .validate()
            .unwrap_err(),
        WorkflowError::EmptyColumnName { position: 0 }
    );
}

#[test]
fn duplicate_column_and_alias() {
    let err = base()
        .with_column(ColumnSpec::new("a", int()))
        .with_column(ColumnSpec::new("a", int()))
        .validate();
    assert_eq!(
        err.unwrap_err(),
        WorkflowError::DuplicateColumn { column: "a".into() }
    );
    let err = base()
        .with_model(ModelAlias::new("m", "p", "x", 1))
        .with_model(ModelAlias::new("m", "p", "y", 1))
        .with_column(ColumnSpec::new("a", int()))
        .validate();
    assert_eq!(
        err.unwrap_err(),
        WorkflowError::DuplicateModelAlias { alias: "m".into() }
    );
}

#[test]
fn unknown_model_alias_names_column_and_alias() {
    let registry = ModelRegistry::default();
    let gen = Arc::new(LlmText::new(&registry, "writer", "hi").unwrap());
    let err = base()
        .with_column(ColumnSpec::new("text", gen))
        .validate()
        .unwrap_err();
    assert_eq!(
        err,
        WorkflowError::UnknownModelAlias {
            column: "text".into(),
            alias: "writer".into()
        }
    );
}

#[test]
fn unknown_column_from_template_or_explicit_dep() {
    let err = base()
        .with_column(ColumnSpec::new("b", expr("{{ nope }}")))
        .validate()
        .unwrap_err();
    assert_eq!(
        err,
        WorkflowError::UnknownColumn {
            column: "b".into(),
            reference: "nope".into()
        }
    );
    let err = base()
        .with_column(ColumnSpec::new("b", int()).depends_on(["ghost"]))
        .validate()
        .unwrap_err();
    assert_eq!(
        err,
        WorkflowError::UnknownColumn {
            column: "b".into(),
            reference: "ghost".into()
        }
    );
}

#[test]
fn cycle_names_exactly_the_cycle_columns() {
    // root -> x -> y -> z -> x, plus w downstream of the cycle (not part of it).
    let wf = base()
        .with_column(ColumnSpec::new("root", int()))
        .with_column(ColumnSpec::new("w", expr("{{ z }}")))
        .with_column(ColumnSpec::new("x", expr("{{ root }} {{ z }}")))
        .with_column(ColumnSpec::new("y", expr("{{ x }}")))
        .with_column(ColumnSpec::new("z", expr("{{ y }}")));
    let err = wf.validate().unwrap_err();
    assert_eq!(
        err,
        WorkflowError::Cycle {
            columns: vec!["x".into(), "z".into(), "y".into()]
        }
    );
    assert_eq!(err.to_string(), "dependency cycle: x -> z -> y -> x");
    let self_ref = base()
        .with_column(ColumnSpec::new("s", expr("{{ s }}")))
        .validate()
        .unwrap_err();
    assert_eq!(
        self_ref,
        WorkflowError::Cycle {
            columns: vec!["s".into()]
        }
    );
}

#[test]
fn strategy_mismatch_is_reported() {
    let mut c = ColumnSpec::new("a", int());
    c.strategy = Strategy::FullColumn;
    assert_eq!(
        base().with_column(c).validate().unwrap_err(),
        WorkflowError::StrategyMismatch {
            column: "a".into(),
            declared: Strategy::FullColumn,
            generator: Strategy::Cell
        }
    );
}

#[test]
fn graph_has_topo_order_roots_and_edges() {
    let wf = base()
        .with_column(ColumnSpec::new("summary", expr("{{ topic }} / {{ n }}")))
        .with_column(ColumnSpec::new(
            "check",
            Arc::new(Validator::new(["summary"]).unwrap()),
        ))
        .with_column(ColumnSpec::new(
            "topic",
            Arc::new(Category::new(["a", "b"]).unwrap()),
        ))
        .with_column(ColumnSpec::new("n", int()).depends_on(["topic"]));
    let g = wf.validate().unwrap();
    assert_eq!(
        g.topological_order(),
        vec!["topic", "n", "summary", "check"]
    );
    assert_eq!(g.root_columns(), vec!["topic"]);
    assert_eq!(g.upstream("summary").unwrap(), vec!["topic", "n"]);
    assert_eq!(g.downstream("topic").unwrap(), vec!["summary", "n"]);
    assert_eq!(g.strategy("check"), Some(Strategy::FullColumn));
    assert!(g.upstream("missing").is_none());
}

#[test]
fn row_group_sizing() {
    let wf = base();
    assert_eq!(wf.row_group_count(), 3);
    assert_eq!(
        (0..4).map(|rg| wf.row_group_size(rg)).collect::<Vec<_>>(),
        vec![4, 4, 2, 0]
    );
    assert_eq!(wf.row_offset(2), 8);
}
