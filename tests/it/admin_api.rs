//! The admin API against a running daemon and a real PostgreSQL: authentication on
//! every route, the merchant views, resync, reindex, jobs and retry, events and replay,
//! and 400s for bad input.

use crate::admin_support;
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use admin_support::{
    ACME, BOLT, GONE, TOKEN, block_claims, get, hold_removals, insert_job, post, seed, spawn,
};
use catalog_mirror::admin::{AdminState, IndexControl, router};
use catalog_mirror::lifecycle::{Planner, PlanningSettings};
use common::{TestApp, TestDb, eventually};
use reqwest::Method;
use serde_json::{Value, json};

/// Every admin API route, with a method and a path that would otherwise succeed.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/merchants"),
    ("GET", "/api/merchants/101"),
    ("POST", "/api/resync"),
    ("POST", "/api/reindex"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/1"),
    ("POST", "/api/jobs/1/retry"),
    ("GET", "/api/events"),
    ("GET", "/api/events/1"),
    ("POST", "/api/events/1/replay"),
    ("GET", "/api/merchants/101/removals"),
    ("POST", "/api/merchants/101/removals/confirm"),
    ("POST", "/api/merchants/101/removals/discard"),
];

async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = app.http.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        app.admin_url(path),
    );
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if method == "POST" {
        request = request.json(&json!({ "all": true }));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_missing_or_wrong_token() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for (method, path) in ROUTES {
        for auth in [
            None,
            Some(wrong.as_str()),
            Some("Bearer "),
            Some(basic.as_str()),
        ] {
            let (status, challenge, body) = raw(&app, method, path, auth).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
            assert_eq!(body["error"], "unauthorized", "{method} {path}");
            assert!(
                challenge.unwrap_or_default().starts_with("Bearer"),
                "{method} {path}"
            );
        }
    }
    // The refused requests changed nothing: no resync job was enqueued by them.
    let resyncs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'refresh_collections' AND state = 'pending'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(resyncs, 0);
    // The right token passes (same routes, read-only ones).
    assert_eq!(
        raw(
            &app,
            "GET",
            "/api/merchants",
            Some(&format!("Bearer {TOKEN}"))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        raw(
            &app,
            "GET",
            "/api/merchants",
            Some(&format!("bearer  {TOKEN} "))
        )
        .await
        .0,
        200
    );
    // Unknown admin routes need the token too, then answer a JSON 404.
    assert_eq!(raw(&app, "GET", "/api/nope", None).await.0, 401);
    let (status, body) = get(&app, "/api/nope").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_no_token_and_live_on_the_admin_listener() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let response = app
        .http
        .get(app.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("catalog_mirror_webhooks_total"), "{text}");
    // The admin API is not on the public listener.
    let public = app
        .http
        .get(app.url("/api/merchants"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_disables_the_admin_api_but_not_metrics() {
    let (_db, app) = TestApp::builder()
        .configure(admin_support::with_admin)
        .configure(|settings| settings.admin.token = Default::default())
        .spawn()
        .await;
    for (method, path) in ROUTES {
        for auth in [None, Some("Bearer "), Some("Bearer anything")] {
            let (status, _, body) = raw(&app, method, path, auth).await;
            assert_eq!(status, 403, "{method} {path}");
            assert_eq!(body["error"], "admin_disabled");
            assert!(
                body["message"].as_str().unwrap().contains("admin.token"),
                "{body}"
            );
        }
    }
    let page = app.http.get(app.admin_url("/ui")).send().await.unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("admin.token"));
    let login = app
        .http
        .post(app.admin_url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 403);
    assert!(login.headers().get("set-cookie").is_none());
    assert_eq!(
        app.http
            .get(app.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

fn merchant(body: &Value, id: i64) -> Value {
    body["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["merchant_id"] == id)
        .unwrap_or_else(|| panic!("merchant {id} listed in {body}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchants_show_states_history_offers_and_index_lag() {
    let (_db, app) = spawn().await;
    let seeded = seed(&app).await;
    let (status, body) = get(&app, "/api/merchants").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<i64> = body["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["merchant_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ACME, BOLT, GONE]);

    let acme = merchant(&body, ACME);
    assert_eq!(acme["name"], "Acme");
    assert_eq!(acme["visible"], true);
    let products = &acme["products"];
    assert_eq!(products["state"], "failed");
    assert_eq!(products["consecutive_failures"], 1);
    assert_eq!(products["last_sync"]["outcome"], "failed");
    assert_eq!(products["last_sync"]["sync_id"], "9002");
    assert!(
        products["last_sync"]["started_at"].is_string()
            && products["last_sync"]["ended_at"].is_string()
    );
    assert_eq!(products["last_duration_ms"], 60_000);
    assert_eq!(products["success_rate"], 0.5);
    assert_eq!(products["recent_runs"], 2);
    assert_eq!(acme["collections"]["state"], "idle");
    assert_eq!(acme["collections"]["success_rate"], Value::Null);
    assert_eq!(acme["offer_count"], 3, "the removed offer is not counted");
    assert_eq!(
        acme["storefront_offers"], 3,
        "the storefront_offers view: live, visible, published offers of a visible merchant"
    );
    assert_eq!(acme["catalog_version"], 2);
    assert_eq!(acme["index"]["latest_change_no"], seeded.acme_change_no);

    let bolt = merchant(&body, BOLT);
    assert_eq!(bolt["collections"]["state"], "syncing");
    assert_eq!(bolt["collections"]["current_sync_id"], "9100");
    assert_eq!(bolt["collections"]["last_sync"]["outcome"], "running");
    assert_eq!(bolt["collections"]["last_duration_ms"], Value::Null);
    assert_eq!(bolt["products"]["state"], "idle");
    assert_eq!(bolt["offer_count"], 0);
    assert_eq!(bolt["storefront_offers"], 0);
    assert_eq!(bolt["index"]["latest_change_no"], Value::Null);
    assert_eq!(merchant(&body, GONE)["visible"], false);

    // The daemon's indexer follows the change log: the lag drains to zero.
    assert_eq!(body["index"]["reported"], true);
    let caught_up = eventually(Duration::from_secs(20), || async {
        let (_, body) = get(&app, "/api/merchants").await;
        let acme = merchant(&body, ACME);
        acme["index"]["pending_changes"] == 0
            && acme["index"]["applied_change_no"] == seeded.acme_change_no
    })
    .await;
    assert!(
        caught_up,
        "index lag never reached 0: {}",
        get(&app, "/api/merchants").await.1
    );
    // A change the indexer has not seen yet counts as lag until it is applied.
    sqlx::query("INSERT INTO change_log (merchant_id, catalog_version, reason) VALUES ($1, 3, 'full_refresh')")
        .bind(ACME)
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, body) = get(&app, "/api/merchants").await;
    let lag = merchant(&body, ACME)["index"]["pending_changes"]
        .as_i64()
        .unwrap();
    assert!(lag <= 1, "{body}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            merchant(&get(&app, "/api/merchants").await.1, ACME)["index"]["pending_changes"] == 0
        })
        .await
    );
    assert_eq!(
        get(&app, "/api/merchants?limit=5").await.0,
        400,
        "no parameters on this route"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_merchant_has_its_history_events_and_jobs() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let (status, body) = get(&app, &format!("/api/merchants/{ACME}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["merchant"]["merchant_id"], ACME);
    assert_eq!(body["merchant"]["products"]["state"], "failed");
    let runs = body["runs"].as_array().unwrap();
    let summary: Vec<(String, String, i64)> = runs
        .iter()
        .map(|r| {
            (
                r["sync_id"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
                r["duration_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("9002".into(), "failed".into(), 60_000),
            ("9001".into(), "completed".into(), 240_000)
        ]
    );
    let topics: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        topics,
        vec![
            "PRODUCT_SYNC_FAILED",
            "PRODUCT_SYNC_STARTED",
            "PRODUCT_SYNC_COMPLETED",
            "PRODUCT_SYNC_STARTED",
            "MERCHANT_CONNECTED"
        ]
    );
    let kinds: Vec<&str> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"refresh_collections") && kinds.contains(&"sync_retry"),
        "{kinds:?}"
    );
    assert!(
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["merchant_id"] == ACME)
    );

    let (status, body) = get(&app, &format!("/api/merchants/{ACME}?runs=1&events=2")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["runs"].as_array().unwrap().len(),
            body["events"].as_array().unwrap().len()
        ),
        (1, 2)
    );

    let (status, body) = get(&app, "/api/merchants/999").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    assert!(body["message"].as_str().unwrap().contains("999"));
    for bad in [
        "/api/merchants/abc",
        "/api/merchants/0",
        "/api/merchants/-4",
        "/api/merchants/99999999999999999999",
        "/api/merchants/101?runs=0",
        "/api/merchants/101?runs=501",
        "/api/merchants/101?events=x",
        "/api/merchants/101?colour=red",
    ] {
        let (status, body) = get(&app, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    app.stop().await;
}

async fn pending_refresh(app: &TestApp, kind: &str, merchant_id: i64) -> Option<(i64, String)> {
    sqlx::query_as(
        "SELECT id, payload->>'mode' FROM jobs WHERE kind = $1 AND merchant_id = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(kind)
    .bind(merchant_id)
    .fetch_optional(&app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_enqueues_full_refreshes() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let (status, body) = post(
        &app,
        "/api/resync",
        Some(json!({ "merchant_id": BOLT, "kind": "collections" })),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["count"], 1);
    let job = &body["enqueued"][0];
    assert_eq!(
        (job["merchant_id"].as_i64(), job["kind"].as_str()),
        (Some(BOLT), Some("refresh_collections"))
    );
    let (id, mode) = pending_refresh(&app, "refresh_collections", BOLT)
        .await
        .expect("job stored");
    assert_eq!(
        (id, mode.as_str()),
        (job["job_id"].as_i64().unwrap(), "full")
    );
    assert!(
        pending_refresh(&app, "refresh_products", BOLT)
            .await
            .is_none(),
        "only collections were asked for"
    );

    // All merchants, both kinds by default: the disconnected one is left out.
    let (status, body) = post(&app, "/api/resync", Some(json!({ "all": true }))).await;
    assert_eq!(status, 202, "{body}");
    let mut pairs: Vec<(i64, String)> = body["enqueued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["merchant_id"].as_i64().unwrap(),
                j["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            (ACME, "refresh_collections".into()),
            (ACME, "refresh_products".into()),
            (BOLT, "refresh_collections".into()),
            (BOLT, "refresh_products".into()),
        ]
    );
    for (merchant_id, kind) in &pairs {
        assert_eq!(
            pending_refresh(&app, kind, *merchant_id).await.unwrap().1,
            "full"
        );
    }

    let (status, body) = post(&app, "/api/resync", Some(json!({ "merchant_id": GONE }))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (status, _) = post(&app, "/api/resync", Some(json!({ "merchant_id": 999 }))).await;
    assert_eq!(status, 404);
    for bad in [
        json!({ "merchant_id": ACME, "kind": "everything" }),
        json!({ "merchant_id": ACME, "all": true }),
        json!({}),
        json!({ "merchant_id": "acme" }),
        json!({ "merchant_id": -1 }),
        json!({ "merchant": ACME }),
        json!([1, 2]),
    ] {
        let (status, body) = post(&app, "/api/resync", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request");
    }
    let response = app
        .http
        .post(app.admin_url("/api/resync"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );
    let huge = app
        .http
        .post(app.admin_url("/api/resync"))
        .bearer_auth(TOKEN)
        .body(vec![b' '; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 400, "a huge body is refused");
    assert_eq!(
        huge.headers()
            .get("connection")
            .map(|value| value.as_bytes()),
        Some(&b"close"[..]),
        "the unread rest of the body ends the connection, and the answer says so"
    );
    let body: Value = huge.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");
    let (status, body) = get(&app, "/api/resync").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_rebuilds_aside_and_the_daemon_swaps_it_in() {
    let (_db, app) = TestApp::builder()
        .configure(admin_support::with_admin)
        .spawn()
        .await;
    let index_dir = app.settings.search.index_dir.clone();
    seed(&app).await;
    let current = || std::fs::read_to_string(index_dir.join("CURRENT")).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(20), || async { !current().is_empty() }).await,
        "the daemon built an index"
    );
    let before = current();
    let (status, body) = post(&app, "/api/reindex", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "started");
    let swapped = eventually(Duration::from_secs(30), || async { current() > before }).await;
    assert!(swapped, "CURRENT still names {before}");
    app.stop().await;
}

/// An index that reports a fixed watermark and refuses rebuilds (a real implementation
/// of the trait the search side plugs in, for lag arithmetic and the 409 path).
struct FixedIndex(Option<i64>);

impl IndexControl for FixedIndex {
    fn applied_change_no(&self) -> Option<i64> {
        self.0
    }
    fn request_rebuild(&self) -> Result<String, String> {
        Err("a rebuild is already running".into())
    }
}

/// The admin router alone on a free port, with `index` plugged in (or not).
async fn serve_admin(
    pool: sqlx::PgPool,
    index: Option<Arc<dyn IndexControl>>,
) -> (String, tokio::task::JoinHandle<()>) {
    let settings = admin_support::admin_settings("postgres://unused");
    let planner = Arc::new(Planner::new(PlanningSettings::new(
        &settings.jobs,
        &settings.sync,
    )));
    let mut state = AdminState::new(pool, planner, &settings);
    if let Some(index) = index {
        state = state.with_index(index);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    (base, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_lag_and_reindex_follow_what_the_index_reports() {
    let (_db, pool) = TestDb::migrated().await;
    sqlx::query("INSERT INTO merchants (merchant_id) VALUES (1), (2)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO change_log (merchant_id, catalog_version, reason) VALUES (1, 1, 'a'), (2, 1, 'b'), (1, 2, 'c'), (1, 3, 'd')")
        .execute(&pool)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let fetch = |base: String, path: &'static str, post: bool| {
        let http = http.clone();
        async move {
            let request = if post {
                http.post(format!("{base}{path}"))
            } else {
                http.get(format!("{base}{path}"))
            };
            let response = request.bearer_auth(TOKEN).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };

    // No index in this daemon: lag unknown, reindex unavailable.
    let (base, server) = serve_admin(pool.clone(), None).await;
    let (status, body) = fetch(base.clone(), "/api/reindex", true).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));
    assert!(
        body["message"].as_str().unwrap().contains("search index"),
        "{body}"
    );
    let (_, body) = fetch(base.clone(), "/api/merchants", false).await;
    assert_eq!(body["index"]["reported"], false);
    assert_eq!(body["merchants"][0]["index"]["latest_change_no"], 4);
    assert_eq!(
        body["merchants"][0]["index"]["pending_changes"],
        Value::Null
    );
    server.abort();

    // The index has applied changes up to 1: merchant 1 has 2 pending, merchant 2 one.
    let (base, server) = serve_admin(pool.clone(), Some(Arc::new(FixedIndex(Some(1))))).await;
    let (_, body) = fetch(base.clone(), "/api/merchants", false).await;
    assert_eq!(body["index"]["applied_change_no"], 1);
    assert_eq!(body["merchants"][0]["index"]["pending_changes"], 2);
    assert_eq!(body["merchants"][1]["index"]["pending_changes"], 1);
    let (status, body) = fetch(base.clone(), "/api/reindex", true).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    assert_eq!(body["message"], "a rebuild is already running");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_by_state_with_errors_and_retry() {
    let (_db, app) = spawn().await;
    let seeded = seed(&app).await;
    block_claims(&app.pool, "refresh_collections", ACME).await;
    let done = insert_job(&app.pool, "incremental", BOLT, "done", "").await;

    let (status, body) = get(&app, "/api/jobs?state=dead").await;
    assert_eq!(status, 200, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert!(jobs.iter().all(|j| j["state"] == "dead"), "{body}");
    let dead = jobs
        .iter()
        .find(|j| j["id"] == seeded.dead_job)
        .expect("the dead job is listed");
    assert_eq!(
        dead["last_error"],
        "violet answered 404 for collections of merchant 101"
    );
    assert!(body["counts"]["dead"].as_i64().unwrap() >= 1);
    for state in ["pending", "running", "done", "dead", "cancelled"] {
        assert!(body["counts"][state].is_i64(), "count of {state} in {body}");
    }

    let (_, body) = get(
        &app,
        &format!("/api/jobs?merchant={BOLT}&kind=incremental&state=DONE"),
    )
    .await;
    let ids: Vec<i64> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![done]);
    let (_, body) = get(&app, "/api/jobs?limit=1").await;
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    let (status, body) = get(&app, &format!("/api/jobs/{done}")).await;
    assert_eq!((status, body["job"]["state"].as_str()), (200, Some("done")));

    let (status, body) = post(&app, &format!("/api/jobs/{}/retry", seeded.dead_job), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["state"], "pending");
    assert_eq!(body["job"]["attempts"], 0);
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(seeded.dead_job)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "pending");
    let (_, body) = get(&app, "/api/jobs?state=dead").await;
    assert!(
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["id"] != seeded.dead_job)
    );

    let (status, body) = post(&app, &format!("/api/jobs/{}/retry", seeded.dead_job), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "a pending job cannot be retried: {body}"
    );
    assert!(body["message"].as_str().unwrap().contains("pending"));
    assert_eq!(post(&app, "/api/jobs/987654/retry", None).await.0, 404);
    assert_eq!(get(&app, "/api/jobs/987654").await.0, 404);
    for bad in [
        "/api/jobs?state=zombie",
        "/api/jobs?limit=0",
        "/api/jobs?limit=501",
        "/api/jobs?limit=-1",
        "/api/jobs?kind=bake",
        "/api/jobs?merchant=x",
        "/api/jobs?state=dead&state=done",
        "/api/jobs/x",
    ] {
        let (status, body) = get(&app, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(post(&app, "/api/jobs/zero/retry", None).await.0, 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_filtered_and_can_be_replayed() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let (status, body) = get(&app, &format!("/api/events?merchant={ACME}")).await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["merchant_id"] == ACME));
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let (_, body) = get(
        &app,
        &format!("/api/events?merchant={ACME}&before={}&limit=2", ids[0]),
    )
    .await;
    let page: Vec<i64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page, ids[1..3].to_vec(), "paging backwards from an id");

    let (_, body) = get(&app, "/api/events?topic=product_sync_failed").await;
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_id"], "ev-acme-failed-2");
    let (_, body) = get(&app, "/api/events?status=processed&limit=2").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    let (_, body) = get(&app, "/api/events?status=unprocessable").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    let (_, body) = get(&app, "/api/events?since=1h").await;
    assert_eq!(
        body["events"].as_array().unwrap().len(),
        9,
        "all were received just now"
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, body) = get(&app, &format!("/api/events?since={}", urlencode(&future))).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    for bad in [
        "/api/events?since=yesterday",
        "/api/events?limit=501",
        "/api/events?limit=0",
        "/api/events?status=lost",
        "/api/events?merchant=-1",
        "/api/events?topic=DROP%20TABLE",
        "/api/events?before=x",
        "/api/events?verbose=1",
        "/api/events/abc",
    ] {
        let (status, body) = get(&app, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request");
    }

    // One event with its body.
    let started_id: i64 =
        sqlx::query_scalar("SELECT id FROM webhook_events WHERE event_id = 'ev-bolt-started'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let (status, body) = get(&app, &format!("/api/events/{started_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["event"]["topic"], "COLLECTION_SYNC_STARTED");
    assert_eq!(body["body"]["id"], 9100);
    assert_eq!(get(&app, "/api/events/987654").await.0, 404);

    // Replay: the state this event created is lost, replaying it restores it.
    sqlx::query("DELETE FROM sync_state WHERE merchant_id = $1")
        .bind(BOLT)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM sync_runs WHERE merchant_id = $1")
        .bind(BOLT)
        .execute(&app.pool)
        .await
        .unwrap();
    let (_, body) = get(&app, &format!("/api/merchants/{BOLT}")).await;
    assert_eq!(body["merchant"]["collections"]["state"], "idle");
    let (status, body) = post(&app, &format!("/api/events/{started_id}/replay"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["previous_status"].as_str(), body["status"].as_str()),
        (Some("processed"), Some("processed"))
    );
    assert!(
        body["event"]["detail"]
            .as_str()
            .unwrap()
            .contains("replayed"),
        "{body}"
    );
    let (_, body) = get(&app, &format!("/api/merchants/{BOLT}")).await;
    assert_eq!(body["merchant"]["collections"]["state"], "syncing");
    assert_eq!(body["runs"][0]["sync_id"], "9100");
    let detail: String = sqlx::query_scalar("SELECT detail FROM webhook_events WHERE id = $1")
        .bind(started_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(detail.starts_with("replayed by an operator"));

    assert_eq!(post(&app, "/api/events/987654/replay", None).await.0, 404);
    assert_eq!(post(&app, "/api/events/0/replay", None).await.0, 400);
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_removals_are_shown_then_confirmed_or_discarded() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    hold_removals(&app).await;

    let (_, body) = get(&app, "/api/merchants").await;
    assert_eq!(merchant(&body, ACME)["held_removals"], 2);
    assert_eq!(merchant(&body, BOLT)["held_removals"], Value::Null);
    let (_, body) = get(&app, &format!("/api/merchants/{ACME}")).await;
    assert_eq!(body["held_removals"]["offers"], 2, "{body}");
    assert_eq!(body["merchant"]["products"]["state"], "needs_attention");
    assert!(
        body["merchant"]["products"]["attention_reason"]
            .as_str()
            .unwrap()
            .starts_with("removals held")
    );
    let (status, body) = get(&app, &format!("/api/merchants/{ACME}/removals")).await;
    assert_eq!(
        (status, body["held_removals"]["live_offers"].as_i64()),
        (200, Some(3))
    );
    let (status, body) = post(
        &app,
        &format!("/api/merchants/{BOLT}/removals/confirm"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );

    let (status, body) = post(
        &app,
        &format!("/api/merchants/{ACME}/removals/confirm"),
        None,
    )
    .await;
    assert_eq!((status, body["removed"].as_i64()), (200, Some(2)), "{body}");
    let live: Vec<i64> = sqlx::query_scalar(
        "SELECT offer_id FROM offers WHERE merchant_id = $1 AND removed_at IS NULL ORDER BY offer_id",
    )
    .bind(ACME)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(live, vec![5003]);
    let (reason, removed): (String, i32) = sqlx::query_as(
        "SELECT reason, removed FROM change_log WHERE merchant_id = $1 ORDER BY change_no DESC LIMIT 1",
    )
    .bind(ACME)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), removed), ("removals_confirmed", 2));
    let (_, body) = get(&app, &format!("/api/merchants/{ACME}")).await;
    assert_eq!(body["held_removals"], Value::Null);
    assert_eq!(body["merchant"]["products"]["state"], "completed");
    let (status, _) = get(&app, &format!("/api/merchants/{ACME}/removals")).await;
    assert_eq!(status, 404);

    // Held again, then discarded: nothing removed.
    sqlx::query("UPDATE offers SET removed_at = NULL, updated_at = now() - interval '1 minute' WHERE offer_id IN (5001, 5002)")
        .execute(&app.pool)
        .await
        .unwrap();
    hold_removals(&app).await;
    let (status, body) = post(
        &app,
        &format!("/api/merchants/{ACME}/removals/discard"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["discarded"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM offers WHERE merchant_id = $1 AND removed_at IS NULL",
    )
    .bind(ACME)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(live, 3);
}
