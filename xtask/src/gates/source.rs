//! Gates (c), (d), (e), (f): line-based checks over every `.rs` file under `crates/*/src`.
//!
//! These are lexical, line-at-a-time scans, not a Rust parser: string literals and
//! trailing `//` comments on a line are blanked out before matching, but multi-line
//! strings and `/* */` block comments are not understood. Good enough for gates
//! whose violations are easy to rewrite when a false positive ever shows up.

use std::path::Path;

use super::{crate_src_files, display_rel, read_text, Violation};

/// Gate (c) name used in violation output.
pub const REEXPORT_GATE: &str = "reexports";
/// Gate (d) name used in violation output.
pub const MODULE_DOC_GATE: &str = "module-docs";
/// Gate (e) name used in violation output.
pub const UNWRAP_GATE: &str = "unwrap";
/// Gate (f) name used in violation output.
pub const ADMISSION_LAYERING_GATE: &str = "admission-layering";

/// Request-admission modules that hold leases and waiters, never limit algorithms.
const ADMISSION_MECHANISM_FILES: [&str; 2] = [
    "crates/weir-request-admission/src/ledger.rs",
    "crates/weir-request-admission/src/waiters.rs",
];

/// Names of the limit layer (identifier prefixes) that the mechanism files must not use.
const LIMIT_LAYER_NAMES: [&str; 8] = [
    "LimitAlgorithm",
    "DomainLimit",
    "LimitCore",
    "PlanAimd",
    "Goodput",
    "RequestAdmissionPolicy",
    "SlowStart",
    "StartupRamp",
];

/// Gate (c): no `pub use weir_…` / `pub use ::weir_…` in crate sources.
///
/// Each crate exposes its own API; re-exporting another weir crate blurs the
/// dependency table enforced by the deps gate. Restricted visibility such as
/// `pub(crate) use` is not a re-export and is allowed.
pub fn check_reexports(root: &Path) -> Vec<Violation> {
    let mut violations = Vec::new();
    for path in crate_src_files(root) {
        let rel = display_rel(root, &path);
        for (idx, line) in read_text(&path).lines().enumerate() {
            if reexports_weir_crate(&code_part(line)) {
                violations.push(Violation::new(
                    REEXPORT_GATE,
                    format!(
                        "cross-crate re-export at {rel}:{}: `{}` (import it where used instead)",
                        idx + 1,
                        line.trim()
                    ),
                ));
            }
        }
    }
    violations
}

/// Gate (d): every crate source file starts (first non-empty line) with a `//!` doc line.
pub fn check_module_docs(root: &Path) -> Vec<Violation> {
    crate_src_files(root)
        .into_iter()
        .filter(|path| {
            let text = read_text(path);
            let first = text.lines().map(str::trim).find(|l| !l.is_empty());
            !first.is_some_and(|l| l.starts_with("//!"))
        })
        .map(|path| {
            Violation::new(
                MODULE_DOC_GATE,
                format!(
                    "missing module doc: {} must start with a `//!` line saying what it owns",
                    display_rel(root, &path)
                ),
            )
        })
        .collect()
}

/// Gate (e): no `.unwrap()` in non-test crate code, binaries included (they are user-facing).
///
/// Convention this gate relies on: a file's test module sits at the END of the file,
/// so everything from the first line starting with `#[cfg(test)]` onwards is treated
/// as test code and skipped. Files named `tests.rs` or under a `tests/` dir inside
/// `src` (out-of-line `#[cfg(test)] mod tests;`) are skipped entirely. Comment lines
/// (`//`, `///`, `//!`) and trailing comments are ignored. `.expect("…")` is allowed:
/// it documents the invariant that makes the call infallible.
pub fn check_unwraps(root: &Path) -> Vec<Violation> {
    let mut violations = Vec::new();
    for path in crate_src_files(root) {
        let rel = display_rel(root, &path);
        if is_out_of_line_test_file(&rel) {
            continue;
        }
        for (idx, line) in read_text(&path).lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if code_part(line).contains(".unwrap()") {
                violations.push(Violation::new(
                    UNWRAP_GATE,
                    format!(
                        ".unwrap() in library code at {rel}:{} (use `.expect(\"why\")` or propagate the error)",
                        idx + 1
                    ),
                ));
            }
        }
    }
    violations
}

/// Gate (f): request admission's ledger and waiter modules name no limit algorithm (no type
/// of the limit layer, no `limit::` path), so a new algorithm never touches them.
pub fn check_admission_layering(root: &Path) -> Vec<Violation> {
    let mut violations = Vec::new();
    for rel in ADMISSION_MECHANISM_FILES {
        let text = read_text(&root.join(rel));
        for (idx, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = code_part(line);
            let named = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .find(|word| LIMIT_LAYER_NAMES.iter().any(|n| word.starts_with(n)));
            let path = code.contains("limit::");
            if let Some(what) = named.or(path.then_some("limit::")) {
                violations.push(Violation::new(
                    ADMISSION_LAYERING_GATE,
                    format!(
                        "{rel}:{} names the limit layer (`{what}`): ledger and waiter code must \
                         not know limit algorithms",
                        idx + 1
                    ),
                ));
            }
        }
    }
    violations
}

/// Whether `rel` (a `crates/<name>/src/...` path) is a test-only module file.
fn is_out_of_line_test_file(rel: &str) -> bool {
    let mut parts = rel.split('/').skip(3); // crates, <name>, src
    let Some(mut last) = parts.next() else {
        return false;
    };
    let mut under_tests = false;
    for part in parts {
        under_tests |= last == "tests";
        last = part;
    }
    under_tests || last == "tests.rs"
}

/// `line` with string-literal contents blanked and any `//` comment removed, so words
/// inside strings or comments do not count as code.
fn code_part(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push('"');
            }
            // A `'"'` char literal must not open a string.
            '\'' if chars.peek() == Some(&'"') => {
                out.push('\'');
                chars.next();
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// Whether the code on this line contains `pub use weir_…` (or `pub use ::weir_…`,
/// `pub use {weir_…`), with `pub` as a whole word and unrestricted visibility.
fn reexports_weir_crate(code: &str) -> bool {
    let normalized = code.split_whitespace().collect::<Vec<_>>().join(" ");
    normalized.match_indices("pub use ").any(|(start, m)| {
        let prev = normalized[..start].chars().next_back();
        // `pub` must be a whole word (not e.g. `my_pub use`).
        let word_start = !matches!(prev, Some(c) if c.is_alphanumeric() || c == '_');
        let path = normalized[start + m.len()..].trim_start_matches([':', '{', ' ']);
        word_start && path.starts_with("weir_")
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    fn messages(violations: Vec<Violation>) -> Vec<String> {
        violations.into_iter().map(|v| v.message).collect()
    }

    #[test]
    fn ledger_or_waiters_naming_an_algorithm_fail_with_file_line() {
        let fx = Fixture::new("layering-fail")
            .file(
                "crates/weir-request-admission/src/ledger.rs",
                "//! ledger\nuse crate::slab::Slab;\nuse crate::limit::DomainLimit;\n",
            )
            .file(
                "crates/weir-request-admission/src/waiters.rs",
                "//! waiters\nstruct W { g: GoodputPolicyConfig }\n// PlanAimd in a comment\n",
            );
        let v = messages(check_admission_layering(fx.root()));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].starts_with("crates/weir-request-admission/src/ledger.rs:3"));
        assert!(v[0].contains("`DomainLimit`"));
        assert!(v[1].starts_with("crates/weir-request-admission/src/waiters.rs:2"));
    }

    #[test]
    fn ledger_and_waiters_without_algorithms_pass() {
        let fx = Fixture::new("layering-pass")
            .file(
                "crates/weir-request-admission/src/ledger.rs",
                "//! ledger\nuse weir_contracts::RequestDomain;\nconst S: &str = \"Goodput\";\n",
            )
            .file(
                "crates/weir-request-admission/src/waiters.rs",
                "//! waiters\nuse crate::ledger::Grant;\n#[cfg(test)]\nmod t { use crate::limit::X; }\n",
            );
        assert!(check_admission_layering(fx.root()).is_empty());
    }

    #[test]
    fn reexport_of_weir_crate_fails_with_file_line() {
        let fx = Fixture::new("reexport-fail").file(
            "crates/weir-runtime/src/lib.rs",
            "//! runtime\nuse weir_contracts::TaskId;\npub use weir_contracts::Outcome;\n\
             pub use ::weir_telemetry::Event as Ev;\npub use {weir_capacity::Limit};\n",
        );
        let v = messages(check_reexports(fx.root()));
        assert_eq!(v.len(), 3, "{v:#?}");
        assert!(v[0].starts_with("cross-crate re-export at crates/weir-runtime/src/lib.rs:3"));
        assert!(v[1].contains("crates/weir-runtime/src/lib.rs:4"));
        assert!(v[2].contains("crates/weir-runtime/src/lib.rs:5"));
    }

    #[test]
    fn restricted_and_local_reexports_pass() {
        let fx = Fixture::new("reexport-pass").file(
            "crates/weir-runtime/src/lib.rs",
            "//! runtime\npub(crate) use weir_contracts::TaskId;\npub use crate::x::Y;\n\
             // pub use weir_contracts::Old;\nconst S: &str = \"pub use weir_x\";\n\
             pub use self::weir_local::Z;\n",
        );
        assert!(check_reexports(fx.root()).is_empty());
    }

    #[test]
    fn file_without_module_doc_fails_naming_it() {
        let fx = Fixture::new("doc-fail")
            .file(
                "crates/weir-a/src/lib.rs",
                "\n\n//! a: owns things\nmod inner;\n",
            )
            .file(
                "crates/weir-a/src/inner/deep.rs",
                "/// item doc, not a module doc\nfn f() {}\n",
            )
            .file("crates/weir-a/src/empty.rs", "");
        let v = messages(check_module_docs(fx.root()));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].contains("crates/weir-a/src/empty.rs"));
        assert!(v[1].contains("crates/weir-a/src/inner/deep.rs"));
    }

    #[test]
    fn documented_files_pass() {
        let fx = Fixture::new("doc-pass")
            .file("crates/weir-a/src/lib.rs", "//! a\n")
            .file(
                "crates/weir-a/src/bin/tool.rs",
                "  //! tool\nfn main() {}\n",
            );
        assert!(check_module_docs(fx.root()).is_empty());
    }

    #[test]
    fn unwrap_in_library_and_binary_code_fails_with_file_line() {
        let fx = Fixture::new("unwrap-fail")
            .file(
                "crates/weir-a/src/lib.rs",
                "//! a\nfn f() {\n    let x = g().unwrap();\n}\n",
            )
            .file(
                "crates/weir-a/src/main.rs",
                "//! bin\nfn main() {\n    run()\n        .unwrap();\n}\n",
            );
        let v = messages(check_unwraps(fx.root()));
        assert_eq!(
            v,
            [
                ".unwrap() in library code at crates/weir-a/src/lib.rs:3 \
                 (use `.expect(\"why\")` or propagate the error)",
                ".unwrap() in library code at crates/weir-a/src/main.rs:4 \
                 (use `.expect(\"why\")` or propagate the error)",
            ]
        );
    }

    #[test]
    fn unwrap_in_tests_comments_strings_and_expect_pass() {
        let fx = Fixture::new("unwrap-pass")
            .file(
                "crates/weir-a/src/lib.rs",
                "//! a: `.unwrap()` is banned here\n/// x.unwrap()\n\
                 fn f() { g().expect(\"g is total\"); h().unwrap_or(1); } // not .unwrap()\n\
                 const M: &str = \"never .unwrap()\";\n\
                 #[cfg(test)]\nmod tests {\n    fn t() { f().unwrap(); }\n}\n",
            )
            .file(
                "crates/weir-a/src/store/tests.rs",
                "//! tests\nfn t() { x().unwrap(); }\n",
            )
            .file(
                "crates/weir-a/src/tests/helpers.rs",
                "//! helpers\nfn t() { x().unwrap(); }\n",
            );
        let v = messages(check_unwraps(fx.root()));
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn code_part_strips_strings_and_comments() {
        assert_eq!(code_part(r#"let s = "a // b"; // c"#), r#"let s = ""; "#);
        assert_eq!(
            code_part(r#"let q = '"'; x.unwrap()"#),
            "let q = ''; x.unwrap()"
        );
        assert_eq!(code_part(r#"f("\"//"); g()"#), r#"f(""); g()"#);
    }
}
