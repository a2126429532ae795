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
