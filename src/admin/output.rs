//! How the `admin` command prints each API answer as text: tables and short summaries
//! read from the JSON, so the command shows exactly what the API returned.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::table::Table;

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn at(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn duration(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_i64)
        .map(super::page::millis)
        .unwrap_or_else(|| "-".into())
}

fn rate(kind: &Value) -> String {
    match kind.get("success_rate").and_then(Value::as_f64) {
        Some(rate) => format!("{:.0}%/{}", rate * 100.0, text(kind, "recent_runs")),
        None => "-".into(),
    }
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A number of milliseconds in `value[key]` for people, or a dash.
fn ms(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_u64)
        .map(|ms| super::page::millis(ms as i64))
        .unwrap_or_else(|| "-".into())
}

/// The refresh progress table: one row per listing with a `progress` object.
fn progress_table(merchants: &[Value]) -> Table {
    let mut table = Table::new(&[
        ">MERCHANT",
        "KIND",
        "PHASE",
        ">PAGES",
        ">STAGED",
        ">EXPECTED",
        ">DONE",
        ">RATE-LIMIT WAIT",
        ">ELAPSED",
        ">EST. LEFT",
    ]);
    for m in merchants {
        for kind in ["products", "collections"] {
            let p = &m[kind]["progress"];
            if !p.is_object() {
                continue;
            }
            let unit = text(p, "unit");
            table.row(vec![
                text(m, "merchant_id"),
                format!("{kind} ({})", text(p, "mode")),
                text(p, "phase"),
                text(p, "pages_fetched"),
                format!("{} {unit}", text(p, "staged")),
                match p["expected"].as_u64() {
                    Some(n) => format!("{n} ({})", text(p, "estimate_basis")),
                    None => "unknown".into(),
                },
                match p["percent"].as_f64() {
                    Some(pc) => format!("{pc:.0}%"),
                    None => "-".into(),
                },
                ms(p, "rate_limit_wait_ms"),
                ms(p, "elapsed_ms"),
                ms(p, "estimated_remaining_ms"),
            ]);
        }
    }
    table
}

/// `admin status`.
pub fn status(response: &Value) -> String {
    let mut table = Table::new(&[
        ">ID",
        "NAME",
        "VISIBLE",
        "PRODUCTS",
        "COLLECTIONS",
        "LAST SYNC",
        ">DURATION P/C",
        ">SUCCESS P/C",
        ">FAILS P/C",
        ">OFFERS",
        ">VERSION",
        ">INDEX LAG",
    ]);
    for m in list(response, "merchants") {
        let (p, c) = (&m["products"], &m["collections"]);
        let last = [p, c]
            .iter()
            .filter_map(|kind| kind.get("last_sync").filter(|v| !v.is_null()))
            .map(|run| {
                if run["ended_at"].is_null() {
                    at(run, "started_at")
                } else {
                    at(run, "ended_at")
                }
            })
            .max()
            .unwrap_or_else(|| "-".into());
        let visible = match (m["connected"].as_bool(), m["enabled"].as_bool()) {
            (Some(false), _) => "disconnected",
            (_, Some(false)) => "disabled",
            _ => "yes",
        };
        let lag = match m["index"]["pending_changes"].as_i64() {
            Some(pending) => pending.to_string(),
            None => "n/a".into(),
        };
        table.row(vec![
            text(m, "merchant_id"),
            text(m, "name"),
            visible.into(),
            text(p, "state"),
            text(c, "state"),
            last,
            format!(
                "{} / {}",
                duration(p, "last_duration_ms"),
                duration(c, "last_duration_ms")
            ),
            format!("{} / {}", rate(p), rate(c)),
            format!(
                "{} / {}",
                text(p, "consecutive_failures"),
                text(c, "consecutive_failures")
            ),
            text(m, "offer_count"),
            text(m, "catalog_version"),
            lag,
        ]);
    }
    let mut out = String::new();
    if table.is_empty() {
        out.push_str("no merchant yet: they appear with their first webhook\n");
    } else {
        out.push_str(&table.to_string());
    }
    for m in list(response, "merchants") {
        if let Some(held) = m["held_removals"].as_i64() {
            let _ = writeln!(
                out,
                "\nmerchant {}: {held} removals held for agreement (see `catalog-mirror admin removals {}`)",
                text(m, "merchant_id"),
                text(m, "merchant_id"),
            );
        }
    }
    let progress = progress_table(list(response, "merchants"));
    if !progress.is_empty() {
        let _ = write!(
            out,
            "\nrefreshes (running, or the last one since the daemon started):\n{progress}"
        );
    }
    if response["index"]["reported"].as_bool() != Some(true) {
        out.push_str(
            "\nindex lag: n/a (the search index does not report its progress in this daemon)\n",
        );
    } else {
        let _ = writeln!(
            out,
            "\nindex: applied change {}",
            text(&response["index"], "applied_change_no")
        );
    }
    out
}

/// `admin merchant ID`.
pub fn merchant(response: &Value) -> String {
    let m = &response["merchant"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "merchant {} {}\n  connected {}  enabled {}  health {}\n  offers {} ({} on the storefront)  catalog version {}  last refresh {} ({})\n  last full pass {}  last delta {}  watermark {}{}\n  index: latest change {}, applied {}, pending {}",
        text(m, "merchant_id"),
        text(m, "name"),
        text(m, "connected"),
        text(m, "enabled"),
        text(m, "health"),
        text(m, "offer_count"),
        text(m, "storefront_offers"),
        text(m, "catalog_version"),
        at(m, "last_refresh_at"),
        duration(m, "last_refresh_ms"),
        at(&m["freshness"], "last_full_refresh_at"),
        at(&m["freshness"], "last_delta_refresh_at"),
        at(&m["freshness"], "offers_watermark"),
        m["freshness"]["full_refresh_due"]
            .as_str()
            .map(|why| format!("  next pass full: {why}"))
            .unwrap_or_default(),
        text(&m["index"], "latest_change_no"),
        text(&m["index"], "applied_change_no"),
        text(&m["index"], "pending_changes"),
    );
    let mut kinds = Table::new(&[
        "KIND",
        "STATE",
        "SINCE",
        ">FAILS",
        "LAST START",
        "LAST END",
        "OUTCOME",
        ">DURATION",
        ">SUCCESS",
    ]);
    for kind in ["products", "collections"] {
        let k = &m[kind];
        let last = &k["last_sync"];
        kinds.row(vec![
            kind.into(),
            text(k, "state"),
            at(k, "state_changed_at"),
            text(k, "consecutive_failures"),
            at(last, "started_at"),
            at(last, "ended_at"),
            text(last, "outcome"),
            duration(k, "last_duration_ms"),
            rate(k),
        ]);
    }
    let _ = write!(out, "\n{kinds}");
    let progress = progress_table(std::slice::from_ref(m));
    if !progress.is_empty() {
        let _ = write!(out, "\nrefresh progress:\n{progress}");
    }

    let mut runs = Table::new(&[
        ">RUN",
        "KIND",
        "SYNC ID",
        "STARTED",
        "ENDED",
        "OUTCOME",
        ">DURATION",
    ]);
    for run in list(response, "runs") {
        runs.row(vec![
            text(run, "id"),
            text(run, "kind"),
            text(run, "sync_id"),
            at(run, "started_at"),
            at(run, "ended_at"),
            text(run, "outcome"),
            duration(run, "duration_ms"),
        ]);
    }
    section(&mut out, "sync history", &runs);
    section(
        &mut out,
        "recent events",
        &events_table(list(response, "events")),
    );
    section(&mut out, "recent jobs", &jobs_table(list(response, "jobs")));
    out
}

fn section(out: &mut String, title: &str, table: &Table) {
    if table.is_empty() {
        let _ = writeln!(out, "\n{title}: none");
    } else {
        let _ = write!(out, "\n{title}:\n{table}");
    }
}

/// `admin resync`.
pub fn resync(response: &Value) -> String {
    let mut table = Table::new(&[">JOB", ">MERCHANT", "KIND"]);
    for job in list(response, "enqueued") {
        table.row(vec![
            text(job, "job_id"),
            text(job, "merchant_id"),
            text(job, "kind"),
        ]);
    }
    if table.is_empty() {
        return "no connected merchant: nothing enqueued\n".into();
    }
    format!(
        "enqueued {} full refresh job(s):\n{table}",
        text(response, "count")
    )
}

/// `admin reindex`.
pub fn reindex(response: &Value) -> String {
    format!(
        "reindex {}: {}\n",
        text(response, "status"),
        text(response, "message")
    )
}

fn jobs_table(jobs: &[Value]) -> Table {
    let mut table = Table::new(&[
        ">JOB",
        "KIND",
        ">MERCHANT",
        "STATE",
        ">ATTEMPTS",
        "RUN AT",
        "UPDATED",
        "LAST ERROR",
    ]);
    for job in jobs {
        table.row(vec![
            text(job, "id"),
            text(job, "kind"),
            text(job, "merchant_id"),
            text(job, "state"),
            format!("{}/{}", text(job, "attempts"), text(job, "max_attempts")),
            at(job, "run_at"),
            at(job, "updated_at"),
            job["last_error"].as_str().unwrap_or("").to_string(),
        ]);
    }
    table
}

/// `admin jobs`.
pub fn jobs(response: &Value) -> String {
    let counts = response["counts"]
        .as_object()
        .map(|counts| {
            counts
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default();
    let table = jobs_table(list(response, "jobs"));
    if table.is_empty() {
        return format!("{counts}\nno job matches\n");
    }
    format!("{counts}\n\n{table}")
}

/// `admin retry`.
pub fn retry(response: &Value) -> String {
    let job = &response["job"];
    format!(
        "job {} ({}, merchant {}) is now {}; runs at {}\n",
        text(job, "id"),
        text(job, "kind"),
        text(job, "merchant_id"),
        text(job, "state"),
        at(job, "run_at"),
    )
}

fn events_table(events: &[Value]) -> Table {
    let mut table = Table::new(&[
        ">ID",
        "EVENT ID",
        "TOPIC",
        ">MERCHANT",
        "STATUS",
        "RECEIVED",
        "DETAIL",
    ]);
    for event in events {
        table.row(vec![
            text(event, "id"),
            text(event, "event_id"),
            text(event, "topic"),
            text(event, "merchant_id"),
            text(event, "status"),
            at(event, "received_at"),
            event["detail"].as_str().unwrap_or("").to_string(),
        ]);
    }
    table
}

/// `admin events`.
pub fn events(response: &Value) -> String {
    let table = events_table(list(response, "events"));
    if table.is_empty() {
        return "no event matches\n".into();
    }
    table.to_string()
}

/// `admin replay`.
pub fn replay(response: &Value) -> String {
    let event = &response["event"];
    format!(
        "event {} ({} {}) replayed: {} -> {}\n",
        text(event, "id"),
        text(event, "topic"),
        text(event, "event_id"),
        text(response, "previous_status"),
        text(response, "status"),
    )
}

pub fn removals(response: &Value) -> String {
    let held = &response["held_removals"];
    if !held.is_null() {
        return format!(
            "merchant {}: {} removals held of {} live offers since {} (refresh {})\n{}\nconfirm: catalog-mirror admin removals {} --confirm; discard: --discard\n",
            text(held, "merchant_id"),
            text(held, "offers"),
            text(held, "live_offers"),
            at(held, "held_at"),
            text(held, "refresh_id"),
            text(held, "reason"),
            text(held, "merchant_id"),
        );
    }
    if response["confirmed"] == Value::Bool(true) {
        return format!(
            "merchant {}: held removals confirmed, {} offers removed\n",
            text(response, "merchant_id"),
            text(response, "removed")
        );
    }
    format!(
        "merchant {}: held removals discarded, nothing removed\n",
        text(response, "merchant_id")
    )
}
