//! Explanations a person needs beside a forecast: whether a container is a sidecar,
//! what changed when its growth began, and — after an OOM kill — which container of
//! the pod was actually at its limit. Pure functions over data the source fetched.

use serde::Serialize;

use crate::report::rfc3339;
use crate::source::TimestampMs;
use crate::units::format_bytes;

/// Containers injected beside an application, recognised by name.
pub const DEFAULT_SIDECAR_NAMES: &[&str] = &[
    "istio-proxy",
    "linkerd-proxy",
    "envoy",
    "envoy-sidecar",
    "vault-agent",
    "cloud-sql-proxy",
    "datadog-agent",
    "fluent-bit",
    "otel-collector",
];

/// What the cluster knows about a pod: its start, its owner chain, and annotation
/// changes from the pods of the previous ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PodContext {
    pub namespace: String,
    pub pod: String,
    /// The pod's extra identity labels (e.g. `cluster`), sorted by name.
    pub extra: Vec<(String, String)>,
    /// When the pod started (ms).
    pub started_at: Option<TimestampMs>,
    pub replicaset: Option<String>,
    /// When its ReplicaSet was created (ms).
    pub replicaset_created_at: Option<TimestampMs>,
    /// The owning workload, e.g. ("Deployment", "payment-service").
    pub workload: Option<(String, String)>,
    /// Annotations whose values differ from the previous ReplicaSet's pods.
    pub annotation_changes: Vec<AnnotationChange>,
    /// Native sidecars of the pod (init containers with restartPolicy: Always).
    pub native_sidecars: Vec<String>,
}

impl PodContext {
    /// The pod this context describes.
    pub fn pod_ref(&self) -> crate::source::PodRef {
        crate::source::PodRef {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            extra: self.extra.clone(),
        }
    }
}

/// One annotation whose value changed with the rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationChange {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Envoy's own view of its memory, when its stats are scraped: `allocated` growing is
/// a real leak in Envoy's data; `heap_size` far above it is memory the allocator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EnvoyMemory {
    pub allocated_bytes: f64,
    pub heap_size_bytes: f64,
}

impl EnvoyMemory {
    pub fn text(&self) -> String {
        let retained = (self.heap_size_bytes - self.allocated_bytes).max(0.0);
        format!(
            "Envoy reports {} allocated of a {} heap ({} held by the allocator)",
            format_bytes(self.allocated_bytes),
            format_bytes(self.heap_size_bytes),
            format_bytes(retained)
        )
    }
}

/// The pod's total against the sum of its containers' limits (the pod cgroup's
/// limit when every container has one), beside each container's own.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PodPressure {
    pub working_set_bytes: f64,
    /// `None` when a container has no limit (the pod then has none either).
    pub limit_bytes: Option<f64>,
    pub time_to_limit_seconds: Option<f64>,
    /// Which limit is reached first: `container` (its own) or `pod`.
    pub applies: &'static str,
}

/// A container's siblings across the replicas of its workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadPeers {
    /// "Deployment/payment-service".
    pub workload: String,
    /// Replicas running this container.
    pub replicas: usize,
    /// Of those, on course to their limit within the critical horizon.
    pub on_course: usize,
    pub horizon_seconds: f64,
}

impl WorkloadPeers {
    /// "3 of 12 replicas of Deployment/payment-service have istio-proxy on course to
    /// its limit within 2h: shared growth points to a workload-wide cause".
    pub fn text(&self, container: &str) -> String {
        let mut text = format!(
            "{} of {} replicas of {} have {container} on course to its limit within {}",
            self.on_course,
            self.replicas,
            self.workload,
            crate::units::format_duration_short(self.horizon_seconds)
        );
        if self.on_course >= 2 {
            text.push_str(": growth shared by replicas points to a workload-wide cause (a rollout, a config, traffic), not one pod");
        } else if self.on_course == 1 && self.replicas >= 3 {
            text.push_str(": only this replica, so look at what is special about this pod");
        }
        text
    }
}

/// A change near the onset of growth, worth naming in an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `replicaset_created` or `pod_started`.
    pub kind: &'static str,
    pub at: TimestampMs,
    /// "2 min after ReplicaSet payment-service-7f8b9c6d4 was created".
    pub text: String,
}

/// How close to the onset a change must be to be named (ms).
pub const CHANGE_WINDOW_MS: i64 = 15 * 60_000;

fn minutes_between(earlier: TimestampMs, later: TimestampMs) -> String {
    let minutes = ((later - earlier) as f64 / 60_000.0).round() as i64;
    match minutes {
        0 => "when".into(),
        1 => "1 min after".into(),
        m => format!("{m} min after"),
    }
}

/// The changes that explain growth beginning at `onset`: a ReplicaSet created or the
/// pod started up to [`CHANGE_WINDOW_MS`] before it, plus the annotations that
/// changed with that rollout. Nothing found, nothing said.
pub fn changes_near(onset: TimestampMs, pod: &PodContext) -> Vec<Change> {
    let mut out = Vec::new();
    let near = |at: TimestampMs| at <= onset + 60_000 && onset - at <= CHANGE_WINDOW_MS;
    if let (Some(rs), Some(at)) = (&pod.replicaset, pod.replicaset_created_at) {
        if near(at) {
            let mut text = format!(
                "{} ReplicaSet {rs} was created",
                minutes_between(at, onset.max(at))
            );
            if !pod.annotation_changes.is_empty() {
                let changed: Vec<String> = pod
                    .annotation_changes
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {} → {}",
                            c.key,
                            c.before.as_deref().unwrap_or("(unset)"),
                            c.after.as_deref().unwrap_or("(unset)")
                        )
                    })
                    .collect();
                text.push_str(&format!(" (changed: {})", changed.join("; ")));
            }
            out.push(Change {
                kind: "replicaset_created",
                at,
                text,
            });
        }
    }
    if let Some(at) = pod.started_at {
        if near(at) && out.is_empty() {
            out.push(Change {
                kind: "pod_started",
                at,
                text: format!("{} the pod started", minutes_between(at, onset.max(at))),
            });
        }
    }
    out
}

/// A container's state just before an OOM kill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerAtKill {
    pub container: String,
    pub working_set_bytes: f64,
    pub limit_bytes: Option<f64>,
}

impl ContainerAtKill {
    fn use_ratio(&self) -> Option<f64> {
        self.limit_bytes
            .filter(|l| *l > 0.0)
            .map(|l| self.working_set_bytes / l)
    }
}

/// An OOM kill and which container was at its limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OomKill {
    pub at: String,
    pub namespace: String,
    pub pod: String,
    /// The pod's extra identity labels (`identity.extra_labels`), `{}` when none.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The container Kubernetes reported as OOMKilled.
    pub reported_container: String,
    /// The container that was at (or nearest) its limit, when one was close.
    pub attributed_container: Option<String>,
    pub containers: Vec<ContainerAtKill>,
    pub sentence: String,
}

/// Use of its limit at which a container counts as "at its limit" when killed.
pub const AT_LIMIT_RATIO: f64 = 0.95;

/// Attributes an OOM kill: the pod's container fullest relative to its own limit, if
/// it was near it. Says plainly when Kubernetes reported another container.
pub fn attribute(
    at: TimestampMs,
    namespace: &str,
    pod: &str,
    reported: &str,
    mut containers: Vec<ContainerAtKill>,
) -> OomKill {
    containers.sort_by(|a, b| {
        b.use_ratio()
            .unwrap_or(-1.0)
            .total_cmp(&a.use_ratio().unwrap_or(-1.0))
    });
    let fullest = containers
        .first()
        .filter(|c| c.use_ratio().is_some_and(|u| u >= AT_LIMIT_RATIO));
    let amount = |c: &ContainerAtKill| match c.limit_bytes {
        Some(l) => format!(
            "{} of {}",
            format_bytes(c.working_set_bytes),
            format_bytes(l)
        ),
        None => format!("{} (no limit)", format_bytes(c.working_set_bytes)),
    };
    let attributed = fullest.map(|c| c.container.clone());
    let sentence = match fullest {
        Some(c) if c.container != reported => {
            let mut parts = vec![format!("{} was at {}", c.container, amount(c))];
            parts.extend(
                containers
                    .iter()
                    .filter(|x| x.container != c.container)
                    .map(|x| format!("{} at {}", x.container, amount(x))),
            );
            format!(
                "OOM kill in {namespace}/{pod} reported on {reported}; {}",
                parts.join(", ")
            )
        }
        Some(c) => format!(
            "OOM kill in {namespace}/{pod}: {reported} was at its limit ({})",
            amount(c)
        ),
        None => {
            let all: Vec<String> = containers
                .iter()
                .map(|x| format!("{} at {}", x.container, amount(x)))
                .collect();
            format!(
                "OOM kill in {namespace}/{pod} reported on {reported}; no container was near its own limit ({}): pod-level or node memory pressure",
                all.join(", ")
            )
        }
    };
    OomKill {
        at: rfc3339(at),
        namespace: namespace.into(),
        pod: pod.into(),
        labels: Default::default(),
        reported_container: reported.into(),
        attributed_container: attributed,
        containers,
        sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: f64 = 1048576.0;
    const T: i64 = 1_773_930_707_000; // 2026-03-19T14:31:47Z

    fn c(name: &str, ws: f64, limit: f64) -> ContainerAtKill {
        ContainerAtKill {
            container: name.into(),
            working_set_bytes: ws * MI,
            limit_bytes: Some(limit * MI),
        }
    }

    #[test]
    fn the_sidecar_at_its_limit_is_named_when_the_app_was_reported() {
        let kill = attribute(
            T,
            "prod",
            "payment-service-7f8b9c6d4-xk2nm",
            "payment-service",
            vec![
                c("payment-service", 118.0, 256.0),
                c("istio-proxy", 127.0, 128.0),
            ],
        );
        assert_eq!(kill.attributed_container.as_deref(), Some("istio-proxy"));
        assert_eq!(
            kill.sentence,
            "OOM kill in prod/payment-service-7f8b9c6d4-xk2nm reported on payment-service; istio-proxy was at 127Mi of 128Mi, payment-service at 118Mi of 256Mi"
        );
    }

    #[test]
    fn the_reported_container_can_be_the_culprit() {
        let kill = attribute(
            T,
            "prod",
            "p",
            "app",
            vec![c("app", 255.0, 256.0), c("istio-proxy", 70.0, 128.0)],
        );
        assert_eq!(kill.attributed_container.as_deref(), Some("app"));
        assert_eq!(
            kill.sentence,
            "OOM kill in prod/p: app was at its limit (255Mi of 256Mi)"
        );
    }

    #[test]
    fn nobody_near_a_limit_is_said_plainly() {
        let kill = attribute(T, "prod", "p", "app", vec![c("app", 100.0, 256.0)]);
        assert!(kill.attributed_container.is_none());
        assert!(kill
            .sentence
            .contains("no container was near its own limit"));
    }

    #[test]
    fn changes_are_named_only_near_the_onset() {
        let pod = PodContext {
            replicaset: Some("payment-service-7f8b9c6d4".into()),
            replicaset_created_at: Some(T - 20 * 60_000),
            started_at: Some(T - 19 * 60_000),
            annotation_changes: vec![AnnotationChange {
                key: "proxy.istio.io/config".into(),
                before: Some(r#"{"tracing":{"sampling":1}}"#.into()),
                after: Some(r#"{"tracing":{"sampling":100}}"#.into()),
            }],
            ..Default::default()
        };
        let onset = T - 18 * 60_000;
        let changes = changes_near(onset, &pod);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].text,
            r#"2 min after ReplicaSet payment-service-7f8b9c6d4 was created (changed: proxy.istio.io/config {"tracing":{"sampling":1}} → {"tracing":{"sampling":100}})"#
        );
        assert!(
            changes_near(T + 3 * 3_600_000, &pod).is_empty(),
            "hours later: nothing said"
        );
        let started_only = PodContext {
            started_at: Some(onset),
            ..Default::default()
        };
        assert_eq!(
            changes_near(onset, &started_only)[0].text,
            "when the pod started"
        );
    }
}

#[cfg(test)]
mod peer_tests {
    use super::WorkloadPeers;

    #[test]
    fn shared_growth_is_called_workload_wide() {
        let peers = WorkloadPeers {
            workload: "Deployment/payment-service".into(),
            replicas: 12,
            on_course: 3,
            horizon_seconds: 7200.0,
        };
        assert_eq!(
            peers.text("istio-proxy"),
            "3 of 12 replicas of Deployment/payment-service have istio-proxy on course to its limit within 2h00m: growth shared by replicas points to a workload-wide cause (a rollout, a config, traffic), not one pod"
        );
        let alone = WorkloadPeers {
            on_course: 1,
            ..peers
        };
        assert!(alone
            .text("istio-proxy")
            .ends_with("only this replica, so look at what is special about this pod"));
    }
}
