//! Enrichment: what the cluster knows, added to the reports worth explaining after
//! each evaluation — the owning workload and its replicas, native sidecars, the
//! changes near the onset of growth, the pod's total against its limits, and Envoy's
//! own view of its memory. Pod metadata and workload owners are cached here, so a
//! poll asks the source only for what is new or stale.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};

use super::oom::{KillRecord, OomKill};
use crate::model::{self, ForecastParams};
use crate::report::{ContainerReport, PodPressure, WorkloadPeers};
use crate::source::metadata::PodContext;
use crate::source::{ContainerKey, LimitSource, PodRef, Source};
use crate::store::{Store, Tracked};
use crate::vocab::{glob, TimestampMs};

/// Pod metadata still missing (kube-state-metrics lags a new pod) is asked again
/// after this long (ms).
const CONTEXT_RETRY_MS: i64 = 120_000;
/// Workload owners are read again after this long (ms).
const OWNERS_REFRESH_MS: i64 = 300_000;

/// A pod borrowed from a container key: namespace, name, extra identity labels.
type PodId<'a> = (&'a str, &'a str, &'a [(String, String)]);

/// Workload owners of each namespace, by the extra identity labels (one cluster's
/// `prod`): pod → "Kind/name", and when they were read.
type Owners =
    HashMap<String, HashMap<Vec<(String, String)>, (TimestampMs, HashMap<String, String>)>>;

/// A namespace within its extra identity labels: one cluster's `prod`.
type Scope<'a> = (&'a str, &'a [(String, String)]);

/// Explains reports and attributes OOM kills, keeping what it read between polls.
pub struct Explainer {
    /// Container names (globs) recognised as injected sidecars.
    sidecar_names: Vec<String>,
    /// The forecast parameters: the pod's total is forecast as a container's is, and
    /// replicas count as on course within the critical horizon.
    params: ForecastParams,
    /// The store's step (ms): a pod's containers are summed per step.
    step_ms: i64,
    /// Pod metadata by pod (with its extra identity labels), and when it was read.
    contexts: HashMap<PodRef, (TimestampMs, PodContext)>,
    owners: Owners,
    kills: KillRecord,
}

impl Explainer {
    pub fn new(sidecar_names: Vec<String>, params: ForecastParams, step: Duration) -> Self {
        Explainer {
            sidecar_names,
            params,
            step_ms: (step.as_millis() as i64).max(1),
            contexts: HashMap::new(),
            owners: HashMap::new(),
            kills: KillRecord::default(),
        }
    }

    /// Takes a reloaded configuration's sidecar names and forecast parameters; the
    /// pod metadata read and the OOM kills recorded carry on.
    pub fn reconfigure(&mut self, sidecar_names: Vec<String>, params: ForecastParams) {
        self.sidecar_names = sidecar_names;
        self.params = params;
    }

    /// Attributes the OOM kills a poll found and remembers them; returns the news
    /// (see [`KillRecord::record`]).
    pub fn record_kills(
        &mut self,
        store: &Store,
        found: &[(ContainerKey, TimestampMs)],
        backfill: bool,
    ) -> Vec<OomKill> {
        self.kills.record(store, found, backfill)
    }

    /// The most recent OOM kills, newest last.
    pub fn oom_kills(&self) -> Vec<OomKill> {
        self.kills.recent()
    }

    /// Pod metadata read so far, by pod.
    #[cfg(test)]
    pub(crate) fn contexts(&self) -> impl Iterator<Item = &PodRef> {
        self.contexts.keys()
    }

    /// Marks sidecars, and adds what the cluster knows to the reports worth
    /// explaining (alerting or with a forecast severity): the owning workload and
    /// its replicas, native sidecars, the changes near the onset of growth, pod
    /// pressure and Envoy's stats. Best effort: a failed lookup is logged, not fatal.
    pub async fn explain<S: Source>(
        &mut self,
        source: &S,
        store: &Store,
        reports: &mut [ContainerReport],
        now: TimestampMs,
    ) {
        for r in reports.iter_mut() {
            r.sidecar = self.is_sidecar(r);
        }
        // Each report's pod, and whether it is worth explaining, worked out once.
        let pods: Vec<PodRef> = reports.iter().map(ContainerReport::pod).collect();
        let worth: Vec<bool> = reports
            .iter()
            .map(|r| r.alert.is_some() || r.severity != model::Severity::None)
            .collect();
        let worth_pods: Vec<&PodRef> = pods
            .iter()
            .zip(&worth)
            .filter(|(_, w)| **w)
            .map(|(p, _)| p)
            .collect();
        self.refresh_contexts(source, &worth_pods, now).await;
        let scopes: BTreeSet<Scope> = worth_pods
            .iter()
            .map(|p| (p.namespace.as_str(), p.extra.as_slice()))
            .collect();
        self.refresh_owners(source, &scopes, now).await;
        self.add_workloads(store, reports, &pods);
        self.owners.retain(|ns, by_extra| {
            by_extra.retain(|extra, _| scopes.contains(&(ns.as_str(), extra.as_slice())));
            !by_extra.is_empty()
        });
        self.add_pod_pressure(store, reports, &pods, &worth_pods, now);
        add_envoy(source, reports, &pods, &worth, now).await;
        self.forget_gone_pods(store);
        self.add_contexts(reports, &pods);
    }

    /// What is known of reports made on request, between polls, without asking the
    /// source: the sidecar flag, and the workload where its owners were read (its
    /// replicas on course are counted only at polls, among the reports worth it).
    pub fn label(&self, reports: &mut [ContainerReport]) {
        for r in reports.iter_mut() {
            r.sidecar = self.is_sidecar(r);
            let p = r.pod();
            r.workload = self.workload_of(&p.namespace, &p.extra, &p.pod).cloned();
        }
    }

    /// A pod's workload, where its namespace's owners were read.
    fn workload_of(
        &self,
        namespace: &str,
        extra: &[(String, String)],
        pod: &str,
    ) -> Option<&String> {
        let (_, map) = self.owners.get(namespace)?.get(extra)?;
        map.get(pod)
    }

    /// An injected sidecar by name, or a native sidecar by its limit's source.
    fn is_sidecar(&self, r: &ContainerReport) -> bool {
        self.sidecar_names.iter().any(|g| glob(g, &r.container))
            || r.limit_source == Some(LimitSource::KubeStateMetricsInit)
    }

    /// Reads the metadata of pods worth explaining that is not known yet (or was
    /// missing a while ago).
    async fn refresh_contexts<S: Source>(
        &mut self,
        source: &S,
        pods: &[&PodRef],
        now: TimestampMs,
    ) {
        let mut wanted: Vec<PodRef> =
            pods.iter()
                .filter(|p| {
                    !self.contexts.get(**p).is_some_and(|(at, c)| {
                        c.started_at.is_some() || now - at < CONTEXT_RETRY_MS
                    })
                })
                .map(|p| (*p).clone())
                .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return;
        }
        match source.context(&wanted, now).await {
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

    /// Reads every pod's workload in the namespaces worth explaining (each within its
    /// extra identity labels), refreshed every five minutes, so replicas can be
    /// counted.
    async fn refresh_owners<S: Source>(
        &mut self,
        source: &S,
        scopes: &BTreeSet<Scope<'_>>,
        now: TimestampMs,
    ) {
        for &(ns, extra) in scopes {
            let fresh = self
                .owners
                .get(ns)
                .and_then(|m| m.get(extra))
                .is_some_and(|(at, _)| now - at < OWNERS_REFRESH_MS && *at <= now);
            if fresh {
                continue;
            }
            match source.owners(ns, extra, now).await {
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
    }

    /// Each report's workload, and how many replicas of it run the same container
    /// (counted in the store: a poll reports only the containers worth it) and are
    /// on course within the critical horizon (each of those is reported: its
    /// severity is critical), within one namespace of one cluster.
    fn add_workloads(&self, store: &Store, reports: &mut [ContainerReport], pods: &[PodRef]) {
        let horizon = self.params.critical_horizon_seconds;
        let workloads: Vec<Option<&String>> = pods
            .iter()
            .map(|p| self.workload_of(&p.namespace, &p.extra, &p.pod))
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
                if r.time_to_limit_seconds.is_some_and(|s| s <= horizon) {
                    t.1 += 1;
                }
            }
        }
        // Replicas are counted in the store, for the workloads reported (none when
        // no report has a workload: the store is not walked).
        let counted = if tally.is_empty() { None } else { Some(store) };
        for (k, _) in counted.into_iter().flat_map(Store::iter) {
            let Some(w) = self.workload_of(&k.namespace, &k.extra, &k.pod) else {
                continue;
            };
            let key = (
                k.namespace.as_str(),
                k.extra.as_slice(),
                w.as_str(),
                k.container.as_str(),
            );
            if let Some(t) = tally.get_mut(&key) {
                t.0 += 1;
            }
        }
        let peers: Vec<Option<WorkloadPeers>> = (0..reports.len())
            .map(|i| {
                let &(replicas, on_course) = tally.get(&peers_of(i)?)?;
                Some(WorkloadPeers {
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
                r.workload_peers = p.map(Box::new);
            }
        }
    }

    /// Pod-level pressure: the pod's summed working set against its summed limits.
    /// A pod is its namespace, name and extra identity labels (one `redis-0` per
    /// cluster when a store holds several). One pass over the store and one over the
    /// reports, not one per pod: with thousands of pods worth explaining in a
    /// 100,000-container fleet, a scan per pod took 19 s of a poll.
    fn add_pod_pressure(
        &self,
        store: &Store,
        reports: &mut [ContainerReport],
        pods: &[PodRef],
        worth_pods: &[&PodRef],
        now: TimestampMs,
    ) {
        let wanted: FxHashSet<PodId> = worth_pods
            .iter()
            .map(|p| (p.namespace.as_str(), p.pod.as_str(), p.extra.as_slice()))
            .collect();
        let mut containers_of: FxHashMap<PodId, Vec<&Tracked>> = FxHashMap::default();
        for (k, t) in store.iter() {
            let id = (k.namespace.as_str(), k.pod.as_str(), k.extra.as_slice());
            if let Some(&pod) = wanted.get(&id) {
                containers_of.entry(pod).or_default().push(t);
            }
        }
        let pressures: FxHashMap<PodId, PodPressure> = containers_of
            .iter()
            .filter_map(|(&pod, containers)| Some((pod, self.pod_pressure(containers, now)?)))
            .collect();
        for (r, p) in reports.iter_mut().zip(pods) {
            let found = pressures
                .get(&(p.namespace.as_str(), p.pod.as_str(), p.extra.as_slice()))
                .copied();
            let Some(pressure) = found else {
                continue;
            };
            let own = r.time_to_limit_seconds.unwrap_or(f64::INFINITY);
            let pod_eta = pressure.time_to_limit_seconds.unwrap_or(f64::INFINITY);
            r.pod_pressure = Some(Box::new(PodPressure {
                applies: if pod_eta < own { "pod" } else { "container" },
                ..pressure
            }));
        }
    }

    /// The forecast of a pod's total working set (its containers' current segments,
    /// summed where all have a sample) against the sum of their limits.
    fn pod_pressure(&self, containers: &[&Tracked], now: TimestampMs) -> Option<PodPressure> {
        if containers.len() < 2 {
            return None;
        }
        let limit: Option<f64> = containers
            .iter()
            .map(|t| t.limit.and_then(|l| l.bytes))
            .sum();
        // Summed per step, not per timestamp: raw samples of a pod's containers carry
        // their own scrape (or cAdvisor) times.
        let step_ms = self.step_ms;
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
        Some(PodPressure {
            working_set_bytes: forecast.working_set_bytes,
            limit_bytes: limit,
            time_to_limit_seconds: forecast.time_to_limit.map(|t| t.seconds),
            applies: "container",
        })
    }

    /// Forgets the metadata of pods that are gone: one pass over the store, not one
    /// per pod.
    fn forget_gone_pods(&mut self, store: &Store) {
        let live: FxHashSet<PodId> = store
            .iter()
            .map(|(k, _)| (k.namespace.as_str(), k.pod.as_str(), k.extra.as_slice()))
            .collect();
        self.contexts.retain(|p, _| {
            live.contains(&(p.namespace.as_str(), p.pod.as_str(), p.extra.as_slice()))
        });
    }

    /// Native sidecars, the workload when the owners did not name it, and the
    /// changes near the onset of growth, from the pods' metadata.
    fn add_contexts(&self, reports: &mut [ContainerReport], pods: &[PodRef]) {
        for (r, pod) in reports.iter_mut().zip(pods) {
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
            if let Some(onset) = r.onset {
                r.changes = super::changes_near(onset.0, ctx);
            }
        }
    }
}

/// Sidecars that are Envoy, whose stats say where their memory goes.
fn is_envoy(container: &str) -> bool {
    matches!(container, "istio-proxy" | "envoy" | "envoy-sidecar")
}

/// Envoy's own view, fresh every poll, for Envoy sidecars worth explaining.
async fn add_envoy<S: Source>(
    source: &S,
    reports: &mut [ContainerReport],
    pods: &[PodRef],
    worth: &[bool],
    now: TimestampMs,
) {
    let envoy_pods: Vec<PodRef> = reports
        .iter()
        .zip(pods)
        .zip(worth)
        .filter(|((r, _), w)| **w && is_envoy(&r.container))
        .map(|((_, p), _)| p.clone())
        .collect();
    let envoy = if envoy_pods.is_empty() {
        Vec::new()
    } else {
        source.envoy(&envoy_pods, now).await.unwrap_or_else(|e| {
            tracing::debug!(error = %format!("{:#}", anyhow::Error::from(e)), "cannot read Envoy memory stats");
            Vec::new()
        })
    };
    tracing::debug!(
        pods = envoy_pods.len(),
        found = envoy.len(),
        "envoy memory stats"
    );
    for (r, pod) in reports.iter_mut().zip(pods) {
        if is_envoy(&r.container) {
            r.envoy = envoy
                .iter()
                .find(|(p, _)| p == pod)
                .map(|(_, m)| Box::new(*m));
        }
    }
}
