//! The sync chart: one bar per finished run in time order (oldest left), its height
//! the run's duration, green when it completed, red when it failed, orange when it
//! stalled. Runs without a known duration (a FAILED without its STARTED, a stalled
//! run) are drawn as a short marker at the baseline, so failures always show. Each
//! bar has a tooltip with the merchant, kind, outcome, end time and duration.
//!
//! The axis scales to the runs drawn: its top is the longest run (at least 1 ms), so
//! runs of a few milliseconds fill the plot as well as runs of minutes do.

use std::fmt::Write;

use super::html::{escape, millis, time};
use crate::admin::store::SyncRun;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;
/// Height of the marker drawn for a run without a known duration.
const MARKER: f64 = 8.0;

/// The chart of `runs` (newest first, as the store returns them).
pub fn render(runs: &[SyncRun]) -> String {
    if runs.is_empty() {
        return "<p class=\"muted\" id=\"chart-empty\">No finished sync yet.</p>".into();
    }
    let runs: Vec<&SyncRun> = runs.iter().rev().collect();
    let max_ms = runs
        .iter()
        .filter_map(|run| run.duration_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / runs.len() as f64;
    let bar_w = (slot * 0.7).clamp(1.0, 28.0);
    let baseline = TOP + plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"sync-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
width=\"100%\" role=\"img\" aria-label=\"sync durations and failures, oldest to newest\">"
    );
    for step in 0..=2 {
        // Halves of a 1 ms axis are fractions: label them as such.
        let value = max_ms as f64 * step as f64 / 2.0;
        let y = baseline - plot_h * step as f64 / 2.0;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#dde3ea\"/>\
<text x=\"{lx}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>",
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6.0,
            ty = y + 4.0,
            label = escape(&axis_label(value)),
        );
    }
    for (i, run) in runs.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let color = match run.outcome.as_str() {
            "completed" => "#2da44e",
            "failed" => "#cf222e",
            _ => "#d98a00",
        };
        let height = match run.duration_ms {
            Some(ms) => (plot_h * ms.max(0) as f64 / max_ms as f64).max(2.0),
            None => MARKER,
        };
        let tooltip = format!(
            "merchant {} · {} · {} · {} · {}",
            run.merchant_id,
            run.kind,
            run.outcome,
            time(run.ended_at.or(run.started_at)),
            run.duration_ms
                .map(millis)
                .unwrap_or_else(|| "duration unknown".into()),
        );
        let _ = write!(
            svg,
            "<rect class=\"run {outcome}\" data-run=\"{id}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar_w:.1}\" height=\"{height:.1}\" \
fill=\"{color}\"{dash}><title>{tooltip}</title></rect>",
            outcome = escape(&run.outcome),
            id = run.id,
            y = baseline - height,
            dash = if run.duration_ms.is_none() {
                " fill-opacity=\"0.55\""
            } else {
                ""
            },
            tooltip = escape(&tooltip),
        );
    }
    let first = runs.first().and_then(|run| run.ended_at.or(run.started_at));
    let last = runs.last().and_then(|run| run.ended_at.or(run.started_at));
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{baseline}\" y2=\"{baseline}\" stroke=\"#8c959f\"/>\
<text x=\"{LEFT}\" y=\"{ty}\">{first}</text><text x=\"{x2}\" y=\"{ty}\" text-anchor=\"end\">{last}</text>\
<text x=\"{mid}\" y=\"{ty}\" text-anchor=\"middle\"><tspan fill=\"#2da44e\">\u{25A0} completed</tspan>  <tspan fill=\"#cf222e\">\u{25A0} failed</tspan>  \
<tspan fill=\"#d98a00\">\u{25A0} stalled</tspan>  ({n} runs)</text></svg>",
        x2 = WIDTH - RIGHT,
        ty = HEIGHT - 10.0,
        mid = LEFT + plot_w / 2.0,
        first = escape(&time(first)),
        last = escape(&time(last)),
        n = runs.len(),
    );
    svg
}

/// A gridline label: as [`millis`] writes durations, with the half of an odd number
/// of milliseconds below a second kept (`1.5 ms`, not `2 ms`).
fn axis_label(ms: f64) -> String {
    if ms < 1000.0 && ms.fract() != 0.0 {
        format!("{ms:.1} ms")
    } else {
        millis(ms.round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn run(id: i64, outcome: &str, duration_ms: Option<i64>) -> SyncRun {
        SyncRun {
            id,
            merchant_id: 7,
            kind: "products".into(),
            sync_id: None,
            started_at: None,
            ended_at: Some(Utc.timestamp_opt(1_700_000_000 + id, 0).unwrap()),
            outcome: outcome.into(),
            duration_ms,
            total_products: None,
            total_products_synced: None,
        }
    }

    #[test]
    fn one_bar_per_run_coloured_by_outcome() {
        let svg = render(&[
            run(3, "failed", None),
            run(2, "completed", Some(60_000)),
            run(1, "completed", Some(30_000)),
        ]);
        assert_eq!(svg.matches("class=\"run completed\"").count(), 2);
        assert_eq!(svg.matches("class=\"run failed\"").count(), 1);
        // oldest first: run 1 is drawn before run 3
        assert!(svg.find("data-run=\"1\"").unwrap() < svg.find("data-run=\"3\"").unwrap());
        // the longest run spans the whole plot height
        assert!(svg.contains(&format!("height=\"{:.1}\"", HEIGHT - TOP - BOTTOM)));
    }

    #[test]
    fn the_axis_scales_to_millisecond_runs() {
        // Runs of 3 and 4 ms: the axis tops at 4 ms (not 1 s), the 4 ms bar fills the
        // plot and the 3 ms one three quarters of it.
        let svg = render(&[run(2, "completed", Some(4)), run(1, "completed", Some(3))]);
        assert!(svg.contains(">4 ms</text>"), "{svg}");
        assert!(svg.contains(">2 ms</text>"), "{svg}");
        assert!(!svg.contains(">1.0 s</text>"), "{svg}");
        let plot = HEIGHT - TOP - BOTTOM;
        for share in [1.0, 0.75] {
            assert!(
                svg.contains(&format!("height=\"{:.1}\"", plot * share)),
                "a bar of {share} of the plot in {svg}"
            );
        }
        // An odd longest run keeps its half: 1.5 ms.
        assert!(render(&[run(1, "completed", Some(3))]).contains(">1.5 ms</text>"));
    }

    #[test]
    fn no_runs_no_chart() {
        assert!(render(&[]).contains("chart-empty"));
    }
}
