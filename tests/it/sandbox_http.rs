//! The sandbox API over real HTTP with reqwest: paging, exact offer counts and
//! bodies, catalog changes seen through the listing, auth and token expiry, the
//! other catalog endpoints, and bad parameters.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use catalog_mirror::sandbox::{MerchantSpec, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn start(offers: u64, token_ttl: Duration) -> Sandbox {
    let config = SandboxConfig {
        seed: 21,
        token_ttl,
        merchants: vec![
            MerchantSpec {
                id: 1001,
                name: "Acme Outfitters".into(),
                offers,
                collections: 5,
            },
            MerchantSpec {
                id: 1002,
                name: "Bluebird Beauty".into(),
                offers: 45,
                collections: 3,
            },
        ],
        ..SandboxConfig::default()
    };
    Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts")
}

/// A minimal Violet client: app headers plus a token from `POST /login`.
struct Api {
    base: String,
    http: reqwest::Client,
    token: String,
    refresh_token: String,
}

impl Api {
    async fn login(sb: &Sandbox) -> Api {
        let http = reqwest::Client::new();
        let base = sb.base_url();
        let r = app(http.post(format!("{base}/login")))
            .json(&json!({"username": "sandbox@example.com", "password": "sandbox-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let user: Value = r.json().await.unwrap();
        Api {
            base,
            http,
            token: user["token"].as_str().unwrap().to_string(),
            refresh_token: user["refresh_token"].as_str().unwrap().to_string(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        app(self.http.get(format!("{}{path}", self.base)))
            .header("X-Violet-Token", &self.token)
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// Every offer of a merchant, paging until `last`, checking the page invariants.
    async fn all_offers(&self, merchant: u64, size: u64) -> Vec<Value> {
        let mut out = Vec::new();
        for page in 1.. {
            let p = self.json(&format!("/catalog/offers/merchants/{merchant}?page={page}&size={size}&include=collections")).await;
            let content = p["content"].as_array().unwrap();
            assert_eq!(p["number"], page - 1);
            assert_eq!(p["first"], page == 1);
            assert_eq!(p["size"], size);
            assert_eq!(p["number_of_elements"], content.len());
            assert_eq!(p["empty"], content.is_empty());
            assert_eq!(
                (p["total_elements"].as_u64(), p["total_pages"].as_u64()),
                (Some(0), Some(0))
            );
            assert_eq!(p["pageable"]["page_number"], page - 1);
            out.extend(content.iter().cloned());
            if p["last"] == true {
                break;
            }
            assert_eq!(
                content.len() as u64,
                size,
                "page {page} is not last but not full"
            );
            assert!(page < 10_000, "never reached the last page");
        }
        out
    }
}

fn app(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.header("X-Violet-App-Id", "10000")
        .header("X-Violet-App-Secret", "sandbox-app-secret")
}

#[tokio::test]
async fn ten_thousand_offers_page_exactly_and_match_the_catalog() {
    let sb = start(10_000, Duration::from_secs(3600)).await;
    let api = Api::login(&sb).await;
    let offers = api.all_offers(1001, 100).await;
    assert_eq!(offers.len(), 10_000);
    let catalog = sb.catalog();
    let ids: Vec<u64> = offers.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, catalog.offer_ids(1001).collect::<Vec<_>>());
    for o in offers.iter().step_by(97) {
        assert_eq!(
            Some(o),
            catalog.offer_json(o["id"].as_u64().unwrap()).as_ref()
        );
    }
    // The 100th page is full and last; the one after it is empty and last.
    let p100 = api
        .json("/catalog/offers/merchants/1001?page=100&size=100")
        .await;
    assert_eq!(
        (p100["last"].as_bool(), p100["number_of_elements"].as_u64()),
        (Some(true), Some(100))
    );
    let p99 = api
        .json("/catalog/offers/merchants/1001?page=99&size=100")
        .await;
    assert_eq!(p99["last"], false);
    let beyond = api
        .json("/catalog/offers/merchants/1001?page=101&size=100")
        .await;
    assert_eq!(
        (beyond["last"].as_bool(), beyond["empty"].as_bool()),
        (Some(true), Some(true))
    );
    // A size that leaves a short last page.
    let small = api.all_offers(1002, 7).await;
    assert_eq!(small.len(), 45);
    let stats = sb.stats();
    assert_eq!(stats.logins, 1);
    assert!(stats.pages_served >= 100 + 7, "{stats:?}");
}

#[tokio::test]
async fn size_defaults_to_20_clamps_to_100_and_bad_params_are_400() {
    let sb = start(250, Duration::from_secs(3600)).await;
    let api = Api::login(&sb).await;
    let p = api.json("/catalog/offers/merchants/1001").await;
    assert_eq!(
        (p["size"].as_u64(), p["number_of_elements"].as_u64()),
        (Some(20), Some(20))
    );
    assert!(
        p["content"][0].get("collections").is_none(),
        "no include, no collections"
    );
    let p = api
        .json("/catalog/offers/merchants/1001?size=500&page=3")
        .await;
    assert_eq!(
        (
            p["size"].as_u64(),
            p["number_of_elements"].as_u64(),
            p["last"].as_bool()
        ),
        (Some(100), Some(50), Some(true))
    );
    for bad in [
        "page=0",
        "page=x",
        "size=-1",
        "date_last_modified:min=yesterday",
    ] {
        let r = api
            .get(&format!("/catalog/offers/merchants/1001?{bad}"))
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], 400, "{bad}");
    }
    assert_eq!(
        api.get("/catalog/offers/merchants/777").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/catalog/offers/merchants/abc").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get("/no/such/endpoint").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn advance_is_reflected_exactly_by_the_listing_and_the_date_filter() {
    let sb = start(3_000, Duration::from_secs(3600)).await;
    let api = Api::login(&sb).await;
    let before: BTreeSet<u64> = api
        .all_offers(1001, 100)
        .await
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    let newest_before = sb
        .catalog()
        .offer_ids(1001)
        .map(|id| {
            sb.catalog().offer_json(id).unwrap()["date_last_modified"]
                .as_str()
                .unwrap()
                .replace('Z', "+0000")
        })
        .max()
        .unwrap();

    let cs = sb.catalog().advance(1001);
    assert!(!cs.added.is_empty() && !cs.updated.is_empty() && !cs.removed.is_empty());
    let after = api.all_offers(1001, 100).await;
    let after_ids: BTreeSet<u64> = after.iter().map(|o| o["id"].as_u64().unwrap()).collect();
    let mut expected = before.clone();
    cs.removed
        .iter()
        .for_each(|id| assert!(expected.remove(id)));
    cs.added.iter().for_each(|id| assert!(expected.insert(*id)));
    assert_eq!(after_ids, expected);
    for o in &after {
        assert_eq!(
            Some(o),
            sb.catalog().offer_json(o["id"].as_u64().unwrap()).as_ref()
        );
    }
    let removed = cs.removed[0];
    assert_eq!(
        api.get(&format!("/catalog/offers/{removed}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let added = api.json(&format!("/catalog/offers/{}", cs.added[0])).await;
    assert_eq!(Some(added), sb.catalog().offer_json_bare(cs.added[0]));

    // Incremental pull: strictly newer than anything before the advance = added + updated.
    let since = urlencode(&newest_before);
    let mut changed = BTreeSet::new();
    for page in 1.. {
        let p = api
            .json(&format!(
                "/catalog/offers/merchants/1001?page={page}&size=100&date_last_modified:min={since}"
            ))
            .await;
        changed.extend(
            p["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_u64().unwrap()),
        );
        if p["last"] == true {
            break;
        }
    }
    let want: BTreeSet<u64> = cs.added.iter().chain(&cs.updated).copied().collect();
    assert!(want.is_subset(&changed), "the filter missed changed offers");
    for extra in changed.difference(&want) {
        // `:min` is inclusive: only the newest old offer(s), dated exactly at the bound, may join.
        let date = sb.catalog().offer_json(*extra).unwrap()["date_last_modified"]
            .as_str()
            .unwrap()
            .replace('Z', "+0000");
        assert_eq!(
            date, newest_before,
            "offer {extra} should not match the filter"
        );
    }
    let early = api
        .json(&format!(
            "/catalog/offers/merchants/1001?size=100&date_last_modified:max={}",
            urlencode("2000-01-01T00:00:00Z")
        ))
        .await;
    assert_eq!(
        (early["empty"].as_bool(), early["last"].as_bool()),
        (Some(true), Some(true))
    );
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn tokens_expire_with_error_code_11_and_refresh_works() {
    let sb = start(30, Duration::from_secs(2)).await;
    let mut api = Api::login(&sb).await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(api.token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!((now + 1..=now + 3).contains(&exp), "exp {exp}, now {now}");
    assert_eq!(api.get("/merchants/1001").await.status(), StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let r = api.get("/merchants/1001").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["status"].as_u64(), body["error_code"].as_u64()),
        (Some(401), Some(11))
    );
    assert_eq!(body["message"], "Token has expired");
    assert!(body.get("timestamp").is_some());

    let r = app(api.http.get(format!("{}/auth/token", api.base)))
        .header("X-Violet-Token", &api.refresh_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    api.token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.json("/merchants/1001").await,
        sb.catalog().merchant_json(1001).unwrap()
    );

    // Forced expiry (no waiting), then refresh again.
    sb.expire_tokens();
    let r = api.get("/merchants/1001").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], 11);
    let r = app(api.http.get(format!("{}/auth/token", api.base)))
        .header("X-Violet-Token", &api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "an access token is not a refresh token"
    );
    assert_ne!(r.json::<Value>().await.unwrap()["error_code"], 11);
    let stats = sb.stats();
    assert_eq!(
        (stats.logins, stats.refreshes, stats.expired_tokens),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn wrong_credentials_get_distinct_error_codes() {
    let sb = start(10, Duration::from_secs(3600)).await;
    let http = reqwest::Client::new();
    let base = sb.base_url();
    let login = |user: &str, pass: &str, secret: &str| {
        http.post(format!("{base}/login"))
            .header("X-Violet-App-Id", "10000")
            .header("X-Violet-App-Secret", secret)
            .json(&json!({"username": user, "password": pass}))
    };
    let r = login("sandbox@example.com", "wrong", "sandbox-app-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let wrong_password = r.json::<Value>().await.unwrap()["error_code"]
        .as_u64()
        .unwrap();
    let r = login("sandbox@example.com", "sandbox-password", "not-the-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let wrong_secret = r.json::<Value>().await.unwrap()["error_code"]
        .as_u64()
        .unwrap();
    assert!(wrong_password != 11 && wrong_secret != 11 && wrong_password != wrong_secret);

    let api = Api::login(&sb).await;
    let r = http
        .get(format!("{base}/merchants/1001"))
        .header("X-Violet-App-Id", "10000")
        .header("X-Violet-App-Secret", "nope")
        .header("X-Violet-Token", &api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "every call checks the app secret"
    );
    let r = app(http.get(format!("{base}/merchants/1001")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    let r = app(http.get(format!("{base}/merchants/1001")))
        .header("X-Violet-Token", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_ne!(r.json::<Value>().await.unwrap()["error_code"], 11);
}

#[tokio::test]
async fn collections_merchant_and_single_offer_endpoints() {
    let sb = start(400, Duration::from_secs(3600)).await;
    let api = Api::login(&sb).await;
    let catalog = sb.catalog();
    let p = api
        .json("/catalog/collections/merchants/1001?page=1&size=2")
        .await;
    assert_eq!(
        (p["total_elements"].as_u64(), p["total_pages"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(p["last"], false);
    let p3 = api
        .json("/catalog/collections/merchants/1001?page=3&size=2")
        .await;
    assert_eq!(
        (p3["last"].as_bool(), p3["number_of_elements"].as_u64()),
        (Some(true), Some(1))
    );
    let all = api
        .json("/catalog/collections/merchants/1001?size=100")
        .await;
    assert_eq!(
        all["content"].as_array().unwrap(),
        &catalog.collections(1001)
    );

    for col in catalog.collections(1001) {
        let cid = col["id"].as_u64().unwrap();
        let mut ids = Vec::new();
        for page in 1.. {
            let p = api
                .json(&format!(
                    "/catalog/collections/{cid}/offers?page={page}&size=50"
                ))
                .await;
            assert_eq!(
                p["total_elements"].as_u64(),
                Some(catalog.collection_offer_ids(cid).len() as u64)
            );
            ids.extend(
                p["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["id"].as_u64().unwrap()),
            );
            if p["last"] == true {
                break;
            }
        }
        assert_eq!(ids, catalog.collection_offer_ids(cid), "collection {cid}");
    }
    assert_eq!(
        api.get("/catalog/collections/100199999/offers")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let id = catalog.offer_ids(1001).nth(17).unwrap();
    assert_eq!(
        Some(api.json(&format!("/catalog/offers/{id}")).await),
        catalog.offer_json_bare(id)
    );
    assert_eq!(
        Some(
            api.json(&format!("/catalog/offers/{id}?include=collections"))
                .await
        ),
        catalog.offer_json(id)
    );
    assert_eq!(
        api.get("/catalog/offers/10019999999").await.status(),
        StatusCode::NOT_FOUND
    );
    let m = api.json("/merchants/1002").await;
    assert_eq!(m["merchant_name"], "Bluebird Beauty");
    for key in ["id", "merchant_name", "platform", "store_url", "status"] {
        assert!(m.get(key).is_some(), "merchant lacks {key}");
    }
    assert_eq!(
        api.get("/merchants/9").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_change_mix_is_read_set_and_checked_over_the_control_api() {
    let sb = start(1_000, Duration::from_secs(3600)).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}/_sandbox{path}", sb.addr());
    let mix: Value = http
        .get(url("/change-mix"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        mix,
        json!({"updated": 0.02, "removed": 0.01, "added": 0.01, "undated": 0.0})
    );
    let refused = http
        .put(url("/change-mix"))
        .json(&json!({"updated": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("updated must be a share between 0 and 1")
    );
    let unknown = http
        .put(url("/change-mix"))
        .json(&json!({"changed": 0.1}))
        .send()
        .await
        .unwrap();
    assert!(unknown.status().is_client_error());
    let set = http
        .put(url("/change-mix"))
        .json(&json!({"updated": 0.1, "removed": 0, "added": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let cs: Value = http
        .post(url("/merchants/1001/advance"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            cs["updated"].as_array().unwrap().len(),
            cs["added"].as_array().unwrap().len()
        ),
        (100, 0)
    );
    // A mix in the body applies to that one advance.
    let cs: Value = http
        .post(url("/merchants/1001/advance"))
        .json(&json!({"updated": 0.01, "removed": 0.0, "added": 0.0, "undated": 1.0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cs["updated"].as_array().unwrap().len(), 10);
    assert_eq!(sb.catalog().change_mix().updated, 0.1);
}
