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
            "at line 43 column 11",
        ),
        (
            "missing",
            "    kind: expression\n",
            "",
            "columns[5].kind: required field is missing",
            "(line 46 column 5)",
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
