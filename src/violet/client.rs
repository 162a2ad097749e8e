//! The Violet API client core: building it from settings, and running one call with
//! authentication, client-side limits, a per-request timeout and bounded retries.
//!
//! A call is attempted up to `1 + max_retries` times. Retried: 429 (after
//! `Retry-After`, clamped to `retry_after_max_secs`, else the backoff), 5xx,
//! timeouts, connection and transport failures, and bodies that do not decode.
//! Every other 4xx fails at once. Backoff is exponential with jitter from
//! `retry_base_ms`, capped at `retry_max_ms`. A 401 "token expired" is not a retry:
//! within the attempt the token is refreshed once and the request sent again. When
//! the attempts run out the error is [`VioletError::GaveUp`] with the endpoint, the
//! attempt count and the last cause. The endpoint API (paging, streams) is in `api.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};

use super::auth::{Auth, Credentials};
use super::error::VioletError;
use super::limits::Limits;
use super::transport::{self, failure_label, record};
use crate::config::{Secret, VioletSettings};

/// A cheap-to-clone handle on Violet's API (everything shared sits behind an `Arc`).
#[derive(Clone)]
pub struct VioletClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base_url: String,
    app_headers: HeaderMap,
    secrets: [Secret; 2],
    auth: Auth,
    limits: Limits,
    pub(crate) page_size: u32,
    max_retries: u32,
    retry_base: Duration,
    retry_max: Duration,
    retry_after_max: Duration,
    timeout_ms: u64,
}

impl std::fmt::Debug for VioletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VioletClient")
            .field("base_url", &redacted_url(&self.inner.base_url))
            .field("page_size", &self.inner.page_size)
            .field("max_retries", &self.inner.max_retries)
            .finish_non_exhaustive()
    }
}

/// The base URL without any user or password in it, for `Debug`.
fn redacted_url(base_url: &str) -> String {
    match url::Url::parse(base_url) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => base_url.to_string(),
    }
}

/// One request: what to send and how to label it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    /// Path under the base URL, e.g. `/catalog/offers/42`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    /// Low-cardinality metrics label, e.g. `/catalog/offers/{offer_id}`.
    pub template: &'static str,
    /// The merchant the call is about, for per-merchant limits.
    pub merchant: Option<i64>,
    /// The 1-based page requested, for paged endpoints.
    pub page: Option<u32>,
}

impl Call {
    pub(crate) fn get(template: &'static str, path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            template,
            merchant: None,
            page: None,
        }
    }

    /// `METHOD /path?query`: what errors and logs call the endpoint (no host, no secrets).
    pub(crate) fn endpoint(&self) -> String {
        let mut text = format!("{} {}", self.method, self.path);
        for (i, (key, value)) in self.query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
        text
    }
}

fn header(name: &str, value: &str, sensitive: bool) -> Result<HeaderValue, VioletError> {
    let mut header = HeaderValue::from_str(value)
        .map_err(|_| VioletError::Config(format!("{name} is not a valid HTTP header value")))?;
    header.set_sensitive(sensitive);
    Ok(header)
}

impl VioletClient {
    /// Builds the client. Nothing is sent: the first call logs in.
    pub fn new(settings: &VioletSettings) -> Result<VioletClient, VioletError> {
        let base = url::Url::parse(&settings.base_url)
            .map_err(|err| VioletError::Config(format!("violet.base_url is not a URL: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(VioletError::Config(
                "violet.base_url must be http or https".into(),
            ));
        }
        let base_url = settings.base_url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout())
            .connect_timeout(settings.connect_timeout())
            .user_agent(concat!("catalog-mirror/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| VioletError::Config(format!("cannot build the HTTP client: {err}")))?;
        let mut app_headers = HeaderMap::new();
        app_headers.insert(
            "X-Violet-App-Id",
            header("violet.app_id", &settings.app_id.to_string(), false)?,
        );
        app_headers.insert(
            "X-Violet-App-Secret",
            header("violet.app_secret", settings.app_secret.expose(), true)?,
        );
        app_headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let auth = Auth::new(
            Credentials {
                http: http.clone(),
                base_url: base_url.clone(),
                app_headers: app_headers.clone(),
                app_secret: settings.app_secret.clone(),
                username: settings.username.clone(),
                password: settings.password.clone(),
                timeout_ms: settings.request_timeout_ms,
            },
            Duration::from_secs(settings.token_refresh_margin_secs),
        );
        Ok(VioletClient {
            inner: Arc::new(Inner {
                http,
                base_url,
                app_headers,
                secrets: [settings.app_secret.clone(), settings.password.clone()],
                auth,
                limits: Limits::new(settings)?,
                page_size: settings.page_size.clamp(1, 100),
                max_retries: settings.max_retries,
                retry_base: Duration::from_millis(settings.retry_base_ms.max(1)),
                retry_max: Duration::from_millis(
                    settings.retry_max_ms.max(settings.retry_base_ms).max(1),
                ),
                retry_after_max: Duration::from_secs(settings.retry_after_max_secs),
                timeout_ms: settings.request_timeout_ms,
            }),
        })
    }

    /// How long calls about `merchant_id` have waited on rate limits since start:
    /// client-side pacing and the back-off after Violet's 429s.
    pub fn rate_limit_wait(&self, merchant_id: i64) -> Duration {
        self.inner.limits.waited(merchant_id)
    }

    /// Logs in now instead of on the first call (e.g. to fail fast at start-up).
    pub async fn login(&self) -> Result<(), VioletError> {
        self.inner.auth.token().await.map(drop)
    }

    /// Runs `call` with retries; `decode` turns a 2xx body into the result (its error
    /// text becomes [`VioletError::Decode`], which is retried like a transport fault).
    #[tracing::instrument(skip_all, fields(endpoint = call.template, merchant_id = ?call.merchant, page = ?call.page))]
    pub(crate) async fn execute<T>(
        &self,
        call: &Call,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, VioletError> {
        let inner = &*self.inner;
        let endpoint = call.endpoint();
        let attempts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(inner.retry_base)
            .with_max_delay(inner.retry_max)
            .with_max_times(inner.max_retries as usize);
        let result = (|| {
            attempts.fetch_add(1, Ordering::Relaxed);
            inner.attempt(call, &endpoint, &decode)
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(VioletError::is_retryable)
        .adjust(|err, next| {
            // `None` means the attempts are used up: keep it. Otherwise prefer the
            // server's Retry-After (clamped) over our own schedule.
            next.map(|delay| match err.retry_after() {
                Some(asked) if !asked.is_zero() => asked.min(inner.retry_after_max),
                _ => delay,
            })
        })
        .notify(|err, delay| {
            if let (VioletError::RateLimited { .. }, Some(merchant)) = (err, call.merchant) {
                inner.limits.add_wait(merchant, delay);
            }
            metrics::counter!("catalog_mirror_violet_retries_total", "reason" => err.reason())
                .increment(1);
            tracing::warn!(
                error = %err,
                attempt = attempts.load(Ordering::Relaxed),
                retry_in_ms = delay.as_millis() as u64,
                "Violet call failed; retrying"
            );
        })
        .await;
        match result {
            Ok(value) => Ok(value),
            Err(last) if last.is_retryable() => {
                let attempts = attempts.load(Ordering::Relaxed);
                tracing::error!(error = %last, attempts, "Violet call failed; giving up");
                Err(VioletError::GaveUp {
                    endpoint,
                    attempts,
                    last: Box::new(last),
                })
            }
            Err(final_error) => Err(final_error),
        }
    }
}

impl Inner {
    /// One attempt: limits, token, send, read, classify, decode. Refreshes the token
    /// and resends once when Violet says it expired.
    async fn attempt<T>(
        &self,
        call: &Call,
        endpoint: &str,
        decode: &impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, VioletError> {
        let _slots = self.limits.slots(call.merchant).await;
        let mut refreshed = false;
        loop {
            let token = self.auth.token().await?;
            self.limits.pace(call.merchant).await;
            let started = Instant::now();
            let (status, retry_after, body) = match self.send(call, endpoint, &token).await {
                Ok(answer) => answer,
                Err(err) => {
                    record(call.template, failure_label(&err), started);
                    return Err(err);
                }
            };
            record(call.template, status.as_u16().to_string(), started);
            if status.is_success() {
                return decode(&body).map_err(|detail| VioletError::Decode {
                    endpoint: endpoint.to_string(),
                    page: call.page,
                    detail,
                });
            }
            if !refreshed && transport::is_token_expired(status, &body) {
                tracing::info!("Violet token expired; refreshing and resending");
                refreshed = true;
                self.auth.invalidate(&token).await;
                continue;
            }
            if status == reqwest::StatusCode::UNAUTHORIZED {
                // Refused for another reason (revoked, unknown token): this call
                // fails, and the next one renews the session instead of failing too.
                self.auth.invalidate(&token).await;
            }
            let secrets = [self.secrets[0].expose(), self.secrets[1].expose()];
            return Err(transport::status_error(
                status,
                retry_after,
                &body,
                endpoint,
                &secrets,
            ));
        }
    }

    async fn send(
        &self,
        call: &Call,
        endpoint: &str,
        token: &str,
    ) -> Result<(reqwest::StatusCode, Option<Duration>, bytes::Bytes), VioletError> {
        let mut request = self
            .http
            .request(
                call.method.clone(),
                format!("{}{}", self.base_url, call.path),
            )
            .headers(self.app_headers.clone())
            .header("X-Violet-Token", header("the Violet token", token, true)?);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport::transport_error(err, endpoint, self.timeout_ms))?;
        let status = response.status();
        let retry_after = transport::retry_after(response.headers(), self.retry_after_max);
        let body = transport::read_body(response, endpoint, self.timeout_ms).await?;
        Ok((status, retry_after, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigSource, Settings};

    fn settings() -> VioletSettings {
        Settings::load(&ConfigSource::DefaultsOnly).unwrap().violet
    }

    #[test]
    fn debug_shows_no_credentials() {
        let mut settings = settings();
        settings.base_url = "https://mirror:url-password@violet.example/v1".into();
        let client = VioletClient::new(&settings).unwrap();
        let debug = format!("{client:?}");
        assert!(debug.contains("violet.example"), "{debug}");
        for secret in [
            "url-password",
            settings.app_secret.expose(),
            settings.password.expose(),
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn refuses_unusable_settings_without_panicking() {
        let mut bad = settings();
        bad.base_url = "ftp://violet.example".into();
        assert!(matches!(
            VioletClient::new(&bad),
            Err(VioletError::Config(_))
        ));
        let mut bad = settings();
        bad.base_url = "not a url".into();
        assert!(VioletClient::new(&bad).is_err());
        let mut bad = settings();
        bad.app_secret = Secret::new("line\nbreak");
        let err = VioletClient::new(&bad).unwrap_err().to_string();
        assert!(
            err.contains("violet.app_secret") && !err.contains("line\nbreak"),
            "{err}"
        );
    }

    #[test]
    fn endpoints_are_method_path_and_query() {
        let mut call = Call::get("/merchants/{merchant_id}", "/merchants/7".into());
        assert_eq!(call.endpoint(), "GET /merchants/7");
        call.query = vec![("page", "2".into()), ("size", "100".into())];
        assert_eq!(call.endpoint(), "GET /merchants/7?page=2&size=100");
    }
}
