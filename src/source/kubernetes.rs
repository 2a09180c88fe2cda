//! Reads Kubernetes container memory from Prometheus: cAdvisor's working set, and the
//! limit from kube-state-metrics (containers and native sidecars) or, without
//! kube-state-metrics, from cAdvisor.

use std::collections::HashMap;

use super::prometheus::{InstantSample, PrometheusClient, RangeSeries};
use super::{
    Batch, ContainerKey, LimitReading, LimitSource, RestartSeries, Source, SourceError, Window,
    WorkingSetSeries,
};
use crate::config::Queries;
use crate::model::Sample;

/// cAdvisor reports "no limit" as 0 or as the largest page-aligned i64.
const UNLIMITED_ABOVE_BYTES: f64 = (1u64 << 62) as f64;

/// A [`Source`] backed by a Prometheus-compatible API.
#[derive(Clone)]
pub struct PrometheusSource {
    client: PrometheusClient,
    queries: Queries,
    extra_labels: Vec<String>,
}

impl PrometheusSource {
    pub fn new(client: PrometheusClient, queries: Queries, extra_labels: Vec<String>) -> Self {
        PrometheusSource {
            client,
            queries,
            extra_labels,
        }
    }

    pub fn client(&self) -> &PrometheusClient {
        &self.client
    }

    async fn limits(&self, at: i64) -> Result<Vec<LimitReading>, SourceError> {
        let instant = |what: &'static str, query: Option<String>| {
            let client = self.client.clone();
            async move {
                match query {
                    None => Ok(Vec::new()),
                    Some(q) => client
                        .query(&q, at)
                        .await
                        .map_err(|source| SourceError { what, source }),
                }
            }
        };
        let (ksm, init, cadvisor) = tokio::try_join!(
            instant("limits", Some(self.queries.limits.clone())),
            instant(
                "init_container_limits",
                self.queries.init_container_limits.clone()
            ),
            instant("cadvisor_limits", self.queries.cadvisor_limits.clone()),
        )?;
        Ok(merge_limits(&self.extra_labels, &ksm, &init, &cadvisor))
    }
}

impl Source for PrometheusSource {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        let working_set = async {
            self.client
                .query_range(
                    &self.queries.working_set,
                    window.start,
                    window.end,
                    window.step,
                )
                .await
                .map_err(|source| SourceError {
                    what: "working_set",
                    source,
                })
        };
        let restarts = async {
            match &self.queries.restarts {
                None => Ok(Vec::new()),
                Some(q) => self
                    .client
                    .query_range(q, window.start, window.end, window.step)
                    .await
                    .map_err(|source| SourceError {
                        what: "restarts",
                        source,
                    }),
            }
        };
        let (working_set, restarts, limits) =
            tokio::try_join!(working_set, restarts, self.limits(window.end))?;

        let mut batch = Batch {
            limits,
            ..Batch::default()
        };
        batch.working_sets = group_working_sets(
            &self.extra_labels,
            working_set,
            &mut batch.series_without_identity,
        );
        batch.restarts = group_restarts(&self.extra_labels, restarts);
        Ok(batch)
    }
}

/// Turns raw series into one series per (container, incarnation). Series that differ
/// only in labels outside the identity and `id` (two scrape jobs of one kubelet, say)
/// are merged, first value per timestamp wins.
pub fn group_working_sets(
    extra_labels: &[String],
    series: Vec<RangeSeries>,
    without_identity: &mut usize,
) -> Vec<WorkingSetSeries> {
    let mut grouped: HashMap<(ContainerKey, Option<String>), Vec<Sample>> = HashMap::new();
    for s in series {
        let Some(key) = ContainerKey::from_labels(&s.labels, extra_labels) else {
            *without_identity += 1;
            continue;
        };
        let id = s.labels.get("id").filter(|v| !v.is_empty()).cloned();
        grouped.entry((key, id)).or_default().extend(
            s.samples
                .into_iter()
                .map(|(at, bytes)| Sample { at, bytes }),
        );
    }
    let mut out: Vec<WorkingSetSeries> = grouped
        .into_iter()
        .map(|((key, container_id), mut samples)| {
            samples.sort_by_key(|s| s.at);
            samples.dedup_by_key(|s| s.at);
            WorkingSetSeries {
                key,
                container_id,
                samples,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.key, a.samples.first().map(|s| s.at)).cmp(&(&b.key, b.samples.first().map(|s| s.at)))
    });
    out
}

fn group_restarts(extra_labels: &[String], series: Vec<RangeSeries>) -> Vec<RestartSeries> {
    let mut grouped: HashMap<ContainerKey, Vec<(i64, f64)>> = HashMap::new();
    for s in series {
        if let Some(key) = ContainerKey::from_labels(&s.labels, extra_labels) {
            grouped.entry(key).or_default().extend(s.samples);
        }
    }
    grouped
        .into_iter()
        .map(|(key, mut samples)| {
            samples.sort_by_key(|s| s.0);
            samples.dedup_by_key(|s| s.0);
            RestartSeries { key, samples }
        })
        .collect()
}

/// One limit per container: kube-state-metrics first, then its init-container (native
/// sidecar) series, then cAdvisor.
pub fn merge_limits(
    extra_labels: &[String],
    ksm: &[InstantSample],
    init: &[InstantSample],
    cadvisor: &[InstantSample],
) -> Vec<LimitReading> {
    let mut limits: HashMap<ContainerKey, LimitReading> = HashMap::new();
    let sources = [
        (LimitSource::KubeStateMetrics, ksm),
        (LimitSource::KubeStateMetricsInit, init),
        (LimitSource::Cadvisor, cadvisor),
    ];
    for (source, samples) in sources {
        for s in samples {
            let Some(key) = ContainerKey::from_labels(&s.labels, extra_labels) else {
                continue;
            };
            let bytes = (s.value > 0.0 && s.value < UNLIMITED_ABOVE_BYTES).then_some(s.value);
            limits
                .entry(key.clone())
                .or_insert(LimitReading { key, bytes, source });
        }
    }
    let mut out: Vec<LimitReading> = limits.into_values().collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Labels;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn instant(pairs: &[(&str, &str)], value: f64) -> InstantSample {
        InstantSample {
            labels: labels(pairs),
            at: 0,
            value,
        }
    }

    #[test]
    fn limits_prefer_kube_state_metrics_then_init_then_cadvisor() {
        let app = [("namespace", "prod"), ("pod", "p"), ("container", "app")];
        let sidecar = [("namespace", "prod"), ("pod", "p"), ("container", "native")];
        let bare = [("namespace", "prod"), ("pod", "q"), ("container", "app")];
        let unlimited = [("namespace", "prod"), ("pod", "q"), ("container", "free")];
        let merged = merge_limits(
            &[],
            &[instant(&app, 256.0 * 1048576.0)],
            &[instant(&sidecar, 128.0 * 1048576.0)],
            &[
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
        let mut skipped = 0;
        let grouped = group_working_sets(&[], series, &mut skipped);
        assert_eq!(skipped, 2);
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
        let grouped = group_working_sets(&[], series, &mut 0);
        assert_eq!(grouped.len(), 1);
        let ats: Vec<_> = grouped[0].samples.iter().map(|s| s.at).collect();
        assert_eq!(ats, vec![0, 30_000, 60_000]);
    }
}
