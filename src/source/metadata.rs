//! What the cluster knows about pods beyond their memory: start times, owners,
//! rollouts and their annotation changes, native sidecars, and Envoy's own memory
//! stats: the types `explain` reads, and the kube-state-metrics and Envoy queries
//! that read them from Prometheus.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::prometheus::{InstantSample, PrometheusClient};
use super::promql::{label_escape, regex_escape, scope};
use super::{PodRef, SourceError};
use crate::units::format_bytes;
use crate::vocab::{Labels, TimestampMs};

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

// ---------------------------------------------------------------------------------------
// Reading them from Prometheus (kube-state-metrics, Envoy's stats).
// ---------------------------------------------------------------------------------------

/// What one pod's ReplicaSet says: when it was created and which workload owns it.
struct ReplicaSets {
    created: Vec<InstantSample>,
    owners: Vec<InstantSample>,
}

/// Reads pod metadata and Envoy's stats through a Prometheus client.
pub struct MetadataReader<'a>(pub &'a PrometheusClient);

impl MetadataReader<'_> {
    async fn instant(
        &self,
        what: &'static str,
        query: String,
        at: i64,
    ) -> Result<Vec<InstantSample>, SourceError> {
        self.0
            .query(&query, at)
            .await
            .map_err(|source| SourceError { what, source })
    }

    /// Every pod of a namespace (within its extra identity labels) and its workload,
    /// "Kind/name", through its ReplicaSet when it has one.
    pub async fn owners(
        &self,
        namespace: &str,
        extra: &[(String, String)],
        at: i64,
    ) -> Result<Vec<(String, String)>, SourceError> {
        let scope = scope(namespace, extra);
        let (pods, replicasets) = tokio::try_join!(
            self.instant("pod_owner", format!("kube_pod_owner{{{scope}}}"), at),
            self.instant(
                "replicaset_owner",
                format!("kube_replicaset_owner{{{scope}}}"),
                at
            ),
        )?;
        let rs_owner: HashMap<&str, String> = replicasets
            .iter()
            .filter_map(|s| {
                let rs = s.labels.get("replicaset")?;
                Some((
                    rs.as_str(),
                    format!(
                        "{}/{}",
                        s.labels.get("owner_kind")?,
                        s.labels.get("owner_name")?
                    ),
                ))
            })
            .collect();
        Ok(pods
            .iter()
            .filter_map(|s| {
                let pod = s.labels.get("pod")?.clone();
                let kind = s.labels.get("owner_kind")?;
                let name = s.labels.get("owner_name")?;
                let workload = match kind.as_str() {
                    "ReplicaSet" => rs_owner
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or_else(|| format!("ReplicaSet/{name}")),
                    "<none>" => return None,
                    _ => format!("{kind}/{name}"),
                };
                Some((pod, workload))
            })
            .collect())
    }

    /// Envoy's own memory stats of the pods' Envoy sidecars, where they are scraped.
    pub async fn envoy(
        &self,
        pods: &[PodRef],
        at: i64,
    ) -> Result<Vec<(PodRef, EnvoyMemory)>, SourceError> {
        let mut out = Vec::new();
        for ((ns, extra), names) in by_scope(pods) {
            let pod_re = names
                .iter()
                .map(|p| regex_escape(p))
                .collect::<Vec<_>>()
                .join("|");
            let sel = format!(r#"{},pod=~"{pod_re}""#, scope(ns, extra));
            let (allocated, heap) = tokio::try_join!(
                self.instant(
                    "envoy",
                    format!("max by (namespace, pod) (envoy_server_memory_allocated{{{sel}}})"),
                    at
                ),
                self.instant(
                    "envoy",
                    format!("max by (namespace, pod) (envoy_server_memory_heap_size{{{sel}}})"),
                    at
                ),
            )?;
            for a in &allocated {
                let Some(pod) = a.labels.get("pod") else {
                    continue;
                };
                if let Some(h) = heap.iter().find(|h| h.labels.get("pod") == Some(pod)) {
                    out.push((
                        PodRef {
                            namespace: ns.to_string(),
                            pod: pod.clone(),
                            extra: extra.to_vec(),
                        },
                        EnvoyMemory {
                            allocated_bytes: a.value,
                            heap_size_bytes: h.value,
                        },
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Each pod's start, owner ReplicaSet and its creation, the workload owning it,
    /// native sidecars, and annotations that differ from the previous ReplicaSet's
    /// pods: one set of queries per namespace and extra identity labels.
    pub async fn contexts(&self, pods: &[PodRef], at: i64) -> Result<Vec<PodContext>, SourceError> {
        let mut out = Vec::new();
        for ((ns, extra), names) in by_scope(pods) {
            out.extend(self.namespace_context(ns, extra, &names, at).await?);
        }
        Ok(out)
    }

    async fn namespace_context(
        &self,
        ns: &str,
        extra: &[(String, String)],
        pods: &[&str],
        at: i64,
    ) -> Result<Vec<PodContext>, SourceError> {
        // Every selector is scoped to the namespace and the pods' extra identity
        // labels: same-named pods of another cluster are not these.
        let scope = scope(ns, extra);
        let pod_re = pods
            .iter()
            .map(|p| regex_escape(p))
            .collect::<Vec<_>>()
            .join("|");
        let sel = format!(r#"{scope},pod=~"{pod_re}""#);
        let (mut contexts, annotations, infos) = self.pods_now(ns, extra, pods, &sel, at).await?;
        let Some(replicasets) = self.replicasets(&scope, &contexts, at).await? else {
            return Ok(contexts);
        };
        for c in &mut contexts {
            let Some(rs) = c.replicaset.clone() else {
                continue;
            };
            let of_rs = |s: &&InstantSample| s.labels.get("replicaset") == Some(&rs);
            c.replicaset_created_at = replicasets
                .created
                .iter()
                .find(of_rs)
                .map(|s| (s.value * 1000.0) as i64);
            c.workload = replicasets
                .owners
                .iter()
                .find(of_rs)
                .and_then(|s| Some((label(s, "owner_kind")?, label(s, "owner_name")?)));
            let (Some(created_at), Some((_, workload))) =
                (c.replicaset_created_at, c.workload.clone())
            else {
                continue;
            };
            let mut now = annotations
                .iter()
                .find(|s| s.labels.get("pod") == Some(&c.pod))
                .map(|s| annotation_labels(&s.labels))
                .unwrap_or_default();
            now.extend(images(
                infos.iter().filter(|s| s.labels.get("pod") == Some(&c.pod)),
            ));
            // Annotations of the previous ReplicaSet's pods, just before this one.
            let before_at = created_at - 60_000;
            let Some(old_pod) = self.previous_pod(&scope, &workload, &rs, before_at).await? else {
                continue;
            };
            let before = self.pod_annotations(&scope, &old_pod, before_at).await?;
            c.annotation_changes = changes(&before, &now);
        }
        Ok(contexts)
    }

    /// What kube-state-metrics says of the pods at `at`: their start, ReplicaSet and
    /// native sidecars; and their annotations and containers' images, to compare with
    /// the previous ReplicaSet's pods.
    async fn pods_now(
        &self,
        ns: &str,
        extra: &[(String, String)],
        pods: &[&str],
        sel: &str,
        at: i64,
    ) -> Result<(Vec<PodContext>, Vec<InstantSample>, Vec<InstantSample>), SourceError> {
        let (starts, owners, init, annotations, infos) = tokio::try_join!(
            self.instant("pod_start", format!("kube_pod_start_time{{{sel}}}"), at),
            self.instant(
                "pod_owner",
                format!(r#"kube_pod_owner{{{sel},owner_kind="ReplicaSet"}}"#),
                at
            ),
            self.instant(
                "init_container_info",
                format!(r#"kube_pod_init_container_info{{{sel},restart_policy="Always"}}"#),
                at
            ),
            self.instant(
                "pod_annotations",
                format!("kube_pod_annotations{{{sel}}}"),
                at
            ),
            self.instant(
                "container_info",
                format!("kube_pod_container_info{{{sel}}}"),
                at
            ),
        )?;
        let mut contexts: Vec<PodContext> = pods
            .iter()
            .map(|p| PodContext {
                namespace: ns.to_string(),
                pod: p.to_string(),
                extra: extra.to_vec(),
                ..PodContext::default()
            })
            .collect();
        let find = |contexts: &mut Vec<PodContext>, s: &InstantSample| -> Option<usize> {
            let pod = s.labels.get("pod")?;
            contexts.iter().position(|c| &c.pod == pod)
        };
        for s in &starts {
            if let Some(i) = find(&mut contexts, s) {
                contexts[i].started_at = Some((s.value * 1000.0) as i64);
            }
        }
        for s in &owners {
            if let Some(i) = find(&mut contexts, s) {
                contexts[i].replicaset = label(s, "owner_name");
            }
        }
        for s in &init {
            if let (Some(i), Some(c)) = (find(&mut contexts, s), label(s, "container")) {
                contexts[i].native_sidecars.push(c);
            }
        }
        Ok((contexts, annotations, infos))
    }

    /// The creation and owners of the pods' ReplicaSets; `None` when no pod has one.
    async fn replicasets(
        &self,
        scope: &str,
        contexts: &[PodContext],
        at: i64,
    ) -> Result<Option<ReplicaSets>, SourceError> {
        let replicasets: Vec<String> = contexts
            .iter()
            .filter_map(|c| c.replicaset.clone())
            .collect();
        if replicasets.is_empty() {
            return Ok(None);
        }
        let rs_re = replicasets
            .iter()
            .map(|r| regex_escape(r))
            .collect::<Vec<_>>()
            .join("|");
        let rs_sel = format!(r#"{scope},replicaset=~"{rs_re}""#);
        let (created, owners) = tokio::try_join!(
            self.instant(
                "replicaset_created",
                format!("kube_replicaset_created{{{rs_sel}}}"),
                at
            ),
            self.instant(
                "replicaset_owner",
                format!("kube_replicaset_owner{{{rs_sel}}}"),
                at
            ),
        )?;
        Ok(Some(ReplicaSets { created, owners }))
    }

    /// A pod of the workload's other ReplicaSets (exactly this workload's, not a
    /// sibling whose name shares a prefix) at `before_at`, just before the rollout.
    async fn previous_pod(
        &self,
        scope: &str,
        workload: &str,
        replicaset: &str,
        before_at: i64,
    ) -> Result<Option<String>, SourceError> {
        let siblings = self
            .instant(
                "replicaset_owner",
                format!(
                    r#"kube_replicaset_owner{{{scope},owner_name="{}"}}"#,
                    label_escape(workload)
                ),
                before_at,
            )
            .await?;
        let previous: Vec<String> = siblings
            .iter()
            .filter_map(|s| label(s, "replicaset"))
            .filter(|r| r != replicaset)
            .map(|r| regex_escape(&r))
            .collect();
        if previous.is_empty() {
            return Ok(None);
        }
        let older = self
            .instant(
                "pod_owner",
                format!(
                    r#"kube_pod_owner{{{scope},owner_kind="ReplicaSet",owner_name=~"{}"}}"#,
                    previous.join("|")
                ),
                before_at,
            )
            .await?;
        Ok(older.iter().find_map(|s| label(s, "pod")))
    }

    /// A pod's annotations and container images at `at`.
    async fn pod_annotations(
        &self,
        scope: &str,
        pod: &str,
        at: i64,
    ) -> Result<BTreeMap<String, String>, SourceError> {
        let old = self
            .instant(
                "pod_annotations",
                format!(
                    r#"kube_pod_annotations{{{scope},pod="{}"}}"#,
                    label_escape(pod)
                ),
                at,
            )
            .await?;
        let old_images = self
            .instant(
                "container_info",
                format!(
                    r#"kube_pod_container_info{{{scope},pod="{}"}}"#,
                    label_escape(pod)
                ),
                at,
            )
            .await?;
        let mut before = old
            .first()
            .map(|s| annotation_labels(&s.labels))
            .unwrap_or_default();
        before.extend(images(old_images.iter()));
        Ok(before)
    }
}

fn label(s: &InstantSample, name: &str) -> Option<String> {
    s.labels.get(name).cloned()
}

/// The annotations (and images) whose values differ between two pods, by key.
fn changes(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<AnnotationChange> {
    let mut keys: Vec<&String> = before.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| before.get(*key) != now.get(*key))
        .map(|key| AnnotationChange {
            key: key.clone(),
            before: before.get(key).cloned(),
            after: now.get(key).cloned(),
        })
        .collect()
}

/// A namespace and extra identity labels, borrowed.
type ScopeRef<'a> = (&'a str, &'a [(String, String)]);

/// Pods grouped by namespace and extra identity labels: one set of queries each.
fn by_scope(pods: &[PodRef]) -> std::collections::BTreeMap<ScopeRef<'_>, Vec<&str>> {
    let mut out: std::collections::BTreeMap<ScopeRef<'_>, Vec<&str>> = Default::default();
    for p in pods {
        out.entry((p.namespace.as_str(), p.extra.as_slice()))
            .or_default()
            .push(p.pod.as_str());
    }
    out
}

/// Each container's image, as a pseudo-annotation `image of <container>`, so a new
/// image is named beside changed annotations.
fn images<'a>(infos: impl Iterator<Item = &'a InstantSample>) -> BTreeMap<String, String> {
    infos
        .filter_map(|s| {
            Some((
                format!("image of {}", s.labels.get("container")?),
                s.labels.get("image")?.clone(),
            ))
        })
        .collect()
}

/// kube-state-metrics exports annotations as `annotation_<sanitised key>` labels.
fn annotation_labels(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("annotation_")?.to_string(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn metadata_queries_are_scoped_to_the_pods_extra_labels() {
        use super::{by_scope, scope, PodRef};
        let extra = vec![("cluster".to_string(), r#"eu "1"\b"#.to_string())];
        assert_eq!(
            scope("prod", &extra),
            r#"namespace="prod",cluster="eu \"1\"\\b""#
        );
        assert_eq!(scope("prod", &[]), r#"namespace="prod""#);
        let pod = |cluster: &str, name: &str| PodRef {
            namespace: "db".into(),
            pod: name.into(),
            extra: vec![("cluster".into(), cluster.into())],
        };
        let pods = [
            pod("a", "redis-0"),
            pod("b", "redis-0"),
            pod("a", "redis-1"),
        ];
        let groups: Vec<(String, Vec<&str>)> = by_scope(&pods)
            .into_iter()
            .map(|((ns, extra), names)| (scope(ns, extra), names))
            .collect();
        assert_eq!(
            groups,
            vec![
                (
                    r#"namespace="db",cluster="a""#.to_string(),
                    vec!["redis-0", "redis-1"]
                ),
                (r#"namespace="db",cluster="b""#.to_string(), vec!["redis-0"]),
            ]
        );
    }
}
