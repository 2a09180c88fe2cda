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
    let f = Frame::of(chart);
    let (w, h, left) = (f.w, f.h, f.left);
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
    f.alerts(&mut svg, &chart.alerts);
    f.grid(&mut svg);
    if let Some(limit) = chart.limit_bytes {
        for band in &chart.bands {
            f.band(&mut svg, band, limit);
        }
    }
    for run in chart.series.iter().filter(|r| !r.is_empty()) {
        f.working_set(&mut svg, run);
    }
    if let Some(limit) = chart.limit_bytes {
        f.limit(&mut svg, limit);
    }
    f.time_axis(&mut svg);
    svg.push_str("</svg>");
    svg
}

/// The drawing area of a chart and how times and bytes map onto it.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    t_min: i64,
    t_max: i64,
    /// The top of the byte scale: 8% above the highest sample or the limit.
    y_max: f64,
}

impl Frame {
    /// Spans every sample, the limit, and each band to its far end (at most three
    /// times its time to limit).
    fn of(chart: &Chart<'_>) -> Frame {
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
        Frame {
            w: chart.width.max(200.0),
            h: chart.height.max(100.0),
            left: 70.0,
            right: 10.0,
            top: 22.0,
            bottom: 22.0,
            t_min,
            t_max,
            y_max: if y_max > 0.0 { y_max * 1.08 } else { 1.0 },
        }
    }

    fn x(&self, t: i64) -> f64 {
        self.left
            + (t - self.t_min) as f64 / (self.t_max - self.t_min) as f64
                * (self.w - self.left - self.right)
    }

    fn y(&self, v: f64) -> f64 {
        self.top + (1.0 - v / self.y_max) * (self.h - self.top - self.bottom)
    }

    /// Firing periods as shaded columns.
    fn alerts(&self, svg: &mut String, alerts: &[(i64, i64, Severity)]) {
        for (start, end, severity) in alerts {
            let color = match severity {
                Severity::Critical => "#f8c4c4",
                _ => "#fbe7b5",
            };
            let (x0, x1) = (self.x(*start), self.x(*end).max(self.x(*start) + 1.0));
            let _ = write!(
                svg,
                r#"<rect class="alert-{}" x="{x0:.1}" y="{}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                severity.as_str(),
                self.top,
                x1 - x0,
                self.h - self.top - self.bottom
            );
        }
    }

    /// Horizontal lines at quarters of the scale, labelled in bytes.
    fn grid(&self, svg: &mut String) {
        for frac in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let v = self.y_max / 1.08 * frac;
            let _ = write!(
                svg,
                r##"<line x1="{}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#666">{}</text>"##,
                self.left,
                self.w - self.right,
                self.y(v),
                self.y(v),
                self.left - 4.0,
                self.y(v) + 4.0,
                format_bytes(v)
            );
        }
    }

    /// A forecast: the band from its level to the limit between the interval's ends,
    /// and the line to the limit at the time to limit.
    fn band(&self, svg: &mut String, band: &Band, limit: f64) {
        let x0 = self.x(band.at);
        let xs = |s: f64| {
            self.x(band.at + (s * 1000.0) as i64)
                .min(self.w - self.right)
        };
        let upper = band.upper_seconds.map_or(self.w - self.right, xs);
        let _ = write!(
            svg,
            r##"<polygon class="forecast-band" points="{x0:.1},{:.1} {:.1},{:.1} {upper:.1},{:.1}" fill="#9ecae1" fill-opacity="0.45"/>"##,
            self.y(band.level_bytes),
            xs(band.lower_seconds),
            self.y(limit),
            self.y(limit)
        );
        let _ = write!(
            svg,
            r##"<line x1="{x0:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#3182bd" stroke-dasharray="4 2"/>"##,
            self.y(band.level_bytes),
            xs(band.eta_seconds),
            self.y(limit)
        );
    }

    /// One run of samples (a segment) as a line.
    fn working_set(&self, svg: &mut String, run: &[(i64, f64)]) {
        let mut path = String::new();
        for (i, (t, v)) in run.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                self.x(*t),
                self.y(*v)
            );
        }
        let _ = write!(
            svg,
            r##"<path class="working-set" d="{path}" fill="none" stroke="#08519c" stroke-width="1.3"/>"##
        );
    }

    fn limit(&self, svg: &mut String, limit: f64) {
        let _ = write!(
            svg,
            r##"<line class="limit" x1="{}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#cb181d" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#cb181d">limit {}</text>"##,
            self.left,
            self.w - self.right,
            self.y(limit),
            self.y(limit),
            self.w - self.right,
            self.y(limit) - 3.0,
            format_bytes(limit)
        );
    }

    /// The first and last time, under the chart.
    fn time_axis(&self, svg: &mut String) {
        let axis = |t: i64| {
            crate::vocab::rfc3339(t)
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_string()
        };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{:.1}" fill="#666">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#666">{}</text>"##,
            self.left,
            self.h - 6.0,
            axis(self.t_min),
            self.w - self.right,
            self.h - 6.0,
            axis(self.t_max)
        );
    }
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
