//! Seed files: indexing, typed errors naming the line, reading rows back.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

fn file(name: &str, text: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "weir-seed-unit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn open(name: &str, text: &str, format: SeedFormat) -> Result<SeedDataset, SeedError> {
    SeedDataset::open(&file(name, text), format)
}

#[test]
fn jsonl_columns_are_the_first_objects_keys_in_order() {
    let ds = open(
        "s.jsonl",
        "{\"zeta\": 1, \"alpha\": \"a\"}\n\n{\"alpha\": \"b\"}\r\n{\"zeta\": [1,2], \"alpha\": null}",
        SeedFormat::Jsonl,
    )
    .expect("valid");
    assert_eq!(ds.columns(), ["zeta", "alpha"]);
    assert_eq!(ds.rows(), 3);
    assert_eq!(ds.read_row(0).expect("row"), vec![json(1), json("a")]);
    assert_eq!(ds.read_row(1).expect("row"), vec![Value::Null, json("b")]);
    assert_eq!(
        ds.read_row(2).expect("row"),
        vec![json([1, 2]), Value::Null]
    );
    assert_eq!(
        ds.read_column(&[2, 0, 0, 1], 1).expect("column"),
        vec![Value::Null, json("a"), json("a"), json("b")]
    );
}

fn json(v: impl Into<Value>) -> Value {
    v.into()
}

#[test]
fn csv_columns_are_the_header_and_quoted_newlines_stay_in_one_record() {
    let ds = open(
        "s.csv",
        "\u{feff}country,motto\nFrance,\"libert\u{e9}, \"\"\u{e9}galit\u{e9}\"\"\"\n\nJapan,\"two\nlines\"\nPeru,x\n",
        SeedFormat::Csv,
    )
    .expect("valid");
    assert_eq!(ds.columns(), ["country", "motto"]);
    assert_eq!(ds.rows(), 3);
    assert_eq!(
        ds.read_row(0).expect("row"),
        vec![json("France"), json("libert\u{e9}, \"\u{e9}galit\u{e9}\"")]
    );
    assert_eq!(
        ds.read_row(1).expect("row"),
        vec![json("Japan"), json("two\nlines")]
    );
    assert_eq!(ds.read_row(2).expect("row"), vec![json("Peru"), json("x")]);
}

#[test]
fn bad_jsonl_lines_are_typed_errors_naming_the_line() {
    let j = SeedFormat::Jsonl;
    let e = open("a.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\": }\n", j).unwrap_err();
    assert!(matches!(e, SeedError::BadJson { line: 3, .. }), "{e:?}");
    assert!(e.to_string().starts_with("line 3: not valid JSON"), "{e}");
    let e = open("a.jsonl", "{\"a\":1}\n[1]\n", j).unwrap_err();
    assert_eq!(
        e,
        SeedError::NotAnObject {
            line: 2,
            found: "an array"
        }
    );
    let e = open("a.jsonl", "{\"a\":1}\n\n\"x\"\n", j).unwrap_err();
    assert_eq!(e.line(), Some(3));
    let e = open("a.jsonl", "{\"a\":1}\n{\"b\":1}\n", j).unwrap_err();
    assert_eq!(
        e,
        SeedError::UnknownKey {
            line: 2,
            key: "b".into()
        }
    );
    let e = open("a.jsonl", "{\"a\":1,\"a\":2}\n", j).unwrap_err();
    assert!(matches!(e, SeedError::DuplicateKey { line: 1, .. }));
    assert_eq!(open("a.jsonl", "", j).unwrap_err(), SeedError::Empty);
    assert_eq!(open("a.jsonl", "\n  \n", j).unwrap_err(), SeedError::Empty);
    assert!(matches!(
        open("a.jsonl", "{}\n", j).unwrap_err(),
        SeedError::BadHeader { line: 1, .. }
    ));
}

#[test]
fn bad_csv_files_are_typed_errors_naming_the_line() {
    let c = SeedFormat::Csv;
    let e = open("a.csv", "a,b\n1,2\n3\n", c).unwrap_err();
    assert_eq!(
        e,
        SeedError::Ragged {
            line: 3,
            expected: 2,
            found: 1
        }
    );
    assert_eq!(e.to_string(), "line 3: 1 field(s), the header has 2");
    let e = open("a.csv", "a,b\n1,\"x\ny\"\n3,4,5\n", c).unwrap_err();
    assert_eq!(e.line(), Some(4), "{e}");
    assert_eq!(open("a.csv", "", c).unwrap_err(), SeedError::Empty);
    assert_eq!(open("a.csv", "a,b\n", c).unwrap_err(), SeedError::Empty);
    assert!(matches!(
        open("a.csv", "a,a\n1,2\n", c).unwrap_err(),
        SeedError::BadHeader { line: 1, .. }
    ));
    assert!(matches!(
        open("a.csv", "a,\n1,2\n", c).unwrap_err(),
        SeedError::BadHeader { line: 1, .. }
    ));
    let path = file("bad.csv", "");
    std::fs::write(&path, b"a,b\n1,\xff\n").expect("write");
    let e = SeedDataset::open(&path, c).unwrap_err();
    assert!(matches!(e, SeedError::BadCsv { line: 2, .. }), "{e:?}");
}

#[test]
fn a_missing_file_or_a_directory_cannot_be_opened() {
    let e =
        SeedDataset::open(Path::new("/nonexistent/weir/seed.csv"), SeedFormat::Csv).unwrap_err();
    assert!(matches!(e, SeedError::Open { .. }), "{e:?}");
    let dir = std::env::temp_dir();
    assert!(matches!(
        SeedDataset::open(&dir, SeedFormat::Jsonl).unwrap_err(),
        SeedError::Open { .. }
    ));
}

#[test]
fn an_overlong_record_is_refused_without_buffering_the_rest_of_the_file() {
    let big = "x".repeat((MAX_SEED_RECORD_BYTES + 10) as usize);
    let e = open(
        "big.jsonl",
        &format!("{{\"a\":1}}\n{big}\n"),
        SeedFormat::Jsonl,
    )
    .unwrap_err();
    assert_eq!(e, SeedError::TooLong { line: 2 });
    // An unclosed quote would otherwise swallow the rest of the file into one record.
    let e = open("big.csv", &format!("a\n1\n\"{big}\n"), SeedFormat::Csv).unwrap_err();
    assert_eq!(e, SeedError::TooLong { line: 3 });
}

#[test]
fn a_file_changed_after_indexing_is_refused_at_read_time() {
    let path = file("c.jsonl", "{\"a\":1}\n{\"a\":2}\n");
    let ds = SeedDataset::open(&path, SeedFormat::Jsonl).expect("valid");
    let before = ds.content_hash();
    std::fs::write(&path, "{\"a\":1}\n{\"a\":22}\n").expect("rewrite");
    assert_eq!(ds.read_row(1).unwrap_err(), SeedError::Changed);
    let again = SeedDataset::open(&path, SeedFormat::Jsonl).expect("valid");
    assert_ne!(again.content_hash(), before, "the hash sees the edit");
}

#[test]
fn a_large_seed_file_keeps_four_bytes_per_record_and_none_of_its_rows() {
    // 200,000 lines of ~120 bytes (24 MB): the index is ~800 KB, not the rows.
    let pad = "p".repeat(100);
    let text: String = (0..200_000)
        .map(|i| format!("{{\"id\":{i},\"pad\":\"{pad}\"}}\n"))
        .collect();
    let ds = open("large.jsonl", &text, SeedFormat::Jsonl).expect("valid");
    assert_eq!(ds.rows(), 200_000);
    assert!(ds.index_bytes() <= 4 * 200_000 + 64, "{}", ds.index_bytes());
    assert_eq!(ds.read_row(123_456).expect("row")[0], json(123_456));
    let rows: Vec<u64> = (0..1000)
        .map(|i| SeedSampling::Shuffle.seed_row(ds.rows(), 1, i))
        .collect();
    let ids = ds.read_column(&rows, 0).expect("column");
    assert!(ids.iter().zip(&rows).all(|(v, r)| *v == json(*r)));
}
