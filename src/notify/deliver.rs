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
        // reqwest's errors print the whole URL, whose path or query may be the
        // receiver's secret token (a Slack-style hook): the error goes into the job's
        // last_error, the logs and the admin page, so it names the host only.
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("notification to {} not delivered", redact_url(url)))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "notification to {} refused with {status}",
        redact_url(url)
    );
    Ok(())
}

/// The URL reduced to its scheme, host and port, for errors and logs: credentials,
/// path and query may all carry a secret.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if parsed.path() != "/" || parsed.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}://{host}{port}{rest}", parsed.scheme())
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_redacted_url_keeps_the_host_only() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com:8443/services/T0/B0/s3cr3t?token=t0k"),
            "https://hooks.example.com:8443/…"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(redact_url("not a url"), "<invalid url>");
    }
}
