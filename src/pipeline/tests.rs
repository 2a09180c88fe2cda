use std::sync::Mutex;

use super::*;
use crate::model::Sample;
use crate::source::metadata::PodContext;
use crate::source::{PodRef, WorkingSetSeries};

/// Records the windows asked for; serves one container, two from `grow_at`; the
/// first restarts with a new container id at `restart_at`.
struct Recording {
    asked: Mutex<Vec<Window>>,
    grow_at: TimestampMs,
    restart_at: TimestampMs,
}

impl Recording {
    fn new(grow_at: TimestampMs, restart_at: TimestampMs) -> Self {
        Recording {
            asked: Mutex::new(vec![]),
            grow_at,
            restart_at,
        }
    }

    /// The last window of each poll (a backfill is fetched in pieces).
    fn polls(&self, minutes: i64) -> Vec<Window> {
        let asked = self.asked.lock().unwrap();
        (0..=minutes)
            .map(|m| {
                *asked
                    .iter()
                    .rfind(|w| w.end == m * 60_000)
                    .expect("every poll fetched")
            })
            .collect()
    }
}

impl Source for Recording {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        self.asked.lock().unwrap().push(window);
        let containers = if window.end >= self.grow_at { 2 } else { 1 };
        Ok(Batch {
            working_sets: (0..containers)
                .map(|i| WorkingSetSeries {
                    key: ContainerKey {
                        namespace: "n".into(),
                        pod: format!("p{i}"),
                        container: "c".into(),
                        extra: vec![],
                    },
                    container_id: Some(
                        if i == 0 && window.end >= self.restart_at {
                            "b"
                        } else {
                            "a"
                        }
                        .into(),
                    ),
                    samples: vec![Sample {
                        at: window.end,
                        bytes: 1.0,
                    }],
                })
                .collect(),
            ..Batch::default()
        })
    }
}

#[tokio::test]
async fn limits_are_read_every_limits_interval_and_for_new_containers() {
    let config = Config::default();
    let minute = 60_000;
    let source = Recording::new(7 * minute, i64::MAX);
    let mut p = Pipeline::new(source, &config);
    for m in 0..=8 {
        p.poll(m * minute).await.unwrap();
    }
    let asked: Vec<bool> = p.source().polls(8).iter().map(|w| w.limits).collect();
    // 0: backfill; 5: five minutes later; 7: a new container appeared (no limits
    // read), so 8 reads them.
    assert_eq!(
        asked,
        vec![true, false, false, false, false, true, false, false, true]
    );
}

#[tokio::test]
async fn restarts_are_read_every_restarts_interval_and_after_a_new_incarnation() {
    let config = Config::default();
    let minute = 60_000;
    let source = Recording::new(i64::MAX, 7 * minute);
    let mut p = Pipeline::new(source, &config);
    for m in 0..=12 {
        p.poll(m * minute).await.unwrap();
    }
    let from: Vec<Option<i64>> = p
        .source()
        .polls(12)
        .iter()
        .map(|w| w.restarts_from)
        .collect();
    // 0: backfill; 5: five minutes on, covering all since 0; 7: a new container
    // id, so 8 reads all since 5; then 13 would be next.
    let mut expected = vec![None; 13];
    expected[5] = Some(30_000);
    expected[8] = Some(5 * minute + 30_000);
    assert_eq!(from[1..], expected[1..]);
    assert!(from[0].is_some());
}

/// One container without container ids, its restart counter going 0 -> 1 at
/// `restart_at` with an OOMKilled reason; the fetch of any window starting after
/// `fail_after` fails once.
struct FailsOnce {
    restart_at: TimestampMs,
    fail_after: TimestampMs,
    failed: Mutex<bool>,
}

impl Source for FailsOnce {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        if window.start > self.fail_after
            && !std::mem::replace(&mut *self.failed.lock().unwrap(), true)
        {
            return Err(SourceError {
                what: "working set",
                source: crate::source::prometheus::QueryError::Timeout {
                    url: "http://127.0.0.1:9/".into(),
                    timeout: Duration::from_secs(1),
                },
            });
        }
        let key = ContainerKey {
            namespace: "n".into(),
            pod: "p".into(),
            container: "c".into(),
            extra: vec![],
        };
        let steps = (window.start / 30_000)..=(window.end / 30_000);
        let at = |i: i64| i * 30_000;
        let mut batch = Batch::default();
        batch.working_sets.push(WorkingSetSeries {
            key: key.clone(),
            container_id: None,
            samples: steps
                .clone()
                .map(|i| Sample {
                    at: at(i),
                    bytes: if at(i) < self.restart_at { 100.0 } else { 10.0 },
                })
                .collect(),
        });
        if let Some(from) = window.restarts_from {
            let read = (from / 30_000)..=(window.end / 30_000);
            batch.restarts.push(crate::source::RestartSeries {
                key: key.clone(),
                samples: read
                    .clone()
                    .map(|i| (at(i), if at(i) < self.restart_at { 0.0 } else { 1.0 }))
                    .collect(),
            });
            batch.oom_terminations.push(crate::source::RestartSeries {
                key,
                samples: read
                    .filter(|&i| at(i) >= self.restart_at)
                    .map(|i| (at(i), 1.0))
                    .collect(),
            });
        }
        Ok(batch)
    }
}

/// A catch-up fetched in pieces whose second piece fails: the restart and OOM
/// reason the first piece stored are carried into the next poll, which reports
/// the kill. Before, the store had taken the restart in and nothing saw it again.
#[tokio::test]
async fn an_oom_kill_survives_a_piece_that_fails() {
    let config = Config::default();
    let step = 30_000;
    let t0 = 100_000 * step;
    let source = FailsOnce {
        restart_at: t0 + 10 * step,
        fail_after: t0 + 15 * step,
        failed: Mutex::new(false),
    };
    let mut p = Pipeline::new(source, &config);
    p.poll(t0).await.unwrap();
    // One container: pieces of 20 steps.
    p.samples_per_fetch = 20;
    let outage_over = t0 + 60 * step;
    assert!(p.poll(outage_over).await.is_err(), "the second piece fails");
    assert!(p.carried.is_some());
    let summary = p.poll(outage_over + step).await.unwrap();
    assert_eq!(summary.oom_restarts.len(), 1, "{summary:?}");
    assert!(!summary.backfill);
    assert!(p.carried.is_none(), "carried once");
    // 20 samples stored before the failure, 41 after: each counted once.
    assert_eq!(summary.ingest.samples_added, 61, "{summary:?}");
    assert_eq!(summary.ingest.new_containers, 0);
    let summary = p.poll(outage_over + 2 * step).await.unwrap();
    assert!(
        summary.oom_restarts.is_empty(),
        "reported once: {summary:?}"
    );
}

/// One container of this shard, in answers that carry four shards' worth of series
/// (pod-mode sharding filters after the query); records the windows asked.
struct OneOfFourShards {
    asked: Mutex<Vec<Window>>,
}

impl Source for OneOfFourShards {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        self.asked.lock().unwrap().push(window);
        Ok(Batch {
            working_sets: vec![WorkingSetSeries {
                key: ContainerKey {
                    namespace: "n".into(),
                    pod: "p".into(),
                    container: "c".into(),
                    extra: vec![],
                },
                container_id: Some("a".into()),
                samples: (window.start / 30_000..=window.end / 30_000)
                    .map(|i| Sample {
                        at: i * 30_000,
                        bytes: 1.0,
                    })
                    .collect(),
            }],
            series_fetched: 4,
            ..Batch::default()
        })
    }
}

/// Pieces are sized by the series an answer carries, not by this shard's
/// containers: four shards' worth in each answer, a quarter of the steps.
#[tokio::test]
async fn pieces_are_sized_by_what_answers_carry_not_by_the_shard() {
    let config = Config::default();
    let step = 30_000;
    let t0 = 100_000 * step;
    let mut p = Pipeline::new(
        OneOfFourShards {
            asked: Mutex::new(vec![]),
        },
        &config,
    );
    p.poll(t0).await.unwrap();
    p.samples_per_fetch = 40;
    let asked_before = p.source().asked.lock().unwrap().len();
    p.poll(t0 + 60 * step).await.unwrap();
    let asked = p.source().asked.lock().unwrap()[asked_before..].to_vec();
    assert_eq!(asked.len(), 6, "60 steps in pieces of 10: {asked:?}");
    assert!(
        asked.iter().all(|w| (w.end - w.start) / step == 9),
        "{asked:?}"
    );
}

/// A backfill in pieces logs how far it has come (here at every piece but the
/// last); a poll after it does not.
#[tokio::test]
async fn a_backfill_in_pieces_logs_its_progress() {
    #[derive(Clone, Default)]
    struct Log(std::sync::Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = Config::default();
    let mut p = Pipeline::new(
        OneOfFourShards {
            asked: Mutex::new(vec![]),
        },
        &config,
    );
    p.samples_per_fetch = 400;
    p.progress_every = Duration::ZERO;
    let now = 100_000 * 30_000;
    p.poll(now).await.unwrap();
    let pieces = p.source().asked.lock().unwrap().len();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("% done")).collect();
    assert_eq!(lines.len(), pieces - 1, "{text}");
    assert!(
        lines[0].contains("backfill 2% done: 10m of 6h") && lines[0].contains("containers=1"),
        "{}",
        lines[0]
    );
    p.poll(now + 30_000).await.unwrap();
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("% done")).count(),
        pieces - 1
    );
}

/// Two clusters, each with a `redis-0` pod of two containers; cluster a's redis
/// leaks toward its limit.
struct TwoClusters;

impl Source for TwoClusters {
    async fn fetch(&self, window: Window) -> Result<Batch, SourceError> {
        let key = |cluster: &str, container: &str| ContainerKey {
            namespace: "db".into(),
            pod: "redis-0".into(),
            container: container.into(),
            extra: vec![("cluster".into(), cluster.into())],
        };
        let mut batch = Batch::default();
        for (cluster, limit) in [("a", 256.0), ("b", 1024.0)] {
            for container in ["redis", "exporter"] {
                let leaking = cluster == "a" && container == "redis";
                let samples = (window.start / 30_000..=window.end / 30_000)
                    .map(|i| Sample {
                        at: i * 30_000,
                        bytes: 4096.0
                            * if leaking {
                                (10_000 + (i - 99_000) * 40) as f64
                            } else {
                                10_000.0
                            },
                    })
                    .collect();
                batch.working_sets.push(WorkingSetSeries {
                    key: key(cluster, container),
                    container_id: None,
                    samples,
                });
                batch.limits.push(crate::source::LimitReading {
                    key: key(cluster, container),
                    bytes: Some(limit * 1024.0 * 1024.0),
                    source: crate::source::LimitSource::KubeStateMetrics,
                });
            }
        }
        Ok(batch)
    }

    async fn context(
        &self,
        pods: &[PodRef],
        _at: TimestampMs,
    ) -> Result<Vec<PodContext>, SourceError> {
        // Each cluster's redis-0 belongs to a StatefulSet named after it.
        Ok(pods
            .iter()
            .map(|p| PodContext {
                namespace: p.namespace.clone(),
                pod: p.pod.clone(),
                extra: p.extra.clone(),
                workload: Some(("StatefulSet".into(), format!("redis-{}", p.extra[0].1))),
                native_sidecars: vec!["exporter".into()],
                ..PodContext::default()
            })
            .collect())
    }

    async fn owners(
        &self,
        namespace: &str,
        extra: &[(String, String)],
        _at: TimestampMs,
    ) -> Result<Vec<(String, String)>, SourceError> {
        assert_eq!(namespace, "db");
        Ok(vec![(
            "redis-0".into(),
            format!("StatefulSet/redis-{}", extra[0].1),
        )])
    }
}

#[tokio::test]
async fn pod_pressure_keeps_same_named_pods_of_two_clusters_apart() {
    let config = Config::parse_str(
        "identity:\n  extra_labels: [cluster]\n",
        "test",
        &Default::default(),
    )
    .unwrap();
    let mut p = Pipeline::new(TwoClusters, &config);
    let now = 100_000 * 30_000;
    p.poll(now).await.unwrap();
    let mut reports = p.evaluate(now);
    let mut explainer = config.explainer();
    explainer
        .explain(p.source(), p.store(), &mut reports, now)
        .await;
    let redis_a = reports
        .iter()
        .find(|r| {
            r.container == "redis" && r.labels.get("cluster").map(String::as_str) == Some("a")
        })
        .unwrap();
    assert!(redis_a.severity != model::Severity::None, "{redis_a:?}");
    let pressure = redis_a
        .pod_pressure
        .as_deref()
        .expect("cluster a's pod is worth explaining");
    assert_eq!(
        pressure.limit_bytes,
        Some(2.0 * 256.0 * 1024.0 * 1024.0),
        "only cluster a's two containers"
    );
    // Pod metadata and workloads are asked and kept per cluster too.
    assert_eq!(redis_a.workload.as_deref(), Some("StatefulSet/redis-a"));
    assert!(explainer
        .contexts()
        .all(|k| k.extra == vec![("cluster".to_string(), "a".to_string())]));
}

#[tokio::test]
async fn a_backfill_is_fetched_in_pieces_that_cover_the_lookback_once() {
    let config = Config::default();
    let source = Recording::new(i64::MAX, i64::MAX);
    let mut p = Pipeline::new(source, &config);
    let now = 1_000 * 3_600_000;
    p.poll(now).await.unwrap();
    let asked = p.source().asked.lock().unwrap().clone();
    assert!(asked.len() >= 2, "{asked:?}");
    assert_eq!(asked[0].start, now - 6 * 3_600_000);
    assert_eq!(
        asked[0].end - asked[0].start,
        (FIRST_BACKFILL_STEPS - 1) * 30_000
    );
    for pair in asked.windows(2) {
        assert_eq!(pair[1].start, pair[0].end + 30_000, "{asked:?}");
    }
    assert_eq!(asked.last().unwrap().end, now);
    assert!(asked.iter().all(|w| w.restarts_from == Some(w.start)));
    assert_eq!(asked.iter().filter(|w| w.limits).count(), 1);
    assert!(asked.last().unwrap().limits);
}

/// A poll that reports only the containers worth it says of them what a poll that
/// reports every container says, and the others are made on request as that poll
/// made them: over the demo's simulated cluster, from before the sidecar alerts to
/// after its kill, with room for three among the most urgent: the most urgent of
/// those not worth a report fills what the worth ones leave. The alerting sidecar's
/// pod is reported whole (its app container beside it).
#[tokio::test]
async fn reports_worth_it_and_on_request_match_reporting_every_container() {
    use crate::sim::cluster::SimulatedCluster;
    let config = Config::default();
    let minute = 60_000;
    let rollout = 1_773_878_400_000;
    let mut every = Pipeline::new(SimulatedCluster::new(rollout), &config);
    let mut worth = Pipeline::new(SimulatedCluster::new(rollout), &config);
    let reported = Reported::Worth {
        min_use: 0.8,
        most_urgent: 3,
    };
    let oom = SimulatedCluster::sidecar_oom_at(rollout);
    let mut alerted = false;
    let mut t = rollout + 5 * minute;
    while t <= oom + 10 * minute {
        every.poll(t).await.unwrap();
        worth.poll(t).await.unwrap();
        let all = every.evaluate(t);
        let some = worth.evaluate_reporting(t, reported);
        assert_eq!(some.containers, all.len(), "at {t}");
        for r in &some.reports {
            let twin = all.iter().find(|a| a.key() == r.key()).expect("reported");
            assert_eq!(r, twin, "at {t}");
        }
        let worth_it = |r: &ContainerReport| {
            r.alert.is_some()
                || r.severity != model::Severity::None
                || r.use_ratio.is_some_and(|u| u >= 0.8)
        };
        for a in all.iter().filter(|a| worth_it(a)) {
            assert!(
                some.reports.iter().any(|r| r.key() == a.key()),
                "{} at {t}",
                a.container
            );
        }
        let worth_count = all.iter().filter(|a| worth_it(a)).count();
        if worth_count < 3 {
            let first_quiet = all.iter().find(|a| !worth_it(a)).expect("quiet ones");
            assert!(
                some.reports.iter().any(|r| r.key() == first_quiet.key()),
                "{} fills a place at {t}",
                first_quiet.container
            );
        }
        if let Some(sidecar) = some.reports.iter().find(|r| r.alert.is_some()) {
            alerted = true;
            assert!(
                some.reports
                    .iter()
                    .any(|r| r.pod == sidecar.pod && r.container != sidecar.container),
                "its pod reported whole at {t}"
            );
        }
        assert!(some.reports.len() < all.len(), "not every one at {t}");
        let asked = worth.reports_of(t, |_| true);
        assert_eq!(asked, all, "made on request at {t}");
        t += 5 * minute;
    }
    assert!(alerted, "the sidecar alerted");
}
