//! The webhook emitter: delivers [`WebhookEvent`]s the way Violet does, signed with
//! the app secret, with the delivery faults a receiver must survive.
//!
//! One POST per event with Violet's headers (`X-Violet-Hmac` over the exact bytes
//! sent, topic, event, entity, webhook and merchant ids). [`DeliveryFaults`] add
//! duplicates (same event id and body, delivered again a few events later), local
//! reordering, and redelivery with backoff after a non-2xx answer or a connection
//! error. All choices come from a seeded RNG, so a run can be replayed.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::hash::{Rng, mix, tag};
use crate::violet::signature::sign;

/// One event, ready to deliver. `body` is serialised once per delivery with
/// `Value`'s `Display` (compact JSON), which is deterministic, so duplicates are
/// byte-identical.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    /// `X-Violet-Event-Id`: unique per event, deterministic from the scenario seed.
    pub event_id: String,
    /// `X-Violet-Topic`, e.g. `PRODUCT_SYNC_COMPLETED`.
    pub topic: String,
    /// `X-Violet-Entity-Id`: the sync id for sync events, else the merchant or offer id.
    pub entity_id: String,
    /// `X-Violet-Merchant-Id`.
    pub merchant_id: Option<u64>,
    /// `X-Violet-Webhook-Id`: the subscription (one per topic).
    pub webhook_id: String,
    /// `X-Violet-Event-Id-Source`: set on a manual resend, the original event id.
    pub source_event_id: Option<String>,
    pub body: Value,
}

impl WebhookEvent {
    /// The raw body as delivered (and signed).
    pub fn body_bytes(&self) -> Vec<u8> {
        self.body.to_string().into_bytes()
    }

    /// Every header of a delivery of `body` signed with `secret`.
    pub fn headers(&self, secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Content-Type", "application/json".to_string()),
            ("X-Violet-Hmac", sign(secret, body)),
            ("X-Violet-Topic", self.topic.clone()),
            ("X-Violet-Event-Id", self.event_id.clone()),
            ("X-Violet-Entity-Id", self.entity_id.clone()),
            ("X-Violet-Webhook-Id", self.webhook_id.clone()),
        ];
        if let Some(m) = self.merchant_id {
            h.push(("X-Violet-Merchant-Id", m.to_string()));
        }
        if let Some(src) = &self.source_event_id {
            h.push(("X-Violet-Event-Id-Source", src.clone()));
        }
        h
    }

    /// A manual resend from Violet's dashboard: a new event id, the original in
    /// `X-Violet-Event-Id-Source`, same body.
    pub fn manual_resend(&self, n: u64) -> WebhookEvent {
        let h = mix(&[tag(&self.event_id), tag("resend"), n]);
        WebhookEvent {
            event_id: uuid_like(h, mix(&[h, 1])),
            source_event_id: Some(self.event_id.clone()),
            ..self.clone()
        }
    }
}

/// A UUID-shaped id from 128 hashed bits.
pub fn uuid_like(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// How deliveries misbehave.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryFaults {
    /// Chance that an event is delivered a second time (same id, same bytes), 0 to 1.
    pub duplicate_rate: f64,
    /// Shuffle events within small windows (of [`REORDER_WINDOW`]).
    pub out_of_order: bool,
    /// Retries after a non-2xx answer or a connection error.
    pub redeliver_on_failure: u32,
    /// First retry delay, doubled each retry (capped at 5 s).
    #[serde(rename = "retry_backoff_ms", with = "super::duration_ms")]
    pub retry_backoff: Duration,
    /// Seeds duplicates and reordering.
    pub seed: u64,
}

impl Default for DeliveryFaults {
    fn default() -> Self {
        DeliveryFaults {
            duplicate_rate: 0.0,
            out_of_order: false,
            redeliver_on_failure: 3,
            retry_backoff: Duration::from_millis(100),
            seed: 0,
        }
    }
}

/// Events are reordered only within windows this long, like a real queue's jitter.
pub const REORDER_WINDOW: usize = 4;

/// What a play did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeliveryReport {
    /// Distinct events played.
    pub events: usize,
    /// HTTP POSTs made, including retries and duplicates.
    pub sent: usize,
    /// Distinct events answered with a 2xx.
    pub acknowledged: usize,
    pub duplicates_sent: usize,
    /// Retries after a failed delivery.
    pub redeliveries: usize,
    /// Events never acknowledged: `(event id, last HTTP status or None for a
    /// connection error or timeout)`.
    pub failed: Vec<(String, Option<u16>)>,
    /// Event id of every POST, in the order made.
    pub deliveries: Vec<String>,
}

/// Delivers events to one endpoint.
#[derive(Debug, Clone)]
pub struct Emitter {
    target: String,
    app_secret: String,
    faults: DeliveryFaults,
    client: reqwest::Client,
}

impl Emitter {
    /// Violet expects an answer within 10 s; so does the emitter.
    pub fn new(target_url: impl Into<String>, app_secret: impl Into<String>) -> Emitter {
        Emitter {
            target: target_url.into(),
            app_secret: app_secret.into(),
            faults: DeliveryFaults::default(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn with_faults(mut self, faults: DeliveryFaults) -> Emitter {
        self.faults = faults;
        self
    }

    /// Replaces the HTTP client (e.g. for a shorter timeout).
    pub fn with_client(mut self, client: reqwest::Client) -> Emitter {
        self.client = client;
        self
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// One POST of `event`: the status, or the transport error.
    pub async fn deliver_once(&self, event: &WebhookEvent) -> Result<u16, reqwest::Error> {
        let body = event.body_bytes();
        let mut request = self.client.post(&self.target);
        for (name, value) in event.headers(&self.app_secret, &body) {
            request = request.header(name, value);
        }
        Ok(request.body(body).send().await?.status().as_u16())
    }

    /// Delivers every event with the configured faults and reports what happened.
    pub async fn play(&self, events: &[WebhookEvent]) -> DeliveryReport {
        let mut rng = Rng::new(mix(&[self.faults.seed, tag("delivery")]));
        let mut order: Vec<usize> = (0..events.len()).collect();
        if self.faults.out_of_order {
            for window in order.chunks_mut(REORDER_WINDOW) {
                rng.shuffle(window);
            }
        }
        let mut report = DeliveryReport {
            events: events.len(),
            ..DeliveryReport::default()
        };
        // Duplicates waiting for their turn: (step after which to send, event index).
        let mut pending: Vec<(usize, usize)> = Vec::new();
        for (step, &i) in order.iter().enumerate() {
            self.deliver_with_retries(&events[i], &mut report).await;
            if rng.chance(self.faults.duplicate_rate) {
                pending.push((step + rng.below(3) as usize, i));
            }
            let (due, later): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|&(at, _)| at <= step);
            pending = later;
            for (_, d) in due {
                self.deliver_duplicate(&events[d], &mut report).await;
            }
        }
        for (_, d) in pending {
            self.deliver_duplicate(&events[d], &mut report).await;
        }
        report
    }

    async fn deliver_with_retries(&self, event: &WebhookEvent, report: &mut DeliveryReport) {
        let mut last = None;
        for attempt in 0..=self.faults.redeliver_on_failure {
            if attempt > 0 {
                report.redeliveries += 1;
                let factor = 1u32 << (attempt - 1).min(16);
                tokio::time::sleep(
                    (self.faults.retry_backoff * factor).min(Duration::from_secs(5)),
                )
                .await;
            }
            report.sent += 1;
            report.deliveries.push(event.event_id.clone());
            match self.deliver_once(event).await {
                Ok(status) if (200..300).contains(&status) => {
                    report.acknowledged += 1;
                    return;
                }
                Ok(status) => {
                    tracing::debug!(event_id = %event.event_id, status, "webhook refused");
                    last = Some(status);
                }
                Err(e) => {
                    tracing::debug!(event_id = %event.event_id, error = %e, "webhook delivery failed");
                    last = None;
                }
            }
        }
        report.failed.push((event.event_id.clone(), last));
    }

    /// A duplicate is one more POST of the same bytes; its outcome is not tracked.
    async fn deliver_duplicate(&self, event: &WebhookEvent, report: &mut DeliveryReport) {
        report.sent += 1;
        report.duplicates_sent += 1;
        report.deliveries.push(event.event_id.clone());
        let _ = self.deliver_once(event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let id = uuid_like(mix(&[1]), mix(&[2]));
        let lens: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lens, vec![8, 4, 4, 4, 12]);
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}
