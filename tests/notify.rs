//! Alert delivery against real parts: a real Alertmanager routing to a local webhook
//! receiver, and local receivers standing in for Slack and webhooks that assert exact
//! payloads and inject failures (5xx, 429 with Retry-After, slow answers, dropped
//! connections).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, wait_for, Reply, TestAlertmanager, TestReceiver};
use headroom::model::{Pattern, Severity};
use headroom::notify::alertmanager::Alertmanager;
use headroom::notify::slack::Slack;
use headroom::notify::webhook::{signature, Webhook};
use headroom::notify::{AlertSettings, Filter, Notifier, Receiver, RetryPolicy};
use headroom::report::ContainerReport;
use headroom::vocab::SecretValue;

const MI: f64 = 1048576.0;
/// 2026-03-19T14:50:00Z
const T0: i64 = 1_773_931_800_000;

fn report(container: &str, alert: Option<Severity>, at: i64) -> ContainerReport {
    ContainerReport {
        namespace: "prod".into(),
        pod: "payment-service-7f8b9c6d4-xk2nm".into(),
        container: container.into(),
        labels: BTreeMap::new(),
        working_set_bytes: 109.0 * MI,
        limit_bytes: Some(128.0 * MI),
        limit_source: None,
        use_ratio: Some(109.0 / 128.0),
        growth_bytes_per_second: Some(31.0 * MI / 3600.0),
        time_to_limit_seconds: alert.map(|_| 2280.0),
        time_to_limit_lower_seconds: alert.map(|_| 1860.0),
        time_to_limit_upper_seconds: alert.map(|_| 2820.0),
        severity: alert.unwrap_or(Severity::None),
        alert,
        pattern: Pattern::Leak,
        onset: headroom::vocab::Rfc3339::parse("2026-03-19T14:12:00Z"),
        growth_from_daily_peaks: false,
        previous_run_seconds: None,
        evaluated_at: headroom::vocab::Rfc3339(at),
        stale: false,
        sidecar: container == "istio-proxy",
        workload: None,
        changes: vec![],
        envoy: None,
        workload_peers: None,
        pod_pressure: None,
        long_history_hours: 0,
        segments: vec![],
    }
}

fn settings() -> AlertSettings {
    AlertSettings {
        alertname: "ContainerMemoryLimitForecast".into(),
        resend_interval: Duration::from_secs(60),
        resolved_retention: Duration::from_secs(900),
        poll_interval: Duration::from_secs(30),
        extra_labels: [("team".to_string(), "platform".to_string())].into(),
        runbook_url: Some("https://runbooks.example/memory#{container}".into()),
        dashboard_url: None,
        prometheus_url: "http://prometheus:9090/".into(),
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(1),
        capacity: 100,
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn history() -> Vec<(i64, f64)> {
    (0..24)
        .map(|i| (T0 - (24 - i) * 300_000, (64.0 + 2.0 * i as f64) * MI))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_alertmanager_and_come_out_of_its_routing() {
    let hook = TestReceiver::start(vec![]);
    let am = TestAlertmanager::start(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname, namespace, pod, container]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
        hook.url("/from-alertmanager")
    ));
    let receiver: Arc<dyn Receiver> = Arc::new(Alertmanager {
        name: "am-0".into(),
        url: reqwest::Url::parse(&format!("{}/", am.url())).unwrap(),
        http: http(),
        bearer_token: None,
        basic_auth: None,
        timeout: Duration::from_secs(5),
        filter: Filter::default(),
    });
    let mut notifier = Notifier::start(
        settings(),
        vec![receiver],
        fast(),
        Duration::from_secs(5),
        None,
    );
    let now = chrono::Utc::now().timestamp_millis();
    // Alertmanager wants alerts of now, so the growth began 38 minutes before it
    // (an onset of another day names its day in the summary; near midnight it may).
    let onset = headroom::vocab::Rfc3339(now - 38 * 60_000);
    let sidecar = ContainerReport {
        onset: Some(onset),
        ..report("istio-proxy", Some(Severity::Critical), now)
    };
    notifier.publish(
        &[sidecar, report("payment-service", None, now)],
        now,
        |_| None,
    );

    let firing = wait_for("Alertmanager to route the firing alert", 30, || {
        hook.requests()
            .into_iter()
            .map(|r| r.json())
            .find(|j| j["status"] == "firing")
    });
    let alert = &firing["alerts"][0];
    assert_eq!(
        firing["alerts"].as_array().unwrap().len(),
        1,
        "only the sidecar alerts"
    );
    assert_eq!(alert["labels"]["alertname"], "ContainerMemoryLimitForecast");
    assert_eq!(alert["labels"]["container"], "istio-proxy");
    assert_eq!(alert["labels"]["namespace"], "prod");
    assert_eq!(alert["labels"]["pod"], "payment-service-7f8b9c6d4-xk2nm");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["team"], "platform");
    assert_eq!(alert["labels"]["sidecar"], "true");
    assert_eq!(
        alert["annotations"]["summary"],
        format!(
            "istio-proxy in prod/payment-service-7f8b9c6d4-xk2nm will reach its 128Mi limit in ~38m (90% interval 31m–47m); growth +31Mi/h began {}",
            onset.clock_at(now)
        )
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://runbooks.example/memory#istio-proxy"
    );
    assert_eq!(alert["annotations"]["time_to_limit_seconds"], "2280");
    assert!(alert["generatorURL"]
        .as_str()
        .unwrap()
        .starts_with("http://prometheus:9090/graph?g0.expr="));

    // amtool sees it too.
    let amtool = common::require_binary("amtool", "prometheus-alertmanager");
    let out = std::process::Command::new(amtool)
        .args([
            "alert",
            "query",
            "--alertmanager.url",
            &am.url(),
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["labels"]["container"], "istio-proxy", "{listed}");

    // Resolved at the real now: Alertmanager keeps an alert whose endsAt lies ahead.
    let later = chrono::Utc::now().timestamp_millis();
    notifier.publish(
        &[
            report("istio-proxy", None, later),
            report("payment-service", None, later),
        ],
        later,
        |_| None,
    );
    let resolved = wait_for("Alertmanager to route the resolution", 30, || {
        hook.requests()
            .into_iter()
            .map(|r| r.json())
            .find(|j| j["status"] == "resolved")
    });
    assert_eq!(resolved["alerts"][0]["labels"]["container"], "istio-proxy");
    notifier.shutdown().await;
}

fn slack(url: String, timeout: Duration) -> Arc<dyn Receiver> {
    Arc::new(Slack {
        name: "platform-slack".into(),
        url: SecretValue::Inline(url),
        http: http(),
        timeout,
        filter: Filter::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_exact_block_kit_and_survives_every_failure() {
    // 500, then 429 with Retry-After: 1, then a dropped connection, then an answer
    // slower than the timeout, then success.
    let hook = TestReceiver::start(vec![
        Reply::Status(500, vec![], "internal_error".into()),
        Reply::Status(
            429,
            vec![("Retry-After".into(), "1".into())],
            "rate_limited".into(),
        ),
        Reply::Drop,
        Reply::Slow(Duration::from_secs(3)),
    ]);
    let mut notifier = Notifier::start(
        settings(),
        vec![slack(
            hook.url("/services/T000/B000/XXXX"),
            Duration::from_secs(1),
        )],
        fast(),
        Duration::from_secs(5),
        None,
    );
    let h = history();
    notifier.publish(
        &[report("istio-proxy", Some(Severity::Critical), T0)],
        T0,
        |_| Some(&h),
    );

    let requests = wait_for("five attempts", 30, || {
        let r = hook.requests();
        (r.len() >= 5).then_some(r)
    });
    // Give a sixth (wrong) attempt the chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        hook.requests().len(),
        5,
        "delivered once, after four failures"
    );
    let gap = requests[2].at.duration_since(requests[1].at);
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After honoured: {gap:?}"
    );
    assert!(requests
        .iter()
        .all(|r| r.path == "/services/T000/B000/XXXX"));
    let expected = serde_json::json!({
        "text": "CRITICAL: istio-proxy in prod/payment-service-7f8b9c6d4-xk2nm will reach its 128Mi limit in ~38m (90% interval 31m–47m); growth +31Mi/h began 14:12",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle: *CRITICAL* istio-proxy in prod/payment-service-7f8b9c6d4-xk2nm will reach its 128Mi limit in ~38m (90% interval 31m–47m); growth +31Mi/h began 14:12"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Working set*\n109Mi of 128Mi (85%)"},
                {"type": "mrkdwn", "text": "*Time to limit*\n~38m (90% interval 31m–47m)"},
                {"type": "mrkdwn", "text": "*Growth*\n+31Mi/h"},
                {"type": "mrkdwn", "text": "*Pattern*\nleak since 2026-03-19T14:12:00Z"}
            ]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "last hours vs limit `▅▅▅▅▅▅▅▅▅▅▆▆▆▆▆▆▆▆▆▇▇▇▇▇`"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://runbooks.example/memory#istio-proxy|Runbook> · <http://prometheus:9090/graph?g0.expr=container_memory_working_set_bytes%7Bnamespace%3D%22prod%22%2Cpod%3D%22payment-service-7f8b9c6d4-xk2nm%22%2Ccontainer%3D%22istio-proxy%22%7D&g0.tab=0&g0.range_input=6h|Prometheus>"}]}
        ]
    });
    assert_eq!(requests[4].json(), expected);
    assert_block_kit(&requests[4].json());

    // A resend is not a Slack message; the resolution is.
    notifier.publish(
        &[report(
            "istio-proxy",
            Some(Severity::Critical),
            T0 + 120_000,
        )],
        T0 + 120_000,
        |_| Some(&h),
    );
    notifier.publish(
        &[report("istio-proxy", None, T0 + 150_000)],
        T0 + 150_000,
        |_| Some(&h),
    );
    let resolved = wait_for("the resolution message", 10, || {
        let r = hook.requests();
        (r.len() >= 6).then(|| r[5].json())
    });
    assert!(
        resolved["text"]
            .as_str()
            .unwrap()
            .starts_with("RESOLVED: istio-proxy in prod/"),
        "{resolved}"
    );
    assert_eq!(
        resolved["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .next(),
        Some(":white_check_mark:")
    );
    assert_block_kit(&resolved);
    notifier.shutdown().await;
    assert_eq!(hook.requests().len(), 6, "nothing sent twice");
}

/// What Slack's Block Kit accepts of an incoming-webhook message (what the test
/// receiver checks, as Slack would, before calling a payload delivered): at most 50
/// blocks; a section's text at most 3000 characters and at most 10 fields of 2000;
/// a context at most 10 elements; the top-level `text` present; no legacy
/// attachments beside the blocks (the message would show twice); and every `<`
/// in mrkdwn text opening a link (`<http…|…>`), every `&` an escape.
fn assert_block_kit(payload: &serde_json::Value) {
    let chars = |v: &serde_json::Value| v.as_str().map_or(0, |t| t.chars().count());
    let text = payload["text"].as_str().expect("a top-level text fallback");
    assert!(!text.is_empty() && text.chars().count() <= 40_000);
    assert!(
        payload.get("attachments").is_none(),
        "blocks and attachments both: {payload}"
    );
    let blocks = payload["blocks"].as_array().expect("top-level blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    let mut texts = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("section") => {
                if let Some(t) = b.get("text") {
                    assert!(
                        chars(&t["text"]) <= 3000,
                        "section text {}",
                        chars(&t["text"])
                    );
                    texts.push(t["text"].clone());
                }
                if let Some(fields) = b.get("fields").and_then(|f| f.as_array()) {
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert!(chars(&f["text"]) <= 2000, "field {}", chars(&f["text"]));
                        texts.push(f["text"].clone());
                    }
                }
            }
            Some("context") => {
                let elements = b["elements"].as_array().unwrap();
                assert!(elements.len() <= 10);
                for e in elements {
                    assert!(chars(&e["text"]) <= 3000);
                    texts.push(e["text"].clone());
                }
            }
            other => panic!("unexpected block {other:?}"),
        }
    }
    for t in texts {
        let t = t.as_str().unwrap();
        for (i, _) in t.match_indices('<') {
            assert!(t[i..].starts_with("<http"), "an unescaped < in {t:?}");
        }
        for (i, _) in t.match_indices('&') {
            let rest = &t[i..];
            let escape = ["&amp;", "&lt;", "&gt;"]
                .iter()
                .any(|e| rest.starts_with(e));
            // Inside a link's URL a query's & is the URL's own.
            let in_link = t[..i].rfind('<') > t[..i].rfind('>');
            assert!(escape || in_link, "an unescaped & in {t:?}");
        }
    }
}

/// Issue 16: a summary of 10,000 characters, with `<`, `>` and `&` in it, reaches
/// Slack as a message Block Kit accepts: escaped, and cut with an ellipsis where a
/// block would overflow; the fallback text says it whole enough to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_a_message_within_block_kit_limits_whatever_the_text() {
    let hook = TestReceiver::start(vec![]);
    let mut notifier = Notifier::start(
        settings(),
        vec![slack(hook.url("/services/T/B/X"), Duration::from_secs(1))],
        fast(),
        Duration::from_secs(5),
        None,
    );
    let long = format!("<side&car>{}", "x".repeat(10_000));
    let mut r = report(&long, Some(Severity::Critical), T0);
    r.pod = "p<&>".into();
    let h = history();
    notifier.publish(&[r], T0, |_| Some(&h));
    let payload = wait_for("the Slack message", 10, || {
        hook.requests().first().map(|r| r.json())
    });
    notifier.shutdown().await;
    assert_block_kit(&payload);
    let head = payload["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        head.starts_with(":red_circle: *CRITICAL* &lt;side&amp;car&gt;xxx"),
        "{head}"
    );
    assert!(
        head.ends_with('…') && head.chars().count() == 3000,
        "{}",
        head.chars().count()
    );
    assert!(payload["text"].as_str().unwrap().ends_with('…'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_no_service_is_permanent_and_counted() {
    let hook = TestReceiver::start(vec![Reply::Status(404, vec![], "no_service".into())]);
    let telemetry = Arc::new(headroom::telemetry::Telemetry::new(
        &[],
        headroom::telemetry::ExportRules {
            min_use: 0.8,
            max_containers: 10,
        },
    ));
    let mut notifier = Notifier::start(
        settings(),
        vec![slack(hook.url("/services/gone"), Duration::from_secs(2))],
        fast(),
        Duration::from_secs(5),
        Some(telemetry.clone()),
    );
    notifier.publish(
        &[report("istio-proxy", Some(Severity::Critical), T0)],
        T0,
        |_| None,
    );
    wait_for("the refusal to be counted", 10, || {
        telemetry
            .render()
            .contains(r#"headroom_notifications_total{outcome="failed_permanent",receiver="platform-slack"} 1"#)
            .then_some(())
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.requests().len(), 1, "not retried");
    assert!(telemetry.render().contains(
        r#"headroom_notification_failures_total{reason="http_4xx",receiver="platform-slack"} 1"#
    ));
    notifier.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_payload_is_versioned_signed_and_exact() {
    let hook = TestReceiver::start(vec![]);
    let receiver: Arc<dyn Receiver> = Arc::new(Webhook {
        name: "incident-bot".into(),
        url: SecretValue::Inline(hook.url("/hook")),
        http: http(),
        headers: vec![("X-Team".into(), "platform".into())],
        hmac_secret: Some(SecretValue::Inline("s3cret".into())),
        timeout: Duration::from_secs(2),
        filter: Filter::default(),
    });
    let mut notifier = Notifier::start(
        settings(),
        vec![receiver],
        fast(),
        Duration::from_secs(5),
        None,
    );
    notifier.publish(
        &[report("istio-proxy", Some(Severity::Warning), T0)],
        T0,
        |_| None,
    );
    let got = wait_for("the webhook", 10, || hook.requests().into_iter().next());
    assert_eq!(got.header("X-Team"), Some("platform"));
    assert_eq!(got.header("Content-Type"), Some("application/json"));
    assert_eq!(
        got.header("X-Headroom-Signature"),
        Some(signature(b"s3cret", got.body.as_bytes()).as_str())
    );
    let expected = serde_json::json!({
        "version": "1",
        "receiver": "incident-bot",
        "status": "firing",
        "event": "fired",
        "alert": {
            "labels": {
                "alertname": "ContainerMemoryLimitForecast",
                "container": "istio-proxy",
                "namespace": "prod",
                "pod": "payment-service-7f8b9c6d4-xk2nm",
                "severity": "warning",
                "sidecar": "true",
                "team": "platform"
            },
            "annotations": {
                "summary": "istio-proxy in prod/payment-service-7f8b9c6d4-xk2nm will reach its 128Mi limit in ~38m (90% interval 31m–47m); growth +31Mi/h began 14:12",
                "description": "working set 109Mi of 128Mi (85%); growth +31Mi/h; since 2026-03-19T14:12:00Z; limit in ~38m (90% interval 31m–47m); pattern leak",
                "time_to_limit_seconds": "2280",
                "runbook_url": "https://runbooks.example/memory#istio-proxy"
            },
            "starts_at": "2026-03-19T14:50:00Z",
            "ends_at": null,
            "generator_url": "http://prometheus:9090/graph?g0.expr=container_memory_working_set_bytes%7Bnamespace%3D%22prod%22%2Cpod%3D%22payment-service-7f8b9c6d4-xk2nm%22%2Ccontainer%3D%22istio-proxy%22%7D&g0.tab=0&g0.range_input=6h",
            "namespace": "prod",
            "pod": "payment-service-7f8b9c6d4-xk2nm",
            "container": "istio-proxy",
            "severity": "warning",
            "previous_severity": null,
            "working_set_bytes": 109.0 * MI,
            "limit_bytes": 128.0 * MI,
            "use_ratio": 109.0 / 128.0,
            "growth_bytes_per_second": 31.0 * MI / 3600.0,
            "time_to_limit_seconds": 2280.0,
            "time_to_limit_lower_seconds": 1860.0,
            "time_to_limit_upper_seconds": 2820.0,
            "pattern": "leak",
            "onset": "2026-03-19T14:12:00Z",
            "evaluated_at": "2026-03-19T14:50:00Z"
        }
    });
    assert_eq!(got.json(), expected);
    notifier.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_outage_loses_nothing_and_repeats_nothing() {
    // The endpoint is down (nothing listens) while A fires, B fires and resolves.
    let port = free_port();
    let receiver: Arc<dyn Receiver> = Arc::new(Webhook {
        name: "bot".into(),
        url: SecretValue::Inline(format!("http://127.0.0.1:{port}/hook")),
        http: http(),
        headers: vec![],
        hmac_secret: None,
        timeout: Duration::from_secs(1),
        filter: Filter::default(),
    });
    let mut notifier = Notifier::start(
        settings(),
        vec![receiver],
        fast(),
        Duration::from_secs(5),
        None,
    );
    use Severity::{Critical, Warning};
    let poll = |n: &mut Notifier, states: &[(&str, Option<Severity>)], t: i64| {
        let reports: Vec<_> = states.iter().map(|(c, a)| report(c, *a, t)).collect();
        n.publish(&reports, t, |_| None);
    };
    poll(
        &mut notifier,
        &[("a", Some(Warning)), ("b", Some(Warning))],
        T0,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    poll(
        &mut notifier,
        &[("a", Some(Critical)), ("b", Some(Critical))],
        T0 + 30_000,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    poll(
        &mut notifier,
        &[("a", Some(Critical)), ("b", None)],
        T0 + 60_000,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = Instant::now();
    let hook = TestReceiver::start_at(port, vec![]);
    let got = wait_for("delivery after the outage", 15, || {
        let r = hook.requests();
        (r.len() >= 2).then_some(r)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.requests().len(), 2, "nothing twice");
    let mut states: Vec<(String, String, String)> = got
        .iter()
        .map(|r| {
            let j = r.json();
            (
                j["alert"]["container"].as_str().unwrap().to_string(),
                j["status"].as_str().unwrap().to_string(),
                j["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec![
            ("a".into(), "firing".into(), "escalated".into()),
            ("b".into(), "resolved".into(), "resolved".into()),
        ]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "backoff is capped at 1s here"
    );
    notifier.shutdown().await;
}

#[test]
fn receiver_urls_never_reach_the_logs() {
    // Nothing listens on this port: every delivery fails and is logged.
    let port = free_port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "demo",
            "--speed",
            "3000",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(["--log-level", "debug"])
        .args([
            "--webhook-url",
            &format!("http://127.0.0.1:{port}/hooks/TOKEN-abc123"),
        ])
        .args([
            "--slack-url",
            &format!("http://127.0.0.1:{port}/services/T0/B0/SLACKSECRET"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("delivery failed; will retry"),
        "deliveries were attempted and failed: {stderr}"
    );
    assert!(
        stderr.contains("receiver=\"demo-webhook\"") || stderr.contains("receiver=demo-webhook"),
        "{stderr}"
    );
    for secret in ["TOKEN-abc123", "SLACKSECRET", "/hooks/", "/services/"] {
        assert!(!stderr.contains(secret), "{secret} leaked into the logs");
        assert!(!stdout.contains(secret), "{secret} leaked into the output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sending_the_same_alert_make_one_notification() {
    let hook = TestReceiver::start(vec![]);
    let am = TestAlertmanager::start(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname, namespace, pod, container]\n  group_wait: 2s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n",
        hook.url("/from-alertmanager")
    ));
    let replica = || {
        let receiver: Arc<dyn Receiver> = Arc::new(Alertmanager {
            name: "am".into(),
            url: reqwest::Url::parse(&format!("{}/", am.url())).unwrap(),
            http: http(),
            bearer_token: None,
            basic_auth: None,
            timeout: Duration::from_secs(5),
            filter: Filter::default(),
        });
        Notifier::start(
            settings(),
            vec![receiver],
            fast(),
            Duration::from_secs(5),
            None,
        )
    };
    let (mut a, mut b) = (replica(), replica());
    let now = chrono::Utc::now().timestamp_millis();
    // The two replicas evaluate a moment apart, as real ones do.
    a.publish(
        &[report("istio-proxy", Some(Severity::Critical), now)],
        now,
        |_| None,
    );
    b.publish(
        &[report("istio-proxy", Some(Severity::Critical), now + 700)],
        now + 700,
        |_| None,
    );
    wait_for("Alertmanager's notification", 30, || {
        hook.requests().into_iter().next()
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "Alertmanager de-duplicated the HA pair");
    assert_eq!(requests[0].json()["alerts"].as_array().unwrap().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn the_demo_drains_its_notifications_before_exiting() {
    // A slow webhook: when the run ends, notifications are still queued, and only
    // the drain on shutdown delivers them.
    let hook = TestReceiver::start(
        (0..20)
            .map(|_| Reply::Slow(Duration::from_millis(400)))
            .collect(),
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "demo",
            "--speed",
            "3000",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(["--webhook-url", &hook.url("/hook")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<(String, String)> = hook
        .requests()
        .iter()
        .map(|r| {
            let j = r.json();
            (
                j["alert"]["container"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                j["event"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("istio-proxy".to_string(), "fired".to_string()),
            ("istio-proxy".to_string(), "oom_kill".to_string()),
            ("istio-proxy".to_string(), "updated".to_string()),
        ],
        "fired and the attributed kill, each once, the kill drained; the restarted sidecar \
         leaks on the course of the run before, so its alert goes on, and its time to \
         limit (0 at the kill, ~2h after the restart) is told once"
    );
}
