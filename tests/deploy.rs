//! What ships into a cluster, tested with the real tools and no cluster: the Grafana
//! dashboards' PromQL against a real Prometheus that scrapes a running `headroom run`,
//! the Helm chart through Helm's own lint and render (the PyPI `helm-python-sdk`
//! binds Helm's Go SDK) and `kubernetes-validate --strict`, the rendered configuration
//! through `headroom config check`, and the alert rules through `promtool`.
//!
//! A missing tool fails the test with the command that installs it; nothing skips.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    free_port, http_get, openmetrics, require_binary, wait_for, Reply, SeriesSpec, TestPrometheus,
    TestReceiver, MI,
};
use serde_json::{json, Value};

const DASHBOARDS: [&str; 3] = [
    "headroom-overview.json",
    "headroom-container.json",
    "headroom-self.json",
];
const RULE_FILES: [&str; 2] = ["prometheus-rules.yaml", "prometheus-rules-forecast.yaml"];

/// Metrics the dashboards and rules may use that headroom does not export: cAdvisor
/// (through the kubelet), kube-state-metrics v2, and Prometheus' own `up`.
const EXTERNAL_METRICS: [&str; 8] = [
    "container_memory_working_set_bytes",
    "container_spec_memory_limit_bytes",
    "kube_pod_container_resource_limits",
    "kube_pod_init_container_resource_limits",
    "kube_pod_container_status_restarts_total",
    "kube_pod_init_container_status_restarts_total",
    "kube_pod_container_status_last_terminated_reason",
    "up",
];

/// Grafana's built-in interval variables, as the test substitutes them. `$__range` is
/// an hour so the backfilled OOM kill 20 minutes ago is "recent".
const BUILTIN_VARIABLES: [(&str, &str); 3] = [
    ("__rate_interval", "1m"),
    ("__interval", "1m"),
    ("__range", "1h"),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn dashboard(name: &str) -> Value {
    let text = read(repo().join("dashboards").join(name));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboards/{name} is not JSON: {e}"))
}

// ---------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------

/// A Python with `helm_python` (Helm v4's Go SDK behind a C ABI: Helm's real lint and
/// template engine, without a `helm` binary) or a failed test saying how to get it.
fn require_helm_python() -> PathBuf {
    let python = require_binary("python3", "python3 python3-pip");
    let probe = Command::new(&python)
        .args([
            "-c",
            "import helm_python; print(helm_python.helm_sdk_version())",
        ])
        .output()
        .expect("run python3");
    assert!(
        probe.status.success(),
        "Helm is needed to lint and render the chart; this test uses the Helm SDK bundled \
         in the PyPI package helm-python-sdk. Install it with:\n    \
         pip install helm-python-sdk\n(.ci/run does this on CI)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

fn require_pip_tool(binary: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{binary}` is not installed, and this test needs the real thing. Install it with:\n    \
                 pip install {package}\n(.ci/run does this on CI)"
            )
        })
}

/// Lints or renders the chart with Helm's SDK: `mode` is `lint` or `render`.
const HELM_DRIVER: &str = r#"
import json, sys
import helm_python as helm
mode, chart, values_path, release, namespace = sys.argv[1:6]
with open(values_path) as f:
    values = json.load(f)
if mode == "lint":
    out = helm.lint(chart, values, strict=True, namespace=namespace)
else:
    with helm.Chart.load(chart) as c:
        out = c.render(values, name=release, namespace=namespace, is_install=True)
print(json.dumps(out))
"#;

/// Helm's JSON answer, or its error message.
fn try_helm(mode: &str, values: &Value, release: &str) -> Result<Value, String> {
    let python = require_helm_python();
    let dir = tempfile::tempdir().unwrap();
    let values_path = dir.path().join("values.json");
    std::fs::write(&values_path, values.to_string()).unwrap();
    let output = Command::new(python)
        .args(["-c", HELM_DRIVER, mode])
        .arg(repo().join("deploy/helm/headroom"))
        .arg(&values_path)
        .args([release, "monitoring"])
        .output()
        .expect("run python3");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("the Helm driver prints JSON"))
}

fn helm(mode: &str, values: &Value, release: &str) -> Value {
    try_helm(mode, values, release)
        .unwrap_or_else(|e| panic!("helm {mode} failed with values {values}:\n{e}"))
}

// ---------------------------------------------------------------------------------
// PromQL: metric names and variables
// ---------------------------------------------------------------------------------

/// The metric names a PromQL expression selects, read with the parser headroom
/// itself uses (`promql-parser`). Grafana's interval variables stand in as `5m`;
/// an expression that does not parse fails the test, naming it.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut text = expr.to_string();
    for variable in ["$__rate_interval", "$__interval", "$__range"] {
        text = text.replace(variable, "5m");
    }
    headroom::source::promql::metric_names(&text)
        .unwrap_or_else(|e| panic!("`{expr}` is not PromQL: {e}"))
}

/// The metric names in `exprs` (labelled with where they come from) that are neither
/// in `known` nor external: each is a panel or rule that can never show data.
fn unknown_metrics(exprs: &[(String, String)], known: &BTreeSet<String>) -> Vec<String> {
    let mut unknown = Vec::new();
    for (place, expr) in exprs {
        for name in metric_names(expr) {
            if !known.contains(&name) && !EXTERNAL_METRICS.contains(&name.as_str()) {
                unknown.push(format!("{place}: unknown metric `{name}` in `{expr}`"));
            }
        }
    }
    unknown
}

/// Every metric name in a text exposition (sample lines and `# TYPE` lines).
fn exposition_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                names.insert(name.to_string());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// One PromQL query of a dashboard panel.
#[derive(Debug, Clone)]
struct PanelQuery {
    place: String,
    expr: String,
    instant: bool,
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn panel_queries(name: &str, dashboard: &Value) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| {
                panic!("{name}: panel {:?} has a target without expr", p["title"])
            });
            out.push(PanelQuery {
                place: format!(
                    "{name}: panel {:?} ({})",
                    p["title"].as_str().unwrap_or(""),
                    t["refId"]
                ),
                expr: expr.to_string(),
                instant: t["instant"] == true,
            });
        }
    }
    out
}

/// Replaces `$name` and `${name}` (longest names first, so `$pod` never eats `$pods`)
/// and fails on any variable left.
fn substitute(expr: &str, variables: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &variables[name])
            .replace(&format!("${name}"), &variables[name]);
    }
    assert!(
        !out.contains('$'),
        "unresolved template variable in `{out}` (from `{expr}`)"
    );
    out
}

/// `label_values(selector, label)` → (selector, label).
fn label_values_query(definition: &str) -> (String, String) {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| {
            panic!("variable query `{definition}` is not label_values(selector, label)")
        });
    let (selector, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("variable query `{definition}` names no selector"));
    (selector.trim().to_string(), label.trim().to_string())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET a Prometheus API path; (HTTP status, JSON body).
fn prometheus_api(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
    (status, value)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs `expr` as Grafana would (an instant query, or a range query over the last 10
/// minutes) and describes what is wrong: an error, or no data.
fn query_problem(port: u16, expr: &str, instant: bool) -> Option<String> {
    let now = unix_now();
    let path = if instant {
        format!("/api/v1/query?query={}&time={now}", url_encode(expr))
    } else {
        format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=15",
            url_encode(expr),
            now - 600
        )
    };
    let (status, body) = prometheus_api(port, &path);
    if status != 200 || body["status"] != "success" {
        return Some(format!("failed ({status}): {body}"));
    }
    let empty = body["data"]["result"]
        .as_array()
        .is_none_or(|r| r.is_empty());
    empty.then(|| "returned no data".to_string())
}

// ---------------------------------------------------------------------------------
// Dashboards: static checks
// ---------------------------------------------------------------------------------

#[test]
fn dashboards_parse_and_every_panel_uses_the_datasource_variable() {
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    for name in DASHBOARDS {
        let text = read(repo().join("dashboards").join(name));
        assert!(
            !text.contains("${DS_"),
            "{name} has an unresolved ${{DS_...}} input"
        );
        let d = dashboard(name);
        assert!(
            d.get("__inputs").is_none(),
            "{name} has __inputs: provisioning cannot resolve them"
        );
        assert!(
            d["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("headroom-")),
            "{name}: uid"
        );
        let variables = d["templating"]["list"].as_array().expect("templating.list");
        let ds = variables
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{name} has no `datasource` variable"));
        assert_eq!(ds["type"], "datasource", "{name}");
        assert_eq!(ds["query"], "prometheus", "{name}");
        for v in variables.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                v["datasource"], datasource,
                "{name}: variable {}",
                v["name"]
            );
        }
        let all = panels(&d);
        assert!(all.len() >= 5, "{name} has {} panels", all.len());
        for p in all.iter().filter(|p| p["type"] != "row") {
            let title = p["title"].as_str().unwrap_or("");
            assert_eq!(p["datasource"], datasource, "{name}: panel {title:?}");
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: panel {title:?} has no targets"));
            assert!(
                !targets.is_empty(),
                "{name}: panel {title:?} has no targets"
            );
            for t in targets {
                assert_eq!(
                    t["datasource"], datasource,
                    "{name}: panel {title:?} target {}",
                    t["refId"]
                );
            }
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: panel {title:?} needs a description"
            );
        }
        let ids: Vec<&Value> = all.iter().map(|p| &p["id"]).collect();
        let unique: BTreeSet<String> = ids.iter().map(|v| v.to_string()).collect();
        assert_eq!(unique.len(), ids.len(), "{name}: panel ids must be unique");
        // The chart ships the very same files.
        let shipped = read(
            repo()
                .join("deploy/helm/headroom/files/dashboards")
                .join(name),
        );
        assert_eq!(
            shipped, text,
            "deploy/helm/headroom/files/dashboards/{name} differs from dashboards/{name}: copy it"
        );
    }
    let container = dashboard("headroom-container.json");
    let names: Vec<&str> = container["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["datasource", "cluster", "namespace", "pod", "container"]
    );
}

#[test]
fn an_unknown_metric_in_a_panel_is_reported() {
    let known: BTreeSet<String> = ["headroom_time_to_limit_seconds", "headroom_alert_state"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let exprs = vec![
        (
            "good".to_string(),
            r#"sum by (namespace, pod) (rate(container_memory_working_set_bytes{container!="", pod=~"a{1}"}[5m] offset 1h)) / on (namespace) group_left (pod) max(headroom_time_to_limit_seconds) > bool 1e3 or vector(0)"#.to_string(),
        ),
        (
            "typo".to_string(),
            "bottomk(10, min by (container) (headroom_time_to_limt_seconds))".to_string(),
        ),
    ];
    let unknown = unknown_metrics(&exprs, &known);
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with("typo: unknown metric `headroom_time_to_limt_seconds`"),
        "{unknown:?}"
    );
    assert_eq!(
        metric_names("histogram_quantile(0.9, sum by (le) (rate(headroom_poll_duration_seconds_bucket[1m]))) and up == 0"),
        BTreeSet::from(["headroom_poll_duration_seconds_bucket".to_string(), "up".to_string()])
    );
}

// ---------------------------------------------------------------------------------
// Dashboards and rules against a real Prometheus scraping headroom
// ---------------------------------------------------------------------------------

const ISTIO_POD: &str = "payment-service-7f8b9c6d4-xk2nm";

/// Three hours up to now of what cAdvisor and kube-state-metrics report: the
/// payment pod's istio-proxy, OOM-killed 2.5h ago and leaking again toward its 128Mi
/// limit since 90 minutes ago; its quiet app container; a checkout container
/// OOM-killed 20 minutes ago; and headroom's own container.
fn cluster_history() -> String {
    let now = {
        let t = unix_now();
        t - t % 30
    };
    let start = now - 3 * 3600;
    let oom = now - 150 * 60;
    let onset = now - 90 * 60;
    let checkout_oom = now - 20 * 60;
    let labels = |ns: &str, pod: &str, c: &str, extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [("namespace", ns), ("pod", pod), ("container", c)]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let series = |metric: &str, labels: Vec<(String, String)>| SeriesSpec {
        metric: metric.into(),
        labels,
        samples: vec![],
    };
    let ws = "container_memory_working_set_bytes";
    let limit = "kube_pod_container_resource_limits";
    let restarts = "kube_pod_container_status_restarts_total";
    let reason = "kube_pod_container_status_last_terminated_reason";
    let mut out = vec![
        // istio-proxy: filled its limit before the OOM kill, then a new incarnation.
        series(
            ws,
            labels("prod", ISTIO_POD, "istio-proxy", &[("id", "/pod/proxy-1")]),
        )
        .every(start, oom - 30, 30, |t| {
            64.0 * MI + (t - start) as f64 * 64.0 * MI / 1800.0
        }),
        series(
            ws,
            labels("prod", ISTIO_POD, "istio-proxy", &[("id", "/pod/proxy-2")]),
        )
        .every(oom, now, 30, |t| {
            64.0 * MI
                + (t - onset).max(0) as f64 * 25.0 * MI / 3600.0
                + ((t / 30) % 3) as f64 * 50_000.0
        }),
        series(restarts, labels("prod", ISTIO_POD, "istio-proxy", &[])).every(
            start,
            now,
            30,
            |t| if t < oom { 0.0 } else { 1.0 },
        ),
        series(
            reason,
            labels("prod", ISTIO_POD, "istio-proxy", &[("reason", "OOMKilled")]),
        )
        .every(oom, now, 30, |_| 1.0),
        series(
            ws,
            labels("prod", ISTIO_POD, "payment-service", &[("id", "/pod/app")]),
        )
        .every(start, now, 30, |t| {
            118.0 * MI + ((t / 30) % 4) as f64 * 100_000.0
        }),
        series(restarts, labels("prod", ISTIO_POD, "payment-service", &[])).every(
            start,
            now,
            30,
            |_| 0.0,
        ),
        // checkout: killed at its 256Mi limit 20 minutes ago.
        series(
            ws,
            labels(
                "shop",
                "checkout-6c5d8f-q2w9x",
                "checkout",
                &[("id", "/pod/checkout-1")],
            ),
        )
        .every(start, checkout_oom - 30, 30, |t| {
            100.0 * MI + (t - start) as f64 * 156.0 * MI / (checkout_oom - start) as f64
        }),
        series(
            ws,
            labels(
                "shop",
                "checkout-6c5d8f-q2w9x",
                "checkout",
                &[("id", "/pod/checkout-2")],
            ),
        )
        .every(checkout_oom, now, 30, |_| 100.0 * MI),
        series(
            restarts,
            labels("shop", "checkout-6c5d8f-q2w9x", "checkout", &[]),
        )
        .every(start, now, 30, |t| if t < checkout_oom { 2.0 } else { 3.0 }),
        series(
            reason,
            labels(
                "shop",
                "checkout-6c5d8f-q2w9x",
                "checkout",
                &[("reason", "OOMKilled")],
            ),
        )
        .every(start, now, 30, |_| 1.0),
        // headroom itself, as the chart deploys it.
        series(
            ws,
            labels(
                "monitoring",
                "headroom-6b9f7c8d5-p4k7z",
                "headroom",
                &[("id", "/pod/headroom")],
            ),
        )
        .every(start, now, 30, |t| {
            110.0 * MI + ((t / 30) % 5) as f64 * 200_000.0
        }),
    ];
    for (ns, pod, container, bytes) in [
        ("prod", ISTIO_POD, "istio-proxy", 128.0 * MI),
        ("prod", ISTIO_POD, "payment-service", 256.0 * MI),
        ("shop", "checkout-6c5d8f-q2w9x", "checkout", 256.0 * MI),
        (
            "monitoring",
            "headroom-6b9f7c8d5-p4k7z",
            "headroom",
            320.0 * MI,
        ),
    ] {
        out.push(
            series(limit, labels(ns, pod, container, &[("resource", "memory")])).every(
                start,
                now,
                30,
                move |_| bytes,
            ),
        );
    }
    openmetrics(&out)
}

/// A `headroom run` child process, killed on drop.
struct Headroom {
    child: std::process::Child,
    port: u16,
    _config: tempfile::NamedTempFile,
}

impl Headroom {
    fn start(config_yaml: &str, port: u16) -> Headroom {
        let (child, config) =
            common::headroom_run(config_yaml, &["--log-level", "warn"], Stdio::null());
        Headroom {
            child,
            port,
            _config: config,
        }
    }

    fn metrics(&self) -> String {
        let (status, body) = http_get(self.port, "/metrics").unwrap();
        assert_eq!(status, 200);
        body
    }
}

impl Drop for Headroom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rule_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in RULE_FILES {
        let rules: yaml_serde::Value =
            yaml_serde::from_str(&read(repo().join("deploy").join(file))).unwrap();
        for group in rules["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                out.push((
                    format!("deploy/{file}: {}", rule["alert"].as_str().unwrap_or("?")),
                    rule["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn every_dashboard_query_returns_data_from_prometheus_scraping_headroom() {
    // A webhook receiver that fails once (retried) and then takes every notification.
    let webhook = TestReceiver::start(vec![Reply::Status(500, vec![], "try again".into())]);
    let healthy_port = free_port();
    // A second headroom whose Prometheus is unreachable: its polls fail, as in an outage.
    let broken_port = free_port();
    let prometheus_yml = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: headroom\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{healthy_port}', '127.0.0.1:{broken_port}']\n"
    );
    let prometheus = TestPrometheus::start_with_config(&cluster_history(), &prometheus_yml);
    let healthy = Headroom::start(
        &format!(
            "prometheus:\n  url: {}\n  timeout: 5s\nstore:\n  lookback: 3h\n  resolution: 2s\npoll:\n  interval: 2s\nforecast:\n  warning_pending: 2s\n  critical_pending: 2s\n  pending_samples: 0\nserver:\n  listen_address: 127.0.0.1:{healthy_port}\nalerts:\n  retry_initial: 200ms\n  retry_max: 1s\nreceivers:\n  webhook:\n    - name: incident-bot\n      url: {}\n",
            prometheus.url(),
            webhook.url("/hook")
        ),
        healthy_port,
    );
    let broken = Headroom::start(
        &format!(
            "prometheus:\n  url: http://127.0.0.1:{}\n  timeout: 1s\npoll:\n  interval: 2s\nserver:\n  listen_address: 127.0.0.1:{broken_port}\n",
            free_port()
        ),
        broken_port,
    );
    wait_for("headroom to be ready", 90, || {
        matches!(http_get(healthy_port, "/readyz"), Ok((200, _))).then_some(())
    });
    wait_for("the broken headroom to serve /metrics", 30, || {
        http_get(broken_port, "/metrics")
            .ok()
            .filter(|(_, body)| body.contains("headroom_poll_errors_total"))
    });
    wait_for(
        "the istio-proxy alert to be retried and delivered",
        90,
        || (webhook.requests().len() >= 2).then_some(()),
    );

    // The variables, resolved as Grafana would, with the container that alerts.
    let preferred: BTreeMap<&str, &str> = [
        ("namespace", "prod"),
        ("pod", ISTIO_POD),
        ("container", "istio-proxy"),
        ("job", "headroom"),
    ]
    .into_iter()
    .collect();
    let mut queries = Vec::new();
    let mut variable_checks = Vec::new();
    for name in DASHBOARDS {
        let d = dashboard(name);
        let mut variables: BTreeMap<String, String> = BUILTIN_VARIABLES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for v in d["templating"]["list"].as_array().unwrap() {
            let var = v["name"].as_str().unwrap().to_string();
            match v["type"].as_str().unwrap() {
                "datasource" => {}
                "textbox" | "constant" | "custom" => {
                    variables.insert(var, v["query"].as_str().unwrap().to_string());
                }
                "query" if v["includeAll"] == true && v.get("allValue").is_some() => {
                    // As Grafana's default All: the identity label may be unused
                    // (no cluster label here), and All must then match every series.
                    let definition = v["definition"].as_str().unwrap();
                    assert_eq!(v["query"]["query"], definition, "{name}: variable {var}");
                    variables.insert(var, v["allValue"].as_str().unwrap().to_string());
                }
                "query" => {
                    let definition = v["definition"].as_str().unwrap();
                    assert_eq!(v["query"]["query"], definition, "{name}: variable {var}");
                    let value = preferred
                        .get(var.as_str())
                        .unwrap_or_else(|| panic!("{name}: no test value for variable {var}"));
                    variable_checks.push((
                        format!("{name}: variable {var}"),
                        substitute(definition, &variables),
                        value.to_string(),
                    ));
                    variables.insert(var, value.to_string());
                }
                other => panic!("{name}: variable {var} has type {other} the test does not know"),
            }
        }
        for q in panel_queries(name, &d) {
            queries.push(PanelQuery {
                expr: substitute(&q.expr, &variables),
                ..q
            });
        }
    }

    // Scraped series need a few scrapes before rate() has two samples: retry for a while.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut problems = Vec::new();
        for (place, definition, wanted) in &variable_checks {
            let (selector, label) = label_values_query(definition);
            let (status, body) = prometheus_api(
                prometheus.port,
                &format!(
                    "/api/v1/label/{label}/values?match[]={}",
                    url_encode(&selector)
                ),
            );
            let values: Vec<&str> = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if status != 200 || !values.contains(&wanted.as_str()) {
                problems.push(format!(
                    "{place}: `{definition}` gave {values:?}, not {wanted:?} ({status})"
                ));
            }
        }
        for q in &queries {
            if let Some(problem) = query_problem(prometheus.port, &q.expr, q.instant) {
                problems.push(format!("{}: `{}` {problem}", q.place, q.expr));
            }
        }
        if problems.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} dashboard queries fail against the real Prometheus:\n{}\n\nprometheus log:\n{}",
            problems.len(),
            problems.join("\n"),
            prometheus.log()
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // The rules' expressions are valid PromQL against the same data.
    for (place, expr) in rule_exprs() {
        let (status, body) = prometheus_api(
            prometheus.port,
            &format!("/api/v1/query?query={}", url_encode(&expr)),
        );
        assert!(
            status == 200 && body["status"] == "success",
            "{place}: `{expr}`: {body}"
        );
    }

    // Every metric a panel or rule names exists: in headroom's /metrics or among the
    // cAdvisor / kube-state-metrics names. A typo fails here even where `or vector(0)`
    // would hide it from the data check above.
    let exposition = format!("{}\n{}", healthy.metrics(), broken.metrics());
    let known = exposition_names(&exposition);
    let mut exprs: Vec<(String, String)> = Vec::new();
    for name in DASHBOARDS {
        let d = dashboard(name);
        exprs.extend(
            panel_queries(name, &d)
                .into_iter()
                .map(|q| (q.place, q.expr)),
        );
        for v in d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["type"] == "query")
        {
            let (selector, _) = label_values_query(v["definition"].as_str().unwrap());
            exprs.push((format!("{name}: variable {}", v["name"]), selector));
        }
    }
    exprs.extend(rule_exprs());
    let unknown = unknown_metrics(&exprs, &known);
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));

    // And the other way round: every headroom metric is shown or alerted on somewhere.
    let used: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| metric_names(e)).collect();
    let families: BTreeSet<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    for family in &families {
        let shown = used.iter().any(|u| {
            u == family
                || u.strip_prefix(family.as_str())
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        });
        assert!(
            shown,
            "headroom exports {family} but no dashboard or rule uses it"
        );
    }
    drop(broken);
    drop(healthy);
}

// ---------------------------------------------------------------------------------
// Alert rules
// ---------------------------------------------------------------------------------

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = require_binary("promtool", "prometheus");
    let deploy = repo().join("deploy");
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .args(RULE_FILES.map(|f| deploy.join(f)))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let tests = Command::new(&promtool)
        .args(["test", "rules", "prometheus-rules.test.yaml"])
        .current_dir(deploy.join("tests"))
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&tests.stdout),
        String::from_utf8_lossy(&tests.stderr)
    );
    assert!(
        tests.status.success() && out.contains("SUCCESS"),
        "promtool test rules:\n{out}"
    );

    // Every alert is unit-tested firing, and links to a runbook section that exists.
    let test_text = read(deploy.join("tests/prometheus-rules.test.yaml"));
    let runbook = read(repo().join("docs/runbook.md"));
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    for file in RULE_FILES {
        let text = read(deploy.join(file));
        let chart_copy = read(repo().join("deploy/helm/headroom/files").join(file));
        assert_eq!(
            chart_copy, text,
            "deploy/helm/headroom/files/{file} differs from deploy/{file}: copy it"
        );
        let rules: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
        for group in rules["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let alert = rule["alert"].as_str().unwrap();
                let url = rule["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{alert} has no runbook_url"));
                let section = url.strip_prefix("docs/runbook.md#").unwrap_or_else(|| {
                    panic!("{alert}: runbook_url {url} is not docs/runbook.md#section")
                });
                assert!(
                    anchors.contains(section),
                    "{alert}: docs/runbook.md has no section #{section} (has {anchors:?})"
                );
                assert!(
                    test_text.contains(&format!(
                        "alertname: {alert}\n        exp_alerts:\n          - exp_labels"
                    )),
                    "{alert} has no promtool unit test where it fires"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The Helm chart
// ---------------------------------------------------------------------------------

/// Rendered manifests, without NOTES.txt and empty templates, by template path.
fn manifests(rendered: &Value) -> Vec<(String, yaml_serde::Value)> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (path, text) in rendered.as_object().unwrap() {
        if path.ends_with("NOTES.txt") {
            continue;
        }
        for doc in yaml_serde::Deserializer::from_str(text.as_str().unwrap()) {
            let value = yaml_serde::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
            if !value.is_null() {
                out.push((path.clone(), value));
            }
        }
    }
    out
}

fn find<'a>(docs: &'a [(String, yaml_serde::Value)], kind: &str) -> &'a yaml_serde::Value {
    let found: Vec<_> = docs.iter().filter(|(_, d)| d["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind}, rendered {}",
        found.len()
    );
    &found[0].1
}

fn kinds(docs: &[(String, yaml_serde::Value)]) -> BTreeSet<String> {
    docs.iter()
        .map(|(_, d)| d["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Kinds whose schemas (CRDs of the Prometheus operator) kubernetes-validate does not
/// have: it warns about them, and the test checks them itself.
const CRD_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

/// `kubernetes-validate --strict` on every manifest, for the oldest Kubernetes the
/// chart supports and the newest the validator knows. The files are Helm's output as
/// is, so no YAML re-encoding changes what is checked (0440 is octal to Kubernetes,
/// a string to a YAML 1.2 parser).
fn kubernetes_validate(rendered: &Value) {
    let validator = require_pip_tool("kubernetes-validate", "kubernetes-validate");
    let docs = manifests(rendered);
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (path, text) in rendered.as_object().unwrap() {
        let text = text.as_str().unwrap();
        if path.ends_with("NOTES.txt") || text.trim().is_empty() {
            continue;
        }
        let file = dir.path().join(path.replace('/', "_"));
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    for version in [Some("1.25.0"), None] {
        let mut command = Command::new(&validator);
        command.arg("--strict");
        if let Some(v) = version {
            command.args(["--kubernetes-version", v]);
        }
        let output = command.args(&files).output().unwrap();
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "kubernetes-validate --strict {version:?} failed:\n{out}"
        );
        let mut passed = 0;
        for line in out.lines() {
            if line.starts_with("INFO") && line.contains(" passed for resource ") {
                passed += 1;
            } else if line.starts_with("WARN") {
                assert!(
                    CRD_KINDS
                        .iter()
                        .any(|k| line.contains(&format!("Couldn't find schema for kind {k} "))),
                    "unexpected warning from kubernetes-validate: {line}"
                );
            } else if !line.trim().is_empty() {
                panic!("unexpected kubernetes-validate output: {line}\n{out}");
            }
        }
        let crds = docs
            .iter()
            .filter(|(_, d)| CRD_KINDS.iter().any(|k| d["kind"] == *k))
            .count();
        assert_eq!(
            passed,
            docs.len() - crds,
            "every other manifest is validated:\n{out}"
        );
    }
}

/// The ConfigMap's headroom.yaml.
fn config_text(docs: &[(String, yaml_serde::Value)]) -> String {
    let configmap = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["headroom.yaml"].is_string())
        .expect("the config ConfigMap");
    configmap["data"]["headroom.yaml"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `headroom config check` on the ConfigMap's headroom.yaml, with `env` set as the
/// pod would have it: its output, or what it printed when it refused.
fn try_config_check(
    docs: &[(String, yaml_serde::Value)],
    env: &[(&str, &str)],
) -> Result<String, String> {
    let text = config_text(docs);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["config", "check"])
        .arg(file.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(printed)
    } else {
        Err(format!("{text}\n{printed}"))
    }
}

/// Writes the ConfigMap's headroom.yaml and runs `headroom config check` on it.
fn config_check(docs: &[(String, yaml_serde::Value)]) -> yaml_serde::Value {
    if let Err(e) = try_config_check(docs, &[]) {
        panic!("headroom config check rejects the chart's headroom.yaml:\n{e}");
    }
    yaml_serde::from_str(&config_text(docs)).unwrap()
}

/// Lints the chart with `values`, renders it, validates every manifest against the
/// Kubernetes schemas, and returns the manifests.
fn lint_render_validate(values: &Value, release: &str) -> Vec<(String, yaml_serde::Value)> {
    lint(values, release);
    let rendered = helm("render", values, release);
    kubernetes_validate(&rendered);
    manifests(&rendered)
}

fn lint(values: &Value, release: &str) {
    let report = helm("lint", values, release);
    assert_eq!(report["total_charts_linted"], 1, "{report}");
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "helm lint: {report}"
    );
    // Severity 1 is information (e.g. "icon is recommended"); warnings and errors fail.
    let serious: Vec<&Value> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
        .collect();
    assert!(
        serious.is_empty(),
        "helm lint --strict with {values}: {serious:?}"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .unwrap_or_else(|| panic!("not base64: {text}")) as u32;
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

fn receivers_config() -> Value {
    json!({
        "prometheus": {"url": "http://prometheus-operated.monitoring.svc:9090", "timeout": "20s"},
        "identity": {"extra_labels": ["cluster"]},
        "poll": {"interval": "1m"},
        "alerts": {
            "labels": {"team": "platform"},
            "dashboard_url": "https://grafana.example/d/headroom-container?var-namespace={namespace}&var-pod={pod}&var-container={container}"
        },
        "receivers": {
            "alertmanager": [{"name": "am", "url": "http://alertmanager-operated.monitoring.svc:9093", "bearer_token_file": "{{ .Values.secrets.mountPath }}/am-token"}],
            "slack": [{"name": "platform-slack", "url_file": "{{ .Values.secrets.mountPath }}/slack-url", "min_severity": "critical", "namespaces": ["prod*"]}],
            "webhook": [{"name": "incident-bot", "url_file": "{{ .Values.secrets.mountPath }}/webhook-url", "hmac_secret_file": "{{ .Values.secrets.mountPath }}/webhook-hmac", "containers": ["istio-proxy"]}]
        }
    })
}

fn everything_on(mount_path: &Path) -> Value {
    json!({
        "replicaCount": 2,
        "image": {"repository": "registry.example/platform/headroom", "tag": "0.1.0"},
        "config": receivers_config(),
        "secrets": {"mountPath": mount_path.to_str().unwrap()},
        "serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {
            "enabled": true,
            "forecastAlerts": true,
            "labels": {"release": "kube-prometheus-stack"},
            "runbookBaseUrl": "https://docs.example/headroom/runbook.md"
        },
        "networkPolicy": {
            "enabled": true,
            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                 "ports": [{"port": 9090, "protocol": "TCP"}, {"port": 9093, "protocol": "TCP"}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
            ]
        },
        "dashboards": {"enabled": true, "annotations": {"grafana_folder": "headroom"}},
        "podAnnotations": {"example.com/team": "platform"}
    })
}

fn check_deployment(docs: &[(String, yaml_serde::Value)], replicas: u64) -> yaml_serde::Value {
    check_workload(docs, "Deployment", replicas)
}

/// The Deployment or StatefulSet and its pod: secure, probed, serving 9464 behind the
/// Service.
fn check_workload(
    docs: &[(String, yaml_serde::Value)],
    kind: &str,
    replicas: u64,
) -> yaml_serde::Value {
    let workload = find(docs, kind).clone();
    assert_eq!(workload["spec"]["replicas"].as_u64(), Some(replicas));
    let pod = &workload["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(
        sc["capabilities"]["drop"],
        yaml_serde::from_str::<yaml_serde::Value>("[ALL]").unwrap()
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][resource].is_string(),
                "resources.{kind}.{resource} is set"
            );
        }
    }
    assert_eq!(c["ports"][0]["name"], "http-metrics");
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(9464));
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args[0], "run");
    assert!(
        args.contains(&"--config=/etc/headroom/headroom.yaml"),
        "{args:?}"
    );
    let service = find(docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "http-metrics");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(9464));
    workload
}

/// The listen address in the rendered config serves the container's port.
fn check_listen_port(config: &yaml_serde::Value) {
    let listen = config["server"]["listen_address"]
        .as_str()
        .unwrap_or("0.0.0.0:9464");
    assert!(
        listen.ends_with(":9464") && listen.starts_with("0.0.0.0"),
        "server.listen_address {listen}"
    );
}

#[test]
fn chart_with_default_values_lints_renders_validates_and_configures_headroom() {
    let values = json!({});
    let docs = lint_render_validate(&values, "headroom");
    assert_eq!(
        kinds(&docs),
        ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let deployment = check_deployment(&docs, 1);
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    assert_eq!(
        volumes.len(),
        1,
        "no Secret is mounted without one: {volumes:?}"
    );
    let config = config_check(&docs);
    check_listen_port(&config);
}

#[test]
fn chart_with_everything_on_renders_valid_manifests_rules_and_dashboards() {
    let mount = tempfile::tempdir().unwrap();
    let mut values = everything_on(mount.path());
    values["secrets"]["create"] = json!(true);
    values["secrets"]["data"] = json!({
        "am-token": "t0ken",
        "slack-url": "https://hooks.slack.example/services/T0/B0/x",
        "webhook-url": "https://bot.example/hook",
        "webhook-hmac": "s3cret"
    });
    let docs = lint_render_validate(&values, "obs");
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PrometheusRule",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    );
    let deployment = check_deployment(&docs, 2);

    // The chart-made Secret, mounted where the config's *_file keys point: write its
    // keys where the pod would see them and let headroom check the config.
    let secret = find(&docs, "Secret");
    assert_eq!(secret["metadata"]["name"], "obs-headroom-secrets");
    for (key, value) in secret["data"].as_mapping().unwrap() {
        std::fs::write(
            mount.path().join(key.as_str().unwrap()),
            base64_decode(value.as_str().unwrap()),
        )
        .unwrap();
    }
    let pod = &deployment["spec"]["template"]["spec"];
    let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "secrets" && m["mountPath"] == mount.path().to_str().unwrap()),
        "{mounts:?}"
    );
    assert!(pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v["secret"]["secretName"] == "obs-headroom-secrets"));
    let config = config_check(&docs);
    check_listen_port(&config);
    assert_eq!(
        config["receivers"]["slack"][0]["url_file"]
            .as_str()
            .unwrap(),
        mount.path().join("slack-url").to_str().unwrap()
    );

    // ServiceMonitor: honorLabels keeps namespace/pod/container as headroom exports them.
    let monitor = find(&docs, "ServiceMonitor");
    assert_eq!(
        monitor["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );

    // PrometheusRule: both files, aimed at this release's job, valid for promtool.
    let rule = find(&docs, "PrometheusRule");
    let spec = yaml_serde::to_string(&rule["spec"]).unwrap();
    assert!(
        spec.contains(r#"job="obs-headroom""#) && !spec.contains(r#"job="headroom""#),
        "{spec}"
    );
    assert!(
        spec.contains("runbook_url: https://docs.example/headroom/runbook.md#headroomdown"),
        "{spec}"
    );
    let groups: Vec<&str> = rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(groups, ["headroom.self", "headroom.forecast"]);
    let rules_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules_file.path(), &spec).unwrap();
    let promtool = require_binary("promtool", "prometheus");
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(rules_file.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the chart's PrometheusRule:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // NetworkPolicy: DNS plus exactly the egress configured.
    let policy = find(&docs, "NetworkPolicy");
    let egress = policy["spec"]["egress"].as_sequence().unwrap();
    assert_eq!(egress.len(), 3);
    assert_eq!(egress[0]["ports"][0]["port"].as_u64(), Some(53));

    // The dashboards ConfigMap, labelled for the Grafana sidecar, holds the files.
    let dashboards = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "obs-headroom-dashboards")
        .expect("the dashboards ConfigMap");
    assert_eq!(dashboards["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboards["metadata"]["annotations"]["grafana_folder"],
        "headroom"
    );
    // The files as they are: these values name cluster among the identity labels.
    for name in DASHBOARDS {
        let shipped = dashboards["data"][name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not in the ConfigMap"));
        assert_eq!(
            shipped.trim_end(),
            read(repo().join("dashboards").join(name)).trim_end(),
            "{name}"
        );
    }
    // Without a cluster identity label, the cluster variable is hidden (it could
    // only say "All"); the rest is the file.
    values["config"]["identity"] = json!({"extra_labels": []});
    let docs = manifests(&helm("render", &values, "obs"));
    let dashboards = docs
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "obs-headroom-dashboards")
        .expect("the dashboards ConfigMap");
    for name in DASHBOARDS {
        let shipped = dashboards["data"][name].as_str().unwrap();
        let source = read(repo().join("dashboards").join(name));
        assert_eq!(
            cluster_hide(shipped),
            cluster_hide(&source).map(|_| 2),
            "{name}: the cluster variable is hidden"
        );
        let shown = |text: &str| {
            let mut v: Value = serde_json::from_str(text).unwrap();
            for var in v["templating"]["list"].as_array_mut().into_iter().flatten() {
                if var["name"] == "cluster" {
                    var["hide"] = json!(0);
                }
            }
            v
        };
        assert_eq!(shown(shipped), shown(&source), "{name}: otherwise the file");
    }
}

/// The `hide` of a dashboard's `cluster` variable, if it has one.
fn cluster_hide(dashboard: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(dashboard).unwrap();
    v["templating"]["list"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == "cluster")
        .and_then(|var| var["hide"].as_i64())
}

#[test]
fn chart_with_an_existing_secret_mounts_it_and_creates_none() {
    let mount = tempfile::tempdir().unwrap();
    let mut values = everything_on(mount.path());
    values["secrets"]["existingSecret"] = json!("headroom-receivers");
    values["replicaCount"] = json!(1);
    let docs = lint_render_validate(&values, "headroom");
    assert!(
        !kinds(&docs).contains("Secret"),
        "no Secret is created: {:?}",
        kinds(&docs)
    );
    let deployment = check_deployment(&docs, 1);
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "headroom-receivers"),
        "{volumes:?}"
    );
    // The keys the user's Secret has, as the pod would see them.
    for key in ["am-token", "slack-url", "webhook-url", "webhook-hmac"] {
        std::fs::write(mount.path().join(key), "https://hooks.example/x").unwrap();
    }
    config_check(&docs);
    let rule = find(&docs, "PrometheusRule");
    assert!(yaml_serde::to_string(&rule["spec"])
        .unwrap()
        .contains(r#"job="headroom""#));
}

/// The pod template without what sharding adds to it (the shard's environment) or
/// changes (the config checksum, since the config gains sharding.mode).
fn pod_template_without_sharding(workload: &yaml_serde::Value) -> yaml_serde::Value {
    let mut template = workload["spec"]["template"].clone();
    template["metadata"]["annotations"]
        .as_mapping_mut()
        .unwrap()
        .shift_remove("checksum/config");
    template["spec"]["containers"][0]
        .as_mapping_mut()
        .unwrap()
        .shift_remove("env");
    template
}

#[test]
fn chart_with_three_shards_renders_a_statefulset_whose_pods_know_their_shard() {
    let mount = tempfile::tempdir().unwrap();
    let mut values = everything_on(mount.path());
    values["replicaCount"] = json!(1);
    values["secrets"]["existingSecret"] = json!("headroom-receivers");
    values["sharding"] = json!({"shards": 3, "mode": "namespace"});
    values["podDisruptionBudget"] = json!({"enabled": true});
    let docs = lint_render_validate(&values, "headroom");
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "StatefulSet"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "a StatefulSet instead of the Deployment"
    );
    let statefulset = check_workload(&docs, "StatefulSet", 3);
    let service = find(&docs, "Service");
    assert_eq!(statefulset["metadata"]["name"], "headroom");
    assert_eq!(
        statefulset["spec"]["serviceName"],
        service["metadata"]["name"]
    );
    assert_eq!(statefulset["spec"]["podManagementPolicy"], "Parallel");
    // The Service, the ServiceMonitor and the budget reach every shard.
    let selector = &statefulset["spec"]["selector"]["matchLabels"];
    assert_eq!(&service["spec"]["selector"], selector);
    assert_eq!(
        &find(&docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"],
        selector
    );
    let budget = find(&docs, "PodDisruptionBudget");
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(budget["spec"]["maxUnavailable"].as_u64(), Some(1));

    // Each pod's shard index is its own name; the count is the number of shards.
    let env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    assert_eq!(
        var("HEADROOM_SHARD_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    let count = var("HEADROOM_SHARD_COUNT")["value"].as_str().unwrap();
    assert_eq!(count, "3");

    // Apart from that, the same pod as the Deployment the chart renders unsharded.
    let mut unsharded = values.clone();
    unsharded["sharding"]["shards"] = json!(1);
    let unsharded_docs = manifests(&helm("render", &unsharded, "headroom"));
    assert!(!kinds(&unsharded_docs).contains("StatefulSet"));
    assert_eq!(
        pod_template_without_sharding(&statefulset),
        pod_template_without_sharding(find(&unsharded_docs, "Deployment"))
    );

    // headroom takes what each pod is given: the mode from the config, the index from
    // the pod's name. A fourth pod's name is refused, so the variables are really read.
    for key in ["am-token", "slack-url", "webhook-url", "webhook-hmac"] {
        std::fs::write(mount.path().join(key), "https://hooks.example/x").unwrap();
    }
    let config = config_check(&docs);
    assert_eq!(config["sharding"]["mode"], "namespace");
    assert!(config["sharding"]["index"].is_null() && config["sharding"]["count"].is_null());
    for ordinal in 0..4 {
        let pod_name = format!("headroom-{ordinal}");
        let pod_env = [
            ("HEADROOM_SHARD_INDEX", pod_name.as_str()),
            ("HEADROOM_SHARD_COUNT", count),
        ];
        let checked = try_config_check(&docs, &pod_env);
        if ordinal < 3 {
            if let Err(e) = checked {
                panic!("pod {pod_name} of 3 shards:\n{e}");
            }
        } else {
            let error = checked.expect_err("a fourth shard of three");
            assert!(
                error.contains("shard index 3 is not below the shard count 3"),
                "{error}"
            );
        }
    }
}

#[test]
fn chart_with_one_shard_renders_the_deployment_as_without_sharding() {
    let one = json!({"sharding": {"shards": 1, "mode": "namespace"}});
    lint(&one, "headroom");
    let rendered = helm("render", &one, "headroom");
    assert_eq!(
        rendered,
        helm("render", &json!({}), "headroom"),
        "one shard changes nothing"
    );
    let docs = manifests(&rendered);
    assert!(!kinds(&docs).contains("StatefulSet"));
    let deployment = check_deployment(&docs, 1);
    assert!(
        deployment["spec"]["template"]["spec"]["containers"][0]["env"].is_null(),
        "no shard environment"
    );
    assert!(config_check(&docs)["sharding"].is_null());
}

#[test]
fn chart_refuses_sharding_it_cannot_do() {
    for (values, expected) in [
        (
            json!({"replicaCount": 2, "sharding": {"shards": 3}}),
            "replicaCount > 1 with sharding.shards > 1 is not supported",
        ),
        (
            json!({"config": {"sharding": {"index": 0, "count": 2}}}),
            "set sharding.shards and sharding.mode, not config.sharding",
        ),
        (
            json!({"sharding": {"shards": 0}}),
            "sharding.shards must be a whole number of at least 1",
        ),
        (
            json!({"sharding": {"shards": 2, "mode": "cluster"}}),
            "sharding.mode must be pod or namespace",
        ),
    ] {
        let Err(error) = try_helm("render", &values, "headroom") else {
            panic!("rendered {values}");
        };
        assert!(error.contains(expected), "{values}: {error}");
    }
}

// ---------------------------------------------------------------------------------
// The container image
// ---------------------------------------------------------------------------------

/// No Docker engine runs here, so the Dockerfile is checked for what can be checked:
/// what it copies exists, the runtime stage has no shell step and runs as the user the
/// chart expects, on the port the chart probes.
#[test]
fn dockerfile_copies_what_exists_and_runs_as_the_charts_user() {
    let text = read(repo().join("deploy/Dockerfile"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let runtime = &lines[*stages.last().unwrap()..];
    assert!(
        runtime[0].contains("distroless"),
        "runtime image: {}",
        runtime[0]
    );
    assert!(
        runtime[0].contains(":nonroot"),
        "runtime image: {}",
        runtime[0]
    );
    assert!(
        !runtime.iter().any(|l| l.starts_with("RUN ")),
        "the runtime stage has no shell: {runtime:?}"
    );
    let values: yaml_serde::Value =
        yaml_serde::from_str(&read(repo().join("deploy/helm/headroom/values.yaml"))).unwrap();
    let uid = values["podSecurityContext"]["runAsUser"].as_u64().unwrap();
    assert!(
        runtime.contains(&format!("USER {uid}:{uid}").as_str()),
        "USER {uid}:{uid} in {runtime:?}"
    );
    assert!(runtime.contains(&"EXPOSE 9464"));
    for line in lines
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(
                repo().join(source).exists(),
                "{line}: {source} does not exist"
            );
        }
    }
    let ignore = read(repo().join("deploy/Dockerfile.dockerignore"));
    for needed in ["src", "benches", "config", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            "{needed} must not be ignored"
        );
    }
}

#[test]
fn chart_refuses_a_network_policy_that_would_cut_headroom_off_prometheus() {
    let values = json!({"networkPolicy": {"enabled": true}});
    let error =
        try_helm("render", &values, "headroom").expect_err("rendered a policy allowing only DNS");
    assert!(
        error.contains(
            "networkPolicy.enabled needs networkPolicy.egress rules that reach Prometheus"
        ),
        "{error}"
    );
    let none = json!({"prometheusRule": {"enabled": true, "selfAlerts": false}});
    let docs = manifests(&helm("render", &none, "headroom"));
    assert!(
        !kinds(&docs).contains("PrometheusRule"),
        "an empty PrometheusRule is not rendered"
    );
}
