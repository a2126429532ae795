//! Built-in generators against a scripted ModelFacade fake; sampler determinism.

use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use weir_runtime::generators::{
    BatchContext, BatchRow, Category, CellContext, ColumnGenerator, Custom, CustomCalls, Embedding,
    Expression, GenerationError, GenerationErrorClass, JudgeScore, LlmJudge, LlmStructured,
    LlmText, Record, UniformFloat, UniformInt, Uuid, Validator,
};
use weir_runtime::inference::{ChatRequest, InferenceParams};
use weir_runtime::model_facade::{ModelCallError, ModelCallErrorKind, ModelFacade, ModelReply};
use weir_runtime::workflow::{ModelAlias, ModelRegistry, Strategy};

type Script = Box<dyn Fn(&str, &str) -> Result<String, ModelCallError> + Send + Sync>;

/// Scripted fake: records every call, answers through a closure.
struct Scripted {
    calls: Mutex<Vec<(String, String, String)>>,
    reply: Script,
}

impl Scripted {
    fn new(
        reply: impl Fn(&str, &str) -> Result<String, ModelCallError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            reply: Box::new(reply),
        })
    }
    fn echo() -> Arc<Self> {
        Self::new(|_, p| Ok(format!("re: {p}")))
    }
    fn calls(&self) -> Vec<(String, String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ModelFacade for Scripted {
    async fn chat_request(
        &self,
        alias: &str,
        request: &ChatRequest,
    ) -> Result<ModelReply, ModelCallError> {
        let prompt = request.prompt.as_str();
        self.calls
            .lock()
            .unwrap()
            .push(("chat".into(), alias.into(), prompt.into()));
        (self.reply)(alias, prompt).map(ModelReply::new)
    }
    async fn embed(&self, alias: &str, input: &str) -> Result<Vec<f32>, ModelCallError> {
        self.calls
            .lock()
            .unwrap()
            .push(("embed".into(), alias.into(), input.into()));
        Ok(vec![input.len() as f32, 0.5])
    }
}

fn registry() -> ModelRegistry {
    ModelRegistry::new([ModelAlias::new("writer", "sim", "sim-large", 8)])
}

fn rec(pairs: &[(&str, Value)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

async fn cell(
    gen: &dyn ColumnGenerator,
    models: &Arc<dyn ModelFacade>,
    record: &Record,
    row: u64,
) -> Result<Value, GenerationError> {
    let ctx = CellContext::new("col", record, 0, row, row, 42, models);
    gen.generate_cell(&ctx).await
}

#[tokio::test]
async fn samplers_are_deterministic_regardless_of_call_order() {
    let models: Arc<dyn ModelFacade> = Scripted::echo();
    let empty = Record::new();
    let gens: Vec<Box<dyn ColumnGenerator>> = vec![
        Box::new(Category::new(["a", "b", "c", "d"]).unwrap()),
        Box::new(Category::weighted(["x", "y"], vec![1.0, 3.0]).unwrap()),
        Box::new(UniformInt::new(-5, 5).unwrap()),
        Box::new(UniformFloat::new(0.0, 1.0).unwrap()),
        Box::new(Uuid),
    ];
    for g in &gens {
        let mut forward = Vec::new();
        for row in 0..50 {
            forward.push(cell(g.as_ref(), &models, &empty, row).await.unwrap());
        }
        let mut backward = vec![Value::Null; 50];
        for row in (0..50).rev() {
            backward[row as usize] = cell(g.as_ref(), &models, &empty, row).await.unwrap();
        }
        assert_eq!(forward, backward);
        let distinct: std::collections::BTreeSet<String> =
            forward.iter().map(|v| v.to_string()).collect();
        assert!(distinct.len() > 1, "sampler produced a constant");
    }
}

#[tokio::test]
async fn sampler_values_respect_bounds_and_weights() {
    let models: Arc<dyn ModelFacade> = Scripted::echo();
    let empty = Record::new();
    let ints = UniformInt::new(3, 4).unwrap();
    let w = Category::weighted(["never", "always"], vec![0.0, 1.0]).unwrap();
    for row in 0..200 {
        let v = cell(&ints, &models, &empty, row)
            .await
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((3..=4).contains(&v));
        assert_eq!(
            cell(&w, &models, &empty, row).await.unwrap(),
            json!("always")
        );
    }
    let u = cell(&Uuid, &models, &empty, 0).await.unwrap();
    let s = u.as_str().unwrap();
    assert_eq!(s.len(), 36);
    assert_eq!(&s[14..15], "4");
    assert!(Category::weighted(["a"], vec![1.0, 2.0]).is_err());
    assert!(Category::weighted(["a"], vec![f64::NAN]).is_err());
    assert!(Category::new(Vec::<String>::new()).is_err());
    assert_eq!(UniformInt::new(5, 4).unwrap_err().field, "low");
    assert!(UniformFloat::new(1.0, 1.0).is_err());
}

#[tokio::test]
async fn expression_renders_other_columns() {
    let models: Arc<dyn ModelFacade> = Scripted::echo();
    let e = Expression::new("{{ name }} is {{age}}").unwrap();
    assert_eq!(e.required_columns(), vec!["name", "age"]);
    let r = rec(&[("name", json!("Ada")), ("age", json!(36))]);
    assert_eq!(cell(&e, &models, &r, 0).await.unwrap(), json!("Ada is 36"));
    let err = cell(&e, &models, &Record::new(), 0).await.unwrap_err();
    assert_eq!(err.class(), GenerationErrorClass::NonRetryable);
    assert!(Expression::new("{{ oops").is_err());
}

#[tokio::test]
async fn llm_text_makes_exactly_one_chat_call() {
    let fake = Scripted::echo();
    let models: Arc<dyn ModelFacade> = fake.clone();
    let g = LlmText::new(&registry(), "writer", "Write about {{ topic }}").unwrap();
    assert_eq!(g.model_aliases(), vec!["writer"]);
    assert_eq!(g.required_columns(), vec!["topic"]);
    let meta = g.get_scheduling_metadata().unwrap();
    assert_eq!(meta.identity(), ["model", "sim", "sim-large", "chat"]);
    assert_eq!(meta.weight(), 8);
    let v = cell(&g, &models, &rec(&[("topic", json!("owls"))]), 0)
        .await
        .unwrap();
    assert_eq!(v, json!("re: Write about owls"));
    assert_eq!(
        fake.calls(),
        vec![(
            "chat".to_string(),
            "writer".to_string(),
            "Write about owls".to_string()
        )]
    );
}

#[tokio::test]
async fn model_errors_keep_their_class() {
    let g = LlmText::new(&registry(), "writer", "x").unwrap();
    let cases = [
        (
            ModelCallError::rate_limited("writer", Some(2.0)),
            GenerationErrorClass::Retryable,
        ),
        (
            ModelCallError::new("writer", ModelCallErrorKind::ProviderTimeout, "t"),
            GenerationErrorClass::Retryable,
        ),
        (
            ModelCallError::new(
                "writer",
                ModelCallErrorKind::Admission {
                    reason: "queue_timeout".into(),
                },
                "a",
            ),
            GenerationErrorClass::Admission,
        ),
        (
            ModelCallError::new("writer", ModelCallErrorKind::MalformedResponse, "m"),
            GenerationErrorClass::NonRetryable,
        ),
        (
            ModelCallError::new("writer", ModelCallErrorKind::Cancelled, "c"),
            GenerationErrorClass::Cancelled,
        ),
    ];
    for (err, class) in cases {
        let e2 = err.clone();
        let models: Arc<dyn ModelFacade> = Scripted::new(move |_, _| Err(e2.clone()));
        let got = cell(&g, &models, &Record::new(), 0).await.unwrap_err();
        assert_eq!(got.class(), class, "{err}");
        assert_eq!(
            std::error::Error::source(&got).map(|s| s.to_string()),
            Some(err.to_string())
        );
    }
}

#[tokio::test]
async fn embedding_returns_the_float_array() {
    let fake = Scripted::echo();
    let models: Arc<dyn ModelFacade> = fake.clone();
    let g = Embedding::new(&registry(), "writer", "{{ t }}").unwrap();
    assert_eq!(
        g.get_scheduling_metadata().unwrap().identity()[3],
        "embedding"
    );
    let v = cell(&g, &models, &rec(&[("t", json!("abc"))]), 0)
        .await
        .unwrap();
    assert_eq!(v, json!([3.0, 0.5]));
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test]
async fn judge_reads_scores_only_from_valid_structured_replies() {
    let scores = vec![
        JudgeScore::new("clarity", 1, 10).with_description("how clear"),
        JudgeScore::new("accuracy", 0, 5),
    ];
    let g = LlmJudge::with_scores(&registry(), "writer", "Rate: {{ text }}", scores).unwrap();
    let r = rec(&[("text", json!("hello"))]);
    let format = g.chat_options().response_format.clone().unwrap();
    assert_eq!(
        format.schema["properties"]["clarity"],
        json!({"type": "integer", "minimum": 1, "maximum": 10, "description": "how clear"})
    );
    let ok: Arc<dyn ModelFacade> =
        Scripted::new(|_, _| Ok(r#"{"clarity": 7, "accuracy": 5}"#.to_string()));
    assert_eq!(
        cell(&g, &ok, &r, 0).await.unwrap(),
        json!({"clarity": 7, "accuracy": 5})
    );
    // The old rule read "1" out of this reply; now it is a counted failure after 3 asks.
    for bad in [
        "On a scale of 1 to 10, I'd give it 7",
        r#"{"clarity": 11, "accuracy": 5}"#,
        r#"{"clarity": 7}"#,
        r#"{"clarity": 7.5, "accuracy": 1}"#,
    ] {
        let fake = Scripted::new(move |_, _| Ok(bad.to_string()));
        let models: Arc<dyn ModelFacade> = fake.clone();
        let e = cell(&g, &models, &r, 0).await.unwrap_err();
        assert_eq!(e.class(), GenerationErrorClass::NonRetryable);
        assert_eq!(e.error_type(), "invalid_structured_output", "{bad}");
        assert_eq!(fake.calls().len(), 3, "{bad}");
    }
    // Without declared scores: one `score` in 1..=10, a bare integer.
    let plain = LlmJudge::new(&registry(), "writer", "Rate: {{ text }}").unwrap();
    let models: Arc<dyn ModelFacade> = Scripted::new(|_, _| Ok(r#"{"score": 8}"#.to_string()));
    assert_eq!(cell(&plain, &models, &r, 0).await.unwrap(), json!(8));
}

#[tokio::test]
async fn structured_column_retries_invalid_replies_then_gives_up() {
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
        "required": ["name", "price"]
    });
    let g = LlmStructured::new(&registry(), "writer", "Invent {{ t }}", "product", schema)
        .unwrap()
        .with_invalid_output_retries(1)
        .unwrap();
    let r = rec(&[("t", json!("a lamp"))]);
    let n = Arc::new(Mutex::new(0u32));
    let seen = n.clone();
    let models: Arc<dyn ModelFacade> = Scripted::new(move |_, _| {
        let mut k = seen.lock().unwrap();
        *k += 1;
        Ok(if *k == 1 {
            "not json".to_string()
        } else {
            r#"{"name": "Lumo", "price": 12.5}"#.to_string()
        })
    });
    assert_eq!(
        cell(&g, &models, &r, 0).await.unwrap(),
        json!({"name": "Lumo", "price": 12.5})
    );
    assert_eq!(*n.lock().unwrap(), 2);
    let fake = Scripted::new(|_, _| Ok(r#"{"name": 3}"#.to_string()));
    let models: Arc<dyn ModelFacade> = fake.clone();
    let e = cell(&g, &models, &r, 0).await.unwrap_err();
    assert_eq!(e.error_type(), "invalid_structured_output");
    assert_eq!(fake.calls().len(), 2);
    assert!(e.to_string().contains("2 attempt(s)"), "{e}");
    assert!(g.with_invalid_output_retries(11).is_err());
    assert_eq!(
        LlmStructured::new(&registry(), "writer", "p", "x", json!("nope"))
            .unwrap_err()
            .field,
        "schema"
    );
}

#[tokio::test]
async fn chat_options_merge_column_over_model_and_render_the_system_prompt() {
    let base: InferenceParams = serde_json::from_value(
        json!({"temperature": 0.1, "max_tokens": 50, "extra_body": {"a": 1}}),
    )
    .unwrap();
    let models =
        ModelRegistry::new([ModelAlias::new("writer", "sim", "m", 8).with_inference(base)]);
    let col: InferenceParams =
        serde_json::from_value(json!({"max_tokens": 9, "extra_body": {"b": 2}})).unwrap();
    let g = LlmText::new(&models, "writer", "{{ a }}")
        .unwrap()
        .with_system_prompt("You write about {{ topic }}.")
        .unwrap()
        .with_inference(&col)
        .unwrap();
    let o = g.chat_options();
    assert_eq!(o.inference.temperature, serde_json::Number::from_f64(0.1));
    assert_eq!(o.inference.max_tokens, Some(9));
    assert_eq!(o.inference.extra_body.len(), 2);
    assert_eq!(
        g.required_columns(),
        vec!["a".to_string(), "topic".to_string()]
    );
    let zero: InferenceParams = serde_json::from_value(json!({"max_tokens": 0})).unwrap();
    let e = LlmText::new(&models, "writer", "x")
        .unwrap()
        .with_inference(&zero)
        .unwrap_err();
    assert_eq!(e.field, "inference.max_tokens");
}

#[tokio::test]
async fn custom_closure_makes_zero_one_or_many_calls_by_data() {
    let fake = Scripted::echo();
    let models: Arc<dyn ModelFacade> = fake.clone();
    let g = Custom::new(["n"], |ctx| async move {
        let n = ctx.record.get("n").and_then(Value::as_u64).unwrap_or(0);
        let mut out = Vec::new();
        for i in 0..n {
            out.push(ctx.models.chat("writer", &format!("q{i}")).await?.text);
        }
        Ok(json!(out))
    })
    .with_model_aliases(["writer"]);
    for (n, expected_total) in [(0u64, 0usize), (1, 1), (5, 6)] {
        let v = cell(&g, &models, &rec(&[("n", json!(n))]), 0)
            .await
            .unwrap();
        assert_eq!(v.as_array().unwrap().len() as u64, n);
        assert_eq!(fake.calls().len(), expected_total);
    }
}

#[tokio::test]
async fn custom_calls_count_is_seeded_and_in_range() {
    let fake = Scripted::echo();
    let models: Arc<dyn ModelFacade> = fake.clone();
    let g = CustomCalls::new(&registry(), "writer", "P {{ k }}", 1, 4).unwrap();
    let r = rec(&[("k", json!("v"))]);
    let mut counts = Vec::new();
    let mut total = 0;
    for row in 0..40 {
        let v = cell(&g, &models, &r, row).await.unwrap();
        let n = v.as_array().unwrap().len();
        assert!((1..=4).contains(&n));
        let ctx_seed = CellContext::new("col", &r, 0, row, row, 42, &models).seed;
        assert_eq!(n as u32, g.calls_for_seed(ctx_seed));
        counts.push(n);
        total += n;
    }
    assert_eq!(fake.calls().len(), total);
    assert!(
        counts.iter().any(|c| *c != counts[0]),
        "call count should vary by row"
    );
    assert_eq!(fake.calls()[0].2, "P v #0");
    assert!(CustomCalls::new(&registry(), "writer", "p", 3, 2).is_err());
}

#[tokio::test]
async fn validator_drops_rows_with_missing_or_null_columns() {
    let models: Arc<dyn ModelFacade> = Scripted::echo();
    let v = Validator::new(["a", "b"]).unwrap();
    assert_eq!(v.strategy(), Strategy::FullColumn);
    let mut rows = vec![
        BatchRow {
            row_index: 0,
            seed: 0,
            record: rec(&[("a", json!(1)), ("b", json!(2))]),
            drop_reason: None,
        },
        BatchRow {
            row_index: 1,
            seed: 0,
            record: rec(&[("a", json!(1)), ("b", Value::Null)]),
            drop_reason: None,
        },
        BatchRow {
            row_index: 2,
            seed: 0,
            record: rec(&[("b", json!(1))]),
            drop_reason: None,
        },
    ];
    let mut ctx = BatchContext {
        column: "ok",
        row_group: 0,
        seed: 0,
        rows: &mut rows,
        models: &models,
    };
    v.generate_full_column(&mut ctx).await.unwrap();
    assert_eq!(rows[0].record.get("ok"), Some(&json!(true)));
    assert!(rows[0].drop_reason.is_none());
    assert!(rows[1].drop_reason.as_deref().unwrap().contains("\"b\""));
    assert!(rows[2].drop_reason.as_deref().unwrap().contains("\"a\""));
    // A cell generator asked for a full column reports the unsupported strategy, typed.
    let ints = UniformInt::new(0, 1).unwrap();
    let mut no_rows: Vec<BatchRow> = Vec::new();
    let mut ctx = BatchContext {
        column: "x",
        row_group: 0,
        seed: 0,
        rows: &mut no_rows,
        models: &models,
    };
    let err = ints.generate_full_column(&mut ctx).await.unwrap_err();
    assert_eq!(
        err,
        GenerationError::UnsupportedStrategy {
            strategy: Strategy::FullColumn
        }
    );
}
