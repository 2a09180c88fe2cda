//! The API through `router(state)`, without a socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tokio::sync::watch;
use tower::ServiceExt;

use super::{router, AppState, ReportRequest, Wanted};
use super::{LongHistory, Snapshot};
use crate::model::{Pattern, Severity};
use crate::report::ContainerReport;
use crate::telemetry::{ExportRules, Telemetry};

fn report(ns: &str, container: &str, alert: Option<Severity>, use_ratio: f64) -> ContainerReport {
    ContainerReport {
        namespace: ns.into(),
        pod: "p-1".into(),
        container: container.into(),
        labels: Default::default(),
        working_set_bytes: use_ratio * 100.0,
        limit_bytes: Some(100.0),
        limit_source: None,
        use_ratio: Some(use_ratio),
        growth_bytes_per_second: Some(1.0),
        time_to_limit_seconds: alert.map(|_| 600.0),
        time_to_limit_lower_seconds: alert.map(|_| 500.0),
        time_to_limit_upper_seconds: alert.map(|_| 700.0),
        severity: alert.unwrap_or(Severity::None),
        alert,
        pattern: if alert.is_some() {
            Pattern::Leak
        } else {
            Pattern::Stable
        },
        onset: crate::vocab::Rfc3339::parse("2026-03-19T14:12:00Z"),
        growth_from_daily_peaks: false,
        previous_run_seconds: None,
        evaluated_at: crate::vocab::Rfc3339::parse("2026-03-19T14:30:00Z").unwrap(),
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

fn state(snapshot: Snapshot) -> (AppState, watch::Sender<Arc<Snapshot>>) {
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let telemetry = Arc::new(Telemetry::new(
        &[],
        ExportRules {
            min_use: 0.8,
            max_containers: 100,
        },
    ));
    (
        AppState {
            snapshots: rx,
            telemetry,
            request_timeout: Duration::from_secs(5),
            reloads: None,
            reports: None,
        },
        tx,
    )
}

fn fleet() -> Snapshot {
    Snapshot {
        evaluated_at: Some(1_773_930_600_000),
        last_success: Some(1_773_930_600_000),
        last_error: None,
        stale: false,
        reports: vec![
            report("prod", "istio-proxy", Some(Severity::Critical), 0.9),
            report("prod", "payment-service", None, 0.46),
            report("batch", "worker", None, 0.85),
        ],
        containers: 3,
        histories: Default::default(),
        oom_kills: vec![],
        new_oom_kills: vec![],
        transitions: vec![],
        long_history: Some(LongHistory {
            days_read: 3.5,
            days: 14.0,
            complete: false,
        }),
    }
}

/// The containers of a `/api/v1/forecasts` answer, in its order.
fn names(body: &str) -> Vec<String> {
    serde_json::from_str::<Vec<serde_json::Value>>(body)
        .unwrap()
        .iter()
        .map(|r| r["container"].as_str().unwrap().to_string())
        .collect()
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn forecasts_filter_by_namespace_severity_and_use() {
    let (state, _tx) = state(fleet());
    let app = router(state);
    let (status, body) = get(&app, "/api/v1/forecasts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&body), ["istio-proxy", "payment-service", "worker"]);
    let (_, body) = get(&app, "/api/v1/forecasts?namespace=prod").await;
    assert_eq!(names(&body), ["istio-proxy", "payment-service"]);
    let (_, body) = get(&app, "/api/v1/forecasts?severity=critical").await;
    assert_eq!(names(&body), ["istio-proxy"]);
    let (_, body) = get(&app, "/api/v1/forecasts?min_use=0.8").await;
    assert_eq!(names(&body), ["istio-proxy", "worker"]);
    // Pages, most urgent first, with the count of all that matched.
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/v1/forecasts?limit=1&offset=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "3");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(names(&String::from_utf8_lossy(&body)), ["payment-service"]);
    let (status, _) = get(&app, "/api/v1/forecasts?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_parameters_and_paths_answer_json_errors() {
    let (state, _tx) = state(fleet());
    let app = router(state);
    let (status, body) = get(&app, "/api/v1/forecasts?severity=urgent").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"error":"severity \"urgent\" is not one of none, warning, critical"}"#
    );
    let (status, body) = get(&app, "/api/v1/forecasts?min_use=lots").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with(r#"{"error":"Failed to deserialize query string"#),
        "{body}"
    );
    let (status, body) = get(&app, "/api/v1/forecasts?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown field `colour`"), "{body}");
    let (status, body) = get(&app, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"error":"no such path: /nope"}"#);
    let (status, body) = get(&app, "/api/v1/forecasts/prod/p-1/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        r#"{"error":"no container prod/p-1/missing is tracked"}"#
    );
}

#[tokio::test]
async fn detail_readiness_health_and_page() {
    let (state, tx) = state(Snapshot::default());
    let app = router(state);
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        r#"{"ready":false,"reason":"no poll has completed yet"}"#
    );
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);

    tx.send(Arc::new(fleet())).unwrap();
    assert_eq!(
        get(&app, "/readyz").await,
        (
            StatusCode::OK,
            r#"{"long_history":{"complete":false,"days":14.0,"days_read":3.5},"ready":true}"#
                .into()
        )
    );
    let (status, body) = get(&app, "/api/v1/forecasts/prod/p-1/istio-proxy").await;
    assert_eq!(status, StatusCode::OK);
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["forecast"]["alert"], "critical");
    assert!(detail["history"].is_null());

    let (status, body) = get(&app, "/api/v1/pods/prod/p-1").await;
    assert_eq!(status, StatusCode::OK);
    let pod: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(pod["containers"].as_array().unwrap().len(), 2);
    assert_eq!(pod["sum_of_limits_bytes"], 200.0);
    assert_eq!(
        get(&app, "/api/v1/pods/prod/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, page) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("prod/p-1/istio-proxy") && page.contains("badge critical"));
    let first = page.find("istio-proxy").unwrap();
    assert!(
        first < page.find("payment-service").unwrap(),
        "most urgent first"
    );

    let mut stale = fleet();
    stale.stale = true;
    stale.last_error = Some("cannot reach Prometheus".into());
    tx.send(Arc::new(stale)).unwrap();
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("forecasts are stale: cannot reach Prometheus"));
}

#[tokio::test]
async fn metrics_export_containers_at_risk_and_drop_those_gone() {
    let (state, _tx) = state(fleet());
    state.telemetry.publish(&fleet().reports);
    let app = router(state.clone());
    let (_, text) = get(&app, "/metrics").await;
    assert!(text.contains(r#"headroom_time_to_limit_seconds{container="istio-proxy",namespace="prod",pod="p-1",sidecar="true"} 600"#), "{text}");
    assert!(text.contains(r#"headroom_alert_state{container="istio-proxy",namespace="prod",pod="p-1",severity="critical",sidecar="true"} 1"#));
    assert!(
        text.contains(
            r#"headroom_working_set_bytes{container="worker",namespace="batch",pod="p-1",sidecar="false"} 85"#
        ),
        "85% use is exported"
    );
    assert!(
        !text.contains(r#"container="payment-service""#),
        "quiet and 46% used: not exported"
    );
    assert!(text.contains("headroom_build_info{version="));

    state.telemetry.publish(&fleet().reports[1..]);
    let (_, text) = get(&app, "/metrics").await;
    assert!(
        !text.contains(r#"container="istio-proxy""#),
        "series of a gone container are removed:\n{text}"
    );
    assert!(text.contains("headroom_containers_exported 1"));
}

/// The same pod name in two clusters: the pod view asks which, and shows each one's
/// containers and kills alone when told.
#[tokio::test]
async fn a_pod_tracked_in_two_clusters_is_asked_for_by_its_labels() {
    let mut snapshot = fleet();
    snapshot.reports.retain(|r| r.namespace == "prod");
    for (r, cluster) in snapshot.reports.iter_mut().zip(["a", "b"]) {
        r.labels.insert("cluster".into(), cluster.into());
    }
    let mut kill =
        crate::explain::attribute(1_773_930_000_000, "prod", "p-1", "payment-service", vec![]);
    kill.labels.insert("cluster".into(), "b".into());
    snapshot.oom_kills = vec![kill];
    let (state, _tx) = state(snapshot);
    let app = router(state);
    let (status, body) = get(&app, "/api/v1/pods/prod/p-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("tracked in 2 places; say which: ?cluster=a or ?cluster=b"),
        "{body}"
    );
    for (cluster, container, kills) in [("a", "istio-proxy", 0), ("b", "payment-service", 1)] {
        let (status, body) = get(&app, &format!("/api/v1/pods/prod/p-1?cluster={cluster}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let pod: serde_json::Value = serde_json::from_str(&body).unwrap();
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{body}");
        assert_eq!(containers[0]["container"], container);
        assert_eq!(pod["oom_kills"].as_array().unwrap().len(), kills, "{body}");
    }
    assert_eq!(
        get(&app, "/api/v1/pods/prod/p-1?cluster=c").await.0,
        StatusCode::NOT_FOUND
    );
}

/// A poll that reported only the containers worth it: what else a request wants
/// is asked of the service, which answers from its latest evaluation; what the
/// poll reported (anything at warning or above among it) is served as it is.
#[tokio::test]
async fn what_a_poll_did_not_report_is_asked_for() {
    let mut snapshot = fleet();
    // Only the alerting sidecar was worth a report; three containers were forecast.
    snapshot.reports.truncate(1);
    let (mut state, _tx) = state(snapshot);
    let (ask, mut asked) = tokio::sync::mpsc::channel::<ReportRequest>(4);
    state.reports = Some(ask);
    let wants = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = wants.clone();
    tokio::spawn(async move {
        let all = fleet().reports;
        while let Some(request) = asked.recv().await {
            seen.lock().unwrap().push(request.wanted.clone());
            let answer = all
                .iter()
                .filter(|r| request.wanted.matches(&r.namespace, &r.pod, &r.container))
                .cloned()
                .collect();
            let _ = request.reply.send(answer);
        }
    });
    let app = router(state);
    let (_, body) = get(&app, "/api/v1/forecasts?severity=warning").await;
    assert_eq!(names(&body), ["istio-proxy"]);
    assert!(
        wants.lock().unwrap().is_empty(),
        "served from the poll's reports"
    );
    let (status, body) = get(&app, "/api/v1/forecasts?namespace=prod").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&body), ["istio-proxy", "payment-service"]);
    let (status, body) = get(&app, "/api/v1/forecasts/batch/p-1/worker").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"worker\""), "{body}");
    let (status, _) = get(&app, "/api/v1/forecasts/batch/p-1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        *wants.lock().unwrap(),
        [
            Wanted::Every {
                namespace: Some("prod".into())
            },
            Wanted::Container {
                namespace: "batch".into(),
                pod: "p-1".into(),
                container: "worker".into()
            },
            Wanted::Container {
                namespace: "batch".into(),
                pod: "p-1".into(),
                container: "nothing".into()
            },
        ]
    );
}
