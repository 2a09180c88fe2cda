//! Reads Kubernetes container memory from Prometheus: cAdvisor's working set, and the
//! limit from kube-state-metrics (containers and native sidecars) or, without
//! kube-state-metrics, from cAdvisor.

use std::collections::HashMap;

use super::config::{Queries, Shard, ShardMode};
use super::metadata::{EnvoyMemory, MetadataReader, PodContext};
use super::prometheus::{InstantSample, PrometheusClient, QueryError, RangeSeries};
use super::promql::{add_matchers, plain_selectors, regex_escape};
use super::{
    Batch, ContainerKey, LimitReading, LimitSource, LongSeries, PodRef, RestartSeries, Source,
    SourceError, Window, WorkingSetSeries,
};
use crate::model::Sample;
use crate::vocab::HOUR_MS;

/// cAdvisor reports "no limit" as 0 or as the largest page-aligned i64.
const UNLIMITED_ABOVE_BYTES: f64 = (1u64 << 62) as f64;

/// A [`Source`] backed by a Prometheus-compatible API.
#[derive(Clone)]
pub struct PrometheusSource {
    client: PrometheusClient,
    queries: Queries,
    extra_labels: Vec<String>,
    /// This replica's share of the containers, if sharded.
    shard: Option<Shard>,
    /// Containers whose limit series disagree (two kube-state-metrics replicas, a
    /// stale one), already logged: once per container.
    disagreeing: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<ContainerKey>>>,
}

impl PrometheusSource {
    pub fn new(client: PrometheusClient, queries: Queries, extra_labels: Vec<String>) -> Self {
        PrometheusSource {
            client,
            queries,
            extra_labels,
            shard: None,
            disagreeing: Default::default(),
        }
    }

    /// Wraps a query in `max by (<identity labels>)`, so Prometheus sends only the
    /// labels headroom uses: a poll's answers shrink several times over.
    fn trim(&self, query: &str, extra_identity: &[&str]) -> String {
        self.aggregate("max", query, extra_identity)
    }

    /// `query` aggregated with `aggregation` (`max`, `min`) by the identity labels
    /// and `extra_identity`.
    fn aggregate(&self, aggregation: &str, query: &str, extra_identity: &[&str]) -> String {
        format!(
            "{aggregation} by ({}) ({query})",
            self.kept_labels(extra_identity).join(", ")
        )
    }

    /// The labels headroom reads of a series: the identity labels, and
    /// `extra_identity` (`id` for the working set's cgroup).
    fn kept_labels(&self, extra_identity: &[&str]) -> Vec<String> {
        ["namespace", "pod", "container"]
            .into_iter()
            .map(str::to_string)
            .chain(self.extra_labels.iter().cloned())
            .chain(extra_identity.iter().map(|name| name.to_string()))
            .collect()
    }

    fn trimmed(&self, queries: &Queries) -> Queries {
        let wrap = |q: &str, extra: &[&str]| self.trim(q, extra);
        Queries {
            working_set: wrap(&queries.working_set, &["id"]),
            limits: wrap(&queries.limits, &[]),
            init_container_limits: queries
                .init_container_limits
                .as_deref()
                .map(|q| wrap(q, &[])),
            cadvisor_limits: queries.cadvisor_limits.as_deref().map(|q| wrap(q, &[])),
            restarts: queries.restarts.as_deref().map(|q| wrap(q, &[])),
            oom_kills: queries.oom_kills.as_deref().map(|q| wrap(q, &[])),
        }
    }

    /// The series of `query` from `start` to the window's end, or nothing when the
    /// query is switched off or the span is empty. A query of plain selectors (joined
    /// by `or`, like the defaults) is read raw, as scraped, since the last window; any
    /// other expression is evaluated as a range query at the window's step, wrapped in
    /// `max by` the identity labels (and `extra_identity`).
    async fn series(
        &self,
        what: &'static str,
        query: Option<&str>,
        extra_identity: &[&str],
        start: Option<super::TimestampMs>,
        window: Window,
    ) -> Result<Vec<RangeSeries>, SourceError> {
        let (Some(query), Some(start)) = (query, start) else {
            return Ok(Vec::new());
        };
        if start > window.end {
            return Ok(Vec::new());
        }
        let error = |source| SourceError { what, source };
        match plain_selectors(query) {
            Some(selectors) => {
                // Read LATE_STEPS steps behind the last read too: a sample that became
                // queryable after its poll (a slow scrape, remote write still queued)
                // is read at the next one; what the store already has is ignored.
                let step_ms = window.step.as_millis() as i64;
                let start = start - LATE_STEPS * step_ms;
                let keep = self.kept_labels(extra_identity);
                let mut all = Vec::new();
                for selector in selectors {
                    all.extend(
                        self.client
                            .read_raw(&selector, start - step_ms, window.end, window.step, &keep)
                            .await
                            .map_err(error)?,
                    );
                }
                Ok(all)
            }
            None => self
                .client
                .query_range(
                    &self.trim(query, extra_identity),
                    start,
                    window.end,
                    window.step,
                )
                .await
                .map_err(error),
        }
    }

    /// One query after another, each answer grouped or keyed as it arrives, so that
    /// at most one answer's label maps are in memory at a time (the four limit
    /// queries run together, but each is keyed as soon as it is parsed).
    async fn fetch_with(&self, queries: &Queries, window: Window) -> Result<Batch, SourceError> {
        // Each answer is turned into its containers' series as soon as it is read, so
        // its label maps (several hundred bytes a series) are gone before the next
        // answer's arrive: the poll that re-reads restarts and limits held five
        // answers' label maps at once.
        let mut dropped = Dropped::default();
        let working_set = self
            .series(
                "working_set",
                Some(&queries.working_set),
                &["id"],
                Some(window.start),
                window,
            )
            .await?;
        let working_sets = group_working_sets(&self.extra_labels, working_set, &mut dropped);
        let step_ms = window.step.as_millis() as i64;
        let restarts = self
            .series(
                "restarts",
                queries.restarts.as_deref(),
                &[],
                window.restarts_from,
                window,
            )
            .await?;
        let restarts = group_restarts(&self.extra_labels, restarts, step_ms);
        let oom = self
            .series(
                "oom_kills",
                queries.oom_kills.as_deref(),
                &[],
                window.restarts_from,
                window,
            )
            .await?;
        let oom_terminations = group_restarts(&self.extra_labels, oom, step_ms);
        // The lowest limit reading beside the highest: series that disagree (two
        // kube-state-metrics replicas, one stale) are told apart.
        let lowest_limits = self.aggregate("min", &queries.limits, &[]);
        let queries = &self.trimmed(queries);
        let limits = self.limits_if(queries, lowest_limits, window).await?;
        Ok(Batch {
            limits,
            working_sets,
            restarts,
            oom_terminations,
            series_without_identity: dropped.without_identity,
            twin_series: dropped.twins,
            ..Batch::default()
        })
    }

    /// Keeps only this replica's share of the containers.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// The queries of one fetch: with namespace sharding, restricted to this
    /// replica's namespaces (found with one cheap query); `None` when it owns none.
    async fn sharded_queries(&self, at: i64) -> Result<Option<Queries>, SourceError> {
        let Some(shard) = self.shard.filter(|s| s.mode == ShardMode::Namespace) else {
            return Ok(Some(self.queries.clone()));
        };
        let namespaces = self
            .client
            .query(
                &format!("count by (namespace) ({})", self.queries.working_set),
                at,
            )
            .await
            .map_err(|source| SourceError {
                what: "namespaces",
                source,
            })?;
        let mine: Vec<String> = namespaces
            .iter()
            .filter_map(|s| s.labels.get("namespace"))
            .filter(|ns| shard.owns(ns, ""))
            .map(|ns| regex_escape(ns))
            .collect();
        if mine.is_empty() {
            return Ok(None);
        }
        let matcher = format!(r#"namespace=~"{}""#, mine.join("|"));
        let q = &self.queries;
        let add = |query: &str| {
            add_matchers(query, &matcher).map_err(|e| SourceError {
                what: "namespaces",
                source: QueryError::BadQuery(e),
            })
        };
        let add_some = |query: Option<&str>| query.map(add).transpose();
        Ok(Some(Queries {
            working_set: add(&q.working_set)?,
            limits: add(&q.limits)?,
            init_container_limits: add_some(q.init_container_limits.as_deref())?,
            cadvisor_limits: add_some(q.cadvisor_limits.as_deref())?,
            restarts: add_some(q.restarts.as_deref())?,
            oom_kills: add_some(q.oom_kills.as_deref())?,
        }))
    }

    pub fn client(&self) -> &PrometheusClient {
        &self.client
    }

    async fn limits_if(
        &self,
        queries: &Queries,
        lowest_limits: String,
        window: Window,
    ) -> Result<Vec<LimitReading>, SourceError> {
        if window.limits {
            self.limits(queries, lowest_limits, window.end).await
        } else {
            Ok(Vec::new())
        }
    }

    async fn limits(
        &self,
        queries: &Queries,
        lowest_limits: String,
        at: i64,
    ) -> Result<Vec<LimitReading>, SourceError> {
        // Each answer keyed by container as it arrives (see `fetch_with`).
        let extra_labels = &self.extra_labels;
        let instant = |what: &'static str, query: Option<String>| {
            let client = self.client.clone();
            async move {
                match query {
                    None => Ok(Vec::new()),
                    Some(q) => client
                        .query(&q, at)
                        .await
                        .map(|answer| keyed(extra_labels, answer))
                        .map_err(|source| SourceError { what, source }),
                }
            }
        };
        let (ksm, ksm_low, init, cadvisor) = tokio::try_join!(
            instant("limits", Some(queries.limits.clone())),
            instant("limits", Some(lowest_limits)),
            instant(
                "init_container_limits",
                queries.init_container_limits.clone()
            ),
            instant("cadvisor_limits", queries.cadvisor_limits.clone()),
        )?;
        let mut limits = merge_limits(ksm, init, cadvisor);
        let disagreements = take_the_lower(&mut limits, &ksm_low);
        let mut warned = self.disagreeing.lock().unwrap_or_else(|e| e.into_inner());
        for (key, low, high) in disagreements {
            if warned.insert(key.clone()) {
                tracing::warn!(
                    container = %key,
                    lower = %crate::units::format_bytes(low),
                    higher = %crate::units::format_bytes(high),
                    "the limit series of a container disagree (two kube-state-metrics replicas, or a stale one?); forecasting against the lower"
                );
            }
        }
        Ok(limits)
    }
}

impl Source for PrometheusSource {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        let Some(queries) = self.sharded_queries(window.end).await? else {
            return Ok(Batch::default());
        };
        let mut batch = self.fetch_with(&queries, window).await?;
        batch.series_fetched = batch.working_sets.len();
        if let Some(shard) = self.shard {
            let owned = |k: &ContainerKey| shard.owns(&k.namespace, &k.pod);
            batch.working_sets.retain(|s| owned(&s.key));
            batch.restarts.retain(|s| owned(&s.key));
            batch.oom_terminations.retain(|s| owned(&s.key));
            batch.limits.retain(|l| owned(&l.key));
        }
        Ok(batch)
    }

    async fn long_history(&self, start: i64, end: i64) -> Result<Vec<LongSeries>, SourceError> {
        let Some(queries) = self.sharded_queries(end).await? else {
            return Ok(Vec::new());
        };
        // Only plain selectors can be summarised per hour with *_over_time.
        let Some(selectors) = plain_selectors(&queries.working_set) else {
            return Ok(Vec::new());
        };
        let mut by = vec!["namespace", "pod", "container"];
        by.extend(self.extra_labels.iter().map(String::as_str));
        let by = by.join(", ");
        // Per container and hour: the highest, and the sum and count of the means (one
        // per selector that has the container).
        type ByHour = std::collections::BTreeMap<i64, (f64, f64, u32)>;
        let mut hours: HashMap<ContainerKey, ByHour> = HashMap::new();
        for selector in selectors {
            for (function, aggregate, slot) in
                [("max_over_time", "max", 0), ("avg_over_time", "avg", 1)]
            {
                let query = format!("{aggregate} by ({by}) ({function}({selector}[1h]))");
                // The point at T summarises (T - 1h, T]: the hour that starts at T - 1h.
                let series = self
                    .client
                    .query_range(
                        &query,
                        start + HOUR_MS,
                        end,
                        std::time::Duration::from_secs(3600),
                    )
                    .await
                    .map_err(|source| SourceError {
                        what: "long history",
                        source,
                    })?;
                for s in series {
                    let Some(key) = ContainerKey::from_labels(&s.labels, &self.extra_labels) else {
                        continue;
                    };
                    if self
                        .shard
                        .is_some_and(|sh| !sh.owns(&key.namespace, &key.pod))
                    {
                        continue;
                    }
                    let by_hour = hours.entry(key).or_default();
                    for (at, value) in s.samples {
                        let e = by_hour.entry(at - HOUR_MS).or_insert((f64::NAN, 0.0, 0));
                        if slot == 0 {
                            e.0 = if e.0.is_nan() { value } else { e.0.max(value) };
                        } else {
                            e.1 += value;
                            e.2 += 1;
                        }
                    }
                }
            }
        }
        Ok(hours
            .into_iter()
            .map(|(key, by_hour)| LongSeries {
                key,
                hours: by_hour
                    .into_iter()
                    .filter(|(_, (max, _, n))| max.is_finite() && *n > 0)
                    .map(|(at, (max, sum, n))| (at, max, sum / f64::from(n)))
                    .collect(),
            })
            .collect())
    }

    async fn owners(
        &self,
        namespace: &str,
        extra: &[(String, String)],
        at: i64,
    ) -> Result<Vec<(String, String)>, SourceError> {
        MetadataReader(&self.client)
            .owners(namespace, extra, at)
            .await
    }

    async fn envoy(
        &self,
        pods: &[PodRef],
        at: i64,
    ) -> Result<Vec<(PodRef, EnvoyMemory)>, SourceError> {
        MetadataReader(&self.client).envoy(pods, at).await
    }

    async fn context(&self, pods: &[PodRef], at: i64) -> Result<Vec<PodContext>, SourceError> {
        MetadataReader(&self.client).contexts(pods, at).await
    }
}

/// How many steps behind the last read a raw read starts, for samples that arrive
/// late (see [`PrometheusSource::series`]).
const LATE_STEPS: i64 = 2;

/// What [`group_working_sets`] left out, and why.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Series without namespace, pod or container (pod-level, pause, aggregates).
    pub without_identity: usize,
    /// Series of a container that also has cAdvisor's own, with its cgroup `id`: the
    /// kubelet resource endpoint's twin without `id`, and cgroups nested in the
    /// container's own (kubernetes#129253).
    pub twins: usize,
}

/// Turns raw series into one series per (container, incarnation). Series that differ
/// only in labels outside the identity and `id` (two scrape jobs of one kubelet, say)
/// are merged, first value per timestamp wins. Where several answer for a container,
/// cAdvisor's with the container's own cgroup `id` is the one (see [`Dropped::twins`]).
pub fn group_working_sets(
    extra_labels: &[String],
    series: Vec<RangeSeries>,
    dropped: &mut Dropped,
) -> Vec<WorkingSetSeries> {
    // Per container, each `id` seen (most have one; a restart in the window, two).
    type ById = Vec<(Option<String>, Vec<Sample>)>;
    let mut grouped: rustc_hash::FxHashMap<ContainerKey, ById> = Default::default();
    for s in series {
        let Some(key) = ContainerKey::from_labels(&s.labels, extra_labels) else {
            dropped.without_identity += 1;
            continue;
        };
        let id = s.labels.get("id").filter(|v| !v.is_empty()).cloned();
        let by_id = grouped.entry(key).or_default();
        let samples = s
            .samples
            .into_iter()
            .map(|(at, bytes)| Sample { at, bytes });
        match by_id.iter_mut().find(|(known, _)| *known == id) {
            Some((_, existing)) => existing.extend(samples),
            None => by_id.push((id, samples.collect())),
        }
    }
    let mut out: Vec<WorkingSetSeries> = Vec::with_capacity(grouped.len());
    for (key, mut by_id) in grouped {
        if by_id.len() > 1 {
            drop_twins(&key, &mut by_id, dropped);
        }
        for (container_id, mut samples) in by_id {
            samples.sort_by_key(|s| s.at);
            samples.dedup_by_key(|s| s.at);
            out.push(WorkingSetSeries {
                key: key.clone(),
                container_id,
                samples,
            });
        }
    }
    // Oldest incarnation first, which is all the store needs: sorting by key as well
    // compared 100,000 strings a poll, a tenth of a cycle.
    out.sort_by_key(|s| s.samples.first().map(|x| x.at));
    out
}

/// Keeps cAdvisor's series of the container's own cgroup where others answer too:
/// without an `id` (the kubelet's `/metrics/resource`, which kube-prometheus-stack
/// scrapes with `kubelet.serviceMonitor.resource: true`) or with an `id` nested under
/// another one of the same container (a child cgroup the container made).
fn drop_twins(
    key: &ContainerKey,
    by_id: &mut Vec<(Option<String>, Vec<Sample>)>,
    dropped: &mut Dropped,
) {
    let ids: Vec<String> = by_id.iter().filter_map(|(id, _)| id.clone()).collect();
    if ids.is_empty() {
        return;
    }
    by_id.retain(|(id, _)| {
        let twin = match id {
            None => true,
            Some(id) => ids.iter().any(|parent| super::is_nested_in(id, parent)),
        };
        if twin {
            dropped.twins += 1;
            tracing::debug!(
                container = %key,
                id = id.as_deref().unwrap_or("(none)"),
                "dropped a working-set twin: the container's own cAdvisor series answers"
            );
        }
        !twin
    });
}

/// One series of counter readings per container: the highest reading of each step,
/// as `max by` at the step would give. Raw reads bring one series per scrape job (two
/// kube-state-metrics replicas, a store without dedup), and their readings interleave:
/// 3, 3, 4, 3, 4 would read as two restarts.
fn group_restarts(
    extra_labels: &[String],
    series: Vec<RangeSeries>,
    step_ms: i64,
) -> Vec<RestartSeries> {
    let mut grouped: rustc_hash::FxHashMap<ContainerKey, Vec<(i64, f64)>> = Default::default();
    for s in series {
        if let Some(key) = ContainerKey::from_labels(&s.labels, extra_labels) {
            grouped.entry(key).or_default().extend(s.samples);
        }
    }
    let step_ms = step_ms.max(1);
    grouped
        .into_iter()
        .map(|(key, mut samples)| {
            samples.sort_by_key(|s| s.0);
            let mut per_step: Vec<(i64, f64)> = Vec::with_capacity(samples.len());
            for (at, value) in samples {
                match per_step.last_mut() {
                    Some(last) if last.0.div_euclid(step_ms) == at.div_euclid(step_ms) => {
                        *last = (at, last.1.max(value));
                    }
                    _ => per_step.push((at, value)),
                }
            }
            RestartSeries {
                key,
                samples: per_step,
            }
        })
        .collect()
}

/// Where kube-state-metrics' lowest reading of a container's limit (`lows`, `min by`
/// the identity labels) is below the one kept (its highest), takes the lower: an
/// alert early is better than one against a limit the kernel does not enforce.
/// Returns each such container with its lower and higher limit.
pub fn take_the_lower(
    limits: &mut [LimitReading],
    lows: &[(ContainerKey, f64)],
) -> Vec<(ContainerKey, f64, f64)> {
    let lows: rustc_hash::FxHashMap<&ContainerKey, f64> = lows
        .iter()
        .filter(|(_, value)| *value > 0.0 && *value < UNLIMITED_ABOVE_BYTES)
        .map(|(key, value)| (key, *value))
        .collect();
    let mut disagreements = Vec::new();
    for reading in limits.iter_mut() {
        if reading.source != LimitSource::KubeStateMetrics {
            continue;
        }
        let (Some(high), Some(&low)) = (reading.bytes, lows.get(&reading.key)) else {
            continue;
        };
        if low < high {
            disagreements.push((reading.key.clone(), low, high));
            reading.bytes = Some(low);
        }
    }
    disagreements
}

/// An instant answer's readings by container, its label maps dropped as they are
/// read; series without a container's identity are left out.
pub fn keyed(extra_labels: &[String], answer: Vec<InstantSample>) -> Vec<(ContainerKey, f64)> {
    answer
        .into_iter()
        .filter_map(|s| Some((ContainerKey::from_labels(&s.labels, extra_labels)?, s.value)))
        .collect()
}

/// One limit per container: kube-state-metrics first, then its init-container (native
/// sidecar) series, then cAdvisor (each [`keyed`]), each key moved, not copied.
pub fn merge_limits(
    ksm: Vec<(ContainerKey, f64)>,
    init: Vec<(ContainerKey, f64)>,
    cadvisor: Vec<(ContainerKey, f64)>,
) -> Vec<LimitReading> {
    let mut limits: rustc_hash::FxHashMap<ContainerKey, (Option<f64>, LimitSource)> =
        Default::default();
    let sources = [
        (LimitSource::KubeStateMetrics, ksm),
        (LimitSource::KubeStateMetricsInit, init),
        (LimitSource::Cadvisor, cadvisor),
    ];
    for (source, samples) in sources {
        for (key, value) in samples {
            let bytes = (value > 0.0 && value < UNLIMITED_ABOVE_BYTES).then_some(value);
            limits.entry(key).or_insert((bytes, source));
        }
    }
    let mut out: Vec<LimitReading> = limits
        .into_iter()
        .map(|(key, (bytes, source))| LimitReading { key, bytes, source })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_selectors_are_told_from_expressions() {
        let plain = |q: &str| plain_selectors(q).map(|v| v.join(" | "));
        assert_eq!(
            plain(crate::source::config::DEFAULT_RESTARTS_QUERY),
            Some(
                "kube_pod_container_status_restarts_total | kube_pod_init_container_status_restarts_total"
                    .into()
            )
        );
        assert_eq!(
            plain(r#"container_memory_working_set_bytes{container!="",container!="POD"}"#),
            Some(r#"container_memory_working_set_bytes{container!="",container!="POD"}"#.into())
        );
        assert_eq!(
            plain(r#"{__name__="x", a="} or {"}"#),
            Some(r#"{__name__="x",a="} or {"}"#.into())
        );
        for expression in [
            "rate(x[5m])",
            "x offset 5m",
            r#"x{a="1"} + y{}"#,
            "x and y",
            "x or on(a) y",
            "max by (pod) (x)",
            "x{a=\"1\"",
            "",
        ] {
            assert_eq!(plain(expression), None, "{expression}");
        }
    }

    #[test]
    fn duplicate_restart_counters_read_as_one_per_step() {
        let labels = |job: &str| -> crate::vocab::Labels {
            [
                ("namespace", "n"),
                ("pod", "p"),
                ("container", "c"),
                ("job", job),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        // Two scrape jobs, 5s apart, the second one lagging the restart by a scrape.
        let series = vec![
            RangeSeries {
                labels: labels("a"),
                samples: vec![(0, 3.0), (30_000, 4.0), (60_000, 4.0)],
            },
            RangeSeries {
                labels: labels("b"),
                samples: vec![(5_000, 3.0), (35_000, 3.0), (65_000, 4.0)],
            },
        ];
        let grouped = group_restarts(&[], series, 30_000);
        assert_eq!(grouped.len(), 1);
        assert_eq!(
            grouped[0].samples,
            vec![(5_000, 3.0), (35_000, 4.0), (65_000, 4.0)]
        );
    }

    use super::*;
    use crate::vocab::Labels;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A reading as an instant answer brings it, keyed by container.
    fn instant(pairs: &[(&str, &str)], value: f64) -> (ContainerKey, f64) {
        let answer = vec![InstantSample {
            labels: labels(pairs),
            at: 0,
            value,
        }];
        keyed(&[], answer).pop().expect("a container's labels")
    }

    /// Issue 18: two kube-state-metrics replicas disagreeing on a limit (128Mi and
    /// 512Mi): the lower is used, and the disagreement named, not silently the higher.
    #[test]
    fn disagreeing_limit_series_give_the_lower_limit() {
        let app = [("namespace", "prod"), ("pod", "p"), ("container", "app")];
        let other = [("namespace", "prod"), ("pod", "p"), ("container", "other")];
        let mut limits = merge_limits(
            vec![
                instant(&app, 512.0 * 1048576.0),
                instant(&other, 64.0 * 1048576.0),
            ],
            vec![],
            vec![],
        );
        let found = take_the_lower(
            &mut limits,
            &[
                instant(&app, 128.0 * 1048576.0),
                instant(&other, 64.0 * 1048576.0),
            ],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.container, "app");
        assert_eq!(
            (found[0].1, found[0].2),
            (128.0 * 1048576.0, 512.0 * 1048576.0)
        );
        let app_limit = limits.iter().find(|l| l.key.container == "app").unwrap();
        assert_eq!(app_limit.bytes, Some(128.0 * 1048576.0));
        let other_limit = limits.iter().find(|l| l.key.container == "other").unwrap();
        assert_eq!(other_limit.bytes, Some(64.0 * 1048576.0));
    }

    #[test]
    fn limits_prefer_kube_state_metrics_then_init_then_cadvisor() {
        let app = [("namespace", "prod"), ("pod", "p"), ("container", "app")];
        let sidecar = [("namespace", "prod"), ("pod", "p"), ("container", "native")];
        let bare = [("namespace", "prod"), ("pod", "q"), ("container", "app")];
        let unlimited = [("namespace", "prod"), ("pod", "q"), ("container", "free")];
        let merged = merge_limits(
            vec![instant(&app, 256.0 * 1048576.0)],
            vec![instant(&sidecar, 128.0 * 1048576.0)],
            vec![
                instant(&app, 1.0),
                instant(&sidecar, 1.0),
                instant(&bare, 64.0 * 1048576.0),
                instant(&unlimited, 0.0),
            ],
        );
        let got: Vec<_> = merged
            .iter()
            .map(|l| {
                (
                    l.key.container.as_str(),
                    l.key.pod.as_str(),
                    l.bytes,
                    l.source,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "app",
                    "p",
                    Some(256.0 * 1048576.0),
                    LimitSource::KubeStateMetrics
                ),
                (
                    "native",
                    "p",
                    Some(128.0 * 1048576.0),
                    LimitSource::KubeStateMetricsInit
                ),
                ("app", "q", Some(64.0 * 1048576.0), LimitSource::Cadvisor),
                ("free", "q", None, LimitSource::Cadvisor),
            ]
        );
    }

    #[test]
    fn pause_and_aggregate_series_have_no_identity() {
        let series = vec![
            RangeSeries {
                labels: labels(&[("namespace", "n"), ("pod", "p"), ("container", "POD")]),
                samples: vec![(0, 1.0)],
            },
            RangeSeries {
                labels: labels(&[("namespace", "n"), ("pod", "p"), ("container", "")]),
                samples: vec![(0, 1.0)],
            },
            RangeSeries {
                labels: labels(&[
                    ("namespace", "n"),
                    ("pod", "p"),
                    ("container", "c"),
                    ("id", "/a"),
                ]),
                samples: vec![(0, 1.0)],
            },
        ];
        let mut dropped = Dropped::default();
        let grouped = group_working_sets(&[], series, &mut dropped);
        assert_eq!(dropped.without_identity, 2);
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].container_id.as_deref(), Some("/a"));
    }

    #[test]
    fn duplicate_scrapes_merge_into_one_series() {
        let base = [
            ("namespace", "n"),
            ("pod", "p"),
            ("container", "c"),
            ("id", "/a"),
        ];
        let mut a = base.to_vec();
        a.push(("job", "kubelet"));
        let mut b = base.to_vec();
        b.push(("job", "cadvisor"));
        let series = vec![
            RangeSeries {
                labels: labels(&a),
                samples: vec![(0, 1.0), (30_000, 2.0)],
            },
            RangeSeries {
                labels: labels(&b),
                samples: vec![(30_000, 2.0), (60_000, 3.0)],
            },
        ];
        let grouped = group_working_sets(&[], series, &mut Dropped::default());
        assert_eq!(grouped.len(), 1);
        let ats: Vec<_> = grouped[0].samples.iter().map(|s| s.at).collect();
        assert_eq!(ats, vec![0, 30_000, 60_000]);
    }
}
