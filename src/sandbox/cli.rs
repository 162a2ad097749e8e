//! `catalog-mirror sandbox`: run the Violet simulator from the command line, and
//! optionally play a webhook scenario at a receiver once it is up.
//!
//! The flags map one to one onto [`SandboxConfig`], [`Knobs`] and [`DeliveryFaults`];
//! everything is validated before anything starts, so bad input is a clear error.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{
    DeliveryFaults, Knobs, RateLimit, Sandbox, SandboxConfig, Scenario, ScenarioOptions,
    default_merchants,
};

/// Run the built-in Violet sandbox: a simulated Violet API and a signed webhook emitter.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub addr: SocketAddr,
    /// Seed of the generated catalogs, faults and webhook ids (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of merchants (ids 1001, 1002, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub merchants: u32,
    /// Offers per merchant (generated lazily; up to 9,000,000).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=9_000_000))]
    pub offers: u64,
    /// Collections per merchant.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(0..=99_999))]
    pub collections: u32,
    /// Violet app id clients must send in X-Violet-App-Id.
    #[arg(long, default_value_t = 10000)]
    pub app_id: u64,
    /// App secret clients must send in X-Violet-App-Secret; also signs webhooks.
    #[arg(long, default_value = crate::config::SANDBOX_APP_SECRET)]
    pub app_secret: String,
    /// Username accepted by POST /v1/login.
    #[arg(long, default_value = "sandbox@example.com")]
    pub username: String,
    /// Password accepted by POST /v1/login.
    #[arg(long, default_value = "sandbox-password")]
    pub password: String,
    /// Lifetime of access tokens in seconds (short values exercise token refresh).
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
    /// Latency added to every API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Per merchant rate limit in requests per second; over it the API answers 429.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// Retry-After (seconds) sent with 429 answers.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Fraction of API requests answering a random 5xx, from 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub error_rate: f64,
    /// Play a webhook scenario once the API is up: onboarding, scheduled-sync,
    /// failed-then-recovered or disabled-then-reenabled. Needs --target.
    #[arg(long, value_parser = scenario, requires = "target")]
    pub play: Option<Scenario>,
    /// Webhook endpoint the scenario is delivered to, e.g. http://127.0.0.1:8080/webhooks/violet.
    #[arg(long, value_parser = http_url)]
    pub target: Option<url::Url>,
    /// Play for this merchant only (default: every merchant).
    #[arg(long)]
    pub merchant: Option<u64>,
    /// At most this many per-offer (OFFER_*) events per merchant (default: one per offer).
    #[arg(long, conflicts_with = "no_offer_events")]
    pub max_offer_events: Option<usize>,
    /// Send no per-offer (OFFER_*) events: only merchant and sync events.
    #[arg(long)]
    pub no_offer_events: bool,
    /// Chance that each webhook is delivered twice (same event id), from 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub duplicate_rate: f64,
    /// Deliver webhooks out of order (shuffled within windows of 4).
    #[arg(long)]
    pub out_of_order: bool,
    /// Redeliveries of a webhook after a non-2xx answer or a connection error.
    #[arg(long, default_value_t = 3)]
    pub redeliver: u32,
    /// Exit after playing the scenario instead of serving until interrupted.
    #[arg(long, requires = "play")]
    pub exit_after_play: bool,
}

fn fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

fn scenario(s: &str) -> Result<Scenario, String> {
    s.parse()
}

fn http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if matches!(url.scheme(), "http" | "https") {
        Ok(url)
    } else {
        Err(format!("{s:?} must be an http or https URL"))
    }
}

impl SandboxArgs {
    pub fn config(&self) -> SandboxConfig {
        SandboxConfig {
            seed: self.seed,
            app_id: self.app_id,
            app_secret: self.app_secret.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            merchants: default_merchants(self.merchants, self.offers, self.collections),
        }
    }

    pub fn knobs(&self) -> Knobs {
        Knobs {
            latency: Duration::from_millis(self.latency_ms),
            rate_limit: self.rate_limit.map(|r| RateLimit {
                requests_per_sec: r,
                retry_after_secs: self.retry_after_secs,
            }),
            error_rate_5xx: self.error_rate,
            ..Knobs::default()
        }
    }

    pub fn delivery_faults(&self) -> DeliveryFaults {
        DeliveryFaults {
            duplicate_rate: self.duplicate_rate,
            out_of_order: self.out_of_order,
            redeliver_on_failure: self.redeliver,
            seed: self.seed,
            ..DeliveryFaults::default()
        }
    }

    fn scenario_options(&self) -> ScenarioOptions {
        let max = if self.no_offer_events {
            Some(0)
        } else {
            self.max_offer_events
        };
        ScenarioOptions {
            seed: self.seed,
            max_offer_events: max,
        }
    }
}

/// Serves until `shutdown` is cancelled (or, with `--exit-after-play`, until the
/// scenario has been delivered). Prints the base URL and credentials first.
pub async fn run(args: SandboxArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if args.play.is_some() && args.target.is_none() {
        anyhow::bail!("--play needs --target URL (the webhook endpoint to deliver to)");
    }
    let config = args.config();
    if let Some(m) = args.merchant {
        anyhow::ensure!(
            config.merchants.iter().any(|s| s.id == m),
            "--merchant {m} is not a sandbox merchant (ids are 1001..={})",
            1000 + u64::from(args.merchants)
        );
    }
    let sandbox = Sandbox::start(config.clone(), args.addr)
        .await
        .context("starting the Violet sandbox")?;
    sandbox.set_knobs(|k| *k = args.knobs());
    println!("Violet sandbox listening: base URL {}", sandbox.base_url());
    println!(
        "  app id {}, app secret {:?}",
        config.app_id, config.app_secret
    );
    println!("  login {:?} / {:?}", config.username, config.password);
    let ids: Vec<String> = config.merchants.iter().map(|m| m.id.to_string()).collect();
    println!(
        "  merchants {} with {} offers each (seed {})",
        ids.join(", "),
        args.offers,
        args.seed
    );
    println!("  control API http://{}/_sandbox/", sandbox.addr());

    if let (Some(scenario), Some(target)) = (args.play, args.target.as_ref()) {
        let merchants = match args.merchant {
            Some(m) => vec![m],
            None => config.merchants.iter().map(|m| m.id).collect(),
        };
        let options = args.scenario_options();
        for m in merchants {
            let report = tokio::select! {
                r = sandbox.play(scenario, m, target.as_str(), args.delivery_faults(), &options) => r?,
                _ = shutdown.cancelled() => break,
            };
            println!(
                "played {scenario} for merchant {m} to {target}: {} events, {} sent, {} acknowledged, {} duplicates, {} failed",
                report.events,
                report.sent,
                report.acknowledged,
                report.duplicates_sent,
                report.failed.len()
            );
        }
        if args.exit_after_play {
            sandbox.shutdown().await;
            return Ok(());
        }
    }
    shutdown.cancelled().await;
    sandbox.shutdown().await;
    Ok(())
}
