//! Fuzzing mutated specs: every input either fails validation with a JSON path, or builds and
//! runs to completion (no panic, abort or hang).
//!
//! Inputs are the shipped `examples/*.json` with a few mutations each: a value replaced by an
//! extreme (0, −1, 1e308, ±i64/u64 limits, 4294967295, a number JSON cannot hold, huge or odd
//! strings, null, wrong types), a field removed, or an unknown field added. The validate-only
//! property runs `PROPTEST_CASES` cases (default 10,000); the full-run property runs accepted
//! specs with at most 12 records on a paused-clock runtime (default: a fiftieth as many cases).

use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use weir_cli::output::EventsMode;
use weir_cli::run::{run_workflow_on, RunOptions, RunStatus};
use weir_cli::spec::WorkflowSpec;

const EXAMPLES: [&str; 6] = [
    include_str!("../../../examples/quickstart.json"),
    include_str!("../../../examples/heavy-root.json"),
    include_str!("../../../examples/dual-model-judge.json"),
    include_str!("../../../examples/rate-limited.json"),
    include_str!("../../../examples/cross-provider-cooldown.json"),
    include_str!("../../../examples/structured.json"),
];

/// Placeholder replaced, after serializing, by a number token JSON parsers cannot represent.
const HUGE_TOKEN: &str = "__weir_fuzz_1e999__";

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Extreme replacement values.
fn extreme(i: usize) -> Value {
    let long = "x".repeat(100_000);
    let all = [
        json!(0),
        json!(-1),
        json!(1),
        json!(1e308),
        json!(-1e308),
        json!(f64::MAX),
        json!(5e-324),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(4_294_967_295u64),
        json!(4_294_967_296u64),
        json!(1_000_000_001),
        json!(2e9),
        json!(3_600_001),
        json!(0.5),
        json!(HUGE_TOKEN),
        json!(""),
        json!(long),
        json!("http://"),
        json!("ftp://example.com"),
        json!("http://[::1"),
        json!("{{ nowhere }}"),
        json!("{{"),
        Value::Null,
        json!(true),
        json!([]),
        json!([1e308, 1e308]),
        json!({}),
        json!({"dist": "uniform", "min": 0, "max": f64::MAX}),
        json!({"dist": "fixed", "value": 1e308}),
        json!({"min": 0, "max": 4_294_967_295u64}),
    ];
    all[i % all.len()].clone()
}

/// Extreme numbers, for a number replaced by a number (most survive the shape check, so they
/// reach the meaning checks and, when accepted, the run).
fn extreme_number(i: usize) -> Value {
    let all = [
        json!(0),
        json!(1),
        json!(2),
        json!(-1),
        json!(0.5),
        json!(1e-9),
        json!(1e308),
        json!(u64::MAX),
        json!(4_294_967_295u64),
        json!(1_000_000),
        json!(3_600_000),
        json!(3_600),
        json!(1e9),
        json!(1e9 + 1.0),
        json!(1000),
    ];
    all[i % all.len()].clone()
}

/// One mutation: which node (index into the document's nodes) and what to do with it.
#[derive(Debug, Clone)]
enum Mutation {
    /// Any node replaced by any extreme value (often a type error).
    Replace(usize, usize),
    /// A number replaced by an extreme number (other nodes untouched).
    Number(usize, usize),
    Remove(usize),
    AddField(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>()).prop_map(|(n, v)| Mutation::Replace(n, v)),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(n, v)| Mutation::Number(n, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::AddField),
    ]
}

/// Mutations that keep more specs valid, for the full-run property.
fn run_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        8 => (any::<usize>(), any::<usize>()).prop_map(|(n, v)| Mutation::Number(n, v)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(n, v)| Mutation::Replace(n, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

/// Every node's path (object keys and array indices), root first.
fn paths(v: &Value, here: &mut Vec<PathSeg>, out: &mut Vec<Vec<PathSeg>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(PathSeg::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(PathSeg::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathSeg {
    Key(String),
    Index(usize),
}

fn node<'a>(v: &'a Value, path: &[PathSeg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            PathSeg::Key(k) => cur.get(k.as_str())?,
            PathSeg::Index(i) => cur.get(*i)?,
        };
    }
    Some(cur)
}

fn node_mut<'a>(v: &'a mut Value, path: &[PathSeg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            PathSeg::Key(k) => cur.get_mut(k.as_str())?,
            PathSeg::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

fn apply(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    let pick = |n: usize| all[n % all.len()].clone();
    match m {
        Mutation::Replace(n, v) => {
            let path = pick(*n);
            if let Some(node) = node_mut(doc, &path) {
                *node = extreme(*v);
            }
        }
        Mutation::Number(n, v) => {
            let numbers: Vec<&Vec<PathSeg>> = all
                .iter()
                .filter(|p| node(doc, p).is_some_and(Value::is_number))
                .collect();
            if numbers.is_empty() {
                return;
            }
            let path = numbers[n % numbers.len()].clone();
            if let Some(node) = node_mut(doc, &path) {
                *node = extreme_number(*v);
            }
        }
        Mutation::Remove(n) => {
            let path = pick(*n);
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            if let Some(p) = node_mut(doc, parent) {
                match (p, last) {
                    (Value::Object(o), PathSeg::Key(k)) => {
                        o.remove(k);
                    }
                    (Value::Array(a), PathSeg::Index(i)) if *i < a.len() => {
                        a.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        Mutation::AddField(n) => {
            let path = pick(*n);
            if let Some(Value::Object(o)) = node_mut(doc, &path) {
                o.insert("unexpected_field".into(), json!(1));
            }
        }
    }
}

fn mutated(example: usize, mutations: &[Mutation]) -> String {
    let mut doc: Value = serde_json::from_str(EXAMPLES[example % EXAMPLES.len()]).expect("example");
    for m in mutations {
        apply(&mut doc, m);
    }
    doc.to_string()
        .replace(&format!("\"{HUGE_TOKEN}\""), "1e999")
}

/// Parse + validate: an error always names a JSON path.
fn check(text: &str) -> Option<WorkflowSpec> {
    match WorkflowSpec::parse_and_validate(text) {
        Ok((spec, notices)) => notices.is_empty().then_some(spec),
        Err(errors) => {
            assert!(!errors.0.is_empty());
            for e in &errors.0 {
                assert!(!e.path.is_empty(), "error without a path: {e}");
            }
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(10_000), ..ProptestConfig::default() })]

    #[test]
    fn every_mutated_spec_fails_with_a_path_or_builds(
        example in 0usize..EXAMPLES.len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let text = mutated(example, &mutations);
        if let Some(spec) = check(&text) {
            // What validation accepts, the run's build accepts (same checks, one path).
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
            let built = rt.block_on(async { spec.build() });
            prop_assert!(built.is_ok(), "validated but did not build: {:?}", built.err());
        }
    }
}

fn scratch(n: u64) -> PathBuf {
    std::env::temp_dir().join(format!("weir-fuzz-{}-{n}", std::process::id()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: (cases(10_000) / 50).max(1), ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_spec_runs_to_completion(
        example in 0usize..EXAMPLES.len(),
        mutations in proptest::collection::vec(run_mutation(), 0..3),
        records in 1u64..12,
        tag in any::<u64>(),
    ) {
        let text = mutated(example, &mutations);
        let Some(spec) = check(&text) else { return Ok(()) };
        let capped = records.min(spec.records);
        let spec = spec.with_overrides(Some(capped), None);
        let Ok(_) = spec.validate() else { return Ok(()) };
        // A paused clock: simulated latencies and backoffs (up to an hour) pass instantly.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("rt");
        let out = scratch(tag);
        let outcome = run_workflow_on(
            &rt,
            spec,
            RunOptions { out_dir: out.clone(), quiet: true, events: EventsMode::None, fresh: true, format: Default::default(), shared_limits: None },
        );
        let _ = std::fs::remove_dir_all(&out);
        if std::env::var_os("WEIR_FUZZ_TRACE").is_some() {
            eprintln!("ran: {:?}", outcome.as_ref().map(|o| o.status.clone()));
        }
        let outcome = outcome.map_err(|e| TestCaseError::fail(format!("run refused a valid spec: {e}")))?;
        prop_assert!(
            !matches!(outcome.status, RunStatus::Failed(_) | RunStatus::Interrupted | RunStatus::Terminated),
            "{:?}", outcome.status
        );
        prop_assert_eq!(
            outcome.summary.records_written + outcome.summary.rows_dropped + outcome.summary.rows_unfinished,
            outcome.summary.records_requested
        );
    }
}
