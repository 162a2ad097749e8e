//! The Violet sandbox: a simulated Violet API and a signed webhook emitter.
//!
//! It lets the demo, the tests and the benchmarks run the whole flow with no Violet
//! account. The API speaks VIOLET.md exactly (auth, tokens that expire, Spring pages,
//! the catalog endpoints) over a seeded, lazily generated [`Catalog`] that changes
//! between syncs ([`Catalog::advance`]). [`Knobs`] inject the failures a client must
//! survive (latency, 429, 5xx, hangs, truncated and malformed pages), and the
//! [`webhooks::Emitter`] plays [`scenarios::Scenario`]s to a webhook endpoint with
//! duplicates, reordering and redelivery. This file holds the public types and the
//! [`Sandbox`] handle; the HTTP side is in `server`, `control`, `auth` and `faults`.

mod auth;
pub mod catalog;
pub mod cli;
mod collection_dates;
mod control;
mod error;
mod faults;
mod generator;
mod hash;
mod paging;
pub mod scenarios;
mod server;
mod skus;
mod stats;
pub mod webhooks;
mod words;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use catalog::{Catalog, ChangeMix, ChangeSet};
pub use scenarios::{Scenario, ScenarioOptions};
pub use webhooks::{DeliveryFaults, DeliveryReport, Emitter, WebhookEvent};

/// Offer ids are `merchant_id * OFFER_ID_STRIDE + index + 1`.
pub use generator::OFFER_ID_STRIDE;

/// What the sandbox serves and which credentials it accepts.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seeds the catalog, the fault RNG and webhook ids: same seed, same bytes.
    pub seed: u64,
    pub app_id: u64,
    pub app_secret: String,
    pub username: String,
    pub password: String,
    /// Lifetime of an access token (the `exp` in the JWT and when it starts answering 401).
    pub token_ttl: Duration,
    pub merchants: Vec<MerchantSpec>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            seed: 42,
            app_id: 10000,
            app_secret: crate::config::SANDBOX_APP_SECRET.into(),
            username: "sandbox@example.com".into(),
            password: "sandbox-password".into(),
            token_ttl: Duration::from_secs(24 * 3600),
            merchants: default_merchants(3, 2_000, 12),
        }
    }
}

/// `count` merchants with ids 1001, 1002, ... and realistic names.
pub fn default_merchants(count: u32, offers: u64, collections: u32) -> Vec<MerchantSpec> {
    (0..u64::from(count))
        .map(|i| {
            let base = words::MERCHANT_NAMES[i as usize % words::MERCHANT_NAMES.len()];
            let round = i as usize / words::MERCHANT_NAMES.len();
            let name = if round == 0 {
                base.to_string()
            } else {
                format!("{base} {}", round + 1)
            };
            MerchantSpec {
                id: 1001 + i,
                name,
                offers,
                collections,
            }
        })
        .collect()
}

/// One simulated merchant: its id, name, initial offer count and collection count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantSpec {
    pub id: u64,
    pub name: String,
    pub offers: u64,
    pub collections: u32,
}

/// Failure injection, changeable at any time ([`Sandbox::set_knobs`] or
/// `PUT/PATCH /_sandbox/knobs`). Counters (`*_next`, `fail_at_page.times`) count down
/// as they fire. Applied to API calls; login and token refresh only get `latency`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Added to every response (`latency_ms` in JSON).
    #[serde(rename = "latency_ms", with = "duration_ms")]
    pub latency: Duration,
    /// Per merchant token bucket; over it: 429 with `Retry-After`.
    pub rate_limit: Option<RateLimit>,
    /// The next N API requests answer 503.
    pub fail_next_5xx: u32,
    /// Fraction of API requests answering a random 5xx (seeded RNG), 0 to 1.
    pub error_rate_5xx: f64,
    /// The next N API requests hang far longer than any client timeout.
    pub hang_next: u32,
    /// The next N page responses have their JSON body cut in half.
    pub truncate_next: u32,
    /// The next N page responses are valid JSON of the wrong shape.
    pub malformed_next: u32,
    /// The next N page responses are a 200 that is no page at all,
    /// `{"status":"ok","message":"maintenance window"}` (what a proxy or a
    /// maintenance page answers).
    pub odd_ok_next: u32,
    /// The next N responses to pages after the first carry page number 0 and
    /// `last: true` (a proxy serving a cached first page).
    pub stale_page_next: u32,
    /// The merchant offers listing answers 500 at this page.
    pub fail_at_page: Option<PageFault>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub requests_per_sec: u32,
    pub retry_after_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFault {
    /// Only this merchant (`None`: any merchant).
    #[serde(default)]
    pub merchant_id: Option<u64>,
    /// 1-based page number, as requested.
    pub page: u32,
    /// How many times it fires (`None`: always).
    #[serde(default)]
    pub times: Option<u32>,
}

/// Counters since start, for tests and `GET /_sandbox/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Requests to `/v1` (API, login and refresh), whatever the answer.
    pub requests: u64,
    /// Successful logins and token refreshes.
    pub logins: u64,
    pub refreshes: u64,
    /// 401 and 403 answers; of those, answers with `error_code` 11 (token expired).
    pub unauthorized: u64,
    pub expired_tokens: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers caused by knobs.
    pub server_errors: u64,
    pub hangs: u64,
    pub truncated: u64,
    pub malformed: u64,
    /// 404 answers.
    pub not_found: u64,
    /// Page responses sent whole, and offers in them (plus single offer fetches).
    pub pages_served: u64,
    pub offers_served: u64,
}

/// A running sandbox. Dropping it stops the server too; [`Sandbox::shutdown`] also
/// waits for it.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<server::SandboxState>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `addr` (port 0 picks a free port) and serves until shutdown.
    pub async fn start(config: SandboxConfig, addr: SocketAddr) -> anyhow::Result<Sandbox> {
        anyhow::ensure!(!config.token_ttl.is_zero(), "token_ttl must be positive");
        let catalog = Arc::new(Catalog::new(config.seed, &config.merchants)?);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("sandbox: cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let state = Arc::new(server::SandboxState::new(
            config,
            catalog,
            addr,
            cancel.clone(),
        ));
        let router = server::router(Arc::clone(&state));
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            addr,
            state,
            cancel,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL to configure a Violet client with.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Changes the knobs atomically.
    pub fn set_knobs(&self, f: impl FnOnce(&mut Knobs)) {
        self.state.faults.update(f);
    }

    pub fn knobs(&self) -> Knobs {
        self.state.faults.knobs()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.state.catalog)
    }

    /// Every access token issued so far answers 401 `error_code` 11 from now on.
    /// Refresh tokens keep working.
    pub fn expire_tokens(&self) {
        self.state.auth.expire_all();
    }

    pub fn stats(&self) -> SandboxStats {
        self.state.stats.snapshot()
    }

    /// The app secret webhooks are signed with.
    pub fn app_secret(&self) -> &str {
        self.state.auth.app_secret()
    }

    /// Builds `scenario` for `merchant_id` from this sandbox's catalog (advancing it
    /// for `ScheduledSync`) and delivers it to `target`, signed with the app secret.
    pub async fn play(
        &self,
        scenario: Scenario,
        merchant_id: u64,
        target: &str,
        faults: DeliveryFaults,
        options: &ScenarioOptions,
    ) -> anyhow::Result<DeliveryReport> {
        let events = scenario.events(&self.state.catalog, merchant_id, options)?;
        let emitter = Emitter::new(target, self.app_secret()).with_faults(faults);
        Ok(emitter.play(&events).await)
    }

    /// Stops accepting, cancels hanging requests, and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
