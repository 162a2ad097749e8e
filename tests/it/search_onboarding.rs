//! End to end through the real pieces: the sandbox plays Violet, signed sync webhooks go
//! to the daemon's intake, the planner and workers run the mirror's refreshes, the
//! mirror publishes to the change log, and the indexer makes the catalog searchable.

use crate::common;
use crate::search_support;

use std::collections::BTreeSet;
use std::time::Duration;

use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use common::TestApp;
use common::webhook::{Delivery, sync_body};
use search_support::{SHOWN, ids, search};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_onboarding_through_the_sandbox_the_catalog_is_searchable() {
    let merchants = [2001u64, 2002];
    let sandbox = Sandbox::start(
        SandboxConfig {
            seed: 5,
            merchants: merchants
                .iter()
                .map(|&id| MerchantSpec {
                    id,
                    name: format!("Merchant {id}"),
                    offers: 400,
                    collections: 4,
                })
                .collect(),
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("sandbox starts");
    let (_db, app) = TestApp::builder()
        .sandbox(&sandbox)
        .configure(|settings| {
            settings.violet.rate_limit_per_sec = 10_000;
            settings.violet.merchant_rate_limit_per_sec = 10_000;
            settings.search.poll_interval_ms = 100;
        })
        .spawn()
        .await;
    let base = app.url("");
    let webhooks = app.url("/webhooks/violet");

    for (i, merchant) in merchants.iter().enumerate() {
        let merchant = *merchant as i64;
        for (status, minute) in [("STARTED", 0), ("COMPLETED", 5)] {
            let at = format!("2026-01-01T10:0{minute}:00+0000");
            let delivery = Delivery::new(
                &format!("onboard-{merchant}-{status}"),
                &format!("PRODUCT_SYNC_{status}"),
                &sync_body(900 + i as i64, merchant, status, &at),
            )
            .entity(&(900 + i).to_string())
            .merchant(merchant);
            assert_eq!(delivery.send(&app.http, &webhooks).await.status(), 200);
        }
    }

    // The mirror fills through the refresh jobs; the index follows the change log.
    let mirrored = common::eventually(Duration::from_secs(90), || async {
        let published: i64 =
            sqlx::query_scalar("SELECT count(DISTINCT merchant_id) FROM change_log")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        published == merchants.len() as i64
    })
    .await;
    assert!(mirrored, "the refreshes never published both merchants");
    let expected: BTreeSet<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT o.offer_id {SHOWN}")))
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(
        expected.len() > 500,
        "most of the 800 sandbox offers are shown ({})",
        expected.len()
    );
    let indexed = common::eventually(Duration::from_secs(30), || async {
        let (_, body) = search(&app.http, &base, json!({ "limit": 0 })).await;
        body["estimatedTotalHits"] == json!(expected.len())
    })
    .await;
    assert!(indexed, "the index never held the mirrored catalog");
    let (_, body) = search(
        &app.http,
        &base,
        json!({ "limit": 1000, "attributesToRetrieve": ["id"] }),
    )
    .await;
    assert_eq!(ids(&body).into_iter().collect::<BTreeSet<_>>(), expected);

    // Offers are found by their own words, and per merchant.
    let samples: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT o.offer_id, o.name {SHOWN} ORDER BY o.offer_id LIMIT 5"
    )))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for (id, name) in samples {
        let (_, body) = search(
            &app.http,
            &base,
            json!({ "q": name, "matchingStrategy": "all", "limit": 1000, "attributesToRetrieve": ["id"] }),
        )
        .await;
        assert!(
            ids(&body).contains(&id),
            "`{name}` does not find offer {id}: {body}"
        );
    }
    for merchant in merchants {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) {SHOWN} AND o.merchant_id = {merchant}"
        )))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let (_, body) = search(
            &app.http,
            &base,
            json!({ "filter": format!("merchant_id = {merchant}"), "limit": 0 }),
        )
        .await;
        assert_eq!(body["estimatedTotalHits"], json!(count));
    }
    app.stop().await;
    sandbox.shutdown().await;
}
