//! Validation of loaded settings: every error names the key and the reason.

use std::fmt;

use super::Settings;

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `jobs.workers`.
    pub key: String,
    pub reason: String,
}

/// All invalid settings found at once, so an operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![ConfigError {
            key: key.into(),
            reason: reason.into(),
        }])
    }

    /// Turns figment's parse errors (wrong type, unknown key, missing key) into ours.
    pub fn from_figment(error: figment::Error) -> Self {
        Self(
            error
                .into_iter()
                .map(|error| {
                    let mut reason = error.kind.to_string();
                    if let Some(source) = error.metadata.as_ref().map(|meta| meta.name.to_string())
                    {
                        reason = format!("{reason} (from {source})");
                    }
                    ConfigError {
                        key: if error.path.is_empty() {
                            "<root>".to_string()
                        } else {
                            error.path.join(".")
                        },
                        reason,
                    }
                })
                .collect(),
        )
    }

    /// The error about `key`, if any (tests and callers that care about one key).
    pub fn for_key(&self, key: &str) -> Option<&ConfigError> {
        self.0.iter().find(|error| error.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for error in &self.0 {
            writeln!(f, "  {}: {}", error.key, error.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects problems while checking keys one by one.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn check(&mut self, ok: bool, key: &str, reason: impl FnOnce() -> String) {
        if !ok {
            self.0.push(ConfigError {
                key: key.to_string(),
                reason: reason(),
            });
        }
    }

    fn positive(&mut self, value: u64, key: &str) {
        self.check(value > 0, key, || "must be greater than 0".into());
    }

    fn url(&mut self, value: &str, key: &str, schemes: &[&str]) {
        match url::Url::parse(value) {
            Ok(url) if schemes.contains(&url.scheme()) => {}
            Ok(url) => self.check(false, key, || {
                format!(
                    "scheme `{}` is not one of {}",
                    url.scheme(),
                    schemes.join(", ")
                )
            }),
            Err(err) => self.check(false, key, || format!("not a valid URL: {err}")),
        }
    }
}

/// The host of `url` unless it is a loopback one (`localhost`, 127.0.0.0/8, `::1`);
/// `None` too for a URL that does not parse (its own check reports it).
fn non_loopback_host(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
    };
    (!loopback).then(|| url.host_str().unwrap_or_default().to_string())
}
/// Longest slow-statement threshold: beyond an hour, a statement would first hit the
/// job lease and the request timeouts, which report it anyway.
const MAX_SLOW_STATEMENT_MS: u64 = 3_600_000;
/// Largest intake batch: beyond it one transaction holds many row locks for little gain.
const MAX_BATCH_EVENTS: usize = 1000;
/// Longest intake batch window: each acknowledgement may wait this long.
const MAX_BATCH_WINDOW_MS: u64 = 1000;

impl Settings {
    /// Checks ranges and relations that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut p = Problems::default();

        p.url(
            self.database.url.expose(),
            "database.url",
            &["postgres", "postgresql"],
        );
        p.positive(
            self.database.max_connections.into(),
            "database.max_connections",
        );
        p.positive(
            self.database.acquire_timeout_ms,
            "database.acquire_timeout_ms",
        );
        p.check(
            self.database.min_connections <= self.database.max_connections,
            "database.min_connections",
            || "must not exceed database.max_connections".into(),
        );
        p.check(
            self.database.slow_statement_ms <= MAX_SLOW_STATEMENT_MS,
            "database.slow_statement_ms",
            || {
                format!(
                    "must be at most {MAX_SLOW_STATEMENT_MS} (an hour); 0 turns the warning off"
                )
            },
        );

        p.check(
            self.http.public_addr != self.http.admin_addr || self.http.public_addr.port() == 0,
            "http.admin_addr",
            || "must differ from http.public_addr".into(),
        );
        p.check(
            self.http.write_stall_timeout_ms >= 100,
            "http.write_stall_timeout_ms",
            || "must be at least 100".into(),
        );
        p.check(
            self.http.idle_timeout_ms >= 1000,
            "http.idle_timeout_ms",
            || "must be at least 1000".into(),
        );
        p.positive(
            self.webhooks.max_bodies_in_flight as u64,
            "webhooks.max_bodies_in_flight",
        );
        p.check(
            (1..=MAX_BATCH_EVENTS).contains(&self.webhooks.batch_max_events),
            "webhooks.batch_max_events",
            || format!("must be between 1 and {MAX_BATCH_EVENTS}"),
        );
        p.check(
            self.webhooks.batch_window_ms <= MAX_BATCH_WINDOW_MS,
            "webhooks.batch_window_ms",
            || {
                format!(
                    "must be at most {MAX_BATCH_WINDOW_MS} (every acknowledgement may wait \
                     that long); 0 stores what is queued without waiting"
                )
            },
        );
        p.check(
            self.webhooks.writers >= 1
                && (self.webhooks.writers as u64) < u64::from(self.database.max_connections),
            "webhooks.writers",
            || {
                format!(
                    "must be at least 1 and less than database.max_connections ({}): \
                     the job workers and health checks need connections too",
                    self.database.max_connections
                )
            },
        );
        p.positive(
            self.webhooks.queue_capacity as u64,
            "webhooks.queue_capacity",
        );
        p.check(
            self.webhooks.body_limit_bytes >= 1024,
            "webhooks.body_limit_bytes",
            || "must be at least 1024".into(),
        );
        for (i, secret) in self.webhooks.extra_secrets.iter().enumerate() {
            p.check(
                !secret.is_empty(),
                &format!("webhooks.extra_secrets[{i}]"),
                || "must not be empty".into(),
            );
        }

        let v = &self.violet;
        p.url(&v.base_url, "violet.base_url", &["http", "https"]);
        p.positive(v.app_id, "violet.app_id");
        p.check(!v.app_secret.is_empty(), "violet.app_secret", || {
            "must be set (it authenticates API calls and verifies webhooks)".into()
        });
        self.published_secrets(&mut p);
        p.check(!v.username.is_empty(), "violet.username", || {
            "must be set".into()
        });
        p.check(!v.password.is_empty(), "violet.password", || {
            "must be set".into()
        });
        p.positive(v.request_timeout_ms, "violet.request_timeout_ms");
        p.positive(v.connect_timeout_ms, "violet.connect_timeout_ms");
        p.check((1..=100).contains(&v.page_size), "violet.page_size", || {
            "must be between 1 and 100 (Violet's maximum page size)".into()
        });
        p.positive(v.retry_base_ms, "violet.retry_base_ms");
        p.check(
            v.retry_max_ms >= v.retry_base_ms,
            "violet.retry_max_ms",
            || "must be at least violet.retry_base_ms".into(),
        );
        p.positive(v.rate_limit_per_sec.into(), "violet.rate_limit_per_sec");
        p.positive(
            v.merchant_rate_limit_per_sec.into(),
            "violet.merchant_rate_limit_per_sec",
        );
        p.positive(v.max_concurrency as u64, "violet.max_concurrency");
        p.positive(
            v.merchant_max_concurrency as u64,
            "violet.merchant_max_concurrency",
        );

        let j = &self.jobs;
        p.positive(j.workers as u64, "jobs.workers");
        p.positive(j.lease_secs, "jobs.lease_secs");
        p.check(j.max_attempts >= 1, "jobs.max_attempts", || {
            "must be at least 1".into()
        });
        p.positive(j.retry_base_ms, "jobs.retry_base_ms");
        p.check(
            j.retry_max_ms >= j.retry_base_ms,
            "jobs.retry_max_ms",
            || "must be at least jobs.retry_base_ms".into(),
        );
        p.positive(j.poll_interval_ms, "jobs.poll_interval_ms");

        let s = &self.sync;
        p.positive(s.stall_timeout_secs, "sync.stall_timeout_secs");
        p.positive(s.failed_retry_base_secs, "sync.failed_retry_base_secs");
        p.check(
            s.failed_retry_factor >= 1.0,
            "sync.failed_retry_factor",
            || "must be at least 1.0".into(),
        );
        p.check(
            s.failed_retry_cap_secs >= s.failed_retry_base_secs,
            "sync.failed_retry_cap_secs",
            || "must be at least sync.failed_retry_base_secs".into(),
        );
        p.check(
            (0.0..=1.0).contains(&s.failed_retry_jitter),
            "sync.failed_retry_jitter",
            || "must be between 0.0 and 1.0".into(),
        );

        p.positive(self.refresh.concurrency as u64, "refresh.concurrency");
        p.check(
            (1..=50_000).contains(&self.refresh.batch_size),
            "refresh.batch_size",
            || "must be between 1 and 50000".into(),
        );
        p.check(
            self.refresh.max_removal_fraction > 0.0 && self.refresh.max_removal_fraction <= 1.0,
            "refresh.max_removal_fraction",
            || "must be greater than 0 and at most 1.0 (1.0: never hold removals)".into(),
        );
        p.positive(self.refresh.full_every_secs, "refresh.full_every_secs");
        p.check(
            self.refresh.delta_overlap_secs < self.refresh.full_every_secs,
            "refresh.delta_overlap_secs",
            || "must be less than refresh.full_every_secs".into(),
        );
        p.positive(
            self.refresh.watermark_max_age_secs,
            "refresh.watermark_max_age_secs",
        );
        p.check(
            !self.search.index_dir.as_os_str().is_empty(),
            "search.index_dir",
            || "must be set".into(),
        );
        p.positive(self.search.poll_interval_ms, "search.poll_interval_ms");
        p.positive(
            self.search.ready_max_lag_changes,
            "search.ready_max_lag_changes",
        );
        p.check(
            self.search.max_concurrent_searches <= 1024,
            "search.max_concurrent_searches",
            || "must be at most 1024 (0: one per CPU)".into(),
        );
        let search = &self.search;
        p.positive(search.max_total_hits as u64, "search.max_total_hits");
        p.positive(
            search.max_queries_per_multi_search as u64,
            "search.max_queries_per_multi_search",
        );
        p.positive(
            search.max_values_per_facet as u64,
            "search.max_values_per_facet",
        );
        p.positive(
            search.max_queued_searches as u64,
            "search.max_queued_searches",
        );
        p.positive(
            search.max_requests_in_flight as u64,
            "search.max_requests_in_flight",
        );
        p.check(search.timeout_ms >= 10, "search.timeout_ms", || {
            "must be at least 10".into()
        });
        for (i, key) in self.search.restricted_keys.iter().enumerate() {
            p.check(
                !key.key.is_empty(),
                &format!("search.restricted_keys[{i}].key"),
                || "must not be empty".into(),
            );
            // Its filter is checked by the search layer, which owns the filter language
            // (`search::auth::Access::from_settings`, run by `serve` and `check-config`).
        }
        let n = &self.notifications;
        for (i, url) in n.webhook_urls.iter().enumerate() {
            p.url(
                url,
                &format!("notifications.webhook_urls[{i}]"),
                &["http", "https"],
            );
        }
        p.check(
            n.webhook_urls.is_empty() || !n.secret.is_empty(),
            "notifications.secret",
            || "must be set when notifications.webhook_urls is not empty".into(),
        );
        p.check(n.max_attempts >= 1, "notifications.max_attempts", || {
            "must be at least 1".into()
        });
        p.positive(n.timeout_ms, "notifications.timeout_ms");
        p.positive(
            n.max_stream_subscribers as u64,
            "notifications.max_stream_subscribers",
        );
        p.url(&self.admin.url, "admin.url", &["http", "https"]);
        p.check(
            self.admin.metrics_sample_ms >= 100,
            "admin.metrics_sample_ms",
            || "must be at least 100".into(),
        );
        p.check(
            (1..=100_000).contains(&self.admin.max_page_size),
            "admin.max_page_size",
            || "must be between 1 and 100000".into(),
        );
        p.check(
            tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_ok(),
            "log.filter",
            || format!("`{}` is not a valid tracing filter", self.log.filter),
        );

        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(p.0))
        }
    }

    /// Refuses the sandbox's published secret unless Violet is reached on loopback
    /// (the demo and the tests). [`Settings::validate`] includes it; `Application::build`
    /// runs it too, for settings that were built without loading.
    pub fn refuse_published_secrets(&self) -> Result<(), ConfigErrors> {
        let mut p = Problems::default();
        self.published_secrets(&mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(p.0))
        }
    }

    fn published_secrets(&self, p: &mut Problems) {
        let Some(host) = non_loopback_host(&self.violet.base_url) else {
            return;
        };
        let public = super::SANDBOX_APP_SECRET;
        let reason = |fix: &str| {
            format!(
                "is the built-in sandbox's published secret, which lets anyone sign webhooks, \
                 and violet.base_url points at {host}, not a loopback address: {fix}"
            )
        };
        p.check(
            self.violet.app_secret.expose() != public,
            "violet.app_secret",
            || reason("set it to the app's own secret"),
        );
        for (i, secret) in self.webhooks.extra_secrets.iter().enumerate() {
            p.check(
                secret.expose() != public,
                &format!("webhooks.extra_secrets[{i}]"),
                || reason("remove it"),
            );
        }
    }
}
