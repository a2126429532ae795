//! `docs/spec.md` is the rendering of the spec types (`weir schema --markdown`): it cannot
//! drift from what `weir validate` and `weir run` accept.

use weir_cli::spec::WorkflowSpec;

#[test]
fn the_checked_in_reference_page_matches_the_spec_types() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec.md");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let rendered = format!("{}\n", WorkflowSpec::reference_markdown().trim_end());
    assert!(
        checked_in == rendered,
        "docs/spec.md is out of date with the spec types; regenerate it with\n  \
         cargo run -p weir-cli -- schema --markdown > docs/spec.md"
    );
}

#[test]
fn the_reference_page_names_every_field_of_the_workflow_file() {
    let page = WorkflowSpec::reference_markdown();
    let schema = WorkflowSpec::json_schema();
    let fields = schema["properties"]
        .as_object()
        .map(|p| p.len())
        .unwrap_or(0);
    assert!(fields >= 8);
    for field in schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys())
    {
        assert!(page.contains(&format!("| `{field}` |")), "{field} missing");
    }
    assert!(page.contains("## `ColumnDef`") && page.contains("## `ModelSpec`"));
}
