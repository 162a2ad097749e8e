//! The Violet client's test support: a seeded sandbox with one merchant, client
//! settings pointed at it with short delays, and reads of what it serves.

use std::collections::HashSet;
use std::time::Duration;

use catalog_mirror::config::{ConfigSource, Settings, VioletSettings};
use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use catalog_mirror::violet::VioletClient;

pub const MERCHANT: i64 = 1001;

pub async fn sandbox(offers: u64, token_ttl: Duration) -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            seed: 7,
            token_ttl,
            merchants: vec![MerchantSpec {
                id: MERCHANT as u64,
                name: "Acme Outfitters".into(),
                offers,
                collections: 5,
            }],
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("sandbox starts")
}

/// Defaults pointed at the sandbox, with small delays so failures are quick.
pub fn settings(sandbox: &Sandbox) -> VioletSettings {
    let mut violet = Settings::load(&ConfigSource::DefaultsOnly)
        .expect("defaults load")
        .violet;
    violet.base_url = sandbox.base_url();
    violet.max_retries = 3;
    violet.retry_base_ms = 10;
    violet.retry_max_ms = 50;
    violet.retry_after_max_secs = 5;
    violet.request_timeout_ms = 1_000;
    violet.connect_timeout_ms = 500;
    violet.rate_limit_per_sec = 10_000;
    violet.merchant_rate_limit_per_sec = 10_000;
    violet.max_concurrency = 16;
    violet.merchant_max_concurrency = 16;
    violet
}

pub fn client(settings: &VioletSettings) -> VioletClient {
    VioletClient::new(settings).expect("client builds")
}

pub fn sandbox_offer_ids(sandbox: &Sandbox) -> HashSet<i64> {
    sandbox
        .catalog()
        .offer_ids(MERCHANT as u64)
        .map(|id| id as i64)
        .collect()
}

pub fn first_offer_id(sandbox: &Sandbox) -> i64 {
    sandbox
        .catalog()
        .offer_ids(MERCHANT as u64)
        .next()
        .expect("the merchant has offers") as i64
}

/// Text that must never appear in an error: the configured secrets.
pub fn assert_no_secret(text: &str, settings: &VioletSettings) {
    assert!(
        !text.contains(settings.app_secret.expose()),
        "app secret leaked: {text}"
    );
    assert!(
        !text.contains(settings.password.expose()),
        "password leaked: {text}"
    );
    assert!(
        !text.contains("eyJ"),
        "something token-shaped leaked: {text}"
    );
}
