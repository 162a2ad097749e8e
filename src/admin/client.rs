//! The HTTP client of the `admin` command: calls the admin API with the bearer token
//! and turns every failure into an [`ClientError`] that says what to do about it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the daemon's admin API at {url}: {cause} (is `catalog-mirror serve` running, and is admin.url right?)"
    )]
    Unreachable { url: String, cause: String },
    #[error(
        "the admin API refused the token ({status}): {message} (check admin.token / CATALOG_MIRROR_ADMIN__TOKEN)"
    )]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Disabled(String),
    #[error("{message} ({status} {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The process exit code: 3 unreachable, 4 refused or disabled, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => 3,
            ClientError::Refused { .. } | ClientError::Disabled(_) => 4,
            ClientError::Api { .. } | ClientError::Usage(_) => 1,
        }
    }
}

pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl AdminClient {
    pub fn new(base: &str, token: Secret) -> Result<AdminClient, ClientError> {
        if token.is_empty() {
            return Err(ClientError::Disabled(
                "no admin token: set admin.token in the configuration or CATALOG_MIRROR_ADMIN__TOKEN in the environment".into(),
            ));
        }
        let base = base.trim_end_matches('/').to_string();
        url::Url::parse(&base)
            .map_err(|err| ClientError::Usage(format!("admin URL {base:?} is not valid: {err}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|err| ClientError::Usage(format!("cannot build the HTTP client: {err}")))?;
        Ok(AdminClient { http, base, token })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ClientError> {
        let request = self.http.get(self.url(path)).query(query);
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = request
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                url: self.base.clone(),
                cause: root_cause(&err),
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_string();
        let code = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Refused {
                status: status.as_u16(),
                message,
            },
            StatusCode::FORBIDDEN if code == "admin_disabled" => ClientError::Disabled(message),
            _ => ClientError::Api {
                status: status.as_u16(),
                code,
                message,
            },
        })
    }
}

/// The innermost cause of a reqwest error ("Connection refused (os error 111)").
fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if err.is_timeout() {
        "timed out".into()
    } else {
        cause.to_string()
    }
}
