//! The example workflows shipped in `examples/`, embedded in the binary so `weir examples` works
//! from any directory.

use crate::spec::WorkflowSpec;

/// One embedded example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Example {
    /// Name (`weir examples NAME`), the file name without `.json`.
    pub name: &'static str,
    /// The file's JSON text.
    pub text: &'static str,
}

impl Example {
    /// The spec's `description` (or a placeholder when it has none or does not parse).
    pub fn description(&self) -> String {
        WorkflowSpec::from_json(self.text)
            .ok()
            .and_then(|s| s.description)
            .unwrap_or_else(|| "(no description)".to_string())
    }
}

/// Every example, in teaching order.
pub const EXAMPLES: &[Example] = &[
    Example {
        name: "quickstart",
        text: include_str!("../../../examples/quickstart.json"),
    },
    Example {
        name: "heavy-root",
        text: include_str!("../../../examples/heavy-root.json"),
    },
    Example {
        name: "dual-model-judge",
        text: include_str!("../../../examples/dual-model-judge.json"),
    },
    Example {
        name: "rate-limited",
        text: include_str!("../../../examples/rate-limited.json"),
    },
    Example {
        name: "cross-provider-cooldown",
        text: include_str!("../../../examples/cross-provider-cooldown.json"),
    },
    Example {
        name: "structured",
        text: include_str!("../../../examples/structured.json"),
    },
];

/// The example called `name` (`quickstart` or `quickstart.json`).
pub fn find(name: &str) -> Option<&'static Example> {
    let name = name.strip_suffix(".json").unwrap_or(name);
    EXAMPLES.iter().find(|e| e.name == name)
}
