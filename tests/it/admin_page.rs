//! The admin web page: its session cookie and forms over plain HTTP, then the whole
//! flow in headless Chromium (sign in, read the tables and the chart, resync a merchant
//! and see the job appear, retry a dead job, sign out), and a slow refresh followed on
//! the page as it reloads itself.

use crate::admin_support;
use crate::common;

use std::time::Duration;

use admin_support::cdp::Browser;
use admin_support::{
    ACME, BOLT, SLOW_MERCHANT, SLOW_OFFERS, SLOW_PAGE_SIZE, TOKEN, block_claims, hold_removals,
    page_html, seed, set_freshness, spawn, spawn_slow_refresh,
};
use common::TestApp;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_form(
    app: &TestApp,
    http: &reqwest::Client,
    path: &str,
    body: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .post(app.admin_url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// Signs in and returns the `name=value` of the session cookie.
async fn sign_in(app: &TestApp, http: &reqwest::Client) -> String {
    let response = post_form(app, http, "/ui/login", &format!("token={TOKEN}"), None).await;
    assert_eq!(response.status(), 303);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

async fn job_count(app: &TestApp, merchant_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE merchant_id = $1 AND kind LIKE 'refresh_%'")
        .bind(merchant_id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_scoped_and_the_forms_are_guarded() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    let http = no_redirects();

    // Without a session: the login form, never the data.
    let page = http.get(app.admin_url("/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"login\"") && !html.contains("Acme"),
        "{html}"
    );
    assert_eq!(
        http.get(app.admin_url("/")).send().await.unwrap().headers()[LOCATION],
        "/ui"
    );

    // A wrong token sets nothing.
    let refused = post_form(&app, &http, "/ui/login", "token=guess", None).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get(SET_COOKIE).is_none());
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("not the admin token")
    );

    // The right one: a redirect and an HttpOnly, SameSite=Strict cookie without the token in it.
    let response = post_form(&app, &http, "/ui/login", &format!("token={TOKEN}"), None).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/ui?done=login");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(!set_cookie.contains(TOKEN));
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let html = page_html(&app, &http, &cookie).await;
    assert!(html.contains("Acme") && html.contains("id=\"merchants\""));

    // The cookie opens the page only, never the API.
    let api = http
        .get(app.admin_url("/api/merchants"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    // A forged or tampered cookie is a login form again.
    let (value, mac) = cookie.split_once('.').unwrap();
    let forged = format!("{value}.{}", "0".repeat(mac.len()));
    let html = page_html(&app, &http, &forged).await;
    assert!(html.contains("id=\"login\"") && !html.contains("Acme"));

    // Forms need the session, and refuse another site's origin.
    let before = job_count(&app, BOLT).await;
    let response = post_form(
        &app,
        &http,
        "/ui/resync",
        &format!("merchant_id={BOLT}&kind=both"),
        None,
    )
    .await;
    assert_eq!(response.status(), 401);
    let cross = http
        .post(app.admin_url("/ui/resync"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(COOKIE, &cookie)
        .header("origin", "http://evil.example")
        .body(format!("merchant_id={BOLT}&kind=both"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert_eq!(
        job_count(&app, BOLT).await,
        before,
        "refused forms enqueue nothing"
    );

    // Bad form input is a 400 page that says why.
    for (body, expected) in [
        ("merchant_id=abc&kind=both", "merchant_id"),
        ("merchant_id=202&kind=all", "unknown kind"),
        ("kind=both", "choose a merchant"),
    ] {
        let response = post_form(&app, &http, "/ui/resync", body, Some(&cookie)).await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(response.text().await.unwrap().contains(expected), "{body}");
    }
    let response = post_form(&app, &http, "/ui/jobs/999999/retry", "", Some(&cookie)).await;
    assert_eq!(response.status(), 404);

    // A same-origin form with the session works: 303 back to the page.
    let response = http
        .post(app.admin_url("/ui/resync"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(COOKIE, &cookie)
        .header("origin", format!("http://{}", app.admin_addr))
        .body(format!("merchant_id={BOLT}&kind=products"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/ui?done=resync&count=1");
    assert_eq!(job_count(&app, BOLT).await, before + 1);

    // Sign out clears the cookie.
    let response = post_form(&app, &http, "/ui/logout", "", Some(&cookie)).await;
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let _ = sign_in(&app, &http).await;
    app.stop().await;
}

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_signs_in_resyncs_and_retries() {
    let (_db, app) = spawn().await;
    let seeded = seed(&app).await;
    // Keep workers off ACME's collection refreshes so the retried job stays visible as pending.
    block_claims(&app.pool, "refresh_collections", ACME).await;
    let browser = Browser::launch().await;
    let mut page = browser.page().await;

    page.goto(&app.admin_url("/ui")).await;
    assert!(
        page.wait_until("!!document.querySelector('form#login')", WAIT)
            .await,
        "login form shown"
    );
    assert_eq!(page.count("#merchants").await, 0);

    // A wrong token: an error, no cookie.
    page.type_into("#token", "not-it").await;
    page.click("form#login button[type=submit]").await;
    assert!(
        page.wait_until("!!document.querySelector('#error')", WAIT)
            .await
    );
    assert!(
        page.text("#error")
            .await
            .unwrap()
            .contains("not the admin token")
    );

    // The right token: the dashboard.
    page.type_into("#token", TOKEN).await;
    page.click("form#login button[type=submit]").await;
    assert!(
        page.wait_until("!!document.querySelector('#merchants')", WAIT)
            .await,
        "dashboard after sign-in"
    );
    assert_eq!(page.text("#notice").await.as_deref(), Some("Signed in."));
    assert_eq!(
        page.eval("document.cookie").await,
        "",
        "the session cookie is HttpOnly"
    );

    // The merchants table with both sync states per merchant.
    assert_eq!(
        page.text("tr[data-merchant='101'] td.products")
            .await
            .as_deref(),
        Some("failed")
    );
    assert_eq!(
        page.text("tr[data-merchant='101'] td.collections")
            .await
            .as_deref(),
        Some("idle")
    );
    assert_eq!(
        page.text("tr[data-merchant='202'] td.collections")
            .await
            .as_deref(),
        Some("syncing")
    );
    assert_eq!(page.count("#merchants tbody tr").await, 3);
    // The chart: one completed and one failed run, the completed one taller.
    assert_eq!(page.count("#sync-chart rect.run.completed").await, 1);
    assert_eq!(page.count("#sync-chart rect.run.failed").await, 1);
    let taller = page
        .eval("+document.querySelector('#sync-chart rect.run.completed').getAttribute('height') > +document.querySelector('#sync-chart rect.run.failed').getAttribute('height')")
        .await;
    assert_eq!(
        taller, true,
        "a 4-minute run is drawn taller than a 1-minute one"
    );
    // The dead job with its error and a retry button.
    let dead_row = format!("#dead-jobs tr[data-job='{}']", seeded.dead_job);
    assert!(
        page.text(&dead_row)
            .await
            .unwrap()
            .contains("violet answered 404")
    );

    // Resync BOLT's collections from its row: the job appears in the recent jobs.
    let bolt_job = "#recent-jobs tr[data-merchant='202'][data-kind='refresh_collections']";
    assert_eq!(page.count(bolt_job).await, 0);
    page.eval("document.querySelector(\"tr[data-merchant='202'] form.resync select\").value = 'collections'").await;
    page.click("tr[data-merchant='202'] .resync-button").await;
    assert!(
        page.wait_until(&format!("!!document.querySelector(\"{bolt_job}\")"), WAIT)
            .await,
        "the resync job is listed"
    );
    assert_eq!(
        page.text("#notice").await.as_deref(),
        Some("Resync requested: 1 refresh job(s) enqueued.")
    );
    assert_eq!(
        page.count("#recent-jobs tr[data-merchant='202'][data-kind='refresh_products']")
            .await,
        0
    );
    let (kind, mode): (String, String) = sqlx::query_as(
        "SELECT kind, payload->>'mode' FROM jobs WHERE merchant_id = $1 AND kind LIKE 'refresh_%'",
    )
    .bind(BOLT)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (kind.as_str(), mode.as_str()),
        ("refresh_collections", "full")
    );

    // Retry the dead job: it leaves the dead list and is pending again.
    page.click(&format!("{dead_row} .retry-button")).await;
    let retried =
        format!("!!document.querySelector('#notice') && !document.querySelector(\"{dead_row}\")");
    assert!(
        page.wait_until(&retried, WAIT).await,
        "the dead job left the dead list"
    );
    assert_eq!(
        page.text("#notice").await,
        Some(format!("Job {} is back in the queue.", seeded.dead_job))
    );
    let state = page
        .eval(&format!(
            "document.querySelector(\"#recent-jobs tr[data-job='{}']\").dataset.state",
            seeded.dead_job
        ))
        .await;
    assert_eq!(state, "pending");

    if let Some(path) = std::env::var_os("ADMIN_PAGE_SCREENSHOT") {
        page.screenshot(std::path::Path::new(&path)).await;
    }

    // Sign out: the login form again, also after a reload.
    page.click("#logout").await;
    assert!(
        page.wait_until("!!document.querySelector('form#login')", WAIT)
            .await
    );
    page.goto(&app.admin_url("/ui")).await;
    assert!(
        page.wait_until(
            "!!document.querySelector('form#login') && !document.querySelector('#merchants')",
            WAIT
        )
        .await
    );
    browser.close().await;
    app.stop().await;
}

/// The products row of the refreshes table, as numbers read from the page.
#[derive(Debug, Clone, PartialEq)]
struct PageProgress {
    running: bool,
    phase: String,
    pages: u64,
    staged: u64,
    expected: Option<u64>,
    waited_ms: u64,
    elapsed_ms: u64,
    remaining_ms: Option<u64>,
    staged_text: String,
}

/// Reads the slow merchant's products row; `None` while the page is (re)loading or
/// the row is not there.
async fn read_progress(page: &mut admin_support::cdp::Page) -> Option<PageProgress> {
    let script = format!(
        r##"(() => {{
            const row = document.querySelector("#refreshes tr[data-merchant='{SLOW_MERCHANT}'][data-kind='products']");
            if (document.readyState !== 'complete' || !row) return null;
            const cell = (name) => row.querySelector('td.' + name);
            const value = (name) => cell(name).dataset.value === '' ? null : Number(cell(name).dataset.value);
            return {{
                running: row.dataset.running === 'true',
                phase: row.querySelector('.badge').textContent,
                pages: value('pages'), staged: value('staged'), expected: value('expected'),
                waited_ms: value('waited'), elapsed_ms: value('elapsed'), remaining_ms: value('remaining'),
                staged_text: cell('staged').textContent,
            }};
        }})()"##
    );
    let value = page.try_eval(&script).await.ok()?;
    if value.is_null() {
        return None;
    }
    let number = |key: &str| value[key].as_u64();
    Some(PageProgress {
        running: value["running"].as_bool()?,
        phase: value["phase"].as_str()?.to_string(),
        pages: number("pages")?,
        staged: number("staged")?,
        expected: number("expected"),
        waited_ms: number("waited_ms")?,
        elapsed_ms: number("elapsed_ms")?,
        remaining_ms: number("remaining_ms"),
        staged_text: value["staged_text"].as_str()?.to_string(),
    })
}

/// Polls [`read_progress`] until `accept` takes what the page shows.
async fn progress_when(
    page: &mut admin_support::cdp::Page,
    timeout: Duration,
    accept: impl Fn(&PageProgress) -> bool,
) -> PageProgress {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Some(progress) = read_progress(page).await {
            if accept(&progress) {
                return progress;
            }
            last = Some(progress);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed the expected progress; last seen: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_a_slow_refresh_as_it_reloads_itself() {
    let slow = spawn_slow_refresh().await;
    let browser = Browser::launch().await;
    let mut page = browser.page().await;
    page.goto(&slow.app.admin_url("/ui")).await;
    page.type_into("#token", TOKEN).await;
    page.click("form#login button[type=submit]").await;
    assert!(
        page.wait_until("!!document.querySelector('#refreshes')", WAIT)
            .await,
        "the dashboard lists the refreshes"
    );
    // The first pass is listed as completed; with nothing running the page reloads
    // every 30 s.
    let first_pass = progress_when(&mut page, WAIT, |_| true).await;
    assert!(!first_pass.running);
    assert_eq!(first_pass.phase, "completed");
    assert_eq!(first_pass.staged, SLOW_OFFERS);
    assert_eq!(
        page.eval("document.querySelector('#reload').dataset.secs")
            .await,
        "30"
    );
    assert_eq!(
        page.eval("document.querySelector('meta[http-equiv=refresh]').content")
            .await,
        "30; url=/ui"
    );

    // A full refresh against the slow sandbox: the page shows it running.
    slow.resync_products().await;
    slow.wait_until_fetching(2).await;
    page.goto(&slow.app.admin_url("/ui")).await;
    let running = progress_when(&mut page, WAIT, |p| p.running).await;
    assert_eq!(running.phase, "fetching");
    assert_eq!(
        page.eval("document.querySelector('#reload').dataset.secs")
            .await,
        "3",
        "the page reloads often while a refresh runs"
    );
    assert!(running.pages >= 2, "{running:?}");
    assert_eq!(
        running.staged,
        running.pages * SLOW_PAGE_SIZE,
        "every page so far was full: {running:?}"
    );
    assert!(running.staged < SLOW_OFFERS, "{running:?}");
    assert_eq!(running.staged_text, format!("{} offers", running.staged));
    assert_eq!(
        running.expected,
        Some(SLOW_OFFERS),
        "sized from the last complete pass"
    );
    assert!(running.elapsed_ms > 0);
    assert!(
        running.remaining_ms.is_some_and(|ms| ms > 0),
        "an estimate while fetching: {running:?}"
    );
    // A picture of the page mid-refresh (ADMIN_PROGRESS_SCREENSHOT names the file).
    let path = std::env::var_os("ADMIN_PROGRESS_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("catalog-mirror-admin-progress.png"));
    page.screenshot(&path).await;
    eprintln!("screenshot of the refresh in progress: {}", path.display());
    // The page and the API tell the same story (the API, read after, may be further on).
    let api = slow.products_progress().await;
    assert!(
        api["pages_fetched"].as_u64().unwrap() >= running.pages,
        "{api}"
    );
    assert_eq!(api["expected"].as_u64(), running.expected);

    // No navigation from here: the meta refresh reloads the page and the numbers move.
    page.eval("window.notReloaded = true").await;
    let later = progress_when(&mut page, Duration::from_secs(20), |p| {
        p.pages > running.pages || !p.running
    })
    .await;
    assert_eq!(
        page.eval("window.notReloaded === undefined").await,
        true,
        "the page reloaded itself"
    );
    assert!(later.elapsed_ms > running.elapsed_ms, "{later:?}");

    // When it ends: completed, every offer staged, the rate-limit waits (the sandbox's
    // 429s with Retry-After: 1) counted.
    let done = progress_when(&mut page, Duration::from_secs(90), |p| !p.running).await;
    assert_eq!(done.phase, "completed", "{done:?}");
    assert_eq!(done.staged, SLOW_OFFERS);
    assert!(done.pages >= SLOW_OFFERS / SLOW_PAGE_SIZE);
    assert_eq!(done.remaining_ms, Some(0));
    assert!(
        done.waited_ms >= 1000,
        "at least one Retry-After second: {done:?}"
    );
    browser.close().await;
    slow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_removals_show_on_the_page_with_buttons_that_decide_them() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    hold_removals(&app).await;
    let http = no_redirects();
    let cookie = sign_in(&app, &http).await;
    let page = async |cookie: String| page_html(&app, &http, &cookie).await;
    let html = page(cookie.clone()).await;
    assert!(html.contains("2 removals held"), "{html}");
    let confirm = format!("/ui/merchants/{ACME}/removals/confirm");
    assert!(html.contains(&format!("action=\"{confirm}\"")), "{html}");

    let done = post_form(&app, &http, &confirm, "", Some(&cookie)).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/ui?done=confirmed&removed=2");
    let html = page(cookie.clone()).await;
    assert!(!html.contains("removals held"), "{html}");
    // Nothing is held any more: the page says so, with the status of the refusal.
    let again = post_form(&app, &http, &confirm, "", Some(&cookie)).await;
    assert_eq!(again.status(), 404);
    assert!(again.text().await.unwrap().contains("no held removals"));
    // Without a session the buttons do nothing.
    let refused = post_form(
        &app,
        &http,
        &format!("/ui/merchants/{ACME}/removals/discard"),
        "",
        None,
    )
    .await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_merchant_shows_its_last_full_pass_last_delta_and_watermark() {
    let (_db, app) = spawn().await;
    seed(&app).await;
    set_freshness(&app).await;
    let http = no_redirects();
    let cookie = sign_in(&app, &http).await;
    let html = page_html(&app, &http, &cookie).await;
    assert!(html.contains("Last full pass / delta"), "{html}");
    assert!(
        html.contains("title=\"watermark 2026-11-30 23:55:00; next products pass is full: a products sync failed\">2026-11-30 08:00:00 / 2026-12-01 09:30:00</td>"),
        "{html}"
    );
}
