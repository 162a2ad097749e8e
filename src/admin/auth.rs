//! Who may use the admin API and page.
//!
//! - **API**: `Authorization: Bearer <admin.token>`. Both sides are hashed with
//!   SHA-256 and the digests compared with `subtle`, so neither the content nor the
//!   length of the token leaks through timing. Missing or wrong: 401.
//! - **Page**: a login form posts the token once; when it matches, the daemon sets
//!   `cm_admin_session=<expiry>.<mac>` where `mac` is HMAC-SHA256 keyed by the token
//!   over the expiry. The cookie is `HttpOnly` (scripts cannot read it), `SameSite=Strict`
//!   (no cross-site request carries it) and scoped to `Path=/ui`; it holds no copy of
//!   the token, expires after [`SESSION_TTL_SECS`], and changing `admin.token` voids
//!   every session. Page POSTs additionally refuse a foreign `Origin`.
//! - `admin.token` empty: both answer 403 `admin_disabled`.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AdminError, AdminState};
use crate::config::Secret;

/// Name of the page's session cookie.
pub const SESSION_COOKIE: &str = "cm_admin_session";
/// How long a page login lasts.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// Domain separation: a session MAC is never valid as anything else.
const SESSION_CONTEXT: &[u8] = b"catalog-mirror admin session v1:";

/// Whether `candidate` is the configured token, in constant time. Always false when
/// the admin API is disabled (empty token).
pub fn token_matches(configured: &Secret, candidate: &str) -> bool {
    if configured.is_empty() {
        return false;
    }
    let expected = Sha256::digest(configured.expose().as_bytes());
    let given = Sha256::digest(candidate.as_bytes());
    expected.ct_eq(&given).into()
}

/// Middleware of the API routes: disabled → 403, no or wrong bearer token → 401.
pub async fn require_bearer(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.enabled() {
        return AdminError::Disabled.into_response();
    }
    match bearer(request.headers()) {
        None => AdminError::Unauthorized(
            "missing admin token: send Authorization: Bearer <admin.token>",
        )
        .into_response(),
        Some(token) if token_matches(&state.token, token) => next.run(request).await,
        Some(_) => {
            tracing::warn!("admin request refused: wrong token");
            AdminError::Unauthorized("invalid admin token").into_response()
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A new session cookie value, valid until `now + SESSION_TTL_SECS`.
pub fn new_session(token: &Secret, now: i64) -> String {
    let expires = now + SESSION_TTL_SECS;
    format!("{expires}.{}", hex(&session_mac(token, expires)))
}

/// Whether the request carries a valid, unexpired session cookie.
pub fn has_session(token: &Secret, headers: &HeaderMap, now: i64) -> bool {
    if token.is_empty() {
        return false;
    }
    cookies(headers)
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .any(|(_, value)| session_valid(token, value, now))
}

fn session_valid(token: &Secret, value: &str, now: i64) -> bool {
    let Some((expires, mac)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    if expires <= now || expires > now + SESSION_TTL_SECS {
        return false;
    }
    let expected = hex(&session_mac(token, expires));
    expected.as_bytes().ct_eq(mac.as_bytes()).into()
}

fn session_mac(token: &Secret, expires: i64) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(SESSION_CONTEXT);
    mac.update(expires.to_string().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `Set-Cookie` for a fresh session.
pub fn session_cookie(value: &str) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/ui; Max-Age={SESSION_TTL_SECS}; HttpOnly; SameSite=Strict"
    )
}

/// `Set-Cookie` that ends the session.
pub fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// Cross-site form posts are already stopped by `SameSite=Strict`; this refuses a
/// request whose `Origin` names another site too (defence in depth). No `Origin`
/// (older clients, curl) is allowed: the cookie is still required.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let Some(host) = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_with_cookie(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, cookie.parse().unwrap());
        headers
    }

    #[test]
    fn tokens_compare_exactly() {
        let token = Secret::new("s3cret-token");
        assert!(token_matches(&token, "s3cret-token"));
        assert!(!token_matches(&token, "s3cret-toke"));
        assert!(!token_matches(&token, "s3cret-token "));
        assert!(!token_matches(&Secret::default(), ""));
    }

    #[test]
    fn sessions_verify_and_expire() {
        let token = Secret::new("s3cret-token");
        let value = new_session(&token, 1_000);
        let headers = headers_with_cookie(&format!("other=1; {SESSION_COOKIE}={value}"));
        assert!(has_session(&token, &headers, 1_001));
        assert!(!has_session(&token, &headers, 1_000 + SESSION_TTL_SECS));
        assert!(!has_session(&Secret::new("another-token"), &headers, 1_001));
        assert!(!value.contains("s3cret"));
    }

    #[test]
    fn tampered_sessions_are_refused() {
        let token = Secret::new("s3cret-token");
        let value = new_session(&token, 1_000);
        let (expires, mac) = value.split_once('.').unwrap();
        let later: i64 = expires.parse::<i64>().unwrap() + 60;
        let forged = headers_with_cookie(&format!("{SESSION_COOKIE}={later}.{mac}"));
        assert!(!has_session(&token, &forged, 1_001));
        assert!(!has_session(
            &token,
            &headers_with_cookie(&format!("{SESSION_COOKIE}=garbage")),
            1_001
        ));
    }

    #[test]
    fn foreign_origins_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::HOST, "127.0.0.1:8081".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(
            axum::http::header::ORIGIN,
            "http://127.0.0.1:8081".parse().unwrap(),
        );
        assert!(same_origin(&headers));
        headers.insert(
            axum::http::header::ORIGIN,
            "http://evil.example".parse().unwrap(),
        );
        assert!(!same_origin(&headers));
    }
}
