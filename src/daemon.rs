//! The service: the poll loop that runs the pipeline (fetch → store → evaluate),
//! explains the reports, hands them to the alert lifecycle and its receivers, and
//! publishes one immutable [`Snapshot`] per poll for the API and metrics; and one
//! shutdown path.
//!
//! Time comes from a [`Clock`], so the demo's accelerated simulated cluster runs the
//! very same loop as `headroom run` against Prometheus.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{AlertTransition, ReportRequest, Snapshot};
use crate::config::Config;
use crate::explain::{Explainer, OomKill};
use crate::notify::{Event, Notifier};
use crate::pipeline::{Pipeline, PollSummary, Reported};
use crate::report::ContainerReport;
use crate::source::{ContainerKey, Source};
use crate::telemetry::Telemetry;
use crate::vocab::TimestampMs;

/// How long graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How many alert transitions `/api/v1/events` keeps.
const KEPT_TRANSITIONS: usize = 100;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> TimestampMs;
}

/// The wall clock.
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> TimestampMs {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Simulated time running `speed` times faster than the wall clock from `start`.
pub struct ScaledClock {
    wall_start: Instant,
    start: TimestampMs,
    speed: f64,
}

impl ScaledClock {
    pub fn new(start: TimestampMs, speed: f64) -> Self {
        ScaledClock {
            wall_start: Instant::now(),
            start,
            speed,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> TimestampMs {
        self.start + (self.wall_start.elapsed().as_secs_f64() * self.speed * 1000.0) as i64
    }
}

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    /// Poll interval in the clock's time.
    pub interval: Duration,
    /// Clock speed: the wall-time interval is `interval / speed`.
    pub speed: f64,
    pub stale_after: Duration,
    /// How many of the most urgent containers get chart data in the snapshot.
    pub charted_containers: usize,
    /// Stop by itself once the clock passes this (the demo's end).
    pub stop_at: Option<TimestampMs>,
    /// How many of the most urgent containers a poll reports whether they are worth
    /// it or not (see `pipeline::Reported`): what the status page shows.
    pub reported_most_urgent: usize,
    /// Called once a poll is done and what it parsed and built is dropped: `headroom
    /// run` hands the freed memory back to the OS there (src/main.rs). It runs on the
    /// poll loop's thread, which is what it cleans up: keep the loop off
    /// `tokio::spawn`, or it tidies whichever worker the loop last ran on.
    pub after_poll: fn(),
}

impl LoopOptions {
    pub fn from_config(config: &Config) -> Self {
        LoopOptions {
            interval: config.poll_interval,
            speed: 1.0,
            stale_after: config.stale_after,
            charted_containers: 200,
            stop_at: None,
            reported_most_urgent: crate::api::MOST_URGENT_SHOWN,
            after_poll: || {},
        }
    }
}

/// Hears every successful poll: the new snapshot and the lifecycle's events (the
/// demo's console prints the transitions among them).
pub type OnPoll = Box<dyn FnMut(&Snapshot, &[Event]) + Send>;

/// Reads a source's fetch counters (Prometheus' bytes and requests; zero for others).
pub type FetchCounter<S> = fn(&S) -> crate::source::prometheus::FetchTotals;

/// Reads the configuration again and builds the source it describes: what a
/// reload (SIGHUP, `POST /-/reload`) runs. An error says what is wrong, by key.
pub type Reload<S> = Box<dyn FnMut() -> Result<(Config, S), String> + Send>;

/// A request to reload, with where to answer: `Ok` or the reason it was refused.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Everything the poll loop drives, from one poll to the next.
struct Service<S> {
    pipeline: Pipeline<S>,
    explainer: Explainer,
    notifier: Notifier,
    telemetry: Arc<Telemetry>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    on_poll: OnPoll,
    fetch_totals: FetchCounter<S>,
    options: LoopOptions,
    /// The most recent alert transitions, newest last.
    transitions: VecDeque<AlertTransition>,
    last_success: Option<TimestampMs>,
    /// How to reload, and the requests to (none for the demo).
    reload: Option<Reload<S>>,
    reload_requests: mpsc::Receiver<ReloadRequest>,
    /// Requests for reports a poll did not make (see `api::ReportRequest`).
    report_requests: mpsc::Receiver<ReportRequest>,
    /// The configuration in force: what a reload compares against.
    config: Config,
}

impl<S: Source> Service<S> {
    /// Runs the poll loop until `shutdown` resolves (or `stop_at` passes), publishing
    /// a snapshot after every poll.
    async fn run(&mut self, clock: Arc<dyn Clock>, shutdown: impl Future<Output = ()> + Send) {
        let mut failures = 0u32;
        let mut last_totals = (self.fetch_totals)(self.pipeline.source());
        let mut delay = Duration::ZERO;
        tokio::pin!(shutdown);
        loop {
            // Wait for the next poll; reloads asked for meanwhile are served at once.
            let wake = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = &mut shutdown => {
                        tracing::info!("stopping the poll loop");
                        return;
                    }
                    _ = tokio::time::sleep_until(wake) => break,
                    Some(reply) = self.reload_requests.recv() => {
                        let outcome = self.reload();
                        // A new source counts its fetches from zero.
                        last_totals = (self.fetch_totals)(self.pipeline.source());
                        let _ = reply.send(outcome);
                    }
                    Some(request) = self.report_requests.recv() => self.answer(request),
                }
            }
            let wall_interval = self.options.interval.div_f64(self.options.speed.max(1e-6));
            let started = Instant::now();
            let now = clock.now();
            if self.options.stop_at.is_some_and(|end| now > end) {
                tracing::info!("reached the end of the run");
                return;
            }
            if self.last_success.is_none() {
                tracing::info!("backfilling every container's lookback");
            }
            let result = tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("stopping the poll loop during a poll");
                    return;
                }
                r = self.pipeline.poll(now) => r,
            };
            let totals = (self.fetch_totals)(self.pipeline.source());
            self.telemetry.record_fetch(totals - last_totals);
            last_totals = totals;
            match result {
                Ok(summary) => {
                    if failures > 0 {
                        tracing::info!(
                            failed_polls = failures,
                            outage_seconds =
                                self.last_success.map_or(0, |t| (now - t).max(0) / 1000),
                            "polling Prometheus again"
                        );
                    }
                    failures = 0;
                    self.polled(now, summary, started).await;
                    delay = wall_interval;
                }
                Err(e) => {
                    failures += 1;
                    self.poll_failed(now, e, failures);
                    // Back off: 1, 2, 4 … intervals, at most 5 minutes (or one interval).
                    let backoff =
                        wall_interval.saturating_mul(1 << failures.min(6).saturating_sub(1));
                    delay = backoff.min(Duration::from_secs(300).max(wall_interval));
                }
            }
            self.telemetry
                .poll_duration
                .observe(started.elapsed().as_secs_f64());
            // What the poll parsed and built is free now.
            (self.options.after_poll)();
        }
    }

    /// Reads the configuration again and takes it, keeping every container's history
    /// and alert state: the source, forecast and alert settings, receivers, sidecar
    /// names and poll timing change; what the store and the HTTP server were built
    /// with stays until a restart (logged). A configuration that does not load, or
    /// that changes what names a container, is refused and the one in force kept.
    fn reload(&mut self) -> Result<(), String> {
        let outcome = self.try_reload();
        match &outcome {
            Ok(()) => {
                self.telemetry.config_loaded();
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.telemetry.config_reload_successful.set(0);
                tracing::error!(error = %e, "configuration reload failed; keeping the one in force");
            }
        }
        outcome
    }

    fn try_reload(&mut self) -> Result<(), String> {
        let Some(load) = self.reload.as_mut() else {
            return Err("this run cannot reload its configuration".into());
        };
        let (config, source) = load()?;
        if config.extra_identity_labels != self.config.extra_identity_labels {
            return Err(format!(
                "identity.extra_labels changed ({:?} -> {:?}): they name every container, so they change only with a restart",
                self.config.extra_identity_labels, config.extra_identity_labels
            ));
        }
        let receivers =
            crate::notify::receivers(&config.receivers).map_err(|e| format!("{e:#}"))?;
        self.pipeline.reconfigure(source, &config);
        // Settings that take effect only at a restart, each named by its field path.
        macro_rules! changed {
            ($($section:ident . $field:ident),* $(,)?) => {
                [$((
                    concat!(stringify!($section), ".", stringify!($field)),
                    config.$section.$field != self.config.$section.$field,
                )),*]
            };
        }
        let waiting = changed![
            store.resolution,
            store.lookback,
            store.forget_after,
            store.long_backfill,
            server.listen_address,
            server.request_timeout,
            server.metrics_min_use,
            server.metrics_max_containers,
        ];
        let kept: Vec<&str> = waiting
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| *key)
            .collect();
        if !kept.is_empty() {
            tracing::warn!(
                settings = %kept.join(", "),
                "these settings take effect at the next restart"
            );
        }
        self.notifier.reconfigure(
            config.alert_settings(),
            receivers,
            config.retry_policy(),
            config.alerts.drain_timeout,
            Some(self.telemetry.clone()),
        );
        self.explainer
            .reconfigure(config.sidecar_names.clone(), config.forecast_params());
        self.options.interval = config.poll_interval;
        self.options.stale_after = config.stale_after;
        // What waits for a restart stays as it is in force, so that a later reload
        // compares against it.
        let mut config = config;
        config.store = self.config.store.clone();
        config.server = self.config.server.clone();
        self.config = config;
        Ok(())
    }

    /// After a successful poll: attribute OOM kills, evaluate, explain, hand the
    /// reports to the alert lifecycle, and publish the snapshot.
    async fn polled(&mut self, now: TimestampMs, summary: PollSummary, started: Instant) {
        let first = self.last_success.is_none();
        self.last_success = Some(now);
        let new_kills = self.explainer.record_kills(
            self.pipeline.store(),
            &summary.oom_restarts,
            summary.backfill,
        );
        let forecast_started = Instant::now();
        let evaluated = self.pipeline.evaluate_reporting(
            now,
            Reported::Worth {
                min_use: self.config.server.metrics_min_use,
                most_urgent: self.options.reported_most_urgent,
            },
        );
        let mut reports = evaluated.reports;
        self.telemetry
            .forecast_duration
            .observe(forecast_started.elapsed().as_secs_f64());
        self.explainer
            .explain(
                self.pipeline.source(),
                self.pipeline.store(),
                &mut reports,
                now,
            )
            .await;
        let histories = reports
            .iter()
            .take(self.options.charted_containers)
            .filter_map(|r| {
                let key = r.key();
                let tracked = self.pipeline.store().get(&key)?;
                let trend = self.pipeline.trend(&key);
                Some((key, crate::plot::history(tracked, trend)))
            })
            .collect();
        let mut snapshot = Snapshot {
            evaluated_at: Some(now),
            last_success: self.last_success,
            last_error: None,
            stale: false,
            reports,
            containers: evaluated.containers,
            histories,
            oom_kills: self.explainer.oom_kills(),
            new_oom_kills: new_kills,
            transitions: Vec::new(),
            long_history: {
                let (days_read, days) = self.pipeline.long_history_days();
                Some(crate::api::LongHistory {
                    days_read,
                    days,
                    complete: self.pipeline.long_history_read(),
                })
            },
        };
        let events = self.notifier.publish(&snapshot.reports, now, |key| {
            snapshot.histories.get(key).map(|h| h.samples.as_slice())
        });
        self.record_transitions(&events, now);
        snapshot.transitions = self.transitions.iter().cloned().collect();
        self.notify_kills(&snapshot, now);
        self.telemetry.publish(&snapshot.reports);
        self.telemetry.publish_kills(&snapshot.oom_kills);
        self.telemetry
            .containers_tracked
            .set(summary.containers as i64);
        self.telemetry.last_success.set(now as f64 / 1000.0);
        if first {
            tracing::info!(
                containers = summary.containers,
                samples = summary.ingest.samples_added,
                took_ms = started.elapsed().as_millis() as u64,
                "backfilled {} containers",
                summary.containers
            );
        }
        tracing::debug!(
            containers = summary.containers,
            samples_added = summary.ingest.samples_added,
            alerts = snapshot
                .reports
                .iter()
                .filter(|r| r.alert.is_some())
                .count(),
            took_ms = started.elapsed().as_millis() as u64,
            "poll done"
        );
        let snapshot = Arc::new(snapshot);
        (self.on_poll)(&snapshot, &events);
        let _ = self.snapshots.send(snapshot);
    }

    /// Logs and counts the lifecycle's transitions and the material changes of firing
    /// alerts' times to limit, and keeps the recent ones for `/api/v1/events`.
    fn record_transitions(&mut self, events: &[Event], now: TimestampMs) {
        for e in events.iter().filter(|e| e.is_news()) {
            let transition = AlertTransition::of(e, crate::vocab::rfc3339(now));
            tracing::info!(
                container = %e.key,
                from = e.previous_severity.map_or("none", |s| s.as_str()),
                to = e.severity.map_or("none", |s| s.as_str()),
                "{}",
                transition.summary
            );
            self.telemetry
                .alert_transitions
                .with_label_values(&[e.kind.as_str()])
                .inc();
            self.transitions.push_back(transition);
            if self.transitions.len() > KEPT_TRANSITIONS {
                self.transitions.pop_front();
            }
        }
    }

    /// Answers a request for reports beyond the last poll's: those the poll made
    /// (explained) as they are, the others made now from the same evaluation, with
    /// what is known of them without asking the source (sidecar, workload).
    fn answer(&mut self, request: ReportRequest) {
        let snapshot = self.snapshots.borrow().clone();
        let Some(now) = snapshot.evaluated_at else {
            let _ = request.reply.send(Vec::new());
            return;
        };
        let made: std::collections::HashSet<ContainerKey> =
            snapshot.reports.iter().map(ContainerReport::key).collect();
        let wanted = &request.wanted;
        let mut reports = self.pipeline.reports_of(now, |k| {
            wanted.matches(&k.namespace, &k.pod, &k.container) && !made.contains(k)
        });
        self.explainer.label(&mut reports);
        for r in &mut reports {
            r.stale = snapshot.stale;
        }
        reports.extend(
            snapshot
                .reports
                .iter()
                .filter(|r| wanted.matches(&r.namespace, &r.pod, &r.container))
                .cloned(),
        );
        crate::report::sort_by_urgency(&mut reports);
        let _ = request.reply.send(reports);
    }

    /// Counts the OOM kills first seen in this poll and sends each to the receivers
    /// with the forecast of the container it is attributed to.
    fn notify_kills(&mut self, snapshot: &Snapshot, now: TimestampMs) {
        for kill in &snapshot.new_oom_kills {
            self.telemetry
                .oom_kills
                .with_label_values(&[
                    &kill.namespace,
                    &kill.reported_container,
                    kill.attributed_container.as_deref().unwrap_or(""),
                ])
                .inc();
            let made;
            let report = match report_of(kill, &snapshot.reports) {
                Some(report) => Some(report),
                None => {
                    // Not worth a report at the poll (it may have been killed
                    // unforeseen): made now.
                    let container = kill
                        .attributed_container
                        .as_deref()
                        .unwrap_or(&kill.reported_container);
                    let labels: Vec<(String, String)> = kill
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    made = {
                        let mut made = self.pipeline.reports_of(now, |k| {
                            k.namespace == kill.namespace
                                && k.pod == kill.pod
                                && k.container == container
                                && k.extra == labels
                        });
                        self.explainer.label(&mut made);
                        made
                    };
                    made.first()
                }
            };
            match report {
                Some(report) => self.notifier.publish_oom(kill, report, now),
                None => tracing::warn!(
                    namespace = %kill.namespace,
                    pod = %kill.pod,
                    "no forecast for the OOM-killed pod's containers; the kill is logged and counted but not notified"
                ),
            }
        }
    }

    /// After a failed poll: count and log it, and mark the forecasts stale once they
    /// are older than `poll.stale_after`.
    fn poll_failed(&mut self, now: TimestampMs, e: crate::source::SourceError, failures: u32) {
        let reason = e.source.reason();
        self.telemetry
            .poll_errors
            .with_label_values(&[e.what, reason])
            .inc();
        let message = format!("{:#}", anyhow::Error::from(e));
        let stale_ms = self.options.stale_after.as_secs_f64() * 1000.0;
        let stale = self
            .last_success
            .is_none_or(|t| (now - t) as f64 > stale_ms);
        tracing::warn!(error = %message, failures, stale, "poll failed; keeping the last forecasts");
        self.snapshots.send_modify(|s| {
            let mut next = (**s).clone();
            next.last_error = Some(message.clone());
            next.stale = stale;
            for r in &mut next.reports {
                r.stale = stale;
            }
            *s = Arc::new(next);
        });
    }
}

/// Turns every SIGHUP into a reload request, as Prometheus and Alertmanager do (and
/// the config-reloader sidecars that serve them rely on). Without it, SIGHUP would
/// end the process.
fn hangups(reloads: mpsc::Sender<ReloadRequest>) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let (reply, _) = oneshot::channel();
            if reloads.send(reply).await.is_err() {
                return;
            }
        }
    });
}

/// The forecast of the container an OOM kill is attributed to (the reported one when
/// none was at its limit).
fn report_of<'a>(kill: &OomKill, reports: &'a [ContainerReport]) -> Option<&'a ContainerReport> {
    let container = kill
        .attributed_container
        .as_deref()
        .unwrap_or(&kill.reported_container);
    reports
        .iter()
        .find(|r| r.namespace == kill.namespace && r.pod == kill.pod && r.container == container)
}

/// Serves the API on `listener` while the poll loop runs; both stop on `shutdown`
/// (the server after a bounded drain, the receivers within `alerts.drain_timeout`).
/// With `reload`, SIGHUP and `POST /-/reload` reload the configuration (see
/// [`Service::reload`]).
#[allow(clippy::too_many_arguments)]
pub async fn serve<S: Source + 'static>(
    pipeline: Pipeline<S>,
    config: &Config,
    clock: Arc<dyn Clock>,
    options: LoopOptions,
    listener: tokio::net::TcpListener,
    on_poll: OnPoll,
    fetch_totals: FetchCounter<S>,
    reload: Option<Reload<S>>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let telemetry = Arc::new(Telemetry::new(
        &config.extra_identity_labels,
        crate::telemetry::ExportRules {
            min_use: config.server.metrics_min_use,
            max_containers: config.server.metrics_max_containers,
        },
    ));
    let receivers = crate::notify::receivers(&config.receivers)?;
    let names: Vec<String> = receivers.iter().map(|r| r.name().to_string()).collect();
    if !names.is_empty() {
        tracing::info!(receivers = %names.join(", "), "sending alerts");
    }
    let notifier = Notifier::start(
        config.alert_settings(),
        receivers,
        config.retry_policy(),
        config.alerts.drain_timeout,
        Some(telemetry.clone()),
    );
    let (snapshots, receiver) = watch::channel(Arc::new(Snapshot::default()));
    let (reloads, reload_requests) = mpsc::channel::<ReloadRequest>(4);
    let (reports, report_requests) = mpsc::channel::<ReportRequest>(16);
    let reloads = reload.is_some().then_some(reloads);
    if let Some(reloads) = &reloads {
        telemetry.config_loaded();
        hangups(reloads.clone());
    }
    let app = crate::api::router(crate::api::AppState {
        snapshots: receiver,
        telemetry: telemetry.clone(),
        request_timeout: config.server.request_timeout,
        reloads,
        reports: Some(reports),
    });
    let (stop, mut stopped) = watch::channel(false);
    let server = tokio::spawn(async move {
        crate::api::server::serve(listener, app, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    let mut service = Service {
        explainer: config.explainer(),
        pipeline,
        notifier,
        telemetry,
        snapshots,
        on_poll,
        fetch_totals,
        options,
        transitions: VecDeque::new(),
        last_success: None,
        reload,
        reload_requests,
        report_requests,
        config: config.clone(),
    };
    service.run(clock, shutdown).await;
    // Reloads asked for while stopping are answered, not left to time out; so are
    // requests for reports (their replies dropped: "headroom is stopping").
    service.reload_requests.close();
    while let Ok(reply) = service.reload_requests.try_recv() {
        let _ = reply.send(Err("headroom is stopping".into()));
    }
    service.report_requests.close();
    while service.report_requests.try_recv().is_ok() {}
    let _ = stop.send(true);
    // Queued notifications (the last resolutions among them) are delivered within
    // alerts.drain_timeout while the HTTP server drains.
    service.notifier.shutdown().await;
    tracing::info!("notification delivery stopped");
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(refused))) => {
            if refused > 0 {
                tracing::info!(
                    refused,
                    "connections closed on arrival over the cap while running"
                );
            }
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(anyhow::Error::from(e).context("the HTTP server failed")),
        Ok(Err(e)) => Err(anyhow::Error::from(e).context("the HTTP server task failed")),
        Err(_) => {
            tracing::warn!("the HTTP server did not drain within the grace period");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::sim::cluster::SimulatedCluster;

    /// The service over the demo's simulated cluster, reporting at each poll only
    /// the containers worth it (none more among the most urgent): the API still
    /// lists every container, made on request between polls, each as a poll that
    /// reported it would have; what the poll reported comes as it was.
    #[tokio::test]
    async fn the_api_lists_what_a_poll_did_not_report() {
        let config = Config::default();
        let start = 1_773_878_400_000;
        let rollout = start - 100 * 60_000;
        let options = LoopOptions {
            speed: 60.0,
            reported_most_urgent: 0,
            ..LoopOptions::from_config(&config)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (polled, mut polls) = mpsc::unbounded_channel::<(usize, usize)>();
        let on_poll: OnPoll = Box::new(move |snapshot, _| {
            let _ = polled.send((snapshot.reports.len(), snapshot.containers));
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = serve(
            Pipeline::new(SimulatedCluster::new(rollout), &config),
            &config,
            Arc::new(ScaledClock::new(start, options.speed)),
            options,
            listener,
            on_poll,
            |_| Default::default(),
            None,
            async move {
                let _ = stopped.await;
            },
        );
        let checks = async move {
            // Two polls: the sidecar, 100 minutes into its climb, is alerting by then.
            polls.recv().await.unwrap();
            let (reported, containers) = polls.recv().await.unwrap();
            assert!(
                0 < reported && reported < containers,
                "{reported} of {containers} reported"
            );
            let client = reqwest::Client::new();
            let get = |url: String| {
                let client = client.clone();
                async move {
                    let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
                    serde_json::from_slice::<serde_json::Value>(&body).unwrap()
                }
            };
            let url = format!("http://127.0.0.1:{port}/api/v1/forecasts");
            let every = get(url.clone()).await;
            let every = every.as_array().unwrap();
            assert_eq!(every.len(), containers, "{every:#?}");
            let alerting = get(format!("{url}?severity=warning")).await;
            let alerting = alerting.as_array().unwrap();
            assert!(!alerting.is_empty());
            // Identities and alerts: a poll may come between two requests.
            let who = |r: &serde_json::Value| {
                ["namespace", "pod", "container", "alert"].map(|f| r[f].to_string())
            };
            assert_eq!(who(&every[0]), who(&alerting[0]), "the most urgent first");
            let quiet = every.last().unwrap();
            assert!(quiet["alert"].is_null() && quiet["evaluated_at"].is_string());
            let detail = format!(
                "{url}/{}/{}/{}",
                quiet["namespace"].as_str().unwrap(),
                quiet["pod"].as_str().unwrap(),
                quiet["container"].as_str().unwrap()
            );
            let one = get(detail).await;
            assert_eq!(who(&one["forecast"]), who(quiet));
            let _ = stop.send(());
        };
        let (served, ()) = tokio::join!(serving, checks);
        served.unwrap();
    }
}
