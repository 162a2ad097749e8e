//! `catalog-mirror demo`: the whole flow on one machine with no Violet account.
//!
//! Starts the built-in sandbox, points the daemon at it, migrates, plays onboarding for
//! a few merchants (signed webhooks into the daemon's own intake), shows progress while
//! the refreshes complete and the index catches up, then prints a search command and
//! the admin page address and runs until Ctrl-C (or exits, with `--exit-when-ready`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::admin::{IndexControl, IndexDir};
use crate::app::Application;
use crate::config::{Secret, Settings};
use crate::sandbox::scenarios::{Scenario, ScenarioOptions};
use crate::sandbox::webhooks::DeliveryFaults;
use crate::sandbox::{Sandbox, SandboxConfig, default_merchants};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Merchants the sandbox simulates.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub merchants: u32,
    /// Offers per merchant.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    pub offers: u64,
    /// Address of the sandbox (the simulated Violet API). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub sandbox_addr: SocketAddr,
    /// Exit once every catalog is searchable instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_when_ready: bool,
    /// Give up when the catalogs are not searchable after this many seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
}

/// Per-merchant progress read from the database.
struct Progress {
    state: Option<String>,
    mirrored: i64,
    last_change: Option<i64>,
}

pub async fn run(
    mut settings: Settings,
    args: DemoArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let merchants = default_merchants(args.merchants, args.offers, 8);
    let sandbox_config = SandboxConfig {
        merchants: merchants.clone(),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(sandbox_config.clone(), args.sandbox_addr)
        .await
        .with_context(|| format!("cannot start the sandbox on {}", args.sandbox_addr))?;
    settings.violet.base_url = sandbox.base_url();
    settings.violet.app_id = sandbox_config.app_id;
    settings.violet.app_secret = Secret::new(sandbox_config.app_secret.clone());
    settings.violet.username = sandbox_config.username.clone();
    settings.violet.password = Secret::new(sandbox_config.password.clone());
    if settings.admin.token.is_empty() {
        settings.admin.token = Secret::new(format!(
            "demo-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        ));
    }
    let admin_token = settings.admin.token.clone();
    let index_dir = settings.search.index_dir.clone();

    println!("catalog-mirror demo");
    println!("  sandbox (simulated Violet API): {}", sandbox.base_url());
    let app = Application::build(settings).await?;
    let (public, admin, pool) = (app.public_addr(), app.admin_addr(), app.pool().clone());
    let served = app.search_index().clone();
    println!("  daemon: webhooks and search on http://{public}, admin on http://{admin}");
    let app_shutdown = CancellationToken::new();
    let daemon = tokio::spawn(app.run_until_stopped(app_shutdown.clone()));

    let target = format!("http://{public}/webhooks/violet");
    println!(
        "  playing onboarding for {} merchants with {} offers each (signed webhooks, one per offer)",
        merchants.len(),
        args.offers
    );
    let sandbox = Arc::new(sandbox);
    for merchant in &merchants {
        let (sandbox, target, id) = (sandbox.clone(), target.clone(), merchant.id);
        tokio::spawn(async move {
            let options = ScenarioOptions {
                seed: id,
                max_offer_events: None,
            };
            match sandbox
                .play(
                    Scenario::Onboarding,
                    id,
                    &target,
                    DeliveryFaults::default(),
                    &options,
                )
                .await
            {
                Ok(report) if report.failed.is_empty() => {}
                Ok(report) => tracing::warn!(
                    merchant_id = id,
                    failed = report.failed.len(),
                    "some webhooks were not acknowledged"
                ),
                Err(err) => {
                    tracing::error!(merchant_id = id, error = %err, "cannot play onboarding")
                }
            }
        });
    }

    let index = IndexDir::new(pool.clone(), index_dir, served, app_shutdown.clone());
    let ready = tokio::select! {
        ready = wait_until_searchable(&pool, &index, &sandbox, &merchants, Duration::from_secs(args.timeout_secs)) => ready,
        _ = shutdown.cancelled() => Ok(false),
    };
    match ready {
        Ok(true) => {
            let total: u64 = merchants
                .iter()
                .map(|m| sandbox.catalog().offer_count(m.id))
                .sum();
            let word = example_word(&sandbox, merchants[0].id);
            println!();
            println!(
                "ready: {total} offers from {} merchants are mirrored and searchable.",
                merchants.len()
            );
            println!();
            println!(
                "  search:  curl -s http://{public}/indexes/offers/search -H 'Content-Type: application/json' -d '{{\"q\":\"{word}\",\"limit\":3}}'"
            );
            println!(
                "  admin:   http://{admin}/ui   (token: {})",
                admin_token.expose()
            );
            println!(
                "  status:  CATALOG_MIRROR_ADMIN__TOKEN={} catalog-mirror admin --url http://{admin} status",
                admin_token.expose()
            );
            println!(
                "  sandbox: {}   (knobs and scenarios under /_sandbox/)",
                sandbox.base_url()
            );
            println!();
            if !args.exit_when_ready {
                println!("running until Ctrl-C");
                shutdown.cancelled().await;
            }
        }
        Ok(false) => {}
        Err(err) => {
            app_shutdown.cancel();
            let _ = daemon.await;
            return Err(err);
        }
    }
    app_shutdown.cancel();
    daemon.await.context("the daemon task failed")??;
    Ok(())
}

/// Shows a progress bar per merchant until every catalog is mirrored and indexed.
async fn wait_until_searchable(
    pool: &PgPool,
    index: &IndexDir,
    sandbox: &Sandbox,
    merchants: &[crate::sandbox::MerchantSpec],
    timeout: Duration,
) -> anyhow::Result<bool> {
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("  {prefix:<28} [{bar:30}] {pos:>7}/{len:7} {msg}")
        .expect("valid template")
        .progress_chars("=> ");
    let progress: Vec<ProgressBar> = merchants
        .iter()
        .map(|m| {
            let bar = bars.add(ProgressBar::new(sandbox.catalog().offer_count(m.id)));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{} ({})", m.name, m.id));
            bar
        })
        .collect();
    let started = Instant::now();
    // Each merchant's last reading, for the error should the timeout pass.
    let mut last_seen: Vec<String> = vec!["not read yet".into(); merchants.len()];
    loop {
        let applied = index.applied_change_no().unwrap_or(0);
        let mut all_ready = true;
        for ((merchant, bar), seen) in merchants.iter().zip(&progress).zip(&mut last_seen) {
            let now = match progress_of(pool, merchant.id as i64).await {
                Ok(now) => now,
                // The pool busy with the daemon's own work (a pool timeout under load)
                // is not the demo failing: read again at the next tick.
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the demo's progress; retrying");
                    all_ready = false;
                    continue;
                }
            };
            bar.set_position(now.mirrored.max(0) as u64);
            let searchable = now.last_change.is_some_and(|change| applied >= change);
            let ready =
                searchable && now.mirrored as u64 == sandbox.catalog().offer_count(merchant.id);
            let message = match (now.state.as_deref(), ready) {
                (_, true) => "searchable".to_string(),
                (Some("completed"), false) if now.mirrored > 0 => "indexing".to_string(),
                (Some("completed"), false) => "refreshing".to_string(),
                (Some(state), false) => state.to_string(),
                (None, false) => "waiting for webhooks".to_string(),
            };
            *seen = format!(
                "{} ({}): {message}, {} of {} offers mirrored, last change {}, index at {applied}",
                merchant.name,
                merchant.id,
                now.mirrored,
                sandbox.catalog().offer_count(merchant.id),
                now.last_change
                    .map_or_else(|| "none".to_string(), |change| change.to_string()),
            );
            bar.set_message(message);
            all_ready &= ready;
        }
        if all_ready {
            progress.iter().for_each(ProgressBar::finish);
            return Ok(true);
        }
        if started.elapsed() > timeout {
            // How far the webhooks got tells a slow intake from a slow refresh.
            for (merchant, seen) in merchants.iter().zip(&mut last_seen) {
                let stored: Result<i64, _> = sqlx::query_scalar(
                    "SELECT count(*) FROM webhook_events WHERE merchant_id = $1",
                )
                .bind(merchant.id as i64)
                .fetch_one(pool)
                .await;
                if let Ok(stored) = stored {
                    seen.push_str(&format!(", {stored} webhooks stored"));
                }
            }
            anyhow::bail!(
                "the catalogs were not searchable after {} s:\n  {}",
                timeout.as_secs(),
                last_seen.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn progress_of(pool: &PgPool, merchant_id: i64) -> anyhow::Result<Progress> {
    let (state, mirrored, last_change): (Option<String>, i64, Option<i64>) = sqlx::query_as(
        r#"SELECT (SELECT state FROM sync_state WHERE merchant_id = $1 AND kind = 'products'),
                  (SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL),
                  (SELECT max(change_no) FROM change_log WHERE merchant_id = $1)"#,
    )
    .bind(merchant_id)
    .fetch_one(pool)
    .await?;
    Ok(Progress {
        state,
        mirrored,
        last_change,
    })
}

/// A word from the first offer's name, so the printed search finds something.
fn example_word(sandbox: &Sandbox, merchant_id: u64) -> String {
    let catalog = sandbox.catalog();
    catalog
        .offer_ids(merchant_id)
        .next()
        .and_then(|id| catalog.offer_json(id))
        .and_then(|offer| {
            offer
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string)
        })
        .and_then(|name| name.split_whitespace().last().map(|w| w.to_lowercase()))
        .unwrap_or_else(|| "shirt".into())
}
