//! Gate (a): the allowed dependency edges between weir crates, read from `cargo metadata`.
//!
//! Only packages whose manifest lives under `crates/` are gated; `xtask` and
//! `benches/` (`weir-benches`) are tooling and may depend on anything. An edge is
//! checked for every dependency kind (normal, build, dev), because a dev-dependency
//! cycle or shortcut erodes the layering just as well.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::{display_rel, Violation};

/// Gate name used in violation output.
pub const GATE: &str = "deps";

/// The architecture table: each gated crate and the weir crates it may depend on.
/// Extend here when a crate is added; anything under `crates/` missing from this
/// table (and not a test-support crate) fails the gate.
pub const ALLOWED_EDGES: &[(&str, &[&str])] = &[
    ("weir-contracts", &[]),
    // The start-time fair queue core and the shared hasher: a leaf both admission crates share
    // instead of depending on each other.
    ("weir-fair", &[]),
    ("weir-telemetry", &["weir-contracts"]),
    (
        "weir-task-admission",
        &["weir-contracts", "weir-telemetry", "weir-fair"],
    ),
    (
        "weir-request-admission",
        &["weir-contracts", "weir-telemetry", "weir-fair"],
    ),
    ("weir-capacity", &["weir-contracts"]),
    (
        "weir-runtime",
        &[
            "weir-contracts",
            "weir-telemetry",
            "weir-task-admission",
            "weir-request-admission",
            "weir-capacity",
        ],
    ),
    (
        "weir-cli",
        &[
            "weir-runtime",
            "weir-contracts",
            "weir-telemetry",
            "weir-capacity",
            "weir-coordinator",
            "weir-redis",
        ],
    ),
    // Shared row groups (issue 17): Redis claims of row-group numbers; it knows no runtime,
    // no generator, no file, so the CLI wires it to the run's feed and the part files.
    ("weir-coordinator", &["weir-contracts"]),
    // Shared limits on Redis (issue 17): implements request admission's `SharedLimits`
    // trait; knows no runtime, no CLI, no task admission. The CLI connects it.
    (
        "weir-redis",
        &["weir-contracts", "weir-telemetry", "weir-request-admission"],
    ),
];

/// Crates that may take a test-support crate as a dev-dependency (and nothing else may).
pub const TEST_SUPPORT_USERS: &[&str] =
    &["weir-runtime", "weir-cli", "weir-coordinator", "weir-redis"];

/// Suffixes marking a test-support crate (free to depend on anything).
pub const TEST_SUPPORT_SUFFIXES: &[&str] = &["-testkit", "-test-support"];

/// The crate that must stay runtime-agnostic.
pub const RUNTIME_FREE_CRATE: &str = "weir-contracts";

/// Async runtimes `weir-contracts` must not depend on (normal or build kinds).
pub const ASYNC_RUNTIMES: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "futures-executor",
    "async-executor",
];

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    /// Where cargo says the workspace is; preferred over the caller's `root` because
    /// manifest paths are spelled relative to it (symlinked checkouts would differ).
    workspace_root: Option<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    manifest_path: String,
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    /// The real package name (a `package = "..."` rename shows up in `rename`, not here).
    name: String,
    /// `None` for normal dependencies, else `"dev"` or `"build"`.
    kind: Option<String>,
}

fn is_test_support(name: &str) -> bool {
    TEST_SUPPORT_SUFFIXES.iter().any(|s| name.ends_with(s))
}

fn is_weir_crate(name: &str) -> bool {
    name.starts_with("weir-")
}

fn allowed_for(name: &str) -> Option<&'static [&'static str]> {
    ALLOWED_EDGES
        .iter()
        .find(|(crate_name, _)| *crate_name == name)
        .map(|(_, allowed)| *allowed)
}

/// Check the dependency edges in `metadata_json` (output of
/// `cargo metadata --format-version 1 --no-deps`) for packages under `root/crates/`.
pub fn check_deps(metadata_json: &str, root: &Path) -> Vec<Violation> {
    let metadata: Metadata = match serde_json::from_str(metadata_json) {
        Ok(m) => m,
        Err(err) => {
            return vec![Violation::new(
                GATE,
                format!("cannot parse cargo metadata JSON: {err}"),
            )]
        }
    };
    let root = metadata.workspace_root.as_deref().map_or(root, Path::new);
    let crates_dir = root.join("crates");
    let mut seen = BTreeSet::new();
    let mut violations = Vec::new();
    let mut push = |message: String| {
        // The same edge can appear once per kind/target; report it once.
        if seen.insert(message.clone()) {
            violations.push(Violation::new(GATE, message));
        }
    };

    for package in &metadata.packages {
        let manifest = Path::new(&package.manifest_path);
        if !manifest.starts_with(&crates_dir) {
            continue;
        }
        let manifest_rel = display_rel(root, manifest);
        let from = package.name.as_str();
        let test_support = is_test_support(from);
        let allowed = allowed_for(from);
        if allowed.is_none() && !test_support {
            push(format!(
                "crate not in the architecture table: {from} ({manifest_rel}); \
                 add it to ALLOWED_EDGES in xtask/src/gates/deps.rs"
            ));
        }

        for dep in &package.dependencies {
            let to = dep.name.as_str();
            let kind = dep.kind.as_deref();
            let kind_note = match kind {
                Some(k) => format!(" [{k}-dependency]"),
                None => String::new(),
            };

            if from == RUNTIME_FREE_CRATE && kind != Some("dev") && ASYNC_RUNTIMES.contains(&to) {
                push(format!(
                    "{from} must not depend on an async runtime: {from} -> {to}{kind_note} ({manifest_rel})"
                ));
            }

            if is_test_support(to) {
                if !(TEST_SUPPORT_USERS.contains(&from) && kind == Some("dev")) {
                    push(format!(
                        "dependency edge not allowed: {from} -> {to}{kind_note} ({manifest_rel}); \
                         test-support crates may only be dev-dependencies of {}",
                        TEST_SUPPORT_USERS.join(", ")
                    ));
                }
                continue;
            }
            if test_support || !is_weir_crate(to) {
                continue;
            }
            // A crate missing from the table was already reported; don't also flag each edge.
            if let Some(allowed) = allowed {
                if !allowed.contains(&to) {
                    push(format!(
                        "dependency edge not allowed: {from} -> {to}{kind_note} ({manifest_rel})"
                    ));
                }
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROOT: &str = "/ws";

    /// `(dependency name, kind)`; kind `None` is a normal dependency.
    type Dep<'a> = (&'a str, Option<&'a str>);
    /// `(package name, manifest dir relative to ROOT, dependencies)`.
    type Pkg<'a> = (&'a str, &'a str, &'a [Dep<'a>]);

    /// A synthetic metadata document: `(name, manifest dir, [(dep, kind)])`.
    fn metadata(packages: &[Pkg]) -> String {
        let packages: Vec<_> = packages
            .iter()
            .map(|(name, dir, deps)| {
                json!({
                    "name": name,
                    "manifest_path": format!("{ROOT}/{dir}/Cargo.toml"),
                    "dependencies": deps
                        .iter()
                        .map(|(dep, kind)| json!({ "name": dep, "kind": kind }))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "packages": packages, "workspace_root": ROOT }).to_string()
    }

    fn check(packages: &[Pkg]) -> Vec<String> {
        check_deps(&metadata(packages), Path::new(ROOT))
            .into_iter()
            .map(|v| v.message)
            .collect()
    }

    #[test]
    fn layered_graph_passes() {
        let v = check(&[
            (
                "weir-contracts",
                "crates/weir-contracts",
                &[("serde", None)],
            ),
            (
                "weir-telemetry",
                "crates/weir-telemetry",
                &[("weir-contracts", None)],
            ),
            (
                "weir-task-admission",
                "crates/weir-task-admission",
                &[("weir-contracts", None), ("weir-telemetry", Some("dev"))],
            ),
            (
                "weir-runtime",
                "crates/weir-runtime",
                &[
                    ("weir-task-admission", None),
                    ("weir-request-admission", None),
                    ("tokio", None),
                    ("weir-runtime-testkit", Some("dev")),
                ],
            ),
            (
                "weir-runtime-testkit",
                "crates/weir-runtime-testkit",
                &[("weir-runtime", None), ("weir-capacity", None)],
            ),
            // Tooling outside crates/ is exempt.
            ("weir-benches", "benches", &[("weir-runtime-testkit", None)]),
            ("xtask", "xtask", &[("weir-cli", None)]),
        ]);
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn task_admission_must_not_depend_on_request_admission() {
        let v = check(&[(
            "weir-task-admission",
            "crates/weir-task-admission",
            &[("weir-contracts", None), ("weir-request-admission", None)],
        )]);
        assert_eq!(
            v,
            [
                "dependency edge not allowed: weir-task-admission -> weir-request-admission \
              (crates/weir-task-admission/Cargo.toml)"
            ]
        );
    }

    #[test]
    fn both_admission_crates_may_share_the_fair_core() {
        let v = check(&[
            ("weir-fair", "crates/weir-fair", &[("rustc-hash", None)]),
            (
                "weir-task-admission",
                "crates/weir-task-admission",
                &[("weir-contracts", None), ("weir-fair", None)],
            ),
            (
                "weir-request-admission",
                "crates/weir-request-admission",
                &[("weir-contracts", None), ("weir-fair", None)],
            ),
        ]);
        assert!(v.is_empty(), "{v:#?}");
    }

    #[test]
    fn the_fair_core_depends_on_no_weir_crate_and_serves_only_admission() {
        let v = check(&[
            (
                "weir-fair",
                "crates/weir-fair",
                &[("weir-contracts", None), ("weir-telemetry", Some("dev"))],
            ),
            (
                "weir-capacity",
                "crates/weir-capacity",
                &[("weir-contracts", None), ("weir-fair", None)],
            ),
        ]);
        assert_eq!(
            v,
            [
                "dependency edge not allowed: weir-fair -> weir-contracts \
                 (crates/weir-fair/Cargo.toml)",
                "dependency edge not allowed: weir-fair -> weir-telemetry [dev-dependency] \
                 (crates/weir-fair/Cargo.toml)",
                "dependency edge not allowed: weir-capacity -> weir-fair \
                 (crates/weir-capacity/Cargo.toml)",
            ]
        );
    }

    #[test]
    fn the_coordinator_knows_contracts_only_and_serves_the_cli() {
        let ok = check(&[
            (
                "weir-coordinator",
                "crates/weir-coordinator",
                &[
                    ("weir-contracts", None),
                    ("redis", None),
                    ("weir-testkit", Some("dev")),
                ],
            ),
            (
                "weir-cli",
                "crates/weir-cli",
                &[("weir-coordinator", None), ("weir-runtime", None)],
            ),
        ]);
        assert!(ok.is_empty(), "{ok:#?}");
        let v = check(&[
            (
                "weir-coordinator",
                "crates/weir-coordinator",
                &[("weir-contracts", None), ("weir-runtime", None)],
            ),
            (
                "weir-runtime",
                "crates/weir-runtime",
                &[("weir-coordinator", None)],
            ),
        ]);
        assert_eq!(
            v,
            [
                "dependency edge not allowed: weir-coordinator -> weir-runtime \
                 (crates/weir-coordinator/Cargo.toml)",
                "dependency edge not allowed: weir-runtime -> weir-coordinator \
                 (crates/weir-runtime/Cargo.toml)",
            ]
        );
    }

    #[test]
    fn the_redis_backend_sits_on_request_admission_and_serves_only_the_cli() {
        let v = check(&[
            (
                "weir-redis",
                "crates/weir-redis",
                &[
                    ("weir-contracts", None),
                    ("weir-request-admission", None),
                    ("redis", None),
                    ("weir-testkit", Some("dev")),
                    ("weir-runtime", None),
                ],
            ),
            (
                "weir-cli",
                "crates/weir-cli",
                &[("weir-runtime", None), ("weir-redis", None)],
            ),
            (
                "weir-runtime",
                "crates/weir-runtime",
                &[("weir-request-admission", None), ("weir-redis", None)],
            ),
        ]);
        assert_eq!(
            v,
            [
                "dependency edge not allowed: weir-redis -> weir-runtime \
                 (crates/weir-redis/Cargo.toml)",
                "dependency edge not allowed: weir-runtime -> weir-redis \
                 (crates/weir-runtime/Cargo.toml)",
            ]
        );
    }

    #[test]
    fn dev_and_build_edges_are_gated_too() {
        let v = check(&[(
            "weir-capacity",
            "crates/weir-capacity",
            &[
                ("weir-telemetry", Some("dev")),
                ("weir-runtime", Some("build")),
            ],
        )]);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].contains("weir-capacity -> weir-telemetry [dev-dependency]"));
        assert!(v[1].contains("weir-capacity -> weir-runtime [build-dependency]"));
    }

    #[test]
    fn unknown_crate_under_crates_is_reported() {
        let v = check(&[("weir-mystery", "crates/weir-mystery", &[])]);
        assert_eq!(v.len(), 1);
        assert!(v[0].contains("crate not in the architecture table: weir-mystery"));
        assert!(v[0].contains("crates/weir-mystery/Cargo.toml"));
    }

    #[test]
    fn contracts_must_not_depend_on_async_runtime() {
        let v = check(&[(
            "weir-contracts",
            "crates/weir-contracts",
            &[
                ("tokio", None),
                ("smol", Some("build")),
                ("async-std", Some("dev")),
            ],
        )]);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].contains("weir-contracts -> tokio"));
        assert!(v[1].contains("weir-contracts -> smol"));
    }

    #[test]
    fn test_support_only_as_dev_dependency_of_runtime_or_cli() {
        let v = check(&[
            (
                "weir-capacity",
                "crates/weir-capacity",
                &[("weir-capacity-test-support", Some("dev"))],
            ),
            (
                "weir-runtime",
                "crates/weir-runtime",
                &[("weir-runtime-testkit", None)],
            ),
        ]);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].contains("weir-capacity -> weir-capacity-test-support"));
        assert!(v[1].contains("weir-runtime -> weir-runtime-testkit"));
    }

    #[test]
    fn unparsable_metadata_fails() {
        let v = check_deps("not json", Path::new(ROOT));
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("cannot parse cargo metadata"));
    }
}
