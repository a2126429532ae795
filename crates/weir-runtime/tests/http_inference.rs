//! Inference parameters, system prompts and structured output over real sockets (127.0.0.1):
//! what reaches the request body and headers, and how structured and judge replies are
//! validated, retried and counted. Each test is a handful of requests.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use weir_runtime::engine::{Engine, RunResult};
use weir_runtime::generators::{
    Category, ColumnGenerator, JudgeScore, LlmJudge, LlmStructured, LlmText,
};
use weir_runtime::inference::InferenceParams;
use weir_runtime::provider::{ModelProvider, OpenAiCompatibleProvider, OpenAiProviderConfig};
use weir_runtime::scheduler::InMemoryRecordSink;
use weir_runtime::workflow::{ColumnSpec, ModelAlias, ModelRegistry, Workflow};
use weir_testkit::{Fault, LoopbackConfig, LoopbackServer, RecordedRequest};

fn params(v: Value) -> InferenceParams {
    serde_json::from_value(v).expect("valid inference params")
}

fn model_defaults() -> InferenceParams {
    params(json!({
        "temperature": 0.7, "top_p": 0.95, "max_tokens": 64, "stop": ["\n\n", "END"],
        "seed": 11, "extra_body": {"frequency_penalty": 0.25, "metadata": {"run": "t"}}
    }))
}

/// Runs `records` rows of `topic` + the column `make` builds, on a loopback server.
async fn run(
    server: &LoopbackServer,
    records: u64,
    make: impl FnOnce(&ModelRegistry) -> Arc<dyn ColumnGenerator>,
) -> (RunResult, Vec<weir_runtime::generators::Record>) {
    let wf = Workflow::new("infer", records, 3)
        .with_buffer_size(records)
        .with_model(ModelAlias::new("writer", "loop", "m1", 2).with_inference(model_defaults()));
    let models = wf.model_registry();
    let wf = wf
        .with_column(ColumnSpec::new(
            "topic",
            Arc::new(Category::new(["lamps"]).expect("valid")),
        ))
        .with_column(ColumnSpec::new("out", make(&models)));
    let provider = OpenAiCompatibleProvider::new(
        OpenAiProviderConfig::new("loop", server.base_url())
            .with_timeout(Duration::from_secs(10))
            .with_extra_header("OpenAI-Organization", "org-weir")
            .with_extra_header("x-trace", "abc 123"),
    )
    .expect("valid");
    let provider: Arc<dyn ModelProvider> = Arc::new(provider);
    let mut sink = InMemoryRecordSink::new();
    let result = Engine::new(Arc::new(wf), [("loop".to_owned(), provider)])
        .prepare()
        .expect("prepare")
        .run(&mut sink)
        .await
        .expect("run");
    let rows = sink.rows().iter().map(|(_, r)| r.clone()).collect();
    (result, rows)
}

fn chat_requests(server: &LoopbackServer) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_system_prompt_and_headers_reach_the_request_exactly() {
    let server = LoopbackServer::start(LoopbackConfig::new().record_requests())
        .await
        .expect("bind");
    let (result, rows) = run(&server, 2, |m| {
        Arc::new(
            LlmText::new(m, "writer", "Write about {{ topic }}")
                .unwrap()
                .with_system_prompt("You are terse about {{ topic }}.")
                .unwrap()
                .with_inference(&params(
                    json!({"max_tokens": 12, "extra_body": {"logprobs": true}}),
                ))
                .unwrap(),
        )
    })
    .await;
    assert_eq!(result.report.records_written, 2);
    assert_eq!(rows.len(), 2);
    let requests = chat_requests(&server);
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            r.body,
            json!({
                "model": "m1",
                "messages": [
                    {"role": "system", "content": "You are terse about lamps."},
                    {"role": "user", "content": "Write about lamps"}
                ],
                "temperature": 0.7,
                "top_p": 0.95,
                "max_tokens": 12,
                "stop": ["\n\n", "END"],
                "seed": 11,
                "frequency_penalty": 0.25,
                "metadata": {"run": "t"},
                "logprobs": true
            })
        );
        assert_eq!(r.header("openai-organization"), Some("org-weir"));
        assert_eq!(r.header("x-trace"), Some("abc 123"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

fn product_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "price": {"type": "number", "minimum": 0}
        },
        "required": ["name", "price"],
        "additionalProperties": false
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_replies_are_sent_as_json_schema_parsed_and_nested() {
    let server = LoopbackServer::start(
        LoopbackConfig::new()
            .record_requests()
            .chat_content(r#"{"name": "Lumo", "price": 12.5}"#),
    )
    .await
    .expect("bind");
    let (result, rows) = run(&server, 2, |m| {
        Arc::new(
            LlmStructured::new(m, "writer", "Invent {{ topic }}", "out", product_schema()).unwrap(),
        )
    })
    .await;
    assert_eq!(result.report.records_written, 2);
    assert_eq!(rows[0]["out"], json!({"name": "Lumo", "price": 12.5}));
    let body = &chat_requests(&server)[0].body;
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "schema": product_schema()}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_structured_replies_are_retried_then_counted_as_dropped_rows() {
    let server = LoopbackServer::start(LoopbackConfig::new().record_requests())
        .await
        .expect("bind");
    // The first ask is not JSON, the second is valid.
    server.push_faults([
        Fault::Content("Sure! Here is a product: Lumo".into()),
        Fault::Content(r#"{"name": "Lumo", "price": 3}"#.into()),
    ]);
    let (result, rows) = run(&server, 1, |m| {
        Arc::new(
            LlmStructured::new(m, "writer", "Invent {{ topic }}", "out", product_schema())
                .unwrap()
                .with_invalid_output_retries(2)
                .unwrap(),
        )
    })
    .await;
    assert_eq!(result.report.records_written, 1);
    assert_eq!(rows[0]["out"], json!({"name": "Lumo", "price": 3}));
    assert_eq!(chat_requests(&server).len(), 2);

    // Every reply breaks the schema: 3 asks per row, then the row is dropped and counted.
    let bad = LoopbackServer::start(
        LoopbackConfig::new()
            .record_requests()
            .chat_content(r#"{"name": "Lumo", "price": -1}"#),
    )
    .await
    .expect("bind");
    let (result, rows) = run(&bad, 2, |m| {
        Arc::new(
            LlmStructured::new(m, "writer", "Invent {{ topic }}", "out", product_schema()).unwrap(),
        )
    })
    .await;
    assert!(rows.is_empty());
    assert_eq!(result.report.rows_dropped, 2);
    assert_eq!(
        result
            .report
            .drop_causes
            .get("non_retryable:invalid_structured_output"),
        Some(&2)
    );
    let f = &result.report.failures[0];
    assert_eq!(f.column, "out");
    assert_eq!(f.model.as_deref(), Some("writer"));
    assert_eq!(f.cause, "non_retryable:invalid_structured_output");
    assert_eq!(f.count, 2);
    assert!(
        f.first_message.contains("3 attempt(s)"),
        "{}",
        f.first_message
    );
    assert!(
        f.first_message.contains("/properties/price/minimum"),
        "{}",
        f.first_message
    );
    assert_eq!(chat_requests(&bad).len(), 6);
}

fn judge(m: &ModelRegistry) -> Arc<dyn ColumnGenerator> {
    Arc::new(
        LlmJudge::with_scores(
            m,
            "writer",
            "Rate this {{ topic }} text",
            vec![
                JudgeScore::new("clarity", 1, 10).with_description("How clear it is"),
                JudgeScore::new("accuracy", 1, 5),
            ],
        )
        .unwrap()
        .with_invalid_output_retries(1)
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_scores_come_from_structured_replies_one_field_per_score() {
    let server = LoopbackServer::start(
        LoopbackConfig::new()
            .record_requests()
            .chat_content(r#"{"clarity": 7, "accuracy": 4}"#),
    )
    .await
    .expect("bind");
    let (result, rows) = run(&server, 2, judge).await;
    assert_eq!(result.report.records_written, 2);
    assert_eq!(rows[1]["out"], json!({"clarity": 7, "accuracy": 4}));
    let format = &chat_requests(&server)[0].body["response_format"];
    assert_eq!(format["type"], json!("json_schema"));
    assert_eq!(
        format["json_schema"]["schema"]["properties"]["clarity"],
        json!({"type": "integer", "minimum": 1, "maximum": 10, "description": "How clear it is"})
    );
    assert_eq!(
        format["json_schema"]["schema"]["required"],
        json!(["clarity", "accuracy"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_judge_reply_is_a_counted_failure_not_a_guess() {
    let server = LoopbackServer::start(
        LoopbackConfig::new()
            .record_requests()
            .chat_content("On a scale of 1 to 10, I'd give it 7"),
    )
    .await
    .expect("bind");
    let (result, rows) = run(&server, 1, judge).await;
    assert!(rows.is_empty(), "no guessed score is written: {rows:?}");
    assert_eq!(result.report.rows_dropped, 1);
    let f = &result.report.failures[0];
    assert_eq!(f.cause, "non_retryable:invalid_structured_output");
    assert!(f.first_message.contains("not JSON"), "{}", f.first_message);
    assert!(
        !f.first_message.contains("scale"),
        "the reply is never echoed"
    );
    assert_eq!(chat_requests(&server).len(), 2, "1 ask + 1 retry");
}
