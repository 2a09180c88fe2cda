//! The demo's simulated cluster: a few pods with the memory shapes real clusters have,
//! and the seed incident — payment-service's istio-proxy sidecar leaking toward its
//! 128Mi limit after a rollout while the app container stays flat. A [`Source`] like
//! Prometheus, so the demo runs the daemon's real pipeline.

use std::time::Duration;

use crate::model::Sample;
use crate::source::metadata::{AnnotationChange, PodContext};
use crate::source::{
    Batch, ContainerKey, LimitReading, LimitSource, RestartSeries, Source, SourceError, Window,
    WorkingSetSeries,
};
use crate::vocab::TimestampMs;

const MI: f64 = 1048576.0;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// One simulated container.
struct SimContainer {
    namespace: &'static str,
    pod: &'static str,
    container: &'static str,
    limit: Option<f64>,
    /// When the container (first) started (ms).
    started: TimestampMs,
    /// Bytes at `age` ms since the current incarnation started.
    shape: fn(age: i64) -> f64,
    /// The incarnation restarts when it reaches its limit (an OOM kill).
    restarts_on_oom: bool,
    noise_bytes: f64,
}

/// The demo cluster; `rollout` is when payment-service's new pod started.
pub struct SimulatedCluster {
    containers: Vec<SimContainer>,
    rollout: TimestampMs,
}

/// The sidecar reaches its limit this long after each (re)start.
const SIDECAR_REACH_MS: i64 = 2 * HOUR;
/// ... and the kubelet restarts it a minute later.
const SIDECAR_PERIOD_MS: i64 = SIDECAR_REACH_MS + MINUTE;

impl SimulatedCluster {
    /// A cluster whose payment-service pod (and its leaking sidecar) started at
    /// `rollout`; the other pods have run for hours before it.
    pub fn new(rollout: TimestampMs) -> Self {
        let long_ago = rollout - 8 * HOUR;
        let containers = vec![
            SimContainer {
                namespace: "prod",
                pod: "payment-service-7f8b9c6d4-xk2nm",
                container: "istio-proxy",
                limit: Some(128.0 * MI),
                started: rollout,
                // Trace sampling at 100%: +32Mi/h from 64Mi.
                shape: |age| 64.0 * MI + age as f64 / HOUR as f64 * 32.0 * MI,
                restarts_on_oom: true,
                noise_bytes: 0.4 * MI,
            },
            SimContainer {
                namespace: "prod",
                pod: "payment-service-7f8b9c6d4-xk2nm",
                container: "payment-service",
                limit: Some(256.0 * MI),
                started: rollout,
                shape: |age| 118.0 * MI - 40.0 * MI * (-(age as f64) / (5.0 * MINUTE as f64)).exp(),
                restarts_on_oom: false,
                noise_bytes: 1.0 * MI,
            },
            SimContainer {
                namespace: "prod",
                pod: "checkout-6d5f7c9b8-q2wzt",
                container: "checkout",
                limit: Some(512.0 * MI),
                started: long_ago,
                // A JVM: young-GC sawtooth between 300Mi and 440Mi every 4 minutes.
                shape: |age| {
                    300.0 * MI + 140.0 * MI * ((age % (4 * MINUTE)) as f64 / (4 * MINUTE) as f64)
                },
                restarts_on_oom: false,
                noise_bytes: 2.0 * MI,
            },
            SimContainer {
                namespace: "prod",
                pod: "catalog-5c4d9f7b6-m8pln",
                container: "catalog",
                limit: Some(512.0 * MI),
                started: rollout - 40 * MINUTE,
                // A cache warming up to 330Mi.
                shape: |age| {
                    330.0 * MI - 250.0 * MI * (-(age as f64) / (40.0 * MINUTE as f64)).exp()
                },
                restarts_on_oom: false,
                noise_bytes: 1.5 * MI,
            },
            SimContainer {
                namespace: "prod",
                pod: "frontend-7b9c5d6f4-zx8kq",
                container: "nginx",
                limit: Some(128.0 * MI),
                started: long_ago,
                shape: |_| 42.0 * MI,
                restarts_on_oom: false,
                noise_bytes: 0.5 * MI,
            },
            SimContainer {
                namespace: "batch",
                pod: "report-28d9f-x2j4k",
                container: "worker",
                limit: None,
                started: long_ago,
                shape: |age| 600.0 * MI + age as f64 / HOUR as f64 * 5.0 * MI,
                restarts_on_oom: false,
                noise_bytes: 3.0 * MI,
            },
        ];
        SimulatedCluster {
            containers,
            rollout,
        }
    }

    /// OOM kills before `at`: Kubernetes reports each against payment-service (the
    /// seed incident's misattribution) while the sidecar is the one at its limit.
    fn oom_kills_before(&self, at: TimestampMs) -> i64 {
        let since = at - self.rollout - SIDECAR_REACH_MS;
        if since < 0 {
            0
        } else {
            since / SIDECAR_PERIOD_MS + 1
        }
    }

    /// When the sidecar first reaches its limit (ms).
    pub fn sidecar_oom_at(rollout: TimestampMs) -> TimestampMs {
        rollout + SIDECAR_REACH_MS
    }
}

/// Deterministic noise in [-1, 1] for a series and an instant: repeated fetches of
/// the same window return the same samples, as Prometheus would. The instant is the
/// time since the container started, so that every run of the demo sees the same
/// samples whatever minute it starts in (seeded by the clock, the sidecar's first
/// page read ~1h13m instead of ~1h23m for runs started at some minutes, and the
/// alert was updated before the kill).
fn noise(series: usize, at: TimestampMs) -> f64 {
    let mut z = (at as u64) ^ ((series as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

impl Source for SimulatedCluster {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        let step = (window.step.max(Duration::from_secs(1)).as_millis() as i64).max(1);
        let mut batch = Batch::default();
        for (index, c) in self.containers.iter().enumerate() {
            let key = ContainerKey {
                namespace: c.namespace.into(),
                pod: c.pod.into(),
                container: c.container.into(),
                extra: vec![],
            };
            // Incarnations: a leaking container restarts a minute after each OOM.
            let period = c.limit.filter(|_| c.restarts_on_oom).and_then(|limit| {
                let mut age = 0;
                while (c.shape)(age) < limit && age < 48 * HOUR {
                    age += MINUTE / 2;
                }
                (age < 48 * HOUR).then_some(age + MINUTE)
            });
            let mut series: Vec<WorkingSetSeries> = Vec::new();
            let mut t = window.start.max(c.started);
            t += (step - (t - window.start).rem_euclid(step)) % step;
            while t <= window.end {
                let since = t - c.started;
                let (incarnation, age) = match period {
                    Some(p) => (since / p, since % p),
                    None => (0, since),
                };
                let base = (c.shape)(age);
                let bytes = match c.limit {
                    // At the limit the kernel holds it there until the OOM kill.
                    Some(limit) if base >= limit => limit,
                    Some(limit) => (base + c.noise_bytes * noise(index, since)).min(limit),
                    None => base + c.noise_bytes * noise(index, since),
                };
                let id = format!("/kubepods/{}/{}-{incarnation}", c.pod, c.container);
                match series.last_mut() {
                    Some(s) if s.container_id.as_deref() == Some(id.as_str()) => {
                        s.samples.push(Sample { at: t, bytes })
                    }
                    _ => series.push(WorkingSetSeries {
                        key: key.clone(),
                        container_id: Some(id),
                        samples: vec![Sample { at: t, bytes }],
                    }),
                }
                t += step;
            }
            if window.limits && window.end >= c.started {
                batch.limits.push(LimitReading {
                    key,
                    bytes: c.limit,
                    source: LimitSource::KubeStateMetrics,
                });
            }
            batch.working_sets.extend(series);
        }
        // payment-service's restart counter and last termination reason.
        let Some(restarts_from) = window.restarts_from else {
            return Ok(batch);
        };
        let key = ContainerKey {
            namespace: "prod".into(),
            pod: "payment-service-7f8b9c6d4-xk2nm".into(),
            container: "payment-service".into(),
            extra: vec![],
        };
        let mut restarts = Vec::new();
        let mut oom = Vec::new();
        let mut t = restarts_from.max(self.rollout);
        t += (step - (t - restarts_from).rem_euclid(step)) % step;
        while t <= window.end {
            let kills = self.oom_kills_before(t + 1);
            restarts.push((t, kills as f64));
            if kills > 0 {
                oom.push((t, 1.0));
            }
            t += step;
        }
        batch.restarts.push(RestartSeries {
            key: key.clone(),
            samples: restarts,
        });
        if !oom.is_empty() {
            batch
                .oom_terminations
                .push(RestartSeries { key, samples: oom });
        }
        Ok(batch)
    }

    async fn context(
        &self,
        pods: &[crate::source::PodRef],
        _at: TimestampMs,
    ) -> Result<Vec<PodContext>, SourceError> {
        Ok(pods
            .iter()
            .filter(|p| p.pod == "payment-service-7f8b9c6d4-xk2nm")
            .map(|p| PodContext {
                namespace: p.namespace.clone(),
                pod: p.pod.clone(),
                extra: p.extra.clone(),
                started_at: Some(self.rollout),
                replicaset: Some("payment-service-7f8b9c6d4".into()),
                replicaset_created_at: Some(self.rollout - MINUTE),
                workload: Some(("Deployment".into(), "payment-service".into())),
                annotation_changes: vec![AnnotationChange {
                    key: "proxy_istio_io_config".into(),
                    before: Some(r#"{"tracing":{"sampling":1}}"#.into()),
                    after: Some(r#"{"tracing":{"sampling":100}}"#.into()),
                }],
                native_sidecars: vec![],
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sidecar_leaks_restarts_and_fetches_repeat() {
        let rollout = 1_773_929_520_000;
        let cluster = SimulatedCluster::new(rollout);
        let window = Window {
            start: rollout,
            end: rollout + 3 * HOUR,
            step: Duration::from_secs(30),
            limits: true,
            restarts_from: Some(rollout),
        };
        let a = cluster.fetch(window).await.unwrap();
        let b = cluster.fetch(window).await.unwrap();
        assert_eq!(a.working_sets, b.working_sets, "same window, same samples");
        let sidecar: Vec<_> = a
            .working_sets
            .iter()
            .filter(|s| s.key.container == "istio-proxy")
            .collect();
        assert_eq!(sidecar.len(), 2, "one restart after the OOM");
        let first = sidecar[0].samples.last().unwrap();
        assert_eq!(first.bytes, 128.0 * MI);
        assert!((first.at - SimulatedCluster::sidecar_oom_at(rollout)).abs() <= MINUTE);
        assert!(a
            .limits
            .iter()
            .any(|l| l.key.container == "worker" && l.bytes.is_none()));
    }
}
