//! What the cluster knows about pods beyond their memory: start times, owners,
//! rollouts and their annotation changes, native sidecars, and Envoy's own memory
//! stats. The source fetches these for explanations; `explain` reads them.

use serde::Serialize;

use crate::units::format_bytes;
use crate::vocab::TimestampMs;

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
    pub fn pod_ref(&self) -> super::PodRef {
        super::PodRef {
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
