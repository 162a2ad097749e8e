//! Fault knobs over real HTTP: 429 with Retry-After per merchant, scheduled and
//! random 5xx, a failing page, hangs, latency, truncated and malformed pages, and
//! driving all of it through the `/_sandbox/` control API.

use std::time::{Duration, Instant};

use catalog_mirror::sandbox::{Knobs, MerchantSpec, PageFault, RateLimit, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn start() -> (Sandbox, Api) {
    let config = SandboxConfig {
        seed: 3,
        merchants: vec![
            MerchantSpec {
                id: 1001,
                name: "Acme".into(),
                offers: 500,
                collections: 2,
            },
            MerchantSpec {
                id: 1002,
                name: "Bolt".into(),
                offers: 50,
                collections: 2,
            },
        ],
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts");
    let api = Api::login(&sb).await;
    (sb, api)
}

struct Api {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn login(sb: &Sandbox) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let base = sb.base_url();
        let user: Value = app(http.post(format!("{base}/login")))
            .json(&json!({"username": "sandbox@example.com", "password": "sandbox-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            base,
            http,
            token: user["token"].as_str().unwrap().to_string(),
        }
    }

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        app(self.http.get(format!("{}{path}", self.base))).header("X-Violet-Token", &self.token)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(path).send().await.unwrap()
    }
}

fn app(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.header("X-Violet-App-Id", "10000")
        .header("X-Violet-App-Secret", "sandbox-app-secret")
}

const PAGE: &str = "/catalog/offers/merchants/1001?page=1&size=100";

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_merchant() {
    let (sb, api) = start().await;
    sb.set_knobs(|k| {
        k.rate_limit = Some(RateLimit {
            requests_per_sec: 3,
            retry_after_secs: 7,
        })
    });
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let r = api.get("/merchants/1001").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["status"], 429);
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!((4..=5).contains(&limited), "{statuses:?}");
    assert_eq!(statuses[..3], [200, 200, 200]);
    assert_eq!(retry_after.as_deref(), Some("7"));
    assert_eq!(
        api.get("/merchants/1002").await.status(),
        StatusCode::OK,
        "another merchant has its own bucket"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        api.get("/merchants/1001").await.status(),
        StatusCode::OK,
        "the bucket refills"
    );
    assert_eq!(sb.stats().rate_limited as usize, limited);
    sb.set_knobs(|k| k.rate_limit = None);
    for _ in 0..10 {
        assert_eq!(api.get("/merchants/1001").await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn fail_next_5xx_counts_down_and_error_rate_applies() {
    let (sb, api) = start().await;
    sb.set_knobs(|k| k.fail_next_5xx = 2);
    assert_eq!(
        api.get(PAGE).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        api.get("/merchants/1001").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(api.get(PAGE).await.status(), StatusCode::OK);
    assert_eq!(sb.knobs().fail_next_5xx, 0);

    sb.set_knobs(|k| k.error_rate_5xx = 1.0);
    for _ in 0..5 {
        assert!(api.get("/merchants/1001").await.status().is_server_error());
    }
    sb.set_knobs(|k| k.error_rate_5xx = 0.3);
    let mut errors = 0;
    for _ in 0..100 {
        if api.get("/merchants/1001").await.status().is_server_error() {
            errors += 1;
        }
    }
    assert!((15..=45).contains(&errors), "{errors} of 100 at rate 0.3");
    assert_eq!(sb.stats().server_errors, 2 + 5 + errors);
}

#[tokio::test]
async fn fail_at_page_fails_that_page_for_that_merchant_only() {
    let (sb, api) = start().await;
    sb.set_knobs(|k| {
        k.fail_at_page = Some(PageFault {
            merchant_id: Some(1001),
            page: 3,
            times: Some(2),
        })
    });
    let page = |m: u64, p: u32| format!("/catalog/offers/merchants/{m}?page={p}&size=100");
    assert_eq!(api.get(&page(1001, 2)).await.status(), StatusCode::OK);
    assert_eq!(api.get(&page(1002, 3)).await.status(), StatusCode::OK);
    assert_eq!(
        api.get(&page(1001, 3)).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        api.get(&page(1001, 3)).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        api.get(&page(1001, 3)).await.status(),
        StatusCode::OK,
        "times ran out"
    );
    assert_eq!(sb.knobs().fail_at_page, None);

    sb.set_knobs(|k| {
        k.fail_at_page = Some(PageFault {
            merchant_id: None,
            page: 1,
            times: None,
        })
    });
    for _ in 0..3 {
        assert_eq!(
            api.get(PAGE).await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}

#[tokio::test]
async fn truncated_and_malformed_pages_then_healthy_ones() {
    let (sb, api) = start().await;
    let whole = api.get(PAGE).await.bytes().await.unwrap();
    sb.set_knobs(|k| {
        k.truncate_next = 1;
        k.malformed_next = 1;
    });
    let r = api.get(PAGE).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cut = r.bytes().await.unwrap();
    assert_eq!(cut.len(), whole.len() / 2);
    assert_eq!(&cut[..], &whole[..cut.len()]);
    assert!(
        serde_json::from_slice::<Value>(&cut).is_err(),
        "a truncated page must not parse"
    );

    let wrong: Value = api.get(PAGE).await.json().await.unwrap();
    assert!(wrong["content"].is_string(), "{wrong}");
    assert!(!wrong["last"].is_boolean());

    let ok: Value = api.get(PAGE).await.json().await.unwrap();
    assert_eq!(ok["content"].as_array().unwrap().len(), 100);
    let stats = sb.stats();
    assert_eq!((stats.truncated, stats.malformed), (1, 1));
    // Non-page endpoints never consume the page counters.
    sb.set_knobs(|k| k.truncate_next = 1);
    let m: Value = api.get("/merchants/1001").await.json().await.unwrap();
    assert_eq!(m["id"], 1001);
    assert_eq!(sb.knobs().truncate_next, 1);
}

#[tokio::test]
async fn hang_outlasts_the_client_timeout_and_latency_is_added() {
    let (sb, api) = start().await;
    sb.set_knobs(|k| k.hang_next = 1);
    let started = Instant::now();
    let err = api
        .request("/merchants/1001")
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(api.get("/merchants/1001").await.status(), StatusCode::OK);
    assert_eq!(sb.stats().hangs, 1);

    sb.set_knobs(|k| k.latency = Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(api.get("/merchants/1001").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Shutdown is not held up by a hanging request.
    sb.set_knobs(|k| k.hang_next = 1);
    let hanging = tokio::spawn(api.request("/merchants/1001").send());
    tokio::time::sleep(Duration::from_millis(400)).await;
    tokio::time::timeout(Duration::from_secs(5), sb.shutdown())
        .await
        .expect("shutdown waits for nothing");
    let _ = hanging.await;
}

#[tokio::test]
async fn control_api_drives_knobs_tokens_catalog_and_stats() {
    let (sb, api) = start().await;
    let control = format!("http://{}/_sandbox", sb.addr());
    let http = reqwest::Client::new();

    let info: Value = http
        .get(format!("{control}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["base_url"], sb.base_url());
    assert_eq!(info["merchants"], json!([1001, 1002]));

    let r = http
        .patch(format!("{control}/knobs"))
        .json(&json!({"fail_next_5xx": 1, "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        sb.knobs(),
        Knobs {
            fail_next_5xx: 1,
            latency: Duration::from_millis(5),
            ..Knobs::default()
        }
    );
    let r = http
        .patch(format!("{control}/knobs"))
        .json(&json!({"rate_limit": {"requests_per_sec": 9, "retry_after_secs": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let k = sb.knobs();
    assert_eq!(
        (k.fail_next_5xx, k.rate_limit.map(|r| r.requests_per_sec)),
        (1, Some(9)),
        "PATCH keeps other knobs"
    );
    let r = http
        .put(format!("{control}/knobs"))
        .json(&json!({"truncate_next": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        sb.knobs(),
        Knobs {
            truncate_next: 2,
            ..Knobs::default()
        },
        "PUT replaces"
    );
    for bad in [
        json!({"no_such_knob": 1}),
        json!({"error_rate_5xx": 3.0}),
        json!({"hang_next": "x"}),
    ] {
        let r = http
            .patch(format!("{control}/knobs"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        sb.knobs().truncate_next,
        2,
        "a refused patch changes nothing"
    );
    let got: Knobs = http
        .get(format!("{control}/knobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, sb.knobs());
    http.delete(format!("{control}/knobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(sb.knobs(), Knobs::default());

    assert_eq!(api.get("/merchants/1001").await.status(), StatusCode::OK);
    http.post(format!("{control}/tokens/expire"))
        .send()
        .await
        .unwrap();
    let r = api.get("/merchants/1001").await;
    assert_eq!(r.json::<Value>().await.unwrap()["error_code"], 11);

    let cs: Value = http
        .post(format!("{control}/merchants/1002/advance"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cs["generation"], 1);
    assert_eq!(sb.catalog().generation(1002), 1);
    let merchants: Value = http
        .get(format!("{control}/merchants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(merchants[1]["generation"], 1);
    assert_eq!(merchants[1]["offer_count"], sb.catalog().offer_count(1002));
    assert_eq!(
        http.post(format!("{control}/merchants/9/advance"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let stats: Value = http
        .get(format!("{control}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["logins"], 1);
    assert_eq!(stats["expired_tokens"], 1);
}
