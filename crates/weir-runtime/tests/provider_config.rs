//! SimulatedModelConfig: the CLI JSON shape, validation errors naming the field, mean latency
//! per distribution and the lower-bound helper.

use weir_runtime::provider::{
    LatencyDist, SimulatedConfigError, SimulatedModelConfig, SimulatedProvider,
};

const CONTRACT_JSON: &str = r#"{"model_id": "m1", "capacity": 32,
    "latency_ms": {"dist": "fixed", "value": 100}, "retry_after_s": 1.0, "rpm": null,
    "error_rate": 0.0, "timeout_rate": 0.0,
    "capacity_schedule": [{"at_s": 30.0, "capacity": 16}]}"#;

fn field_of(json: &str) -> String {
    match SimulatedModelConfig::from_json(json) {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(SimulatedConfigError { field, .. }) => field,
    }
}

/// The contract JSON with one top-level field replaced (raw JSON value).
fn with(field: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(CONTRACT_JSON).unwrap();
    v[field] = serde_json::from_str(value).unwrap();
    v.to_string()
}

#[test]
fn contract_json_parses_and_round_trips() {
    let config = SimulatedModelConfig::from_json(CONTRACT_JSON).unwrap();
    let expected = SimulatedModelConfig::new("m1", 32, LatencyDist::fixed_ms(100.0))
        .with_retry_after_s(1.0)
        .with_capacity_at(30.0, 16);
    assert_eq!(config, expected);
    let back = serde_json::to_string(&config).unwrap();
    assert_eq!(SimulatedModelConfig::from_json(&back).unwrap(), config);
    assert_eq!(
        serde_json::to_value(&config.latency_ms).unwrap(),
        serde_json::json!({"dist": "fixed", "value": 100.0})
    );
}

#[test]
fn optional_fields_default() {
    let c = SimulatedModelConfig::from_json(
        r#"{"model_id": "m", "capacity": 2, "latency_ms": {"dist": "uniform", "min": 1, "max": 2}}"#,
    )
    .unwrap();
    assert_eq!((c.retry_after_s, c.rpm), (None, None));
    assert_eq!((c.error_rate, c.timeout_rate), (0.0, 0.0));
    assert!(c.capacity_schedule.is_empty());
}

#[test]
fn every_distribution_parses() {
    for (json, expected) in [
        (
            r#"{"dist": "fixed", "value": 5}"#,
            LatencyDist::Fixed { value: 5.0 },
        ),
        (
            r#"{"dist": "uniform", "min": 1, "max": 3}"#,
            LatencyDist::Uniform { min: 1.0, max: 3.0 },
        ),
        (
            r#"{"dist": "lognormal", "median": 100, "sigma": 0.5}"#,
            LatencyDist::Lognormal {
                median: 100.0,
                sigma: 0.5,
            },
        ),
        (
            r#"{"dist": "beta", "alpha": 2, "beta": 5, "scale": 400}"#,
            LatencyDist::Beta {
                alpha: 2.0,
                beta: 5.0,
                scale: 400.0,
            },
        ),
    ] {
        let dist: LatencyDist = serde_json::from_str(json).unwrap();
        assert_eq!(dist, expected);
    }
}

#[test]
fn unknown_fields_and_dists_are_rejected() {
    assert_eq!(field_of(&with("burst", "3")), "<json>");
    let err = SimulatedModelConfig::from_json(&with("burst", "3")).unwrap_err();
    assert!(err.message.contains("burst"), "{err}");
    assert_eq!(
        field_of(&with(
            "latency_ms",
            r#"{"dist": "fixed", "value": 1, "jitter": 2}"#
        )),
        "<json>"
    );
    assert_eq!(
        field_of(&with("latency_ms", r#"{"dist": "pareto", "value": 1}"#)),
        "<json>"
    );
    assert_eq!(
        field_of(&with(
            "capacity_schedule",
            r#"[{"at_s": 1, "capacity": 2, "x": 1}]"#
        )),
        "<json>"
    );
}

#[test]
fn validation_errors_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("model_id", r#""  ""#, "model_id"),
        ("capacity", "0", "capacity"),
        (
            "latency_ms",
            r#"{"dist": "fixed", "value": -1}"#,
            "latency_ms.value",
        ),
        (
            "latency_ms",
            r#"{"dist": "uniform", "min": -1, "max": 2}"#,
            "latency_ms.min",
        ),
        (
            "latency_ms",
            r#"{"dist": "uniform", "min": 5, "max": 2}"#,
            "latency_ms.min",
        ),
        (
            "latency_ms",
            r#"{"dist": "lognormal", "median": 100, "sigma": -0.1}"#,
            "latency_ms.sigma",
        ),
        (
            "latency_ms",
            r#"{"dist": "lognormal", "median": 0, "sigma": 0.5}"#,
            "latency_ms.median",
        ),
        (
            "latency_ms",
            r#"{"dist": "beta", "alpha": 0, "beta": 1, "scale": 5}"#,
            "latency_ms.alpha",
        ),
        (
            "latency_ms",
            r#"{"dist": "beta", "alpha": 1, "beta": -2, "scale": 5}"#,
            "latency_ms.beta",
        ),
        (
            "latency_ms",
            r#"{"dist": "beta", "alpha": 1, "beta": 2, "scale": -5}"#,
            "latency_ms.scale",
        ),
        ("retry_after_s", "0", "retry_after_s"),
        ("retry_after_s", "-1.5", "retry_after_s"),
        ("rpm", "0", "rpm"),
        ("error_rate", "1.5", "error_rate"),
        ("error_rate", "-0.1", "error_rate"),
        ("timeout_rate", "2", "timeout_rate"),
        (
            "capacity_schedule",
            r#"[{"at_s": -1, "capacity": 2}]"#,
            "capacity_schedule[0].at_s",
        ),
        (
            "capacity_schedule",
            r#"[{"at_s": 1, "capacity": 0}]"#,
            "capacity_schedule[0].capacity",
        ),
        (
            "capacity_schedule",
            r#"[{"at_s": 30, "capacity": 2}, {"at_s": 10, "capacity": 4}]"#,
            "capacity_schedule[1].at_s",
        ),
        (
            "capacity_schedule",
            r#"[{"at_s": 10, "capacity": 2}, {"at_s": 10, "capacity": 4}]"#,
            "capacity_schedule[1].at_s",
        ),
    ];
    for (field, value, expected) in cases {
        assert_eq!(
            &field_of(&with(field, value)),
            expected,
            "{field} = {value}"
        );
    }
    // The two rates together may not exceed 1.
    let both = SimulatedModelConfig::new("m", 1, LatencyDist::fixed_ms(1.0)).with_faults(0.6, 0.5);
    assert_eq!(both.validate().unwrap_err().field, "timeout_rate");
    // Non-finite values built in Rust are caught too.
    let nan = SimulatedModelConfig::new("m", 1, LatencyDist::fixed_ms(f64::NAN));
    assert_eq!(nan.validate().unwrap_err().field, "latency_ms.value");
}

#[test]
fn provider_construction_validates_every_model() {
    let good = SimulatedModelConfig::new("a", 1, LatencyDist::fixed_ms(1.0));
    let bad = SimulatedModelConfig::new("b", 0, LatencyDist::fixed_ms(1.0));
    let err = SimulatedProvider::new("sim", 1, vec![good.clone(), bad]).unwrap_err();
    assert_eq!(err.field, "models[1].capacity");
    let err = SimulatedProvider::new("sim", 1, vec![good.clone(), good.clone()]).unwrap_err();
    assert_eq!(err.field, "models[1].model_id");
    let err = SimulatedProvider::new(" ", 1, vec![good]).unwrap_err();
    assert_eq!(err.field, "name");

    let list = SimulatedModelConfig::list_from_json(&format!("[{CONTRACT_JSON}]")).unwrap();
    assert_eq!(list.len(), 1);
    let err = SimulatedModelConfig::list_from_json(&format!("[{CONTRACT_JSON}, {CONTRACT_JSON}]"))
        .unwrap_err();
    assert_eq!(err.field, "models[1].model_id");
}

#[test]
fn mean_latency_per_distribution() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(LatencyDist::Fixed { value: 100.0 }.mean_ms(), 100.0));
    assert!(close(
        LatencyDist::Uniform {
            min: 50.0,
            max: 150.0
        }
        .mean_ms(),
        100.0
    ));
    assert!(close(
        LatencyDist::Lognormal {
            median: 100.0,
            sigma: 0.5
        }
        .mean_ms(),
        100.0 * (0.125f64).exp()
    ));
    assert!(close(
        LatencyDist::Beta {
            alpha: 2.0,
            beta: 6.0,
            scale: 400.0
        }
        .mean_ms(),
        100.0
    ));
}

#[test]
fn lower_bound_uses_mean_latency_and_the_tighter_of_capacity_and_cap() {
    let c = SimulatedModelConfig::new("m", 10, LatencyDist::fixed_ms(200.0));
    assert_eq!(c.mean_latency_seconds(), 0.2);
    // 100 calls × 0.2 s / 10 = 2 s; a client cap of 4 makes it 5 s; a cap above C changes nothing.
    assert!((c.lower_bound_seconds(100, None) - 2.0).abs() < 1e-9);
    assert!((c.lower_bound_seconds(100, Some(4)) - 5.0).abs() < 1e-9);
    assert!((c.lower_bound_seconds(100, Some(64)) - 2.0).abs() < 1e-9);
    assert_eq!(c.lower_bound_seconds(0, None), 0.0);
    // The schedule's peak capacity keeps it a lower bound.
    let scheduled = c.clone().with_capacity_at(30.0, 20);
    assert!((scheduled.lower_bound_seconds(100, None) - 1.0).abs() < 1e-9);
    // rpm 30: 100 calls need ⌊99/30⌋ = 3 full windows, plus one latency.
    let limited = c.with_rpm(30);
    assert!((limited.lower_bound_seconds(100, None) - 180.2).abs() < 1e-9);
}
