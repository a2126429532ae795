//! Seed datasets end to end (issue 15, deliverable 6): a seed file's rows come first in every
//! record, in the chosen sampling order, and an LLM column's prompt uses them over HTTP on
//! loopback; the path is relative to the spec file (JSON or YAML); bad files are exit 2 with
//! `seed_dataset.path` and the line; a resumed run is byte-identical to an uninterrupted one.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use weir_runtime::seed::SeedSampling;
use weir_testkit::{LoopbackConfig, LoopbackServer};

const KEY_VAR: &str = "WEIR_SEED_TEST_KEY";

fn weir(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(cwd)
        .env(KEY_VAR, "sk-seed-test")
        .output()
        .expect("spawn weir")
}

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-seed-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("specs/seeds")).expect("scratch dir");
    std::fs::create_dir_all(dir.join("elsewhere")).expect("scratch dir");
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The loopback server's deterministic reply to a chat prompt (FNV-1a of the prompt).
fn loopback_reply(model: &str, prompt: &str) -> String {
    let h = prompt.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("loopback:{model}:{h:016x}")
}

const COUNTRIES: [&str; 7] = [
    "France", "Japan", "Brazil", "Kenya", "Peru", "Chile", "Laos",
];

/// A JSONL seed file whose key order (`country`, then `rank`) is not alphabetical.
fn write_seed_jsonl(path: &Path) {
    let text: String = COUNTRIES
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{{\"country\": \"{c}\", \"rank\": {i}}}\n"))
        .collect();
    std::fs::write(path, text).expect("seed file");
}

fn http_spec(base_url: &str, sampling: &str, records: u64) -> Value {
    json!({
        "name": format!("seeded-{sampling}"), "records": records, "seed": 11,
        "buffer_size": 4, "max_concurrent_row_groups": 3,
        "seed_dataset": {"path": "seeds/countries.jsonl", "format": "jsonl", "sampling": sampling},
        "providers": [{
            "name": "remote", "kind": "openai", "base_url": base_url,
            "api_key_env": KEY_VAR, "timeout_s": 10, "pool_size": 8
        }],
        "models": [{"alias": "writer", "provider": "remote", "model_id": "m1", "max_parallel_requests": 8}],
        "columns": [
            {"name": "reply", "kind": "llm_text", "model": "writer",
             "prompt": "Describe {{ country }} (rank {{ rank }})."},
            {"name": "tag", "kind": "expression", "template": "{{ rank }}:{{ country }}"}
        ]
    })
}

fn dataset_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("dataset")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn an_llm_column_over_loopback_sees_seed_rows_in_each_sampling_order() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt
        .block_on(LoopbackServer::start(
            LoopbackConfig::new()
                .capacity(8)
                .latency(Duration::from_millis(2)),
        ))
        .expect("bind 127.0.0.1");
    let dir = scratch("loopback");
    write_seed_jsonl(&dir.join("specs/seeds/countries.jsonl"));
    let records = 20u64;
    let mut orders = Vec::new();
    for sampling in ["ordered", "shuffle", "with_replacement"] {
        let file = dir.join(format!("specs/{sampling}.json"));
        std::fs::write(
            &file,
            http_spec(&server.base_url(), sampling, records).to_string(),
        )
        .expect("spec");
        let out_dir = dir.join(format!("out-{sampling}"));
        // Run from another directory: the seed path is relative to the spec file.
        let o = weir(
            &[
                "run",
                file.to_str().expect("utf8"),
                "--out",
                out_dir.to_str().expect("utf8"),
                "--quiet",
            ],
            &dir.join("elsewhere"),
        );
        assert_eq!(o.status.code(), Some(0), "{sampling}: {}", stderr(&o));
        let how: SeedSampling = serde_json::from_value(json!(sampling)).expect("sampling name");
        let lines = dataset_lines(&out_dir.join("dataset.jsonl"));
        assert_eq!(lines.len() as u64, records);
        let mut order = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let row = how.seed_row(COUNTRIES.len() as u64, 11, i as u64) as usize;
            let country = COUNTRIES[row];
            let prompt = format!("Describe {country} (rank {row}).");
            // Keys: the seed columns first in the file's order, then the declared columns.
            let expected = format!(
                "{{\"country\":\"{country}\",\"rank\":{row},\"reply\":\"{}\",\"tag\":\"{row}:{country}\"}}",
                loopback_reply("m1", &prompt)
            );
            assert_eq!(line, &expected, "{sampling}: record {i}");
            order.push(row);
        }
        orders.push(order);
    }
    let n = COUNTRIES.len();
    assert_eq!(
        orders[0],
        (0..20).map(|i| i % n).collect::<Vec<_>>(),
        "ordered wraps"
    );
    for epoch in orders[1].chunks(n) {
        let mut seen = epoch.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), epoch.len(), "shuffle: no repeat within a pass");
    }
    assert_ne!(orders[1], orders[0], "shuffle is not the file order");
    let first_pass: std::collections::BTreeSet<usize> = orders[2][..n].iter().copied().collect();
    assert!(
        first_pass.len() < n,
        "with_replacement repeats rows: {:?}",
        orders[2]
    );
    let stats = server.stats();
    assert_eq!(stats.in_flight, 0);
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_yaml_example_runs_from_anywhere_and_csv_output_puts_seed_columns_first() {
    let dir = scratch("yaml");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seeded.yaml");
    let example = example.to_str().expect("utf8");
    let o = weir(&["validate", example], &dir.join("elsewhere"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(
            "seed dataset seeds/countries.csv: 8 rows, columns country, capital, language"
        ),
        "{stdout}"
    );
    let out = dir.join("out");
    let o = weir(
        &[
            "run",
            example,
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
            "--format",
            "csv",
        ],
        &dir.join("elsewhere"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.join("dataset.csv")).expect("csv dataset");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        ["country", "capital", "language", "season", "postcard", "label"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 40);
    // shuffle: every one of the 8 seed rows once in each pass of 8 records.
    for pass in rows.chunks(8) {
        let mut countries: Vec<&str> = pass.iter().map(|r| &r[0]).collect();
        countries.sort_unstable();
        countries.dedup();
        assert_eq!(countries.len(), 8);
    }
    // A quoted seed value with a comma survives into the CSV output and the expression.
    let canada = rows.iter().find(|r| &r[0] == "Canada").expect("Canada");
    assert_eq!(&canada[2], "English, French");
    assert!(canada[5].starts_with("Canada / "));
    let _ = std::fs::remove_dir_all(&dir);
}

fn local_spec(path: &str, format: &str) -> Value {
    json!({
        "name": "seed-errors", "records": 10,
        "seed_dataset": {"path": path, "format": format},
        "columns": [
            {"name": "line", "kind": "expression", "template": "{{ a }} and {{ b }}"}
        ]
    })
}

/// `weir validate` on a spec whose seed file holds `seed`: exit code and stderr.
fn validate_with(
    dir: &Path,
    name: &str,
    seed: &[u8],
    format: &str,
    spec: Option<Value>,
) -> (i32, String) {
    std::fs::write(dir.join("specs/seeds").join(name), seed).expect("seed");
    let spec = spec.unwrap_or_else(|| local_spec(&format!("seeds/{name}"), format));
    let file = dir.join("specs/spec.json");
    std::fs::write(&file, spec.to_string()).expect("spec");
    let o = weir(
        &["validate", file.to_str().expect("utf8")],
        &dir.join("elsewhere"),
    );
    (o.status.code().unwrap_or(-1), stderr(&o))
}

#[test]
fn bad_seed_files_are_spec_errors_naming_the_field_and_the_line() {
    let dir = scratch("errors");
    let cases: [(&str, &[u8], &str, &str); 7] = [
        (
            "bad.jsonl",
            b"{\"a\":1,\"b\":2}\n{\"a\":3,\"b\":4}\n{\"a\": oops}\n",
            "jsonl",
            "seed_dataset.path: seeds/bad.jsonl: line 3: not valid JSON",
        ),
        (
            "array.jsonl",
            b"{\"a\":1,\"b\":2}\n[1, 2]\n",
            "jsonl",
            "seed_dataset.path: seeds/array.jsonl: line 2: expected a JSON object, found an array",
        ),
        (
            "ragged.csv",
            b"a,b\n1,2\n3,4\n5\n",
            "csv",
            "seed_dataset.path: seeds/ragged.csv: line 4: 1 field(s), the header has 2",
        ),
        (
            "empty.csv",
            b"",
            "csv",
            "seed_dataset.path: seeds/empty.csv: the seed file holds no record",
        ),
        (
            "header-only.csv",
            b"a,b\n",
            "csv",
            "seed_dataset.path: seeds/header-only.csv: the seed file holds no record",
        ),
        (
            "extra.jsonl",
            b"{\"a\":1,\"b\":2}\n{\"a\":1,\"c\":2}\n",
            "jsonl",
            "seed_dataset.path: seeds/extra.jsonl: line 2: key \"c\" is not a column",
        ),
        (
            "utf8.csv",
            b"a,b\n1,\xff\n",
            "csv",
            "seed_dataset.path: seeds/utf8.csv: line 2: field 2 is not valid UTF-8",
        ),
    ];
    for (name, bytes, format, expected) in cases {
        let (code, err) = validate_with(&dir, name, bytes, format, None);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            !err.contains("unknown column"),
            "{name}: no follow-on errors: {err}"
        );
    }
    // A missing file.
    let (code, err) = validate_with(
        &dir,
        "present.csv",
        b"a,b\n1,2\n",
        "csv",
        Some(local_spec("seeds/missing.csv", "csv")),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("seed_dataset.path: seeds/missing.csv: cannot open the seed file"),
        "{err}"
    );
    // A declared column named like a seed column, and a template naming neither.
    let mut clash = local_spec("seeds/ok.csv", "csv");
    clash["columns"] = json!([
        {"name": "a", "kind": "expression", "template": "{{ b }}"},
        {"name": "c", "kind": "expression", "template": "{{ nowhere }}"}
    ]);
    let (code, err) = validate_with(&dir, "ok.csv", b"a,b\n1,2\n", "csv", Some(clash));
    assert_eq!(code, 2);
    assert!(
        err.contains("columns[0].name: column \"a\" is also a column of the seed dataset"),
        "{err}"
    );
    assert!(
        err.contains(
            "columns[1].template: unknown column \"nowhere\" referenced as {{ nowhere }} \
             (columns: a, b, c)"
        ),
        "{err}"
    );
    // `weir run` refuses the same way, before creating any output.
    let file = dir.join("specs/spec.json");
    std::fs::write(&file, local_spec("seeds/bad.jsonl", "jsonl").to_string()).expect("spec");
    let out = dir.join("out");
    let o = weir(
        &[
            "run",
            file.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("seed_dataset.path: seeds/bad.jsonl: line 3"));
    assert!(!out.exists(), "no output directory for an invalid spec");
    // A valid one runs: the seed columns first, the expression reads them.
    std::fs::write(dir.join("specs/seeds/good.csv"), "b,a\nx,1\ny,2\n").expect("seed");
    std::fs::write(&file, local_spec("seeds/good.csv", "csv").to_string()).expect("spec");
    let o = weir(
        &[
            "run",
            file.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
            "--quiet",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = dataset_lines(&out.join("dataset.jsonl"));
    assert_eq!(lines[0], r#"{"b":"x","a":"1","line":"1 and x"}"#);
    assert_eq!(lines[3], r#"{"b":"y","a":"2","line":"2 and y"}"#);
    let _ = std::fs::remove_dir_all(&dir);
}

fn resume_spec(sampling: &str) -> Value {
    json!({
        "name": "seeded-resume", "records": 3000, "seed": 5,
        "buffer_size": 100, "max_concurrent_row_groups": 2,
        "seed_dataset": {"path": "seeds/rows.csv", "format": "csv", "sampling": sampling},
        "providers": [{"name": "sim", "kind": "simulated", "models": [
            {"model_id": "w", "capacity": 16, "latency_ms": {"dist": "uniform", "min": 5, "max": 15}}
        ]}],
        "models": [{"alias": "writer", "provider": "sim", "model_id": "w", "max_parallel_requests": 16}],
        "columns": [
            {"name": "pick", "kind": "sampler", "sampler": {"type": "uniform_int", "low": 1, "high": 9}},
            {"name": "text", "kind": "llm_text", "model": "writer", "prompt": "{{ word }} {{ id }} {{ pick }}"}
        ]
    })
}

#[test]
fn an_interrupted_then_resumed_seeded_run_is_byte_identical_and_a_changed_seed_file_is_refused() {
    let dir = scratch("resume");
    let seed: String = std::iter::once("id,word\n".to_string())
        .chain((0..997).map(|i| format!("{i},w{}\n", i * 7 % 101)))
        .collect();
    std::fs::write(dir.join("specs/seeds/rows.csv"), &seed).expect("seed");
    let file = dir.join("specs/resume.json");
    std::fs::write(&file, resume_spec("shuffle").to_string()).expect("spec");
    let spec = file.to_str().expect("utf8");
    let clean = dir.join("clean");
    let o = weir(
        &[
            "run",
            spec,
            "--out",
            clean.to_str().expect("utf8"),
            "--quiet",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let resumed = dir.join("resumed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "run",
            spec,
            "--out",
            resumed.to_str().expect("utf8"),
            "--quiet",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written = std::fs::read_to_string(resumed.join("checkpoint.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["row_groups_written"].as_u64())
            .unwrap_or(0);
        if written >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "run ended before the interrupt"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    let first = child.wait_with_output().expect("wait");
    assert_eq!(first.status.code(), Some(130), "{}", stderr(&first));
    let partial = dataset_lines(&resumed.join("dataset.jsonl")).len();
    assert!(
        partial < 3000,
        "interrupted before the end ({partial} lines)"
    );

    // The same spec over a changed seed file is another run: refused, nothing touched.
    std::fs::write(
        dir.join("specs/seeds/rows.csv"),
        seed.replace("w0\n", "w0x\n"),
    )
    .expect("edit");
    let o = weir(
        &[
            "run",
            spec,
            "--out",
            resumed.to_str().expect("utf8"),
            "--quiet",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("workflow spec (fingerprint"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.join("specs/seeds/rows.csv"), &seed).expect("restore");

    let o = weir(
        &[
            "run",
            spec,
            "--out",
            resumed.to_str().expect("utf8"),
            "--quiet",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = std::fs::read(clean.join("dataset.jsonl")).expect("clean");
    let b = std::fs::read(resumed.join("dataset.jsonl")).expect("resumed");
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "interrupted + resumed seeded dataset differs from the uninterrupted one"
    );
    let first_line: Value = serde_json::from_str(
        std::str::from_utf8(&a)
            .expect("utf8")
            .lines()
            .next()
            .expect("line"),
    )
    .expect("json");
    let row = SeedSampling::Shuffle.seed_row(997, 5, 0);
    assert_eq!(first_line["id"], json!(row.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seed_rows_do_not_depend_on_row_group_size_or_concurrency() {
    let dir = scratch("grouping");
    let seed: String = std::iter::once("n\n".to_string())
        .chain((0..13).map(|i| format!("{i}\n")))
        .collect();
    std::fs::write(dir.join("specs/seeds/n.csv"), seed).expect("seed");
    let mut datasets = Vec::new();
    for (buffer, groups) in [(1, 1), (4, 3), (7, 2), (50, 1)] {
        for sampling in ["ordered", "shuffle", "with_replacement"] {
            let spec = json!({
                "name": "grouping", "records": 50, "seed": 3,
                "buffer_size": buffer, "max_concurrent_row_groups": groups,
                "seed_dataset": {"path": "seeds/n.csv", "format": "csv", "sampling": sampling},
                "columns": [
                    {"name": "r", "kind": "sampler", "sampler": {"type": "uniform_int", "low": 0, "high": 99}},
                    {"name": "both", "kind": "expression", "template": "{{ n }}-{{ r }}"}
                ]
            });
            let file = dir.join("specs/grouping.json");
            std::fs::write(&file, spec.to_string()).expect("spec");
            let out = dir.join(format!("out-{buffer}-{sampling}"));
            let o = weir(
                &[
                    "run",
                    file.to_str().expect("utf8"),
                    "--out",
                    out.to_str().expect("utf8"),
                    "--quiet",
                ],
                &dir,
            );
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            datasets.push((
                sampling,
                std::fs::read(out.join("dataset.jsonl")).expect("dataset"),
            ));
        }
    }
    for (sampling, bytes) in &datasets[3..] {
        let same = datasets
            .iter()
            .find(|(s, _)| s == sampling)
            .map(|(_, b)| b)
            .expect("first");
        assert!(
            same == bytes,
            "{sampling}: another grouping, another dataset"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
