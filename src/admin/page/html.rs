//! The page's HTML, as maud templates: every dynamic value is escaped by maud unless
//! it is an already rendered [`Markup`].

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::View;
use super::chart;
use crate::admin::store::{KindSummary, MerchantSummary, state_name};
use crate::jobs::Job;
use crate::mirror::ProgressSnapshot;

const STYLE: &str = r#"
:root { --fg:#1d2430; --muted:#5f6b7a; --line:#dde3ea; --bg:#f6f8fa; --ok:#1a7f37; --bad:#c62828; --warn:#b26a00; --run:#0b5cad; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; justify-content:space-between; padding:12px 24px; background:#fff; border-bottom:1px solid var(--line); }
header h1 { font-size:18px; margin:0; }
header .meta { color:var(--muted); font-size:12px; }
main { padding:16px 24px 48px; max-width:1400px; }
section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:12px 16px; margin:16px 0; }
h2 { font-size:15px; margin:0 0 10px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.err { color:var(--bad); max-width:520px; overflow-wrap:anywhere; font-family:ui-monospace,monospace; font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#eef1f4; color:var(--muted); }
.s-completed, .s-done { background:#dcf5e3; color:var(--ok); }
.s-failed, .s-dead, .s-needs_attention { background:#fde2e2; color:var(--bad); }
.s-stalled, .s-cancelled { background:#fff0d6; color:var(--warn); }
.s-syncing, .s-running, .s-pending, .s-fetching, .s-publishing { background:#dceafe; color:var(--run); }
.tiles { display:flex; gap:12px; flex-wrap:wrap; }
.tile { border:1px solid var(--line); border-radius:6px; padding:6px 14px; min-width:96px; }
.tile b { display:block; font-size:20px; }
.tile span { color:var(--muted); font-size:12px; }
form.inline { display:inline-flex; gap:6px; margin:0; }
button { font:inherit; padding:3px 10px; border:1px solid #b9c2cc; border-radius:4px; background:#fff; cursor:pointer; }
button:hover { background:#eef3f8; }
select, input { font:inherit; padding:3px 6px; border:1px solid #b9c2cc; border-radius:4px; }
.notice { background:#dcf5e3; border:1px solid #a6dfb5; padding:8px 12px; border-radius:6px; }
.error { background:#fde2e2; border:1px solid #f0a9a9; padding:8px 12px; border-radius:6px; }
.muted { color:var(--muted); }
.login { max-width:380px; margin:80px auto; }
.login input { width:100%; margin:8px 0 12px; }
svg text { font:11px system-ui,sans-serif; fill:var(--muted); }
"#;

fn layout(title: &str, body: Markup) -> String {
    layout_reloading(title, None, body)
}

/// A page that reloads itself every `reload_secs` (a meta refresh: no script), onto
/// `/ui` so a notice from a redirect is not shown again.
fn layout_reloading(title: &str, reload_secs: Option<u32>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                @if let Some(secs) = reload_secs {
                    meta http-equiv="refresh" content={ (secs) "; url=/ui" };
                }
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · catalog-mirror admin" }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        html! {
            main.login { section {
                h2 { (title) }
                p { (text) }
                p { a href="/ui" { "Back to the admin page" } }
            } }
        },
    )
}

pub fn disabled() -> String {
    message(
        "Admin disabled",
        "The admin page and API are disabled because admin.token is empty. Set admin.token in the configuration \
         (or CATALOG_MIRROR_ADMIN__TOKEN in the environment) and restart the daemon.",
    )
}

pub fn login(error: Option<&str>) -> String {
    layout(
        "Sign in",
        html! {
            main.login { section {
                h2 { "catalog-mirror admin" }
                @if let Some(text) = error {
                    p.error #error { (text) }
                }
                form #login method="post" action="/ui/login" {
                    label for="token" { "Admin token" }
                    input #token name="token" type="password" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.muted { "The token is " code { "admin.token" } " from the daemon's configuration." }
            } }
        },
    )
}

pub fn dashboard(view: &View, notice: Option<&str>, error: Option<&str>) -> String {
    let body = html! {
        header {
            h1 { "catalog-mirror admin" }
            div.meta {
                "generated " (time(Some(view.generated_at))) " · "
                @match view.reload_secs {
                    Some(secs) => {
                        span #reload data-secs=(secs) { "reloads every " (secs) " s" }
                        " · " a href="/ui?reload=off" { "pause" }
                    }
                    None => {
                        span #reload { "reload paused" }
                        " · " a href="/ui" { "reload now and resume" }
                    }
                }
                " · "
                form.inline method="post" action="/ui/logout" {
                    button type="submit" #logout { "Sign out" }
                }
            }
        }
        main {
            @if let Some(text) = notice { p.notice #notice { (text) } }
            @if let Some(text) = error { p.error #error { (text) } }
            (job_tiles(view))
            (refreshes(&view.refreshes))
            (merchants(view))
            section {
                h2 { "Sync durations and failures" }
                (chart::render(&view.runs))
            }
            (dead_jobs(&view.dead))
            (recent_jobs(&view.recent))
        }
    };
    layout_reloading("Dashboard", view.reload_secs, body)
}

/// The refreshes running in this daemon and the latest finished ones. Each number
/// cell carries its raw value in `data-value` (milliseconds for times).
fn refreshes(refreshes: &[ProgressSnapshot]) -> Markup {
    html! { section {
        h2 { "Refreshes" }
        @if refreshes.is_empty() {
            p.muted #refreshes-empty { "No refresh has run in this daemon since it started." }
        } @else {
            table #refreshes {
                thead { tr {
                    th.num { "Merchant" } th { "Kind" } th { "Phase" }
                    th.num { "Pages fetched" } th.num { "Staged" } th.num { "Expected" }
                    th.num { "Done" } th.num { "Rate-limit wait" } th.num { "Elapsed" }
                    th.num { "Estimated left" } th { "Started" }
                } }
                tbody { @for p in refreshes { (refresh_row(p)) } }
            }
            p.muted { "Estimates scale the time spent by what is left of the pass, sized from the last complete pass (or the mirror's counts), plus the last publish time. Violet's listing gives no totals." }
        }
    } }
}

fn refresh_row(p: &ProgressSnapshot) -> Markup {
    let basis = p
        .estimate_basis
        .map(|basis| format!("sized from the {basis}"))
        .unwrap_or_else(|| "size unknown: no earlier pass and nothing in the mirror".into());
    let percent = p
        .percent
        .map(|pc| format!("{pc:.0}%"))
        .unwrap_or_else(|| "–".into());
    html! {
        tr data-merchant=(p.merchant_id) data-kind=(p.kind) data-running=(p.running) {
            td.num { (p.merchant_id) }
            td { (p.kind) " " span.muted { (p.mode) } }
            td { span class={ "badge s-" (p.phase) } { (p.phase) } }
            td.num.pages data-value=(p.pages_fetched) { (p.pages_fetched) }
            td.num.staged data-value=(p.staged) { (p.staged) " " (p.unit) }
            td.num.expected data-value=[p.expected] title=(basis) {
                @match p.expected { Some(n) => { (n) " " (p.unit) } None => "–" }
            }
            td.num.percent { (percent) }
            td.num.waited data-value=(p.rate_limit_wait_ms) { (millis(p.rate_limit_wait_ms as i64)) }
            td.num.elapsed data-value=(p.elapsed_ms) { (millis(p.elapsed_ms as i64)) }
            td.num.remaining data-value=[p.estimated_remaining_ms] title=(basis) {
                @match p.estimated_remaining_ms { Some(ms) => (millis(ms as i64)), None => "–" }
            }
            td { (time(Some(p.started_at))) }
        }
    }
}

fn job_tiles(view: &View) -> Markup {
    html! { section {
        h2 { "Jobs" }
        div.tiles #job-counts {
            @for (state, count) in &view.counts {
                div.tile data-state=(state) {
                    b { (count) }
                    span class={ "badge s-" (state) } { (state) }
                }
            }
        }
    } }
}

/// The kind chooser of a resync form.
fn resync_kinds(both: &str) -> Markup {
    html! {
        select name="kind" aria-label="what to resync" {
            option value="both" { (both) }
            option value="products" { "products" }
            option value="collections" { "collections" }
        }
    }
}

fn merchants(view: &View) -> Markup {
    html! { section {
        h2 { "Merchants" }
        form.inline method="post" action="/ui/resync" #resync-all {
            input type="hidden" name="all" value="1";
            (resync_kinds("products and collections"))
            button type="submit" { "Resync all merchants" }
        }
        @if view.merchants.is_empty() {
            p.muted #merchants-empty { "No merchant yet: they appear with their first webhook." }
        } @else {
            table #merchants {
                thead { tr {
                    th.num { "ID" } th { "Name" } th { "Visible" } th { "Products" } th { "Collections" }
                    th { "Last sync" } th { "Last full pass / delta" } th.num { "Last duration" }
                    th.num { "Success" } th.num { "Failures in a row" } th.num { "Offers" }
                    th.num { "Catalog version" } th.num { "Index lag" } th {}
                } }
                tbody { @for merchant in &view.merchants { (merchant_row(merchant, view.index_reported)) } }
            }
        }
    } }
}

fn merchant_row(m: &MerchantSummary, index_reported: bool) -> Markup {
    let id = m.merchant_id;
    let visible = match (m.connected, m.enabled) {
        (true, true) => "yes",
        (false, _) => "disconnected",
        (true, false) => "disabled",
    };
    let latest = [&m.products, &m.collections]
        .into_iter()
        .filter_map(|kind| kind.last_sync.as_ref())
        .filter_map(|run| run.ended_at.or(run.started_at))
        .max();
    let duration = [&m.products, &m.collections]
        .into_iter()
        .map(|kind| kind.last_duration_ms)
        .map(|ms| ms.map(millis).unwrap_or_else(|| "–".into()))
        .collect::<Vec<_>>()
        .join(" / ");
    let success = [&m.products, &m.collections]
        .into_iter()
        .map(rate)
        .collect::<Vec<_>>()
        .join(" / ");
    html! {
        tr data-merchant=(id) {
            td.num { (id) }
            td { (m.name.as_deref().unwrap_or("")) }
            td { (visible) }
            td.products { (state_badge(&m.products)) }
            td.collections { (state_badge(&m.collections)) }
            td { (time(latest)) }
            td.freshness title=(freshness_title(m)) {
                (time(m.freshness.last_full_refresh_at)) " / " (time(m.freshness.last_delta_refresh_at))
            }
            td.num title="products / collections" { (duration) }
            td.num title="products / collections" { (success) }
            td.num title="products / collections" {
                (m.products.consecutive_failures) " / " (m.collections.consecutive_failures)
            }
            td.num { (m.offer_count) }
            td.num { (m.catalog_version) }
            td.num {
                @match (m.index.pending_changes, index_reported) {
                    (Some(pending), _) => (pending),
                    (None, true) => "–",
                    (None, false) => span.muted title="the search index does not report its progress yet" { "n/a" },
                }
            }
            td {
                form.inline.resync method="post" action="/ui/resync" {
                    input type="hidden" name="merchant_id" value=(id);
                    (resync_kinds("both"))
                    button type="submit" .resync-button { "Resync" }
                }
                (held_removals(m))
            }
        }
    }
}

/// The watermark deltas read from, and why the next products pass is full if it is.
fn freshness_title(m: &MerchantSummary) -> String {
    let mut title = format!("watermark {}", time(m.freshness.offers_watermark));
    if let Some(why) = &m.freshness.full_refresh_due {
        title.push_str(&format!("; next products pass is full: {why}"));
    }
    title
}

/// Held removals of a merchant, with the buttons that confirm or discard them.
fn held_removals(m: &MerchantSummary) -> Markup {
    let Some(held) = m.held_removals else {
        return html! {};
    };
    let id = m.merchant_id;
    html! {
        div.held-removals title=(m.products.attention_reason.as_deref().unwrap_or("")) {
            span.s-needs_attention { (held) " removals held" }
            " "
            form.inline method="post" action={ "/ui/merchants/" (id) "/removals/confirm" } {
                button type="submit" { "Confirm removals" }
            }
            " "
            form.inline method="post" action={ "/ui/merchants/" (id) "/removals/discard" } {
                button type="submit" { "Discard" }
            }
        }
    }
}

fn state_badge(kind: &KindSummary) -> Markup {
    html! { span class={ "badge s-" (kind.state) } { (kind.state) } }
}

fn rate(kind: &KindSummary) -> String {
    match kind.success_rate {
        Some(rate) => format!("{:.0}% of {}", rate * 100.0, kind.recent_runs),
        None => "–".into(),
    }
}

fn dead_jobs(jobs: &[Job]) -> Markup {
    html! { section {
        h2 { "Dead jobs" }
        @if jobs.is_empty() {
            p.muted #dead-jobs-empty { "No dead job." }
        } @else {
            table #dead-jobs {
                thead { tr {
                    th.num { "Job" } th { "Kind" } th.num { "Merchant" } th.num { "Attempts" }
                    th { "Last error" } th { "Died" } th {}
                } }
                tbody { @for job in jobs {
                    tr data-job=(job.id) {
                        td.num { (job.id) }
                        td { (job.kind) }
                        td.num { @if let Some(merchant) = job.merchant_id { (merchant) } }
                        td.num { (job.attempts) "/" (job.max_attempts) }
                        td.err { (job.last_error.as_deref().unwrap_or("")) }
                        td { (time(job.finished_at)) }
                        td { form.inline method="post" action={ "/ui/jobs/" (job.id) "/retry" } {
                            button type="submit" .retry-button { "Retry" }
                        } }
                    }
                } }
            }
        }
    } }
}

fn recent_jobs(jobs: &[Job]) -> Markup {
    html! { section {
        h2 { "Recent jobs" }
        @if jobs.is_empty() {
            p.muted #recent-jobs-empty { "No job yet." }
        } @else {
            table #recent-jobs {
                thead { tr {
                    th.num { "Job" } th { "Kind" } th.num { "Merchant" } th { "State" }
                    th.num { "Attempts" } th { "Run at" } th { "Updated" } th { "Last error" }
                } }
                tbody { @for job in jobs {
                    @let state = state_name(job.state);
                    @let merchant = job.merchant_id.map(|id| id.to_string()).unwrap_or_default();
                    tr data-job=(job.id) data-kind=(job.kind) data-merchant=(merchant) data-state=(state) {
                        td.num { (job.id) }
                        td { (job.kind) }
                        td.num { (merchant) }
                        td { span class={ "badge s-" (state) } { (state) } }
                        td.num { (job.attempts) "/" (job.max_attempts) }
                        td { (time(Some(job.run_at))) }
                        td { (time(Some(job.updated_at))) }
                        td.err { (job.last_error.as_deref().unwrap_or("")) }
                    }
                } }
            }
        }
    } }
}

/// `2025-01-31 12:00:05` (UTC), or a dash.
pub fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "–".into())
}

/// A duration for people: `850 ms`, `12.3 s`, `4m 05s`, `1h 02m`.
pub fn millis(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let page = message("<b>x</b>", "'&' \"y\"");
        assert!(page.contains("<h2>&lt;b&gt;x&lt;/b&gt;</h2>"), "{page}");
        assert!(page.contains("<p>'&amp;' &quot;y&quot;</p>"), "{page}");
        let page = login(Some("<script>alert(1)</script>"));
        assert!(!page.contains("<script>"), "{page}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(12_340), "12.3 s");
        assert_eq!(millis(245_000), "4m 05s");
        assert_eq!(millis(3_720_000), "1h 02m");
    }
}
