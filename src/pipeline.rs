//! The one loop: source → store → model → a list of reports.
//!
//! [`Pipeline`] owns the store and a source. Each [`Pipeline::poll`] asks the source for
//! what is new since the last poll (the whole lookback the first time), folds it into
//! the store, and forecasts every container as of `now`. Callers pass `now`, so the same
//! pipeline serves the daemon (wall clock), `check --at` (a past instant) and tests.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use crate::config::Config;
use crate::explain::{self, ContainerAtKill, OomKill, PodContext};
use crate::model::{self, AlertParams, AlertState, ForecastParams, Memo, SegmentFacts, Trend};
use crate::report::{sort_by_urgency, ContainerReport};
use crate::source::{ContainerKey, Source, SourceError, TimestampMs, Window};
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
    pub ingest: IngestSummary,
    pub containers: usize,
    /// OOM kills seen in this poll, attributed.
    pub oom_kills: Vec<OomKill>,
}

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
    followed: HashMap<ContainerKey, Followed>,
    /// The end of the last window fetched; `None` until the first (backfill) poll.
    fetched_until: Option<TimestampMs>,
    /// When limits were last read, and how often to read them.
    limits_read_at: Option<TimestampMs>,
    limits_interval: Duration,
    sidecar_names: Vec<String>,
    /// Pod metadata fetched for explanations, by (namespace, pod).
    /// When each was read: metadata still missing (kube-state-metrics lags a new
    /// pod) is asked again after two minutes.
    contexts: HashMap<(String, String), (TimestampMs, PodContext)>,
    /// Each namespace's pod → workload map and when it was read.
    owners: HashMap<String, (TimestampMs, HashMap<String, String>)>,
    /// The most recent OOM kills, newest last.
    oom_kills: std::collections::VecDeque<OomKill>,
}

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
            followed: HashMap::new(),
            fetched_until: None,
            limits_read_at: None,
            limits_interval: config.limits_interval,
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
        (start <= end).then_some(Window {
            start,
            end,
            step: self.step,
            limits,
        })
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
        let batch = self.source.fetch(window).await?;
        if batch.series_without_identity > 0 {
            tracing::debug!(
                series = batch.series_without_identity,
                "ignored working-set series without namespace, pod or container"
            );
        }
        let backfill = self.fetched_until.is_none();
        let oom_flags = batch_oom(&batch);
        let ingest = self.store.ingest(batch, window.end);
        self.fetched_until = Some(window.end);
        if window.limits {
            self.limits_read_at = Some(window.end);
        } else if ingest.new_containers > 0 {
            // New containers: read their limits at the next poll, not minutes later.
            self.limits_read_at = None;
        }
        let step_ms = self.step.as_millis() as i64;
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
        explain::attribute(
            at,
            &reported.namespace,
            &reported.pod,
            &reported.container,
            containers,
        )
    }

    /// The most recent OOM kills, newest last.
    pub fn oom_kills(&self) -> Vec<OomKill> {
        self.oom_kills.iter().cloned().collect()
    }

    /// Adds what the cluster knows to the reports worth explaining (alerting or with a
    /// forecast severity): the owning workload, native sidecars, and the changes near
    /// the onset of growth. Best effort: a failed lookup is logged, not fatal.
    pub async fn explain(&mut self, reports: &mut [ContainerReport], now: TimestampMs) {
        let wanted: Vec<(String, String)> = {
            let mut pods: Vec<(String, String)> = reports
                .iter()
                .filter(|r| r.alert.is_some() || r.severity != model::Severity::None)
                .map(|r| (r.namespace.clone(), r.pod.clone()))
                .filter(|p| {
                    !self
                        .contexts
                        .get(p)
                        .is_some_and(|(at, c)| c.started_at.is_some() || now - at < 120_000)
                })
                .collect();
            pods.sort();
            pods.dedup();
            pods
        };
        if !wanted.is_empty() {
            match self.source.context(&wanted, now).await {
                Ok(found) => {
                    for c in found {
                        self.contexts
                            .insert((c.namespace.clone(), c.pod.clone()), (now, c));
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
        // Workloads: every pod of the namespaces worth explaining, refreshed every
        // five minutes, so replicas can be counted.
        let namespaces: Vec<String> = {
            let mut ns: Vec<String> = reports
                .iter()
                .filter(|r| r.alert.is_some() || r.severity != model::Severity::None)
                .map(|r| r.namespace.clone())
                .collect();
            ns.sort();
            ns.dedup();
            ns
        };
        for ns in &namespaces {
            let fresh = self
                .owners
                .get(ns)
                .is_some_and(|(at, _)| now - at < 300_000 && *at <= now);
            if fresh {
                continue;
            }
            match self.source.owners(ns, now).await {
                Ok(list) => {
                    self.owners
                        .insert(ns.clone(), (now, list.into_iter().collect()));
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %format!("{:#}", anyhow::Error::from(e)), "cannot read workload owners")
                }
            }
        }
        let horizon = self.params.critical_horizon_seconds;
        let mut tally: HashMap<(String, String, String), (usize, usize)> = HashMap::new();
        for r in reports.iter_mut() {
            let Some((_, map)) = self.owners.get(&r.namespace) else {
                continue;
            };
            if let Some(w) = map.get(&r.pod) {
                r.workload = Some(w.clone());
                let t = tally
                    .entry((r.namespace.clone(), w.clone(), r.container.clone()))
                    .or_default();
                t.0 += 1;
                if r.time_to_limit_seconds.is_some_and(|s| s <= horizon) {
                    t.1 += 1;
                }
            }
        }
        for r in reports.iter_mut() {
            let Some(w) = r.workload.clone() else {
                continue;
            };
            let key = (r.namespace.clone(), w.clone(), r.container.clone());
            if let Some(&(replicas, on_course)) = tally.get(&key) {
                r.workload_peers = Some(explain::WorkloadPeers {
                    workload: w,
                    replicas,
                    on_course,
                    horizon_seconds: horizon,
                });
            }
        }
        self.owners.retain(|ns, _| namespaces.contains(ns));

        // Pod-level pressure: the pod's summed working set against its summed limits.
        let pods: std::collections::BTreeSet<(String, String)> = reports
            .iter()
            .filter(|r| r.alert.is_some() || r.severity != model::Severity::None)
            .map(|r| (r.namespace.clone(), r.pod.clone()))
            .collect();
        for (ns, pod) in pods {
            let Some(pressure) = self.pod_pressure(&ns, &pod, now) else {
                continue;
            };
            for r in reports
                .iter_mut()
                .filter(|r| r.namespace == ns && r.pod == pod)
            {
                let own = r.time_to_limit_seconds.unwrap_or(f64::INFINITY);
                let pod_eta = pressure.time_to_limit_seconds.unwrap_or(f64::INFINITY);
                r.pod_pressure = Some(explain::PodPressure {
                    applies: if pod_eta < own { "pod" } else { "container" },
                    ..pressure
                });
            }
        }

        // Envoy's own view, fresh every poll, for Envoy sidecars worth explaining.
        let envoy_pods: Vec<(String, String)> = reports
            .iter()
            .filter(|r| {
                (r.alert.is_some() || r.severity != model::Severity::None) && is_envoy(&r.container)
            })
            .map(|r| (r.namespace.clone(), r.pod.clone()))
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
        for r in reports.iter_mut().filter(|r| is_envoy(&r.container)) {
            r.envoy = envoy
                .iter()
                .find(|(ns, pod, _)| *ns == r.namespace && *pod == r.pod)
                .map(|(_, _, m)| *m);
        }
        // Forget pods that are gone: one pass over the store, not one per pod.
        let live: std::collections::HashSet<(&str, &str)> = self
            .store
            .iter()
            .map(|(k, _)| (k.namespace.as_str(), k.pod.as_str()))
            .collect();
        self.contexts
            .retain(|(ns, pod), _| live.contains(&(ns.as_str(), pod.as_str())));
        for r in reports.iter_mut() {
            let Some((_, ctx)) = self.contexts.get(&(r.namespace.clone(), r.pod.clone())) else {
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
    fn pod_pressure(&self, ns: &str, pod: &str, now: TimestampMs) -> Option<explain::PodPressure> {
        let containers: Vec<&Tracked> = self
            .store
            .iter()
            .filter(|(k, _)| k.namespace == ns && k.pod == pod)
            .map(|(_, t)| t)
            .collect();
        if containers.len() < 2 {
            return None;
        }
        let limit: Option<f64> = containers
            .iter()
            .map(|t| t.limit.and_then(|l| l.bytes))
            .sum();
        let mut totals: std::collections::BTreeMap<TimestampMs, (usize, f64)> = Default::default();
        for t in &containers {
            for s in t.current()?.samples.iter() {
                let e = totals.entry(s.at).or_default();
                e.0 += 1;
                e.1 += s.bytes;
            }
        }
        let samples: Vec<model::Sample> = totals
            .into_iter()
            .filter(|(_, (n, _))| *n == containers.len())
            .map(|(at, (_, bytes))| model::Sample { at, bytes })
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

    /// Forecasts every tracked container as of `now`, most urgent first, without
    /// touching alert states (`alert` stays as the last evaluation left it).
    pub fn reports(&self, now: TimestampMs) -> Vec<ContainerReport> {
        let mut reports: Vec<ContainerReport> = self
            .store
            .iter()
            .filter_map(|(key, tracked)| {
                let forecast = self.forecast(tracked, now)?;
                let mut report = ContainerReport::new(key, tracked, &forecast, now);
                self.drop_nonsense_limit(&mut report);
                report.alert = self.followed.get(key).and_then(|f| f.alert.firing());
                report.sidecar = self.is_sidecar(key, tracked);
                Some(report)
            })
            .collect();
        sort_by_urgency(&mut reports);
        reports
    }

    fn forecast(&self, tracked: &Tracked, now: TimestampMs) -> Option<model::Forecast> {
        let segment = tracked.current()?;
        let limit = tracked
            .limit
            .and_then(|l| l.bytes)
            .filter(|&b| b >= self.min_limit_bytes);
        Some(model::forecast(
            &segment.samples.to_vec(),
            limit,
            now,
            &self.params,
        ))
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
            };
            let forecast = followed.memo.forecast(
                facts,
                || Cow::Owned(segment.samples.to_vec()),
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

/// The OOM-termination flags of a batch by container.
fn batch_oom(batch: &crate::source::Batch) -> HashMap<ContainerKey, Vec<(TimestampMs, f64)>> {
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

    /// Records which windows asked for limits; serves one container, two from `grow_at`.
    struct Recording {
        asked: Mutex<Vec<bool>>,
        grow_at: TimestampMs,
    }

    impl Source for Recording {
        async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
            self.asked.lock().unwrap().push(window.limits);
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
                        container_id: None,
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
        let source = Recording {
            asked: Mutex::new(vec![]),
            grow_at: 7 * minute,
        };
        let mut p = Pipeline::new(source, &config);
        for m in 0..=8 {
            p.poll(m * minute).await.unwrap();
        }
        let asked = p.source().asked.lock().unwrap().clone();
        // 0: backfill; 5: five minutes later; 7: a new container appeared (no limits
        // read), so 8 reads them.
        assert_eq!(
            asked,
            vec![true, false, false, false, false, true, false, false, true]
        );
    }
}
