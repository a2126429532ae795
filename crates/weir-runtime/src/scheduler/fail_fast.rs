//! Fail fast: which model-call failures mean "the run is misconfigured", so retrying is waste.

use crate::model_facade::{ModelCallError, ModelCallErrorKind};
// One list of configuration error types for the provider layer and the scheduler.
use crate::provider::error::CONFIGURATION_ERROR_TYPES;
use weir_contracts::RequestAdmissionDenyReason;

/// True when retrying `e` cannot help because the run is misconfigured: a bad or missing key
/// (401/403), a wrong model or URL (404, `model_not_found`), an alias with no route, a request
/// resource admission can never serve, or the provider's own verdict (`e.configuration`, which
/// the provider layer sets for refused connections, DNS and TLS failures).
///
/// A refused connection is also recognised without that verdict by
/// [`is_unreachable_endpoint`] when the endpoint never answered in this run.
pub fn is_configuration_failure(e: &ModelCallError) -> bool {
    if e.configuration {
        return true;
    }
    if e.provider_error_type()
        .is_some_and(|t| CONFIGURATION_ERROR_TYPES.contains(&t))
    {
        return true;
    }
    match &e.kind {
        ModelCallErrorKind::ProviderFailure {
            status: Some(401 | 403 | 404),
            retryable: false,
        } => true,
        ModelCallErrorKind::UnknownAlias => true,
        ModelCallErrorKind::Admission { .. } => {
            e.kind.admission_reason() == Some(RequestAdmissionDenyReason::HardPolicyDenial)
        }
        _ => false,
    }
}

/// True for a transient failure with no HTTP answer at all (connection refused, reset, DNS,
/// TLS): after the facade's own attempts, an endpoint that has never answered a call of this
/// run is taken as unreachable — a wrong `base_url` or a server that is down — not as a blip.
pub fn is_unreachable_endpoint(e: &ModelCallError, endpoint_ever_answered: bool) -> bool {
    !endpoint_ever_answered
        && matches!(
            e.kind,
            ModelCallErrorKind::ProviderFailure {
                status: None,
                retryable: true,
            }
        )
        && e.status.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_facade::ProviderDetail;

    fn failure(status: Option<u16>, retryable: bool) -> ModelCallError {
        ModelCallError::new(
            "m",
            ModelCallErrorKind::ProviderFailure { status, retryable },
            "x",
        )
    }

    #[test]
    fn classifies_what_exists_today() {
        assert!(is_configuration_failure(&failure(Some(401), false)));
        assert!(is_configuration_failure(&failure(Some(403), false)));
        assert!(is_configuration_failure(&failure(Some(404), false)));
        assert!(!is_configuration_failure(&failure(Some(400), false)));
        assert!(!is_configuration_failure(&failure(Some(500), true)));
        assert!(!is_configuration_failure(&ModelCallError::rate_limited(
            "m", None
        )));
        assert!(is_configuration_failure(&ModelCallError::unknown_alias(
            "m"
        )));
        let typed = failure(Some(400), false).with_provider_detail(ProviderDetail {
            provider_error_type: Some("model_not_found".into()),
            ..ProviderDetail::default()
        });
        assert!(is_configuration_failure(&typed));
        assert!(is_configuration_failure(
            &failure(None, true).with_configuration(true)
        ));
        let hard = ModelCallError::new(
            "m",
            ModelCallErrorKind::Admission {
                reason: "hard_policy_denial".into(),
            },
            "",
        );
        assert!(is_configuration_failure(&hard));
        assert!(is_unreachable_endpoint(&failure(None, true), false));
        assert!(!is_unreachable_endpoint(&failure(None, true), true));
        assert!(!is_unreachable_endpoint(&failure(Some(502), true), false));
    }
}
