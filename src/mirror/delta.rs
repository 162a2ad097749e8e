//! Delta refreshes: which products pass a refresh makes, and the watermark it keeps.
//!
//! A delta asks Violet only for the offers modified since the merchant's watermark
//! (`date_last_modified:min`) and upserts them; it never removes. That rests on an
//! assumption (Violet moves an offer's `date_last_modified` whenever the offer or its
//! SKUs change), so a full pass still runs whenever the assumption may not have held
//! or cannot be checked: on first onboarding (no watermark), when the last full pass is
//! older than `refresh.full_every_secs`, when no pass confirmed the watermark within
//! `refresh.watermark_max_age_secs` (the daemon was stopped for long), and when `merchants.full_refresh_due` names a
//! reason (MERCHANT_ENABLED, a failed or stalled sync, a manual resync). The decision
//! is made when the job runs, not when it is queued, so it reads the state as it is.
//!
//! The watermark is the newest `date_last_modified` a complete listing showed (full
//! or delta), never later than the moment that listing began on this host's clock: an
//! offer changed while the listing was paged may sit on a page already read, and its
//! date is after the start. A delta asks from the watermark less
//! `refresh.delta_overlap_secs` (clock skew), so it reads a few offers twice, harmlessly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::config::RefreshPolicy;
use crate::work::RefreshMode;

/// What `refresh.*` says about deltas.
#[derive(Debug, Clone, Copy)]
pub struct DeltaSettings {
    pub policy: RefreshPolicy,
    pub full_every: Duration,
    pub overlap: Duration,
    pub watermark_max_age: Duration,
}

/// The pass a products refresh makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// The whole listing; removes what it did not see (`why`: for the log).
    Full { why: String },
    /// The whole listing; only upserts (a retry after a failed or stalled sync).
    Safe,
    /// Offers modified at or after `since`; only upserts.
    Delta { since: DateTime<Utc> },
}

impl Pass {
    pub fn mode(&self) -> RefreshMode {
        match self {
            Pass::Full { .. } => RefreshMode::Full,
            Pass::Safe => RefreshMode::Safe,
            Pass::Delta { .. } => RefreshMode::Delta,
        }
    }
}

/// A merchant's delta bookkeeping, as stored on its row.
#[derive(Debug, Clone, Default, sqlx::FromRow, serde::Serialize)]
pub struct DeltaState {
    pub offers_watermark: Option<DateTime<Utc>>,
    pub last_full_refresh_at: Option<DateTime<Utc>>,
    pub last_delta_refresh_at: Option<DateTime<Utc>>,
    pub full_refresh_due: Option<String>,
}

impl DeltaState {
    pub async fn read(conn: &mut PgConnection, merchant_id: i64) -> sqlx::Result<Self> {
        Ok(sqlx::query_as(
            r#"SELECT offers_watermark, last_full_refresh_at, last_delta_refresh_at, full_refresh_due
               FROM merchants WHERE merchant_id = $1"#,
        )
        .bind(merchant_id)
        .fetch_optional(conn)
        .await?
        .unwrap_or_default())
    }

    /// The pass a job queued as `mode` makes now. Only a delta is ever turned into
    /// something else (a full pass); a full or safe job is what it says.
    pub fn pass(&self, mode: RefreshMode, settings: &DeltaSettings, now: DateTime<Utc>) -> Pass {
        let full = |why: &str| Pass::Full { why: why.into() };
        match mode {
            RefreshMode::Full => return full("queued as a full refresh"),
            RefreshMode::Safe => return Pass::Safe,
            RefreshMode::Delta => {}
        }
        if settings.policy == RefreshPolicy::Full {
            return full("refresh.mode is full");
        }
        if let Some(reason) = &self.full_refresh_due {
            return full(reason);
        }
        let older_than = |at: DateTime<Utc>, age: Duration| {
            now.signed_duration_since(at).to_std().unwrap_or_default() > age
        };
        let Some(last_full) = self.last_full_refresh_at else {
            return full("no full pass yet");
        };
        if older_than(last_full, settings.full_every) {
            return full("the last full pass is older than refresh.full_every_secs");
        }
        let Some(watermark) = self.offers_watermark else {
            return full("no watermark");
        };
        // The watermark is Violet's date (a quiet catalog keeps an old one, rightly);
        // its age is how long ago a pass last confirmed it.
        let confirmed = last_full.max(self.last_delta_refresh_at.unwrap_or(last_full));
        if older_than(confirmed, settings.watermark_max_age) {
            return full(
                "the watermark was confirmed longer ago than refresh.watermark_max_age_secs",
            );
        }
        let overlap = chrono::Duration::from_std(settings.overlap).unwrap_or_default();
        Pass::Delta {
            since: watermark - overlap,
        }
    }
}

/// The newest `date_last_modified` of the offers a listing showed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Newest(Option<DateTime<Utc>>);

impl Newest {
    pub fn see(&mut self, date: Option<DateTime<Utc>>) {
        self.0 = self.0.max(date);
    }
}

/// Records, inside the publishing transaction, what a complete pass that began at
/// `started_at` tells about the merchant: its watermark, and for a full pass that it
/// ran (clearing a due reason recorded before it began; one recorded while it ran
/// still stands). A safe pass leaves everything as it was: it follows a sync that
/// Violet itself reported as failed or stalled.
pub async fn record(
    conn: &mut PgConnection,
    merchant_id: i64,
    pass: &Pass,
    newest: Newest,
    started_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    if *pass == Pass::Safe {
        return Ok(());
    }
    // Never later than the listing's start; never moved back by a delta that saw
    // nothing newer (a full pass sets it outright: it saw the whole catalog).
    let seen = newest.0.map(|newest| newest.min(started_at));
    let full = matches!(pass, Pass::Full { .. });
    sqlx::query(
        r#"UPDATE merchants SET
               offers_watermark = CASE WHEN $3 THEN $2
                                       ELSE GREATEST(offers_watermark, $2) END,
               last_full_refresh_at = CASE WHEN $3 THEN now() ELSE last_full_refresh_at END,
               last_delta_refresh_at = CASE WHEN $3 THEN last_delta_refresh_at ELSE now() END,
               full_refresh_due = CASE WHEN $3 AND full_refresh_due_at <= $4 THEN NULL
                                       ELSE full_refresh_due END,
               full_refresh_due_at = CASE WHEN $3 AND full_refresh_due_at <= $4 THEN NULL
                                          ELSE full_refresh_due_at END
           WHERE merchant_id = $1"#,
    )
    .bind(merchant_id)
    .bind(seen)
    .bind(full)
    .bind(started_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks that the merchant's next products refresh must be a full pass, and why.
pub async fn require_full_pass(
    conn: &mut PgConnection,
    merchant_id: i64,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE merchants SET full_refresh_due = $2, full_refresh_due_at = now() WHERE merchant_id = $1",
    )
    .bind(merchant_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped `[refresh]` defaults (300 s overlap, a day between full passes, a
    /// watermark trusted for three days).
    fn shipped() -> DeltaSettings {
        let settings =
            crate::config::Settings::load(&crate::config::ConfigSource::DefaultsOnly).unwrap();
        crate::mirror::MirrorSettings::new(&settings.refresh, &settings.jobs).delta
    }

    fn at(hours_ago: i64) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::hours(hours_ago)
    }

    fn state(last_full: Option<i64>, watermark: Option<i64>) -> DeltaState {
        DeltaState {
            last_full_refresh_at: last_full.map(at),
            offers_watermark: watermark.map(at),
            ..DeltaState::default()
        }
    }

    #[test]
    fn an_old_watermark_is_fine_when_a_pass_confirmed_it_lately() {
        let mut s = shipped();
        let now = Utc::now();
        // A catalog quiet for a year: its newest date is old, and still right.
        let quiet = state(Some(1), Some(24 * 365));
        assert!(matches!(
            quiet.pass(RefreshMode::Delta, &s, now),
            Pass::Delta { .. }
        ));
        // The daemon was stopped longer than the bound (and full passes are rarer).
        s.full_every = Duration::from_secs(30 * 86_400);
        let mut stopped = state(Some(24 * 9), Some(24 * 9));
        assert!(is_full(&stopped.pass(RefreshMode::Delta, &s, now)));
        stopped.last_delta_refresh_at = Some(at(1));
        assert!(matches!(
            stopped.pass(RefreshMode::Delta, &s, now),
            Pass::Delta { .. }
        ));
    }

    fn is_full(pass: &Pass) -> bool {
        matches!(pass, Pass::Full { .. })
    }

    #[test]
    fn a_delta_needs_a_recent_full_pass_and_a_watermark() {
        let s = shipped();
        let now = Utc::now();
        assert!(is_full(&state(None, Some(1)).pass(
            RefreshMode::Delta,
            &s,
            now
        )));
        assert!(is_full(&state(Some(1), None).pass(
            RefreshMode::Delta,
            &s,
            now
        )));
        assert!(is_full(&state(Some(25), Some(1)).pass(
            RefreshMode::Delta,
            &s,
            now
        )));
        let recent = state(Some(1), Some(2));
        let Pass::Delta { since } = recent.pass(RefreshMode::Delta, &s, now) else {
            panic!("a delta was expected");
        };
        let watermark = recent.offers_watermark.unwrap();
        assert_eq!(since, watermark - chrono::Duration::seconds(300));
    }

    #[test]
    fn a_due_reason_or_the_full_policy_forces_a_full_pass_and_other_modes_stay() {
        let mut s = shipped();
        let now = Utc::now();
        let mut due = state(Some(1), Some(1));
        due.full_refresh_due = Some("sync failed".into());
        assert_eq!(
            due.pass(RefreshMode::Delta, &s, now),
            Pass::Full {
                why: "sync failed".into()
            }
        );
        let fine = state(Some(1), Some(1));
        assert_eq!(fine.pass(RefreshMode::Safe, &s, now), Pass::Safe);
        assert!(is_full(&fine.pass(RefreshMode::Full, &s, now)));
        s.policy = RefreshPolicy::Full;
        assert!(is_full(&fine.pass(RefreshMode::Delta, &s, now)));
    }
}
