//! The long tier read back from a real Prometheus: three days of history backfilled
//! with promtool, headroom started at their end. Its first poll reads the fine tier
//! (the 6 h lookback) only; each later poll reads a day of hourly highest and mean
//! working set (`max_over_time`/`avg_over_time` at a 1 h step) into the long tier,
//! whose record then knows the daily batch the container came back from.

mod common;

use common::{openmetrics, pipeline_on, recent_minute, SeriesSpec, TestPrometheus, MI};
use headroom::pipeline::Pipeline;
use headroom::source::kubernetes::PrometheusSource;
use headroom::source::ContainerKey;

const STEP_S: i64 = 300;

fn cadvisor(pod: &str, container: &str) -> Vec<(&'static str, String)> {
    vec![
        ("namespace", "jobs".to_string()),
        ("pod", pod.to_string()),
        ("container", container.to_string()),
        ("id", format!("/kubepods/burstable/pod{pod}/{container}")),
        ("job", "kubelet".to_string()),
    ]
}

fn series(metric: &str, labels: Vec<(&'static str, String)>) -> SeriesSpec {
    let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    SeriesSpec::new(metric, &refs)
}

/// A worker at 1 GiB with a nightly batch: from 20:00 to 21:00 UTC it climbs to 3 GiB,
/// then falls back; a sidecar flat at 100 MiB. Both have a 8 GiB limit.
fn history(start: i64, end: i64) -> Vec<SeriesSpec> {
    const GI: f64 = 1024.0 * MI;
    let worker = |t: i64| {
        let hour = t.rem_euclid(86_400) / 3600;
        if hour == 20 {
            GI + 2.0 * GI * (t.rem_euclid(3600) as f64 / 3600.0)
        } else {
            GI
        }
    };
    let mut out = vec![
        series(
            "container_memory_working_set_bytes",
            cadvisor("nightly-0", "worker"),
        )
        .every(start, end, STEP_S, worker),
        series(
            "container_memory_working_set_bytes",
            cadvisor("nightly-0", "sidecar"),
        )
        .every(start, end, STEP_S, |_| 100.0 * MI),
    ];
    for container in ["worker", "sidecar"] {
        out.push(
            SeriesSpec::new(
                "kube_pod_container_resource_limits",
                &[
                    ("namespace", "jobs"),
                    ("pod", "nightly-0"),
                    ("container", container),
                    ("resource", "memory"),
                    ("unit", "byte"),
                ],
            )
            .every(start, end, STEP_S, |_| 8.0 * GI),
        );
    }
    out
}

fn key(container: &str) -> ContainerKey {
    ContainerKey {
        namespace: "jobs".into(),
        pod: "nightly-0".into(),
        container: container.into(),
        extra: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_long_tier_is_read_back_a_day_a_poll() {
    let end = recent_minute() - 120;
    let start = end - 3 * 86_400;
    let prometheus = TestPrometheus::start(&openmetrics(&history(start, end)));
    let (config, mut pipeline) = pipeline_on(&prometheus, "store:\n  long_backfill: 4d\n");
    let now = end * 1000;
    pipeline.poll(now).await.unwrap();
    let hours =
        |p: &Pipeline<PrometheusSource>, c: &str| p.store().get(&key(c)).unwrap().long.hours();
    // The first poll holds the lookback only (6 h, the last one still open).
    assert!(
        hours(&pipeline, "worker") <= 6,
        "{}",
        hours(&pipeline, "worker")
    );
    assert!(!pipeline.long_history_read());
    // What `/readyz` says: none of the 4 days before the first poll's pieces.
    assert_eq!(pipeline.long_history_days(), (0.0, 4.0));
    for i in 1..=4 {
        pipeline.poll(now + i * 30_000).await.unwrap();
        // A day a poll, as the log says it too.
        assert_eq!(pipeline.long_history_days(), (i as f64, 4.0), "poll {i}");
    }
    assert!(pipeline.long_history_read());
    let worker = pipeline.store().get(&key("worker")).unwrap();
    assert!(
        worker.long.hours() >= 70,
        "three days of hours: {}",
        worker.long.hours()
    );
    let record = *worker.long.record();
    let gi = 1024.0 * MI;
    // The batch's highest 5-minute sample: 2.83-3 GiB, as the hours fall on them.
    assert!(
        (2.8 * gi..=3.0 * gi).contains(&record.recovered_peak_bytes),
        "the nightly batch's peak, came back from: {record:?}"
    );
    let sidecar = pipeline.store().get(&key("sidecar")).unwrap();
    assert_eq!(
        sidecar.long.record().recovered_peak_bytes,
        0.0,
        "flat: nothing came back"
    );
    // Reports say how much long history each container has.
    let reports = pipeline.evaluate(now + 4 * 30_000);
    let w = reports.iter().find(|r| r.container == "worker").unwrap();
    assert!(w.long_history_hours >= 70, "{}", w.long_history_hours);

    // `check` reads it all at once after its one poll, and holds the same.
    let source = headroom::app::prometheus_source(&config).unwrap();
    let mut once = Pipeline::new(source, &config);
    once.poll(now).await.unwrap();
    once.read_all_long_history().await.unwrap();
    assert!(once.long_history_read());
    assert_eq!(
        once.store().get(&key("worker")).unwrap().long.record(),
        &record,
        "the same record as the daemon's, read a day a poll"
    );
}
