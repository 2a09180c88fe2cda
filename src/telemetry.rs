//! headroom's own metrics, in one registry: per-container forecasts for the containers
//! worth watching (bounded, removed when they stop qualifying or go away), and the
//! daemon's health (polls, Prometheus requests, forecast time, notifications).

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::model::Severity;
use crate::report::ContainerReport;
use crate::source::prometheus::FetchTotals;

/// Which containers get per-container series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportRules {
    /// Containers at or above this use of their limit are exported even when quiet.
    pub min_use: f64,
    /// At most this many containers, most urgent first: the cardinality bound.
    pub max_containers: usize,
}

/// The registry and every metric headroom exports.
pub struct Telemetry {
    registry: Registry,
    rules: ExportRules,
    label_names: Vec<String>,
    time_to_limit: GaugeVec,
    time_to_limit_lower: GaugeVec,
    time_to_limit_upper: GaugeVec,
    growth: GaugeVec,
    working_set: GaugeVec,
    limit: GaugeVec,
    alert_state: GaugeVec,
    /// Label values currently exported, to remove those that stop qualifying.
    exported: Mutex<HashSet<Vec<String>>>,
    pub poll_duration: Histogram,
    pub poll_errors: IntCounterVec,
    prometheus_requests: IntCounterVec,
    response_bytes: IntCounter,
    samples_fetched: IntCounter,
    non_finite_samples: IntCounter,
    pub containers_tracked: IntGauge,
    pub containers_exported: IntGauge,
    pub last_success: Gauge,
    pub config_reload_successful: IntGauge,
    pub config_reload_success_time: Gauge,
    pub forecast_duration: Histogram,
    pub notifications: IntCounterVec,
    pub notification_failures: IntCounterVec,
    pub oom_kills: IntCounterVec,
    pub alert_transitions: IntCounterVec,
    recent_oom_kills: IntGaugeVec,
    pub notification_queue: IntGaugeVec,
}

fn must<T>(result: prometheus::Result<T>) -> T {
    result.expect("metric definitions are static and valid")
}

impl Telemetry {
    /// A configuration is in force, at start or after a reload: as Prometheus says it.
    pub fn config_loaded(&self) {
        self.config_reload_successful.set(1);
        self.config_reload_success_time
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }

    /// Builds the registry. `extra_labels` are the configured extra identity labels.
    pub fn new(extra_labels: &[String], rules: ExportRules) -> Telemetry {
        let registry = Registry::new();
        let mut label_names: Vec<String> =
            vec!["namespace".into(), "pod".into(), "container".into()];
        label_names.extend(extra_labels.iter().cloned());
        label_names.push("sidecar".into());
        let names: Vec<&str> = label_names.iter().map(String::as_str).collect();
        let mut with_severity = names.clone();
        with_severity.push("severity");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(GaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let t = Telemetry {
            time_to_limit: gauge("headroom_time_to_limit_seconds", "Forecast time until the container's working set reaches its memory limit.", &names),
            time_to_limit_lower: gauge("headroom_time_to_limit_lower_seconds", "Lower end of the 90% interval of the time to limit.", &names),
            time_to_limit_upper: gauge("headroom_time_to_limit_upper_seconds", "Upper end of the 90% interval of the time to limit (absent when it includes never).", &names),
            growth: gauge("headroom_growth_bytes_per_second", "Fitted growth of the working set in its current regime.", &names),
            working_set: gauge("headroom_working_set_bytes", "Last observed working set.", &names),
            limit: gauge("headroom_limit_bytes", "Memory limit of the container.", &names),
            alert_state: gauge("headroom_alert_state", "1 for the severity the container's alert is firing at, else 0.", &with_severity),
            exported: Mutex::new(HashSet::new()),
            poll_duration: must(Histogram::with_opts(
                HistogramOpts::new("headroom_poll_duration_seconds", "Duration of one poll: fetch, store, forecast, publish.")
                    .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            )),
            poll_errors: must(IntCounterVec::new(
                Opts::new("headroom_poll_errors_total", "Polls that failed, by the query and the reason."),
                &["query", "reason"],
            )),
            prometheus_requests: must(IntCounterVec::new(
                Opts::new("headroom_prometheus_requests_total", "Requests to the Prometheus API, by outcome."),
                &["outcome"],
            )),
            response_bytes: must(IntCounter::new("headroom_prometheus_response_bytes_total", "Bytes of Prometheus API responses.")),
            samples_fetched: must(IntCounter::new("headroom_samples_fetched_total", "Samples read from Prometheus.")),
            non_finite_samples: must(IntCounter::new("headroom_non_finite_samples_total", "Samples read and dropped: NaN or Inf values, or times outside 1970..=2255.")),
            containers_tracked: must(IntGauge::new("headroom_containers_tracked", "Containers in the store.")),
            containers_exported: must(IntGauge::new("headroom_containers_exported", "Containers with per-container series on this endpoint.")),
            last_success: must(Gauge::new("headroom_last_successful_poll_timestamp_seconds", "Unix time of the last successful poll.")),
            config_reload_successful: must(IntGauge::new("headroom_config_last_reload_successful", "Whether the last configuration reload attempt was successful.")),
            config_reload_success_time: must(Gauge::new("headroom_config_last_reload_success_timestamp_seconds", "Timestamp of the last successful configuration reload.")),
            forecast_duration: must(Histogram::with_opts(
                HistogramOpts::new("headroom_forecast_duration_seconds", "Time to forecast every container once.")
                    .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            )),
            notifications: must(IntCounterVec::new(
                Opts::new("headroom_notifications_total", "Notifications by receiver and outcome."),
                &["receiver", "outcome"],
            )),
            notification_failures: must(IntCounterVec::new(
                Opts::new("headroom_notification_failures_total", "Failed delivery attempts by receiver and reason (http_429, http_5xx, http_4xx, timeout, transport)."),
                &["receiver", "reason"],
            )),
            alert_transitions: must(IntCounterVec::new(
                Opts::new("headroom_alert_transitions_total", "Alert transitions, by kind: fired, escalated, deescalated, resolved; and updated, a firing alert whose time to limit moved materially."),
                &["kind"],
            )),
            oom_kills: must(IntCounterVec::new(
                Opts::new("headroom_oom_kills_total", "OOM kills seen, with the container Kubernetes reported and the one that was at its limit (empty when none was)."),
                &["namespace", "reported_container", "attributed_container"],
            )),
            recent_oom_kills: must(IntGaugeVec::new(
                Opts::new("headroom_recent_oom_kills", "OOM kills headroom knows of (from its lookback at start, and since), by reported and attributed container."),
                &["namespace", "reported_container", "attributed_container"],
            )),
            notification_queue: must(IntGaugeVec::new(
                Opts::new("headroom_notification_queue_length", "Notifications waiting per receiver."),
                &["receiver"],
            )),
            registry,
            rules,
            label_names,
        };
        let build_info = must(IntGaugeVec::new(
            Opts::new(
                "headroom_build_info",
                "Always 1; the version headroom runs.",
            ),
            &["version"],
        ));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(build_info),
            Box::new(t.poll_duration.clone()),
            Box::new(t.poll_errors.clone()),
            Box::new(t.prometheus_requests.clone()),
            Box::new(t.response_bytes.clone()),
            Box::new(t.samples_fetched.clone()),
            Box::new(t.non_finite_samples.clone()),
            Box::new(t.containers_tracked.clone()),
            Box::new(t.containers_exported.clone()),
            Box::new(t.last_success.clone()),
            Box::new(t.config_reload_successful.clone()),
            Box::new(t.config_reload_success_time.clone()),
            Box::new(t.forecast_duration.clone()),
            Box::new(t.notifications.clone()),
            Box::new(t.notification_failures.clone()),
            Box::new(t.oom_kills.clone()),
            Box::new(t.alert_transitions.clone()),
            Box::new(t.recent_oom_kills.clone()),
            Box::new(t.notification_queue.clone()),
        ];
        for c in collectors {
            must(t.registry.register(c));
        }
        // The process' own CPU, memory, file descriptors, threads and start time,
        // as every Prometheus exporter has them (process_*).
        #[cfg(target_os = "linux")]
        must(t.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        // Every kind of transition exists from the start, at zero, so dashboards and
        // increase() see them before the first alert.
        for kind in ["fired", "escalated", "deescalated", "resolved", "updated"] {
            t.alert_transitions.with_label_values(&[kind]).inc_by(0);
        }
        t
    }

    /// Adds what the Prometheus client did since the last call (`delta`).
    pub fn record_fetch(&self, delta: FetchTotals) {
        let ok = delta.requests.saturating_sub(delta.failed_requests);
        self.prometheus_requests
            .with_label_values(&["success"])
            .inc_by(ok);
        self.prometheus_requests
            .with_label_values(&["error"])
            .inc_by(delta.failed_requests);
        self.response_bytes.inc_by(delta.response_bytes);
        self.samples_fetched.inc_by(delta.samples);
        self.non_finite_samples.inc_by(delta.non_finite_samples);
    }

    /// Exports per-container series for the reports that qualify (most urgent first,
    /// up to the bound) and removes the series of those that no longer do.
    pub fn publish(&self, reports: &[ContainerReport]) {
        let qualifies = |r: &ContainerReport| {
            r.alert.is_some()
                || r.severity != Severity::None
                || r.use_ratio.is_some_and(|u| u >= self.rules.min_use)
        };
        let mut now_exported = HashSet::new();
        for r in reports
            .iter()
            .filter(|r| qualifies(r))
            .take(self.rules.max_containers)
        {
            let mut values: Vec<String> =
                vec![r.namespace.clone(), r.pod.clone(), r.container.clone()];
            let extra = &self.label_names[3..self.label_names.len() - 1];
            values.extend(
                extra
                    .iter()
                    .map(|name| r.labels.get(name).cloned().unwrap_or_default()),
            );
            values.push(r.sidecar.to_string());
            let labels: Vec<&str> = values.iter().map(String::as_str).collect();
            let set_or_remove = |g: &GaugeVec, v: Option<f64>| match v {
                Some(v) if v.is_finite() => g.with_label_values(&labels).set(v),
                _ => {
                    let _ = g.remove_label_values(&labels);
                }
            };
            set_or_remove(&self.time_to_limit, r.time_to_limit_seconds);
            set_or_remove(&self.time_to_limit_lower, r.time_to_limit_lower_seconds);
            set_or_remove(&self.time_to_limit_upper, r.time_to_limit_upper_seconds);
            set_or_remove(&self.growth, r.growth_bytes_per_second);
            set_or_remove(&self.working_set, Some(r.working_set_bytes));
            set_or_remove(&self.limit, r.limit_bytes);
            for severity in [Severity::Warning, Severity::Critical] {
                let mut with = labels.clone();
                with.push(severity.as_str());
                self.alert_state
                    .with_label_values(&with)
                    .set(if r.alert == Some(severity) { 1.0 } else { 0.0 });
            }
            now_exported.insert(values);
        }
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        for gone in exported.difference(&now_exported) {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            for g in [
                &self.time_to_limit,
                &self.time_to_limit_lower,
                &self.time_to_limit_upper,
                &self.growth,
                &self.working_set,
                &self.limit,
            ] {
                let _ = g.remove_label_values(&labels);
            }
            for severity in ["warning", "critical"] {
                let mut with = labels.clone();
                with.push(severity);
                let _ = self.alert_state.remove_label_values(&with);
            }
        }
        self.containers_exported.set(now_exported.len() as i64);
        *exported = now_exported;
    }

    /// Replaces the recent-kills gauge with `kills` (bounded by the kills kept).
    pub fn publish_kills(&self, kills: &[crate::explain::OomKill]) {
        self.recent_oom_kills.reset();
        for k in kills {
            self.recent_oom_kills
                .with_label_values(&[
                    &k.namespace,
                    &k.reported_container,
                    k.attributed_container.as_deref().unwrap_or(""),
                ])
                .inc();
        }
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = encoder.encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
