//! The service: the poll loop that moves data source → store → model, publishes one
//! immutable [`Snapshot`] per poll for the API and metrics, and one shutdown path.
//!
//! Time comes from a [`Clock`], so the demo's accelerated simulated cluster runs the
//! very same loop as `headroom run` against Prometheus.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::Config;
use crate::model::Severity;
use crate::pipeline::{ContainerHistory, Pipeline};
use crate::report::ContainerReport;
use crate::source::{ContainerKey, Source, TimestampMs};
use crate::telemetry::Telemetry;

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

/// Everything the API serves, replaced whole after every poll.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When the forecasts were made (ms); `None` before the first successful poll.
    pub evaluated_at: Option<TimestampMs>,
    /// When the last poll succeeded (ms).
    pub last_success: Option<TimestampMs>,
    /// The last poll's error, if it failed.
    pub last_error: Option<String>,
    /// The forecasts are older than `poll.stale_after`.
    pub stale: bool,
    /// Most urgent first.
    pub reports: Vec<ContainerReport>,
    /// Chart data of the containers worth a chart (the most urgent ones).
    pub histories: HashMap<ContainerKey, ContainerHistory>,
    /// Recent OOM kills, attributed, newest last.
    pub oom_kills: Vec<crate::explain::OomKill>,
    /// OOM kills first seen in this poll (for notifications).
    pub new_oom_kills: Vec<crate::explain::OomKill>,
}

impl Snapshot {
    pub fn ready(&self) -> bool {
        self.last_success.is_some() && !self.stale
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
}

impl LoopOptions {
    pub fn from_config(config: &Config) -> Self {
        LoopOptions {
            interval: config.poll_interval,
            speed: 1.0,
            stale_after: config.stale_after,
            charted_containers: 200,
            stop_at: None,
        }
    }
}

/// An alert that changed: for logs, the demo's console, and notifiers.
#[derive(Debug, Clone)]
pub struct Transition {
    pub report: ContainerReport,
    pub previous: Option<Severity>,
}

/// Hears every successful poll: the new snapshot and the alerts that changed.
pub type OnPoll = Box<dyn FnMut(&Snapshot, &[Transition]) + Send>;

/// Reads a source's fetch counters (Prometheus' bytes and requests; zero for others).
pub type FetchCounter<S> = fn(&S) -> crate::source::prometheus::FetchTotals;

/// Runs the poll loop until `shutdown` resolves (or `stop_at` passes), publishing a
/// snapshot after every poll.
#[allow(clippy::too_many_arguments)]
pub async fn poll_loop<S: Source>(
    mut pipeline: Pipeline<S>,
    clock: Arc<dyn Clock>,
    options: LoopOptions,
    telemetry: Arc<Telemetry>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    mut on_poll: OnPoll,
    fetch_totals: FetchCounter<S>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let wall_interval = options.interval.div_f64(options.speed.max(1e-6));
    let mut failures = 0u32;
    let mut previous: rustc_hash::FxHashMap<ContainerKey, Option<Severity>> = Default::default();
    let mut last_totals = fetch_totals(pipeline.source());
    let mut last_success: Option<TimestampMs> = None;
    let mut delay = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("stopping the poll loop");
                return;
            }
            _ = tokio::time::sleep(delay) => {}
        }
        let started = Instant::now();
        let now = clock.now();
        if options.stop_at.is_some_and(|end| now > end) {
            tracing::info!("reached the end of the run");
            return;
        }
        let first = last_success.is_none();
        if first {
            tracing::info!("backfilling every container's lookback");
        }
        let result = tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("stopping the poll loop during a poll");
                return;
            }
            r = pipeline.poll(now) => r,
        };
        let totals = fetch_totals(pipeline.source());
        telemetry.record_fetch(totals - last_totals);
        last_totals = totals;
        match result {
            Ok(summary) => {
                failures = 0;
                last_success = Some(now);
                let forecast_started = Instant::now();
                let mut reports = pipeline.evaluate(now);
                telemetry
                    .forecast_duration
                    .observe(forecast_started.elapsed().as_secs_f64());
                pipeline.explain(&mut reports, now).await;
                for kill in &summary.oom_kills {
                    telemetry
                        .oom_kills
                        .with_label_values(&[
                            &kill.namespace,
                            &kill.reported_container,
                            kill.attributed_container.as_deref().unwrap_or(""),
                        ])
                        .inc();
                }
                let mut transitions = Vec::new();
                for r in &reports {
                    let key = r.key();
                    let before = previous.insert(key, r.alert).flatten();
                    if before != r.alert {
                        tracing::info!(
                            container = %format!("{}/{}/{}", r.namespace, r.pod, r.container),
                            from = before.map_or("none", Severity::as_str),
                            to = r.alert.map_or("none", Severity::as_str),
                            "{}",
                            r.summary()
                        );
                        transitions.push(Transition {
                            report: r.clone(),
                            previous: before,
                        });
                    }
                }
                // Containers that went away resolve their alerts.
                let live: rustc_hash::FxHashSet<ContainerKey> =
                    reports.iter().map(ContainerReport::key).collect();
                previous.retain(|k, alert| {
                    let alive = live.contains(k);
                    if !alive && alert.is_some() {
                        tracing::info!(
                            container = %k,
                            from = alert.map_or("none", Severity::as_str),
                            to = "none",
                            "{}/{}/{} went away; its alert is resolved",
                            k.namespace,
                            k.pod,
                            k.container
                        );
                    }
                    alive
                });
                let histories = reports
                    .iter()
                    .take(options.charted_containers)
                    .filter_map(|r| {
                        let key = r.key();
                        pipeline.history(&key).map(|h| (key, h))
                    })
                    .collect();
                telemetry.publish(&reports);
                telemetry.containers_tracked.set(summary.containers as i64);
                telemetry.last_success.set(now as f64 / 1000.0);
                if first {
                    tracing::info!(
                        containers = summary.containers,
                        samples = summary.ingest.samples_added,
                        took_ms = started.elapsed().as_millis() as u64,
                        "backfilled {} containers",
                        summary.containers
                    );
                }
                let at_risk = reports.iter().filter(|r| r.alert.is_some()).count();
                tracing::debug!(
                    containers = summary.containers,
                    samples_added = summary.ingest.samples_added,
                    alerts = at_risk,
                    took_ms = started.elapsed().as_millis() as u64,
                    "poll done"
                );
                let snapshot = Arc::new(Snapshot {
                    evaluated_at: Some(now),
                    last_success,
                    last_error: None,
                    stale: false,
                    reports,
                    histories,
                    oom_kills: {
                        let kills = pipeline.oom_kills();
                        telemetry.publish_kills(&kills);
                        kills
                    },
                    new_oom_kills: summary.oom_kills.clone(),
                });
                on_poll(&snapshot, &transitions);
                let _ = snapshots.send(snapshot);
                delay = wall_interval;
            }
            Err(e) => {
                failures += 1;
                let reason = e.source.reason();
                telemetry
                    .poll_errors
                    .with_label_values(&[e.what, reason])
                    .inc();
                let message = format!("{:#}", anyhow::Error::from(e));
                let stale = last_success
                    .is_none_or(|t| (now - t) as f64 > options.stale_after.as_secs_f64() * 1000.0);
                tracing::warn!(error = %message, failures, stale, "poll failed; keeping the last forecasts");
                snapshots.send_modify(|s| {
                    let mut next = (**s).clone();
                    next.last_error = Some(message.clone());
                    next.stale = stale;
                    for r in &mut next.reports {
                        r.stale = stale;
                    }
                    *s = Arc::new(next);
                });
                // Back off: 1, 2, 4 … intervals, at most 5 minutes (or one interval).
                let backoff = wall_interval.saturating_mul(1 << failures.min(6).saturating_sub(1));
                delay = backoff.min(Duration::from_secs(300).max(wall_interval));
            }
        }
        telemetry
            .poll_duration
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Serves the API on `listener` while the poll loop runs; both stop on `shutdown`
/// (the server after a bounded drain).
#[allow(clippy::too_many_arguments)]
pub async fn serve<S: Source + 'static>(
    pipeline: Pipeline<S>,
    config: &Config,
    clock: Arc<dyn Clock>,
    options: LoopOptions,
    listener: tokio::net::TcpListener,
    on_poll: OnPoll,
    fetch_totals: FetchCounter<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let telemetry = Arc::new(Telemetry::new(
        &config.extra_identity_labels,
        crate::telemetry::ExportRules {
            min_use: config.server.metrics_min_use,
            max_containers: config.server.metrics_max_containers,
        },
    ));
    let receivers = crate::notify::receivers(config)?;
    let names: Vec<String> = receivers.iter().map(|r| r.name().to_string()).collect();
    if !names.is_empty() {
        tracing::info!(receivers = %names.join(", "), "sending alerts");
    }
    let notifier = Arc::new(std::sync::Mutex::new(Some(crate::notify::Notifier::start(
        crate::notify::settings(config),
        receivers,
        crate::notify::policy(config),
        config.alerts.drain_timeout,
        Some(telemetry.clone()),
    ))));
    let mut on_poll = on_poll;
    let publisher = notifier.clone();
    let on_poll: OnPoll = Box::new(move |snapshot, transitions| {
        if let Some(n) = publisher.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let now = snapshot.evaluated_at.unwrap_or_default();
            n.publish(&snapshot.reports, now, |key| {
                snapshot.histories.get(key).map(|h| h.samples.as_slice())
            });
            for kill in &snapshot.new_oom_kills {
                let container = kill
                    .attributed_container
                    .as_deref()
                    .unwrap_or(&kill.reported_container);
                let report = snapshot.reports.iter().find(|r| {
                    r.namespace == kill.namespace && r.pod == kill.pod && r.container == container
                });
                match report {
                    Some(report) => n.publish_oom(kill, report, now),
                    None => tracing::warn!(
                        namespace = %kill.namespace,
                        pod = %kill.pod,
                        "no forecast for the OOM-killed pod's containers; the kill is logged and counted but not notified"
                    ),
                }
            }
        }
        on_poll(snapshot, transitions);
    });
    let (snapshots, receiver) = watch::channel(Arc::new(Snapshot::default()));
    let app = crate::api::router(crate::api::AppState {
        snapshots: receiver,
        telemetry: telemetry.clone(),
        request_timeout: config.server.request_timeout,
    });
    let (stop, mut stopped) = watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    poll_loop(
        pipeline,
        clock,
        options,
        telemetry,
        snapshots,
        on_poll,
        fetch_totals,
        shutdown,
    )
    .await;
    let _ = stop.send(true);
    // Queued notifications (the last resolutions among them) are delivered within
    // alerts.drain_timeout while the HTTP server drains.
    let notifier = notifier.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(n) = notifier {
        n.shutdown().await;
        tracing::info!("notifications drained");
    }
    match tokio::time::timeout(crate::app::SHUTDOWN_GRACE, server).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(anyhow::Error::from(e).context("the HTTP server failed")),
        Ok(Err(e)) => Err(anyhow::Error::from(e).context("the HTTP server task failed")),
        Err(_) => {
            tracing::warn!("the HTTP server did not drain within the grace period");
            Ok(())
        }
    }
}
