//! Alert delivery, laid out like Alertmanager's `notify/`:
//!
//! - [`lifecycle`]: the one alert lifecycle, which decides what changed;
//! - [`dispatch`]: the [`Dispatcher`], which turns each poll's reports into events
//!   (labels, annotations, links) and keeps firing alerts for re-sends;
//! - [`delivery`]: one bounded coalescing outbox and task per receiver ([`Worker`])
//!   and the one place that decides retries ([`verdict`]);
//! - one file per integration (`alertmanager`, `slack`, `webhook`), each with its
//!   own configuration; this file has what they share: the [`Receiver`] trait, the
//!   [`Filter`], the `receivers:` section and the [`Notifier`] that runs them all.
//!
//! A slow or dead receiver never delays forecasting or the other receivers: the poll
//! loop only hands events to outboxes. An outbox keeps the newest event per alert, so
//! after an outage every alert still firing is delivered firing and every alert that
//! resolved meanwhile is delivered resolved, once.

pub mod alertmanager;
pub mod delivery;
pub mod dispatch;
pub mod lifecycle;
pub mod slack;
pub mod webhook;

pub(crate) use delivery::{post, read_secret};
pub use delivery::{verdict, RetryPolicy, Verdict, Worker};
pub use dispatch::{sparkline, AlertKey, AlertSettings, Dispatcher, Event};
pub use lifecycle::EventKind;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::model::Severity;
use crate::report::ContainerReport;
use crate::telemetry::Telemetry;
use crate::vocab::check::Validator;
use crate::vocab::{glob, TimestampMs};

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

/// Every receiver's worker, fed by the dispatcher.
pub struct Notifier {
    dispatcher: Dispatcher,
    workers: Vec<Arc<Worker>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    drain: Duration,
    /// Per worker, the alerts whose events its full outbox dropped, with the kind of
    /// the event dropped: sent again, as they stand then, once there is room.
    owed: Vec<HashMap<AlertKey, EventKind>>,
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
        let owed = vec![Default::default(); workers.len()];
        Notifier {
            dispatcher: Dispatcher::new(settings),
            workers,
            tasks,
            drain,
            owed,
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
        self.enqueue_all(&events);
        self.repay();
        events
    }

    /// Sends again what full outboxes dropped, as each alert stands now, while an
    /// outbox has a quarter of its room free (at most half its room at once, so
    /// what is new keeps a place).
    fn repay(&mut self) {
        for (w, owed) in self.workers.iter().zip(&mut self.owed) {
            let room = w.room();
            if owed.is_empty() || room < w.capacity() / 4 {
                continue;
            }
            let keys: Vec<(AlertKey, EventKind)> = owed
                .iter()
                .take((room / 2).max(1))
                .map(|(k, kind)| (k.clone(), *kind))
                .collect();
            for (key, kind) in keys {
                owed.remove(&key);
                if let Some(event) = self.dispatcher.owed(&key, kind) {
                    for (again, kind) in w.enqueue(&event) {
                        owe(owed, again, kind);
                    }
                }
            }
        }
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
        let event = self.dispatcher.oom_event(kill, report, now);
        self.enqueue_all(std::slice::from_ref(&event));
    }

    /// Queues `events` on every receiver; what a full outbox drops is owed (sent again
    /// once there is room), with one warning line per receiver however large the
    /// burst.
    fn enqueue_all(&mut self, events: &[Event]) {
        for (w, owed) in self.workers.iter().zip(&mut self.owed) {
            let mut dropped = 0usize;
            for e in events {
                for (key, kind) in w.enqueue(e) {
                    dropped += 1;
                    owe(owed, key, kind);
                }
            }
            if dropped > 0 {
                tracing::warn!(
                    receiver = w.name(),
                    dropped,
                    owed = owed.len(),
                    "notification queue full; the oldest alerts are sent again once there is room"
                );
            }
        }
    }

    /// Takes a reloaded configuration: new receivers (their outboxes start empty) and
    /// settings, while the alert lifecycle — what fires, and what each receiver was
    /// last told — carries on. The old receivers drain what they hold in the
    /// background, within the drain period.
    pub fn reconfigure(
        &mut self,
        settings: AlertSettings,
        receivers: Vec<Arc<dyn Receiver>>,
        policy: RetryPolicy,
        drain: Duration,
        telemetry: Option<Arc<Telemetry>>,
    ) {
        let fresh = Notifier::start(settings.clone(), receivers, policy, drain, telemetry);
        self.dispatcher.reconfigure(settings);
        let workers = std::mem::replace(&mut self.workers, fresh.workers);
        let tasks = std::mem::replace(&mut self.tasks, fresh.tasks);
        let old_owed = std::mem::replace(&mut self.owed, fresh.owed);
        // A receiver kept by name hands what it holds and what it owes to its new
        // worker (sent again from the lifecycle, in order, once): nothing is lost to
        // the reload, nor delivered twice by two workers at once. A receiver no
        // longer configured drains what it holds.
        for (old, owed) in workers.iter().zip(old_owed) {
            let Some(i) = self.workers.iter().position(|w| w.name() == old.name()) else {
                continue;
            };
            for (key, kind) in old.take_pending().into_iter().chain(owed) {
                owe(&mut self.owed[i], key, kind);
            }
        }
        let old_drain = std::mem::replace(&mut self.drain, drain);
        tokio::spawn(drain_workers(workers, tasks, old_drain));
        self.repay();
    }

    /// Drains every outbox within the grace period, then stops the workers.
    pub async fn shutdown(self) {
        drain_workers(self.workers, self.tasks, self.drain).await;
    }
}

/// Notes that `key`'s event of `kind` was not delivered. What a receiver missed first
/// wins: a fired alert it never heard of stays owed as fired.
fn owe(owed: &mut HashMap<AlertKey, EventKind>, key: AlertKey, kind: EventKind) {
    owed.entry(key).or_insert(kind);
}

/// Closes `workers`' outboxes and waits for their `tasks` to deliver what they hold,
/// each for `drain` (and a second) at most.
async fn drain_workers(
    workers: Vec<Arc<Worker>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    drain: Duration,
) {
    for w in &workers {
        w.close();
    }
    // One deadline for all: receivers drain at once, so three stuck ones take the
    // drain period once, not three times (Kubernetes' grace is 30 s).
    let deadline = tokio::time::Instant::now() + drain + Duration::from_secs(1);
    for task in tasks {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    for w in &workers {
        let left = w.queued();
        if left > 0 {
            tracing::warn!(
                receiver = w.name(),
                left,
                "notifications left undelivered at shutdown"
            );
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
