//! Reading a batch of pending offer events into one action per offer.
//!
//! Per offer, the last event of the batch wins unless it is dated older than an
//! earlier one. An upsert whose body is a full offer (it parses, and carries `id`,
//! `merchant_id`, `name`, `skus` and `date_last_modified`) is applied from the body;
//! otherwise the offer is fetched by id. A removal carries its body when that is a full
//! offer (the row keeps the status it gives) and its date, when known.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::changes::OFFER_REMOVAL_TOPICS;
use crate::violet::{FromJson, Offer};

#[derive(Debug)]
pub(super) struct PendingEvent {
    pub id: i64,
    pub topic: String,
    pub entity_id: Option<String>,
    pub body: Vec<u8>,
}

/// What to do with one offer.
#[derive(Debug)]
pub(super) enum Action {
    Upsert(Box<Offer>),
    Fetch,
    Remove {
        body: Option<Box<Offer>>,
        date: Option<DateTime<Utc>>,
    },
}

impl Action {
    fn date(&self) -> Option<DateTime<Utc>> {
        match self {
            Action::Upsert(offer) => offer.date_last_modified,
            Action::Fetch => None,
            Action::Remove { date, .. } => *date,
        }
    }
}

/// A batch reduced to one action per offer, and the events behind each.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub actions: BTreeMap<i64, Action>,
    pub events_of: BTreeMap<i64, Vec<i64>>,
    pub unprocessable: Vec<i64>,
    /// Events taken out of the plan because their offer is another merchant's, with why.
    pub refused: Vec<(i64, String)>,
}

impl Plan {
    /// Offers whose action carries an offer (an event body or a fetched copy) that
    /// names a merchant other than `merchant_id`, with that merchant.
    pub fn naming_other_merchants(&self, merchant_id: i64) -> Vec<(i64, i64)> {
        self.actions
            .iter()
            .filter_map(|(id, action)| {
                let offer = match action {
                    Action::Upsert(offer) => Some(offer),
                    Action::Remove { body, .. } => body.as_ref(),
                    Action::Fetch => None,
                }?;
                let named = offer.merchant_id?;
                (named != merchant_id).then_some((*id, named))
            })
            .collect()
    }

    /// Takes an offer out of the plan: nothing is written for it, and its events are
    /// refused with `why`.
    pub fn refuse(&mut self, offer_id: i64, why: &str) {
        self.actions.remove(&offer_id);
        for event in self.events_of.remove(&offer_id).unwrap_or_default() {
            self.refused.push((event, why.to_string()));
        }
    }
}

/// The offer in an event body when it is a full offer.
fn full_offer(body: &Value) -> Option<Offer> {
    let object = body.as_object()?;
    let present = |key: &str| object.get(key).is_some_and(|v| !v.is_null());
    let complete = ["id", "merchant_id", "name", "date_last_modified"]
        .iter()
        .all(|k| present(k))
        && object.get("skus").is_some_and(Value::is_array);
    if !complete {
        return None;
    }
    Offer::from_json(body.clone()).ok()
}

fn offer_id(body: Option<&Value>, entity_id: Option<&str>) -> Option<i64> {
    let from_body = body.and_then(|b| match b.get("id")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    from_body.or_else(|| entity_id.and_then(|e| e.trim().parse().ok()))
}

pub(super) fn plan(events: &[PendingEvent]) -> Plan {
    let mut plan = Plan::default();
    for event in events {
        let body: Option<Value> = serde_json::from_slice(&event.body).ok();
        let Some(id) = offer_id(body.as_ref(), event.entity_id.as_deref()) else {
            plan.unprocessable.push(event.id);
            continue;
        };
        let offer = body
            .as_ref()
            .and_then(full_offer)
            .filter(|offer| offer.id == id);
        let removal =
            OFFER_REMOVAL_TOPICS.contains(&event.topic.trim().to_ascii_uppercase().as_str());
        let action = match (removal, offer) {
            (true, offer) => Action::Remove {
                date: offer.as_ref().and_then(|o| o.date_last_modified),
                body: offer.map(Box::new),
            },
            (false, Some(offer)) => Action::Upsert(Box::new(offer)),
            (false, None) => Action::Fetch,
        };
        plan.events_of.entry(id).or_default().push(event.id);
        let stale = match (plan.actions.get(&id).and_then(Action::date), action.date()) {
            (Some(held), Some(new)) => new < held,
            _ => false,
        };
        if !stale {
            plan.actions.insert(id, action);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: i64, topic: &str, body: Value) -> PendingEvent {
        PendingEvent {
            id,
            topic: topic.into(),
            entity_id: None,
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    fn offer(id: i64, date: &str, name: &str) -> Value {
        json!({"id": id, "merchant_id": 1, "name": name, "skus": [], "date_last_modified": date})
    }

    #[test]
    fn full_bodies_apply_partial_ones_fetch() {
        let plan = plan(&[
            event(1, "OFFER_UPDATED", offer(10, "2025-01-02T00:00:00Z", "a")),
            event(2, "OFFER_UPDATED", json!({"id": 11})),
            event(
                3,
                "offer_added",
                json!({"id": 12, "name": "no date", "merchant_id": 1, "skus": []}),
            ),
            event(4, "OFFER_REMOVED", json!({"id": 13})),
            event(5, "OFFER_UPDATED", json!({"no": "id"})),
        ]);
        assert!(matches!(plan.actions[&10], Action::Upsert(_)));
        assert!(matches!(plan.actions[&11], Action::Fetch));
        assert!(
            matches!(plan.actions[&12], Action::Fetch),
            "a body without a date is not a full offer"
        );
        assert!(matches!(
            plan.actions[&13],
            Action::Remove {
                body: None,
                date: None
            }
        ));
        assert_eq!(plan.unprocessable, vec![5]);
    }

    #[test]
    fn an_older_event_later_in_the_batch_does_not_win() {
        let plan = plan(&[
            event(1, "OFFER_UPDATED", offer(10, "2025-01-03T00:00:00Z", "new")),
            event(
                2,
                "OFFER_UPDATED",
                offer(10, "2025-01-02T00:00:00+0000", "old"),
            ),
            event(
                3,
                "OFFER_UPDATED",
                offer(11, "2025-01-02T00:00:00Z", "first"),
            ),
            event(
                4,
                "OFFER_REMOVED",
                offer(11, "2025-01-04T00:00:00Z", "gone"),
            ),
        ]);
        match &plan.actions[&10] {
            Action::Upsert(o) => assert_eq!(o.name.as_deref(), Some("new")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan.actions[&11],
            Action::Remove {
                body: Some(_),
                date: Some(_)
            }
        ));
        assert_eq!(plan.events_of[&10], vec![1, 2]);
    }
}
