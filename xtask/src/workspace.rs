//! Locating the workspace root and invoking the `cargo` that launched us.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo binary to run: `$CARGO` (set by cargo for `cargo run`/`cargo test`) so
/// nested invocations use the same toolchain, else plain `cargo` from PATH.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    Command::new(program)
}

/// The workspace root: the parent of xtask's manifest dir if that holds a
/// `[workspace]` manifest, otherwise the nearest ancestor of the current dir that does.
pub fn root() -> Result<PathBuf, String> {
    // Runtime env first (set by `cargo run`), then the compile-time value, so a
    // directly executed binary still finds the checkout it was built from.
    let manifest_dirs = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        option_env!("CARGO_MANIFEST_DIR").map(PathBuf::from),
    ];
    for dir in manifest_dirs.into_iter().flatten() {
        if let Some(parent) = dir.parent() {
            if is_workspace_root(parent) {
                return Ok(parent.to_path_buf());
            }
        }
    }
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read current dir: {e}"))?;
    cwd.ancestors()
        .find(|dir| is_workspace_root(dir))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "no Cargo.toml with a [workspace] table found above {}",
                cwd.display()
            )
        })
}

/// Whether `dir/Cargo.toml` exists and declares a `[workspace]` table.
fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|text| text.lines().any(|line| line.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// `cargo metadata --format-version 1 --no-deps` for the workspace at `root`.
pub fn metadata_json(root: &Path) -> Result<String, String> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("cargo metadata printed non-UTF-8: {e}"))
}
