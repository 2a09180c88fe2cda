//! Explanations a person needs beside a forecast: whether a container is a sidecar,
//! what changed when its growth began, its workload's replicas, its pod's total, and —
//! after an OOM kill — which container of the pod was actually at its limit.
//!
//! - this file: the pure rules (the default sidecar names, the changes near an onset);
//! - [`enrich`]: [`Explainer`], which reads pod metadata through the source (with its
//!   caches) and adds explanations to reports after each evaluation;
//! - [`oom`]: OOM-kill attribution on the store's samples, and the record of kills.
//!
//! Explanations read from `source`, `store` and `model` and write into `report`;
//! nothing below them imports this module.

pub mod enrich;
pub mod oom;

pub use enrich::Explainer;
pub use oom::{attribute, ContainerAtKill, OomKill};

use crate::report::Change;
use crate::source::metadata::PodContext;
use crate::vocab::TimestampMs;

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
                at: crate::vocab::Rfc3339(at),
                text,
            });
        }
    }
    if let Some(at) = pod.started_at {
        if near(at) && out.is_empty() {
            out.push(Change {
                kind: "pod_started",
                at: crate::vocab::Rfc3339(at),
                text: format!("{} the pod started", minutes_between(at, onset.max(at))),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::metadata::AnnotationChange;

    const T: i64 = 1_773_930_707_000; // 2026-03-19T14:31:47Z

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
