//! The public shape of a forecast: the JSON objects `check --format json` prints (and
//! the API serves), and the table a person reads. The JSON schema is a public interface
//! documented in docs/json.md; fields are added, never renamed or removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{Forecast, Pattern, Severity};
use crate::source::{ContainerKey, LimitSource};
use crate::store::Tracked;
use crate::units::{format_bytes, format_duration_short};
use crate::vocab::{Rfc3339, TimestampMs};

/// One container's forecast, as printed and served.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContainerReport {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Extra identity labels (e.g. `cluster`); empty when none are configured.
    pub labels: BTreeMap<String, String>,
    pub working_set_bytes: f64,
    /// `null` when the container has no limit (it is never alerted).
    pub limit_bytes: Option<f64>,
    pub limit_source: Option<LimitSource>,
    /// working_set_bytes / limit_bytes.
    pub use_ratio: Option<f64>,
    pub growth_bytes_per_second: Option<f64>,
    /// `null` when the container is not on course to reach its limit.
    pub time_to_limit_seconds: Option<f64>,
    pub time_to_limit_lower_seconds: Option<f64>,
    /// `null` when the interval's far end is "never".
    pub time_to_limit_upper_seconds: Option<f64>,
    /// The forecast's own severity, from this evaluation alone.
    pub severity: Severity,
    /// The alert as it is (or would be) sent: `null`, `warning` or `critical`, after
    /// the pending period and hysteresis.
    pub alert: Option<Severity>,
    pub pattern: Pattern,
    /// When the current growth regime began (RFC 3339).
    pub onset: Option<Rfc3339>,
    /// The growth and time to limit are the line through the container's daily
    /// peaks over days (its long history), not the last hours' trend; `onset` is the
    /// first of those days.
    pub growth_from_daily_peaks: bool,
    /// Set when the time to limit comes from the container's previous incarnation,
    /// which climbed steadily to its limit and ended there, and which this one
    /// follows: how long that run took from its start to the limit.
    pub previous_run_seconds: Option<f64>,
    pub evaluated_at: Rfc3339,
    /// The daemon could not reach Prometheus for longer than `poll.stale_after`:
    /// this forecast is the last good one.
    pub stale: bool,
    /// An injected sidecar (istio-proxy, …) or a native sidecar.
    pub sidecar: bool,
    /// The owning workload, e.g. `Deployment/payment-service`, when known.
    pub workload: Option<String>,
    /// Changes found near the onset of growth (rollout, pod start, annotations).
    pub changes: Vec<Change>,
    /// Envoy's own memory stats, for Envoy-based sidecars whose stats are scraped.
    pub envoy: Option<Box<crate::source::metadata::EnvoyMemory>>,
    /// How many replicas of the workload run this container, and how many of them
    /// are on course to their limit within the critical horizon.
    /// Boxed, as `pod_pressure` and `envoy`: most reports have none, and a report is
    /// held for every container.
    pub workload_peers: Option<Box<WorkloadPeers>>,
    /// The pod's total against its containers' summed limits, for pods of several
    /// containers worth explaining.
    pub pod_pressure: Option<Box<PodPressure>>,
    /// Hours of long history the container has (the long tier: one summary an hour,
    /// up to 14 days, across restarts), behind its record of excursions that came
    /// back.
    pub long_history_hours: usize,
    /// Segments in the lookback window, oldest first; the last one is current and is
    /// the one forecast. A new segment begins at every container restart.
    pub segments: Vec<SegmentReport>,
}

/// One incarnation of a container within the lookback window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentReport {
    pub container_id: Option<Arc<str>>,
    /// Empty for a segment without samples.
    #[serde(serialize_with = "rfc3339_or_empty")]
    pub start: Option<Rfc3339>,
    #[serde(serialize_with = "rfc3339_or_empty")]
    pub end: Option<Rfc3339>,
    pub samples: usize,
}

fn rfc3339_or_empty<S: serde::Serializer>(at: &Option<Rfc3339>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => at.serialize(s),
        None => s.serialize_str(""),
    }
}

/// A time to limit with its 90% interval, the one way headroom writes it: in
/// summaries, descriptions, Slack, the status page, the table and backtests.
/// "~38m (90% interval 31m–47m)"; an unknown early end reads "?", an interval that
/// includes never reads "never".
pub fn eta_text(seconds: f64, lower: Option<f64>, upper: Option<f64>) -> String {
    format!(
        "~{} (90% interval {}–{})",
        format_duration_short(seconds),
        lower.map_or("?".into(), format_duration_short),
        upper.map_or("never".into(), format_duration_short)
    )
}

// Explanations a report carries; `explain` works them out.

/// The pod's total against the sum of its containers' limits (the pod cgroup's
/// limit when every container has one), beside each container's own.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PodPressure {
    pub working_set_bytes: f64,
    /// `None` when a container has no limit (the pod then has none either).
    pub limit_bytes: Option<f64>,
    pub time_to_limit_seconds: Option<f64>,
    /// Which limit is reached first: `container` (its own) or `pod`.
    pub applies: &'static str,
}

/// A container's siblings across the replicas of its workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadPeers {
    /// "Deployment/payment-service".
    pub workload: String,
    /// Replicas running this container.
    pub replicas: usize,
    /// Of those, on course to their limit within the critical horizon.
    pub on_course: usize,
    pub horizon_seconds: f64,
}

impl WorkloadPeers {
    /// "3 of 12 replicas of Deployment/payment-service have istio-proxy on course to
    /// its limit within 2h: shared growth points to a workload-wide cause".
    pub fn text(&self, container: &str) -> String {
        let mut text = format!(
            "{} of {} replicas of {} have {container} on course to its limit within {}",
            self.on_course,
            self.replicas,
            self.workload,
            crate::units::format_duration_short(self.horizon_seconds)
        );
        if self.on_course >= 2 {
            text.push_str(": growth shared by replicas points to a workload-wide cause (a rollout, a config, traffic), not one pod");
        } else if self.on_course == 1 && self.replicas >= 3 {
            text.push_str(": only this replica, so look at what is special about this pod");
        }
        text
    }
}

/// A change near the onset of growth, worth naming in an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `replicaset_created` or `pod_started`.
    pub kind: &'static str,
    /// When it happened (RFC 3339 in JSON).
    pub at: Rfc3339,
    /// "2 min after ReplicaSet payment-service-7f8b9c6d4 was created".
    pub text: String,
}

impl ContainerReport {
    /// Heap bytes the report holds beside its own struct (strings, segments,
    /// changes, labels), from capacities: what building one for every container at
    /// every poll costs, for the fleet benchmark.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        // A segment's container id is shared with the store's (counted there).
        self.namespace.capacity()
            + self.pod.capacity()
            + self.container.capacity()
            // An entry's strings and its two String headers in a B-tree node (the
            // nodes' own slack, about 500 bytes for a first leaf, is not counted).
            + self
                .labels
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity() + 2 * size_of::<String>())
                .sum::<usize>()
            + opt(&self.workload)
            + self.changes.capacity() * size_of::<Change>()
            + self.changes.iter().map(|c| c.text.capacity()).sum::<usize>()
            + self
                .workload_peers
                .as_ref()
                .map_or(0, |p| size_of::<WorkloadPeers>() + p.workload.capacity())
            + self.pod_pressure.as_ref().map_or(0, |_| size_of::<PodPressure>())
            + self
                .envoy
                .as_ref()
                .map_or(0, |_| size_of::<crate::source::metadata::EnvoyMemory>())
            + self.segments.capacity() * size_of::<SegmentReport>()
    }

    pub fn new(
        key: &ContainerKey,
        tracked: &Tracked,
        forecast: &Forecast,
        now: TimestampMs,
    ) -> Self {
        let limit_bytes = tracked.limit.and_then(|l| l.bytes);
        let eta = forecast.time_to_limit;
        ContainerReport {
            namespace: key.namespace.clone(),
            pod: key.pod.clone(),
            container: key.container.clone(),
            labels: key.extra.iter().cloned().collect(),
            working_set_bytes: forecast.working_set_bytes,
            limit_bytes,
            limit_source: tracked.limit.map(|l| l.source),
            use_ratio: limit_bytes.map(|l| forecast.working_set_bytes / l),
            growth_bytes_per_second: forecast.growth_bytes_per_second,
            time_to_limit_seconds: eta.map(|e| e.seconds),
            time_to_limit_lower_seconds: eta.map(|e| e.lower_seconds),
            time_to_limit_upper_seconds: eta.and_then(|e| e.upper_seconds),
            severity: forecast.severity,
            alert: None,
            pattern: forecast.pattern,
            onset: forecast.onset.map(Rfc3339),
            growth_from_daily_peaks: forecast.from_daily_peaks,
            previous_run_seconds: forecast.previous_run_ms.map(|ms| ms as f64 / 1000.0),
            evaluated_at: Rfc3339(now),
            stale: false,
            sidecar: false,
            workload: None,
            changes: Vec::new(),
            envoy: None,
            workload_peers: None,
            pod_pressure: None,
            long_history_hours: tracked.long.hours(),
            segments: tracked
                .segments
                .iter()
                .map(|s| SegmentReport {
                    container_id: s.container_id.clone(),
                    start: s.start().map(Rfc3339),
                    end: s.end().map(Rfc3339),
                    samples: s.samples.len(),
                })
                .collect(),
        }
    }
}

impl ContainerReport {
    /// The container's identity, as the store and snapshots key it.
    pub fn key(&self) -> ContainerKey {
        let pod = self.pod();
        ContainerKey {
            namespace: pod.namespace,
            pod: pod.pod,
            container: self.container.clone(),
            extra: pod.extra,
        }
    }

    /// The container's pod: namespace, name and extra identity labels.
    pub fn pod(&self) -> crate::source::PodRef {
        crate::source::PodRef {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            extra: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Most urgent first: severity, then the nearest limit, then the fullest container.
pub fn sort_by_urgency(reports: &mut [ContainerReport]) {
    // Unstable is enough (the key breaks every tie) and needs no buffer of half the
    // reports, which at 100,000 containers is tens of megabytes moved every poll.
    reports.sort_unstable_by(|a, b| {
        b.alert
            .cmp(&a.alert)
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| {
                let eta = |r: &ContainerReport| r.time_to_limit_seconds.unwrap_or(f64::INFINITY);
                eta(a).total_cmp(&eta(b))
            })
            .then_with(|| {
                b.use_ratio
                    .unwrap_or(-1.0)
                    .total_cmp(&a.use_ratio.unwrap_or(-1.0))
            })
            .then_with(|| {
                (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
            })
    });
}

/// Renders the table `headroom check` prints.
pub fn render_table(reports: &[ContainerReport]) -> String {
    let header = [
        "NAMESPACE",
        "POD",
        "CONTAINER",
        "WORKING SET",
        "LIMIT",
        "USE",
        "GROWTH",
        "TIME TO LIMIT",
        "SEVERITY",
        "PATTERN",
    ];
    let rows: Vec<[String; 10]> = reports
        .iter()
        .map(|r| {
            [
                r.namespace.clone(),
                r.pod.clone(),
                r.container.clone(),
                format_bytes(r.working_set_bytes),
                r.limit_bytes.map_or("no limit".into(), format_bytes),
                r.use_ratio
                    .map_or("-".into(), |u| format!("{:.0}%", u * 100.0)),
                r.growth_bytes_per_second
                    .map_or("-".into(), |g| format!("{}/h", signed_bytes(g * 3600.0))),
                time_to_limit_text(r),
                format!("{:?}", r.severity).to_lowercase(),
                serde_json::to_value(r.pattern)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn signed_bytes(bytes: f64) -> String {
    if bytes >= 0.0 {
        format!("+{}", format_bytes(bytes))
    } else {
        format_bytes(bytes)
    }
}

fn time_to_limit_text(r: &ContainerReport) -> String {
    match r.time_to_limit_seconds {
        None => "-".into(),
        Some(s) if s <= 0.0 => "at limit".into(),
        Some(s) => eta_text(
            s,
            r.time_to_limit_lower_seconds,
            r.time_to_limit_upper_seconds,
        ),
    }
}

impl ContainerReport {
    /// One sentence a person can act on, e.g. "istio-proxy in prod/payment-… will
    /// reach its 128Mi limit in ~38m (90% interval 31m–47m); growth +31Mi/h began 14:12".
    pub fn summary(&self) -> String {
        let who = format!("{} in {}/{}", self.container, self.namespace, self.pod);
        let Some(limit) = self.limit_bytes else {
            return format!(
                "{who} has no memory limit ({} used)",
                format_bytes(self.working_set_bytes)
            );
        };
        let mut text = match self.time_to_limit_seconds {
            Some(s) if s <= 0.0 => format!("{who} is at its {} limit", format_bytes(limit)),
            Some(s) => format!(
                "{who} will reach its {} limit in {}",
                format_bytes(limit),
                eta_text(
                    s,
                    self.time_to_limit_lower_seconds,
                    self.time_to_limit_upper_seconds
                )
            ),
            None => format!(
                "{who} is not on course to reach its {} limit ({} used)",
                format_bytes(limit),
                format_bytes(self.working_set_bytes)
            ),
        };
        let on_course = self.time_to_limit_seconds.is_some_and(|s| s > 0.0);
        if on_course && !matches!(self.pattern, Pattern::Leak | Pattern::SawtoothLeak) {
            // Not growing: a daily cycle (from the long history) whose peak reaches
            // the limit on the level held now.
            text.push_str("; its daily peak reaches it at the level it holds now");
            return text;
        }
        if let (Some(rate), Some(onset), true) = (self.growth_rate(), &self.onset, on_course) {
            let since = onset.clock_at(self.evaluated_at.0);
            text.push_str(&if self.growth_from_daily_peaks {
                // Slow growth over days reads per day, from the days it stands on.
                format!("; its daily peaks have risen {rate} since {since}")
            } else {
                format!("; growth {rate} began {since}")
            });
        }
        text
    }

    /// `1.2Gi of 2Gi (60%)`, or `… of no limit`.
    pub fn working_set_text(&self) -> String {
        use crate::units::format_bytes;
        format!(
            "{} of {}{}",
            format_bytes(self.working_set_bytes),
            self.limit_bytes.map_or("no limit".into(), format_bytes),
            self.use_ratio
                .map_or(String::new(), |u| format!(" ({:.0}%)", u * 100.0))
        )
    }

    /// The growth as `+31Mi/h` (`-…` when falling), `None` without a trend; growth
    /// read from days of daily peaks reads per day, `+192Mi a day (daily peaks)`.
    pub fn growth_text(&self) -> Option<String> {
        let rate = self.growth_rate()?;
        Some(if self.growth_from_daily_peaks {
            format!("{rate} (daily peaks)")
        } else {
            rate
        })
    }

    /// The growth, signed, per hour (`+31Mi/h`), or per day for growth read from
    /// days of daily peaks (`+192Mi a day`): what the summary and
    /// [`Self::growth_text`] both say.
    fn growth_rate(&self) -> Option<String> {
        self.growth_bytes_per_second.map(|g| {
            let sign = if g >= 0.0 { "+" } else { "" };
            if self.growth_from_daily_peaks {
                format!("{sign}{} a day", crate::units::format_bytes(g * 86_400.0))
            } else {
                format!("{sign}{}/h", crate::units::format_bytes(g * 3600.0))
            }
        })
    }

    /// What explains the forecast beyond its summary, each a clause: the change the
    /// growth began with, the run before it follows, and the workload's replicas on
    /// the same course. The alert's description carries them; the summary stays short.
    pub fn story(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if let Some(change) = self.changes.first() {
            parts.push(format!("growth began {}", change.text));
        }
        if let Some(took) = self.previous_run_seconds {
            parts.push(format!(
                "on the course of the run before, which reached the limit {} after its start",
                format_duration_short(took)
            ));
        }
        if let Some(peers) = self.workload_peers.as_ref().filter(|p| p.replicas > 1) {
            parts.push(peers.text(&self.container));
        }
        parts
    }
}

#[cfg(test)]
mod explanation_tests {
    use super::WorkloadPeers;

    /// Every time in headroom's JSON is RFC 3339, a change's too.
    #[test]
    fn a_change_serializes_its_time_as_rfc3339() {
        let change = super::Change {
            kind: "replicaset_created",
            at: crate::vocab::Rfc3339(1_773_929_520_000),
            text: "1 min after ReplicaSet x was created".into(),
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(json["at"], "2026-03-19T14:12:00Z");
    }

    #[test]
    fn shared_growth_is_called_workload_wide() {
        let peers = WorkloadPeers {
            workload: "Deployment/payment-service".into(),
            replicas: 12,
            on_course: 3,
            horizon_seconds: 7200.0,
        };
        assert_eq!(
            peers.text("istio-proxy"),
            "3 of 12 replicas of Deployment/payment-service have istio-proxy on course to its limit within 2h00m: growth shared by replicas points to a workload-wide cause (a rollout, a config, traffic), not one pod"
        );
        let alone = WorkloadPeers {
            on_course: 1,
            ..peers
        };
        assert!(alone
            .text("istio-proxy")
            .ends_with("only this replica, so look at what is special about this pod"));
    }
}
