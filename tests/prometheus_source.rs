//! headroom against a real Prometheus serving backfilled history: every container's
//! series, limit and segments read exactly through the HTTP API, and `headroom check`
//! run as a process.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use common::{openmetrics, recent_minute, SeriesSpec, TestPrometheus, MI};
use headroom::config::{Config, Overrides};
use headroom::pipeline::Pipeline;
use headroom::source::kubernetes::PrometheusSource;
use headroom::source::prometheus::PrometheusClient;
use headroom::source::{LimitSource, Source, Window};

const PAY_POD: &str = "payment-service-7f8b9c6d4-xk2nm";
const STEP_S: i64 = 30;

/// The backfilled cluster: one shared Prometheus for every test in this file.
struct Fixture {
    prometheus: TestPrometheus,
    /// Unix seconds of the first and last samples.
    start: i64,
    end: i64,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let end = recent_minute() - 600;
        let start = end - 3 * 3600;
        let history = openmetrics(&cluster(start, end));
        Fixture {
            prometheus: TestPrometheus::start(&history),
            start,
            end,
        }
    })
}

fn cadvisor(ns: &str, pod: &str, container: &str, id: &str) -> Vec<(String, String)> {
    [
        ("namespace", ns),
        ("pod", pod),
        ("container", container),
        ("id", id),
        ("image", "registry.example/img:1"),
        ("name", id.rsplit('/').next().unwrap_or("")),
        ("job", "kubelet"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn series(metric: &str, labels: Vec<(String, String)>) -> SeriesSpec {
    SeriesSpec {
        metric: metric.into(),
        labels,
        samples: vec![],
    }
}

fn ksm(ns: &str, pod: &str, container: &str, resource: &str) -> Vec<(String, String)> {
    [
        ("namespace", ns),
        ("pod", pod),
        ("container", container),
        ("resource", resource),
        ("unit", if resource == "memory" { "byte" } else { "core" }),
        ("job", "kube-state-metrics"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn restart_labels(ns: &str, pod: &str, container: &str) -> Vec<(String, String)> {
    [("namespace", ns), ("pod", pod), ("container", container)]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The synthetic cluster:
/// - prod/payment-service…: the app (flat 118Mi of 256Mi), its istio-proxy sidecar
///   (64Mi, then +25Mi/h from an hour in, limit 128Mi), a native sidecar vault-agent
///   whose limit only kube_pod_init_container_resource_limits has, the pause container
///   and the pod-level aggregate (both to be excluded);
/// - batch/report…/worker: no limit anywhere;
/// - prod/cache-0/redis: grows, restarts (new container id, counter 0 -> 1) two hours in;
/// - legacy/old-app…/app: no kube-state-metrics, so the limit comes from cAdvisor;
/// - prod/flaky-0/app: every tenth sample is NaN.
fn cluster(start: i64, end: i64) -> Vec<SeriesSpec> {
    let ws = "container_memory_working_set_bytes";
    let spec_limit = "container_spec_memory_limit_bytes";
    let ksm_limit = "kube_pod_container_resource_limits";
    let ksm_init_limit = "kube_pod_init_container_resource_limits";
    let restarts = "kube_pod_container_status_restarts_total";
    let onset = start + 3600;
    let restart_at = start + 2 * 3600;
    let pay = |c: &str, id: &str| {
        cadvisor(
            "prod",
            PAY_POD,
            c,
            &format!("/kubepods/burstable/podpay/{id}"),
        )
    };
    let mut out = vec![
        series(ws, pay("payment-service", "aaa111")).every(start, end, STEP_S, |t| {
            118.0 * MI + ((t / STEP_S) % 5) as f64 * 100_000.0
        }),
        series(ws, pay("istio-proxy", "bbb222")).every(start, end, STEP_S, |t| {
            64.0 * MI + (t - onset).max(0) as f64 * 25.0 * MI / 3600.0
        }),
        series(ws, pay("vault-agent", "ccc333")).every(start, end, STEP_S, |_| 30.0 * MI),
        series(ws, pay("POD", "pause")).every(start, end, STEP_S, |_| 1.0 * MI),
        series(
            ws,
            cadvisor("prod", PAY_POD, "", "/kubepods/burstable/podpay"),
        )
        .every(start, end, STEP_S, |_| 250.0 * MI),
        series(
            ws,
            cadvisor(
                "batch",
                "report-28d9f-x2j4k",
                "worker",
                "/kubepods/besteffort/podrep/ddd444",
            ),
        )
        .every(start, end, STEP_S, |t| {
            100.0 * MI + (t - start) as f64 * 10.0 * MI / 3600.0
        }),
        series(
            ws,
            cadvisor(
                "prod",
                "cache-0",
                "redis",
                "/kubepods/burstable/podcache/eee555",
            ),
        )
        .every(start, restart_at, STEP_S, |t| {
            50.0 * MI + (t - start) as f64 * 75.0 * MI / 3600.0
        }),
        series(
            ws,
            cadvisor(
                "prod",
                "cache-0",
                "redis",
                "/kubepods/burstable/podcache/fff666",
            ),
        )
        .every(restart_at + STEP_S, end, STEP_S, |t| {
            50.0 * MI + (t - restart_at) as f64 * 20.0 * MI / 3600.0
        }),
        series(
            ws,
            cadvisor(
                "legacy",
                "old-app-6f7d",
                "app",
                "/kubepods/burstable/podold/ggg777",
            ),
        )
        .every(start, end, STEP_S, |_| 200.0 * MI),
        series(
            ws,
            cadvisor(
                "prod",
                "flaky-0",
                "app",
                "/kubepods/burstable/podflaky/hhh888",
            ),
        )
        .every(start, end, STEP_S, |t| {
            if (t / STEP_S) % 10 == 0 {
                f64::NAN
            } else {
                80.0 * MI
            }
        }),
    ];
    let limits: &[(&str, &str, &str, f64)] = &[
        ("prod", PAY_POD, "payment-service", 256.0 * MI),
        ("prod", PAY_POD, "istio-proxy", 128.0 * MI),
        ("prod", "cache-0", "redis", 256.0 * MI),
        ("prod", "flaky-0", "app", 256.0 * MI),
    ];
    for &(ns, pod, c, bytes) in limits {
        out.push(series(ksm_limit, ksm(ns, pod, c, "memory")).every(
            start,
            end,
            STEP_S,
            move |_| bytes,
        ));
        out.push(series(ksm_limit, ksm(ns, pod, c, "cpu")).every(start, end, STEP_S, |_| 0.5));
        out.push(series(restarts, restart_labels(ns, pod, c)).every(
            start,
            end,
            STEP_S,
            move |t| {
                if c == "redis" && t >= restart_at + 2 * STEP_S {
                    1.0
                } else {
                    0.0
                }
            },
        ));
    }
    out.push(
        series(
            ksm_init_limit,
            ksm("prod", PAY_POD, "vault-agent", "memory"),
        )
        .every(start, end, STEP_S, |_| 64.0 * MI),
    );
    // cAdvisor's view of the limits: 0 means none. The vault-agent and legacy values
    // differ from kube-state-metrics' so the test sees which source won.
    let spec: &[(&str, &str, &str, &str, f64)] = &[
        (
            "prod",
            PAY_POD,
            "payment-service",
            "/kubepods/burstable/podpay/aaa111",
            256.0 * MI,
        ),
        (
            "prod",
            PAY_POD,
            "istio-proxy",
            "/kubepods/burstable/podpay/bbb222",
            128.0 * MI,
        ),
        (
            "prod",
            PAY_POD,
            "vault-agent",
            "/kubepods/burstable/podpay/ccc333",
            99.0 * MI,
        ),
        (
            "batch",
            "report-28d9f-x2j4k",
            "worker",
            "/kubepods/besteffort/podrep/ddd444",
            0.0,
        ),
        (
            "prod",
            "cache-0",
            "redis",
            "/kubepods/burstable/podcache/fff666",
            256.0 * MI,
        ),
        (
            "legacy",
            "old-app-6f7d",
            "app",
            "/kubepods/burstable/podold/ggg777",
            512.0 * MI,
        ),
    ];
    for &(ns, pod, c, id, bytes) in spec {
        out.push(series(spec_limit, cadvisor(ns, pod, c, id)).every(
            start,
            end,
            STEP_S,
            move |_| bytes,
        ));
    }
    out
}

fn test_config(url: &str, extra_yaml: &str) -> Config {
    let text = format!("prometheus:\n  url: {url}\n{extra_yaml}");
    Config::parse_str(&text, "test", &Overrides::default()).expect("test config is valid")
}

fn source(config: &Config) -> PrometheusSource {
    headroom::app::prometheus_source(config).unwrap()
}

fn name(key: &headroom::source::ContainerKey) -> String {
    format!("{}/{}/{}", key.namespace, key.pod, key.container)
}

/// A pod-mode shard keeps its own containers but says how many series the answer
/// carried: its pieces are sized by that (see `Pipeline::next_piece`).
#[tokio::test]
async fn a_pod_mode_shard_counts_the_series_it_dropped() {
    let f = fixture();
    let config = test_config(&f.prometheus.url(), "");
    let window = Window {
        start: f.end * 1000 - 600_000,
        end: f.end * 1000,
        step: Duration::from_secs(STEP_S as u64),
        limits: false,
        restarts_from: None,
    };
    let whole = source(&config).fetch(window).await.unwrap();
    assert_eq!(whole.series_fetched, whole.working_sets.len());
    let mut kept = 0;
    for index in 0..2 {
        let shard = headroom::source::config::Shard {
            index,
            count: 2,
            mode: headroom::source::config::ShardMode::Pod,
        };
        let batch = source(&config)
            .with_shard(Some(shard))
            .fetch(window)
            .await
            .unwrap();
        assert_eq!(
            batch.series_fetched,
            whole.working_sets.len(),
            "shard {index}"
        );
        kept += batch.working_sets.len();
    }
    assert_eq!(kept, whole.working_sets.len(), "each series in one shard");
}

#[tokio::test]
async fn fetch_reads_every_container_and_its_limit() {
    let f = fixture();
    let config = test_config(&f.prometheus.url(), "");
    let source = source(&config);
    let batch = source
        .fetch(Window {
            start: f.start * 1000,
            end: f.end * 1000,
            step: Duration::from_secs(STEP_S as u64),
            limits: true,
            restarts_from: Some(f.start * 1000),
        })
        .await
        .expect("fetch from the test Prometheus");

    let mut series: Vec<(String, Option<String>, usize)> = batch
        .working_sets
        .iter()
        .map(|s| (name(&s.key), s.container_id.clone(), s.samples.len()))
        .collect();
    series.sort();
    let full = (3 * 3600 / STEP_S + 1) as usize;
    let nans = (f.start..=f.end)
        .step_by(STEP_S as usize)
        .filter(|t| (t / STEP_S) % 10 == 0)
        .count();
    let id = |s: &str| Some(s.to_string());
    assert_eq!(
        series,
        vec![
            (
                "batch/report-28d9f-x2j4k/worker".into(),
                id("/kubepods/besteffort/podrep/ddd444"),
                full
            ),
            (
                "legacy/old-app-6f7d/app".into(),
                id("/kubepods/burstable/podold/ggg777"),
                full
            ),
            (
                "prod/cache-0/redis".into(),
                id("/kubepods/burstable/podcache/eee555"),
                241
            ),
            (
                "prod/cache-0/redis".into(),
                id("/kubepods/burstable/podcache/fff666"),
                full - 241
            ),
            (
                "prod/flaky-0/app".into(),
                id("/kubepods/burstable/podflaky/hhh888"),
                full - nans
            ),
            (
                format!("prod/{PAY_POD}/istio-proxy"),
                id("/kubepods/burstable/podpay/bbb222"),
                full
            ),
            (
                format!("prod/{PAY_POD}/payment-service"),
                id("/kubepods/burstable/podpay/aaa111"),
                full
            ),
            (
                format!("prod/{PAY_POD}/vault-agent"),
                id("/kubepods/burstable/podpay/ccc333"),
                full
            ),
        ],
        "plain selectors are read raw: the old redis incarnation ends with its last scrape, \
         without the 5-minute lookback tail a range query would repeat"
    );
    assert_eq!(
        batch.series_without_identity, 0,
        "the default query leaves out the pause container and the pod aggregate"
    );
    assert_eq!(
        source.client().stats().snapshot().non_finite_samples,
        nans as u64,
        "NaN samples are parsed, counted and dropped"
    );

    let limits: BTreeMap<String, (Option<f64>, LimitSource)> = batch
        .limits
        .iter()
        .map(|l| (name(&l.key), (l.bytes, l.source)))
        .collect();
    let expected: BTreeMap<String, (Option<f64>, LimitSource)> = [
        (
            "batch/report-28d9f-x2j4k/worker".to_string(),
            (None, LimitSource::Cadvisor),
        ),
        (
            "legacy/old-app-6f7d/app".into(),
            (Some(512.0 * MI), LimitSource::Cadvisor),
        ),
        (
            "prod/cache-0/redis".into(),
            (Some(256.0 * MI), LimitSource::KubeStateMetrics),
        ),
        (
            "prod/flaky-0/app".into(),
            (Some(256.0 * MI), LimitSource::KubeStateMetrics),
        ),
        (
            format!("prod/{PAY_POD}/istio-proxy"),
            (Some(128.0 * MI), LimitSource::KubeStateMetrics),
        ),
        (
            format!("prod/{PAY_POD}/payment-service"),
            (Some(256.0 * MI), LimitSource::KubeStateMetrics),
        ),
        (
            format!("prod/{PAY_POD}/vault-agent"),
            (Some(64.0 * MI), LimitSource::KubeStateMetricsInit),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(limits, expected);
}

#[tokio::test]
async fn pause_and_aggregate_are_excluded_even_by_a_bare_query() {
    let f = fixture();
    let config = test_config(
        &f.prometheus.url(),
        "queries:\n  working_set: container_memory_working_set_bytes\n",
    );
    let batch = source(&config)
        .fetch(Window {
            start: f.end * 1000 - 600_000,
            end: f.end * 1000,
            step: Duration::from_secs(30),
            limits: true,
            restarts_from: Some(f.end * 1000 - 600_000),
        })
        .await
        .unwrap();
    assert_eq!(
        batch.series_without_identity, 2,
        "pause container and pod aggregate"
    );
    assert!(batch
        .working_sets
        .iter()
        .all(|s| s.key.container != "POD" && !s.key.container.is_empty()));
    assert_eq!(
        batch.working_sets.len(),
        7,
        "seven live containers in the last 10 minutes"
    );
}

/// Plain selectors are read raw (instant queries of `selector[range]`); any other
/// expression goes through a range query wrapped in `max by`. On the same live
/// containers both give the same samples.
#[tokio::test]
async fn an_expression_is_read_by_range_query_and_agrees_with_the_raw_read() {
    let f = fixture();
    let window = Window {
        start: f.end * 1000 - 600_000,
        end: f.end * 1000,
        step: Duration::from_secs(30),
        limits: false,
        restarts_from: None,
    };
    let raw = source(&test_config(&f.prometheus.url(), ""))
        .fetch(window)
        .await
        .unwrap();
    let expression = test_config(
        &f.prometheus.url(),
        "queries:\n  working_set: 'container_memory_working_set_bytes{container!=\"\",container!=\"POD\"} * 1'\n",
    );
    let evaluated = source(&expression).fetch(window).await.unwrap();
    // Raw reads also look a little behind the window, for late samples.
    let sorted = |mut series: Vec<headroom::source::WorkingSetSeries>| {
        series.sort_by(|a, b| (&a.key, &a.container_id).cmp(&(&b.key, &b.container_id)));
        for s in &mut series {
            s.samples.retain(|x| x.at >= window.start);
        }
        series
    };
    assert_eq!(raw.working_sets.len(), 7);
    assert_eq!(sorted(raw.working_sets), sorted(evaluated.working_sets));
}

#[tokio::test]
async fn restart_starts_a_new_segment_and_no_fit_spans_it() {
    let f = fixture();
    let config = test_config(&f.prometheus.url(), "store:\n  lookback: 3h\n");
    let mut pipeline = Pipeline::new(source(&config), &config);
    pipeline.poll(f.end * 1000).await.unwrap();
    let redis = pipeline
        .store()
        .iter()
        .find(|(k, _)| k.container == "redis")
        .map(|(_, t)| t.clone())
        .unwrap();
    let bounds: Vec<_> = redis
        .segments
        .iter()
        .map(|s| {
            (
                s.container_id.clone().unwrap(),
                s.start().unwrap() / 1000,
                s.end().unwrap() / 1000,
            )
        })
        .collect();
    let restart_at = f.start + 2 * 3600;
    assert_eq!(
        bounds,
        vec![
            (
                "/kubepods/burstable/podcache/eee555".into(),
                f.start,
                restart_at
            ),
            (
                "/kubepods/burstable/podcache/fff666".into(),
                restart_at + STEP_S,
                f.end
            ),
        ]
    );
    // The forecast uses only the current segment: its growth is the new 20Mi/h.
    let reports = pipeline.evaluate(f.end * 1000);
    let report = reports.iter().find(|r| r.container == "redis").unwrap();
    let per_hour = report.growth_bytes_per_second.unwrap() * 3600.0 / MI;
    assert!((per_hour - 20.0).abs() < 0.5, "growth {per_hour}Mi/h");
}

#[tokio::test]
async fn polls_after_backfill_fetch_only_what_is_new() {
    let f = fixture();
    let config = test_config(&f.prometheus.url(), "");
    let mut incremental = Pipeline::new(source(&config), &config);
    let first = incremental.poll((f.end - 1800) * 1000).await.unwrap();
    let after_backfill = incremental.source().client().stats().snapshot();
    let second = incremental.poll(f.end * 1000).await.unwrap();
    let poll_cost = incremental.source().client().stats().snapshot() - after_backfill;

    let first_window = first.window.unwrap();
    let second_window = second.window.unwrap();
    assert_eq!(second_window.start, first_window.end + STEP_S * 1000);
    assert_eq!(second_window.end, f.end * 1000);
    // The backfill saw 2.5h of the history, the poll 30 minutes of it.
    assert!(
        poll_cost.samples * 4 < after_backfill.samples,
        "a 30-minute poll ({} samples) should fetch about a fifth of the backfill ({} samples)",
        poll_cost.samples,
        after_backfill.samples
    );

    // The result equals one backfill straight to the end.
    let mut oneshot = Pipeline::new(source(&config), &config);
    oneshot.poll(f.end * 1000).await.unwrap();
    let mut a: Vec<_> = incremental.evaluate(f.end * 1000);
    let mut b: Vec<_> = oneshot.evaluate(f.end * 1000);
    a.sort_by(|x, y| (&x.pod, &x.container).cmp(&(&y.pod, &y.container)));
    b.sort_by(|x, y| (&x.pod, &x.container).cmp(&(&y.pod, &y.container)));
    assert_eq!(a, b);
}

#[test]
fn check_prints_json_forecasts_as_of_a_past_instant() {
    let f = fixture();
    let at = chrono::DateTime::from_timestamp(f.end, 0)
        .unwrap()
        .to_rfc3339();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["check", "--format", "json", "--at", &at])
        .args(["--prometheus-url", &f.prometheus.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "check failed: {stderr}");
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();

    let names: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["pod"].as_str().unwrap(),
                r["container"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(
        names[0],
        format!("{PAY_POD}/istio-proxy"),
        "the leaking sidecar comes first: {names:?}"
    );
    let by_name = |n: &str| {
        reports
            .iter()
            .find(|r| r["container"] == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let proxy = by_name("istio-proxy");
    assert_eq!(proxy["limit_bytes"], 128.0 * MI);
    assert_eq!(proxy["severity"], "critical");
    assert_eq!(proxy["namespace"], "prod");
    let eta = proxy["time_to_limit_seconds"].as_f64().unwrap();
    let (lower, upper) = (
        proxy["time_to_limit_lower_seconds"].as_f64().unwrap(),
        proxy["time_to_limit_upper_seconds"].as_f64().unwrap(),
    );
    assert!(lower <= eta && eta <= upper, "{lower} <= {eta} <= {upper}");
    assert_eq!(
        proxy["evaluated_at"],
        chrono::DateTime::from_timestamp(f.end, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    let app = by_name("payment-service");
    assert_eq!(app["severity"], "none");
    assert!(app["time_to_limit_seconds"].is_null());

    let worker = by_name("worker");
    assert!(worker["limit_bytes"].is_null(), "no limit anywhere");
    assert_eq!(
        worker["severity"], "none",
        "a container without a limit is never alerted"
    );
    assert_eq!(worker["pattern"], "leak", "but it is still forecast");

    assert_eq!(
        by_name("vault-agent")["limit_source"],
        "kube_state_metrics_init"
    );
    let redis = by_name("redis");
    assert_eq!(redis["segments"].as_array().unwrap().len(), 2);
    assert_eq!(
        redis["segments"][1]["container_id"],
        "/kubepods/burstable/podcache/fff666"
    );
    assert!(!names
        .iter()
        .any(|n| n.ends_with("/POD") || n.ends_with('/')));
}

#[tokio::test]
async fn prometheus_errors_name_status_type_and_body() {
    let f = fixture();
    // A query Prometheus refuses (of the wrong type): config check refuses it as
    // Prometheus would...
    let bad = "rate(container_memory_working_set_bytes)";
    let err = Config::parse_str(
        &format!("queries:\n  working_set: '{bad}'\n"),
        "test",
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("expected type matrix"), "{err}");
    // ...and should one reach Prometheus anyway, its 400 bad_data is named.
    let mut config = test_config(&f.prometheus.url(), "");
    config.queries.working_set = bad.to_string();
    let err = source(&config)
        .fetch(Window {
            start: f.start * 1000,
            end: f.end * 1000,
            step: Duration::from_secs(30),
            limits: true,
            restarts_from: Some(f.start * 1000),
        })
        .await
        .unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(
        text.starts_with("working_set query failed: Prometheus at http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("answered HTTP 400 (bad_data: "), "{text}");
    assert!(text.contains("parse error"), "{text}");

    // A limits query that is not a vector: headroom wraps it to keep only the
    // identity labels, and Prometheus' own message says what is wrong.
    let config = test_config(&f.prometheus.url(), "queries:\n  limits: '1'\n");
    let err = source(&config)
        .fetch(Window {
            start: f.end * 1000 - 60_000,
            end: f.end * 1000,
            step: Duration::from_secs(30),
            limits: true,
            restarts_from: Some(f.end * 1000 - 60_000),
        })
        .await
        .unwrap_err();
    let text = format!("{:#}", anyhow::Error::from(err));
    assert!(
        text.starts_with("limits query failed: Prometheus at http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("answered HTTP 400 (bad_data: "), "{text}");
    assert!(
        text.contains("expected type instant vector in aggregation expression, got scalar"),
        "{text}"
    );

    // An answer of the wrong type from the API itself.
    let client = PrometheusClient::new(&config.prometheus).unwrap();
    let err = client.query("1", f.end * 1000).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "query \"1\" returned a scalar result; headroom needs a vector"
    );
}

#[tokio::test]
async fn long_ranges_are_split_under_the_point_limit() {
    let f = fixture();
    let text = format!(
        "prometheus:\n  url: {}\n  max_points_per_request: 100\n  max_concurrent_requests: 2\n",
        f.prometheus.url()
    );
    let config = Config::parse_str(&text, "test", &Overrides::default()).unwrap();
    let client = PrometheusClient::new(&config.prometheus).unwrap();
    let series = client
        .query_range(
            r#"container_memory_working_set_bytes{container="istio-proxy"}"#,
            f.start * 1000,
            f.end * 1000,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    let samples = &series[0].samples;
    assert_eq!(samples.len(), 361);
    assert!(
        samples.windows(2).all(|w| w[1].0 - w[0].0 == 30_000),
        "no gaps, no overlaps"
    );
    assert_eq!(
        client.stats().snapshot().requests,
        4,
        "361 points in pieces of 100"
    );
}

#[test]
fn backtest_replays_prometheus_history() {
    let f = fixture();
    let from = chrono::DateTime::from_timestamp(f.start + 3600, 0)
        .unwrap()
        .to_rfc3339();
    let to = chrono::DateTime::from_timestamp(f.end, 0)
        .unwrap()
        .to_rfc3339();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "backtest", "--from", &from, "--to", &to, "--format", "table",
        ])
        .args(["--selector", r#"namespace="prod""#])
        .args(["--prometheus-url", &f.prometheus.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "backtest failed: {stderr}");
    let table = String::from_utf8_lossy(&output.stdout);
    let transitions: Vec<&str> = table.lines().skip(1).collect();
    assert!(
        transitions.iter().any(|l| l.contains("/istio-proxy")
            && l.contains("-> critical")
            && l.contains("of 128Mi")),
        "the sidecar's limit comes from kube-state-metrics and it alerts:\n{table}"
    );
    assert!(
        !transitions.iter().any(|l| l.contains("/payment-service ")),
        "the app container stays quiet:\n{table}"
    );
    assert!(
        !table.contains("legacy/") && !table.contains("batch/"),
        "--selector keeps to namespace prod:\n{table}"
    );
}

/// The containers `check` reports for one shard of two.
fn shard(index: u32, mode: &str) -> Vec<String> {
    let f = fixture();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), format!("sharding:\n  mode: {mode}\n")).unwrap();
    let at = chrono::DateTime::from_timestamp(f.end, 0)
        .unwrap()
        .to_rfc3339();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["check", "--format", "json", "--at", &at])
        .args(["--config", config.path().to_str().unwrap()])
        .args(["--prometheus-url", &f.prometheus.url()])
        .args(["--shard-index", &index.to_string(), "--shard-count", "2"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    reports
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}",
                r["namespace"].as_str().unwrap(),
                r["pod"].as_str().unwrap(),
                r["container"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn two_shards_cover_every_container_exactly_once() {
    for mode in ["pod", "namespace"] {
        let (a, b) = (shard(0, mode), shard(1, mode));
        let mut union: Vec<String> = a.iter().chain(&b).cloned().collect();
        union.sort();
        let total = union.len();
        union.dedup();
        assert_eq!(
            union.len(),
            total,
            "{mode}: no container in both shards: {a:?} {b:?}"
        );
        assert_eq!(
            union.len(),
            7,
            "{mode}: every container in one shard: {union:?}"
        );
        assert!(
            !a.is_empty() && !b.is_empty(),
            "{mode}: both shards have work: {a:?} {b:?}"
        );
        // A pod's containers share a shard, so OOM kills can be attributed.
        let pod = "payment-service-7f8b9c6d4-xk2nm";
        let in_a = a.iter().filter(|c| c.contains(pod)).count();
        let in_b = b.iter().filter(|c| c.contains(pod)).count();
        assert!(in_a == 0 || in_b == 0, "{mode}: {pod} split across shards");
    }
}

/// A client of the fake Prometheus `fake`, with `prometheus:` settings `extra`.
fn client_of(fake: &common::TestReceiver, extra: &str) -> PrometheusClient {
    let text = format!("prometheus:\n  url: {}\n{extra}", fake.url("/"));
    let config = Config::parse_str(&text, "test.yaml", &Overrides::default()).unwrap();
    PrometheusClient::new(&config.prometheus).unwrap()
}

/// Issue 18: an answer past `prometheus.max_response_bytes` is refused before it is
/// held, with an error that names the setting and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_byte_cap_is_refused_naming_the_setting() {
    use common::{Reply, TestReceiver};
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[]}},"padding":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let fake = TestReceiver::start(vec![Reply::Status(
        200,
        vec![("Content-Type".into(), "application/json".into())],
        body,
    )]);
    let client = client_of(&fake, "  max_response_bytes: 1Mi\n");
    let err = client
        .query_range("up", 0, 60_000, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("prometheus.max_response_bytes"),
        "{err}"
    );
    assert_eq!(err.reason(), "too_large");
    // The default holds a large fleet's answers.
    let config = Config::parse_str("", "test.yaml", &Overrides::default()).unwrap();
    assert_eq!(config.prometheus.max_response_bytes, 256 << 20);
}

/// Issue 18: an answer of more series than `prometheus.max_series` is refused while
/// it is read, naming the setting; one of exactly that many is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_past_the_series_cap_is_refused_naming_the_setting() {
    use common::{Reply, TestReceiver};
    let answer = |n: usize| {
        let series: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"metric":{{"pod":"p{i}"}},"values":[[60,"1"]]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
            series.join(",")
        )
    };
    let json = || vec![("Content-Type".to_string(), "application/json".to_string())];
    let fake = TestReceiver::start(vec![
        Reply::Status(200, json(), answer(1001)),
        Reply::Status(200, json(), answer(1000)),
    ]);
    let client = client_of(&fake, "  max_series: 1000\n");
    let err = client
        .query_range("up", 0, 60_000, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("more than 1000 series (prometheus.max_series)"),
        "{err}"
    );
    assert_eq!(err.reason(), "too_many_series");
    let taken = client
        .query_range("up", 0, 60_000, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1000);
    // Bounded in config check.
    let err = Config::parse_str(
        "prometheus:\n  max_series: 0\n",
        "t.yaml",
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("prometheus.max_series"), "{err}");
}

/// Issue 18: a working-set query that loses the pod label finds no container, and
/// `check` says why, with the count, instead of a bare "no containers found".
#[test]
fn check_says_why_it_found_no_containers() {
    let f = fixture();
    let at = chrono::DateTime::from_timestamp(f.end, 0)
        .unwrap()
        .to_rfc3339();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "queries:\n  working_set: sum by (namespace, container) (container_memory_working_set_bytes{container!=\"\"})\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["check", "--at", &at, "--config"])
        .arg(config.path())
        .args(["--prometheus-url", &f.prometheus.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("no containers found: the working-set query returned ")
            && stdout.contains(" of them without a namespace, pod or container label"),
        "{stdout}"
    );
}

/// Issue 16: `backtest --selector` joins custom working-set queries where they take
/// matchers (into selectors, not into `by (…)` lists or ranges), on a real
/// Prometheus: an aggregation, and a function over a range.
#[test]
fn backtest_selector_joins_custom_queries_in_their_selectors() {
    let f = fixture();
    let from = chrono::DateTime::from_timestamp(f.end - 3600, 0)
        .unwrap()
        .to_rfc3339();
    let to = chrono::DateTime::from_timestamp(f.end, 0)
        .unwrap()
        .to_rfc3339();
    for query in [
        r#"max by (namespace, pod, container, id) (container_memory_working_set_bytes{container!="",container!="POD"})"#,
        r#"max by (namespace, pod, container) (max_over_time(container_memory_working_set_bytes{container!="",container!="POD"}[1m]))"#,
    ] {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            format!("queries:\n  working_set: '{query}'\n"),
        )
        .unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
            .args([
                "backtest", "--from", &from, "--to", &to, "--format", "jsonl",
            ])
            .args(["--selector", r#"namespace="prod""#, "--config"])
            .arg(config.path())
            .args(["--prometheus-url", &f.prometheus.url()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{query}: {stderr}");
        let lines = String::from_utf8_lossy(&output.stdout);
        let namespaces: BTreeSet<String> = lines
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["namespace"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            namespaces.into_iter().collect::<Vec<_>>(),
            ["prod"],
            "{query}: only the selected namespace"
        );
        // The selector really selects: another namespace has nothing to replay.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
            .args(["backtest", "--from", &from, "--to", &to])
            .args(["--selector", r#"namespace="elsewhere""#, "--config"])
            .arg(config.path())
            .args(["--prometheus-url", &f.prometheus.url()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("no series to replay"),
            "{query}: {stderr}"
        );
    }
    // Matchers that do not parse are a usage error that names them, before any query.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["backtest", "--from", &from, "--to", &to])
        .args(["--selector", r#"namespace="prod"#])
        .args(["--prometheus-url", &f.prometheus.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--selector: matchers"), "{stderr}");
}
