//! Issue 15: the series real clusters export, with their real label sets and timing,
//! backfilled into a real Prometheus, read through `headroom check` and through the
//! poll path (`Pipeline::poll` every 30 s, as `headroom run` does).
//!
//! Label sets are those of the upstream projects:
//! - cAdvisor through the kubelet (`/metrics/cadvisor`): `container`, `id`, `image`,
//!   `name`, `namespace`, `pod` (kubelet `pkg/kubelet/server/server.go`,
//!   `containerPrometheusLabelsFunc`), plus the target labels kube-prometheus-stack's
//!   kubelet ServiceMonitor adds (`endpoint`, `instance`, `job`, `metrics_path`,
//!   `node`, `service`). cAdvisor stamps its own samples (housekeeping about every
//!   10 s; `honorTimestamps: true`), so they trail the scrape by 0-10 s and get no
//!   staleness marker.
//! - The kubelet resource endpoint (`/metrics/resource`,
//!   `pkg/kubelet/metrics/collectors/resource_metrics.go`): `container`, `namespace`,
//!   `pod` and no `id`; scraped when `kubelet.serviceMonitor.resource: true`.
//! - kube-state-metrics (`docs/metrics/workload/pod-metrics.md`,
//!   `internal/store/pod_test.go`): `kube_pod_container_resource_limits{resource,
//!   unit}`, `kube_pod_container_status_restarts_total`,
//!   `kube_pod_container_status_last_terminated_reason{reason}` and the init-container
//!   twins, with `uid`; its restart counter rises 15-40 s after the new container's
//!   cgroup appears.
//! - Nested cgroups under a container's own (kubernetes/kubernetes#129253).
//!
//! Each case lives in its own namespace of one Prometheus; every case is checked and
//! the results printed as a table, then asserted.

mod common;

use std::sync::OnceLock;

use common::{openmetrics, pipeline_on, recent_minute, SeriesSpec, TestPrometheus, MI};
use headroom::pipeline::Pipeline;

const SCRAPE: i64 = 30;

struct Clusters {
    prometheus: TestPrometheus,
    /// Unix seconds: the OOM kill in namespace `oom`, and the end of the history.
    kill: i64,
    end: i64,
}

/// The target labels kube-prometheus-stack's kubelet ServiceMonitor adds.
fn kubelet_target(path: &str) -> Vec<(&'static str, String)> {
    vec![
        ("endpoint", "https-metrics".into()),
        ("instance", "10.0.1.23:10250".into()),
        ("job", "kubelet".into()),
        ("metrics_path", path.into()),
        ("node", "node-a".into()),
        ("service", "kps-kubelet".into()),
    ]
}

fn spec(metric: &str, labels: Vec<(&str, String)>) -> SeriesSpec {
    SeriesSpec {
        metric: metric.into(),
        labels: labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        samples: Vec::new(),
    }
}

/// cgroup v2 (systemd driver, containerd) id of a container.
fn v2_id(pod_uid: &str, hex: &str) -> String {
    format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{hex}.scope",
        pod_uid.replace('-', "_")
    )
}

fn hex(seed: u64) -> String {
    format!("{seed:016x}").repeat(4)
}

/// A container's cAdvisor working set, stamped as cAdvisor does: scraped every
/// `scrape_s` seconds, each sample 0-9 s older than its scrape. `f` gives bytes at a
/// unix second.
#[allow(clippy::too_many_arguments)]
fn cadvisor(
    scrape_s: i64,
    ns: &str,
    pod: &str,
    container: &str,
    id: &str,
    extra: &[(&'static str, &str)],
    from: i64,
    to: i64,
    f: impl Fn(i64) -> f64,
) -> SeriesSpec {
    let mut labels = vec![
        ("container", container.to_string()),
        ("id", id.to_string()),
        ("image", format!("registry.example/{container}:1.4.2")),
        ("name", hex(7).to_string()),
        ("namespace", ns.into()),
        ("pod", pod.into()),
    ];
    labels.extend(kubelet_target("/metrics/cadvisor"));
    for (k, v) in extra {
        labels.retain(|(name, _)| name != k);
        labels.push((k, v.to_string()));
    }
    let mut s = spec("container_memory_working_set_bytes", labels);
    let mut scrape = from - from.rem_euclid(scrape_s) + scrape_s;
    while scrape <= to {
        // cAdvisor's housekeeping stamps: 0-9 s before the scrape, strictly rising.
        let at = scrape - (scrape / scrape_s * 7).rem_euclid(10.min(scrape_s - 1));
        if at >= from && s.samples.last().is_none_or(|&(last, _)| at > last) {
            s.samples.push((at, f(at)));
        }
        scrape += scrape_s;
    }
    s
}

/// The kubelet resource endpoint's twin: no `id`, stamped at its own times, a value
/// a little off cAdvisor's (it reads CRI stats).
fn resource_twin(
    scrape_s: i64,
    ns: &str,
    pod: &str,
    container: &str,
    from: i64,
    to: i64,
) -> SeriesSpec {
    let mut labels = vec![
        ("container", container.to_string()),
        ("namespace", ns.into()),
        ("pod", pod.into()),
    ];
    labels.extend(kubelet_target("/metrics/resource"));
    let mut s = spec("container_memory_working_set_bytes", labels);
    let mut at = from - from.rem_euclid(scrape_s) + scrape_s / 2 + 2;
    while at <= to {
        s.samples.push((at, 300.0 * MI + (at % 7) as f64 * MI));
        at += scrape_s;
    }
    s
}

/// kube-state-metrics' series for one container of one replica (`instance`).
fn ksm(metric: &str, extra: &[(&'static str, &str)], instance: &str) -> SeriesSpec {
    let mut labels = vec![
        ("endpoint", "http".to_string()),
        ("instance", instance.to_string()),
        ("job", "kube-state-metrics".into()),
        ("service", "kps-kube-state-metrics".into()),
    ];
    labels.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    spec(metric, labels)
}

/// A kube-state-metrics series scraped every 30 s (12 s into the minute's halves).
fn ksm_every(mut s: SeriesSpec, from: i64, to: i64, f: impl Fn(i64) -> f64) -> SeriesSpec {
    let mut at = from - from.rem_euclid(SCRAPE) + 12;
    while at <= to {
        s.samples.push((at, f(at)));
        at += SCRAPE;
    }
    s
}

fn limit(ns: &str, pod: &str, container: &str, bytes: f64, init: bool) -> Vec<SeriesSpec> {
    let metric = if init {
        "kube_pod_init_container_resource_limits"
    } else {
        "kube_pod_container_resource_limits"
    };
    let uid = format!("uid-{pod}");
    let base = [
        ("namespace", ns),
        ("pod", pod),
        ("uid", uid.as_str()),
        ("container", container),
        ("node", "node-a"),
    ];
    let mut memory = base.to_vec();
    memory.extend([("resource", "memory"), ("unit", "byte")]);
    let mut cpu = base.to_vec();
    cpu.extend([("resource", "cpu"), ("unit", "core")]);
    let (begin, _, end) = times();
    vec![
        ksm_every(ksm(metric, &memory, "10.0.2.5:8080"), begin, end, |_| bytes),
        ksm_every(ksm(metric, &cpu, "10.0.2.5:8080"), begin, end, |_| 0.5),
    ]
}

/// Unix seconds: the history's begin, the kill, the end (read once: every series
/// must agree on them).
fn times() -> (i64, i64, i64) {
    static TIMES: OnceLock<(i64, i64, i64)> = OnceLock::new();
    *TIMES.get_or_init(|| {
        let end = recent_minute() - 600;
        (end - 4 * 3600, end - 60 * 60, end)
    })
}

fn clusters() -> &'static Clusters {
    static CLUSTERS: OnceLock<Clusters> = OnceLock::new();
    CLUSTERS.get_or_init(|| {
        let (_, kill, end) = times();
        Clusters {
            prometheus: TestPrometheus::start(&openmetrics(&history())),
            kill,
            end,
        }
    })
}

/// Every case's series.
fn history() -> Vec<SeriesSpec> {
    let (begin, kill, end) = times();
    let mut out = Vec::new();
    let growth =
        |from: f64, per_hour: f64| move |t: i64| from + per_hour * (t - begin) as f64 / 3600.0;

    // twin: cAdvisor's series and the resource endpoint's twin for three containers,
    // scraped every 30 s (kube-prometheus-stack's default), and a pod scraped every
    // 10 s.
    for (pod, scrape_s) in [("api-7d9f8c6b5-x2x4z", SCRAPE), ("api-7d9f8c6b5-fast1", 10)] {
        for (i, container) in ["api", "istio-proxy", "log-shipper"]
            .into_iter()
            .enumerate()
        {
            let id = v2_id(
                &format!("0b6c8a1e-2f3d-4e5f-8a9b-0c1d2e3f4a{scrape_s:02}"),
                &hex(100 + i as u64 + scrape_s as u64),
            );
            out.push(cadvisor(
                scrape_s,
                "twin",
                pod,
                container,
                &id,
                &[],
                begin,
                end,
                growth(300.0 * MI, 10.0 * MI),
            ));
            out.push(resource_twin(scrape_s, "twin", pod, container, begin, end));
            out.extend(limit("twin", pod, container, 1024.0 * MI, false));
        }
    }

    // oom: checkout starts 100 minutes before `kill`, leaks to 508Mi of 512Mi and is
    // OOM-killed; restarted, it leaks on the same course. In pod -a the new cgroup shows 10 s after the kill and
    // the counter 35 s after it; in pod -b the counter comes first (5 s) and the new
    // cgroup 45 s after. istio-proxy idles beside it.
    let leak_from = kill - 100 * 60;
    let run = move |started: i64| {
        move |t: i64| {
            let age = (t - started).max(0) as f64;
            (200.0 + 308.0 * age / 6000.0).min(508.0 - (t / SCRAPE % 2) as f64) * MI
        }
    };
    for (pod, new_cgroup, counter) in [
        ("checkout-5f6d7c8b9-aaaaa", kill + 10, kill + 35),
        ("checkout-5f6d7c8b9-bbbbb", kill + 45, kill + 5),
    ] {
        let uid = "7e8f9a0b-1c2d-4e3f-9a4b-5c6d7e8f9a0b";
        let old = v2_id(uid, &hex(200));
        let new = v2_id(uid, &hex(201));
        out.push(cadvisor(
            SCRAPE,
            "oom",
            pod,
            "checkout",
            &old,
            &[],
            leak_from,
            kill,
            run(leak_from),
        ));
        out.push(cadvisor(
            SCRAPE,
            "oom",
            pod,
            "checkout",
            &new,
            &[],
            new_cgroup,
            end,
            run(new_cgroup),
        ));
        out.push(cadvisor(
            SCRAPE,
            "oom",
            pod,
            "istio-proxy",
            &v2_id(uid, &hex(202)),
            &[],
            begin,
            end,
            |_| 60.0 * MI,
        ));
        out.extend(limit("oom", pod, "checkout", 512.0 * MI, false));
        out.extend(limit("oom", pod, "istio-proxy", 128.0 * MI, false));
        let uid = format!("uid-{pod}");
        for container in ["checkout", "istio-proxy"] {
            let labels = [
                ("namespace", "oom"),
                ("pod", pod),
                ("uid", uid.as_str()),
                ("container", container),
            ];
            let restarted = container == "checkout";
            out.push(ksm_every(
                ksm(
                    "kube_pod_container_status_restarts_total",
                    &labels,
                    "10.0.2.5:8080",
                ),
                begin,
                end,
                move |t| f64::from(restarted && t >= counter),
            ));
            if restarted {
                let mut reason = labels.to_vec();
                reason.push(("reason", "OOMKilled"));
                out.push(ksm_every(
                    ksm(
                        "kube_pod_container_status_last_terminated_reason",
                        &reason,
                        "10.0.2.5:8080",
                    ),
                    counter,
                    end,
                    |_| 1.0,
                ));
            }
        }
    }

    // nested: dind's own cgroup, and a child it made (same container labels).
    let own = v2_id("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f", &hex(300));
    out.push(cadvisor(
        SCRAPE,
        "nested",
        "ci-runner-0",
        "dind",
        &own,
        &[],
        begin,
        end,
        growth(500.0 * MI, 40.0 * MI),
    ));
    out.push(cadvisor(
        SCRAPE,
        "nested",
        "ci-runner-0",
        "dind",
        &format!("{own}/docker/{}", hex(301)),
        &[],
        begin,
        end,
        |_| 90.0 * MI,
    ));
    out.extend(limit("nested", "ci-runner-0", "dind", 2048.0 * MI, false));

    // shapes that already read right and must stay so.
    let flat = |mib: f64| move |_t: i64| mib * MI;
    // Two scrape jobs of one kubelet's cAdvisor (kubelet, and a direct cadvisor job).
    let web = v2_id("11111111-2222-4333-8444-555555555555", &hex(400));
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "web-1",
        "web",
        &web,
        &[],
        begin,
        end,
        flat(200.0),
    ));
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "web-1",
        "web",
        &web,
        &[("job", "cadvisor"), ("metrics_path", "/metrics")],
        begin,
        end,
        flat(200.0),
    ));
    out.extend(limit("shapes", "web-1", "web", 512.0 * MI, false));
    // Two Prometheus replicas behind one query API (no deduplication).
    let cache = v2_id("22222222-3333-4444-8555-666666666666", &hex(401));
    for replica in ["prometheus-k8s-0", "prometheus-k8s-1"] {
        out.push(cadvisor(
            SCRAPE,
            "shapes",
            "cache-0",
            "cache",
            &cache,
            &[("prometheus_replica", replica)],
            begin,
            end,
            flat(300.0),
        ));
    }
    out.extend(limit("shapes", "cache-0", "cache", 512.0 * MI, false));
    // Two kube-state-metrics replicas: limits and counters twice.
    let worker = v2_id("33333333-4444-4555-8666-777777777777", &hex(402));
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "worker-0",
        "worker",
        &worker,
        &[],
        begin,
        end,
        flat(100.0),
    ));
    for instance in ["10.0.2.5:8080", "10.0.3.9:8080"] {
        let labels = [
            ("namespace", "shapes"),
            ("pod", "worker-0"),
            ("uid", "uid-worker-0"),
            ("container", "worker"),
        ];
        let mut memory = labels.to_vec();
        memory.extend([("resource", "memory"), ("unit", "byte")]);
        out.push(ksm_every(
            ksm("kube_pod_container_resource_limits", &memory, instance),
            begin,
            end,
            |_| 256.0 * MI,
        ));
        out.push(ksm_every(
            ksm(
                "kube_pod_container_status_restarts_total",
                &labels,
                instance,
            ),
            begin,
            end,
            |_| 3.0,
        ));
    }
    // cgroup v1 (cgroupfs driver) and CRI-O ids.
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "legacy-0",
        "legacy",
        &format!(
            "/kubepods/burstable/pod44444444-5555-4666-8777-888888888888/{}",
            hex(403)
        ),
        &[],
        begin,
        end,
        flat(150.0),
    ));
    out.extend(limit("shapes", "legacy-0", "legacy", 512.0 * MI, false));
    out.push(cadvisor(SCRAPE,
        "shapes",
        "crio-0",
        "crio-app",
        &format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod55555555_6666_4777_8888_999999999999.slice/crio-{}.scope",
            hex(404)
        ),
        &[],
        begin,
        end,
        flat(150.0),
    ));
    out.extend(limit("shapes", "crio-0", "crio-app", 512.0 * MI, false));
    // Windows nodes: the id is the bare container id.
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "win-0",
        "win-app",
        &hex(410),
        &[("node", "win-node-a")],
        begin,
        end,
        flat(150.0),
    ));
    out.extend(limit("shapes", "win-0", "win-app", 512.0 * MI, false));
    // Pod-level cgroup (container="") and the pause container: no container of ours.
    let pod_cgroup = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod66666666_7777_4888_8999_aaaaaaaaaaaa.slice";
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "pause-0",
        "",
        pod_cgroup,
        &[("image", ""), ("name", "")],
        begin,
        end,
        flat(400.0),
    ));
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "pause-0",
        "POD",
        &format!("{pod_cgroup}/{}", hex(405)),
        &[("image", "registry.k8s.io/pause:3.9")],
        begin,
        end,
        flat(1.0),
    ));
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "pause-0",
        "app",
        &format!("{pod_cgroup}/cri-containerd-{}.scope", hex(406)),
        &[],
        begin,
        end,
        flat(399.0),
    ));
    out.extend(limit("shapes", "pause-0", "app", 1024.0 * MI, false));
    // A native sidecar: an init container that keeps running, its limit with the init
    // containers'.
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "native-0",
        "envoy",
        &v2_id("77777777-8888-4999-8aaa-bbbbbbbbbbbb", &hex(407)),
        &[],
        begin,
        end,
        flat(50.0),
    ));
    out.extend(limit("shapes", "native-0", "envoy", 128.0 * MI, true));
    // No limit at all.
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "free-0",
        "free",
        &v2_id("88888888-9999-4aaa-8bbb-cccccccccccc", &hex(408)),
        &[],
        begin,
        end,
        flat(80.0),
    ));
    // A pod deleted 30 minutes before the end: its series just stop.
    out.push(cadvisor(
        SCRAPE,
        "shapes",
        "gone-0",
        "gone",
        &v2_id("99999999-aaaa-4bbb-8ccc-dddddddddddd", &hex(409)),
        &[],
        begin,
        end - 30 * 60,
        flat(80.0),
    ));
    out.extend(limit("shapes", "gone-0", "gone", 512.0 * MI, false));
    out
}

/// `headroom check --format json --at` against the clusters' Prometheus.
fn check(at: i64) -> Vec<serde_json::Value> {
    let f = clusters();
    let at = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["check", "--format", "json", "--at", &at])
        .args(["--prometheus-url", &f.prometheus.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One case's outcome: its name, its upstream source, and what went wrong (empty
/// when it passed).
type Outcome = (&'static str, &'static str, Vec<String>);

/// Judges every case on `reports` (check's JSON, or the poll path's reports as JSON)
/// at the end, and the restarted runs on `young`, the reports 10 minutes after the
/// kill, when a run too young for its own trend is forecast from the run before.
fn judge(reports: &[serde_json::Value], young: &[serde_json::Value]) -> Vec<Outcome> {
    let find = |ns: &str, pod: &str, c: &str| {
        reports
            .iter()
            .find(|r| r["namespace"] == ns && r["pod"] == pod && r["container"] == c)
    };
    let mut outcomes = Vec::new();
    let mut case = |name: &'static str, source: &'static str, problems: Vec<String>| {
        outcomes.push((name, source, problems));
    };
    // One segment, with cAdvisor's id, forecast (not insufficient_data).
    let one_run = |ns: &str, pod: &str, c: &str, problems: &mut Vec<String>| {
        let Some(r) = find(ns, pod, c) else {
            problems.push(format!("{ns}/{pod}/{c} missing"));
            return;
        };
        let segments = r["segments"].as_array().map(Vec::len).unwrap_or(0);
        if segments != 1 {
            problems.push(format!("{c}: {segments} segments: {}", r["segments"]));
        }
        if r["segments"][0]["container_id"].is_null() {
            problems.push(format!("{c}: segment without cAdvisor's id"));
        }
        if r["pattern"] == "insufficient_data" {
            problems.push(format!("{c}: insufficient_data"));
        }
    };

    let mut p = Vec::new();
    for pod in ["api-7d9f8c6b5-x2x4z", "api-7d9f8c6b5-fast1"] {
        for c in ["api", "istio-proxy", "log-shipper"] {
            one_run("twin", pod, c, &mut p);
            if let Some(r) = find("twin", pod, c) {
                let want = 300.0 * MI + 10.0 * MI * 4.0;
                let got = r["working_set_bytes"].as_f64().unwrap_or(0.0);
                if (got - want).abs() > 2.0 * MI {
                    p.push(format!(
                        "{pod}/{c}: working set {got} is not cAdvisor's ({want})"
                    ));
                }
            }
        }
    }
    case(
        "kubelet /metrics/resource twin without id, 30 s and 10 s scrapes",
        "kubelet resource_metrics.go; kube-prometheus-stack kubelet.serviceMonitor.resource",
        p,
    );

    for pod in ["checkout-5f6d7c8b9-aaaaa", "checkout-5f6d7c8b9-bbbbb"] {
        let mut p = Vec::new();
        match find("oom", pod, "checkout") {
            None => p.push("checkout missing".into()),
            Some(r) => {
                let segments = r["segments"].as_array().map(Vec::len).unwrap_or(0);
                if segments != 2 {
                    p.push(format!("{segments} segments: {}", r["segments"]));
                }
            }
        }
        let early = young
            .iter()
            .find(|r| r["namespace"] == "oom" && r["pod"] == pod && r["container"] == "checkout");
        match early {
            None => p.push("checkout missing 10 minutes after the kill".into()),
            Some(r) => {
                if r["previous_run_seconds"].is_null() || r["time_to_limit_seconds"].is_null() {
                    p.push(format!(
                        "10 minutes after the kill, not forecast from the run before: {} segments, pattern {}, time to limit {}",
                        r["segments"].as_array().map(Vec::len).unwrap_or(0),
                        r["pattern"],
                        r["time_to_limit_seconds"]
                    ));
                }
            }
        }
        case(
            if pod.ends_with('a') {
                "OOM restart, new cgroup 10 s after, counter 35 s after"
            } else {
                "OOM restart, counter 5 s after, new cgroup 45 s after"
            },
            "cAdvisor honor_timestamps; kube-state-metrics pod-metrics.md (restarts, last_terminated_reason)",
            p,
        );
    }

    let mut p = Vec::new();
    one_run("nested", "ci-runner-0", "dind", &mut p);
    if let Some(r) = find("nested", "ci-runner-0", "dind") {
        if r["working_set_bytes"].as_f64().unwrap_or(0.0) < 500.0 * MI {
            p.push(format!(
                "the child cgroup was read: {}",
                r["working_set_bytes"]
            ));
        }
    }
    case(
        "nested cgroup under the container's own",
        "kubernetes/kubernetes#129253",
        p,
    );

    let mut p = Vec::new();
    one_run("shapes", "web-1", "web", &mut p);
    case(
        "two scrape jobs of one cAdvisor",
        "kube-prometheus-stack kubelet ServiceMonitor",
        p,
    );
    let mut p = Vec::new();
    one_run("shapes", "cache-0", "cache", &mut p);
    case(
        "two Prometheus replicas, no dedup",
        "prometheus_replica external label",
        p,
    );
    // One run, and its limit as read (`None`: no limit) from `source`.
    let with_limit = |pod: &str, c: &str, limit: Option<f64>, source: &str| {
        let mut p = Vec::new();
        one_run("shapes", pod, c, &mut p);
        if let Some(r) = find("shapes", pod, c) {
            if r["limit_bytes"].as_f64() != limit.map(|mib| mib * MI) {
                p.push(format!("{c}: limit {}", r["limit_bytes"]));
            }
            if limit.is_some() && r["limit_source"] != source {
                p.push(format!("{c}: limit from {}", r["limit_source"]));
            }
        }
        p
    };
    let ksm = "kube_state_metrics";
    case(
        "two kube-state-metrics replicas",
        "kube-state-metrics pod_test.go",
        with_limit("worker-0", "worker", Some(256.0), ksm),
    );
    let mut p = with_limit("legacy-0", "legacy", Some(512.0), ksm);
    p.extend(with_limit("crio-0", "crio-app", Some(512.0), ksm));
    p.extend(with_limit("win-0", "win-app", Some(512.0), ksm));
    case(
        "cgroup v1, CRI-O and Windows ids",
        "cAdvisor container ids",
        p,
    );
    let mut p = with_limit("pause-0", "app", Some(1024.0), ksm);
    for c in ["", "POD"] {
        if find("shapes", "pause-0", c).is_some() {
            p.push(format!("container {c:?} reported"));
        }
    }
    case(
        "pod-level and pause series; cpu limits beside memory",
        "kubelet containerPrometheusLabelsFunc; kube-state-metrics resource/unit",
        p,
    );
    case(
        "native sidecar (init container)",
        "kube_pod_init_container_resource_limits",
        with_limit("native-0", "envoy", Some(128.0), "kube_state_metrics_init"),
    );
    case(
        "no limit",
        "kube-state-metrics (no limits series)",
        with_limit("free-0", "free", None, ksm),
    );
    // Deleted 30 minutes before the end: tracked while it ran (the young reports,
    // 50 minutes before the end), forgotten after store.forget_after (10m).
    let mut p = Vec::new();
    if find("shapes", "gone-0", "gone").is_some() {
        p.push("a pod deleted 30 minutes ago is still reported".into());
    }
    let running = young
        .iter()
        .any(|r| r["namespace"] == "shapes" && r["pod"] == "gone-0" && r["container"] == "gone");
    if !running {
        p.push("the pod was not reported while it ran".into());
    }
    case(
        "pod deleted: series stop",
        "cAdvisor (no staleness markers)",
        p,
    );
    outcomes
}

fn assert_all_pass(path: &str, outcomes: &[Outcome]) {
    let mut table = format!("{path}:\n");
    for (name, source, problems) in outcomes {
        let verdict = if problems.is_empty() { "pass" } else { "FAIL" };
        table.push_str(&format!("  {verdict}  {name}  [{source}]\n"));
        for p in problems {
            table.push_str(&format!("          {p}\n"));
        }
    }
    eprintln!("{table}");
    assert!(outcomes.iter().all(|(_, _, p)| p.is_empty()), "{table}");
}

#[test]
fn every_real_cluster_shape_reads_right_through_check() {
    let f = clusters();
    assert_all_pass(
        "headroom check",
        &judge(&check(f.end), &check(f.kill + 10 * 60)),
    );
}

/// The same cases through the poll path: started 30 minutes before the kill, polling
/// every 30 s to the end, as `headroom run` does. The twins never split a history on
/// any poll, the kills are attributed to checkout at its limit whichever signal came
/// first, and the run after each is forecast from the run before.
#[tokio::test]
async fn every_real_cluster_shape_reads_right_through_the_poll_path() {
    let f = clusters();
    let (config, mut pipeline) = pipeline_on(&f.prometheus, "");
    let mut explainer = config.explainer();
    let mut kills = Vec::new();
    let mut splits = Vec::new();
    let mut young = Vec::new();
    let mut now = (f.kill - 30 * 60) * 1000;
    while now <= f.end * 1000 {
        let summary = pipeline.poll(now).await.unwrap();
        if now == (f.kill + 10 * 60) * 1000 {
            young = reports(&mut pipeline, now);
        }
        kills.extend(explainer.record_kills(
            pipeline.store(),
            &summary.oom_restarts,
            summary.backfill,
        ));
        for (key, tracked) in pipeline.store().iter() {
            if key.namespace == "twin" && tracked.segments.len() != 1 {
                splits.push(format!(
                    "{key} at {now}: {} segments",
                    tracked.segments.len()
                ));
            }
        }
        now += 30_000;
    }
    assert!(splits.is_empty(), "twins split histories: {splits:#?}");
    kills.sort_by(|a, b| a.pod.cmp(&b.pod));
    assert_eq!(kills.len(), 2, "{kills:#?}");
    for kill in &kills {
        assert_eq!(
            kill.attributed_container.as_deref(),
            Some("checkout"),
            "{kill:#?}"
        );
        // Judged on the old run's last samples (505-508Mi, by where the scrape fell),
        // never on the new run's 200Mi.
        let at = kill
            .sentence
            .split("checkout was at its limit (")
            .nth(1)
            .and_then(|rest| rest.strip_suffix("Mi of 512Mi)"))
            .and_then(|mib| mib.parse::<f64>().ok());
        assert!(at.is_some_and(|mib| mib >= 500.0), "{}", kill.sentence);
    }
    let end = reports(&mut pipeline, f.end * 1000);
    assert_all_pass("the poll path", &judge(&end, &young));
}

/// The pipeline's reports at `now`, as JSON.
fn reports<S: headroom::source::Source>(
    pipeline: &mut Pipeline<S>,
    now: i64,
) -> Vec<serde_json::Value> {
    pipeline
        .evaluate(now)
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}
