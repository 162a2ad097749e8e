//! Building signed webhook deliveries for tests.

use catalog_mirror::violet::signature;
use serde_json::Value;

pub const SECRET: &str = "sandbox-app-secret";

/// One delivery: headers and raw body, signed with [`SECRET`] unless changed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: Option<String>,
    pub topic: Option<String>,
    pub entity_id: Option<String>,
    pub merchant_id: Option<i64>,
    pub body: Vec<u8>,
    pub hmac: Option<String>,
}

impl Delivery {
    pub fn new(event_id: &str, topic: &str, body: &Value) -> Delivery {
        let body = serde_json::to_vec(body).unwrap();
        Delivery {
            event_id: Some(event_id.into()),
            topic: Some(topic.into()),
            entity_id: None,
            merchant_id: None,
            hmac: Some(signature::sign(SECRET, &body)),
            body,
        }
    }

    pub fn entity(mut self, entity_id: &str) -> Self {
        self.entity_id = Some(entity_id.into());
        self
    }

    pub fn merchant(mut self, merchant_id: i64) -> Self {
        self.merchant_id = Some(merchant_id);
        self
    }

    pub async fn send(&self, http: &reqwest::Client, url: &str) -> reqwest::Response {
        self.try_send(http, url).await.expect("request sent")
    }

    /// Like [`Delivery::send`], with a refused or cut connection as an error.
    pub async fn try_send(
        &self,
        http: &reqwest::Client,
        url: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = http
            .post(url)
            .body(self.body.clone())
            .header("content-type", "application/json");
        if let Some(v) = &self.event_id {
            request = request.header("X-Violet-Event-Id", v);
        }
        if let Some(v) = &self.topic {
            request = request.header("X-Violet-Topic", v);
        }
        if let Some(v) = &self.entity_id {
            request = request.header("X-Violet-Entity-Id", v);
        }
        if let Some(v) = &self.merchant_id {
            request = request.header("X-Violet-Merchant-Id", v.to_string());
        }
        if let Some(v) = &self.hmac {
            request = request.header("X-Violet-Hmac", v);
        }
        request.send().await
    }
}

/// A sync record body as Violet sends it.
pub fn sync_body(sync_id: i64, merchant_id: i64, status: &str, at: &str) -> Value {
    serde_json::json!({
        "id": sync_id, "merchant_id": merchant_id, "status": status,
        "total_products": 120, "total_products_synced": 118, "date_last_synced": at,
    })
}
