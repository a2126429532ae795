//! Gate (b): legacy names from the pre-weir throttle design must not reappear.
//!
//! Scans `crates/`, `plans/` and `README.md` (files ending .rs/.md/.toml/.json/.html/.txt,
//! skipping build dirs) for literal words plus any `Throttle[A-Z][A-Za-z]*` identifier.
//! Markdown may document the removed names between a line containing
//! `<!-- legacy-names:begin -->` and one containing `<!-- legacy-names:end -->`.
//! Hand-written matching: one prefix scan does not justify the `regex` dependency.

use std::path::{Path, PathBuf};

use super::{display_rel, files_with_ext, read_text, Violation};

/// Gate name used in violation output.
pub const GATE: &str = "legacy-names";

/// Forbidden literal substrings (names of the removed throttle machinery).
pub const LEGACY_WORDS: &[&str] = &[
    "SchedulingHintResolver",
    "SchedulingHint",
    "_model_aliases_for_generator",
    "is_llm_bound",
    "ThrottleManager",
    "ThrottleDomain",
    "ThrottleConfig",
    "RunConfig.throttle",
    "throttle_manager.py",
    "ThrottledModelClient",
    "throttled_model_client",
    "_submission_semaphore",
    "_llm_wait_semaphore",
    "get_semaphore_permits",
    "TrackingSemaphore",
    "needs_llm_wait",
    "held_llm_wait",
    "max_llm_wait_tasks",
];

/// Prefix of the forbidden identifier family `Throttle[A-Z][A-Za-z]*`.
const THROTTLE_PREFIX: &str = "Throttle";

/// Markdown allow-list markers.
const BEGIN_MARKER: &str = "<!-- legacy-names:begin -->";
const END_MARKER: &str = "<!-- legacy-names:end -->";

/// Scanned file extensions.
const EXTENSIONS: &[&str] = &["rs", "md", "toml", "json", "html", "txt"];

/// Check `crates/`, `plans/` and `README.md` under `root` for legacy names.
pub fn check_legacy_names(root: &Path) -> Vec<Violation> {
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend(files_with_ext(&root.join("crates"), EXTENSIONS));
    files.extend(files_with_ext(&root.join("plans"), EXTENSIONS));
    let readme = root.join("README.md");
    if readme.is_file() {
        files.push(readme);
    }
    files
        .iter()
        .flat_map(|path| check_text(&display_rel(root, path), &read_text(path)))
        .collect()
}

/// Check one file's text; `rel` is its display path (its `.md` suffix enables the allow-list).
fn check_text(rel: &str, text: &str) -> Vec<Violation> {
    let markdown = rel.ends_with(".md");
    let mut violations = Vec::new();
    let mut open_block: Option<usize> = None;
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if markdown {
            if open_block.is_some() {
                if line.contains(END_MARKER) {
                    open_block = None;
                }
                continue;
            }
            if line.contains(BEGIN_MARKER) {
                // A one-line block (both markers) closes immediately.
                if !line.contains(END_MARKER) {
                    open_block = Some(line_no);
                }
                continue;
            }
        }
        for word in names_in_line(line) {
            violations.push(Violation::new(
                GATE,
                format!("legacy name \"{word}\" in {rel}:{line_no}"),
            ));
        }
    }
    if let Some(line_no) = open_block {
        // An unclosed block would silently allow-list the rest of the file.
        violations.push(Violation::new(
            GATE,
            format!(
                "unclosed legacy-names allow-list opened at {rel}:{line_no} (add `{END_MARKER}`)"
            ),
        ));
    }
    violations
}

/// The distinct legacy names in `line`, longest match winning where matches overlap
/// (so `SchedulingHintResolver` is not also reported as `SchedulingHint`).
fn names_in_line(line: &str) -> Vec<&str> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for word in LEGACY_WORDS {
        spans.extend(line.match_indices(word).map(|(i, w)| (i, i + w.len())));
    }
    for (start, _) in line.match_indices(THROTTLE_PREFIX) {
        let after = &line[start + THROTTLE_PREFIX.len()..];
        if after.starts_with(|c: char| c.is_ascii_uppercase()) {
            let len = after
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(after.len());
            spans.push((start, start + THROTTLE_PREFIX.len() + len));
        }
    }
    let mut names: Vec<&str> = Vec::new();
    for &(start, end) in &spans {
        let covered = spans
            .iter()
            .any(|&(s, e)| s <= start && end <= e && e - s > end - start);
        let name = &line[start..end];
        if !covered && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    fn messages(root: &Path) -> Vec<String> {
        check_legacy_names(root)
            .into_iter()
            .map(|v| v.message)
            .collect()
    }

    #[test]
    fn legacy_name_in_plan_fails_with_file_line_and_word() {
        let fx = Fixture::new("legacy-fail").file(
            "plans/foo.md",
            "# Plan\n\nintro\n\n\n\n\n\n\n\n\nWe keep the ThrottleManager for now.\n",
        );
        assert_eq!(
            messages(fx.root()),
            ["legacy name \"ThrottleManager\" in plans/foo.md:12"]
        );
    }

    #[test]
    fn scans_crates_and_readme_and_pattern_family() {
        let fx = Fixture::new("legacy-crates")
            .file(
                "crates/weir-x/src/lib.rs",
                "//! x\nstruct ThrottleBucket;\nfn f() { SchedulingHintResolver::new(); }\n",
            )
            .file("crates/weir-x/Cargo.toml", "# is_llm_bound\n")
            .file("crates/weir-x/target/debug/junk.txt", "ThrottleManager\n")
            .file("crates/weir-x/notes.csv", "ThrottleManager\n")
            .file("README.md", "uses RunConfig.throttle\n");
        let v = messages(fx.root());
        assert_eq!(
            v,
            [
                "legacy name \"is_llm_bound\" in crates/weir-x/Cargo.toml:1",
                "legacy name \"ThrottleBucket\" in crates/weir-x/src/lib.rs:2",
                "legacy name \"SchedulingHintResolver\" in crates/weir-x/src/lib.rs:3",
                "legacy name \"RunConfig.throttle\" in README.md:1",
            ]
        );
    }

    #[test]
    fn markdown_allow_list_block_passes() {
        let fx = Fixture::new("legacy-pass").file(
            "plans/removed.md",
            "# Removed\n<!-- legacy-names:begin -->\n- ThrottleManager\n- TrackingSemaphore\n\
             <!-- legacy-names:end -->\nThrottling is gone; a throttle is fine lowercase.\n",
        );
        assert!(messages(fx.root()).is_empty());
    }

    #[test]
    fn allow_list_markers_do_not_apply_outside_markdown() {
        let fx = Fixture::new("legacy-rs-markers").file(
            "crates/weir-x/src/lib.rs",
            "//! <!-- legacy-names:begin -->\n//! ThrottleConfig\n//! <!-- legacy-names:end -->\n",
        );
        assert_eq!(
            messages(fx.root()),
            ["legacy name \"ThrottleConfig\" in crates/weir-x/src/lib.rs:2"]
        );
    }

    #[test]
    fn unclosed_allow_list_fails() {
        let fx = Fixture::new("legacy-unclosed").file(
            "plans/p.md",
            "<!-- legacy-names:begin -->\nThrottleDomain\n",
        );
        let v = messages(fx.root());
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("unclosed legacy-names allow-list opened at plans/p.md:1"));
    }
}
