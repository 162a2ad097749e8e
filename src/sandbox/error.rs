//! The sandbox API's error answers, shaped like Violet's:
//! `{"status":401,"message":"Token has expired","error_code":11,"timestamp":...}`.
//!
//! One type so every handler, the auth checks and the fault knobs answer alike, and
//! so the error codes a client may branch on are listed in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Violet's code for an expired access token: refresh, then retry.
pub const TOKEN_EXPIRED: u32 = 11;
/// Wrong or missing `X-Violet-App-Id` / `X-Violet-App-Secret` (403).
pub const APP_CREDENTIALS: u32 = 2001;
/// Wrong username or password at login (401).
pub const LOGIN_FAILED: u32 = 2002;
/// No `X-Violet-Token` header (401).
pub const TOKEN_MISSING: u32 = 2003;
/// A token the sandbox never issued (401).
pub const TOKEN_INVALID: u32 = 2004;
/// `GET /auth/token` with something that is not a live refresh token (401).
pub const REFRESH_INVALID: u32 = 2005;

#[derive(Debug, Clone)]
pub struct SandboxError {
    pub status: StatusCode,
    pub message: String,
    pub error_code: u32,
    pub retry_after: Option<u64>,
}

impl SandboxError {
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> SandboxError {
        SandboxError {
            status,
            message: message.into(),
            error_code,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> SandboxError {
        SandboxError::new(StatusCode::BAD_REQUEST, 400, message)
    }

    pub fn not_found(message: impl Into<String>) -> SandboxError {
        SandboxError::new(StatusCode::NOT_FOUND, 404, message)
    }

    pub fn expired() -> SandboxError {
        SandboxError::new(StatusCode::UNAUTHORIZED, TOKEN_EXPIRED, "Token has expired")
    }
}

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "message": self.message,
            "error_code": self.error_code,
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
