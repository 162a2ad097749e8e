//! Errors of the search API in Meilisearch's shape: `{"message", "code", "type", "link"}`
//! with the status Meilisearch uses for that code, so official clients raise their
//! usual exceptions. Internal causes are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Meilisearch's error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Auth,
    Internal,
    /// The server cannot take the request now (Meilisearch's `system`).
    System,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request",
            ErrorType::Auth => "auth",
            ErrorType::Internal => "internal",
            ErrorType::System => "system",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    /// A 400 about the request, with a Meilisearch error code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            kind: ErrorType::InvalidRequest,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::invalid("bad_request", message)
    }

    pub fn index_not_found(uid: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "index_not_found",
            kind: ErrorType::InvalidRequest,
            message: format!("Index `{uid}` not found."),
        }
    }

    /// `GET /indexes/offers/documents/{id}` for an offer that is not served (or that
    /// the caller's key may not see: the answer does not tell the two apart).
    pub fn document_not_found(id: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "document_not_found",
            kind: ErrorType::InvalidRequest,
            message: format!("Document `{id}` not found."),
        }
    }

    /// A path no route serves. Meilisearch's specification of 404s
    /// (meilisearch/specifications text/0046-404-405-http-error-code.md) names this
    /// code and message; the server itself lets actix answer with an empty 404, which
    /// SDKs then report as a bare HTTP error, so the specified body is sent instead.
    pub fn unrecognized_url(method: &str, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unrecognized_request_url",
            kind: ErrorType::InvalidRequest,
            message: format!(
                "Unrecognized request URL ({method}: {path}). See https://www.meilisearch.com/docs/reference/api/overview"
            ),
        }
    }

    /// A route that exists, asked with a method it does not serve (same specification).
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            kind: ErrorType::InvalidRequest,
            message: format!(
                "Method {method} is not allowed on {path}. See https://www.meilisearch.com/docs/reference/api/overview"
            ),
        }
    }

    /// A write (documents, settings, indexes) to this read-only mirror. Every key the
    /// daemon accepts is, in Meilisearch's terms, a search key (actions `search`,
    /// `documents.get`, `settings.get`, `indexes.get`, `stats.get`, `version`), and
    /// Meilisearch answers a write made with such a key `403 invalid_api_key`
    /// (crates/meilisearch/src/extractors/authentication/mod.rs: the key lacks the
    /// action); no closer code exists, since Meilisearch itself has no read-only mode.
    /// The message says why, so nobody hunts for a better key.
    pub fn read_only(what: &str) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "invalid_api_key",
            kind: ErrorType::Auth,
            message: format!(
                "The provided API key is invalid. This server is a read-only mirror of the Violet catalog: {what} cannot be changed through its search API; they follow the catalog and the files in index/."
            ),
        }
    }

    pub fn missing_authorization() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "missing_authorization_header",
            kind: ErrorType::Auth,
            message:
                "The Authorization header is missing. It must use the bearer authorization method."
                    .into(),
        }
    }

    pub fn invalid_api_key(detail: Option<&str>) -> ApiError {
        let message = match detail {
            Some(detail) => format!("The provided API key is invalid. {detail}"),
            None => "The provided API key is invalid.".into(),
        };
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "invalid_api_key",
            kind: ErrorType::Auth,
            message,
        }
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            kind: ErrorType::InvalidRequest,
            message: format!(
                "The provided payload reached the size limit. The maximum accepted payload size is {limit} bytes."
            ),
        }
    }

    pub fn content_type(found: Option<&str>) -> ApiError {
        let (code, message) = match found {
            None => (
                "missing_content_type",
                "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`".to_string(),
            ),
            Some(found) => (
                "invalid_content_type",
                format!("The Content-Type `{found}` is invalid. Accepted values for the Content-Type header are: `application/json`"),
            ),
        };
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code,
            kind: ErrorType::InvalidRequest,
            message,
        }
    }

    /// The search queue (or the requests in flight) is full: Meilisearch's own answer
    /// when its search queue is full, with a `Retry-After`.
    pub fn too_many_searches(capacity: usize) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "too_many_search_requests",
            kind: ErrorType::System,
            message: format!(
                "Too many search requests running at the same time: {capacity}. Retry after {RETRY_AFTER_SECS}s."
            ),
        }
    }

    /// The request's time limit passed before its answer was computed.
    pub fn search_timeout(limit_ms: u64) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "search_timeout",
            kind: ErrorType::System,
            message: format!(
                "The search did not finish within its time limit of {limit_ms} ms. Retry after {RETRY_AFTER_SECS}s."
            ),
        }
    }

    /// The request's body did not arrive within the time limit.
    pub fn request_timeout(limit_ms: u64) -> ApiError {
        ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "request_timeout",
            kind: ErrorType::InvalidRequest,
            message: format!("The request body did not arrive within {limit_ms} ms."),
        }
    }

    /// Something failed on our side; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "search request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            kind: ErrorType::Internal,
            message: "An internal error has occurred. The cause is in the server's log.".into(),
        }
    }

    /// The same error, its message prefixed (multi-search: `Inside .queries[1]: ...`).
    pub fn prefixed(mut self, prefix: &str) -> ApiError {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "message": self.message,
            "code": self.code,
            "type": self.kind.as_str(),
            "link": format!("https://docs.meilisearch.com/errors#{}", self.code),
        })
    }
}

/// What a 503 asks the client to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        match self.status {
            // The body was refused unread (or not all of it arrived).
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT => {
                crate::web::last_on_connection(response)
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(RETRY_AFTER_SECS),
                );
                response
            }
            _ => response,
        }
    }
}

/// Meilisearch's wording for a wrongly typed parameter.
pub fn invalid_type(
    code: &'static str,
    path: &str,
    expected: &str,
    found: &serde_json::Value,
) -> ApiError {
    ApiError::invalid(
        code,
        format!(
            "Invalid value type at `{path}`: expected {expected}, but found {}: `{found}`",
            super::filter::json_kind(found)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_payload_closes_the_connection() {
        let refused = ApiError::payload_too_large(10).into_response();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            refused.headers().get(axum::http::header::CONNECTION),
            Some(&axum::http::HeaderValue::from_static("close"))
        );
        let busy = ApiError::too_many_searches(4).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            busy.headers().get(axum::http::header::RETRY_AFTER),
            Some(&axum::http::HeaderValue::from_static("1"))
        );
        assert!(busy.headers().get(axum::http::header::CONNECTION).is_none());
        let invalid = ApiError::invalid("invalid_search_q", "no").into_response();
        assert!(
            invalid
                .headers()
                .get(axum::http::header::CONNECTION)
                .is_none()
        );
    }
}
