//! Inference parameters and structured output from a spec (issue 15, deliverables 3–5): the
//! built `weir` binary against weir-testkit's loopback server (request bodies and headers as
//! the spec gives them; invalid structured replies retried, then counted as dropped rows in
//! the exit code, `summary.json` and the failure report), and the typed errors of bad
//! configuration, each naming its field.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};
use weir_cli::spec::WorkflowSpec;
use weir_testkit::{LoopbackConfig, LoopbackServer, RecordedRequest};

const KEY: &str = "sk-structured-test";

fn spec(base_url: &str, records: u64) -> Value {
    json!({
        "name": "structured-http", "records": records, "seed": 3, "buffer_size": records,
        "providers": [{"name": "remote", "kind": "openai", "base_url": base_url,
                       "api_key_env": "WEIR_STRUCTURED_KEY", "timeout_s": 10, "pool_size": 4,
                       "extra_headers": {"OpenAI-Organization": "org-weir", "X-Team": "data"}}],
        "models": [{"alias": "writer", "provider": "remote", "model_id": "m1",
                    "max_parallel_requests": 2,
                    "inference": {"temperature": 0.3, "max_tokens": 200, "seed": 9,
                                  "extra_body": {"user": "weir-test"}}}],
        "columns": [
            {"name": "topic", "kind": "sampler", "sampler": {"type": "category", "values": ["lamps"]}},
            {"name": "product", "kind": "llm_structured", "model": "writer",
             "system_prompt": "Answer with JSON only.",
             "prompt": "Invent one of {{ topic }}",
             "inference": {"max_tokens": 50, "stop": "END"},
             "invalid_output_retries": 1,
             "schema": {"type": "object",
                        "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
                        "required": ["name", "price"]}},
            {"name": "pitch", "kind": "expression", "template": "{{ product.name }} for {{ product.price }}"}
        ]
    })
}

struct Run {
    out: Output,
    dir: PathBuf,
    requests: Vec<RecordedRequest>,
}

impl Run {
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("out").join(name)).expect(name)
    }
    fn summary(&self) -> Value {
        serde_json::from_str(&self.file("summary.json")).expect("JSON")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `spec(base_url, records)` against a loopback server answering `content` to every chat.
fn run(tag: &str, content: &str, records: u64) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(LoopbackServer::start(
            LoopbackConfig::new()
                .api_key(KEY)
                .record_requests()
                .chat_content(content),
        ))
        .expect("bind 127.0.0.1");
    let dir = std::env::temp_dir().join(format!("weir-structured-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("spec.json");
    std::fs::write(&file, spec(&server.base_url(), records).to_string()).expect("write spec");
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", file.to_str().expect("utf8"), "--quiet", "--out"])
        .arg(dir.join("out"))
        .env("WEIR_STRUCTURED_KEY", KEY)
        .output()
        .expect("spawn weir");
    let requests = server.requests();
    Run { out, dir, requests }
}

#[test]
fn the_spec_s_parameters_reach_the_request_and_nested_fields_the_dataset() {
    let r = run("ok", r#"{"name": "Lumo", "price": 12.5}"#, 2);
    assert_eq!(
        r.out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&r.out.stderr)
    );
    assert_eq!(r.requests.len(), 2);
    let req = &r.requests[0];
    assert_eq!(
        req.body,
        json!({
            "model": "m1",
            "messages": [
                {"role": "system", "content": "Answer with JSON only."},
                {"role": "user", "content": "Invent one of lamps"}
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "product", "schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
                "required": ["name", "price"]}}},
            "temperature": 0.3,
            "max_tokens": 50,
            "stop": "END",
            "seed": 9,
            "user": "weir-test"
        })
    );
    assert_eq!(req.header("openai-organization"), Some("org-weir"));
    assert_eq!(req.header("x-team"), Some("data"));
    let first: Value =
        serde_json::from_str(r.file("dataset.jsonl").lines().next().expect("a row")).expect("JSON");
    assert_eq!(first["product"], json!({"name": "Lumo", "price": 12.5}));
    assert_eq!(first["pitch"], json!("Lumo for 12.5"));
    // Keys in declared column order, the structured value nested under its column.
    let line = r.file("dataset.jsonl");
    let order: Vec<usize> = ["\"topic\"", "\"product\"", "\"pitch\""]
        .iter()
        .map(|k| line.find(k).expect("key"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{line}");
}

#[test]
fn invalid_structured_replies_are_retried_then_dropped_and_counted() {
    let r = run("invalid", "Sure! The product is called Lumo.", 3);
    let stderr = String::from_utf8_lossy(&r.out.stderr).to_string();
    assert_eq!(
        r.out.status.code(),
        Some(4),
        "rows dropped → exit 4; stderr: {stderr}"
    );
    // 1 ask + 1 retry per row.
    assert_eq!(r.requests.len(), 6);
    let summary = r.summary();
    assert_eq!(summary["records_written"], json!(0));
    assert_eq!(summary["rows_dropped"], json!(3));
    let f = &summary["failures"][0];
    assert_eq!(f["column"], json!("product"));
    assert_eq!(f["model"], json!("writer"));
    assert_eq!(f["cause"], json!("non_retryable:invalid_structured_output"));
    assert_eq!(f["count"], json!(3));
    let message = f["first_message"].as_str().expect("message");
    assert!(
        message.contains("2 attempt(s)") && message.contains("not JSON"),
        "{message}"
    );
    assert!(
        !message.contains("Lumo"),
        "the reply is never echoed: {message}"
    );
    assert!(stderr.contains("invalid_structured_output"), "{stderr}");
    assert!(!stderr.contains("Lumo"), "{stderr}");
}

/// The first error of `doc` (after `mutate`), as `path: message`.
fn errors_of(mutate: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut doc = spec("http://127.0.0.1:9/v1", 2);
    doc["columns"].as_array_mut().expect("columns").push(
        json!({"name": "review", "kind": "llm_judge", "model": "writer",
                     "prompt": "Rate {{ product.name }}",
                     "scores": [{"name": "clarity", "min": 1, "max": 10}]}),
    );
    mutate(&mut doc);
    match WorkflowSpec::parse_and_validate(&doc.to_string()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(errors: &[String], path: &str, words: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(words)),
        "no `{path}: …{words}…` in {errors:#?}"
    );
}

#[test]
fn the_base_spec_is_valid() {
    assert_eq!(errors_of(|_| {}), Vec::<String>::new());
}

#[test]
fn bad_inference_settings_are_typed_errors_naming_the_field() {
    let e = errors_of(|d| d["models"][0]["inference"]["temprature"] = json!(1));
    assert_error(&e, "models[0].inference.temprature", "unknown field");
    let e = errors_of(|d| {
        d["models"][0]["inference"]["max_tokens"] = json!(0);
        d["columns"][1]["inference"]["top_p"] = json!(1.5);
        d["columns"][1]["inference"]["extra_body"] = json!({"messages": []});
    });
    assert_error(&e, "models[0].inference.max_tokens", "1..=1000000");
    assert_error(&e, "columns[1].inference.top_p", "(0, 1]");
    assert_error(&e, "columns[1].inference.extra_body.messages", "reserved");
    let e = errors_of(|d| d["columns"][1]["inference"]["max_tokens"] = json!(-1));
    assert_error(&e, "columns[1].inference.max_tokens", "invalid value");
    let e = errors_of(|d| d["columns"][2]["inference"] = json!({"temperature": 1}));
    assert_error(
        &e,
        "columns[2].inference",
        "not used by columns of kind \"expression\"",
    );
}

#[test]
fn bad_structured_and_judge_settings_are_typed_errors_naming_the_field() {
    let e = errors_of(|d| d["columns"][1]["schema"] = json!(["name"]));
    assert_error(&e, "columns[1].schema", "JSON Schema object");
    let e = errors_of(|d| d["columns"][1]["schema"] = json!({"type": "string"}));
    assert_error(&e, "columns[1].schema", "must describe an object");
    let e = errors_of(|d| d["columns"][1]["schema"]["properties"]["name"]["type"] = json!("text"));
    assert_error(&e, "columns[1].schema", "not a valid JSON Schema");
    let e = errors_of(|d| {
        d["columns"][1]
            .as_object_mut()
            .expect("column")
            .remove("schema");
    });
    assert_error(
        &e,
        "columns[1].schema",
        "required for columns of kind \"llm_structured\"",
    );
    let e = errors_of(|d| d["columns"][1]["invalid_output_retries"] = json!(11));
    assert_error(&e, "columns[1].invalid_output_retries", "0..=10");
    let e = errors_of(|d| {
        d["columns"][3]["scores"] = json!([
            {"name": "clarity", "min": 8, "max": 3},
            {"name": "clarity"},
            {"name": "a.b"}
        ]);
    });
    assert_error(&e, "columns[3].scores[0].min", "must be ≤ max");
    assert_error(&e, "columns[3].scores[1].name", "duplicate score name");
    assert_error(&e, "columns[3].scores[2].name", "letters, digits");
    let e = errors_of(|d| d["columns"][3]["scores"] = json!([]));
    assert_error(&e, "columns[3].scores", "1..=64");
    let e = errors_of(|d| d["columns"][3]["scores"][0]["weight"] = json!(2));
    assert_error(&e, "columns[3].scores[0].weight", "unknown field");
    let e = errors_of(|d| d["columns"][0]["schema"] = json!({"type": "object"}));
    assert_error(
        &e,
        "columns[0].schema",
        "not used by columns of kind \"sampler\"",
    );
    let e = errors_of(|d| d["columns"][2]["name"] = json!("pitch.v2"));
    assert_error(&e, "columns[2].name", "may not contain '.'");
    let e = errors_of(|d| d["columns"][1]["system_prompt"] = json!("About {{ nope }}"));
    assert_error(&e, "columns[1].system_prompt", "unknown column \"nope\"");
    // Nested fields that can never exist are caught before the run.
    let e = errors_of(|d| d["columns"][3]["prompt"] = json!("Rate {{ product.nmae }}"));
    assert_error(
        &e,
        "columns[3].prompt",
        "column \"product\" has no field \"nmae\"",
    );
    let e = errors_of(|d| {
        d["columns"][2]["template"] = json!("{{ review.clarty }}");
        d["columns"][2]["depends_on"] = json!([]);
    });
    assert_error(
        &e,
        "columns[2].template",
        "judge column \"review\" has no score \"clarty\"",
    );
    // A schema that declares itself open may hold more fields: no error.
    assert_eq!(
        errors_of(|d| {
            d["columns"][3]["prompt"] = json!("Rate {{ product.colour }}");
            d["columns"][1]["schema"]["additionalProperties"] = json!(true);
        }),
        Vec::<String>::new()
    );
}

#[test]
fn bad_extra_headers_are_typed_errors_naming_the_header() {
    let e = errors_of(|d| {
        d["providers"][0]["extra_headers"] =
            json!({"Authorization": "Bearer x", "Bad Name": "v", "X-Ok": "line\nbreak"});
    });
    assert_error(
        &e,
        "providers[0].extra_headers.Authorization",
        "set by weir itself",
    );
    assert_error(
        &e,
        "providers[0].extra_headers.Bad Name",
        "not a valid HTTP header name",
    );
    assert_error(
        &e,
        "providers[0].extra_headers.X-Ok",
        "not allowed in an HTTP header",
    );
    assert!(
        !e.iter()
            .any(|m| m.contains("Bearer x") || m.contains("line\nbreak")),
        "header values are never shown: {e:#?}"
    );
}

#[test]
fn the_structured_example_runs_on_the_simulated_provider_with_valid_nested_values() {
    let dir = std::env::temp_dir().join(format!("weir-structured-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "structured", "--records", "20", "--quiet", "--out"])
        .arg(&dir)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("spawn weir");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("dataset.jsonl")).expect("dataset");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(rows.len(), 20);
    for row in &rows {
        let product = &row["product"];
        let price = product["price"].as_f64().expect("price");
        assert!((1.0..=500.0).contains(&price), "{row}");
        assert!(
            ["black", "white", "green", "oak"]
                .contains(&product["colour"].as_str().expect("colour")),
            "{row}"
        );
        let clarity = row["review"]["clarity"].as_i64().expect("clarity");
        let appeal = row["review"]["appeal"].as_i64().expect("appeal");
        assert!(
            (1..=10).contains(&clarity) && (1..=5).contains(&appeal),
            "{row}"
        );
        assert_eq!(
            row["summary"],
            json!(format!(
                "{}: clarity {clarity}/10, appeal {appeal}/5",
                product["name"].as_str().expect("name")
            ))
        );
        // The column's max_tokens (24) bounds the simulated reply.
        let words = row["blurb"].as_str().expect("blurb").split(' ').count();
        assert_eq!(words, 24, "{row}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
