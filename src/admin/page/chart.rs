//! The sync chart: one bar per finished run in time order (oldest left), its height
//! the run's duration, green when it completed, red when it failed, orange when it
//! stalled. Runs without a known duration (a FAILED without its STARTED, a stalled
//! run) are drawn as a short marker at the baseline, so failures always show. Each
//! bar has a tooltip with the merchant, kind, outcome, end time and duration.
//!
//! The axis scales to the runs drawn: its top is the longest run (at least 1 ms), so
//! runs of a few milliseconds fill the plot as well as runs of minutes do.

use maud::{Markup, html};

use super::html::{millis, time};
use crate::admin::store::SyncRun;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;
/// Height of the marker drawn for a run without a known duration.
const MARKER: f64 = 8.0;

/// A coordinate as the chart writes it: one decimal.
fn at(value: f64) -> String {
    format!("{value:.1}")
}

/// The chart of `runs` (newest first, as the store returns them). SVG elements are
/// closed explicitly (`{}`): inside HTML, SVG has no void elements.
pub fn render(runs: &[SyncRun]) -> Markup {
    if runs.is_empty() {
        return html! { p.muted #chart-empty { "No finished sync yet." } };
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
    let (x2, ty) = (WIDTH - RIGHT, HEIGHT - 10.0);
    let first = runs.first().and_then(|run| run.ended_at.or(run.started_at));
    let last = runs.last().and_then(|run| run.ended_at.or(run.started_at));

    html! {
        svg #sync-chart xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            width="100%" role="img" aria-label="sync durations and failures, oldest to newest" {
            @for step in 0..=2 {
                // Halves of a 1 ms axis are fractions: label them as such.
                @let value = max_ms as f64 * step as f64 / 2.0;
                @let y = baseline - plot_h * step as f64 / 2.0;
                line x1=(LEFT) x2=(x2) y1=(at(y)) y2=(at(y)) stroke="#dde3ea" {}
                text x=(LEFT - 6.0) y=(at(y + 4.0)) text-anchor="end" { (axis_label(value)) }
            }
            @for (i, run) in runs.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                @let height = match run.duration_ms {
                    Some(ms) => (plot_h * ms.max(0) as f64 / max_ms as f64).max(2.0),
                    None => MARKER,
                };
                rect class={ "run " (run.outcome) } data-run=(run.id) x=(at(x)) y=(at(baseline - height))
                    width=(at(bar_w)) height=(at(height)) fill=(color(&run.outcome))
                    fill-opacity=[run.duration_ms.is_none().then_some("0.55")] {
                    title { (tooltip(run)) }
                }
            }
            line x1=(LEFT) x2=(x2) y1=(baseline) y2=(baseline) stroke="#8c959f" {}
            text x=(LEFT) y=(ty) { (time(first)) }
            text x=(x2) y=(ty) text-anchor="end" { (time(last)) }
            text x=(LEFT + plot_w / 2.0) y=(ty) text-anchor="middle" {
                tspan fill="#2da44e" { "\u{25A0} completed" } "  "
                tspan fill="#cf222e" { "\u{25A0} failed" } "  "
                tspan fill="#d98a00" { "\u{25A0} stalled" } "  (" (runs.len()) " runs)"
            }
        }
    }
}

fn color(outcome: &str) -> &'static str {
    match outcome {
        "completed" => "#2da44e",
        "failed" => "#cf222e",
        _ => "#d98a00",
    }
}

/// A bar's tooltip: merchant, kind, outcome, end time and duration.
fn tooltip(run: &SyncRun) -> String {
    format!(
        "merchant {} · {} · {} · {} · {}",
        run.merchant_id,
        run.kind,
        run.outcome,
        time(run.ended_at.or(run.started_at)),
        run.duration_ms
            .map(millis)
            .unwrap_or_else(|| "duration unknown".into()),
    )
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

    fn render_string(runs: &[SyncRun]) -> String {
        render(runs).into_string()
    }

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
        let svg = render_string(&[
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
        let svg = render_string(&[run(2, "completed", Some(4)), run(1, "completed", Some(3))]);
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
        assert!(render_string(&[run(1, "completed", Some(3))]).contains(">1.5 ms</text>"));
    }

    #[test]
    fn no_runs_no_chart() {
        assert!(render_string(&[]).contains("chart-empty"));
    }
}
