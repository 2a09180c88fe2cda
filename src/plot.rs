//! SVG charts of one container: working set, limit, the forecast band, and the periods
//! an alert was firing. Plain SVG text, no scripts: for `backtest --plot` and the
//! status page.

use std::fmt::Write as _;

use crate::model::{Severity, Trend};
use crate::store::Tracked;
use crate::units::format_bytes;
use crate::vocab::TimestampMs;

/// One container's recent history for charts: samples (downsampled, peaks kept) and
/// the fitted trend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerHistory {
    /// (ms, bytes), every segment in the lookback, in time order.
    pub samples: Vec<(TimestampMs, f64)>,
    /// Where each segment begins (ms).
    pub segment_starts: Vec<TimestampMs>,
    pub trend: Option<Trend>,
}

/// The most points a chart's history keeps.
pub const HISTORY_POINTS: usize = 360;

/// A container's recent history for charts, at most [`HISTORY_POINTS`] points (each
/// the highest sample of its stretch, so peaks survive), with the trend last fitted.
pub fn history(tracked: &Tracked, trend: Option<Trend>) -> ContainerHistory {
    let total = tracked.sample_count();
    let per_point = total.div_ceil(HISTORY_POINTS).max(1);
    let mut samples = Vec::with_capacity(total / per_point + tracked.segments.len());
    let mut segment_starts = Vec::new();
    for segment in &tracked.segments {
        if let Some(start) = segment.start() {
            segment_starts.push(start);
        }
        for chunk in segment.samples.to_vec().chunks(per_point) {
            let peak = chunk
                .iter()
                .max_by(|a, b| a.bytes.total_cmp(&b.bytes))
                .expect("chunks are not empty");
            samples.push((chunk[chunk.len() - 1].at, peak.bytes));
        }
    }
    ContainerHistory {
        samples,
        segment_starts,
        trend,
    }
}

/// A forecast drawn as a band from `at` (level) to the limit between the interval's
/// ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub at: i64,
    pub level_bytes: f64,
    pub eta_seconds: f64,
    pub lower_seconds: f64,
    pub upper_seconds: Option<f64>,
}

/// What one chart shows.
#[derive(Debug, Clone, Default)]
pub struct Chart<'a> {
    pub title: &'a str,
    /// (ms, bytes), in time order; several runs for several segments.
    pub series: Vec<Vec<(i64, f64)>>,
    pub limit_bytes: Option<f64>,
    /// (start ms, end ms, severity) of firing periods.
    pub alerts: Vec<(i64, i64, Severity)>,
    pub bands: Vec<Band>,
    pub width: f64,
    pub height: f64,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders a chart as an `<svg>` element.
pub fn render(chart: &Chart<'_>) -> String {
    let (w, h) = (chart.width.max(200.0), chart.height.max(100.0));
    let (left, right, top, bottom) = (70.0, 10.0, 22.0, 22.0);
    let points = chart.series.iter().flatten();
    let mut t_min = points.clone().map(|p| p.0).min().unwrap_or(0);
    let mut t_max = points.clone().map(|p| p.0).max().unwrap_or(1);
    for b in &chart.bands {
        let far = b
            .upper_seconds
            .unwrap_or(b.eta_seconds * 1.5)
            .min(b.eta_seconds * 3.0);
        t_max = t_max.max(b.at + (far * 1000.0) as i64);
    }
    if t_max <= t_min {
        t_min -= 1;
        t_max += 1;
    }
    let mut y_max = points.clone().map(|p| p.1).fold(0.0f64, f64::max);
    if let Some(limit) = chart.limit_bytes {
        y_max = y_max.max(limit);
    }
    let y_max = if y_max > 0.0 { y_max * 1.08 } else { 1.0 };
    let x = |t: i64| left + (t - t_min) as f64 / (t_max - t_min) as f64 * (w - left - right);
    let y = |v: f64| top + (1.0 - v / y_max) * (h - top - bottom);

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{left}" y="14" font-weight="bold">{}</text>"#,
        escape(chart.title)
    );
    for (start, end, severity) in &chart.alerts {
        let color = match severity {
            Severity::Critical => "#f8c4c4",
            _ => "#fbe7b5",
        };
        let (x0, x1) = (x(*start), x(*end).max(x(*start) + 1.0));
        let _ = write!(
            svg,
            r#"<rect class="alert-{}" x="{x0:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
            severity.as_str(),
            x1 - x0,
            h - top - bottom
        );
    }
    for frac in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let v = y_max / 1.08 * frac;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#666">{}</text>"##,
            w - right,
            y(v),
            y(v),
            left - 4.0,
            y(v) + 4.0,
            format_bytes(v)
        );
    }
    for band in &chart.bands {
        let Some(limit) = chart.limit_bytes else {
            continue;
        };
        let x0 = x(band.at);
        let xs = |s: f64| x(band.at + (s * 1000.0) as i64).min(w - right);
        let upper = band.upper_seconds.map_or(w - right, xs);
        let _ = write!(
            svg,
            r##"<polygon class="forecast-band" points="{x0:.1},{:.1} {:.1},{:.1} {upper:.1},{:.1}" fill="#9ecae1" fill-opacity="0.45"/>"##,
            y(band.level_bytes),
            xs(band.lower_seconds),
            y(limit),
            y(limit)
        );
        let _ = write!(
            svg,
            r##"<line x1="{x0:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#3182bd" stroke-dasharray="4 2"/>"##,
            y(band.level_bytes),
            xs(band.eta_seconds),
            y(limit)
        );
    }
    for run in &chart.series {
        if run.is_empty() {
            continue;
        }
        let mut path = String::new();
        for (i, (t, v)) in run.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(*t),
                y(*v)
            );
        }
        let _ = write!(
            svg,
            r##"<path class="working-set" d="{path}" fill="none" stroke="#08519c" stroke-width="1.3"/>"##
        );
    }
    if let Some(limit) = chart.limit_bytes {
        let _ = write!(
            svg,
            r##"<line class="limit" x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#cb181d" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#cb181d">limit {}</text>"##,
            w - right,
            y(limit),
            y(limit),
            w - right,
            y(limit) - 3.0,
            format_bytes(limit)
        );
    }
    let axis = |t: i64| {
        crate::vocab::rfc3339(t)
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string()
    };
    let _ = write!(
        svg,
        r##"<text x="{left}" y="{:.1}" fill="#666">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#666">{}</text>"##,
        h - 6.0,
        axis(t_min),
        w - right,
        h - 6.0,
        axis(t_max)
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_series_limit_alert_and_band() {
        let chart = Chart {
            title: "prod/p/istio-proxy <sidecar>",
            series: vec![vec![(0, 10.0), (60_000, 20.0), (120_000, 30.0)]],
            limit_bytes: Some(100.0),
            alerts: vec![(60_000, 120_000, Severity::Critical)],
            bands: vec![Band {
                at: 120_000,
                level_bytes: 30.0,
                eta_seconds: 420.0,
                lower_seconds: 300.0,
                upper_seconds: Some(600.0),
            }],
            width: 600.0,
            height: 200.0,
        };
        let svg = render(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"class="working-set""#));
        assert!(svg.contains(r#"class="limit""#));
        assert!(svg.contains(r#"class="alert-critical""#));
        assert!(svg.contains(r#"class="forecast-band""#));
        assert!(svg.contains("&lt;sidecar&gt;"), "titles are escaped");
    }

    #[test]
    fn empty_chart_does_not_panic() {
        let svg = render(&Chart::default());
        assert!(svg.contains("</svg>"));
    }
}
