//! The status page: containers by urgency, each with an inline SVG chart of its working
//! set, limit and forecast band. Plain HTML and SVG, no scripts, no build chain.

use std::fmt::Write as _;

use super::Snapshot;
use crate::model::Severity;
use crate::plot::{self, Band, Chart};
use crate::report::ContainerReport;
use crate::units::format_bytes;
use crate::vocab::rfc3339;

/// Containers drawn as cards with charts; the rest are listed in a table.
const CARDS: usize = 40;
const TABLE_ROWS: usize = 500;
/// The containers the page shows at most: a poll reports at least this many of
/// the most urgent (see `pipeline::Reported`).
pub const SHOWN: usize = CARDS + TABLE_ROWS;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn limit_text(r: &ContainerReport) -> String {
    match r.time_to_limit_seconds {
        None => "not on course to its limit".into(),
        Some(s) if s <= 0.0 => "at its limit".into(),
        Some(s) => format!(
            "limit in {}",
            crate::report::eta_text(
                s,
                r.time_to_limit_lower_seconds,
                r.time_to_limit_upper_seconds
            )
        ),
    }
}

fn badge(r: &ContainerReport) -> &'static str {
    match r.alert {
        Some(Severity::Critical) => r#"<span class="badge critical">critical</span>"#,
        Some(Severity::Warning) => r#"<span class="badge warning">warning</span>"#,
        _ => r#"<span class="badge ok">ok</span>"#,
    }
}

/// Renders the whole page.
pub fn render(snapshot: &Snapshot) -> String {
    let mut html = String::with_capacity(64 * 1024);
    html.push_str(r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="15"><title>headroom</title><style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .3rem}.meta{color:#666;margin-bottom:1rem}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;margin:0 0 .8rem;max-width:960px}
.card h2{font-size:1rem;margin:.1rem 0 .3rem;font-weight:600}.facts{color:#444;font-size:.9rem;margin-bottom:.3rem}
.badge{display:inline-block;border-radius:3px;padding:0 .4rem;font-size:.8rem;margin-right:.4rem;color:#fff}
.critical{background:#cb181d}.warning{background:#d98c00}.ok{background:#41ab5d}
.stale{background:#fee;border:1px solid #c00;padding:.4rem;margin-bottom:1rem}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:.15rem .6rem;text-align:left;border-bottom:1px solid #eee}
</style></head><body><h1>headroom</h1>"#);
    let at = snapshot
        .evaluated_at
        .map_or("no forecast yet".into(), rfc3339);
    let alerts = snapshot
        .reports
        .iter()
        .filter(|r| r.alert.is_some())
        .count();
    let _ = write!(
        html,
        r#"<div class="meta">{} containers tracked · {alerts} alerting · forecasts as of {at}</div>"#,
        snapshot.containers.max(snapshot.reports.len())
    );
    if snapshot.stale || (snapshot.last_success.is_none() && snapshot.last_error.is_some()) {
        let _ = write!(
            html,
            r#"<div class="stale">Forecasts are stale: {}</div>"#,
            escape(
                snapshot
                    .last_error
                    .as_deref()
                    .unwrap_or("Prometheus unreachable")
            )
        );
    }
    for r in snapshot.reports.iter().take(CARDS) {
        card(&mut html, snapshot, r);
    }
    recent_kills(&mut html, snapshot);
    other_containers(&mut html, snapshot);
    html.push_str("</body></html>");
    html
}

/// One container worth a card: its facts, its pod, and its chart.
fn card(html: &mut String, snapshot: &Snapshot, r: &ContainerReport) {
    let title = format!("{}/{}/{}", r.namespace, r.pod, r.container);
    let _ = write!(
        html,
        r#"<div class="card"><h2>{}{}</h2>"#,
        badge(r),
        escape(&title)
    );
    let _ = write!(
        html,
        r#"<div class="facts">{} of {}{} · growth {} · {} · {}{}</div>"#,
        format_bytes(r.working_set_bytes),
        r.limit_bytes.map_or("no limit".into(), format_bytes),
        r.use_ratio
            .map_or(String::new(), |u| format!(" ({:.0}%)", u * 100.0)),
        r.growth_text().unwrap_or_else(|| "-".into()),
        escape(&limit_text(r)),
        serde_json::to_value(r.pattern)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        r.onset.as_ref().map_or(String::new(), |o| format!(
            " since {}",
            o.clock_at(r.evaluated_at.0)
        )),
    );
    // The pod's other containers, each against its own limit.
    let siblings: Vec<String> = snapshot
        .reports
        .iter()
        .filter(|o| o.namespace == r.namespace && o.pod == r.pod && o.container != r.container)
        .map(|o| {
            format!(
                "{}{} {} of {}",
                escape(&o.container),
                if o.sidecar { " (sidecar)" } else { "" },
                format_bytes(o.working_set_bytes),
                o.limit_bytes.map_or("no limit".into(), format_bytes)
            )
        })
        .collect();
    if !siblings.is_empty() || r.sidecar || !r.changes.is_empty() {
        let mut line = String::new();
        if r.sidecar {
            line.push_str("sidecar · ");
        }
        if !siblings.is_empty() {
            line.push_str(&format!("same pod: {}", siblings.join(", ")));
        }
        if let Some(change) = r.changes.first() {
            line.push_str(&format!(" · growth began {}", escape(&change.text)));
        }
        let _ = write!(
            html,
            r#"<div class="facts">{}</div>"#,
            line.trim_start_matches(" · ")
        );
    }
    if let Some(history) = snapshot.histories.get(&r.key()) {
        html.push_str(&chart(snapshot, r, history));
    }
    html.push_str("</div>");
}

/// The chart of a card: the history in runs split at restarts, the limit, and the
/// forecast band.
fn chart(
    snapshot: &Snapshot,
    r: &ContainerReport,
    history: &crate::plot::ContainerHistory,
) -> String {
    let bands = match (
        r.time_to_limit_seconds,
        r.time_to_limit_lower_seconds,
        snapshot.evaluated_at,
    ) {
        (Some(eta), Some(lower), Some(at)) if eta > 0.0 => vec![Band {
            at,
            level_bytes: history.trend.map_or(r.working_set_bytes, |t| {
                t.level_bytes + t.peak_offset_bytes + t.cycle_now_bytes
            }),
            eta_seconds: eta,
            lower_seconds: lower,
            upper_seconds: r.time_to_limit_upper_seconds,
        }],
        _ => vec![],
    };
    // Split the samples into runs at segment starts (restarts).
    let mut runs: Vec<Vec<(i64, f64)>> = vec![Vec::new()];
    let mut starts = history.segment_starts.iter().skip(1).peekable();
    for &(t, v) in &history.samples {
        if starts.peek().is_some_and(|s| t >= **s) {
            starts.next();
            runs.push(Vec::new());
        }
        runs.last_mut().expect("one run").push((t, v));
    }
    let chart = Chart {
        title: "",
        series: runs,
        limit_bytes: r.limit_bytes,
        alerts: vec![],
        bands,
        width: 900.0,
        height: 180.0,
    };
    plot::render(&chart)
}

/// The most recent OOM kills, newest first.
fn recent_kills(html: &mut String, snapshot: &Snapshot) {
    if !snapshot.oom_kills.is_empty() {
        html.push_str("<h2>Recent OOM kills</h2><ul>");
        for k in snapshot.oom_kills.iter().rev().take(20) {
            let _ = write!(
                html,
                "<li>{} — {}</li>",
                escape(&k.at.to_string()),
                escape(&k.sentence)
            );
        }
        html.push_str("</ul>");
    }
}

/// Containers past the cards, as table rows.
fn other_containers(html: &mut String, snapshot: &Snapshot) {
    if snapshot.reports.len() > CARDS {
        html.push_str("<h2>Other containers</h2><table><tr><th>container</th><th>working set</th><th>limit</th><th>growth</th><th>forecast</th></tr>");
        for r in snapshot.reports.iter().skip(CARDS).take(TABLE_ROWS) {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&format!("{}/{}/{}", r.namespace, r.pod, r.container)),
                format_bytes(r.working_set_bytes),
                r.limit_bytes.map_or("no limit".into(), format_bytes),
                r.growth_bytes_per_second
                    .map_or("-".into(), |g| format!("{}/h", format_bytes(g * 3600.0))),
                escape(&limit_text(r)),
            );
        }
        html.push_str("</table>");
    }
}
