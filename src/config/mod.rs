//! Typed settings: embedded defaults → optional file → environment, then validated.
//!
//! The defaults live in `config/default.toml` (compiled in, every key documented).
//! Loading never guesses: an unknown key, a wrong type or a value out of range is an
//! error that names the key and says why, before anything starts.

mod secret;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

pub use secret::Secret;
pub use validate::{ConfigError, ConfigErrors};

/// The documented defaults, compiled into the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
/// Read when `--config` is not given and the file exists.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/catalog-mirror/config.toml";
/// Prefix of environment overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "CATALOG_MIRROR_";
/// The app secret of the built-in sandbox and of the embedded defaults. It is public
/// (in this source and the docs): anyone can sign webhooks with it, so validation
/// refuses it unless `violet.base_url` is a loopback address.
pub const SANDBOX_APP_SECRET: &str = "sandbox-app-secret";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub webhooks: WebhookSettings,
    pub violet: VioletSettings,
    pub jobs: JobSettings,
    pub sync: SyncSettings,
    pub refresh: RefreshSettings,
    pub search: SearchSettings,
    pub notifications: NotificationSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    pub create_if_missing: bool,
    /// Statements at least this slow are logged (name and duration); 0: never.
    pub slow_statement_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Public listener: a connection whose client accepts no response bytes for this
    /// long is closed.
    pub write_stall_timeout_ms: u64,
    /// Public listener: a connection with no bytes moving either way for this long is
    /// closed.
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub extra_secrets: Vec<Secret>,
    pub body_limit_bytes: usize,
    /// Webhook bodies read or being stored at once; more wait their turn briefly.
    pub max_bodies_in_flight: usize,
    /// Most events stored in one transaction (one commit); 1 stores each on its own.
    pub batch_max_events: usize,
    /// How long a batch waits for more events after its first; 0 takes only what is
    /// queued already.
    pub batch_window_ms: u64,
    /// Batches stored at once, each on its own database connection.
    pub writers: usize,
    /// Deliveries waiting for a writer; beyond that they get 503 `busy`.
    pub queue_capacity: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VioletSettings {
    pub base_url: String,
    pub app_id: u64,
    pub app_secret: Secret,
    pub username: String,
    pub password: Secret,
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub page_size: u32,
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub retry_after_max_secs: u64,
    pub rate_limit_per_sec: u32,
    pub merchant_rate_limit_per_sec: u32,
    pub max_concurrency: usize,
    pub merchant_max_concurrency: usize,
    pub token_refresh_margin_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub workers: usize,
    pub debounce_ms: u64,
    pub lease_secs: u64,
    pub max_attempts: i32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub poll_interval_ms: u64,
    pub drain_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    pub stall_timeout_secs: u64,
    pub failed_retry_base_secs: u64,
    pub failed_retry_factor: f64,
    pub failed_retry_cap_secs: u64,
    pub failed_retry_jitter: f64,
    pub failed_retry_max_attempts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshSettings {
    pub concurrency: usize,
    pub batch_size: usize,
    /// A complete pass that would remove more than this share of a merchant's live
    /// offers holds the removals for agreement (1.0: never hold).
    pub max_removal_fraction: f64,
    /// Unseen offers a full pass checks one by one before removing them (0: none).
    pub verify_removals_max: usize,
    /// `delta`: a COMPLETED fetches only offers modified since the merchant's watermark
    /// unless a full pass is due; `full`: every refresh reads the whole catalog.
    pub mode: RefreshPolicy,
    /// A merchant's products refresh is a full pass when its last one is older.
    pub full_every_secs: u64,
    /// Subtracted from the watermark when a delta asks Violet for what changed: covers
    /// clock skew between Violet and this host.
    pub delta_overlap_secs: u64,
    /// A watermark no pass confirmed for this long is not trusted for a delta: a full
    /// pass runs.
    pub watermark_max_age_secs: u64,
    /// A collection's membership is read again after this long even when its
    /// `date_last_modified` did not move (0: every collections refresh reads every
    /// membership).
    pub collections_recheck_secs: u64,
}

/// Whether products refreshes after COMPLETED may be deltas (`refresh.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPolicy {
    Delta,
    Full,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    pub index_dir: PathBuf,
    pub api_key: Secret,
    pub api_key_uid: String,
    pub restricted_keys: Vec<RestrictedKeySettings>,
    pub settings_dir: PathBuf,
    pub poll_interval_ms: u64,
    pub ready_max_lag_changes: u64,
    /// Search threads (searches computed at once); 0: one per CPU.
    pub max_concurrent_searches: u32,
    /// Hits reachable by one query: `offset + limit` and `page * hitsPerPage` are
    /// capped here, and so are the totals (Meilisearch's `pagination.maxTotalHits`).
    pub max_total_hits: usize,
    /// Queries in one `POST /multi-search`.
    pub max_queries_per_multi_search: usize,
    /// Values returned per facet in `facetDistribution`, and hits of a facet search
    /// (Meilisearch's `faceting.maxValuesPerFacet`).
    pub max_values_per_facet: usize,
    /// Searches waiting for a search thread; one more is answered 503.
    pub max_queued_searches: usize,
    /// Search API requests held at once, from arrival until the answer is sent.
    pub max_requests_in_flight: usize,
    /// Longest a search request may take from arrival to a computed answer.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    pub webhook_urls: Vec<String>,
    pub secret: Secret,
    pub max_attempts: i32,
    pub timeout_ms: u64,
    /// Server-Sent Events subscribers at once.
    pub max_stream_subscribers: usize,
}

/// A search key that only sees the offers matching `filter`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictedKeySettings {
    pub key: Secret,
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub token: Secret,
    pub url: String,
    pub metrics_sample_ms: u64,
    /// Largest `limit` (rows per page) of the admin API's lists.
    pub max_page_size: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

/// Where the file layer comes from.
#[derive(Debug, Clone, Default)]
pub enum ConfigSource {
    /// `/etc/catalog-mirror/config.toml` when it exists, else defaults and environment only.
    #[default]
    System,
    /// An explicit file, which must exist.
    File(PathBuf),
    /// Defaults and environment only (tests).
    DefaultsOnly,
}

impl Settings {
    /// Loads the layers (defaults, file, process environment) and validates the result.
    pub fn load(source: &ConfigSource) -> Result<Settings, ConfigErrors> {
        let settings: Settings = figment(source)?
            .extract()
            .map_err(ConfigErrors::from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
    }
}

/// The layered sources, later ones winning.
fn figment(source: &ConfigSource) -> Result<Figment, ConfigErrors> {
    let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
    match source {
        ConfigSource::System => {
            if Path::new(SYSTEM_CONFIG_PATH).exists() {
                figment = figment.merge(Toml::file(SYSTEM_CONFIG_PATH));
            }
        }
        ConfigSource::File(path) => {
            if !path.is_file() {
                return Err(ConfigErrors::single(
                    "--config",
                    format!("{} does not exist or is not a file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        ConfigSource::DefaultsOnly => {}
    }
    Ok(figment
        .merge(Env::raw().filter_map(|key| (key == "DATABASE_URL").then(|| "database.url".into())))
        .merge(Env::prefixed(ENV_PREFIX).split("__")))
}

impl HttpSettings {
    pub fn write_stall_timeout(&self) -> Duration {
        Duration::from_millis(self.write_stall_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

impl DatabaseSettings {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
    /// The slow-statement threshold; `None` when the warning is off.
    pub fn slow_statement(&self) -> Option<Duration> {
        (self.slow_statement_ms > 0).then(|| Duration::from_millis(self.slow_statement_ms))
    }
}

impl VioletSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

impl JobSettings {
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms)
    }
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }
}

impl WebhookSettings {
    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.batch_window_ms)
    }

    /// Every secret a webhook signature may be made with: the app secret first, then
    /// the extra ones (rotation).
    pub fn accepted_secrets(&self, violet: &VioletSettings) -> Vec<Secret> {
        std::iter::once(violet.app_secret.clone())
            .chain(self.extra_secrets.iter().cloned())
            .filter(|secret| !secret.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests;
