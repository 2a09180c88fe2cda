//! The one loop: source → store → model → a list of reports.
//!
//! [`Pipeline`] owns the store and a source. Each [`Pipeline::poll`] asks the source for
//! what is new since the last poll (the whole lookback the first time), folds it into
//! the store, and forecasts every container as of `now`. Callers pass `now`, so the same
//! pipeline serves the daemon (wall clock), `check --at` (a past instant) and tests.

use std::borrow::Cow;
use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};
use std::time::Duration;

use crate::config::Config;
use crate::explain::{self, ContainerAtKill, OomKill, PodContext};
use crate::model::{self, AlertParams, AlertState, ForecastParams, Memo, SegmentFacts, Trend};
use crate::report::{sort_by_urgency, ContainerReport};
use crate::source::{ContainerKey, PodRef, Source, SourceError, TimestampMs, Window};
use crate::store::{IngestSummary, Store, StoreLimits, Tracked};

/// Turns the config's forecast section into the model's parameters.
pub fn forecast_params(config: &Config) -> ForecastParams {
    ForecastParams {
        warning_horizon_seconds: config.forecast.warning_horizon.as_secs_f64(),
        critical_horizon_seconds: config.forecast.critical_horizon.as_secs_f64(),
        min_history_seconds: config.forecast.min_history.as_secs_f64(),
        ..ForecastParams::default()
    }
}

/// Turns the config's alert timing into the alert state machine's parameters.
pub fn alert_params(config: &Config) -> AlertParams {
    AlertParams {
        pending_warning_seconds: config.forecast.warning_pending.as_secs_f64(),
        pending_critical_seconds: config.forecast.critical_pending.as_secs_f64(),
        keep_firing_for_seconds: config.forecast.keep_firing_for.as_secs_f64(),
        hysteresis: AlertParams::default().hysteresis,
    }
}

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

/// What one poll did.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSummary {
    pub window: Option<Window>,
    /// What this poll stored, with what the stored pieces of a failed poll before it
    /// found (their samples lie before `window`).
    pub ingest: IngestSummary,
    pub containers: usize,
    /// OOM kills seen in this poll, attributed.
    pub oom_kills: Vec<OomKill>,
}

/// The most samples one query of a fetch asks for: a backfill of more is split in
/// time. A million samples is about 25 MB of JSON, far below Prometheus' default
/// `--query.max-samples` (50M) and its response limits, and bounds what headroom
/// holds while reading.
pub const SAMPLES_PER_FETCH: usize = 1_000_000;
/// The first piece of a backfill, before the number of containers is known: 10 min.
const FIRST_BACKFILL_STEPS: i64 = 20;

/// One container's state across evaluations: its alert, its kept fit, and the trend
/// last fitted (for charts).
#[derive(Debug, Default)]
struct Followed {
    alert: AlertState,
    memo: Memo,
    trend: Option<Trend>,
}

pub struct Pipeline<S> {
    source: S,
    store: Store,
    step: Duration,
    lookback: Duration,
    min_limit_bytes: f64,
    params: ForecastParams,
    alert_params: AlertParams,
    /// What each container carries from evaluation to evaluation.
    followed: FxHashMap<ContainerKey, Followed>,
    /// The end of the last window fetched; `None` until the first (backfill) poll.
    fetched_until: Option<TimestampMs>,
    /// Whether a whole window has been fetched: until then, kills found are history
    /// from before headroom started.
    caught_up: bool,
    /// When limits were last read, and how often to read them.
    limits_read_at: Option<TimestampMs>,
    limits_interval: Duration,
    /// The end of the last window restart counters and OOM reasons were read for,
    /// how often to read them, and whether a new segment asks for them sooner.
    restarts_until: Option<TimestampMs>,
    restarts_interval: Duration,
    restarts_due: bool,
    sidecar_names: Vec<String>,
    /// Pod metadata fetched for explanations, by pod (with its extra identity labels).
    /// When each was read: metadata still missing (kube-state-metrics lags a new
    /// pod) is asked again after two minutes.
    contexts: HashMap<PodRef, (TimestampMs, PodContext)>,
    /// Each namespace's (within its extra identity labels) pod → workload map and
    /// when it was read.
    owners: Owners,
    /// The most recent OOM kills, newest last.
    oom_kills: std::collections::VecDeque<OomKill>,
    /// What the stored pieces of a poll that then failed found (restarts, OOM
    /// reasons), carried into the next poll: the store has taken those restarts in,
    /// so no later poll would see them again, and their OOM kills would be lost.
    carried: Option<(IngestSummary, OomFlags)>,
    /// Samples one query may return (see [`SAMPLES_PER_FETCH`]).
    samples_per_fetch: usize,
    /// Working-set series the last answer carried, before a pod-mode shard kept its
    /// own: pieces are sized by it, not by this shard's containers alone.
    series_per_answer: usize,
    /// How often a backfill in pieces logs its progress.
    progress_every: std::time::Duration,
    /// The spacing of evaluations (ms): the poll interval, or the store's resolution
    /// when that is coarser. A kept fit is news-checked against one sample per step.
    evaluation_step_ms: i64,
}

/// OOM-termination readings by container: (time, 1 while the last one was an OOM kill).
type OomFlags = FxHashMap<ContainerKey, Vec<(TimestampMs, f64)>>;

impl<S: Source> Pipeline<S> {
    pub fn new(source: S, config: &Config) -> Self {
        let step = config.store.resolution;
        Pipeline {
            source,
            store: Store::new(StoreLimits {
                lookback_ms: config.store.lookback.as_millis() as i64,
                forget_after_ms: config.store.forget_after.as_millis() as i64,
                step_ms: step.as_millis() as i64,
            }),
            step,
            lookback: config.store.lookback,
            min_limit_bytes: config.forecast.min_limit_bytes as f64,
            params: forecast_params(config),
            alert_params: alert_params(config),
            followed: FxHashMap::default(),
            fetched_until: None,
            caught_up: false,
            carried: None,
            samples_per_fetch: SAMPLES_PER_FETCH,
            series_per_answer: 0,
            progress_every: std::time::Duration::from_secs(5),
            evaluation_step_ms: config
                .poll_interval
                .max(config.store.resolution)
                .as_millis() as i64,
            limits_read_at: None,
            limits_interval: config.limits_interval,
            restarts_until: None,
            restarts_interval: config.restarts_interval,
            restarts_due: false,
            sidecar_names: config.sidecar_names.clone(),
            contexts: HashMap::new(),
            owners: HashMap::new(),
            oom_kills: std::collections::VecDeque::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// The window the next poll at `now` would fetch: the whole lookback first, then
    /// only what is new. Bounds are aligned to the step so that consecutive polls see
    /// the same sample times. `None` when nothing new is due yet.
    pub fn next_window(&self, now: TimestampMs) -> Option<Window> {
        let step_ms = (self.step.as_millis() as i64).max(1);
        let end = now - now.rem_euclid(step_ms);
        let start = match self.fetched_until {
            Some(until) => until + step_ms,
            None => {
                let from = end - self.lookback.as_millis() as i64;
                from - from.rem_euclid(step_ms)
            }
        };
        let limits = self
            .limits_read_at
            .is_none_or(|t| end - t >= self.limits_interval.as_millis() as i64);
        let restarts_from = match self.restarts_until {
            None => Some(start),
            Some(until)
                if self.restarts_due
                    || end - until >= self.restarts_interval.as_millis() as i64 =>
            {
                Some((until + step_ms).min(start))
            }
            Some(_) => None,
        };
        (start <= end).then_some(Window {
            start,
            end,
            step: self.step,
            limits,
            restarts_from,
        })
    }

    /// The first fetch of a window: at most [`SAMPLES_PER_FETCH`] samples per query
    /// (by the number of containers known so far; the first piece of a backfill is
    /// short, to learn it), the whole window when that fits. Restart counters start
    /// where the window says (they may reach back further than its working set, and
    /// are few); limits are read with the piece that ends the window.
    fn next_piece(&self, window: Window) -> Window {
        let step_ms = (window.step.as_millis() as i64).max(1);
        let steps = if self.store.is_empty() && self.series_per_answer == 0 {
            FIRST_BACKFILL_STEPS
        } else {
            let series = self.store.len().max(self.series_per_answer).max(1);
            (self.samples_per_fetch / series).clamp(1, 1 << 20) as i64
        };
        let end = (window.start + (steps - 1) * step_ms).min(window.end);
        Window {
            end,
            limits: window.limits && end == window.end,
            ..window
        }
    }

    /// `now`, or the newest sample's time when that is past `now` by no more than the
    /// store's snapping (a tenth of a step, see `store::Samples`): a snapped time must
    /// not hide the newest sample. Samples further ahead (`check --at` replaying the
    /// past) are left to the model, which ignores them.
    fn not_before_snapped(&self, now: TimestampMs, newest: TimestampMs) -> TimestampMs {
        let tenth = self.step.as_millis() as i64 / 10;
        if newest > now && newest - now <= tenth {
            newest
        } else {
            now
        }
    }

    /// Fetches what is new as of `now` and folds it into the store.
    pub async fn poll(&mut self, now: TimestampMs) -> Result<PollSummary, SourceError> {
        let Some(window) = self.next_window(now) else {
            return Ok(PollSummary {
                window: None,
                ingest: IngestSummary::default(),
                containers: self.store.len(),
                oom_kills: Vec::new(),
            });
        };
        let backfill = !self.caught_up;
        let (mut ingest, mut oom_flags) = self.carried.take().unwrap_or_default();
        // A backfill (or a catch-up after an outage) is fetched and stored piece by
        // piece, so neither Prometheus nor headroom holds the whole lookback at once;
        // what is left is planned again after each piece, with the containers known.
        let step_ms = (self.step.as_millis() as i64).max(1);
        let mut remaining = Some(window);
        let mut progress_at = std::time::Instant::now();
        while let Some(rest) = remaining.take() {
            let piece = self.next_piece(rest);
            let batch = match self.source.fetch(piece).await {
                Ok(batch) => batch,
                Err(e) => {
                    self.carried = Some((ingest, oom_flags));
                    // The pieces left unread held restart counters too.
                    self.restarts_due |= piece.restarts_from.is_some();
                    return Err(e);
                }
            };
            if batch.series_without_identity > 0 {
                tracing::debug!(
                    series = batch.series_without_identity,
                    "ignored working-set series without namespace, pod or container"
                );
            }
            self.series_per_answer = batch.series_fetched;
            for (key, flags) in batch_oom(&batch) {
                oom_flags.entry(key).or_insert_with(Vec::new).extend(flags);
            }
            ingest.absorb(self.store.ingest(batch, piece.end));
            // A long backfill or catch-up says how far it has come, every few seconds.
            if piece.end < window.end && progress_at.elapsed() >= self.progress_every {
                progress_at = std::time::Instant::now();
                let span = (window.end - window.start + step_ms) as f64;
                let percent = ((piece.end - window.start + step_ms) as f64 / span * 100.0).floor();
                tracing::info!(
                    containers = self.store.len(),
                    samples = ingest.samples_added,
                    percent,
                    "{} {percent:.0}% done: {} of {} fetched",
                    if backfill { "backfill" } else { "catch-up" },
                    crate::units::format_duration_short(
                        ((piece.end - window.start + step_ms) / 1000) as f64
                    ),
                    crate::units::format_duration_short(span / 1000.0),
                );
            }
            self.fetched_until = Some(piece.end);
            if piece.restarts_from.is_some() {
                self.restarts_until = Some(piece.end);
            }
            if piece.limits {
                self.limits_read_at = Some(piece.end);
            }
            let next = piece.end + step_ms;
            if next <= window.end {
                remaining = Some(Window {
                    start: next,
                    restarts_from: window.restarts_from.map(|_| next),
                    ..window
                });
            }
        }
        self.caught_up = true;
        if !window.limits && ingest.new_containers > 0 {
            // New containers: read their limits at the next poll, not minutes later.
            self.limits_read_at = None;
        }
        if window.restarts_from.is_some() {
            self.restarts_due = false;
        } else if ingest.new_incarnations > 0 || ingest.sudden_drops > 0 {
            // A container restarted (a new container id), or one without an id fell
            // sharply: read the restart counters and why at the next poll.
            self.restarts_due = true;
        }
        let mut kills = Vec::new();
        for (key, at) in &ingest.restarts {
            // The OOMKilled reason shows up with the restart, within a few scrapes.
            let was_oom = oom_flags.get(key).is_some_and(|flags| {
                flags
                    .iter()
                    .any(|&(t, v)| t >= at - 2 * step_ms && t <= at + 10 * step_ms && v >= 1.0)
            });
            if was_oom {
                kills.push(self.attribute(key, *at));
            }
        }
        for kill in &kills {
            if backfill {
                // Kills from before headroom started: history, not news.
                self.oom_kills.push_back(kill.clone());
                continue;
            }
            tracing::warn!(
                namespace = %kill.namespace,
                pod = %kill.pod,
                reported = %kill.reported_container,
                attributed = kill.attributed_container.as_deref().unwrap_or("-"),
                "{}",
                kill.sentence
            );
            self.oom_kills.push_back(kill.clone());
            if self.oom_kills.len() > 100 {
                self.oom_kills.pop_front();
            }
        }
        Ok(PollSummary {
            window: Some(window),
            ingest,
            containers: self.store.len(),
            oom_kills: if backfill { Vec::new() } else { kills },
        })
    }

    /// Which container of the pod was at its limit just before `at`.
    fn attribute(&self, reported: &ContainerKey, at: TimestampMs) -> OomKill {
        let containers = self
            .store
            .iter()
            .filter(|(k, _)| {
                k.namespace == reported.namespace
                    && k.pod == reported.pod
                    && k.extra == reported.extra
            })
            .filter_map(|(k, tracked)| {
                let sample = tracked.sample_before(at)?;
                Some(ContainerAtKill {
                    container: k.container.clone(),
                    working_set_bytes: sample.bytes,
                    limit_bytes: tracked.limit.and_then(|l| l.bytes),
                })
            })
            .collect();
        let mut kill = explain::attribute(
            at,
            &reported.namespace,
            &reported.pod,
            &reported.container,
            containers,
        );
        kill.labels = reported.extra.iter().cloned().collect();
        kill
    }

    /// The most recent OOM kills, newest last.
    pub fn oom_kills(&self) -> Vec<OomKill> {
        self.oom_kills.iter().cloned().collect()
    }

    /// Adds what the cluster knows to the reports worth explaining (alerting or with a
    /// forecast severity): the owning workload, native sidecars, and the changes near
    /// the onset of growth. Best effort: a failed lookup is logged, not fatal.
    pub async fn explain(&mut self, reports: &mut [ContainerReport], now: TimestampMs) {
        // Each report's pod, and whether it is worth explaining, worked out once.
        let pods: Vec<PodRef> = reports.iter().map(ContainerReport::pod).collect();
        let worth: Vec<bool> = reports
            .iter()
            .map(|r| r.alert.is_some() || r.severity != model::Severity::None)
            .collect();
        let worth_pods = || pods.iter().zip(&worth).filter(|(_, w)| **w).map(|(p, _)| p);
        let wanted: Vec<PodRef> = {
            let mut wanted: Vec<PodRef> = worth_pods()
                .filter(|p| {
                    !self
                        .contexts
                        .get(*p)
                        .is_some_and(|(at, c)| c.started_at.is_some() || now - at < 120_000)
                })
                .cloned()
                .collect();
            wanted.sort();
            wanted.dedup();
            wanted
        };
        if !wanted.is_empty() {
            match self.source.context(&wanted, now).await {
                Ok(found) => {
                    for c in found {
                        self.contexts.insert(c.pod_ref(), (now, c));
                    }
                    // Remember pods with no metadata too, asked again after a while.
                    for p in wanted {
                        self.contexts
                            .entry(p)
                            .or_insert_with(|| (now, PodContext::default()));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "cannot read pod metadata for explanations")
                }
            }
        }
        // Workloads: every pod of the namespaces worth explaining (a namespace within
        // its extra identity labels: one cluster's `prod`), refreshed every five
        // minutes, so replicas can be counted.
        let scopes: std::collections::BTreeSet<(&str, &[(String, String)])> = worth_pods()
            .map(|p| (p.namespace.as_str(), p.extra.as_slice()))
            .collect();
        for &(ns, extra) in &scopes {
            let fresh = self
                .owners
                .get(ns)
                .and_then(|m| m.get(extra))
                .is_some_and(|(at, _)| now - at < 300_000 && *at <= now);
            if fresh {
                continue;
            }
            match self.source.owners(ns, extra, now).await {
                Ok(list) => {
                    self.owners
                        .entry(ns.to_string())
                        .or_default()
                        .insert(extra.to_vec(), (now, list.into_iter().collect()));
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %format!("{:#}", anyhow::Error::from(e)), "cannot read workload owners")
                }
            }
        }
        let horizon = self.params.critical_horizon_seconds;
        // Replicas are counted within one namespace of one cluster.
        let workloads: Vec<Option<&String>> = pods
            .iter()
            .map(|p| {
                let (_, map) = self.owners.get(&p.namespace)?.get(&p.extra)?;
                map.get(&p.pod)
            })
            .collect();
        type Peers<'a> = (&'a str, &'a [(String, String)], &'a str, &'a str);
        let mut tally: FxHashMap<Peers, (usize, usize)> = FxHashMap::default();
        let peers_of = |i: usize| -> Option<Peers> {
            let p = &pods[i];
            let w = workloads[i]?;
            Some((&p.namespace, &p.extra, w, &reports[i].container))
        };
        for (i, r) in reports.iter().enumerate() {
            if let Some(key) = peers_of(i) {
                let t = tally.entry(key).or_default();
                t.0 += 1;
                if r.time_to_limit_seconds.is_some_and(|s| s <= horizon) {
                    t.1 += 1;
                }
            }
        }
        let peers: Vec<Option<explain::WorkloadPeers>> = (0..reports.len())
            .map(|i| {
                let &(replicas, on_course) = tally.get(&peers_of(i)?)?;
                Some(explain::WorkloadPeers {
                    workload: workloads[i]?.clone(),
                    replicas,
                    on_course,
                    horizon_seconds: horizon,
                })
            })
            .collect();
        for ((r, w), p) in reports.iter_mut().zip(&workloads).zip(peers) {
            if let Some(w) = w {
                r.workload = Some((*w).clone());
                r.workload_peers = p;
            }
        }
        self.owners.retain(|ns, by_extra| {
            by_extra.retain(|extra, _| scopes.contains(&(ns.as_str(), extra.as_slice())));
            !by_extra.is_empty()
        });

        // Pod-level pressure: the pod's summed working set against its summed limits.
        // A pod is its namespace, name and extra identity labels (one `redis-0` per
        // cluster when a store holds several).
        // One pass over the store and one over the reports, not one per pod: with
        // thousands of pods worth explaining in a 100,000-container fleet, a scan per
        // pod took 19 s of a poll.
        let wanted: FxHashSet<PodId> = worth_pods()
            .map(|p| (p.namespace.as_str(), p.pod.as_str(), p.extra.as_slice()))
            .collect();
        let mut containers_of: FxHashMap<PodId, Vec<&Tracked>> = FxHashMap::default();
        for (k, t) in self.store.iter() {
            let id = (k.namespace.as_str(), k.pod.as_str(), k.extra.as_slice());
            if let Some(&pod) = wanted.get(&id) {
                containers_of.entry(pod).or_default().push(t);
            }
        }
        let pressures: FxHashMap<PodId, explain::PodPressure> = containers_of
            .iter()
            .filter_map(|(&pod, containers)| Some((pod, self.pod_pressure(containers, now)?)))
            .collect();
        for (r, p) in reports.iter_mut().zip(&pods) {
            let found = pressures
                .get(&(p.namespace.as_str(), p.pod.as_str(), p.extra.as_slice()))
                .copied();
            let Some(pressure) = found else {
                continue;
            };
            let own = r.time_to_limit_seconds.unwrap_or(f64::INFINITY);
            let pod_eta = pressure.time_to_limit_seconds.unwrap_or(f64::INFINITY);
            r.pod_pressure = Some(explain::PodPressure {
                applies: if pod_eta < own { "pod" } else { "container" },
                ..pressure
            });
        }

        // Envoy's own view, fresh every poll, for Envoy sidecars worth explaining.
        let envoy_pods: Vec<PodRef> = reports
            .iter()
            .zip(&pods)
            .zip(&worth)
            .filter(|((r, _), w)| **w && is_envoy(&r.container))
            .map(|((_, p), _)| p.clone())
            .collect();
        let envoy = if envoy_pods.is_empty() {
            Vec::new()
        } else {
            self.source.envoy(&envoy_pods, now).await.unwrap_or_else(|e| {
                tracing::debug!(error = %format!("{:#}", anyhow::Error::from(e)), "cannot read Envoy memory stats");
                Vec::new()
            })
        };
        tracing::debug!(
            pods = envoy_pods.len(),
            found = envoy.len(),
            "envoy memory stats"
        );
        for (r, pod) in reports.iter_mut().zip(&pods) {
            if is_envoy(&r.container) {
                r.envoy = envoy.iter().find(|(p, _)| p == pod).map(|(_, m)| *m);
            }
        }
        // Forget pods that are gone: one pass over the store, not one per pod.
        let live: FxHashSet<PodId> = self
            .store
            .iter()
            .map(|(k, _)| (k.namespace.as_str(), k.pod.as_str(), k.extra.as_slice()))
            .collect();
        self.contexts.retain(|p, _| {
            live.contains(&(p.namespace.as_str(), p.pod.as_str(), p.extra.as_slice()))
        });
        for (r, pod) in reports.iter_mut().zip(&pods) {
            let Some((_, ctx)) = self.contexts.get(pod) else {
                continue;
            };
            r.sidecar |= ctx.native_sidecars.contains(&r.container);
            if r.workload.is_none() {
                r.workload = ctx
                    .workload
                    .as_ref()
                    .map(|(kind, name)| format!("{kind}/{name}"));
            }
            if let Some(onset) = r
                .onset
                .as_deref()
                .and_then(|o| chrono::DateTime::parse_from_rfc3339(o).ok())
            {
                r.changes = explain::changes_near(onset.timestamp_millis(), ctx);
            }
        }
    }

    /// The forecast of a pod's total working set (its containers' current segments,
    /// summed where all have a sample) against the sum of their limits.
    fn pod_pressure(
        &self,
        containers: &[&Tracked],
        now: TimestampMs,
    ) -> Option<explain::PodPressure> {
        if containers.len() < 2 {
            return None;
        }
        let limit: Option<f64> = containers
            .iter()
            .map(|t| t.limit.and_then(|l| l.bytes))
            .sum();
        // Summed per step, not per timestamp: raw samples of a pod's containers carry
        // their own scrape (or cAdvisor) times.
        let step_ms = (self.step.as_millis() as i64).max(1);
        let mut totals: std::collections::BTreeMap<i64, (usize, f64)> = Default::default();
        for t in containers {
            let mut last_bucket = None;
            for s in t.current()?.samples.iter() {
                let bucket = s.at.div_euclid(step_ms);
                if last_bucket == Some(bucket) {
                    continue;
                }
                last_bucket = Some(bucket);
                let e = totals.entry(bucket).or_default();
                e.0 += 1;
                e.1 += s.bytes;
            }
        }
        let samples: Vec<model::Sample> = totals
            .into_iter()
            .filter(|(_, (n, _))| *n == containers.len())
            .map(|(bucket, (_, bytes))| model::Sample {
                at: bucket * step_ms,
                bytes,
            })
            .collect();
        let forecast = model::forecast(&samples, limit, now, &self.params);
        Some(explain::PodPressure {
            working_set_bytes: forecast.working_set_bytes,
            limit_bytes: limit,
            time_to_limit_seconds: forecast.time_to_limit.map(|t| t.seconds),
            applies: "container",
        })
    }

    /// A limit below `forecast.min_limit` is treated as none, in reports too.
    fn drop_nonsense_limit(&self, report: &mut ContainerReport) {
        if report.limit_bytes.is_some_and(|l| l < self.min_limit_bytes) {
            report.limit_bytes = None;
            report.use_ratio = None;
        }
    }

    fn is_sidecar(&self, key: &ContainerKey, tracked: &Tracked) -> bool {
        self.sidecar_names
            .iter()
            .any(|g| crate::notify::glob(g, &key.container))
            || tracked
                .limit
                .is_some_and(|l| l.source == crate::source::LimitSource::KubeStateMetricsInit)
    }

    /// Forecasts every container as of `now` and folds each forecast into its alert
    /// state: what the daemon does every poll. Most urgent first.
    pub fn evaluate(&mut self, now: TimestampMs) -> Vec<ContainerReport> {
        let mut reports = Vec::with_capacity(self.store.len());
        for (key, tracked) in self.store.iter() {
            let Some(segment) = tracked.current() else {
                continue;
            };
            let Some(latest) = segment.samples.last() else {
                continue;
            };
            let now = self.not_before_snapped(now, latest.at);
            let limit = tracked
                .limit
                .and_then(|l| l.bytes)
                .filter(|&b| b >= self.min_limit_bytes);
            let followed = match self.followed.get_mut(key) {
                Some(f) => f,
                None => self.followed.entry(key.clone()).or_default(),
            };
            let facts = SegmentFacts {
                start: segment.began,
                latest,
                step_ms: self.evaluation_step_ms,
            };
            let forecast = followed.memo.forecast(
                facts,
                || Cow::Owned(segment.samples.to_vec()),
                || previous_run(tracked, self.step.as_millis() as i64, limit).map(Cow::Owned),
                limit,
                now,
                &self.params,
            );
            let alert = followed
                .alert
                .update(&forecast, &self.params, &self.alert_params, now);
            followed.trend = forecast.trend;
            let mut report = ContainerReport::new(key, tracked, &forecast, now);
            self.drop_nonsense_limit(&mut report);
            report.alert = alert;
            report.sidecar = self.is_sidecar(key, tracked);
            reports.push(report);
        }
        // Containers the store forgot take their alert state with them.
        let store = &self.store;
        self.followed.retain(|key, _| store.get(key).is_some());
        sort_by_urgency(&mut reports);
        reports
    }

    /// Replays the evaluations of the `warmup` before `at` (one per step) so that
    /// alerts carry their pending periods, as in a daemon that had been running: what
    /// `check` prints.
    pub fn evaluate_with_warmup(
        &mut self,
        at: TimestampMs,
        warmup: Duration,
    ) -> Vec<ContainerReport> {
        let step = (self.step.as_millis() as i64).max(1);
        let mut t = at - warmup.as_millis() as i64;
        while t < at {
            self.evaluate(t);
            t += step;
        }
        self.evaluate(at)
    }

    /// Fits run and evaluations answered from a kept fit so far, over all containers
    /// followed now (see `model::reuse`): what benchmarks print.
    pub fn fit_counts(&self) -> (u64, u64) {
        self.followed
            .values()
            .fold((0, 0), |(f, r), x| (f + x.memo.fits, r + x.memo.reuses))
    }

    /// A container's recent history for charts, at most [`HISTORY_POINTS`] points
    /// (each the highest sample of its stretch, so peaks survive).
    pub fn history(&self, key: &ContainerKey) -> Option<ContainerHistory> {
        let tracked = self.store.get(key)?;
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
        Some(ContainerHistory {
            samples,
            segment_starts,
            trend: self.followed.get(key).and_then(|f| f.trend),
        })
    }
}

/// Sidecars that are Envoy, whose stats say where their memory goes.
fn is_envoy(container: &str) -> bool {
    matches!(container, "istio-proxy" | "envoy" | "envoy-sidecar")
}

/// A pod borrowed from a container key: namespace, name, extra identity labels.
type PodId<'a> = (&'a str, &'a str, &'a [(String, String)]);

/// Workload owners of each namespace, by the extra identity labels (one cluster's
/// `prod`): pod → "Kind/name", and when they were read.
type Owners =
    HashMap<String, HashMap<Vec<(String, String)>, (TimestampMs, HashMap<String, String>)>>;

/// The samples of the incarnation before the current one, for a forecast from the run
/// before (`model::recurrence`): only while it is whole (the lookback has not trimmed
/// its start, so ages line up), lasted longer than the current one so far, and ended
/// at the `limit` (checked from its last sample before unpacking it all).
fn previous_run(tracked: &Tracked, step_ms: i64, limit: Option<f64>) -> Option<Vec<model::Sample>> {
    let [.., previous, current] = tracked.segments.as_slice() else {
        return None;
    };
    if previous.samples.last()?.bytes < model::recurrence::RAN_OUT * limit? {
        return None;
    }
    let whole = previous.start()? <= previous.began + step_ms;
    let longer = previous.end()? - previous.began > current.end()? - current.began;
    (whole && longer).then(|| previous.samples.to_vec())
}

/// The OOM-termination flags of a batch by container.
fn batch_oom(batch: &crate::source::Batch) -> OomFlags {
    batch
        .oom_terminations
        .iter()
        .map(|s| (s.key.clone(), s.samples.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::Sample;
    use crate::source::{Batch, WorkingSetSeries};

    /// Records the windows asked for; serves one container, two from `grow_at`; the
    /// first restarts with a new container id at `restart_at`.
    struct Recording {
        asked: Mutex<Vec<Window>>,
        grow_at: TimestampMs,
        restart_at: TimestampMs,
    }

    impl Recording {
        fn new(grow_at: TimestampMs, restart_at: TimestampMs) -> Self {
            Recording {
                asked: Mutex::new(vec![]),
                grow_at,
                restart_at,
            }
        }

        /// The last window of each poll (a backfill is fetched in pieces).
        fn polls(&self, minutes: i64) -> Vec<Window> {
            let asked = self.asked.lock().unwrap();
            (0..=minutes)
                .map(|m| {
                    *asked
                        .iter()
                        .rfind(|w| w.end == m * 60_000)
                        .expect("every poll fetched")
                })
                .collect()
        }
    }

    impl Source for Recording {
        async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
            self.asked.lock().unwrap().push(window);
            let containers = if window.end >= self.grow_at { 2 } else { 1 };
            Ok(Batch {
                working_sets: (0..containers)
                    .map(|i| WorkingSetSeries {
                        key: ContainerKey {
                            namespace: "n".into(),
                            pod: format!("p{i}"),
                            container: "c".into(),
                            extra: vec![],
                        },
                        container_id: Some(
                            if i == 0 && window.end >= self.restart_at {
                                "b"
                            } else {
                                "a"
                            }
                            .into(),
                        ),
                        samples: vec![Sample {
                            at: window.end,
                            bytes: 1.0,
                        }],
                    })
                    .collect(),
                ..Batch::default()
            })
        }
    }

    #[tokio::test]
    async fn limits_are_read_every_limits_interval_and_for_new_containers() {
        let config = Config::default();
        let minute = 60_000;
        let source = Recording::new(7 * minute, i64::MAX);
        let mut p = Pipeline::new(source, &config);
        for m in 0..=8 {
            p.poll(m * minute).await.unwrap();
        }
        let asked: Vec<bool> = p.source().polls(8).iter().map(|w| w.limits).collect();
        // 0: backfill; 5: five minutes later; 7: a new container appeared (no limits
        // read), so 8 reads them.
        assert_eq!(
            asked,
            vec![true, false, false, false, false, true, false, false, true]
        );
    }

    #[tokio::test]
    async fn restarts_are_read_every_restarts_interval_and_after_a_new_incarnation() {
        let config = Config::default();
        let minute = 60_000;
        let source = Recording::new(i64::MAX, 7 * minute);
        let mut p = Pipeline::new(source, &config);
        for m in 0..=12 {
            p.poll(m * minute).await.unwrap();
        }
        let from: Vec<Option<i64>> = p
            .source()
            .polls(12)
            .iter()
            .map(|w| w.restarts_from)
            .collect();
        // 0: backfill; 5: five minutes on, covering all since 0; 7: a new container
        // id, so 8 reads all since 5; then 13 would be next.
        let mut expected = vec![None; 13];
        expected[5] = Some(30_000);
        expected[8] = Some(5 * minute + 30_000);
        assert_eq!(from[1..], expected[1..]);
        assert!(from[0].is_some());
    }

    /// One container without container ids, its restart counter going 0 -> 1 at
    /// `restart_at` with an OOMKilled reason; the fetch of any window starting after
    /// `fail_after` fails once.
    struct FailsOnce {
        restart_at: TimestampMs,
        fail_after: TimestampMs,
        failed: Mutex<bool>,
    }

    impl Source for FailsOnce {
        async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
            if window.start > self.fail_after
                && !std::mem::replace(&mut *self.failed.lock().unwrap(), true)
            {
                return Err(SourceError {
                    what: "working set",
                    source: crate::source::prometheus::QueryError::Timeout {
                        url: "http://127.0.0.1:9/".into(),
                        timeout: Duration::from_secs(1),
                    },
                });
            }
            let key = ContainerKey {
                namespace: "n".into(),
                pod: "p".into(),
                container: "c".into(),
                extra: vec![],
            };
            let steps = (window.start / 30_000)..=(window.end / 30_000);
            let at = |i: i64| i * 30_000;
            let mut batch = Batch::default();
            batch.working_sets.push(WorkingSetSeries {
                key: key.clone(),
                container_id: None,
                samples: steps
                    .clone()
                    .map(|i| Sample {
                        at: at(i),
                        bytes: if at(i) < self.restart_at { 100.0 } else { 10.0 },
                    })
                    .collect(),
            });
            if let Some(from) = window.restarts_from {
                let read = (from / 30_000)..=(window.end / 30_000);
                batch.restarts.push(crate::source::RestartSeries {
                    key: key.clone(),
                    samples: read
                        .clone()
                        .map(|i| (at(i), if at(i) < self.restart_at { 0.0 } else { 1.0 }))
                        .collect(),
                });
                batch.oom_terminations.push(crate::source::RestartSeries {
                    key,
                    samples: read
                        .filter(|&i| at(i) >= self.restart_at)
                        .map(|i| (at(i), 1.0))
                        .collect(),
                });
            }
            Ok(batch)
        }
    }

    /// A catch-up fetched in pieces whose second piece fails: the restart and OOM
    /// reason the first piece stored are carried into the next poll, which reports
    /// the kill. Before, the store had taken the restart in and nothing saw it again.
    #[tokio::test]
    async fn an_oom_kill_survives_a_piece_that_fails() {
        let config = Config::default();
        let step = 30_000;
        let t0 = 100_000 * step;
        let source = FailsOnce {
            restart_at: t0 + 10 * step,
            fail_after: t0 + 15 * step,
            failed: Mutex::new(false),
        };
        let mut p = Pipeline::new(source, &config);
        p.poll(t0).await.unwrap();
        // One container: pieces of 20 steps.
        p.samples_per_fetch = 20;
        let outage_over = t0 + 60 * step;
        assert!(p.poll(outage_over).await.is_err(), "the second piece fails");
        assert!(p.carried.is_some());
        let summary = p.poll(outage_over + step).await.unwrap();
        assert_eq!(summary.oom_kills.len(), 1, "{summary:?}");
        assert!(p.carried.is_none(), "carried once");
        // 20 samples stored before the failure, 41 after: each counted once.
        assert_eq!(summary.ingest.samples_added, 61, "{summary:?}");
        assert_eq!(summary.ingest.new_containers, 0);
        assert_eq!(p.oom_kills().len(), 1);
        let summary = p.poll(outage_over + 2 * step).await.unwrap();
        assert!(summary.oom_kills.is_empty(), "reported once: {summary:?}");
    }

    /// One container of this shard, in answers that carry four shards' worth of series
    /// (pod-mode sharding filters after the query); records the windows asked.
    struct OneOfFourShards {
        asked: Mutex<Vec<Window>>,
    }

    impl Source for OneOfFourShards {
        async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
            self.asked.lock().unwrap().push(window);
            Ok(Batch {
                working_sets: vec![WorkingSetSeries {
                    key: ContainerKey {
                        namespace: "n".into(),
                        pod: "p".into(),
                        container: "c".into(),
                        extra: vec![],
                    },
                    container_id: Some("a".into()),
                    samples: (window.start / 30_000..=window.end / 30_000)
                        .map(|i| Sample {
                            at: i * 30_000,
                            bytes: 1.0,
                        })
                        .collect(),
                }],
                series_fetched: 4,
                ..Batch::default()
            })
        }
    }

    /// Pieces are sized by the series an answer carries, not by this shard's
    /// containers: four shards' worth in each answer, a quarter of the steps.
    #[tokio::test]
    async fn pieces_are_sized_by_what_answers_carry_not_by_the_shard() {
        let config = Config::default();
        let step = 30_000;
        let t0 = 100_000 * step;
        let mut p = Pipeline::new(
            OneOfFourShards {
                asked: Mutex::new(vec![]),
            },
            &config,
        );
        p.poll(t0).await.unwrap();
        p.samples_per_fetch = 40;
        let asked_before = p.source().asked.lock().unwrap().len();
        p.poll(t0 + 60 * step).await.unwrap();
        let asked = p.source().asked.lock().unwrap()[asked_before..].to_vec();
        assert_eq!(asked.len(), 6, "60 steps in pieces of 10: {asked:?}");
        assert!(
            asked.iter().all(|w| (w.end - w.start) / step == 9),
            "{asked:?}"
        );
    }

    /// A backfill in pieces logs how far it has come (here at every piece but the
    /// last); a poll after it does not.
    #[tokio::test]
    async fn a_backfill_in_pieces_logs_its_progress() {
        #[derive(Clone, Default)]
        struct Log(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let config = Config::default();
        let mut p = Pipeline::new(
            OneOfFourShards {
                asked: Mutex::new(vec![]),
            },
            &config,
        );
        p.samples_per_fetch = 400;
        p.progress_every = Duration::ZERO;
        let now = 100_000 * 30_000;
        p.poll(now).await.unwrap();
        let pieces = p.source().asked.lock().unwrap().len();
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("% done")).collect();
        assert_eq!(lines.len(), pieces - 1, "{text}");
        assert!(
            lines[0].contains("backfill 2% done: 10m of 6h") && lines[0].contains("containers=1"),
            "{}",
            lines[0]
        );
        p.poll(now + 30_000).await.unwrap();
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.contains("% done")).count(),
            pieces - 1
        );
    }

    /// Two clusters, each with a `redis-0` pod of two containers; cluster a's redis
    /// leaks toward its limit.
    struct TwoClusters;

    impl Source for TwoClusters {
        async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
            let key = |cluster: &str, container: &str| ContainerKey {
                namespace: "db".into(),
                pod: "redis-0".into(),
                container: container.into(),
                extra: vec![("cluster".into(), cluster.into())],
            };
            let mut batch = Batch::default();
            for (cluster, limit) in [("a", 256.0), ("b", 1024.0)] {
                for container in ["redis", "exporter"] {
                    let leaking = cluster == "a" && container == "redis";
                    let samples = (window.start / 30_000..=window.end / 30_000)
                        .map(|i| Sample {
                            at: i * 30_000,
                            bytes: 4096.0
                                * if leaking {
                                    (10_000 + (i - 99_000) * 40) as f64
                                } else {
                                    10_000.0
                                },
                        })
                        .collect();
                    batch.working_sets.push(WorkingSetSeries {
                        key: key(cluster, container),
                        container_id: None,
                        samples,
                    });
                    batch.limits.push(crate::source::LimitReading {
                        key: key(cluster, container),
                        bytes: Some(limit * 1024.0 * 1024.0),
                        source: crate::source::LimitSource::KubeStateMetrics,
                    });
                }
            }
            Ok(batch)
        }

        async fn context(
            &self,
            pods: &[PodRef],
            _at: TimestampMs,
        ) -> Result<Vec<PodContext>, SourceError> {
            // Each cluster's redis-0 belongs to a StatefulSet named after it.
            Ok(pods
                .iter()
                .map(|p| PodContext {
                    namespace: p.namespace.clone(),
                    pod: p.pod.clone(),
                    extra: p.extra.clone(),
                    workload: Some(("StatefulSet".into(), format!("redis-{}", p.extra[0].1))),
                    native_sidecars: vec!["exporter".into()],
                    ..PodContext::default()
                })
                .collect())
        }

        async fn owners(
            &self,
            namespace: &str,
            extra: &[(String, String)],
            _at: TimestampMs,
        ) -> Result<Vec<(String, String)>, SourceError> {
            assert_eq!(namespace, "db");
            Ok(vec![(
                "redis-0".into(),
                format!("StatefulSet/redis-{}", extra[0].1),
            )])
        }
    }

    #[tokio::test]
    async fn pod_pressure_keeps_same_named_pods_of_two_clusters_apart() {
        let config = Config::parse_str(
            "identity:\n  extra_labels: [cluster]\n",
            "test",
            &Default::default(),
        )
        .unwrap();
        let mut p = Pipeline::new(TwoClusters, &config);
        let now = 100_000 * 30_000;
        p.poll(now).await.unwrap();
        let mut reports = p.evaluate(now);
        p.explain(&mut reports, now).await;
        let redis_a = reports
            .iter()
            .find(|r| {
                r.container == "redis" && r.labels.get("cluster").map(String::as_str) == Some("a")
            })
            .unwrap();
        assert!(redis_a.severity != model::Severity::None, "{redis_a:?}");
        let pressure = redis_a
            .pod_pressure
            .expect("cluster a's pod is worth explaining");
        assert_eq!(
            pressure.limit_bytes,
            Some(2.0 * 256.0 * 1024.0 * 1024.0),
            "only cluster a's two containers"
        );
        // Pod metadata and workloads are asked and kept per cluster too.
        assert_eq!(redis_a.workload.as_deref(), Some("StatefulSet/redis-a"));
        assert!(p
            .contexts
            .keys()
            .all(|k| k.extra == vec![("cluster".to_string(), "a".to_string())]));
    }

    #[tokio::test]
    async fn a_backfill_is_fetched_in_pieces_that_cover_the_lookback_once() {
        let config = Config::default();
        let source = Recording::new(i64::MAX, i64::MAX);
        let mut p = Pipeline::new(source, &config);
        let now = 1_000 * 3_600_000;
        p.poll(now).await.unwrap();
        let asked = p.source().asked.lock().unwrap().clone();
        assert!(asked.len() >= 2, "{asked:?}");
        assert_eq!(asked[0].start, now - 6 * 3_600_000);
        assert_eq!(
            asked[0].end - asked[0].start,
            (FIRST_BACKFILL_STEPS - 1) * 30_000
        );
        for pair in asked.windows(2) {
            assert_eq!(pair[1].start, pair[0].end + 30_000, "{asked:?}");
        }
        assert_eq!(asked.last().unwrap().end, now);
        assert!(asked.iter().all(|w| w.restarts_from == Some(w.start)));
        assert_eq!(asked.iter().filter(|w| w.limits).count(), 1);
        assert!(asked.last().unwrap().limits);
    }
}
