//! Keeping secrets out of messages: a heuristic for "this value looks like an API key", and the
//! safe renderings of the few user-supplied strings the adapter does print (the `api_key_env`
//! variable name, URL paths, a redirect's Location).
//!
//! The heuristic errs on the side of hiding: a value is treated as a key when it starts with a
//! known key prefix (`sk-`, `sk-ant-`, `nvapi-`, `gsk_`, `hf_`, `ghp_`, `AKIA` …), or when it is
//! a long (≥ 20 characters) whitespace-free token that mixes letters and digits the way random
//! keys do (upper and lower case, or at least four digits). Error codes (`rate_limit_exceeded`),
//! variable names (`OPENAI_API_KEY`) and model ids (`gpt-4o-2024-08-06`) do not match.

/// Prefixes of API keys and tokens of common providers (case-sensitive).
const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "rk-",
    "pk-",
    "nvapi-",
    "gsk_",
    "xai-",
    "hf_",
    "ghp_",
    "gho_",
    "github_pat_",
    "glpat-",
    "AKIA",
    "AIza",
    "Bearer ",
    "bearer ",
    "key-",
    "pplx-",
    "r8_",
];

/// True when `value` looks like an API key or token (see the module docs for the rule).
pub fn looks_like_secret(value: &str) -> bool {
    let v = value.trim();
    if v.len() >= 8 && KEY_PREFIXES.iter().any(|p| v.starts_with(p)) {
        return true;
    }
    if v.len() < 20 || v.chars().any(char::is_whitespace) {
        return false;
    }
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let upper = v.chars().any(|c| c.is_ascii_uppercase());
    let lower = v.chars().any(|c| c.is_ascii_lowercase());
    (upper || lower) && digits > 0 && ((upper && lower) || digits >= 4)
}

/// How a message names the `api_key_env` variable: quoted when it is a plausible variable name,
/// otherwise a placeholder (a user who pasted the key itself must not see it echoed in logs).
pub fn env_var_label(var: &str) -> String {
    let plausible = (1..=128).contains(&var.len())
        && var
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !looks_like_secret(var);
    if plausible {
        format!("{var:?}")
    } else {
        "<value not shown: api_key_env must name an environment variable, not hold the key>"
            .to_owned()
    }
}

/// A URL path safe to print: every segment that looks like a secret becomes `<redacted>`.
pub fn safe_path(path: &str) -> String {
    if !path.split('/').any(looks_like_secret) {
        return path.to_owned();
    }
    path.split('/')
        .map(|seg| {
            if looks_like_secret(seg) {
                "<redacted>"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A redirect's `Location` safe to print: scheme, host, port and path only (no user info,
/// query or fragment), secret-looking path segments redacted; relative locations keep only
/// their path.
pub fn safe_location(location: &str, base: &reqwest::Url) -> String {
    match base.join(location.trim()) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", url.scheme(), safe_path(url.path()))
        }
        Err(_) => "<unparseable Location>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_secrets_and_names_do_not() {
        for key in [
            "sk-proj-AbC123dEf456",
            "sk-wrong-key",
            "sk-ant-api03-xyz",
            "nvapi-abcdefgh",
            "AbCdEfGh12345678IjKlMnOp",
            "a1b2c3d4e5f6a7b8c9d0e1f2",
        ] {
            assert!(looks_like_secret(key), "{key}");
        }
        for name in [
            "OPENAI_API_KEY",
            "AZURE_OPENAI_API_KEY_EASTUS2",
            "rate_limit_exceeded",
            "billing_hard_limit_reached",
            "gpt-4o-2024-08-06",
            "throttling_error",
            "v1",
            "chat",
        ] {
            assert!(!looks_like_secret(name), "{name}");
        }
    }

    #[test]
    fn labels_and_paths_hide_keys() {
        assert_eq!(env_var_label("OPENAI_API_KEY"), "\"OPENAI_API_KEY\"");
        let label = env_var_label("sk-live-0123456789abcdef");
        assert!(!label.contains("sk-live"), "{label}");
        assert!(!env_var_label("my key").contains("my key"));
        assert_eq!(safe_path("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(
            safe_path("/key/sk-live-0123456789/v1/embeddings"),
            "/key/<redacted>/v1/embeddings"
        );
        let base = reqwest::Url::parse("http://127.0.0.1:8000/v1/chat").expect("url");
        assert_eq!(
            safe_location(
                "https://user:pw@other.example:8443/v2/x?key=sk-abcdefgh#f",
                &base
            ),
            "https://other.example:8443/v2/x"
        );
        assert_eq!(
            safe_location("/v1/chat/completions/", &base),
            "http://127.0.0.1:8000/v1/chat/completions/"
        );
    }
}
