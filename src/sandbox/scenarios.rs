//! Webhook scenarios: the ordered event sequences Violet sends around a merchant's
//! life (onboarding, a scheduled sync with catalog changes, a failed sync that is
//! retried, a disable and re-enable), built from the catalog so offer bodies are
//! exactly what the API serves.
//!
//! Building is separate from delivery ([`super::webhooks::Emitter`]) so tests can
//! inspect the events. Event and sync ids are hashed from the options' seed, the
//! merchant, its catalog generation and the position in the scenario: deterministic,
//! and distinct between scenarios and generations. Per-offer events can be capped.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::catalog::Catalog;
use super::generator::{format_date, generation_time};
use super::hash::{below, mix, tag};
use super::webhooks::{WebhookEvent, uuid_like};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// MERCHANT_CONNECTED, PRODUCT_SYNC_STARTED, OFFER_ADDED per offer,
    /// PRODUCT_SYNC_COMPLETED, COLLECTION_SYNC_STARTED, COLLECTION_SYNC_COMPLETED,
    /// MERCHANT_COMPLETE.
    Onboarding,
    /// Advances the catalog, then PRODUCT_SYNC_STARTED, OFFER_ADDED / OFFER_UPDATED /
    /// OFFER_REMOVED for the change set, PRODUCT_SYNC_COMPLETED.
    ScheduledSync,
    /// PRODUCT_SYNC_STARTED, PRODUCT_SYNC_FAILED, then a retry with a new sync id:
    /// PRODUCT_SYNC_STARTED, PRODUCT_SYNC_COMPLETED.
    FailedThenRecovered,
    /// MERCHANT_DISABLED, MERCHANT_ENABLED, PRODUCT_SYNC_STARTED, OFFER_UPDATED for
    /// every offer, PRODUCT_SYNC_COMPLETED.
    DisabledThenReenabled,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Onboarding,
        Scenario::ScheduledSync,
        Scenario::FailedThenRecovered,
        Scenario::DisabledThenReenabled,
    ];

    /// The name used on the command line and in the control API.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Onboarding => "onboarding",
            Scenario::ScheduledSync => "scheduled-sync",
            Scenario::FailedThenRecovered => "failed-then-recovered",
            Scenario::DisabledThenReenabled => "disabled-then-reenabled",
        }
    }

    /// The events for `merchant_id`, in order. `ScheduledSync` advances the catalog.
    pub fn events(
        self,
        catalog: &Catalog,
        merchant_id: u64,
        options: &ScenarioOptions,
    ) -> anyhow::Result<Vec<WebhookEvent>> {
        anyhow::ensure!(
            catalog.has_merchant(merchant_id),
            "unknown sandbox merchant {merchant_id}"
        );
        let mut b = Builder::new(self, catalog, merchant_id, options);
        match self {
            Scenario::Onboarding => {
                b.merchant_event("MERCHANT_CONNECTED", "CONNECTED");
                let total = catalog.offer_count(merchant_id);
                let sync = b.sync_start("PRODUCT", total);
                let ids: Vec<u64> = catalog.offer_ids(merchant_id).take(b.offer_cap).collect();
                for id in ids {
                    b.offer_event("OFFER_ADDED", id, catalog.offer_json(id));
                }
                b.sync_end(sync, "PRODUCT", total, None);
                let collections = u64::from(catalog.collection_count(merchant_id));
                let sync = b.sync_start("COLLECTION", collections);
                b.sync_end(sync, "COLLECTION", collections, None);
                b.merchant_event("MERCHANT_COMPLETE", "CONNECTED");
            }
            Scenario::ScheduledSync => {
                let changes = catalog.advance(merchant_id);
                b.generation = changes.generation;
                let total = catalog.offer_count(merchant_id);
                let sync = b.sync_start("PRODUCT", total);
                let offers = changes
                    .added
                    .iter()
                    .map(|&id| ("OFFER_ADDED", id, catalog.offer_json(id)))
                    .chain(
                        changes
                            .updated
                            .iter()
                            .map(|&id| ("OFFER_UPDATED", id, catalog.offer_json(id))),
                    )
                    .chain(
                        changes
                            .removed
                            .iter()
                            .map(|&id| ("OFFER_REMOVED", id, catalog.removed_offer_json(id))),
                    )
                    .take(b.offer_cap)
                    .collect::<Vec<_>>();
                for (topic, id, body) in offers {
                    b.offer_event(topic, id, body);
                }
                b.sync_end(sync, "PRODUCT", total, None);
            }
            Scenario::FailedThenRecovered => {
                let total = catalog.offer_count(merchant_id);
                let first = b.sync_start("PRODUCT", total);
                b.sync_end(first, "PRODUCT", total, Some(total / 3));
                let retry = b.sync_start("PRODUCT", total);
                b.sync_end(retry, "PRODUCT", total, None);
            }
            Scenario::DisabledThenReenabled => {
                b.merchant_event("MERCHANT_DISABLED", "DISABLED");
                b.merchant_event("MERCHANT_ENABLED", "CONNECTED");
                let total = catalog.offer_count(merchant_id);
                let sync = b.sync_start("PRODUCT", total);
                let ids: Vec<u64> = catalog.offer_ids(merchant_id).take(b.offer_cap).collect();
                for id in ids {
                    b.offer_event("OFFER_UPDATED", id, catalog.offer_json(id));
                }
                b.sync_end(sync, "PRODUCT", total, None);
            }
        }
        Ok(b.events)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    /// Accepts the kebab-case names, case-insensitively, with `_` for `-`.
    fn from_str(s: &str) -> Result<Scenario, String> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown scenario {s:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// How a scenario is built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScenarioOptions {
    /// Seeds event and sync ids. Same seed, merchant, generation: same ids.
    pub seed: u64,
    /// At most this many per-offer (`OFFER_*`) events; `None` = one per offer,
    /// `Some(0)` = none (for large catalogs).
    pub max_offer_events: Option<usize>,
}

impl ScenarioOptions {
    pub fn without_offer_events(seed: u64) -> ScenarioOptions {
        ScenarioOptions {
            seed,
            max_offer_events: Some(0),
        }
    }
}

struct Builder<'a> {
    catalog: &'a Catalog,
    scenario: Scenario,
    merchant_id: u64,
    seed: u64,
    generation: u32,
    offer_cap: usize,
    events: Vec<WebhookEvent>,
}

impl<'a> Builder<'a> {
    fn new(
        scenario: Scenario,
        catalog: &'a Catalog,
        merchant_id: u64,
        options: &ScenarioOptions,
    ) -> Builder<'a> {
        Builder {
            catalog,
            scenario,
            merchant_id,
            seed: options.seed,
            generation: catalog.generation(merchant_id),
            offer_cap: options.max_offer_events.unwrap_or(usize::MAX),
            events: Vec::new(),
        }
    }

    /// A hash unique to this scenario run and `what`/`n`.
    fn h(&self, what: &str, n: u64) -> u64 {
        mix(&[
            self.seed,
            self.merchant_id,
            u64::from(self.generation),
            tag(self.scenario.name()),
            tag(what),
            n,
        ])
    }

    /// When the current event happens: during the generation's day, in order, and
    /// after every event of the scenarios built before this one.
    fn now(&self) -> String {
        let start = generation_time(self.generation, self.h("clock", 0));
        format_date(
            self.catalog
                .next_event_time(start + self.events.len() as i64),
            false,
        )
    }

    fn push(&mut self, topic: &str, entity_id: String, body: Value) {
        let n = self.events.len() as u64;
        self.events.push(WebhookEvent {
            event_id: uuid_like(self.h("event", n), self.h("event2", n)),
            topic: topic.to_string(),
            entity_id,
            merchant_id: Some(self.merchant_id),
            webhook_id: (10_000 + below(tag(topic), 90_000)).to_string(),
            source_event_id: None,
            body,
        });
    }

    fn merchant_event(&mut self, topic: &str, status: &str) {
        let mut body = self
            .catalog
            .merchant_json_with_status(self.merchant_id, status)
            .unwrap_or(Value::Null);
        // The status changed now: receivers order merchant events by this date.
        if let Some(object) = body.as_object_mut() {
            object.insert("date_last_modified".into(), json!(self.now()));
        }
        self.push(topic, self.merchant_id.to_string(), body);
    }

    fn offer_event(&mut self, topic: &str, offer_id: u64, body: Option<Value>) {
        self.push(
            topic,
            offer_id.to_string(),
            body.unwrap_or_else(|| json!({"id": offer_id})),
        );
    }

    /// Emits `{KIND}_SYNC_STARTED` and returns the new sync id.
    fn sync_start(&mut self, kind: &str, total: u64) -> u64 {
        let id = 1_000_000_000 + below(self.h("sync", self.events.len() as u64), 8_000_000_000);
        let body = self.sync_body(id, kind, "IN_PROGRESS", total, 0, None);
        self.push(&format!("{kind}_SYNC_STARTED"), id.to_string(), body);
        id
    }

    /// Emits `{KIND}_SYNC_COMPLETED`, or `_FAILED` after `failed_after` products.
    fn sync_end(&mut self, id: u64, kind: &str, total: u64, failed_after: Option<u64>) {
        let (topic, status, synced) = match failed_after {
            None => ("COMPLETED", "COMPLETED", total),
            Some(done) => ("FAILED", "FAILED", done),
        };
        let error = failed_after.map(|_| "Platform API returned 502 while fetching products");
        let body = self.sync_body(id, kind, status, total, synced, error);
        self.push(&format!("{kind}_SYNC_{topic}"), id.to_string(), body);
    }

    fn sync_body(
        &self,
        id: u64,
        kind: &str,
        status: &str,
        total: u64,
        synced: u64,
        error: Option<&str>,
    ) -> Value {
        let mut body = json!({
            "id": id,
            "merchant_id": self.merchant_id,
            "type": kind,
            "status": status,
            "total_products": total,
            "total_products_synced": synced,
            "date_last_synced": self.now(),
        });
        if let Some(e) = error {
            body["error_message"] = json!(e);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_choices() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>(), Ok(s));
        }
        assert_eq!(
            "Scheduled_Sync".parse::<Scenario>(),
            Ok(Scenario::ScheduledSync)
        );
        let err = "weekly".parse::<Scenario>().unwrap_err();
        assert!(
            err.contains("onboarding") && err.contains("weekly"),
            "{err}"
        );
    }
}
