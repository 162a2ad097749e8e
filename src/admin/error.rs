//! The admin API's one error type: each variant is a status and a stable code, the
//! message says what to fix. Database failures are logged here and answered with a
//! generic 500 (or 503 when the database is unreachable), never with their text.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A parameter or body the API cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or not the configured one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// `admin.token` is empty.
    #[error(
        "the admin API is disabled: set admin.token (CATALOG_MIRROR_ADMIN__TOKEN) to enable it"
    )]
    Disabled,
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the resource is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// A feature this daemon cannot serve right now (e.g. reindex without an indexer).
    #[error("{0}")]
    Unavailable(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl AdminError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        AdminError::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AdminError::Disabled => StatusCode::FORBIDDEN,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Database(err) if is_connectivity(err) => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AdminError::BadRequest(_) => "bad_request",
            AdminError::Unauthorized(_) => "unauthorized",
            AdminError::Disabled => "admin_disabled",
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) => "conflict",
            AdminError::Unavailable(_) => "unavailable",
            AdminError::Database(err) if is_connectivity(err) => "unavailable",
            AdminError::Database(_) => "internal",
        }
    }

    /// What the client is told: the cause of a database error stays in the log.
    pub fn public_message(&self) -> String {
        match self {
            AdminError::Database(err) if is_connectivity(err) => {
                "the database is unreachable; try again".into()
            }
            AdminError::Database(_) => "internal error; see the daemon's log".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let AdminError::Database(err) = &self {
            tracing::error!(error = %err, "admin request failed on the database");
        }
        let status = self.status();
        let mut response = (
            status,
            Json(json!({ "error": self.code(), "message": self.public_message() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"catalog-mirror admin\""),
            );
        }
        response
    }
}

fn is_connectivity(err: &sqlx::Error) -> bool {
    crate::db::Failure::of(err).is_connectivity()
}
