//! Issue 15, writing and checking specs: datasets in declared column order, `--format csv`,
//! YAML specs, and `weir preview`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn weir")
}

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-authoring-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const QUICKSTART_COLUMNS: [&str; 6] = ["topic", "level", "draft", "summary", "score", "title"];

/// The keys of one JSON object line, in the order they appear in the text.
fn key_order(line: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(line).expect("a JSON line");
    let Value::Object(map) = value else {
        panic!("not an object: {line}")
    };
    let mut keys: Vec<(usize, String)> = map
        .keys()
        .map(|k| {
            let at = line.find(&format!("\"{k}\":")).expect("key in the text");
            (at, k.clone())
        })
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn jsonl_keys_and_csv_header_follow_the_declared_columns() {
    let spec = example("quickstart.json");
    let jsonl = scratch("jsonl");
    let o = run(&[
        "run",
        path_str(&spec),
        "--records",
        "20",
        "--out",
        path_str(&jsonl),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(jsonl.join("dataset.jsonl")).expect("dataset");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20);
    for line in &lines {
        assert_eq!(key_order(line), QUICKSTART_COLUMNS, "{line}");
    }

    let csv_dir = scratch("csv");
    let o = run(&[
        "run",
        path_str(&spec),
        "--records",
        "20",
        "--out",
        path_str(&csv_dir),
        "--quiet",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!csv_dir.join("dataset.jsonl").exists());
    let mut reader = csv::Reader::from_path(csv_dir.join("dataset.csv")).expect("dataset.csv");
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, QUICKSTART_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 20);
    // Same records as the JSONL run: strings as they are, numbers as their JSON text.
    for (row, line) in rows.iter().zip(&lines) {
        let value: Value = serde_json::from_str(line).expect("JSON");
        for (i, c) in QUICKSTART_COLUMNS.iter().enumerate() {
            let want = match &value[*c] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(&row[i], want, "column {c}");
        }
    }

    // The finished CSV run is not resumed as JSONL (nor the other way round): exit 2 naming it.
    let o = run(&[
        "run",
        path_str(&spec),
        "--records",
        "20",
        "--out",
        path_str(&csv_dir),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("format (checkpoint csv, this run jsonl)"),
        "{}",
        stderr(&o)
    );
    // The same CSV command again: already finished, nothing touched.
    let before = std::fs::read(csv_dir.join("dataset.csv")).expect("csv");
    let o = run(&[
        "run",
        path_str(&spec),
        "--records",
        "20",
        "--out",
        path_str(&csv_dir),
        "--quiet",
        "--format",
        "csv",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(csv_dir.join("dataset.csv")).expect("csv"),
        before
    );
    let _ = std::fs::remove_dir_all(&jsonl);
    let _ = std::fs::remove_dir_all(&csv_dir);
}

#[test]
fn the_yaml_twin_of_quickstart_is_the_same_spec_and_the_same_dataset() {
    use weir_cli::spec::WorkflowSpec;
    let json = example("quickstart.json");
    let yaml = example("quickstart.yaml");
    let (from_json, _) = WorkflowSpec::load(&json).expect("JSON spec");
    let (from_yaml, _) = WorkflowSpec::load(&yaml).expect("YAML spec");
    assert_eq!(from_yaml, from_json);

    let o = run(&["validate", path_str(&yaml)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut datasets = Vec::new();
    for spec in [&json, &yaml] {
        let out = scratch("twin");
        let o = run(&[
            "run",
            path_str(spec),
            "--records",
            "200",
            "--out",
            path_str(&out),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        datasets.push(std::fs::read(out.join("dataset.jsonl")).expect("dataset"));
        let _ = std::fs::remove_dir_all(&out);
    }
    assert_eq!(datasets[0].len(), datasets[1].len());
    assert!(datasets[0] == datasets[1], "YAML and JSON datasets differ");
}

/// A copy of the YAML quickstart with one edit, in a scratch directory.
fn edited_yaml(tag: &str, from: &str, to: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(tag);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let text = std::fs::read_to_string(example("quickstart.yaml")).expect("yaml");
    assert!(text.contains(from), "{from:?} not in the example");
    let file = dir.join(format!("{tag}.yml"));
    std::fs::write(&file, text.replacen(from, to, 1)).expect("write");
    (dir, file)
}

#[test]
fn yaml_errors_name_the_json_path_and_the_yaml_line() {
    let cases = [
        (
            "unknown-field",
            "max_parallel_requests: 32}",
            "max_parallel_requests: 32, rate_limits: {rpm: 5}}",
            "models[1].rate_limits.rpm: unknown field `rpm`, expected one of `requests_per_minute`",
            "at line 25 column",
        ),
        (
            "bad-indent",
            "    kind: simulated",
            "      kind: simulated",
            "providers[0]: mapping values are not allowed in this context",
            "at line 12 column 11",
        ),
        (
            "wrong-type",
            "records: 1000",
            "records: many",
            "records: invalid type: string \"many\", expected u64",
            "at line 5 column 10",
        ),
        (
            "unknown-variant",
            "kind: llm_judge",
            "kind: llm_judg",
            "columns[4].kind: unknown variant `llm_judg`",
            "at line 48 column 11",
        ),
        (
            "missing",
            "    kind: expression\n",
            "",
            "columns[5].kind: required field is missing",
            "(line 51 column 5)",
        ),
    ];
    for (tag, from, to, message, position) in cases {
        let (dir, file) = edited_yaml(tag, from, to);
        let o = run(&["validate", path_str(&file)]);
        assert_eq!(o.status.code(), Some(2), "{tag}");
        let err = stderr(&o);
        assert!(err.contains(message), "{tag}: {err}");
        assert!(err.contains(position), "{tag}: {err}");
        // `weir run` reads YAML the same way, and bad input creates no output directory.
        let out = dir.join("out");
        let o = run(&["run", path_str(&file), "--out", path_str(&out), "--quiet"]);
        assert_eq!(o.status.code(), Some(2), "{tag}");
        assert!(stderr(&o).contains(message), "{tag}: {}", stderr(&o));
        assert!(!out.exists(), "{tag}: an output directory was created");
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Meaning errors are the same checks as for JSON, all listed at once.
    let (dir, file) = edited_yaml("meaning", "model: judge\n", "model: juge\n");
    let o = run(&["validate", path_str(&file)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(r#"columns[4].model: unknown model alias "juge""#),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("spawn weir")
}

/// Every file under `dir`: relative path → (bytes, modification time).
fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir").to_path_buf();
                let bytes = std::fs::read(&path).expect("read");
                out.insert(rel, (bytes, meta.modified().expect("mtime")));
            }
        }
    }
    out
}

#[test]
fn preview_prints_the_first_records_and_a_line_per_model() {
    let spec = example("quickstart.yaml");
    let o = run(&["preview", path_str(&spec), "-n", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout.clone()).expect("utf8");
    let printed: Vec<Value> = serde_json::from_str(&stdout).expect("a JSON array on stdout");
    assert_eq!(printed.len(), 3);
    assert!(
        stdout.contains("\n  {\n    \"topic\": "),
        "pretty: {stdout}"
    );
    // The same records `weir run --records 3` writes, keys in declared order.
    let out = scratch("preview-vs-run");
    let r = run(&[
        "run",
        path_str(&spec),
        "--records",
        "3",
        "--out",
        path_str(&out),
        "--quiet",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let text = std::fs::read_to_string(out.join("dataset.jsonl")).expect("dataset");
    let written: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(printed, written);
    let first = stdout.find("\"topic\"").expect("topic");
    let last = stdout.find("\"title\"").expect("title");
    assert!(first < last);
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("writer (sim/writer1): 6 calls, 0 429s, latency p50 "),
        "{err}"
    );
    assert!(
        lines[1].starts_with("judge (sim/judge8): 3 calls, 0 429s, latency p50 "),
        "{err}"
    );
    // Default: 5 records.
    let o = run(&["preview", "quickstart"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let printed: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(printed.len(), 5);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn preview_writes_nothing_and_leaves_an_existing_output_byte_identical() {
    let cwd = scratch("preview-cwd");
    std::fs::create_dir_all(&cwd).expect("cwd");
    // A finished run in the default output directory (weir-out/quickstart) and one in --out.
    let spec = example("quickstart.json");
    let o = run_in(
        &cwd,
        &["run", path_str(&spec), "--records", "10", "--quiet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_in(
        &cwd,
        &[
            "run",
            path_str(&spec),
            "--records",
            "10",
            "--out",
            "mine",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let before = tree(&cwd);
    assert!(before.contains_key(Path::new("weir-out/quickstart/dataset.jsonl")));
    assert!(before.contains_key(Path::new("mine/dataset.jsonl")));
    for args in [
        vec!["preview", path_str(&spec)],
        vec!["preview", path_str(&spec), "-n", "10"],
        vec!["preview", "quickstart", "--records", "2", "--seed", "7"],
    ] {
        let o = run_in(&cwd, &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
    assert!(tree(&cwd) == before, "preview changed or created files");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[test]
fn preview_follows_the_run_contract_exit_codes() {
    let dir = scratch("preview-codes");
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, spec: Value| {
        let p = dir.join(format!("{name}.json"));
        std::fs::write(&p, spec.to_string()).expect("write spec");
        p
    };
    // Rows dropped by a validator: exit 4, the surviving rows printed, the failure on stderr.
    let drops = write(
        "drops",
        serde_json::json!({
            "name": "local", "records": 10, "buffer_size": 10,
            "columns": [
                {"name": "t", "kind": "sampler", "sampler": {"type": "category", "values": [null, "a"]}},
                {"name": "v", "kind": "validator", "columns": ["t"]}
            ]
        }),
    );
    let o = run_in(&dir, &["preview", path_str(&drops), "-n", "20"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let printed: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(!printed.is_empty() && printed.len() < 20);
    assert!(printed.iter().all(|r| r["t"] == "a" && r["v"] == true));
    assert!(stderr(&o).contains("the preview dropped"), "{}", stderr(&o));
    // A provider failing every call stops early: exit 3, naming why.
    let failing = write(
        "failing",
        serde_json::json!({
            "name": "failing", "records": 10, "buffer_size": 100,
            "providers": [{"name": "sim", "kind": "simulated", "models": [
                {"model_id": "m", "capacity": 8, "latency_ms": {"dist": "fixed", "value": 1}, "error_rate": 1.0}]}],
            "models": [{"alias": "writer", "provider": "sim", "model_id": "m"}],
            "columns": [
                {"name": "t", "kind": "sampler", "sampler": {"type": "category", "values": ["a", "b"]}},
                {"name": "draft", "kind": "llm_text", "model": "writer", "prompt": "x {{ t }}"}
            ]
        }),
    );
    let o = run_in(&dir, &["preview", path_str(&failing), "-n", "400"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the preview stopped early ("),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("draft × writer × "), "{}", stderr(&o));
    // Bad input: exit 2.
    let o = run_in(&dir, &["preview", path_str(&drops), "-n", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("records"), "{}", stderr(&o));
    let o = run_in(&dir, &["preview", "no-such-spec.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Nothing but the two specs in the directory.
    assert_eq!(tree(&dir).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_bundled_example_validates_against_weir_schema() {
    let o = run(&["schema"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let schema: Value = serde_json::from_slice(&o.stdout).expect("the schema is JSON");
    assert_eq!(schema, weir_cli::spec::WorkflowSpec::json_schema());
    assert_eq!(schema["title"], "WorkflowSpec");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        // Spec files only (`examples/seeds/` holds seed datasets, not specs).
        let is_yaml = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => false,
            Some("yaml" | "yml") => true,
            _ => continue,
        };
        let text = std::fs::read_to_string(&path).expect("read");
        let instance: Value = if is_yaml {
            serde_norway::from_str(&text).expect("YAML example")
        } else {
            serde_json::from_str(&text).expect("JSON example")
        };
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        checked.push(
            path.file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "cross-provider-cooldown.json",
            "dual-model-judge.json",
            "heavy-root.json",
            "quickstart.json",
            "quickstart.yaml",
            "rate-limited.json",
            "readme.yaml",
            "seeded.yaml",
            "structured.json"
        ]
    );
    // The embedded examples are the same files; the schema is not a blanket "anything goes".
    for ex in weir_cli::examples::EXAMPLES {
        let instance: Value = serde_json::from_str(ex.text).expect("JSON");
        assert!(validator.is_valid(&instance), "{}", ex.name);
    }
    let mut wrong: Value =
        serde_json::from_str(&std::fs::read_to_string(example("quickstart.json")).expect("read"))
            .expect("JSON");
    wrong["models"][1]["rate_limits"] = serde_json::json!({"rpm": 5});
    assert!(!validator.is_valid(&wrong));
    let mut wrong_kind = wrong.clone();
    wrong_kind["models"][1]
        .as_object_mut()
        .expect("object")
        .remove("rate_limits");
    assert!(validator.is_valid(&wrong_kind));
    wrong_kind["columns"][4]["kind"] = Value::from("llm_judg");
    assert!(!validator.is_valid(&wrong_kind));
    wrong_kind["columns"][4]["kind"] = Value::from("llm_judge");
    wrong_kind["providers"][0]["models"][0]["latency_ms"]["dist"] = Value::from("uniformm");
    assert!(!validator.is_valid(&wrong_kind));
    // The bounds `weir validate` checks on the top-level counts are in the schema too.
    let mut zero: Value = serde_json::from_str(weir_cli::examples::EXAMPLES[0].text).expect("JSON");
    zero["records"] = Value::from(0);
    assert!(!validator.is_valid(&zero));
    zero["records"] = Value::from(10);
    zero["buffer_size"] = Value::from(2_000_000);
    assert!(!validator.is_valid(&zero));
}

/// The README's YAML example is `examples/readme.yaml`, verbatim: the file is validated with
/// the other bundled examples (and run by `readme_example_runs`), so the README cannot drift.
#[test]
fn the_readme_yaml_example_is_the_bundled_file() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .expect("read README.md");
    let file = std::fs::read_to_string(example("readme.yaml")).expect("read readme.yaml");
    let block = format!("```yaml\n{file}```");
    assert!(
        readme.contains(&block),
        "README.md must show examples/readme.yaml verbatim in a ```yaml block"
    );
    assert!(file.lines().count() <= 15, "the README example stays short");
}

/// It runs on the simulated provider and writes seed columns, a structured value and a score.
#[test]
fn readme_example_runs() {
    let out = std::env::temp_dir().join(format!("weir-readme-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .arg(example("readme.yaml"))
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .status()
        .expect("spawn weir");
    assert!(status.success(), "{status}");
    let dataset = std::fs::read_to_string(out.join("dataset.jsonl")).expect("dataset");
    assert_eq!(dataset.lines().count(), 40);
    for line in dataset.lines() {
        // Seed columns first (the CSV header's order), then the declared ones.
        let at: Vec<usize> = ["country", "capital", "language", "dish", "review"]
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).expect("key"))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
        let row: Value = serde_json::from_str(line).expect("JSON row");
        assert!(row["dish"]["name"].is_string() && row["dish"]["spicy"].is_boolean());
        let score = row["review"]["authenticity"].as_i64().expect("score");
        assert!((1..=10).contains(&score));
    }
    let _ = std::fs::remove_dir_all(&out);
}
