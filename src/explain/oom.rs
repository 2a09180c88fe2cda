//! OOM kills: which container of the pod was at its limit when the kernel acted,
//! judged on the samples the store holds from just before the kill, and the record of
//! recent kills the API, the page and the metrics show.

use std::collections::VecDeque;

use serde::Serialize;

use crate::source::ContainerKey;
use crate::store::Store;
use crate::units::format_bytes;
use crate::vocab::{Rfc3339, TimestampMs};

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
    pub at: Rfc3339,
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
        at: Rfc3339(at),
        namespace: namespace.into(),
        pod: pod.into(),
        labels: Default::default(),
        reported_container: reported.into(),
        attributed_container: attributed,
        containers,
        sentence,
    }
}

/// How many attributed OOM kills are remembered for the API, the page and metrics.
const KEPT_KILLS: usize = 100;

/// The most recent OOM kills, attributed, newest last.
#[derive(Debug, Default)]
pub struct KillRecord {
    kills: VecDeque<OomKill>,
}

impl KillRecord {
    /// Attributes the kills a poll found (the container Kubernetes reported, and when
    /// it restarted) on the store's samples from before each, and remembers them.
    /// Returns those that are news: kills found while backfilling are history from
    /// before headroom started, remembered but neither logged nor returned.
    pub fn record(
        &mut self,
        store: &Store,
        found: &[(ContainerKey, TimestampMs)],
        backfill: bool,
    ) -> Vec<OomKill> {
        let mut news = Vec::new();
        for (reported, at) in found {
            let kill = attribute_in(store, reported, *at);
            if !backfill {
                tracing::warn!(
                    namespace = %kill.namespace,
                    pod = %kill.pod,
                    reported = %kill.reported_container,
                    attributed = kill.attributed_container.as_deref().unwrap_or("-"),
                    "{}",
                    kill.sentence
                );
                news.push(kill.clone());
            }
            self.kills.push_back(kill);
            if self.kills.len() > KEPT_KILLS {
                self.kills.pop_front();
            }
        }
        news
    }

    /// The most recent OOM kills, newest last.
    pub fn recent(&self) -> Vec<OomKill> {
        self.kills.iter().cloned().collect()
    }
}

/// How long after a restarted container's first sample the restart that reports its
/// kill may be read: kube-state-metrics' lag (15-40 s) and a scrape interval or two.
const KILL_SIGNAL_LAG_MS: i64 = 2 * 60_000;

/// Which container of the reported container's pod was at its limit just before
/// `at`, from the samples the store holds: each judged on the incarnation the kill
/// ended, whichever of the restart counter and the new cgroup was seen first.
fn attribute_in(store: &Store, reported: &ContainerKey, at: TimestampMs) -> OomKill {
    let containers = store
        .iter()
        .filter(|(k, _)| {
            k.namespace == reported.namespace && k.pod == reported.pod && k.extra == reported.extra
        })
        .filter_map(|(k, tracked)| {
            let sample = tracked.sample_at_kill(at, KILL_SIGNAL_LAG_MS)?;
            Some(ContainerAtKill {
                container: k.container.clone(),
                working_set_bytes: sample.bytes,
                limit_bytes: tracked.limit.and_then(|l| l.bytes),
            })
        })
        .collect();
    let mut kill = attribute(
        at,
        &reported.namespace,
        &reported.pod,
        &reported.container,
        containers,
    );
    kill.labels = reported.extra.iter().cloned().collect();
    kill
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
}
