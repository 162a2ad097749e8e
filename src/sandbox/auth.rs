//! Sandbox authentication: app credentials on every call, login, JWT-shaped access
//! tokens that expire, refresh tokens, and forced expiry for tests.
//!
//! Tokens are only looked up here, never verified cryptographically: the sandbox
//! issued them, so a table of live tokens is the truth. The JWT shape matters only
//! because clients read `exp` from the payload to renew ahead of time.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::SandboxConfig;
use super::error::{self, SandboxError};
use super::hash::{mix, tag};

pub const APP_ID_HEADER: &str = "x-violet-app-id";
pub const APP_SECRET_HEADER: &str = "x-violet-app-secret";
pub const TOKEN_HEADER: &str = "x-violet-token";

#[derive(Default)]
struct Tokens {
    serial: u64,
    /// Live access tokens and when they expire.
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

pub struct Auth {
    seed: u64,
    app_id: u64,
    app_secret: String,
    username: String,
    password: String,
    ttl: Duration,
    tokens: Mutex<Tokens>,
}

impl Auth {
    pub fn new(config: &SandboxConfig) -> Auth {
        Auth {
            seed: config.seed,
            app_id: config.app_id,
            app_secret: config.app_secret.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            ttl: config.token_ttl,
            tokens: Mutex::new(Tokens::default()),
        }
    }

    pub fn app_secret(&self) -> &str {
        &self.app_secret
    }

    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `X-Violet-App-Id` and `X-Violet-App-Secret` must match (403 otherwise).
    pub fn check_app(&self, headers: &HeaderMap) -> Result<(), SandboxError> {
        let id_ok = header(headers, APP_ID_HEADER).and_then(|v| v.trim().parse::<u64>().ok())
            == Some(self.app_id);
        let secret_ok = header(headers, APP_SECRET_HEADER) == Some(self.app_secret.as_str());
        if id_ok && secret_ok {
            Ok(())
        } else {
            Err(SandboxError::new(
                StatusCode::FORBIDDEN,
                error::APP_CREDENTIALS,
                "Invalid app id or app secret",
            ))
        }
    }

    /// `X-Violet-Token` must be a live access token.
    pub fn check_token(&self, headers: &HeaderMap) -> Result<(), SandboxError> {
        let Some(token) = header(headers, TOKEN_HEADER) else {
            return Err(SandboxError::new(
                StatusCode::UNAUTHORIZED,
                error::TOKEN_MISSING,
                "Missing X-Violet-Token",
            ));
        };
        let tokens = self.tokens();
        match tokens.access.get(token) {
            Some(&expires) if Instant::now() < expires => Ok(()),
            Some(_) => Err(SandboxError::expired()),
            // A JWT from an earlier run of the sandbox: it expired as far as we know.
            None if token.split('.').count() == 3 => Err(SandboxError::expired()),
            None => Err(SandboxError::new(
                StatusCode::UNAUTHORIZED,
                error::TOKEN_INVALID,
                "Invalid token",
            )),
        }
    }

    /// `POST /login`: the user object with `token` and `refresh_token`.
    pub fn login(&self, body: &Value) -> Result<Value, SandboxError> {
        let user = body.get("username").and_then(Value::as_str);
        let pass = body.get("password").and_then(Value::as_str);
        if user != Some(self.username.as_str()) || pass != Some(self.password.as_str()) {
            return Err(SandboxError::new(
                StatusCode::UNAUTHORIZED,
                error::LOGIN_FAILED,
                "Invalid username or password",
            ));
        }
        let mut tokens = self.tokens();
        let token = self.issue(&mut tokens);
        tokens.serial += 1;
        let refresh = format!(
            "rt_{:016x}{:016x}",
            mix(&[self.seed, tag("refresh"), tokens.serial]),
            rand::random::<u64>()
        );
        tokens.refresh.insert(refresh.clone());
        Ok(json!({
            "id": 50_000 + self.app_id,
            "first_name": "Sandbox",
            "last_name": "Developer",
            "email": self.username,
            "type": "DEVELOPER",
            "verified": true,
            "status": "ACTIVE",
            "roles": ["ROLE_DEVELOPER"],
            "token": token,
            "refresh_token": refresh,
        }))
    }

    /// `GET /auth/token` with a refresh token in `X-Violet-Token`: `{"token": ...}`.
    pub fn refresh(&self, headers: &HeaderMap) -> Result<Value, SandboxError> {
        let given = header(headers, TOKEN_HEADER).unwrap_or_default();
        let mut tokens = self.tokens();
        if !tokens.refresh.contains(given) {
            return Err(SandboxError::new(
                StatusCode::UNAUTHORIZED,
                error::REFRESH_INVALID,
                "Invalid refresh token",
            ));
        }
        Ok(json!({ "token": self.issue(&mut tokens) }))
    }

    /// Every access token issued so far is now expired.
    pub fn expire_all(&self) {
        // Forgotten JWTs answer "expired" (see `check_token`).
        self.tokens().access.clear();
    }

    fn issue(&self, tokens: &mut Tokens) -> String {
        tokens.serial += 1;
        let serial = tokens.serial;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let exp = (now + self.ttl).as_secs();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = json!({
            "sub": self.username,
            "app_id": self.app_id,
            "iat": now.as_secs(),
            "exp": exp,
            "jti": serial,
        });
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signature = URL_SAFE_NO_PAD.encode(
            [mix(&[self.seed, serial, tag("sig")]), rand::random::<u64>()]
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<u8>>(),
        );
        let token = format!("{header}.{payload}.{signature}");
        let now = Instant::now();
        tokens.access.retain(|_, expires| *expires > now);
        tokens.access.insert(token.clone(), now + self.ttl);
        token
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn auth(ttl: Duration) -> Auth {
        Auth::new(&SandboxConfig {
            token_ttl: ttl,
            ..SandboxConfig::default()
        })
    }

    fn with_token(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TOKEN_HEADER, HeaderValue::from_str(token).unwrap());
        h
    }

    #[test]
    fn login_refresh_expire() {
        let a = auth(Duration::from_secs(60));
        let user = a
            .login(&json!({"username": "sandbox@example.com", "password": "sandbox-password"}))
            .unwrap();
        let token = user["token"].as_str().unwrap();
        assert!(a.check_token(&with_token(token)).is_ok());
        a.expire_all();
        assert_eq!(
            a.check_token(&with_token(token)).unwrap_err().error_code,
            error::TOKEN_EXPIRED
        );
        let fresh = a
            .refresh(&with_token(user["refresh_token"].as_str().unwrap()))
            .unwrap();
        assert!(
            a.check_token(&with_token(fresh["token"].as_str().unwrap()))
                .is_ok()
        );
        assert_eq!(
            a.refresh(&with_token(token)).unwrap_err().error_code,
            error::REFRESH_INVALID
        );
        assert_eq!(
            a.check_token(&with_token("junk")).unwrap_err().error_code,
            error::TOKEN_INVALID
        );
        assert!(
            a.login(&json!({"username": "sandbox@example.com", "password": "nope"}))
                .is_err()
        );
    }

    #[test]
    fn jwt_payload_carries_exp() {
        let a = auth(Duration::from_secs(3600));
        let user = a
            .login(&json!({"username": "sandbox@example.com", "password": "sandbox-password"}))
            .unwrap();
        let token = user["token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(
            (now + 3590..=now + 3601).contains(&exp),
            "exp {exp} now {now}"
        );
    }
}
