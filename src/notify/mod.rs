//! Alert delivery, laid out like Alertmanager's `notify/`: the alert lifecycle
//! ([`Dispatcher`]), one bounded coalescing outbox and task per receiver
//! ([`Worker`]), one place that decides retries ([`verdict`]), and one file per
//! integration (`alertmanager`, `slack`, `webhook`).
//!
//! A slow or dead receiver never delays forecasting or the other receivers: the poll
//! loop only hands events to outboxes. An outbox keeps the newest event per alert, so
//! after an outage every alert still firing is delivered firing and every alert that
//! resolved meanwhile is delivered resolved, once.

pub mod alertmanager;
pub mod lifecycle;
pub mod slack;
pub mod webhook;

pub use lifecycle::EventKind;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::Severity;
use crate::report::ContainerReport;
use crate::source::promql::{label_escape, scope};
use crate::telemetry::Telemetry;
use crate::vocab::check::Validator;
use crate::vocab::{glob, TimestampMs};
use lifecycle::Lifecycle;

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
    /// (not a re-send, not an OOM kill).
    pub fn is_transition(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Fired | EventKind::Escalated | EventKind::Deescalated | EventKind::Resolved
        )
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

/// Turns each poll's reports into events: the [`Lifecycle`] says what changed, and
/// the dispatcher keeps the last event of every firing (and recently resolved) alert
/// for re-sends.
pub struct Dispatcher {
    settings: AlertSettings,
    lifecycle: Lifecycle<AlertKey>,
    /// The last event of every firing alert.
    active: HashMap<AlertKey, Event>,
    /// Recently resolved alerts, re-sent until their retention passes.
    resolved: HashMap<AlertKey, Event>,
    last_resend: Option<TimestampMs>,
}

impl Dispatcher {
    pub fn new(settings: AlertSettings) -> Self {
        Dispatcher {
            settings,
            lifecycle: Lifecycle::default(),
            active: HashMap::new(),
            resolved: HashMap::new(),
            last_resend: None,
        }
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
        let s = &self.settings;
        let severity = report.alert;
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), s.alertname.clone());
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
        for (k, v) in &s.extra_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let shown = severity.or(previous).unwrap_or(Severity::Warning);
        labels.insert("severity".to_string(), shown.as_str().to_string());
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
        // Scoped like the explanations: a store of several clusters holds same-named
        // pods in each.
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
        let generator_url = format!(
            "{}graph?g0.expr={}&g0.tab=0&g0.range_input=6h",
            s.prometheus_url,
            url_encode(&expr)
        );
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
                    // Still firing at the same severity: refresh the stored state.
                    let e = self.event(
                        r,
                        EventKind::Resent,
                        Some(f.severity),
                        f.since,
                        now,
                        history(&key),
                    );
                    self.active.insert(key, e);
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
                self.active.remove(&key);
                self.resolved.insert(key, e.clone());
            } else {
                self.resolved.remove(&key);
                self.active.insert(key, e.clone());
            }
            events.push(e);
        }
        // Containers that went away resolve their alerts.
        for (key, _) in self.lifecycle.sweep(|k| seen.contains(k)) {
            if let Some(mut e) = self.active.remove(&key) {
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
        let due = self
            .last_resend
            .is_none_or(|t| now - t >= self.settings.resend_interval.as_millis() as i64);
        if due {
            self.last_resend = Some(now);
            let ends_at = self.ends_at(now);
            for e in self.active.values() {
                if events.iter().any(|x| x.key == e.key) {
                    continue;
                }
                let mut resend = e.clone();
                resend.kind = EventKind::Resent;
                resend.ends_at = ends_at;
                events.push(resend);
            }
            for e in self.resolved.values() {
                if events.iter().any(|x| x.key == e.key) {
                    continue;
                }
                let mut resend = e.clone();
                resend.kind = EventKind::Resent;
                events.push(resend);
            }
        }
        events
    }
}

/// The description annotation: every number a responder wants.
fn describe(r: &ContainerReport) -> String {
    use crate::units::format_bytes;
    let mut parts = vec![format!(
        "working set {} of {}{}",
        format_bytes(r.working_set_bytes),
        r.limit_bytes.map_or("no limit".into(), format_bytes),
        r.use_ratio
            .map_or(String::new(), |u| format!(" ({:.0}%)", u * 100.0))
    )];
    if let Some(g) = r.growth_bytes_per_second {
        parts.push(format!(
            "growth {}{}/h",
            if g >= 0.0 { "+" } else { "" },
            format_bytes(g * 3600.0)
        ));
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
    if let Some(change) = r.changes.first() {
        parts.push(format!("growth began {}", change.text));
    }
    parts.join("; ")
}

/// What to do after a delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Try again, after `after` when the receiver said so (429 Retry-After).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Do not retry: a permanent 4xx.
    Permanent {
        reason: String,
    },
}

impl Verdict {
    /// A short reason class for the failures counter: `http_429`, `http_5xx`,
    /// `http_4xx`, `timeout` or `transport`.
    pub fn reason_class(&self) -> &'static str {
        let reason = match self {
            Verdict::Delivered => return "none",
            Verdict::Retry { reason, .. } | Verdict::Permanent { reason } => reason.as_str(),
        };
        match reason.strip_prefix("HTTP ").and_then(|r| r.get(..3)) {
            Some("429") => "http_429",
            Some(code) if code.starts_with('5') => "http_5xx",
            Some(_) => "http_4xx",
            None if reason.contains("timed out") => "timeout",
            None => "transport",
        }
    }
}

/// The one place that decides retries: 2xx done; 429, 5xx and transport errors retry
/// (429 honouring Retry-After); any other status is permanent, with the body quoted.
pub fn verdict(result: Result<(u16, Option<Duration>, String), String>) -> Verdict {
    match result {
        Err(transport) => Verdict::Retry {
            after: None,
            reason: transport,
        },
        Ok((status, _, _)) if (200..300).contains(&status) => Verdict::Delivered,
        Ok((429, retry_after, body)) => Verdict::Retry {
            after: retry_after,
            reason: format!("HTTP 429: {}", excerpt(&body)),
        },
        Ok((status, _, body)) if status >= 500 => Verdict::Retry {
            after: None,
            reason: format!("HTTP {status}: {}", excerpt(&body)),
        },
        Ok((status, _, body)) => Verdict::Permanent {
            reason: format!("HTTP {status}: {}", excerpt(&body)),
        },
    }
}

fn excerpt(body: &str) -> String {
    crate::units::excerpt(body, 200)
}

/// Posts `body` and classifies the answer. Errors never contain the URL: it may be a
/// secret (Slack and webhook URLs are).
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
    timeout: Duration,
) -> Verdict {
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let result = async {
        let response = request.send().await.map_err(transport_reason)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        Ok((status, retry_after, text))
    }
    .await;
    verdict(result)
}

fn transport_reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// A secret's current value, or the retry verdict naming the file that could not be
/// read (a mounted Secret may be mid-rotation).
pub(crate) fn read_secret(secret: &crate::vocab::SecretValue) -> Result<String, Verdict> {
    secret.read().map_err(|reason| Verdict::Retry {
        after: None,
        reason,
    })
}

/// An integration: Alertmanager, Slack or a webhook.
pub trait Receiver: Send + Sync + 'static {
    /// A name for logs and metrics; never a URL.
    fn name(&self) -> &str;
    /// Whether this receiver wants `event` at all (its filters, and event kinds).
    fn wants(&self, event: &Event) -> bool;
    /// Most events per request.
    fn max_batch(&self) -> usize;
    /// Least time between requests (Slack: one message per second per webhook).
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }
    /// Delivers `events` once; the worker decides what happens next.
    fn send<'a>(
        &'a self,
        events: &'a [Event],
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;
}

/// Which events a receiver takes: minimum severity and namespace/container globs.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub min_severity: Option<Severity>,
    pub namespaces: Vec<String>,
    pub containers: Vec<String>,
}

impl Filter {
    /// The filter keys every receiver has (not `#[serde(flatten)]` into one raw
    /// struct: that would defeat `deny_unknown_fields`).
    pub fn validate(
        v: &mut Validator,
        key: &str,
        min_severity: Option<String>,
        namespaces: Vec<String>,
        containers: Vec<String>,
    ) -> Filter {
        let min_severity = match min_severity.as_deref() {
            None | Some("warning") => Some(Severity::Warning),
            Some("critical") => Some(Severity::Critical),
            Some(other) => {
                v.problem(
                    &format!("{key}.min_severity"),
                    format!("{other:?} is not warning or critical"),
                );
                None
            }
        };
        Filter {
            min_severity,
            namespaces,
            containers,
        }
    }

    pub fn matches(&self, e: &Event) -> bool {
        // The higher of now and before: a receiver told of a critical alert also hears
        // that it de-escalated or resolved.
        let severity = e
            .severity
            .max(e.previous_severity)
            .unwrap_or(Severity::Warning);
        self.min_severity.is_none_or(|m| severity >= m)
            && (self.namespaces.is_empty()
                || self.namespaces.iter().any(|g| glob(g, &e.report.namespace)))
            && (self.containers.is_empty()
                || self.containers.iter().any(|g| glob(g, &e.report.container)))
    }
}

/// Retry timing of a worker.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Pending events kept per receiver; the oldest are dropped past it.
    pub capacity: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            capacity: 1000,
        }
    }
}

/// The newest pending event per alert, in arrival order.
#[derive(Default)]
struct Outbox {
    order: VecDeque<(AlertKey, u64)>,
    pending: HashMap<AlertKey, (u64, Event)>,
    next_seq: u64,
    closed: bool,
}

/// A receiver's queue and delivery task.
pub struct Worker {
    receiver: Arc<dyn Receiver>,
    outbox: Mutex<Outbox>,
    wake: Notify,
    policy: RetryPolicy,
    telemetry: Option<Arc<Telemetry>>,
}

impl Worker {
    pub fn new(
        receiver: Arc<dyn Receiver>,
        policy: RetryPolicy,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Arc<Self> {
        Arc::new(Worker {
            receiver,
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            policy,
            telemetry,
        })
    }

    pub fn name(&self) -> &str {
        self.receiver.name()
    }

    fn count(&self, outcome: &str, n: u64) {
        if let Some(t) = &self.telemetry {
            t.notifications
                .with_label_values(&[self.receiver.name(), outcome])
                .inc_by(n);
        }
    }

    fn count_failure(&self, verdict: &Verdict) {
        if let Some(t) = &self.telemetry {
            t.notification_failures
                .with_label_values(&[self.receiver.name(), verdict.reason_class()])
                .inc();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` if the receiver wants it; a newer event for the same alert
    /// replaces a pending one. Never blocks on the receiver.
    pub fn enqueue(&self, event: &Event) {
        if !self.receiver.wants(event) {
            return;
        }
        let dropped = {
            let mut o = self.lock();
            let seq = o.next_seq;
            o.next_seq += 1;
            let key = event.key.clone();
            let mut event = event.clone();
            if event.kind == EventKind::Resent {
                // A re-send refreshes endsAt but must not erase what the pending event
                // says happened (fired, escalated: Alertmanager resolves the old
                // severity's alert from it).
                if let Some((_, pending)) = o.pending.get(&key) {
                    if pending.kind != EventKind::Resent {
                        event.kind = pending.kind;
                        event.previous_severity = pending.previous_severity;
                    }
                }
            }
            if let Some(old) = o.pending.insert(key.clone(), (seq, event)) {
                // Keep the original position in line for a replaced event.
                if let Some(slot) = o.order.iter_mut().find(|(k, s)| *k == key && *s == old.0) {
                    slot.1 = seq;
                }
            } else {
                o.order.push_back((key, seq));
            }
            let mut dropped = 0;
            while o.order.len() > self.policy.capacity {
                if let Some((k, _)) = o.order.pop_front() {
                    o.pending.remove(&k);
                    dropped += 1;
                }
            }
            self.set_queue_gauge(o.order.len());
            dropped
        };
        if dropped > 0 {
            self.count("dropped", dropped);
            tracing::warn!(
                receiver = self.name(),
                dropped,
                "notification queue full; dropped the oldest"
            );
        }
        self.wake.notify_one();
    }

    fn set_queue_gauge(&self, len: usize) {
        if let Some(t) = &self.telemetry {
            t.notification_queue
                .with_label_values(&[self.receiver.name()])
                .set(len as i64);
        }
    }

    pub fn queued(&self) -> usize {
        self.lock().order.len()
    }

    /// Stops accepting work; `run` returns once the outbox is empty or `deadline` passes.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Delivers until closed and drained, or until the drain deadline after closing.
    pub async fn run(self: Arc<Self>, drain: Duration) {
        let mut backoff = self.policy.initial;
        let mut last_send: Option<tokio::time::Instant> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut logged_permanent = false;
        loop {
            let batch: Vec<(AlertKey, u64, Event)> = {
                let o = self.lock();
                if o.closed && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + drain);
                }
                o.order
                    .iter()
                    .take(self.receiver.max_batch().max(1))
                    .filter_map(|(k, seq)| {
                        o.pending
                            .get(k)
                            .map(|(s, e)| (k.clone(), *s, e.clone()))
                            .filter(|(_, s, _)| s == seq)
                    })
                    .collect()
            };
            if batch.is_empty() {
                if deadline.is_some() {
                    return;
                }
                self.wake.notified().await;
                continue;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                let left = self.queued() as u64;
                self.count("dropped", left);
                tracing::warn!(
                    receiver = self.name(),
                    left,
                    "drain deadline passed with notifications queued"
                );
                return;
            }
            if let Some(t) = last_send {
                let wait = self.receiver.min_interval().saturating_sub(t.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let events: Vec<Event> = batch.iter().map(|(_, _, e)| e.clone()).collect();
            last_send = Some(tokio::time::Instant::now());
            let verdict = self.receiver.send(&events).await;
            if verdict != Verdict::Delivered {
                self.count_failure(&verdict);
            }
            match verdict {
                Verdict::Delivered => {
                    backoff = self.policy.initial;
                    self.remove(&batch);
                    self.count("sent", batch.len() as u64);
                }
                Verdict::Permanent { reason } => {
                    self.remove(&batch);
                    self.count("failed_permanent", batch.len() as u64);
                    if !logged_permanent {
                        tracing::error!(receiver = self.name(), error = %reason, "receiver refused notifications; not retrying them (logged once)");
                        logged_permanent = true;
                    }
                }
                Verdict::Retry { after, reason } => {
                    self.count("retried", batch.len() as u64);
                    let wait = after.unwrap_or_else(|| jitter(backoff));
                    tracing::warn!(receiver = self.name(), error = %reason, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
                    backoff = (backoff * 2).min(self.policy.max);
                    let sleep = tokio::time::sleep(wait);
                    match deadline {
                        Some(d) => {
                            tokio::select! {
                                _ = sleep => {}
                                _ = tokio::time::sleep_until(d) => {}
                            }
                        }
                        None => sleep.await,
                    }
                }
            }
        }
    }

    fn remove(&self, batch: &[(AlertKey, u64, Event)]) {
        let mut o = self.lock();
        for (key, seq, _) in batch {
            // Only if no newer event replaced it meanwhile.
            if o.pending.get(key).is_some_and(|(s, _)| s == seq) {
                o.pending.remove(key);
                o.order.retain(|(k, s)| !(k == key && s == seq));
            }
        }
        self.set_queue_gauge(o.order.len());
    }
}

/// ±20% so that many headroom replicas do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let factor = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(factor)
}

/// Every receiver's worker, fed by the dispatcher.
pub struct Notifier {
    dispatcher: Dispatcher,
    workers: Vec<Arc<Worker>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    drain: Duration,
}

impl Notifier {
    /// Starts one task per receiver.
    pub fn start(
        settings: AlertSettings,
        receivers: Vec<Arc<dyn Receiver>>,
        policy: RetryPolicy,
        drain: Duration,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Self {
        let workers: Vec<Arc<Worker>> = receivers
            .into_iter()
            .map(|r| Worker::new(r, policy, telemetry.clone()))
            .collect();
        // Every receiver's series exist from the start, at zero, so dashboards and
        // rate() see them before the first notification.
        if let Some(t) = &telemetry {
            for w in &workers {
                for outcome in ["sent", "retried", "dropped", "failed_permanent"] {
                    t.notifications
                        .with_label_values(&[w.name(), outcome])
                        .inc_by(0);
                }
                t.notification_queue.with_label_values(&[w.name()]).set(0);
            }
        }
        let tasks = workers
            .iter()
            .map(|w| tokio::spawn(w.clone().run(drain)))
            .collect();
        Notifier {
            dispatcher: Dispatcher::new(settings),
            workers,
            tasks,
            drain,
        }
    }

    /// Hands one poll's reports to the lifecycle and the resulting events to every
    /// receiver's outbox. Returns the events, for logs and tests.
    pub fn publish<'a>(
        &mut self,
        reports: &[ContainerReport],
        now: TimestampMs,
        history: impl Fn(&AlertKey) -> Option<&'a [(TimestampMs, f64)]>,
    ) -> Vec<Event> {
        let events = self.dispatcher.update(reports, now, history);
        for e in &events {
            for w in &self.workers {
                w.enqueue(e);
            }
        }
        events
    }

    /// Sends an attributed OOM kill to every receiver: an alert of its own
    /// (`alertname="ContainerOOMKillAttributed"`, ending an hour later) on the container
    /// that was at its limit. `report` is that container's latest forecast.
    pub fn publish_oom(
        &mut self,
        kill: &crate::explain::OomKill,
        report: &ContainerReport,
        now: TimestampMs,
    ) {
        let mut event = self
            .dispatcher
            .event(report, EventKind::OomKill, None, now, now, None);
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
        for w in &self.workers {
            w.enqueue(&event);
        }
    }

    /// Drains every outbox within the grace period, then stops the workers.
    pub async fn shutdown(self) {
        for w in &self.workers {
            w.close();
        }
        let deadline = self.drain + Duration::from_secs(1);
        for task in self.tasks {
            let _ = tokio::time::timeout(deadline, task).await;
        }
    }
}

#[cfg(test)]
mod tests;

/// A receiver's validated configuration: everything but the HTTP client. Each
/// integration's file defines its own, with the raw form it is read from.
pub trait ReceiverConfig: std::fmt::Debug + Send + Sync {
    fn name(&self) -> &str;
    /// Builds the receiver on the shared client `http` (or on one of its own, for
    /// TLS settings of its own).
    fn build(&self, http: &reqwest::Client) -> Result<Arc<dyn Receiver>, String>;
}

/// A receiver's configuration as written, validated into its [`ReceiverConfig`].
trait RawReceiver {
    /// `key` names the item (`receivers.slack[0]`) in problems; `index` numbers it
    /// for a default name.
    fn validate(
        self,
        v: &mut Validator,
        key: &str,
        index: usize,
    ) -> Option<Arc<dyn ReceiverConfig>>;
}

/// The `receivers:` section as written: one list per integration. Adding an
/// integration is its own file (raw config, validated config, sending) plus its
/// field here and its line in [`RawReceivers::validate`].
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReceivers {
    alertmanager: Vec<alertmanager::RawAlertmanager>,
    slack: Vec<slack::RawSlack>,
    webhook: Vec<webhook::RawWebhook>,
}

impl RawReceivers {
    /// Every receiver, validated; problems go to `v`, each naming its item.
    pub fn validate(self, v: &mut Validator) -> Vec<Arc<dyn ReceiverConfig>> {
        let mut out = Vec::new();
        validate_each(v, "alertmanager", self.alertmanager, &mut out);
        validate_each(v, "slack", self.slack, &mut out);
        validate_each(v, "webhook", self.webhook, &mut out);
        out
    }
}

fn validate_each<R: RawReceiver>(
    v: &mut Validator,
    kind: &str,
    items: Vec<R>,
    out: &mut Vec<Arc<dyn ReceiverConfig>>,
) {
    for (i, raw) in items.into_iter().enumerate() {
        let key = format!("receivers.{kind}[{i}]");
        out.extend(raw.validate(v, &key, i));
    }
}

/// Builds every configured receiver, sharing one HTTP client.
pub fn receivers(configs: &[Arc<dyn ReceiverConfig>]) -> anyhow::Result<Vec<Arc<dyn Receiver>>> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("headroom/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot build the notification HTTP client: {}",
                e.without_url()
            )
        })?;
    configs
        .iter()
        .map(|c| {
            c.build(&http)
                .map_err(|e| anyhow::anyhow!("receiver {}: {e}", c.name()))
        })
        .collect()
}

/// An HTTP client trusting an extra CA and presenting a client certificate.
fn tls_client(tls: &crate::vocab::TlsConfig) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("headroom/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5));
    let builder = tls.apply(builder)?;
    builder.build().map_err(|e| e.without_url().to_string())
}
