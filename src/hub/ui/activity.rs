//! The Activity page (issue 17): the signed-in person's last requests
//! (`table#activity`, from [`crate::users::activity`]) and their requests
//! per UTC day for [`CHART_DAYS`] days as a server-rendered SVG bar chart
//! (`svg#activity-chart`). Only the signed-in user's own activity is read.
//!
//! The chart uses no `style` attribute (CSP `default-src 'self'`): bars,
//! grid and labels carry the classes `bar`, `grid`, `axis` and `label`,
//! styled by `static/style.css`; positions are SVG attributes. Each bar has
//! a `<title>` (date and count) that browsers show on hover.

use super::layout::{page as frame, Nav};
use super::{error_page, html, Ctx};
use crate::http::Response;
use crate::users::activity::{Entry, RECENT_CAP};
use maud::{html, Markup};

/// Days the chart shows, ending today (UTC).
pub const CHART_DAYS: usize = 14;

/// `GET /ui/activity`.
pub fn page(ctx: &Ctx) -> Response {
    let user = match ctx.signed_in() {
        Ok((_, u)) => u,
        Err(r) => return r,
    };
    let activity = ctx.hub.activity();
    let read = activity.recent(&user.name).and_then(|r| Ok((r, activity.per_day(&user.name, CHART_DAYS, crate::store::now_ms())?)));
    let (recent, days) = match read {
        Ok(both) => both,
        Err(e) => {
            log::warn!("ui: activity of '{}' cannot be read: {e}", user.name);
            return error_page(ctx, 503, "Activity unavailable", "The hub cannot read your activity from its store right now. Try again in a few seconds.")
                .with_header("Retry-After", "2");
        }
    };
    let body = html! {
        p.lead {
            "Your last " (RECENT_CAP) " requests to " code { (ctx.base) "/mcp" } " with your hub keys, and how many you made each day. "
            "Times are UTC; error texts have hub keys masked."
        }
        h2 { "Requests per day" }
        (chart(&days))
        h2 { "Recent requests" }
        @if recent.is_empty() {
            div.card #activity-empty {
                p { strong { "No requests yet." } }
                p {
                    "To make your first call: create a hub key on " a href="/ui/keys" { "Keys" }
                    ", paste the snippet from " a href="/ui/connect" { "Connect" }
                    " into Cursor, Claude Code or VS Code, and ask your assistant to use one of the hub's tools. "
                    "Each request then shows up here."
                }
            }
        } @else {
            (table(&recent))
        }
    };
    html(200, frame(ctx, Nav::Activity, "Activity", body))
}

/// `table#activity`: one row per entry, newest first.
fn table(entries: &[Entry]) -> Markup {
    html! {
        table #activity {
            thead {
                tr {
                    th { "Time (UTC)" }
                    th { "Method" }
                    th { "Tool / name" }
                    th { "Server" }
                    th { "Status" }
                    th { "Duration (ms)" }
                    th { "Error" }
                }
            }
            tbody {
                @for e in entries {
                    @let failed = e.status >= 400 || e.rpc_code.is_some();
                    tr class=(if failed { "failed" } else { "ok" }) {
                        td { time datetime=(crate::logging::rfc3339(e.at_ms)) { (time_of(e.at_ms)) } }
                        td { code { (e.method) } }
                        td { @if let Some(n) = &e.name { code { (n) } } @else { span.muted { "—" } } }
                        td { (e.server.as_deref().unwrap_or("—")) }
                        td {
                            span class=(if failed { "tag bad" } else { "tag ok" }) { (e.status) }
                            @if let Some(c) = e.rpc_code { " " span.tag.bad title="JSON-RPC error code" { (c) } }
                        }
                        td.num { (e.duration_ms) }
                        td { @if let Some(err) = &e.error { (err) } }
                    }
                }
            }
        }
    }
}

/// `2026-12-06 23:40:12` (UTC) of `ms` since the Unix epoch.
fn time_of(ms: u64) -> String {
    let mut t = crate::logging::rfc3339(ms);
    t.truncate(19);
    t.replacen('T', " ", 1)
}

/// The smallest "nice" step (1, 2 or 5 × 10^k) that is at least `x`.
fn nice_step(x: u64) -> u64 {
    let mut unit = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(s) = unit.checked_mul(m).filter(|s| *s >= x) {
                return s;
            }
        }
        match unit.checked_mul(10) {
            Some(u) => unit = u,
            None => return u64::MAX,
        }
    }
}

/// Chart geometry (SVG user units).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;

/// `svg#activity-chart`: one bar per day (oldest left), a grid with the
/// y-axis at 0, half and the top, dates (`MM-DD`) under every other bar
/// (today always), a `<title>` per bar.
pub fn chart(days: &[(String, u64)]) -> Markup {
    let max = days.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let step = nice_step(max.div_ceil(2).max(1));
    let top = step.saturating_mul(2);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / days.len().max(1) as f64;
    let bar_w = slot * 0.7;
    let y_of = |v: u64| TOP + plot_h - plot_h * (v as f64 / top as f64);
    let total: u64 = days.iter().map(|(_, n)| *n).sum();
    let last = days.len().saturating_sub(1);
    let caption = match (days.first(), days.last()) {
        (Some((from, _)), Some((to, _))) => format!("Requests per day (UTC), {from} to {to}: {total} in all"),
        _ => "Requests per day".to_string(),
    };
    html! {
        svg #activity-chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-labelledby="activity-chart-title" {
            title #activity-chart-title { (caption) }
            @for v in [0, step, top] {
                line.grid x1=(fmt(LEFT)) x2=(fmt(WIDTH - RIGHT)) y1=(fmt(y_of(v))) y2=(fmt(y_of(v))) {}
                text.axis x=(fmt(LEFT - 6.0)) y=(fmt(y_of(v) + 4.0)) text-anchor="end" { (v) }
            }
            text.axis x="12" y=(fmt(TOP + plot_h / 2.0)) text-anchor="middle" transform=(format!("rotate(-90 12 {})", fmt(TOP + plot_h / 2.0))) { "requests" }
            @for (i, (date, n)) in days.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                rect.bar x=(fmt(x)) y=(fmt(y_of(*n))) width=(fmt(bar_w)) height=(fmt(TOP + plot_h - y_of(*n))) data-date=(date) data-count=(n) {
                    title { (date) ": " (n) @if *n == 1 { " request" } @else { " requests" } }
                }
                @if (last - i).is_multiple_of(2) {
                    text.label x=(fmt(x + bar_w / 2.0)) y=(fmt(HEIGHT - BOTTOM + 16.0)) text-anchor="middle" { (date.get(5..).unwrap_or(date)) }
                }
            }
            text.axis x=(fmt(WIDTH - RIGHT)) y=(fmt(HEIGHT - 4.0)) text-anchor="end" { "day (UTC)" }
        }
    }
}

/// A coordinate with at most one decimal (`12`, `12.5`).
fn fmt(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_nice_and_cover_the_half_of_the_largest_day() {
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(3), 5);
        assert_eq!(nice_step(6), 10);
        assert_eq!(nice_step(60), 100);
        assert_eq!(nice_step(101), 200);
        assert_eq!(nice_step(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_chart_has_a_titled_bar_per_day_labels_and_no_style() {
        let days: Vec<(String, u64)> = (1..=14).map(|d| (format!("2026-12-{d:02}"), if d == 14 { 7 } else { d % 3 })).collect();
        let svg = chart(&days).into_string();
        assert_eq!(svg.matches("<rect").count(), 14, "{svg}");
        assert!(svg.contains("<title>2026-12-14: 7 requests</title>"), "{svg}");
        assert!(svg.contains("<title>2026-12-01: 1 request</title>"), "{svg}");
        assert!(svg.contains(">12-14</text>") && svg.contains(">12-12</text>") && !svg.contains(">12-13</text>"), "every other date, today's included: {svg}");
        assert!(svg.contains(">10</text>") && svg.contains(">5</text>") && svg.contains(">0</text>"), "y axis 0, 5, 10 for a top day of 7: {svg}");
        assert!(!svg.contains("style"), "no inline style (CSP): {svg}");
        assert!(svg.contains("id=\"activity-chart\"") && svg.contains("role=\"img\""));
        // The tallest bar reaches 7/10 of the plot; a zero day has no height.
        assert!(svg.contains("data-date=\"2026-12-03\" data-count=\"0\""), "{svg}");
        let empty = chart(&[("2026-12-06".into(), 0)]).into_string();
        assert!(empty.contains("height=\"0\"") && empty.contains(">2</text>"), "{empty}");
    }

    #[test]
    fn times_are_shown_as_utc_seconds() {
        assert_eq!(time_of(1_796_558_400_123), "2026-12-06 12:00:00");
    }
}
