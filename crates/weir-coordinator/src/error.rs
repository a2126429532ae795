//! [`CoordinatorError`]: what can go wrong talking to the coordinator.

/// A coordinator failure, typed by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorError {
    /// The URL is not a Redis URL (fix the flag).
    InvalidUrl {
        /// The URL as given (password removed).
        url: String,
        /// Why.
        message: String,
    },
    /// Redis cannot be reached or did not answer in time (retry later).
    Unavailable {
        /// The URL (password removed).
        url: String,
        /// The client's error.
        message: String,
    },
    /// Redis holds another job under the same key (a hash collision, or a tampered key).
    Conflict {
        /// The identity stored in Redis.
        stored: String,
        /// This worker's identity.
        ours: String,
    },
    /// Redis answered something the protocol does not expect.
    Protocol {
        /// What.
        message: String,
    },
}

impl CoordinatorError {
    /// True when retrying later may succeed (the connection, not the request, failed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl std::fmt::Display for CoordinatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl { url, message } => {
                write!(f, "invalid coordinator URL {url}: {message}")
            }
            Self::Unavailable { url, message } => {
                write!(f, "coordinator {url} is unreachable: {message}")
            }
            Self::Conflict { stored, ours } => write!(
                f,
                "the coordinator holds another job under this job's key (stored {stored:?}, \
                 this worker {ours:?})"
            ),
            Self::Protocol { message } => write!(f, "coordinator protocol error: {message}"),
        }
    }
}

impl std::error::Error for CoordinatorError {}

/// The URL with any password replaced by `***` (for messages).
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
            } else {
                url.to_owned()
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("redis://127.0.0.1:6380/2"),
            "redis://127.0.0.1:6380/2"
        );
        assert_eq!(
            redact("redis://user:secret@host:1/0"),
            "redis://user:***@host:1/0"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
    }
}
