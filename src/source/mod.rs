//! Where samples come from.
//!
//! A [`Source`] answers one question per poll: for a time window, what was every
//! container's working set, its restart counter, and its memory limit at the window's
//! end. [`kubernetes::PrometheusSource`] answers it from Prometheus (cAdvisor plus
//! kube-state-metrics); the demo's simulated cluster answers it from a model of a few
//! pods. Everything downstream sees only [`Batch`]es.

pub mod config;
pub mod kubernetes;
pub mod metadata;
pub mod prometheus;
pub mod promql;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::model::Sample;
use crate::vocab::{Labels, TimestampMs};

/// Who a container is: namespace, pod and container, plus configured extra labels
/// (such as `cluster`), sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ContainerKey {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Extra identity labels as (name, value), sorted by name.
    pub extra: Vec<(String, String)>,
}

impl ContainerKey {
    /// Heap bytes its strings hold (from capacities).
    pub fn heap_bytes(&self) -> usize {
        self.namespace.capacity()
            + self.pod.capacity()
            + self.container.capacity()
            + self.extra.capacity() * std::mem::size_of::<(String, String)>()
            + self
                .extra
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity())
                .sum::<usize>()
    }

    /// Builds a key from a series' labels; `None` when namespace, pod or container is
    /// missing or empty, or the container is the pod sandbox (`POD`).
    pub fn from_labels(labels: &Labels, extra_names: &[String]) -> Option<ContainerKey> {
        let get = |name: &str| labels.get(name).filter(|v| !v.is_empty()).cloned();
        let container = get("container")?;
        if container == "POD" {
            return None;
        }
        let mut extra: Vec<(String, String)> = extra_names
            .iter()
            .map(|name| (name.clone(), labels.get(name).cloned().unwrap_or_default()))
            .collect();
        // One order everywhere, so a key rebuilt from a report's label map is equal.
        extra.sort();
        Some(ContainerKey {
            namespace: get("namespace")?,
            pod: get("pod")?,
            container,
            extra,
        })
    }
}

impl fmt::Display for ContainerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.pod, self.container)?;
        if !self.extra.is_empty() {
            let extra: Vec<String> = self
                .extra
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            write!(f, "{{{}}}", extra.join(","))?;
        }
        Ok(())
    }
}

/// The time span one fetch covers; `step` is the spacing of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub start: TimestampMs,
    pub end: TimestampMs,
    pub step: Duration,
    /// Whether to read limits too. Limits change rarely and cost a query per source of
    /// them over every container, so the daemon reads them every `poll.limits_interval`.
    pub limits: bool,
    /// Read restart counters and OOM reasons from here to `end` (`None`: not in this
    /// fetch). They matter only when a container restarts, which a new container id
    /// in the working set already shows, so the daemon reads them every
    /// `poll.restarts_interval` (and at the poll after a new segment), not every poll:
    /// that keeps a poll to one selector over Prometheus' series.
    pub restarts_from: Option<TimestampMs>,
}

/// One incarnation's working set: a container id (when the source knows it) and its
/// samples in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkingSetSeries {
    pub key: ContainerKey,
    /// cAdvisor's `id` label (the cgroup path); a new id means a new incarnation.
    pub container_id: Option<String>,
    pub samples: Vec<Sample>,
}

/// A container's restart counter over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartSeries {
    pub key: ContainerKey,
    pub samples: Vec<(TimestampMs, f64)>,
}

/// Where a limit was read from, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// `kube_pod_container_resource_limits`.
    KubeStateMetrics,
    /// `kube_pod_init_container_resource_limits`: native sidecars, which the usual
    /// query misses.
    KubeStateMetricsInit,
    /// `container_spec_memory_limit_bytes`, when kube-state-metrics is absent.
    Cadvisor,
}

/// A container's memory limit as of the window's end. `bytes: None` is a container the
/// source knows to run without a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitReading {
    pub key: ContainerKey,
    pub bytes: Option<f64>,
    pub source: LimitSource,
}

/// One container's hours read back from the source's history, for the long tier.
#[derive(Debug, Clone, PartialEq)]
pub struct LongSeries {
    pub key: ContainerKey,
    /// (the hour's start (ms), its highest working set, its mean), in time order.
    pub hours: Vec<(TimestampMs, f64, f64)>,
}

/// Whether cgroup `id` lies under `parent` (`/a/b/c` under `/a/b`): a cgroup a
/// container made inside its own, which cAdvisor reports under the container's
/// labels (kubernetes/kubernetes#129253).
pub fn is_nested_in(id: &str, parent: &str) -> bool {
    id.len() > parent.len() && id.starts_with(parent) && id.as_bytes()[parent.len()] == b'/'
}

/// Everything one fetch returned.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub working_sets: Vec<WorkingSetSeries>,
    pub restarts: Vec<RestartSeries>,
    /// Per container: 1 while its last termination was an OOM kill.
    pub oom_terminations: Vec<RestartSeries>,
    pub limits: Vec<LimitReading>,
    /// Series dropped because they lacked namespace, pod or container.
    pub series_without_identity: usize,
    /// Series dropped as twins of a container's own cAdvisor series (see
    /// [`kubernetes::Dropped::twins`]).
    pub twin_series: usize,
    /// Working-set series the queries returned, before a pod-mode shard kept its own:
    /// what the size of an answer grows with (0: not known, pieces are sized by the
    /// store).
    pub series_fetched: usize,
}

/// What went wrong fetching a batch: which query, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what} query failed")]
pub struct SourceError {
    pub what: &'static str,
    #[source]
    pub source: prometheus::QueryError,
}

/// A pod as the store names it: namespace, name, and the extra identity labels (e.g.
/// `cluster`, sorted by name) that tell same-named pods of several clusters apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    pub extra: Vec<(String, String)>,
}

/// Anything that can produce batches: Prometheus, or the demo's simulated cluster.
pub trait Source: Send + Sync {
    fn fetch(&self, window: Window) -> impl Future<Output = Result<Batch, SourceError>> + Send;

    /// Each container's highest and mean working set in every whole hour of
    /// `[start, end)` (hour-aligned ms), for the long tier. Sources without a history
    /// return nothing.
    fn long_history(
        &self,
        start: TimestampMs,
        end: TimestampMs,
    ) -> impl Future<Output = Result<Vec<LongSeries>, SourceError>> + Send {
        let _ = (start, end);
        async { Ok(Vec::new()) }
    }

    /// What the cluster knows about these pods as of `at`: start, owners, annotation
    /// changes. Sources without such metadata return nothing.
    fn context(
        &self,
        pods: &[PodRef],
        at: TimestampMs,
    ) -> impl Future<Output = Result<Vec<metadata::PodContext>, SourceError>> + Send {
        let _ = (pods, at);
        async { Ok(Vec::new()) }
    }

    /// The owning workload of every pod in `namespace` (within the extra identity
    /// labels `extra`, e.g. one cluster's) as of `at`: (pod, "Kind/name"), following
    /// Pod → ReplicaSet → Deployment. Sources without owners return nothing.
    fn owners(
        &self,
        namespace: &str,
        extra: &[(String, String)],
        at: TimestampMs,
    ) -> impl Future<Output = Result<Vec<(String, String)>, SourceError>> + Send {
        let _ = (namespace, extra, at);
        async { Ok(Vec::new()) }
    }

    /// Envoy's memory stats (`envoy_server_memory_allocated`, `_heap_size`) of these
    /// pods as of `at`, where scraped. Sources without them return nothing.
    fn envoy(
        &self,
        pods: &[PodRef],
        at: TimestampMs,
    ) -> impl Future<Output = Result<Vec<(PodRef, metadata::EnvoyMemory)>, SourceError>> + Send
    {
        let _ = (pods, at);
        async { Ok(Vec::new()) }
    }
}
