//! The page's HTML, written out by hand: every dynamic value goes through [`escape`].

use std::fmt::Write;

use chrono::{DateTime, Utc};

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

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    layout_reloading(title, None, body)
}

/// A page that reloads itself every `reload_secs` (a meta refresh: no script), onto
/// `/ui` so a notice from a redirect is not shown again.
fn layout_reloading(title: &str, reload_secs: Option<u32>, body: &str) -> String {
    let reload = reload_secs
        .map(|secs| format!("<meta http-equiv=\"refresh\" content=\"{secs}; url=/ui\">"))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{reload}\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{} · catalog-mirror admin</title>\
<style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        &format!(
            "<main class=\"login\"><section><h2>{}</h2><p>{}</p><p><a href=\"/ui\">Back to the admin page</a></p></section></main>",
            escape(title),
            escape(text)
        ),
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
    let error = error
        .map(|text| format!("<p class=\"error\" id=\"error\">{}</p>", escape(text)))
        .unwrap_or_default();
    layout(
        "Sign in",
        &format!(
            "<main class=\"login\"><section><h2>catalog-mirror admin</h2>{error}\
<form id=\"login\" method=\"post\" action=\"/ui/login\">\
<label for=\"token\">Admin token</label>\
<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
<button type=\"submit\">Sign in</button></form>\
<p class=\"muted\">The token is <code>admin.token</code> from the daemon's configuration.</p></section></main>"
        ),
    )
}

pub fn dashboard(view: &View, notice: Option<&str>, error: Option<&str>) -> String {
    let mut body = String::new();
    let reload = match view.reload_secs {
        Some(secs) => format!(
            "<span id=\"reload\" data-secs=\"{secs}\">reloads every {secs} s</span> · <a href=\"/ui?reload=off\">pause</a>"
        ),
        None => {
            "<span id=\"reload\">reload paused</span> · <a href=\"/ui\">reload now and resume</a>"
                .into()
        }
    };
    let _ = write!(
        body,
        "<header><h1>catalog-mirror admin</h1><div class=\"meta\">generated {} · {reload} · \
<form class=\"inline\" method=\"post\" action=\"/ui/logout\"><button type=\"submit\" id=\"logout\">Sign out</button></form></div></header><main>",
        time(Some(view.generated_at))
    );
    if let Some(text) = notice {
        let _ = write!(
            body,
            "<p class=\"notice\" id=\"notice\">{}</p>",
            escape(text)
        );
    }
    if let Some(text) = error {
        let _ = write!(body, "<p class=\"error\" id=\"error\">{}</p>", escape(text));
    }
    job_tiles(&mut body, view);
    refreshes(&mut body, &view.refreshes);
    merchants(&mut body, view);
    let _ = write!(
        body,
        "<section><h2>Sync durations and failures</h2>{}</section>",
        chart::render(&view.runs)
    );
    dead_jobs(&mut body, &view.dead);
    recent_jobs(&mut body, &view.recent);
    body.push_str("</main>");
    layout_reloading("Dashboard", view.reload_secs, &body)
}

/// The refreshes running in this daemon and the latest finished ones. Each number
/// cell carries its raw value in `data-value` (milliseconds for times).
fn refreshes(body: &mut String, refreshes: &[ProgressSnapshot]) {
    body.push_str("<section><h2>Refreshes</h2>");
    if refreshes.is_empty() {
        body.push_str(
            "<p class=\"muted\" id=\"refreshes-empty\">No refresh has run in this daemon since it started.</p></section>",
        );
        return;
    }
    body.push_str(
        "<table id=\"refreshes\"><thead><tr><th class=\"num\">Merchant</th><th>Kind</th><th>Phase</th>\
<th class=\"num\">Pages fetched</th><th class=\"num\">Staged</th><th class=\"num\">Expected</th>\
<th class=\"num\">Done</th><th class=\"num\">Rate-limit wait</th><th class=\"num\">Elapsed</th>\
<th class=\"num\">Estimated left</th><th>Started</th></tr></thead><tbody>",
    );
    for p in refreshes {
        let optional = |value: Option<u64>, show: &dyn Fn(u64) -> String| match value {
            Some(v) => (v.to_string(), show(v)),
            None => (String::new(), "–".into()),
        };
        let (expected_value, expected) = optional(p.expected, &|n| format!("{n} {}", p.unit));
        let (left_value, left) = optional(p.estimated_remaining_ms, &|ms| millis(ms as i64));
        let percent = p
            .percent
            .map(|pc| format!("{pc:.0}%"))
            .unwrap_or_else(|| "–".into());
        let basis = p
            .estimate_basis
            .map(|basis| format!("sized from the {basis}"))
            .unwrap_or_else(|| "size unknown: no earlier pass and nothing in the mirror".into());
        let _ = write!(
            body,
            "<tr data-merchant=\"{merchant}\" data-kind=\"{kind}\" data-running=\"{running}\">\
<td class=\"num\">{merchant}</td><td>{kind} <span class=\"muted\">{mode}</span></td>\
<td><span class=\"badge s-{phase}\">{phase}</span></td>\
<td class=\"num pages\" data-value=\"{pages}\">{pages}</td>\
<td class=\"num staged\" data-value=\"{staged}\">{staged} {unit}</td>\
<td class=\"num expected\" data-value=\"{expected_value}\" title=\"{basis}\">{expected}</td>\
<td class=\"num percent\">{percent}</td>\
<td class=\"num waited\" data-value=\"{waited_ms}\">{waited}</td>\
<td class=\"num elapsed\" data-value=\"{elapsed_ms}\">{elapsed}</td>\
<td class=\"num remaining\" data-value=\"{left_value}\" title=\"{basis}\">{left}</td>\
<td>{started}</td></tr>",
            merchant = p.merchant_id,
            kind = escape(p.kind),
            mode = escape(p.mode),
            running = p.running,
            phase = escape(p.phase),
            pages = p.pages_fetched,
            staged = p.staged,
            unit = escape(p.unit),
            basis = escape(&basis),
            waited_ms = p.rate_limit_wait_ms,
            waited = millis(p.rate_limit_wait_ms as i64),
            elapsed_ms = p.elapsed_ms,
            elapsed = millis(p.elapsed_ms as i64),
            started = time(Some(p.started_at)),
        );
    }
    body.push_str("</tbody></table><p class=\"muted\">Estimates scale the time spent by what is left of the pass, sized from the last complete pass (or the mirror's counts), plus the last publish time. Violet's listing gives no totals.</p></section>");
}

fn job_tiles(body: &mut String, view: &View) {
    body.push_str("<section><h2>Jobs</h2><div class=\"tiles\" id=\"job-counts\">");
    for (state, count) in &view.counts {
        let _ = write!(
            body,
            "<div class=\"tile\" data-state=\"{0}\"><b>{count}</b><span class=\"badge s-{0}\">{0}</span></div>",
            escape(state)
        );
    }
    body.push_str("</div></section>");
}

fn merchants(body: &mut String, view: &View) {
    body.push_str(
        "<section><h2>Merchants</h2>\
<form class=\"inline\" method=\"post\" action=\"/ui/resync\" id=\"resync-all\"><input type=\"hidden\" name=\"all\" value=\"1\">\
<select name=\"kind\" aria-label=\"what to resync\"><option value=\"both\">products and collections</option>\
<option value=\"products\">products</option><option value=\"collections\">collections</option></select>\
<button type=\"submit\">Resync all merchants</button></form>",
    );
    if view.merchants.is_empty() {
        body.push_str("<p class=\"muted\" id=\"merchants-empty\">No merchant yet: they appear with their first webhook.</p></section>");
        return;
    }
    body.push_str(
        "<table id=\"merchants\"><thead><tr><th class=\"num\">ID</th><th>Name</th><th>Visible</th>\
<th>Products</th><th>Collections</th><th>Last sync</th><th>Last full pass / delta</th><th class=\"num\">Last duration</th>\
<th class=\"num\">Success</th><th class=\"num\">Failures in a row</th><th class=\"num\">Offers</th>\
<th class=\"num\">Catalog version</th><th class=\"num\">Index lag</th><th></th></tr></thead><tbody>",
    );
    for merchant in &view.merchants {
        merchant_row(body, merchant, view.index_reported);
    }
    body.push_str("</tbody></table></section>");
}

fn merchant_row(body: &mut String, m: &MerchantSummary, index_reported: bool) {
    let id = m.merchant_id;
    let visible = match (m.connected, m.enabled) {
        (true, true) => "yes".to_string(),
        (false, _) => "disconnected".to_string(),
        (true, false) => "disabled".to_string(),
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
    let failures = format!(
        "{} / {}",
        m.products.consecutive_failures, m.collections.consecutive_failures
    );
    let lag = match (m.index.pending_changes, index_reported) {
        (Some(pending), _) => pending.to_string(),
        (None, true) => "–".into(),
        (None, false) => "<span class=\"muted\" title=\"the search index does not report its progress yet\">n/a</span>".into(),
    };
    let _ = write!(
        body,
        "<tr data-merchant=\"{id}\"><td class=\"num\">{id}</td><td>{name}</td><td>{visible}</td>\
<td class=\"products\">{products}</td><td class=\"collections\">{collections}</td><td>{latest}</td>\
<td class=\"freshness\" title=\"{freshness_title}\">{full} / {delta}</td>\
<td class=\"num\" title=\"products / collections\">{duration}</td><td class=\"num\" title=\"products / collections\">{success}</td>\
<td class=\"num\" title=\"products / collections\">{failures}</td><td class=\"num\">{offers}</td><td class=\"num\">{version}</td>\
<td class=\"num\">{lag}</td><td><form class=\"inline resync\" method=\"post\" action=\"/ui/resync\">\
<input type=\"hidden\" name=\"merchant_id\" value=\"{id}\"><select name=\"kind\" aria-label=\"what to resync\">\
<option value=\"both\">both</option><option value=\"products\">products</option><option value=\"collections\">collections</option></select>\
<button type=\"submit\" class=\"resync-button\">Resync</button></form>{held}</td></tr>",
        held = held_removals(m),
        name = escape(m.name.as_deref().unwrap_or("")),
        visible = escape(&visible),
        products = state_badge(&m.products),
        collections = state_badge(&m.collections),
        latest = time(latest),
        full = time(m.freshness.last_full_refresh_at),
        delta = time(m.freshness.last_delta_refresh_at),
        freshness_title = escape(&freshness_title(m)),
        offers = m.offer_count,
        version = m.catalog_version,
    );
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
fn held_removals(m: &MerchantSummary) -> String {
    let Some(held) = m.held_removals else {
        return String::new();
    };
    let id = m.merchant_id;
    let reason = m.products.attention_reason.as_deref().unwrap_or("");
    format!(
        "<div class=\"held-removals\" title=\"{reason}\"><span class=\"s-needs_attention\">{held} removals held</span> \
<form class=\"inline\" method=\"post\" action=\"/ui/merchants/{id}/removals/confirm\"><button type=\"submit\">Confirm removals</button></form> \
<form class=\"inline\" method=\"post\" action=\"/ui/merchants/{id}/removals/discard\"><button type=\"submit\">Discard</button></form></div>",
        reason = escape(reason),
    )
}

fn state_badge(kind: &KindSummary) -> String {
    format!(
        "<span class=\"badge s-{0}\">{0}</span>",
        escape(&kind.state)
    )
}

fn rate(kind: &KindSummary) -> String {
    match kind.success_rate {
        Some(rate) => format!("{:.0}% of {}", rate * 100.0, kind.recent_runs),
        None => "–".into(),
    }
}

fn dead_jobs(body: &mut String, jobs: &[Job]) {
    body.push_str("<section><h2>Dead jobs</h2>");
    if jobs.is_empty() {
        body.push_str("<p class=\"muted\" id=\"dead-jobs-empty\">No dead job.</p></section>");
        return;
    }
    body.push_str(
        "<table id=\"dead-jobs\"><thead><tr><th class=\"num\">Job</th><th>Kind</th><th class=\"num\">Merchant</th>\
<th class=\"num\">Attempts</th><th>Last error</th><th>Died</th><th></th></tr></thead><tbody>",
    );
    for job in jobs {
        let _ = write!(
            body,
            "<tr data-job=\"{id}\"><td class=\"num\">{id}</td><td>{kind}</td><td class=\"num\">{merchant}</td>\
<td class=\"num\">{attempts}/{max}</td><td class=\"err\">{error}</td><td>{died}</td>\
<td><form class=\"inline\" method=\"post\" action=\"/ui/jobs/{id}/retry\"><button type=\"submit\" class=\"retry-button\">Retry</button></form></td></tr>",
            id = job.id,
            kind = escape(&job.kind),
            merchant = job.merchant_id.map(|id| id.to_string()).unwrap_or_default(),
            attempts = job.attempts,
            max = job.max_attempts,
            error = escape(job.last_error.as_deref().unwrap_or("")),
            died = time(job.finished_at),
        );
    }
    body.push_str("</tbody></table></section>");
}

fn recent_jobs(body: &mut String, jobs: &[Job]) {
    body.push_str("<section><h2>Recent jobs</h2>");
    if jobs.is_empty() {
        body.push_str("<p class=\"muted\" id=\"recent-jobs-empty\">No job yet.</p></section>");
        return;
    }
    body.push_str(
        "<table id=\"recent-jobs\"><thead><tr><th class=\"num\">Job</th><th>Kind</th><th class=\"num\">Merchant</th>\
<th>State</th><th class=\"num\">Attempts</th><th>Run at</th><th>Updated</th><th>Last error</th></tr></thead><tbody>",
    );
    for job in jobs {
        let state = state_name(job.state);
        let _ = write!(
            body,
            "<tr data-job=\"{id}\" data-kind=\"{kind}\" data-merchant=\"{merchant}\" data-state=\"{state}\"><td class=\"num\">{id}</td>\
<td>{kind}</td><td class=\"num\">{merchant}</td><td><span class=\"badge s-{state}\">{state}</span></td>\
<td class=\"num\">{attempts}/{max}</td><td>{run_at}</td><td>{updated}</td><td class=\"err\">{error}</td></tr>",
            id = job.id,
            kind = escape(&job.kind),
            merchant = job.merchant_id.map(|id| id.to_string()).unwrap_or_default(),
            attempts = job.attempts,
            max = job.max_attempts,
            run_at = time(Some(job.run_at)),
            updated = time(Some(job.updated_at)),
            error = escape(job.last_error.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table></section>");
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
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(12_340), "12.3 s");
        assert_eq!(millis(245_000), "4m 05s");
        assert_eq!(millis(3_720_000), "1h 02m");
    }
}
