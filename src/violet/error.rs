//! What can go wrong talking to Violet, and which of it is worth retrying.
//!
//! Every variant names the endpoint as `METHOD /path?query` relative to the base URL:
//! never the host (the base URL could carry credentials), never a header, so no app
//! secret, password or token can reach a message. Server-provided messages are
//! clipped and scrubbed of anything that looks like a token before they are kept.

use std::time::Duration;

/// An error from the Violet client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VioletError {
    /// The client could not be built from the settings (e.g. a bad base URL).
    #[error("invalid Violet client settings: {0}")]
    Config(String),
    /// A non-success status not covered by a more specific variant. 5xx is retried,
    /// other statuses (400, 403, 404, ...) are final.
    #[error("{endpoint}: HTTP {status}{}", suffix(message))]
    Http {
        status: u16,
        endpoint: String,
        message: String,
    },
    /// 429: Violet or the merchant's platform asks us to slow down.
    #[error("{endpoint}: HTTP 429 rate limited{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        endpoint: String,
        retry_after: Option<Duration>,
    },
    /// 401 that a token refresh did not cure, or a refused login (bad app id, app
    /// secret, username or password). Final.
    #[error("{endpoint}: unauthorized{}", suffix(message))]
    Unauthorized { endpoint: String, message: String },
    /// No complete answer within `request_timeout_ms`.
    #[error("{endpoint}: timed out after {timeout_ms} ms")]
    Timeout { endpoint: String, timeout_ms: u64 },
    /// The connection could not be made (refused, DNS, TLS, connect timeout).
    #[error("{endpoint}: cannot connect: {detail}")]
    Connect { endpoint: String, detail: String },
    /// The connection failed mid-request or mid-body.
    #[error("{endpoint}: transport error: {detail}")]
    Transport { endpoint: String, detail: String },
    /// The body could not be decoded: truncated or malformed JSON, or a field of the
    /// wrong type (the detail names the item and field). `page` is the 1-based page
    /// requested, for paged endpoints.
    #[error("{endpoint}: cannot decode response{}: {detail}", page.map(|p| format!(" (page {p})")).unwrap_or_default())]
    Decode {
        endpoint: String,
        page: Option<u32>,
        detail: String,
    },
    /// A retryable failure persisted through every allowed attempt.
    #[error("{endpoint}: gave up after {attempts} attempt{}; last error: {last}", if *attempts == 1 { "" } else { "s" })]
    GaveUp {
        endpoint: String,
        attempts: u32,
        last: Box<VioletError>,
    },
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl VioletError {
    /// Whether trying the same request again may succeed: 429, 5xx, timeouts,
    /// connection and transport failures, undecodable bodies. `GaveUp` is not: the
    /// client already retried; a caller may schedule the whole job again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status >= 500,
            Self::RateLimited { .. }
            | Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::Transport { .. }
            | Self::Decode { .. } => true,
            Self::Config(_) | Self::Unauthorized { .. } | Self::GaveUp { .. } => false,
        }
    }

    /// The HTTP status, when the failure was an HTTP answer (through `GaveUp` too).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::Unauthorized { .. } => Some(401),
            Self::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Whether this is a 404 (through `GaveUp` too).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The endpoint the error is about (`METHOD /path?query`), if any.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            Self::Config(_) => None,
            Self::Http { endpoint, .. }
            | Self::RateLimited { endpoint, .. }
            | Self::Unauthorized { endpoint, .. }
            | Self::Timeout { endpoint, .. }
            | Self::Connect { endpoint, .. }
            | Self::Transport { endpoint, .. }
            | Self::Decode { endpoint, .. }
            | Self::GaveUp { endpoint, .. } => Some(endpoint),
        }
    }

    /// A short, low-cardinality label for metrics (`retries_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Http { status, .. } if *status >= 500 => "server_error",
            Self::Http { .. } => "client_error",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Timeout { .. } => "timeout",
            Self::Connect { .. } => "connect",
            Self::Transport { .. } => "transport",
            Self::Decode { .. } => "decode",
            Self::GaveUp { .. } => "gave_up",
        }
    }

    /// How long the server asked us to wait, for a 429 with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Makes a server-provided text safe to keep in an error: anything shaped like a
/// JWT (`xxx.yyy.zzz` with long base64url parts) or equal to one of `secrets` is
/// replaced, and the result is clipped.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "[redacted]");
    }
    let words: Vec<String> = out
        .split(' ')
        .map(|word| {
            if looks_like_token(word) {
                "[redacted]".to_string()
            } else {
                word.to_string()
            }
        })
        .collect();
    crate::violet::models::clip(&words.join(" "), 300)
}

fn looks_like_token(word: &str) -> bool {
    let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            part.len() >= 8
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_follows_the_contract() {
        let endpoint = || "GET /x".to_string();
        let http = |status| VioletError::Http {
            status,
            endpoint: endpoint(),
            message: String::new(),
        };
        assert!(http(500).is_retryable() && http(503).is_retryable());
        assert!(
            !http(400).is_retryable() && !http(403).is_retryable() && !http(404).is_retryable()
        );
        assert!(
            VioletError::RateLimited {
                endpoint: endpoint(),
                retry_after: None
            }
            .is_retryable()
        );
        assert!(
            VioletError::Decode {
                endpoint: endpoint(),
                page: Some(3),
                detail: "eof".into()
            }
            .is_retryable()
        );
        assert!(
            !VioletError::Unauthorized {
                endpoint: endpoint(),
                message: String::new()
            }
            .is_retryable()
        );
        let gave_up = VioletError::GaveUp {
            endpoint: endpoint(),
            attempts: 3,
            last: Box::new(http(404)),
        };
        assert!(!gave_up.is_retryable() && gave_up.is_not_found());
    }

    #[test]
    fn messages_name_endpoint_attempts_and_cause() {
        let err = VioletError::GaveUp {
            endpoint: "GET /catalog/offers/merchants/1?page=2&size=100".into(),
            attempts: 4,
            last: Box::new(VioletError::Http {
                status: 503,
                endpoint: "GET /catalog/offers/merchants/1?page=2&size=100".into(),
                message: "Service Unavailable".into(),
            }),
        };
        let text = err.to_string();
        assert!(
            text.starts_with(
                "GET /catalog/offers/merchants/1?page=2&size=100: gave up after 4 attempts"
            ),
            "{text}"
        );
        assert!(text.ends_with("HTTP 503: Service Unavailable"), "{text}");
    }

    #[test]
    fn scrub_removes_tokens_and_secrets() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlc2ln";
        let text = scrub(
            &format!("bad token {jwt}, secret hunter22 given"),
            &["hunter22"],
        );
        assert!(!text.contains(jwt) && !text.contains("hunter22"), "{text}");
        assert!(text.starts_with("bad token [redacted]"), "{text}");
        assert_eq!(scrub("Token has expired", &[]), "Token has expired");
        assert!(scrub(&"x".repeat(1000), &[]).len() < 320);
    }
}
