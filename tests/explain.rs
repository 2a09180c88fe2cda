//! The seed incident end to end on a real Prometheus: kube-state-metrics and cAdvisor
//! history of a rollout that raised istio-proxy's trace sampling, its sidecar leaking
//! to the limit, and an OOM kill Kubernetes reported on the app container.

mod common;

use std::sync::OnceLock;

use common::{openmetrics, pipeline_on, recent_minute, SeriesSpec, TestPrometheus, MI};
use headroom::pipeline::Pipeline;

const POD: &str = "payment-service-7f8b9c6d4-xk2nm";
const OLD_POD: &str = "payment-service-5d9c8b7a6-q7r2p";
const STEP: i64 = 30;

struct Incident {
    prometheus: TestPrometheus,
    /// Unix seconds: history end, new pod start (rollout), the OOM kill.
    end: i64,
    start: i64,
    kill: i64,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn series(metric: &str, pairs: &[(&str, &str)]) -> SeriesSpec {
    SeriesSpec {
        metric: metric.into(),
        labels: labels(pairs),
        samples: vec![],
    }
}

/// The incident's times (unix seconds): history begins, the rollout, the kill, the end.
fn times() -> (i64, i64, i64, i64) {
    let end = recent_minute() - 600;
    let start = end - 150 * 60;
    (end - 5 * 3600, start, start + 120 * 60, end)
}

fn incident() -> &'static Incident {
    static INCIDENT: OnceLock<Incident> = OnceLock::new();
    INCIDENT.get_or_init(|| {
        let (begin, start, kill, end) = times();
        Incident {
            prometheus: TestPrometheus::start(&openmetrics(&incident_series(
                begin, start, kill, end,
            ))),
            end,
            start,
            kill,
        }
    })
}

/// The same incident in two clusters that a Thanos or Mimir store serves as one, with
/// a `cluster` label: the same namespace, pods and ReplicaSets in each, but in cluster
/// b the rollout raised trace sampling to 5% (not 100%), its ReplicaSet was created a
/// minute earlier, and its Envoy allocates half as much.
fn two_clusters() -> &'static Incident {
    static TWO: OnceLock<Incident> = OnceLock::new();
    TWO.get_or_init(|| {
        let (begin, start, kill, end) = times();
        let mut all = Vec::new();
        for cluster in ["a", "b"] {
            for mut spec in incident_series(begin, start, kill, end) {
                spec.labels.push(("cluster".into(), cluster.into()));
                if cluster == "b" {
                    for (name, value) in &mut spec.labels {
                        if name == "annotation_proxy_istio_io_config" && value.contains("100") {
                            *value = r#"{"tracing":{"sampling":5}}"#.into();
                        }
                    }
                    let new_rs = spec
                        .labels
                        .iter()
                        .any(|(k, v)| k == "replicaset" && v == "payment-service-7f8b9c6d4");
                    for (_, v) in &mut spec.samples {
                        match spec.metric.as_str() {
                            "kube_replicaset_created" if new_rs => *v -= 60.0,
                            "envoy_server_memory_allocated" => *v /= 2.0,
                            _ => {}
                        }
                    }
                }
                all.push(spec);
            }
        }
        Incident {
            prometheus: TestPrometheus::start(&openmetrics(&all)),
            end,
            start,
            kill,
        }
    })
}

/// Every series of the incident.
fn incident_series(begin: i64, start: i64, kill: i64, end: i64) -> Vec<SeriesSpec> {
    let rs_created = start - 120;
    let ws = "container_memory_working_set_bytes";
    let c = |pod: &str, container: &str, id: &str| -> Vec<(String, String)> {
        labels(&[
            ("namespace", "prod"),
            ("pod", pod),
            ("container", container),
            ("id", id),
        ])
    };
    fn ksm<'a>(pod: &'a str, container: &'a str) -> [(&'a str, &'a str); 3] {
        [
            ("namespace", "prod"),
            ("pod", pod),
            ("container", container),
        ]
    }
    let mut s = vec![
        // The old pod, before the rollout.
        SeriesSpec {
            metric: ws.into(),
            labels: c(OLD_POD, "istio-proxy", "/old/proxy"),
            samples: vec![],
        }
        .every(begin, start + 60, STEP, |_| 62.0 * MI),
        SeriesSpec {
            metric: ws.into(),
            labels: c(OLD_POD, "payment-service", "/old/app"),
            samples: vec![],
        }
        .every(begin, start + 60, STEP, |_| 117.0 * MI),
        // The new pod: the sidecar leaks +32Mi/h from its start to 127Mi.
        SeriesSpec {
            metric: ws.into(),
            labels: c(POD, "istio-proxy", "/new/proxy"),
            samples: vec![],
        }
        .every(start, end, STEP, move |t| {
            let noise = ((t / STEP) % 3) as f64 * 0.2 * MI;
            (64.0 * MI + (t - start) as f64 * 32.0 * MI / 3600.0 + noise).min(127.3 * MI)
        }),
        // The app: flat, then OOM-killed (Kubernetes blames it) and restarted.
        SeriesSpec {
            metric: ws.into(),
            labels: c(POD, "payment-service", "/new/app-0"),
            samples: vec![],
        }
        .every(start, kill - STEP, STEP, |t| {
            118.0 * MI + ((t / STEP) % 4) as f64 * 0.1 * MI
        }),
        SeriesSpec {
            metric: ws.into(),
            labels: c(POD, "payment-service", "/new/app-1"),
            samples: vec![],
        }
        .every(kill, end, STEP, move |t| {
            40.0 * MI + ((t - kill) as f64 / 60.0).min(60.0) * MI
        }),
        // An app that is its own culprit: orders reaches its 256Mi and is killed.
        SeriesSpec {
            metric: ws.into(),
            labels: c("orders-6b7c8d9e0-zzzzz", "orders", "/orders/0"),
            samples: vec![],
        }
        .every(begin, kill - STEP, STEP, move |t| {
            150.0 * MI + (t - begin) as f64 * 106.0 * MI / (kill - begin) as f64
        }),
        SeriesSpec {
            metric: ws.into(),
            labels: c("orders-6b7c8d9e0-zzzzz", "orders", "/orders/1"),
            samples: vec![],
        }
        .every(kill, end, STEP, |_| 90.0 * MI),
    ];
    for (pod, container, limit, from, to) in [
        (OLD_POD, "istio-proxy", 128.0, begin, start + 60),
        (OLD_POD, "payment-service", 256.0, begin, start + 60),
        (POD, "istio-proxy", 128.0, start, end),
        (POD, "payment-service", 256.0, start, end),
        ("orders-6b7c8d9e0-zzzzz", "orders", 256.0, begin, end),
    ] {
        let mut l = ksm(pod, container).to_vec();
        l.push(("resource", "memory"));
        s.push(
            series("kube_pod_container_resource_limits", &l)
                .every(from, to, STEP, move |_| limit * MI),
        );
    }
    for (pod, container, killed) in [
        (POD, "payment-service", true),
        (POD, "istio-proxy", false),
        ("orders-6b7c8d9e0-zzzzz", "orders", true),
    ] {
        let from = if pod == POD { start } else { begin };
        s.push(
            series(
                "kube_pod_container_status_restarts_total",
                &ksm(pod, container),
            )
            .every(
                from,
                end,
                STEP,
                move |t| {
                    if killed && t >= kill {
                        1.0
                    } else {
                        0.0
                    }
                },
            ),
        );
        if killed {
            let mut l = ksm(pod, container).to_vec();
            l.push(("reason", "OOMKilled"));
            s.push(
                series("kube_pod_container_status_last_terminated_reason", &l).every(
                    kill,
                    end,
                    STEP,
                    |_| 1.0,
                ),
            );
        }
    }
    // Owners, creation times, annotations.
    fn pod_l(pod: &str) -> [(&str, &str); 2] {
        [("namespace", "prod"), ("pod", pod)]
    }
    s.push(
        series("kube_pod_start_time", &pod_l(POD)).every(start, end, STEP, move |_| start as f64),
    );
    s.push(series("kube_pod_start_time", &pod_l(OLD_POD)).every(
        begin,
        start + 60,
        STEP,
        move |_| (begin - 86_400) as f64,
    ));
    s.push(
        series("kube_pod_start_time", &pod_l("orders-6b7c8d9e0-zzzzz")).every(
            begin,
            end,
            STEP,
            move |_| (begin - 86_400) as f64,
        ),
    );
    for (pod, rs, from, to) in [
        (POD, "payment-service-7f8b9c6d4", start, end),
        (OLD_POD, "payment-service-5d9c8b7a6", begin, start + 60),
    ] {
        let mut l = pod_l(pod).to_vec();
        l.extend([
            ("owner_kind", "ReplicaSet"),
            ("owner_name", rs),
            ("owner_is_controller", "true"),
        ]);
        s.push(series("kube_pod_owner", &l).every(from, to, STEP, |_| 1.0));
    }
    s.push(
        series(
            "kube_pod_owner",
            &[
                ("namespace", "prod"),
                ("pod", "orders-6b7c8d9e0-zzzzz"),
                ("owner_kind", "ReplicaSet"),
                ("owner_name", "orders-6b7c8d9e0"),
            ],
        )
        .every(begin, end, STEP, |_| 1.0),
    );
    for (rs, created, deployment) in [
        ("payment-service-7f8b9c6d4", rs_created, "payment-service"),
        (
            "payment-service-5d9c8b7a6",
            begin - 7 * 86_400,
            "payment-service",
        ),
        ("orders-6b7c8d9e0", begin - 86_400, "orders"),
    ] {
        s.push(
            series(
                "kube_replicaset_created",
                &[("namespace", "prod"), ("replicaset", rs)],
            )
            .every(begin, end, STEP, move |_| created as f64),
        );
        s.push(
            series(
                "kube_replicaset_owner",
                &[
                    ("namespace", "prod"),
                    ("replicaset", rs),
                    ("owner_kind", "Deployment"),
                    ("owner_name", deployment),
                ],
            )
            .every(begin, end, STEP, |_| 1.0),
        );
    }
    s.push(
        series(
            "kube_pod_annotations",
            &[
                ("namespace", "prod"),
                ("pod", POD),
                (
                    "annotation_proxy_istio_io_config",
                    r#"{"tracing":{"sampling":100}}"#,
                ),
            ],
        )
        .every(start, end, STEP, |_| 1.0),
    );
    s.push(
        series(
            "kube_pod_annotations",
            &[
                ("namespace", "prod"),
                ("pod", OLD_POD),
                (
                    "annotation_proxy_istio_io_config",
                    r#"{"tracing":{"sampling":1}}"#,
                ),
            ],
        )
        .every(begin, start + 60, STEP, |_| 1.0),
    );
    // Images: the sidecar's is unchanged (as in the incident), the app's is new.
    for (pod, container, image, from, to) in [
        (
            OLD_POD,
            "istio-proxy",
            "docker.io/istio/proxyv2:1.20.3",
            begin,
            start + 60,
        ),
        (
            OLD_POD,
            "payment-service",
            "registry.example/payment:41",
            begin,
            start + 60,
        ),
        (
            POD,
            "istio-proxy",
            "docker.io/istio/proxyv2:1.20.3",
            start,
            end,
        ),
        (
            POD,
            "payment-service",
            "registry.example/payment:42",
            start,
            end,
        ),
    ] {
        s.push(
            series(
                "kube_pod_container_info",
                &[
                    ("namespace", "prod"),
                    ("pod", pod),
                    ("container", container),
                    ("image", image),
                ],
            )
            .every(from, to, STEP, |_| 1.0),
        );
    }
    // Envoy's stats, scraped from the sidecar: allocation grows with the leak.
    s.push(
        series(
            "envoy_server_memory_allocated",
            &[("namespace", "prod"), ("pod", POD)],
        )
        .every(start, end, STEP, move |t| {
            40.0 * MI + (t - start) as f64 * 30.0 * MI / 3600.0
        }),
    );
    s.push(
        series(
            "envoy_server_memory_heap_size",
            &[("namespace", "prod"), ("pod", POD)],
        )
        .every(start, end, STEP, move |t| {
            48.0 * MI + (t - start) as f64 * 31.0 * MI / 3600.0
        }),
    );
    s
}

fn check(at: i64) -> Vec<serde_json::Value> {
    check_on(incident(), at, None)
}

/// `headroom check --format json --at` against `f`'s Prometheus, with a config file
/// of `config` when given.
fn check_on(f: &Incident, at: i64, config: Option<&str>) -> Vec<serde_json::Value> {
    let at = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339();
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"));
    command.args([
        "check",
        "--format",
        "json",
        "--at",
        &at,
        "--prometheus-url",
        &f.prometheus.url(),
    ]);
    if let Some(config) = config {
        let path = dir.path().join("headroom.yaml");
        std::fs::write(&path, config).unwrap();
        command.arg("--config").arg(&path);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_forecast_names_the_sidecar_and_the_rollout_behind_it() {
    let f = incident();
    let reports = check(f.start + 60 * 60);
    let find = |pod: &str, c: &str| {
        reports
            .iter()
            .find(|r| r["pod"] == pod && r["container"] == c)
            .unwrap()
            .clone()
    };
    let proxy = find(POD, "istio-proxy");
    assert_eq!(proxy["alert"], "critical", "{proxy:#}");
    assert_eq!(proxy["sidecar"], true);
    assert_eq!(proxy["workload"], "Deployment/payment-service");
    assert_eq!(proxy["changes"][0]["kind"], "replicaset_created");
    assert_eq!(
        proxy["changes"][0]["text"],
        r#"2 min after ReplicaSet payment-service-7f8b9c6d4 was created (changed: image of payment-service registry.example/payment:41 → registry.example/payment:42; proxy_istio_io_config {"tracing":{"sampling":1}} → {"tracing":{"sampling":100}})"#
    );
    assert_eq!(
        proxy["envoy"]["allocated_bytes"],
        70.0 * MI,
        "Envoy's own stats come along"
    );
    assert_eq!(proxy["envoy"]["heap_size_bytes"], 79.0 * MI);
    assert_eq!(
        proxy["workload_peers"],
        serde_json::json!({"workload": "Deployment/payment-service", "replicas": 1, "on_course": 1, "horizon_seconds": 7200.0}),
        "the only replica left after the rollout"
    );
    let pod = &proxy["pod_pressure"];
    assert_eq!(
        pod["limit_bytes"],
        384.0 * MI,
        "128Mi + 256Mi: the pod cgroup's limit"
    );
    assert_eq!(
        pod["applies"], "container",
        "the sidecar's own limit comes first"
    );
    assert!(pod["working_set_bytes"].as_f64().unwrap() > 180.0 * MI);
    let app = find(POD, "payment-service");
    assert!(app["alert"].is_null(), "{app:#}");
    assert!(app["envoy"].is_null());
    assert_eq!(app["sidecar"], false);
    // The sidecar comes before the app container: most urgent first.
    let position = |c: &str| {
        reports
            .iter()
            .position(|r| r["pod"] == POD && r["container"] == c)
            .unwrap()
    };
    assert!(position("istio-proxy") < position("payment-service"));
}

/// Two clusters with the same namespace, pods and ReplicaSets: each sidecar's
/// explanation is its own cluster's rollout, and each is the only replica of its
/// workload (pod metadata, owners and Envoy stats are asked per cluster).
#[test]
fn same_named_pods_of_two_clusters_are_explained_apart() {
    let f = two_clusters();
    let reports = check_on(
        f,
        f.start + 60 * 60,
        Some("identity:\n  extra_labels: [cluster]\n"),
    );
    for (cluster, sampling, minutes, envoy) in [("a", "100", 2, 70.0), ("b", "5", 3, 35.0)] {
        let proxy = reports
            .iter()
            .find(|r| {
                r["pod"] == POD
                    && r["container"] == "istio-proxy"
                    && r["labels"]["cluster"] == cluster
            })
            .unwrap_or_else(|| panic!("cluster {cluster}'s sidecar: {reports:#?}"));
        assert_eq!(proxy["alert"], "critical", "{proxy:#}");
        let text = proxy["changes"][0]["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(&format!(
                "{minutes} min after ReplicaSet payment-service-7f8b9c6d4 was created"
            )) && text.ends_with(&format!(
                r#"{{"tracing":{{"sampling":1}}}} → {{"tracing":{{"sampling":{sampling}}}}})"#
            )),
            "cluster {cluster}: {text}"
        );
        assert_eq!(proxy["workload_peers"]["replicas"], 1, "{proxy:#}");
        assert_eq!(
            proxy["envoy"]["allocated_bytes"],
            envoy * MI,
            "cluster {cluster}"
        );
    }
}

#[test]
fn growth_long_after_any_change_names_no_change() {
    let f = incident();
    let reports = check(f.start + 60 * 60);
    let orders = reports.iter().find(|r| r["container"] == "orders").unwrap();
    assert!(
        orders["time_to_limit_seconds"].as_f64().is_some(),
        "{orders:#}"
    );
    assert_eq!(
        orders["changes"],
        serde_json::json!([]),
        "nothing found, nothing said"
    );
    assert_eq!(orders["workload"], "Deployment/orders");
}

#[tokio::test]
async fn the_oom_kill_is_attributed_to_the_container_at_its_limit() {
    let f = incident();
    let (config, mut pipeline) = pipeline_on(&f.prometheus, "");
    let source = pipeline.source().clone();
    let explainer = || config.explainer();
    let mut kill_record = explainer();
    // Started before the kill: the poll after it reports it as new.
    let backfill = pipeline.poll((f.kill - 600) * 1000).await.unwrap();
    assert!(kill_record
        .record_kills(pipeline.store(), &backfill.oom_restarts, backfill.backfill)
        .is_empty());
    let summary = pipeline.poll(f.end * 1000).await.unwrap();
    let mut kills =
        kill_record.record_kills(pipeline.store(), &summary.oom_restarts, summary.backfill);

    // Started after the kill: it is history (served by the API), not news.
    let mut late = Pipeline::new(source, &config);
    let mut late_record = explainer();
    let after = late.poll(f.end * 1000).await.unwrap();
    assert!(
        late_record
            .record_kills(late.store(), &after.oom_restarts, after.backfill)
            .is_empty(),
        "a restart must not re-announce old kills"
    );
    assert_eq!(late_record.oom_kills().len(), 2, "but they are remembered");
    kills.sort_by(|a, b| a.pod.cmp(&b.pod));
    assert_eq!(kills.len(), 2, "{kills:#?}");
    let orders = &kills[0];
    assert_eq!(orders.reported_container, "orders");
    assert_eq!(
        orders.attributed_container.as_deref(),
        Some("orders"),
        "the reported container was the culprit"
    );
    assert!(
        orders
            .sentence
            .starts_with("OOM kill in prod/orders-6b7c8d9e0-zzzzz: orders was at its limit ("),
        "{}",
        orders.sentence
    );
    let payment = &kills[1];
    assert_eq!(payment.reported_container, "payment-service");
    assert_eq!(payment.attributed_container.as_deref(), Some("istio-proxy"));
    assert_eq!(
        payment.sentence,
        "OOM kill in prod/payment-service-7f8b9c6d4-xk2nm reported on payment-service; istio-proxy was at 127Mi of 128Mi, payment-service at 118Mi of 256Mi"
    );
    assert_eq!(
        payment.at.to_string(),
        headroom::vocab::rfc3339(f.kill * 1000)
    );
}
