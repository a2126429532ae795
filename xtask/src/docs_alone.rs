//! `cargo xtask docs-alone`: each library crate's opening doc example, built and run from a
//! fresh crate that depends only on what the crate's docs tell a user to depend on.
//!
//! A doc test inside the workspace can lean on dev-dependencies and on features another member
//! switched on; a user who copies the docs cannot. So for every crate listed in [`CRATES`] this
//! reads the crate's `lib.rs`, takes its first ```` ```toml ```` block (the `[dependencies]` the
//! docs give) and its first Rust example, writes both into a new crate under
//! `target/docs-alone/<crate>/`, and runs it with `cargo run`. Paths written `…/crates/` in the
//! docs point at this checkout. An example marked `no_run` (it needs a server, e.g. Redis) is
//! built with `cargo build` but not run, as rustdoc treats it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};

/// The library crates whose docs promise they can be used alone.
const CRATES: &[&str] = &[
    "weir-contracts",
    "weir-fair",
    "weir-telemetry",
    "weir-task-admission",
    "weir-request-admission",
    "weir-capacity",
    "weir-coordinator",
    "weir-redis",
];

/// What one crate's docs say: its dependency lines and its first example.
#[derive(Debug, PartialEq)]
struct DocExample {
    dependencies: Vec<String>,
    code: String,
    /// False for a `no_run` example: built, not run.
    run: bool,
}

/// Runs the check for every crate; reports each failure and exits 1 if any.
pub fn run(root: &Path) -> ExitCode {
    let target = root.join("target").join("docs-alone");
    let mut failed = Vec::new();
    for name in CRATES {
        match check(root, &target, name) {
            Ok(true) => println!("docs-alone: {name}: the example builds and runs alone"),
            Ok(false) => println!("docs-alone: {name}: the no_run example builds alone"),
            Err(why) => {
                eprintln!("docs-alone: {name}: {why}");
                failed.push(*name);
            }
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("docs-alone: FAILED for {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

fn check(root: &Path, target: &Path, name: &str) -> Result<bool, String> {
    let lib = root.join("crates").join(name).join("src").join("lib.rs");
    let text = std::fs::read_to_string(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
    let doc = extract(&text)?;
    let dir = target.join(name);
    std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
    let crates_dir = root.join("crates");
    let manifest = manifest(name, &doc.dependencies, &crates_dir);
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("src").join("main.rs"), wrap(&doc.code)).map_err(|e| e.to_string())?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            if doc.run { "run" } else { "build" },
            "--quiet",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        // One shared target dir so the dependencies build once for all crates.
        .env("CARGO_TARGET_DIR", target.join("target"))
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if status.success() {
        Ok(doc.run)
    } else {
        Err(format!(
            "`cargo run` in {} failed ({status})",
            dir.display()
        ))
    }
}

/// The crate-level doc text (`//!` lines, prefix removed).
fn crate_docs(lib_rs: &str) -> Vec<&str> {
    lib_rs
        .lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect()
}

fn extract(lib_rs: &str) -> Result<DocExample, String> {
    let docs = crate_docs(lib_rs);
    let mut dependencies = None;
    let mut code = None;
    let mut run = true;
    let mut i = 0;
    while i < docs.len() {
        let fence = docs[i].trim();
        if let Some(lang) = fence.strip_prefix("```") {
            let end = docs[i + 1..]
                .iter()
                .position(|l| l.trim() == "```")
                .map(|p| i + 1 + p)
                .ok_or("an unclosed ``` block in the crate docs")?;
            let body = &docs[i + 1..end];
            let is_rust =
                lang.is_empty() || lang == "rust" || lang.starts_with("rust,") || lang == "no_run";
            if lang == "toml" && dependencies.is_none() {
                dependencies = Some(
                    body.iter()
                        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('['))
                        .map(|l| l.to_string())
                        .collect(),
                );
            } else if is_rust && code.is_none() {
                let lines: Vec<&str> = body
                    .iter()
                    .map(|l| match l.trim_start().strip_prefix("# ") {
                        Some(rest) => rest,
                        None if l.trim() == "#" => "",
                        None => l,
                    })
                    .collect();
                code = Some(lines.join("\n"));
                run = !lang.split(',').any(|a| a == "no_run");
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    Ok(DocExample {
        dependencies: dependencies.ok_or("the crate docs give no ```toml [dependencies] block")?,
        code: code.ok_or("the crate docs have no Rust example")?,
        run,
    })
}

fn manifest(name: &str, dependencies: &[String], crates_dir: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[package]\nname = \"docs-alone-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[dependencies]"
    );
    let crates = crates_dir.display().to_string();
    for line in dependencies {
        let _ = writeln!(out, "{}", line.replace("…/crates", &crates));
    }
    out
}

/// Wraps an example the way rustdoc does when it has no `fn main` (items and `use` lines are
/// legal inside a function body, so the whole example goes there).
fn wrap(code: &str) -> String {
    if code.contains("fn main") {
        return code.to_owned();
    }
    if !code.trim_end().ends_with("(())") {
        // No `Ok(())` tail: rustdoc's plain `fn main() { … }`.
        return format!("#![allow(unused)]\nfn main() {{\n{code}\n}}\n");
    }
    format!(
        "#![allow(unused)]\nfn main() {{\n    fn _inner() -> Result<(), impl core::fmt::Debug> {{\n{code}\n    }}\n    _inner().unwrap()\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_first_toml_and_rust_blocks_and_unhides_lines() {
        let lib = "//! Title.\n//!\n//! ```toml\n//! [dependencies]\n//! a = { path = \"…/crates/a\" }\n//! ```\n//!\n//! ```\n//! use a::X;\n//! # let hidden = 1;\n//! assert_eq!(hidden, 1);\n//! # Ok::<(), String>(())\n//! ```\n//!\n//! ```\n//! second();\n//! ```\n\nmod x;\n";
        let doc = extract(lib).unwrap();
        assert_eq!(doc.dependencies, ["a = { path = \"…/crates/a\" }"]);
        assert_eq!(
            doc.code,
            "use a::X;\nlet hidden = 1;\nassert_eq!(hidden, 1);\nOk::<(), String>(())"
        );
        let wrapped = wrap(&doc.code);
        assert!(wrapped.contains("fn _inner() -> Result<(), impl core::fmt::Debug> {\nuse a::X;"));
        let m = manifest("a", &doc.dependencies, Path::new("/ck/crates"));
        assert!(m.contains("a = { path = \"/ck/crates/a\" }"), "{m}");
    }

    #[test]
    fn a_no_run_example_is_built_but_not_run() {
        let lib =
            "//! ```toml\n//! a = \"1\"\n//! ```\n//!\n//! ```no_run\n//! serve();\n//! ```\n";
        let doc = extract(lib).unwrap();
        assert!(!doc.run);
        assert_eq!(doc.code, "serve();");
        let lib = "//! ```toml\n//! a = \"1\"\n//! ```\n//!\n//! ```rust\n//! run();\n//! ```\n";
        assert!(extract(lib).unwrap().run);
    }

    #[test]
    fn missing_blocks_are_named() {
        assert!(extract("//! no blocks\n").unwrap_err().contains("```toml"));
    }
}
