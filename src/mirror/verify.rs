//! A second look before a full pass removes anything.
//!
//! A listing is paged by position, and a merchant's catalog may change while it is
//! read: when offers before the page being read are removed, the pages after it shift
//! and an offer can fall between two pages. A complete pass then has not seen an offer
//! Violet still has, and removing it would take it off the storefront until the next
//! pass (the soak test found exactly this). So after the last page, each live offer
//! the pass did not see is fetched by id, at most `refresh.verify_removals_max` of
//! them and only when the removals would apply at once (larger sets are held for
//! agreement, `removals`):
//! - 404: gone, the pass may remove it;
//! - the offer: staged like a listed one (a fresher copy than the listing's);
//! - an error: staged as seen, unchanged (kept: when in doubt, keep what we have).

use futures::{StreamExt, TryStreamExt, stream};
use tokio_util::sync::CancellationToken;

use super::Mirror;
use super::removals;
use super::rows::StageKey;
use super::staging::OfferStager;

/// What the second look found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    /// Offers Violet no longer has (404): the pass removes them.
    pub gone: u64,
    /// Offers Violet still has, now staged.
    pub present: u64,
    /// Offers that could not be fetched, staged as seen so they are kept.
    pub kept: u64,
}

impl Verified {
    /// Rows this added to the refresh's staging.
    pub fn staged(&self) -> u64 {
        self.present + self.kept
    }
}

/// Stages the listed offers' live rows as seen and unchanged (markers).
const STAGE_KEPT: &str = r#"
INSERT INTO staged_offers (refresh_id, merchant_id, seq, offer_id, content_hash)
SELECT $1, merchant_id, 0, offer_id, content_hash FROM offers
WHERE merchant_id = $2 AND offer_id = ANY($3)
"#;

impl Mirror {
    /// Fetches by id the live offers a complete full pass of `key` did not see (see
    /// the module doc) and stages what Violet still has.
    pub(super) async fn verify_unseen(
        &self,
        key: StageKey,
        started_at: chrono::DateTime<chrono::Utc>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Verified> {
        let mut conn = self.pool.acquire().await?;
        let unseen =
            removals::unseen(&mut conn, key.merchant_id, key.refresh_id, started_at).await?;
        let live = removals::live_offers(&mut conn, key.merchant_id).await?;
        drop(conn);
        let held_anyway = unseen.len() as f64 > self.settings.max_removal_fraction * live as f64;
        if unseen.is_empty() || held_anyway || self.settings.verify_removals_max == 0 {
            return Ok(Verified::default());
        }
        if unseen.len() > self.settings.verify_removals_max {
            tracing::warn!(
                unseen = unseen.len(),
                max = self.settings.verify_removals_max,
                "more unseen offers than refresh.verify_removals_max: removing them on the listing's word"
            );
            return Ok(Verified::default());
        }
        let client = self.client.clone();
        let looked: Vec<(i64, Option<Option<crate::violet::Offer>>)> = stream::iter(unseen)
            .map(|id| {
                let client = client.clone();
                async move {
                    if cancel.is_cancelled() {
                        anyhow::bail!("cancelled while checking unseen offers; nothing was published");
                    }
                    Ok(match client.offer(id).await {
                        Ok(found) => (id, Some(found)),
                        Err(err) => {
                            tracing::warn!(offer_id = id, error = %err, "cannot check an unseen offer; keeping it");
                            (id, None)
                        }
                    })
                }
            })
            .buffer_unordered(self.settings.fetch_concurrency.max(1))
            .try_collect()
            .await?;

        let mut verified = Verified::default();
        let mut stager = OfferStager::new(key, looked.len().max(1));
        let mut kept = Vec::new();
        for (id, looked) in looked {
            match looked {
                // Another merchant's offer under this id is not this merchant's.
                Some(Some(offer)) if offer.merchant_id.is_none_or(|m| m == key.merchant_id) => {
                    stager.push(&offer);
                    verified.present += 1;
                }
                Some(_) => verified.gone += 1,
                None => kept.push(id),
            }
        }
        verified.kept = kept.len() as u64;
        let mut tx = self.pool.begin().await?;
        stager.take(None).write(&mut tx).await?;
        sqlx::query(STAGE_KEPT)
            .bind(key.refresh_id)
            .bind(key.merchant_id)
            .bind(&kept)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        for (outcome, n) in [
            ("gone", verified.gone),
            ("present", verified.present),
            ("kept", verified.kept),
        ] {
            metrics::counter!("catalog_mirror_removals_verified_total", "outcome" => outcome)
                .increment(n);
        }
        if verified.present + verified.kept > 0 {
            tracing::info!(
                gone = verified.gone,
                present = verified.present,
                kept = verified.kept,
                "offers the listing skipped were checked one by one"
            );
        }
        Ok(verified)
    }
}
