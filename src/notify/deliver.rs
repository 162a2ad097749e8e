//! Outbound notification webhooks: one signed POST per job attempt.

use std::time::Duration;

use anyhow::Context;

use crate::config::NotificationSettings;
use crate::violet::signature;

/// base64 HMAC-SHA256 of the raw body with `notifications.secret`.
pub const SIGNATURE_HEADER: &str = "X-Catalog-Mirror-Hmac";

/// Posts `notification` to `url`; an error (any non-2xx, timeout, connection failure)
/// makes the job retry with backoff.
pub async fn deliver(
    client: &reqwest::Client,
    settings: &NotificationSettings,
    url: &str,
    notification: &serde_json::Value,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(notification).expect("JSON values serialize");
    let kind = notification
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("unknown");
    let response = client
        .post(url)
        .timeout(Duration::from_millis(settings.timeout_ms))
        .header("Content-Type", "application/json")
        .header("X-Catalog-Mirror-Event", kind)
        .header(
            SIGNATURE_HEADER,
            signature::sign(settings.secret.expose(), &body),
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("notification to {} not delivered", redact_url(url)))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "notification to {} refused with {status}",
        redact_url(url)
    );
    Ok(())
}

/// The URL without credentials or query (which may carry tokens), for errors and logs.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "<invalid url>".into(),
    }
}
