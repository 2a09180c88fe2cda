//! What the source is configured with: where Prometheus is, the PromQL it runs, and
//! this replica's shard. The config module validates these; the source uses them.

use std::time::Duration;

use crate::vocab::{Auth, TlsConfig};

/// The default queries. They are public so `--help` texts and docs can show them.
pub const DEFAULT_WORKING_SET_QUERY: &str =
    r#"container_memory_working_set_bytes{container!="",container!="POD"}"#;
pub const DEFAULT_LIMITS_QUERY: &str = r#"kube_pod_container_resource_limits{resource="memory"}"#;
pub const DEFAULT_INIT_LIMITS_QUERY: &str =
    r#"kube_pod_init_container_resource_limits{resource="memory"}"#;
pub const DEFAULT_CADVISOR_LIMITS_QUERY: &str =
    r#"container_spec_memory_limit_bytes{container!="",container!="POD"}"#;
pub const DEFAULT_RESTARTS_QUERY: &str =
    "kube_pod_container_status_restarts_total or kube_pod_init_container_status_restarts_total";
pub const DEFAULT_OOM_QUERY: &str =
    r#"kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}"#;

/// Where Prometheus is and how to talk to it.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// Base URL; API paths such as `api/v1/query` are joined onto it, so a path prefix
    /// (`https://thanos.example/prometheus/`) is kept.
    pub url: reqwest::Url,
    /// Per-request timeout, also sent to Prometheus so it abandons the query in time.
    pub timeout: Duration,
    pub auth: Auth,
    /// Extra headers on every request, e.g. `X-Scope-OrgID` for Mimir tenants.
    pub headers: Vec<(String, String)>,
    pub tls: TlsConfig,
    /// Prometheus refuses range queries of more than 11,000 points per series; longer
    /// ranges are split into requests of at most this many points.
    pub max_points_per_request: u32,
    /// Requests in flight at once, so a backfill never floods Prometheus.
    pub max_concurrent_requests: usize,
    /// The largest answer read (bytes): a bigger one is refused with an error that
    /// names this setting, before it can take the process' memory.
    pub max_response_bytes: u64,
    /// The most series one answer may hold: counted while it is parsed, and refused
    /// past this with an error that names the setting (a million-series answer took
    /// 2 GB before it was seen).
    pub max_series: usize,
}

/// The PromQL that headroom runs. Each must keep the `namespace`, `pod` and `container`
/// labels (and any extra identity labels).
#[derive(Debug, Clone)]
pub struct Queries {
    pub working_set: String,
    pub limits: String,
    pub init_container_limits: Option<String>,
    pub cadvisor_limits: Option<String>,
    pub restarts: Option<String>,
    /// 1 while a container's last termination was an OOM kill (kube-state-metrics);
    /// with a restart it marks an OOM kill to attribute.
    pub oom_kills: Option<String>,
}

/// How replicas split the containers between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardMode {
    /// By a hash of namespace/pod: even shards; every replica reads every series
    /// and keeps its own (a pod's containers always share a shard).
    Pod,
    /// By a hash of the namespace: each replica asks Prometheus only for its
    /// namespaces, so Prometheus' cost is split too; shards are as even as namespaces.
    Namespace,
}

/// This replica's share of the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    pub mode: ShardMode,
}

impl Shard {
    /// FNV-1a: stable across versions and platforms, unlike std's hasher.
    fn hash(text: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    /// Whether this replica owns a container of `pod` in `namespace`.
    pub fn owns(&self, namespace: &str, pod: &str) -> bool {
        let h = match self.mode {
            ShardMode::Pod => Self::hash(&format!("{namespace}/{pod}")),
            ShardMode::Namespace => Self::hash(namespace),
        };
        h % u64::from(self.count) == u64::from(self.index)
    }
}
