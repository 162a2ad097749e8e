//! The Violet session: lazy login, proactive refresh before the token's `exp`,
//! refresh on demand after a 401 "token expired", login again when refresh fails.
//!
//! One `RwLock` guards the session: readers share a fresh token; whoever finds it
//! stale takes the write lock and renews, and everyone queued behind re-checks and
//! uses the new one, so only one login or refresh is ever in flight. Tokens live only
//! here and in request headers (marked sensitive); `Debug` never prints them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::error::VioletError;
use super::transport::{self, failure_label, record};
use crate::config::Secret;

/// What login and refresh need: the HTTP client and the credentials.
pub(crate) struct Credentials {
    pub http: reqwest::Client,
    pub base_url: String,
    /// `X-Violet-App-Id` and `X-Violet-App-Secret` (sensitive).
    pub app_headers: HeaderMap,
    pub app_secret: Secret,
    pub username: String,
    pub password: Secret,
    pub timeout_ms: u64,
}

pub(crate) struct Auth {
    creds: Credentials,
    margin: Duration,
    session: RwLock<Option<Session>>,
}

struct Session {
    token: String,
    refresh_token: Option<String>,
    /// When to renew proactively; `None` when the token carries no readable `exp`
    /// (then it is used until Violet says it expired).
    renew_at: Option<Instant>,
    /// Set after Violet answered "token expired" for this token.
    stale: bool,
}

impl Session {
    fn usable(&self, now: Instant) -> bool {
        !self.stale && self.renew_at.is_none_or(|at| now < at)
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.creds.username)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl Auth {
    pub(crate) fn new(creds: Credentials, margin: Duration) -> Self {
        Self {
            creds,
            margin,
            session: RwLock::new(None),
        }
    }

    /// A token valid for now, logging in or refreshing first when needed.
    pub(crate) async fn token(&self) -> Result<String, VioletError> {
        if let Some(session) = self.session.read().await.as_ref()
            && session.usable(Instant::now())
        {
            return Ok(session.token.clone());
        }
        let mut guard = self.session.write().await;
        if let Some(session) = guard.as_ref()
            && session.usable(Instant::now())
        {
            return Ok(session.token.clone()); // renewed while we waited
        }
        let previous = guard.take();
        let renewed = match previous.and_then(|s| s.refresh_token) {
            Some(refresh_token) => match self.refresh(&refresh_token).await {
                Ok(session) => session,
                Err(err) => {
                    tracing::info!(error = %err, "Violet token refresh failed; logging in again");
                    self.login().await?
                }
            },
            None => self.login().await?,
        };
        let token = renewed.token.clone();
        *guard = Some(renewed);
        Ok(token)
    }

    /// Marks `token` as expired (Violet said so), unless it was already replaced.
    pub(crate) async fn invalidate(&self, token: &str) {
        if let Some(session) = self.session.write().await.as_mut()
            && session.token == token
        {
            session.stale = true;
        }
    }

    #[tracing::instrument(skip_all, fields(endpoint = "/login"))]
    async fn login(&self) -> Result<Session, VioletError> {
        let body = serde_json::json!({
            "username": self.creds.username,
            "password": self.creds.password.expose(),
        });
        let request = self
            .creds
            .http
            .post(format!("{}/login", self.creds.base_url))
            .headers(self.creds.app_headers.clone())
            .json(&body);
        let session = self.exchange(request, "/login", "POST /login").await?;
        tracing::info!(username = %self.creds.username, "logged in to Violet");
        Ok(session)
    }

    #[tracing::instrument(skip_all, fields(endpoint = "/auth/token"))]
    async fn refresh(&self, refresh_token: &str) -> Result<Session, VioletError> {
        let mut header = HeaderValue::from_str(refresh_token).map_err(|_| VioletError::Decode {
            endpoint: "GET /auth/token".into(),
            page: None,
            detail: "refresh_token is not a valid header value".into(),
        })?;
        header.set_sensitive(true);
        let request = self
            .creds
            .http
            .get(format!("{}/auth/token", self.creds.base_url))
            .headers(self.creds.app_headers.clone())
            .header("X-Violet-Token", header);
        let mut session = self
            .exchange(request, "/auth/token", "GET /auth/token")
            .await?;
        if session.refresh_token.is_none() {
            session.refresh_token = Some(refresh_token.to_string());
        }
        tracing::debug!("refreshed the Violet token");
        Ok(session)
    }

    /// Sends a login or refresh request and reads `{token, refresh_token?}`.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        template: &'static str,
        endpoint: &str,
    ) -> Result<Session, VioletError> {
        let timeout_ms = self.creds.timeout_ms;
        let started = Instant::now();
        let result = async {
            let response = request
                .send()
                .await
                .map_err(|err| transport::transport_error(err, endpoint, timeout_ms))?;
            let status = response.status();
            let body = transport::read_body(response, endpoint, timeout_ms).await?;
            Ok::<_, VioletError>((status, body))
        }
        .await;
        let (status, body) = match result {
            Ok(ok) => ok,
            Err(err) => {
                record(template, failure_label(&err), started);
                return Err(err);
            }
        };
        record(template, status.as_u16().to_string(), started);
        if !status.is_success() {
            let secrets = [self.creds.app_secret.expose(), self.creds.password.expose()];
            return Err(transport::status_error(
                status, None, &body, endpoint, &secrets,
            ));
        }
        let parsed: TokenBody =
            serde_json::from_slice(&body).map_err(|err| VioletError::Decode {
                endpoint: endpoint.to_string(),
                page: None,
                detail: format!("expected an object with `token`: {err}"),
            })?;
        Ok(self.session(parsed))
    }

    fn session(&self, body: TokenBody) -> Session {
        let renew_at = match jwt_exp(&body.token) {
            Some(exp) => renew_at(exp, unix_now(), self.margin),
            None => {
                tracing::warn!("Violet token has no readable `exp`; renewing only when refused");
                None
            }
        };
        Session {
            token: body.token,
            refresh_token: body.refresh_token,
            renew_at,
            stale: false,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// When to renew a token expiring at `exp` (unix seconds), seen at `now`: `margin`
/// before `exp`, but never later than half-way through the remaining lifetime, so a
/// short-lived token (shorter than the margin) is still used for a while. A token
/// already expired by our clock (skew) gets no proactive renewal.
fn renew_at(exp: f64, now: f64, margin: Duration) -> Option<Instant> {
    let remaining = exp - now;
    if !remaining.is_finite() || remaining <= 0.0 {
        return None;
    }
    let lead = margin.as_secs_f64().min(remaining / 2.0);
    Duration::try_from_secs_f64(remaining - lead)
        .ok()
        .and_then(|wait| Instant::now().checked_add(wait))
}

/// The `exp` claim of a JWT (payload only; the signature is Violet's business).
pub(crate) fn jwt_exp(token: &str) -> Option<f64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_exp_from_the_payload() {
        assert_eq!(
            jwt_exp(&jwt(r#"{"sub":"x","exp":1700000000}"#)),
            Some(1.7e9)
        );
        assert_eq!(jwt_exp(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_exp("opaque-token"), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
        assert_eq!(jwt_exp(&jwt("not json")), None);
    }

    #[test]
    fn renews_a_margin_early_or_half_way_for_short_tokens() {
        let margin = Duration::from_secs(300);
        let long = renew_at(86_400.0, 0.0, margin).unwrap() - Instant::now();
        assert!(long > Duration::from_secs(86_000) && long <= Duration::from_secs(86_100));
        let short = renew_at(2.0, 0.0, margin).unwrap() - Instant::now();
        assert!(short <= Duration::from_secs(1) && short > Duration::from_millis(900));
        assert!(
            renew_at(-5.0, 0.0, margin).is_none(),
            "already expired by our clock"
        );
    }

    #[test]
    fn sessions_go_stale_when_told_or_due() {
        let now = Instant::now();
        let mut session = Session {
            token: "t".into(),
            refresh_token: None,
            renew_at: Some(now + Duration::from_secs(5)),
            stale: false,
        };
        assert!(session.usable(now));
        assert!(!session.usable(now + Duration::from_secs(6)));
        session.stale = true;
        assert!(!session.usable(now));
    }
}
