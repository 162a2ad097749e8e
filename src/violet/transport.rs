//! One HTTP exchange with Violet turned into bytes or a [`VioletError`]: status
//! mapping, `Retry-After`, the expired-token signal, bounded body reads, metrics.
//!
//! Shared by the authenticated calls (`client.rs`) and by login/refresh (`auth.rs`),
//! so both classify failures the same way.

use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use super::error::{VioletError, scrub};

/// Largest response body read; a larger one is a transport error (no unbounded memory).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Violet's `error_code` for an expired token.
const TOKEN_EXPIRED: i64 = 11;

/// Violet's error body (`{"status","message","error_code","timestamp"}`), loosely.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default)]
    error_code: Option<serde_json::Value>,
}

fn error_body(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

/// Whether `status`/`body` is Violet's "token has expired" answer (401, `error_code` 11).
pub(crate) fn is_token_expired(status: StatusCode, body: &[u8]) -> bool {
    if status != StatusCode::UNAUTHORIZED {
        return false;
    }
    match error_body(body).error_code {
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(TOKEN_EXPIRED),
        Some(serde_json::Value::String(s)) => s.trim() == "11",
        _ => false,
    }
}

/// The error for a non-success answer. `secrets` are scrubbed from the server's message.
pub(crate) fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    endpoint: &str,
    secrets: &[&str],
) -> VioletError {
    let endpoint = endpoint.to_string();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return VioletError::RateLimited {
            endpoint,
            retry_after,
        };
    }
    let message = match error_body(body).message {
        Some(serde_json::Value::String(text)) => text,
        Some(other) => other.to_string(),
        None => String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_string(),
    };
    let message = scrub(&message, secrets);
    match status {
        StatusCode::UNAUTHORIZED => VioletError::Unauthorized { endpoint, message },
        _ => VioletError::Http {
            status: status.as_u16(),
            endpoint,
            message: if message.is_empty() {
                status.canonical_reason().unwrap_or_default().to_string()
            } else {
                message
            },
        },
    }
}

/// `Retry-After` as a delay: delta-seconds or an HTTP date; clamped to `max`.
pub(crate) fn retry_after(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now()).map(|delay| delay.min(max))
}

pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::try_from_secs_f64(seconds).ok())
            .flatten();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::try_from(date.timestamp()).ok()?))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A reqwest failure as our error, without the URL (the base URL could hold credentials).
pub(crate) fn transport_error(err: reqwest::Error, endpoint: &str, timeout_ms: u64) -> VioletError {
    let endpoint = endpoint.to_string();
    if err.is_timeout() {
        return VioletError::Timeout {
            endpoint,
            timeout_ms,
        };
    }
    let is_connect = err.is_connect();
    let detail = chain(&err.without_url());
    if is_connect {
        VioletError::Connect { endpoint, detail }
    } else {
        VioletError::Transport { endpoint, detail }
    }
}

/// An error and its sources, `a: b: c`.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(
    mut response: Response,
    endpoint: &str,
    timeout_ms: u64,
) -> Result<Bytes, VioletError> {
    let too_big = || VioletError::Transport {
        endpoint: endpoint.to_string(),
        detail: format!("response body larger than {MAX_BODY_BYTES} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| transport_error(err, endpoint, timeout_ms))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Records one exchange: `requests_total{endpoint,status}` and its duration.
pub(crate) fn record(endpoint: &'static str, status: String, started: Instant) {
    metrics::counter!(
        "catalog_mirror_violet_requests_total",
        "endpoint" => endpoint,
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        "catalog_mirror_violet_request_duration_seconds",
        "endpoint" => endpoint,
    )
    .record(started.elapsed().as_secs_f64());
}

/// The `status` label of a failed exchange.
pub(crate) fn failure_label(err: &VioletError) -> String {
    match err {
        VioletError::Timeout { .. } => "timeout".into(),
        VioletError::Connect { .. } => "connect".into(),
        other => other.reason().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_expired_token_answer_only() {
        let expired =
            br#"{"status":401,"message":"Token has expired","error_code":11,"timestamp":1}"#;
        assert!(is_token_expired(StatusCode::UNAUTHORIZED, expired));
        assert!(is_token_expired(
            StatusCode::UNAUTHORIZED,
            br#"{"error_code":"11"}"#
        ));
        assert!(!is_token_expired(StatusCode::FORBIDDEN, expired));
        assert!(!is_token_expired(
            StatusCode::UNAUTHORIZED,
            br#"{"error_code":12}"#
        ));
        assert!(!is_token_expired(StatusCode::UNAUTHORIZED, b"not json"));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 0.5 ", now),
            Some(Duration::from_millis(500))
        );
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "100000".parse().unwrap());
        assert_eq!(
            retry_after(&headers, Duration::from_secs(120)),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn status_errors_keep_the_server_message_scrubbed() {
        let err = status_error(
            StatusCode::BAD_REQUEST,
            None,
            br#"{"message":"bad size for secret s3cr3t-value"}"#,
            "GET /x",
            &["s3cr3t-value"],
        );
        assert_eq!(
            err.to_string(),
            "GET /x: HTTP 400: bad size for secret [redacted]"
        );
        let err = status_error(StatusCode::BAD_GATEWAY, None, b"", "GET /x", &[]);
        assert_eq!(err.to_string(), "GET /x: HTTP 502: Bad Gateway");
        let err = status_error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(2)),
            b"",
            "GET /x",
            &[],
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        let err = status_error(
            StatusCode::UNAUTHORIZED,
            None,
            br#"{"message":"Invalid app secret"}"#,
            "POST /login",
            &[],
        );
        assert!(matches!(err, VioletError::Unauthorized { .. }) && !err.is_retryable());
    }
}
