//! The architecture gates behind `cargo xtask lint-gates`: shared types, file walking, and the runner.
//!
//! Each gate is a pure function over a workspace root (plus, for the dependency gate,
//! the `cargo metadata` JSON) returning its violations, so tests can run it on fixtures.

pub mod deps;
pub mod legacy;
pub mod source;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::workspace;

/// One gate failure, with a message naming the offending file, edge, or word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Short name of the gate that produced this violation.
    pub gate: &'static str,
    /// Human-readable description naming what is wrong and where.
    pub message: String,
}

impl Violation {
    /// Build a violation for `gate`.
    pub fn new(gate: &'static str, message: impl Into<String>) -> Self {
        Self {
            gate,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.gate, self.message)
    }
}

/// Run every gate against the workspace at `root`.
pub fn run_all(root: &Path) -> Vec<Violation> {
    let mut violations = match workspace::metadata_json(root) {
        Ok(json) => deps::check_deps(&json, root),
        Err(err) => vec![Violation::new(deps::GATE, err)],
    };
    violations.extend(legacy::check_legacy_names(root));
    violations.extend(source::check_reexports(root));
    violations.extend(source::check_module_docs(root));
    violations.extend(source::check_unwraps(root));
    violations.extend(source::check_admission_layering(root));
    violations
}

/// Print `violations` to stderr; returns true when there are none.
pub fn report(violations: &[Violation]) -> bool {
    if violations.is_empty() {
        eprintln!("lint-gates: all gates passed");
        return true;
    }
    for violation in violations {
        eprintln!("{violation}");
    }
    eprintln!("lint-gates: {} violation(s)", violations.len());
    false
}

/// `path` relative to `root` with `/` separators, for stable messages on every OS.
pub fn display_rel(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file under `dir` (recursively, sorted) whose extension is in `exts`.
///
/// Skips `target`/`target-*` build dirs and hidden dirs; does not follow symlinks.
/// A missing `dir` yields nothing (e.g. an empty `plans/` is not tracked by git).
pub fn files_with_ext(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, exts, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_dir() {
            if name == "target" || name.starts_with("target-") || name.starts_with('.') {
                continue;
            }
            walk(&path, exts, out);
        } else if file_type.is_file() && has_ext(&path, exts) {
            out.push(path);
        }
    }
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.contains(&e))
}

/// Read a file as text; non-UTF-8 bytes are replaced rather than failing the gate run.
pub fn read_text(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// Every `.rs` file under `root/crates/*/src` (recursively, sorted).
pub fn crate_src_files(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("crates")) else {
        return Vec::new();
    };
    let mut crate_dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    crate_dirs.sort();
    crate_dirs
        .iter()
        .flat_map(|dir| files_with_ext(&dir.join("src"), &["rs"]))
        .collect()
}

#[cfg(test)]
pub mod fixture {
    //! Throwaway fixture workspaces in the system temp dir, removed on drop.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A temp directory unique to this process and call, deleted on drop.
    pub struct Fixture {
        root: PathBuf,
    }

    impl Fixture {
        /// Create an empty fixture dir; `label` only makes leftovers recognisable.
        pub fn new(label: &str) -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let root =
                std::env::temp_dir().join(format!("weir-xtask-{label}-{}-{n}", std::process::id()));
            // A stale dir from a crashed run with a recycled pid must not leak in.
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("create fixture dir");
            Self { root }
        }

        /// Write `contents` to `rel` (creating parent dirs); returns self for chaining.
        pub fn file(self, rel: &str, contents: &str) -> Self {
            let path = self.root.join(rel);
            std::fs::create_dir_all(path.parent().expect("fixture file has a parent"))
                .expect("create fixture parent");
            std::fs::write(&path, contents).expect("write fixture file");
            self
        }

        /// The fixture's root dir.
        pub fn root(&self) -> &Path {
            &self.root
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "tidy" pattern: `cargo test --workspace` fails when the real repo breaks a gate.
    #[test]
    fn repo_passes_lint_gates() {
        let root = workspace::root().expect("find workspace root");
        let violations = run_all(&root);
        assert!(
            violations.is_empty(),
            "the workspace violates the lint gates (run `cargo xtask lint-gates`):\n{}",
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn walker_skips_target_and_hidden_dirs() {
        let fx = fixture::Fixture::new("walk")
            .file("crates/a/src/lib.rs", "//! a\n")
            .file("crates/a/target/debug/x.rs", "")
            .file("crates/a/src/.hidden/y.rs", "")
            .file("crates/a/src/notes.txt", "");
        let files: Vec<String> = crate_src_files(fx.root())
            .iter()
            .map(|p| display_rel(fx.root(), p))
            .collect();
        assert_eq!(files, ["crates/a/src/lib.rs"]);
    }
}
