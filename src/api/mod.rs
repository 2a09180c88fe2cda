//! The HTTP API: `/metrics`, `/healthz`, `/readyz`, `/api/v1/forecasts[...]` and the
//! status page at `/`. Built by [`router`] so tests call it without a socket; every
//! handler reads the latest immutable [`Snapshot`]. A poll reports only the
//! containers worth it (see `pipeline::Reported`): what a request asks for beyond
//! those, the service makes on request ([`ReportRequest`]).

mod page;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::watch;

use crate::explain::OomKill;
use crate::model::Severity;
use crate::notify::{Event, EventKind};
use crate::plot::ContainerHistory;
use crate::report::ContainerReport;
use crate::source::ContainerKey;
use crate::telemetry::Telemetry;
use crate::vocab::TimestampMs;

/// Everything the API serves, replaced whole after every poll.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When the forecasts were made (ms); `None` before the first successful poll.
    pub evaluated_at: Option<TimestampMs>,
    /// When the last poll succeeded (ms).
    pub last_success: Option<TimestampMs>,
    /// The last poll's error, if it failed.
    pub last_error: Option<String>,
    /// The forecasts are older than `poll.stale_after`.
    pub stale: bool,
    /// Most urgent first: every container the poll found worth a report (see
    /// `pipeline::Reported`); the others are made on request.
    pub reports: Vec<ContainerReport>,
    /// Containers forecast at the poll: as many as `reports` when every one was
    /// reported.
    pub containers: usize,
    /// Chart data of the containers worth a chart (the most urgent ones).
    pub histories: std::collections::HashMap<ContainerKey, ContainerHistory>,
    /// Recent OOM kills, attributed, newest last.
    pub oom_kills: Vec<OomKill>,
    /// OOM kills first seen in this poll (for notifications).
    pub new_oom_kills: Vec<OomKill>,
    /// Recent alert transitions, newest last.
    pub transitions: Vec<AlertTransition>,
    /// How far the long tier's history has been read back: headroom is ready with
    /// the fine tier, and the long tier fills behind, a piece a poll.
    pub long_history: Option<LongHistory>,
}

/// The long tier's backfill as `/readyz` tells it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LongHistory {
    /// Days read back so far, of `days` (`store.long_backfill`).
    pub days_read: f64,
    pub days: f64,
    pub complete: bool,
}

impl Snapshot {
    pub fn ready(&self) -> bool {
        self.last_success.is_some() && !self.stale
    }

    /// Whether every container forecast has its report here.
    pub fn complete(&self) -> bool {
        self.reports.len() >= self.containers
    }
}

/// The most urgent containers a poll reports, worth it or not: what the status page
/// shows.
pub const MOST_URGENT_SHOWN: usize = page::SHOWN;

/// Which containers a request wants reported beyond a poll's own reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// Every container (of one namespace).
    Every { namespace: Option<String> },
    /// One pod's containers.
    Pod { namespace: String, pod: String },
    /// One container.
    Container {
        namespace: String,
        pod: String,
        container: String,
    },
}

impl Wanted {
    /// Whether it wants the container `container` of pod `pod` in `namespace`.
    pub fn matches(&self, namespace: &str, pod: &str, container: &str) -> bool {
        match self {
            Wanted::Every { namespace: ns } => ns.as_deref().is_none_or(|ns| ns == namespace),
            Wanted::Pod {
                namespace: ns,
                pod: p,
            } => ns == namespace && p == pod,
            Wanted::Container {
                namespace: ns,
                pod: p,
                container: c,
            } => ns == namespace && p == pod && c == container,
        }
    }
}

/// A request for reports, with where to answer: the service makes them from its
/// latest evaluation between polls, most urgent first.
#[derive(Debug)]
pub struct ReportRequest {
    pub wanted: Wanted,
    pub reply: tokio::sync::oneshot::Sender<Vec<ContainerReport>>,
}

/// One alert transition as `/api/v1/events` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertTransition {
    /// When the poll that saw it ran (RFC 3339).
    pub at: String,
    pub kind: EventKind,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Extra identity labels; `{}` when none are configured.
    pub labels: std::collections::BTreeMap<String, String>,
    pub from: Option<Severity>,
    pub to: Option<Severity>,
    pub summary: String,
}

impl AlertTransition {
    pub fn of(e: &Event, at: String) -> Self {
        AlertTransition {
            at,
            kind: e.kind,
            namespace: e.report.namespace.clone(),
            pod: e.report.pod.clone(),
            container: e.report.container.clone(),
            labels: e.report.labels.clone(),
            from: e.previous_severity,
            to: e.severity,
            summary: e.annotations.get("summary").cloned().unwrap_or_default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub telemetry: Arc<Telemetry>,
    pub request_timeout: Duration,
    /// Where `POST /-/reload` asks the service to reload its configuration, with
    /// where to answer; `None` when this run cannot (the demo).
    pub reloads:
        Option<tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>>,
    /// Where to ask for reports a poll did not make; `None` when every poll reports
    /// every container (tests).
    pub reports: Option<tokio::sync::mpsc::Sender<ReportRequest>>,
}

/// One error shape for the whole API: `{"error": "..."}` with a fitting status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/-/reload", axum::routing::post(reload).put(reload))
        .route("/api/v1/forecasts", get(forecasts))
        .route("/api/v1/events", get(events))
        .route("/api/v1/pods/{namespace}/{pod}", get(pod_detail))
        .route(
            "/api/v1/forecasts/{namespace}/{pod}/{container}",
            get(forecast_detail),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "request timed out")
                        .into_response(),
                }
            },
        ))
        .with_state(state)
}

/// `POST /-/reload` (or `PUT`), as Prometheus has it: reloads the configuration
/// file and answers once it is in force (200), or why it was refused (500, the one
/// in force kept).
async fn reload(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let Some(reloads) = &state.reloads else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this run cannot reload its configuration",
        ));
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "headroom is stopping");
    reloads.send(reply).await.map_err(|_| stopped())?;
    match answer.await.map_err(|_| stopped())? {
        Ok(()) => Ok("configuration reloaded\n"),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        )),
    }
}

fn latest(state: &AppState) -> Arc<Snapshot> {
    state.snapshots.borrow().clone()
}

/// The reports `wanted` picks, made by the service on request; `None` when the
/// snapshot holds every container (or no service answers: tests), and its own
/// reports are read in place.
async fn asked_for(
    state: &AppState,
    snapshot: &Snapshot,
    wanted: Wanted,
) -> Result<Option<Vec<ContainerReport>>, ApiError> {
    let Some(ask) = state.reports.as_ref().filter(|_| !snapshot.complete()) else {
        return Ok(None);
    };
    let stopped = || ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "headroom is stopping");
    let (reply, answer) = tokio::sync::oneshot::channel();
    ask.send(ReportRequest { wanted, reply })
        .await
        .map_err(|_| stopped())?;
    answer.await.map(Some).map_err(|_| stopped())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such path: {}", request.uri().path()),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.telemetry.render(),
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let snapshot = latest(&state);
    if snapshot.ready() {
        let mut body = serde_json::json!({ "ready": true });
        if let Some(long) = snapshot.long_history {
            body["long_history"] = serde_json::json!(long);
        }
        Json(body).into_response()
    } else {
        let reason = match (&snapshot.last_success, &snapshot.last_error) {
            (None, None) => "no poll has completed yet".to_string(),
            (None, Some(e)) => format!("no successful poll yet: {e}"),
            (Some(_), e) => format!(
                "forecasts are stale: {}",
                e.as_deref().unwrap_or("Prometheus unreachable")
            ),
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": reason })),
        )
            .into_response()
    }
}

/// Filters of `GET /api/v1/forecasts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastFilter {
    namespace: Option<String>,
    /// `warning` or `critical`: the forecast's severity or the alert is at least this.
    severity: Option<String>,
    /// Containers using at least this share of their limit.
    min_use: Option<f64>,
    /// At most this many containers, most urgent first ([`PAGE_DEFAULT`] unless
    /// given, at most [`PAGE_MAX`]), from `offset` on; `X-Total-Count` says how many
    /// matched.
    limit: Option<usize>,
    offset: Option<usize>,
}

/// Containers a `/api/v1/forecasts` answer holds unless `limit` says otherwise: an
/// answer stays a few megabytes however large the fleet.
pub const PAGE_DEFAULT: usize = 10_000;
/// The most a `limit` may ask for.
pub const PAGE_MAX: usize = 100_000;

async fn forecasts(
    State(state): State<AppState>,
    query: Result<Query<ForecastFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let min_severity = match filter.severity.as_deref() {
        None => Severity::None,
        Some("none") => Severity::None,
        Some("warning") => Severity::Warning,
        Some("critical") => Severity::Critical,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("severity {other:?} is not one of none, warning, critical"),
            ))
        }
    };
    if let Some(u) = filter.min_use {
        if !u.is_finite() || u < 0.0 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "min_use must be a ratio such as 0.8",
            ));
        }
    }
    let limit = filter.limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {PAGE_MAX}"),
        ));
    }
    let snapshot = latest(&state);
    // Every container at warning or above is reported at each poll.
    let asked = if min_severity >= Severity::Warning {
        None
    } else {
        let wanted = Wanted::Every {
            namespace: filter.namespace.clone(),
        };
        asked_for(&state, &snapshot, wanted).await?
    };
    let matching = asked
        .as_deref()
        .unwrap_or(&snapshot.reports)
        .iter()
        .filter(|r| {
            filter
                .namespace
                .as_ref()
                .is_none_or(|ns| &r.namespace == ns)
        })
        .filter(|r| r.severity.max(r.alert.unwrap_or(Severity::None)) >= min_severity)
        .filter(|r| {
            filter
                .min_use
                .is_none_or(|u| r.use_ratio.is_some_and(|x| x >= u))
        })
        .collect::<Vec<&ContainerReport>>();
    let total = matching.len();
    // Serialized from the reports in hand: no copy of them per request.
    let from = filter.offset.unwrap_or(0).min(total);
    let page = &matching[from..(from + limit).min(total)];
    let body = serde_json::to_vec(page).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode: {e}"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::HeaderName::from_static("x-total-count"),
                total.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

async fn forecast_detail(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = latest(&state);
    let in_snapshot = snapshot
        .reports
        .iter()
        .find(|r| r.namespace == namespace && r.pod == pod && r.container == container);
    let asked = match in_snapshot {
        Some(_) => None,
        None => {
            let wanted = Wanted::Container {
                namespace: namespace.clone(),
                pod: pod.clone(),
                container: container.clone(),
            };
            asked_for(&state, &snapshot, wanted).await?
        }
    };
    let report = in_snapshot
        .or(asked.as_ref().and_then(|a| a.first()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no container {namespace}/{pod}/{container} is tracked"),
            )
        })?;
    let key = report.key();
    let history = snapshot.histories.get(&key);
    Ok(Json(serde_json::json!({
        "forecast": report,
        "history": history,
    })))
}

/// Every container of one pod, side by side: a sidecar next to its app container,
/// each against its own limit, and the pod's total. Query parameters select on the
/// extra identity labels (`?cluster=eu`), which a pod name alone may not tell apart.
async fn pod_detail(
    State(state): State<AppState>,
    Path((namespace, pod)): Path<(String, String)>,
    Query(labels): Query<std::collections::BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = latest(&state);
    let selected = |l: &std::collections::BTreeMap<String, String>| {
        labels.iter().all(|(k, v)| l.get(k) == Some(v))
    };
    // A pod is reported whole or not at all; without extra identity labels a pod's
    // name is one pod, and one of its containers in the snapshot says it is there.
    let whole = snapshot
        .reports
        .iter()
        .any(|r| r.namespace == namespace && r.pod == pod && r.labels.is_empty());
    let asked = if whole {
        None
    } else {
        let wanted = Wanted::Pod {
            namespace: namespace.clone(),
            pod: pod.clone(),
        };
        asked_for(&state, &snapshot, wanted).await?
    };
    let containers: Vec<&ContainerReport> = asked
        .as_deref()
        .unwrap_or(&snapshot.reports)
        .iter()
        .filter(|r| r.namespace == namespace && r.pod == pod && selected(&r.labels))
        .collect();
    if containers.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no pod {namespace}/{pod} is tracked"),
        ));
    }
    let mut places: Vec<&std::collections::BTreeMap<String, String>> =
        containers.iter().map(|r| &r.labels).collect();
    places.sort();
    places.dedup();
    if places.len() > 1 {
        let names: Vec<String> = places
            .iter()
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "pod {namespace}/{pod} is tracked in {} places; say which: ?{}",
                places.len(),
                names.join(" or ?")
            ),
        ));
    }
    let total: f64 = containers.iter().map(|r| r.working_set_bytes).sum();
    let limits: Option<f64> = containers.iter().map(|r| r.limit_bytes).sum();
    let kills: Vec<_> = snapshot
        .oom_kills
        .iter()
        .filter(|k| k.namespace == namespace && k.pod == pod && k.labels == *places[0])
        .collect();
    Ok(Json(serde_json::json!({
        "namespace": namespace,
        "pod": pod,
        "working_set_bytes": total,
        "sum_of_limits_bytes": limits,
        "containers": containers,
        "oom_kills": kills,
    })))
}

/// Recent OOM kills, each attributed to the container that was at its limit, and
/// recent alert transitions, each as the alert lifecycle saw it.
async fn events(State(state): State<AppState>) -> Json<serde_json::Value> {
    let snapshot = latest(&state);
    Json(serde_json::json!({
        "oom_kills": snapshot.oom_kills,
        "alerts": snapshot.transitions,
    }))
}

async fn status_page(State(state): State<AppState>) -> Html<String> {
    Html(page::render(&latest(&state)))
}

#[cfg(test)]
mod tests;
