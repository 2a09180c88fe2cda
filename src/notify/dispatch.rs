//! From reports to events: the [`Dispatcher`] asks the [`Lifecycle`] what changed,
//! builds each event's labels, annotations, sparkline and Prometheus link, and keeps
//! the last event of every firing (and recently resolved) alert for re-sends.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::lifecycle::{EventKind, Lifecycle};
use crate::model::Severity;
use crate::report::ContainerReport;
use crate::source::promql::{label_escape, scope};
use crate::vocab::TimestampMs;

/// Identity of an alert: the container (plus extra identity labels).
pub type AlertKey = crate::source::ContainerKey;

/// One notification-worthy state of one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub key: AlertKey,
    pub kind: EventKind,
    /// `None` once resolved.
    pub severity: Option<Severity>,
    /// The severity before an escalation, de-escalation or resolution.
    pub previous_severity: Option<Severity>,
    /// When the alert began firing (ms).
    pub starts_at: TimestampMs,
    /// When Alertmanager should consider it over if not re-sent (ms); `now` once resolved.
    pub ends_at: TimestampMs,
    /// The forecast at the time of the event.
    pub report: ContainerReport,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unicode sparkline of recent working set against the limit.
    pub sparkline: String,
    pub generator_url: String,
}

impl Event {
    pub fn firing(&self) -> bool {
        self.severity.is_some()
    }

    /// The alert's state changed: it fired, escalated, de-escalated or resolved
    /// (not a re-send, not an update, not an OOM kill).
    pub fn is_transition(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Fired | EventKind::Escalated | EventKind::Deescalated | EventKind::Resolved
        )
    }

    /// What people hear of: a transition, or a material change of a firing alert's
    /// time to limit.
    pub fn is_news(&self) -> bool {
        self.is_transition() || self.kind == EventKind::Updated
    }
}

/// How alerts are named, labelled and re-sent.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub alertname: String,
    pub resend_interval: Duration,
    /// Resolved alerts are re-sent to Alertmanager for this long (covers outages).
    pub resolved_retention: Duration,
    /// `endsAt = now + 4 × max(poll interval, resend interval)`.
    pub poll_interval: Duration,
    pub extra_labels: BTreeMap<String, String>,
    /// Templates with `{namespace}`, `{pod}`, `{container}`.
    pub runbook_url: Option<String>,
    pub dashboard_url: Option<String>,
    /// Prometheus' base URL, for `generatorURL`.
    pub prometheus_url: String,
}

fn fill(template: &str, r: &ContainerReport) -> String {
    template
        .replace("{namespace}", &r.namespace)
        .replace("{pod}", &r.pod)
        .replace("{container}", &r.container)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A sparkline of `values` scaled from zero to `ceiling`.
pub fn sparkline(values: &[f64], ceiling: f64, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || ceiling <= 0.0 || width == 0 {
        return String::new();
    }
    let per = values.len().div_ceil(width).max(1);
    values
        .chunks(per)
        .map(|c| {
            let v = c.iter().copied().fold(f64::MIN, f64::max) / ceiling;
            BARS[((v.clamp(0.0, 1.0) * 7.0).round()) as usize]
        })
        .collect()
}

/// A firing alert's time to limit must move by at least this share of what receivers
/// last heard (aged by the time since) before they hear it again...
const MATERIAL_CHANGE: f64 = 1.0 / 3.0;
/// ...and by at least this much (s): a few minutes either way on a short time to
/// limit is noise, not news.
const MATERIAL_CHANGE_MIN_SECONDS: f64 = 300.0;
/// Receivers hear a firing alert's updates at most this often (ms).
const UPDATE_SPACING_MS: i64 = 10 * 60_000;

/// What the dispatcher keeps with a firing alert.
#[derive(Debug, Clone)]
struct Kept {
    /// Its last event, for re-sends and for the resolution if its container goes away.
    event: Event,
    /// When receivers last heard of it, and the time to limit (s) they heard then.
    told: (TimestampMs, Option<f64>),
}

/// Whether a firing alert's time to limit `eta` (s) at `now` is news against what
/// receivers were `told`: moved by a third or more (and 5 minutes or more) both from
/// what they heard aged by the time since and from what they heard, or the first one
/// after none; and not within 10 minutes of the last word.
fn eta_moved(told: (TimestampMs, Option<f64>), eta: Option<f64>, now: TimestampMs) -> bool {
    let (at, heard) = told;
    let Some(eta) = eta.filter(|e| *e > 0.0) else {
        return false;
    };
    if now - at < UPDATE_SPACING_MS {
        return false;
    }
    // Receivers heard no time to limit (it fired at the limit, or held through a
    // restart): the first one is news.
    let Some(heard) = heard.filter(|h| *h > 0.0) else {
        return true;
    };
    let expected = (heard - (now - at) as f64 / 1000.0).max(0.0);
    let material = |moved: f64, from: f64| {
        moved >= MATERIAL_CHANGE * from && moved >= MATERIAL_CHANGE_MIN_SECONDS
    };
    // Moved against the clock, and against what was said: a time to limit that
    // stays where it was (a paused climb) is not news every ten minutes.
    material((eta - expected).abs(), expected) && material((eta - heard).abs(), heard)
}

/// Turns each poll's reports into events: the [`Lifecycle`] says what changed, and
/// the dispatcher keeps the last event of every firing (and recently resolved) alert
/// for re-sends.
pub struct Dispatcher {
    settings: AlertSettings,
    /// Every firing alert, with its last event and what receivers last heard.
    lifecycle: Lifecycle<AlertKey, Kept>,
    /// Recently resolved alerts, re-sent until their retention passes.
    resolved: HashMap<AlertKey, Event>,
    /// Attributed OOM kills, re-sent until their hour ends.
    oom_active: HashMap<AlertKey, Event>,
    last_resend: Option<TimestampMs>,
}

impl Dispatcher {
    pub fn new(settings: AlertSettings) -> Self {
        Dispatcher {
            settings,
            lifecycle: Lifecycle::default(),
            resolved: HashMap::new(),
            oom_active: HashMap::new(),
            last_resend: None,
        }
    }

    /// What a receiver that lost `key`'s event of kind `dropped` (from a full
    /// outbox) should hear now: a firing alert's last event, as having fired (or as
    /// the update it missed); its resolution while that is kept; an attributed OOM
    /// kill while its hour lasts; `None` once it is long gone.
    pub fn owed(&self, key: &AlertKey, dropped: EventKind) -> Option<Event> {
        if let Some(firing) = self.lifecycle.firing(key) {
            let mut e = firing.last.as_ref()?.event.clone();
            // What was dropped is what the receiver missed: an update stays an
            // update (Slack must not hear "fired" twice), anything else says the
            // alert fired.
            match dropped {
                EventKind::Updated | EventKind::Resent => e.kind = dropped,
                _ => {
                    e.kind = EventKind::Fired;
                    e.previous_severity = None;
                }
            }
            return Some(e);
        }
        self.resolved
            .get(key)
            .or_else(|| self.oom_active.get(key))
            .cloned()
    }

    /// New settings (a reloaded configuration); what fires carries on.
    pub fn reconfigure(&mut self, settings: AlertSettings) {
        self.settings = settings;
    }

    fn ends_at(&self, now: TimestampMs) -> TimestampMs {
        let every = self
            .settings
            .poll_interval
            .max(self.settings.resend_interval);
        now + 4 * every.as_millis() as i64
    }

    fn event(
        &self,
        report: &ContainerReport,
        kind: EventKind,
        previous: Option<Severity>,
        starts_at: TimestampMs,
        now: TimestampMs,
        history: Option<&[(TimestampMs, f64)]>,
    ) -> Event {
        let severity = report.alert;
        let labels = self.labels(report, severity.or(previous));
        let annotations = self.annotations(report);
        let generator_url = self.generator_url(report);
        let sparkline = history
            .map(|h| {
                let values: Vec<f64> = h.iter().map(|p| p.1).collect();
                let ceiling = report
                    .limit_bytes
                    .unwrap_or_else(|| values.iter().copied().fold(0.0, f64::max));
                self::sparkline(&values, ceiling, 24)
            })
            .unwrap_or_default();
        Event {
            key: report.key(),
            kind,
            severity,
            previous_severity: previous,
            starts_at,
            ends_at: if severity.is_some() {
                self.ends_at(now)
            } else {
                now
            },
            report: report.clone(),
            labels,
            annotations,
            sparkline,
            generator_url,
        }
    }

    /// An alert's labels: its identity, sidecar and workload, the configured extra
    /// labels (which never override those), and the severity shown (`shown`, or
    /// warning).
    fn labels(
        &self,
        report: &ContainerReport,
        shown: Option<Severity>,
    ) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), self.settings.alertname.clone());
        labels.insert("namespace".to_string(), report.namespace.clone());
        labels.insert("pod".to_string(), report.pod.clone());
        labels.insert("container".to_string(), report.container.clone());
        for (k, v) in &report.labels {
            labels.insert(k.clone(), v.clone());
        }
        if report.sidecar {
            labels.insert("sidecar".to_string(), "true".to_string());
        }
        if let Some(workload) = &report.workload {
            labels.insert("workload".to_string(), workload.clone());
        }
        for (k, v) in &self.settings.extra_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let shown = shown.unwrap_or(Severity::Warning);
        labels.insert("severity".to_string(), shown.as_str().to_string());
        labels
    }

    /// An alert's annotations: summary, description, the time to limit in seconds,
    /// and the runbook and dashboard links filled for the container.
    fn annotations(&self, report: &ContainerReport) -> BTreeMap<String, String> {
        let s = &self.settings;
        let mut annotations = BTreeMap::new();
        annotations.insert("summary".to_string(), report.summary());
        annotations.insert("description".to_string(), describe(report));
        if let Some(t) = report.time_to_limit_seconds {
            annotations.insert("time_to_limit_seconds".to_string(), format!("{t:.0}"));
        }
        if let Some(url) = &s.runbook_url {
            annotations.insert("runbook_url".to_string(), fill(url, report));
        }
        if let Some(url) = &s.dashboard_url {
            annotations.insert("dashboard_url".to_string(), fill(url, report));
        }
        annotations
    }

    /// Prometheus' graph of the container's working set, scoped like the
    /// explanations: a store of several clusters holds same-named pods in each.
    fn generator_url(&self, report: &ContainerReport) -> String {
        let extra: Vec<(String, String)> = report
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let expr = format!(
            "container_memory_working_set_bytes{{{},pod=\"{}\",container=\"{}\"}}",
            scope(&report.namespace, &extra),
            label_escape(&report.pod),
            label_escape(&report.container)
        );
        format!(
            "{}graph?g0.expr={}&g0.tab=0&g0.range_input=6h",
            self.settings.prometheus_url,
            url_encode(&expr)
        )
    }

    /// Every resend interval, the last event of each firing alert again (Alertmanager
    /// ends it itself if the sender dies), and of each recently resolved one (covers
    /// an Alertmanager outage), unless this poll already has an event for it.
    fn resends(&mut self, now: TimestampMs, events: &mut Vec<Event>) {
        let due = self
            .last_resend
            .is_none_or(|t| now - t >= self.settings.resend_interval.as_millis() as i64);
        if due {
            self.last_resend = Some(now);
            let ends_at = self.ends_at(now);
            for e in self
                .lifecycle
                .all_firing()
                .filter_map(|f| f.last.as_ref().map(|k| &k.event))
            {
                if events.iter().any(|x| x.key == e.key) {
                    continue;
                }
                let mut resend = e.clone();
                resend.kind = EventKind::Resent;
                resend.ends_at = ends_at;
                events.push(resend);
            }
            // Attributed OOM kills until their hour ends, recently resolved alerts
            // until their retention passes: as they were, endsAt and all.
            self.oom_active.retain(|_, e| e.ends_at > now);
            for e in self.oom_active.values().chain(self.resolved.values()) {
                if events.iter().any(|x| x.key == e.key) {
                    continue;
                }
                let mut resend = e.clone();
                resend.kind = EventKind::Resent;
                events.push(resend);
            }
        }
    }

    /// An attributed OOM kill as an alert of its own
    /// (`alertname="ContainerOOMKillAttributed"`, ending an hour later) on the
    /// container that was at its limit; `report` is that container's latest forecast.
    pub fn oom_event(
        &mut self,
        kill: &crate::explain::OomKill,
        report: &ContainerReport,
        now: TimestampMs,
    ) -> Event {
        // The killed incarnation's figures, not the restarted one's: it was at its
        // limit, with no time left.
        let mut at_kill = report.clone();
        if let Some(c) = kill
            .containers
            .iter()
            .find(|c| c.container == report.container)
        {
            at_kill.working_set_bytes = c.working_set_bytes;
            at_kill.limit_bytes = c.limit_bytes.or(report.limit_bytes);
            at_kill.use_ratio = at_kill
                .limit_bytes
                .filter(|l| *l > 0.0)
                .map(|l| c.working_set_bytes / l);
            at_kill.time_to_limit_seconds = Some(0.0);
            at_kill.time_to_limit_lower_seconds = Some(0.0);
            at_kill.time_to_limit_upper_seconds = Some(0.0);
            at_kill.previous_run_seconds = None;
            at_kill.evaluated_at = kill.at;
        }
        let report = &at_kill;
        let mut event = self.event(report, EventKind::OomKill, None, now, now, None);
        event.key.container = format!("oom-kill:{}", report.container);
        event.severity = Some(Severity::Warning);
        event.ends_at = now + 3_600_000;
        event
            .labels
            .insert("alertname".into(), "ContainerOOMKillAttributed".into());
        event.labels.insert("severity".into(), "warning".into());
        event
            .labels
            .insert("reported_container".into(), kill.reported_container.clone());
        event.annotations.clear();
        event
            .annotations
            .insert("summary".into(), kill.sentence.clone());
        event
            .annotations
            .insert("description".into(), kill.sentence.clone());
        // Re-sent to Alertmanager while it lasts (an Alertmanager that restarted
        // would have lost it), ending by itself an hour after the kill.
        self.oom_active.insert(event.key.clone(), event.clone());
        event
    }

    /// Folds in one poll's reports (every tracked container) at `now` and returns the
    /// events to deliver. `history` gives a container's recent samples for sparklines.
    pub fn update<'a>(
        &mut self,
        reports: &[ContainerReport],
        now: TimestampMs,
        history: impl Fn(&AlertKey) -> Option<&'a [(TimestampMs, f64)]>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for r in reports {
            let key = r.key();
            seen.insert(key.clone());
            let Some(change) = self.lifecycle.observe(&key, r.alert, now) else {
                if let Some(f) = self.lifecycle.firing(&key) {
                    // Still firing at the same severity: refresh the stored state, and
                    // tell receivers when its time to limit moved materially.
                    let told = f.last.as_ref().map_or((now, None), |k| k.told);
                    let eta = r.time_to_limit_seconds;
                    let (kind, told) = if eta_moved(told, eta, now) {
                        (EventKind::Updated, (now, eta))
                    } else {
                        (EventKind::Resent, told)
                    };
                    let e = self.event(r, kind, Some(f.severity), f.since, now, history(&key));
                    if kind == EventKind::Updated {
                        events.push(e.clone());
                    }
                    self.lifecycle.keep(&key, Kept { event: e, told });
                }
                continue;
            };
            let e = self.event(
                r,
                change.kind,
                change.previous,
                change.since,
                now,
                history(&key),
            );
            if change.kind == EventKind::Resolved {
                self.resolved.insert(key, e.clone());
            } else {
                self.resolved.remove(&key);
                let told = (now, r.time_to_limit_seconds);
                self.lifecycle.keep(
                    &key,
                    Kept {
                        event: e.clone(),
                        told,
                    },
                );
            }
            events.push(e);
        }
        // Containers that went away resolve their alerts.
        for (key, _, last) in self.lifecycle.sweep(|k| seen.contains(k)) {
            if let Some(Kept { event: mut e, .. }) = last {
                e.kind = EventKind::Resolved;
                e.previous_severity = e.severity;
                e.severity = None;
                e.ends_at = now;
                e.annotations.insert(
                    "summary".to_string(),
                    format!(
                        "{} in {}/{} went away",
                        e.report.container, e.report.namespace, e.report.pod
                    ),
                );
                self.resolved.insert(key, e.clone());
                events.push(e);
            }
        }
        let retention = self.settings.resolved_retention.as_millis() as i64;
        self.resolved.retain(|_, e| now - e.ends_at <= retention);
        self.resends(now, &mut events);
        events
    }
}

/// The description annotation: every number a responder wants.
pub(super) fn describe(r: &ContainerReport) -> String {
    let mut parts = r.story();
    parts.push(format!("working set {}", r.working_set_text()));
    if let Some(growth) = r.growth_text() {
        parts.push(format!("growth {growth}"));
    }
    if let Some(onset) = &r.onset {
        parts.push(format!("since {onset}"));
    }
    if let Some(t) = r.time_to_limit_seconds {
        parts.push(format!(
            "limit in {}",
            crate::report::eta_text(
                t,
                r.time_to_limit_lower_seconds,
                r.time_to_limit_upper_seconds
            )
        ));
    }
    parts.push(format!("pattern {}", r.pattern.as_str()));
    if let Some(envoy) = &r.envoy {
        parts.push(envoy.text());
    }
    parts.join("; ")
}
