//! The products refresh (full, safe or delta): the merchant-offers listing (for a
//! delta, only the offers modified since the watermark; see `delta`) streamed page by
//! page into staging, then one publishing transaction.
//!
//! Pages are fetched ahead by a separate task into a small bounded channel, so the
//! next page downloads while the previous batch is written; a page that fails (after
//! the client's own retries) ends the refresh with an error, its staging discarded,
//! nothing live touched. A listing is complete only when its final page was read.
//!
//! Publishing (one transaction): the job's lease and the refresh's staging checked
//! and locked, the merchant's publish lock, upserts of changed offers and their SKUs
//! in batches, for a full refresh the removal of offers not seen (or their hold, see
//! `removals`), the
//! merchant row (version, offer count, last refresh), folding the pending offer events
//! received before the refresh began, and the change-log row (which NOTIFYs).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::changes::{self, ChangedOffers, OFFER_REMOVAL_TOPICS, OFFER_UPSERT_TOPICS, Reason};
use super::delta::{self, Newest, Pass};
use super::progress::ProgressKind::Products;
use super::publish;
use super::removals::{self, Removals};
use super::rows::StageKey;
use super::staging::{self, BatchWriter, OfferStager, Tables};
use super::{Fetcher, Mirror, RefreshReport};
use crate::jobs::{NewJob, OnConflict, Queue};
use crate::violet::{Page, VioletError};
use crate::work::{JobKind, RefreshMode};

pub(super) fn mode_name(mode: RefreshMode) -> &'static str {
    match mode {
        RefreshMode::Full => "full",
        RefreshMode::Safe => "safe",
        RefreshMode::Delta => "delta",
    }
}

/// What a listing put into staging.
#[derive(Debug, Clone, Copy)]
struct Staged {
    offers: u64,
    newest: Newest,
}

/// Drives `pages` in its own task, at most `depth` pages ahead of the consumer. The
/// task stops when the returned handle is dropped.
pub(super) fn prefetch<T: Send + 'static>(
    pages: impl Stream<Item = Result<Page<T>, VioletError>> + Send + 'static,
    depth: usize,
) -> (mpsc::Receiver<Result<Page<T>, VioletError>>, Fetcher) {
    let (tx, rx) = mpsc::channel(depth.max(1));
    let task = tokio::spawn(
        async move {
            let mut pages = std::pin::pin!(pages);
            while let Some(page) = pages.next().await {
                if tx.send(page).await.is_err() {
                    break;
                }
            }
        }
        .in_current_span(),
    );
    (rx, Fetcher::new(task))
}

impl Mirror {
    /// Refreshes a merchant's offers. `Full` marks offers that were not listed as
    /// removed; `Safe` only upserts; `Delta` reads and upserts only what changed since
    /// the watermark, or makes a full pass when one is due ([`delta`]). Returns an
    /// error, with nothing live changed, when the listing cannot be read to its end or
    /// `cancel` fires.
    #[tracing::instrument(name = "refresh_products", skip(self, mode, cancel), fields(mode = tracing::field::Empty, refresh_id = tracing::field::Empty))]
    pub async fn refresh_products(
        &self,
        merchant_id: i64,
        mode: RefreshMode,
        cancel: &CancellationToken,
    ) -> anyhow::Result<RefreshReport> {
        let started = Instant::now();
        let mut conn = self.pool.acquire().await?;
        let pass = delta::DeltaState::read(&mut conn, merchant_id).await?.pass(
            mode,
            &self.settings.delta,
            chrono::Utc::now(),
        );
        drop(conn);
        let mode = pass.mode();
        tracing::Span::current().record("mode", mode_name(mode));
        if let Pass::Full { why } = &pass {
            tracing::info!(why = why.as_str(), "full products pass");
        }
        self.progress
            .start(merchant_id, Products, mode_name(mode))
            .await;
        let outcome = self.products(merchant_id, &pass, cancel, started).await;
        self.progress.finished(merchant_id, Products, &outcome);
        let mode = mode_name(mode);
        metrics::histogram!("catalog_mirror_refresh_duration_seconds", "kind" => "products", "mode" => mode)
            .record(started.elapsed().as_secs_f64());
        let result = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("catalog_mirror_refreshes_total", "kind" => "products", "mode" => mode, "outcome" => result)
            .increment(1);
        if let Ok(report) = &outcome {
            metrics::counter!("catalog_mirror_refresh_offers_total", "merchant" => merchant_id.to_string())
                .increment(report.seen);
            metrics::counter!("catalog_mirror_refresh_changes_total", "kind" => "products", "change" => "upserted")
                .increment(report.upserted);
            metrics::counter!("catalog_mirror_refresh_changes_total", "kind" => "products", "change" => "removed")
                .increment(report.removed);
            tracing::info!(
                seen = report.seen,
                upserted = report.upserted,
                removed = report.removed,
                held = report.held,
                folded = report.folded,
                catalog_version = report.catalog_version,
                elapsed_ms = report.elapsed.as_millis() as u64,
                publish_ms = report.publish.as_millis() as u64,
                "products refreshed"
            );
        }
        outcome
    }

    async fn products(
        &self,
        merchant_id: i64,
        pass: &Pass,
        cancel: &CancellationToken,
        started: Instant,
    ) -> anyhow::Result<RefreshReport> {
        let pool = &self.pool;
        let (started_at, key) =
            staging::begin(pool, merchant_id, Tables::Offers, self.lease.as_ref()).await?;
        let refresh_id = key.refresh_id;
        let staged = match self.stage_products(key, pass, cancel).await {
            Ok(staged) if pass.mode() == RefreshMode::Full => self
                .verify_unseen(key, started_at, cancel)
                .await
                .map(|verified| Staged {
                    offers: staged.offers + verified.staged(),
                    ..staged
                }),
            other => other,
        };
        let staged = match staged {
            Ok(staged) => staged,
            Err(err) => {
                staging::discard_quietly(pool, refresh_id, Tables::Offers).await;
                return Err(err);
            }
        };
        let result = self
            .publish_products(key, pass, started_at, staged, started, cancel)
            .await;
        staging::discard_quietly(pool, refresh_id, Tables::Offers).await;
        result
    }

    /// Streams the listing into staging; returns what was staged once the final page
    /// was read.
    async fn stage_products(
        &self,
        key: StageKey,
        pass: &Pass,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Staged> {
        let mut stager = OfferStager::new(key, self.settings.batch_size);
        let mut writer = BatchWriter::new(self.pool.clone());
        match self
            .stage_pages(key, pass, &mut stager, &mut writer, cancel)
            .await
        {
            Ok(newest) => Ok(Staged {
                offers: writer.finish(&mut stager).await?,
                newest,
            }),
            Err(err) => {
                writer.abandon().await;
                Err(err)
            }
        }
    }

    /// Returns the newest `date_last_modified` the listing showed.
    async fn stage_pages(
        &self,
        key: StageKey,
        pass: &Pass,
        stager: &mut OfferStager,
        writer: &mut BatchWriter,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Newest> {
        let listing = match pass {
            Pass::Delta { since } => self
                .client
                .offer_pages_modified_since(key.merchant_id, *since)
                .left_stream(),
            Pass::Full { .. } | Pass::Safe => {
                self.client.offer_pages(key.merchant_id).right_stream()
            }
        };
        let (mut pages, _fetcher) = prefetch(listing, self.settings.prefetch_pages);
        let mut newest = Newest::default();
        let mut page_no = 0u32;
        let mut complete = false;
        let mut foreign = 0u64;
        loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => anyhow::bail!("cancelled while fetching page {}; nothing was published", page_no + 1),
                next = pages.recv() => next,
            };
            let Some(page) = next else { break };
            page_no += 1;
            let page = page.with_context(|| {
                format!(
                    "cannot read page {page_no} of merchant {}'s offers; nothing was published",
                    key.merchant_id
                )
            })?;
            complete = page.is_final();
            self.progress
                .page_fetched(key.merchant_id, Products, page.content.len(), complete);
            for offer in &page.content {
                foreign += u64::from(offer.merchant_id.is_some_and(|m| m != key.merchant_id));
                newest.see(offer.date_last_modified);
                stager.push(offer);
            }
            if stager.buffered() >= self.settings.batch_size {
                writer.write(stager).await?;
            }
        }
        anyhow::ensure!(
            complete,
            "the offer listing ended without a final page; nothing was published"
        );
        if foreign > 0 {
            tracing::warn!(
                offers = foreign,
                "the listing holds offers naming another merchant; filed under this one"
            );
        }
        Ok(newest)
    }

    async fn publish_products(
        &self,
        key: StageKey,
        pass: &Pass,
        started_at: DateTime<Utc>,
        staged: Staged,
        started: Instant,
        cancel: &CancellationToken,
    ) -> anyhow::Result<RefreshReport> {
        let merchant_id = key.merchant_id;
        let mode = pass.mode();
        let publish_started = Instant::now();
        let mut tx = self.pool.begin().await?;
        self.hold_lease(&mut tx).await?;
        staging::own(&mut tx, key.refresh_id, Tables::Offers, staged.offers).await?;
        let current = changes::lock_merchant(&mut tx, merchant_id).await?;
        publish::prefer_generic_plans(&mut tx).await?;
        let next = current + 1;
        let mut changed = ChangedOffers::default();
        let merged = publish::merge_staged_offers(
            &mut tx,
            key.refresh_id,
            next,
            Some(started_at),
            self.settings.batch_size,
            &mut changed,
            cancel,
        )
        .await?;
        let removals = match mode {
            RefreshMode::Full => {
                removals::after_complete_pass(
                    &mut tx,
                    merchant_id,
                    key.refresh_id,
                    started_at,
                    next,
                    self.settings.max_removal_fraction,
                    &mut changed,
                )
                .await?
            }
            RefreshMode::Safe | RefreshMode::Delta => Removals::default(),
        };
        let removed = removals.removed;
        let any = merged.upserted + removed > 0;
        let version = if any { next } else { current };
        let elapsed_ms = started.elapsed().as_millis() as i64;
        publish::update_merchant(&mut tx, merchant_id, version, Some(elapsed_ms)).await?;
        delta::record(&mut tx, merchant_id, pass, staged.newest, started_at).await?;

        // A safe refresh removes nothing, so it leaves removal events for the
        // incremental job (which the planner schedules with every FAILED and stall).
        // So does a full one whose removals are held: an OFFER_REMOVED names one offer
        // and is applied on its own, whatever becomes of the held ones. A delta covers
        // no event: it rests on Violet moving the dates, and an event whose offer it did
        // not list must still be applied; the incremental job applies them all (an
        // update no newer than the stored offer is skipped there).
        let offer_topics: Vec<&str> = OFFER_UPSERT_TOPICS
            .iter()
            .chain(&OFFER_REMOVAL_TOPICS)
            .copied()
            .collect();
        let topics: Vec<&str> = match mode {
            RefreshMode::Full if removals.held == 0 => offer_topics.clone(),
            RefreshMode::Full | RefreshMode::Safe => OFFER_UPSERT_TOPICS.to_vec(),
            RefreshMode::Delta => Vec::new(),
        };
        let pending_events = mode == RefreshMode::Delta
            && changes::has_pending(&mut tx, merchant_id, &offer_topics).await?;
        if removals.held > 0 || pending_events {
            Queue::enqueue(
                &mut tx,
                &NewJob {
                    kind: JobKind::Incremental { merchant_id },
                    delay: Duration::ZERO,
                    max_attempts: self.settings.job_max_attempts,
                    on_conflict: OnConflict::KeepEarlier,
                },
            )
            .await?;
        }
        let detail = format!("covered by {} refresh {}", mode_name(mode), key.refresh_id);
        let folded =
            changes::fold_events(&mut tx, merchant_id, started_at, &topics, &detail).await?;

        let change_no = if any {
            let reason = match mode {
                RefreshMode::Full => Reason::FullRefresh,
                RefreshMode::Safe => Reason::SafeRefresh,
                RefreshMode::Delta => Reason::DeltaRefresh,
            };
            let change = changes::Change {
                merchant_id,
                catalog_version: version,
                reason,
                offer_ids: changed.listed(),
                upserted: merged.upserted as i64,
                removed: removed as i64,
            };
            Some(changes::append(&mut tx, &change).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(RefreshReport {
            merchant_id,
            refresh_id: key.refresh_id,
            seen: merged.seen,
            upserted: merged.upserted,
            removed,
            held: removals.held,
            membership_changes: 0,
            catalog_version: version,
            change_no,
            folded,
            elapsed: started.elapsed(),
            publish: publish_started.elapsed(),
        })
    }
}
