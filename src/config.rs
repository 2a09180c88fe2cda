//! Configuration: a YAML file read once into `RawConfig` (what the user wrote) and
//! validated into [`Config`] (what the program uses).
//!
//! Nothing outside this module sees raw strings: durations, sizes, URLs and secrets are
//! parsed here, and every problem is reported at once, each naming its key and, where
//! the key is in the file, its line. Structural problems (an unknown key, a list where a
//! map belongs) stop parsing at the first one, with the line and column serde found.
//! Every key is documented in `config/headroom.example.yaml`, which a test loads.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::source::config::{
    PrometheusConfig, Queries, Shard, ShardMode, DEFAULT_CADVISOR_LIMITS_QUERY,
    DEFAULT_INIT_LIMITS_QUERY, DEFAULT_LIMITS_QUERY, DEFAULT_OOM_QUERY, DEFAULT_RESTARTS_QUERY,
    DEFAULT_WORKING_SET_QUERY,
};
use crate::source::promql::{is_label_name, is_selector_union};
use crate::units::{parse_bytes, parse_duration};
pub use crate::vocab::check::Problem;
use crate::vocab::check::{RawBasicAuth, RawTls, Validator};

// ---------------------------------------------------------------------------------------
// Raw: exactly what the file says.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    prometheus: RawPrometheus,
    queries: RawQueries,
    identity: RawIdentity,
    store: RawStore,
    poll: RawPoll,
    forecast: RawForecast,
    server: RawServer,
    alerts: RawAlerts,
    receivers: crate::notify::RawReceivers,
    sidecars: RawSidecars,
    sharding: RawSharding,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSharding {
    mode: Option<String>,
    index: Option<u32>,
    count: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSidecars {
    names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAlerts {
    alertname: Option<String>,
    resend_interval: Option<String>,
    resolved_retention: Option<String>,
    labels: BTreeMap<String, String>,
    runbook_url: Option<String>,
    dashboard_url: Option<String>,
    queue_capacity: Option<usize>,
    drain_timeout: Option<String>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen_address: Option<String>,
    request_timeout: Option<String>,
    metrics_min_use: Option<f64>,
    metrics_max_containers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPrometheus {
    url: Option<String>,
    timeout: Option<String>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    headers: BTreeMap<String, String>,
    tls: RawTls,
    max_points_per_request: Option<u64>,
    max_concurrent_requests: Option<u64>,
    max_response_bytes: Option<String>,
    max_series: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawQueries {
    working_set: Option<String>,
    limits: Option<String>,
    init_container_limits: Option<String>,
    cadvisor_limits: Option<String>,
    restarts: Option<String>,
    oom_kills: Option<String>,
    strict: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawIdentity {
    extra_labels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStore {
    lookback: Option<String>,
    resolution: Option<String>,
    forget_after: Option<String>,
    long_backfill: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPoll {
    interval: Option<String>,
    stale_after: Option<String>,
    limits_interval: Option<String>,
    restarts_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawForecast {
    warning_horizon: Option<String>,
    critical_horizon: Option<String>,
    min_history: Option<String>,
    min_limit: Option<String>,
    warning_pending: Option<String>,
    critical_pending: Option<String>,
    pending_samples: Option<u32>,
    keep_firing_for: Option<String>,
    keep_warning_while_unsure: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Validated: what the program uses.
// ---------------------------------------------------------------------------------------

/// The validated configuration. Built only by [`Config::load`] / [`Config::parse_str`].
#[derive(Debug, Clone)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub queries: Queries,
    /// Labels that join namespace/pod/container in a container's identity, such as
    /// `cluster` when one Thanos or Mimir holds many clusters.
    pub extra_identity_labels: Vec<String>,
    pub store: StoreConfig,
    /// How often the daemon asks Prometheus for new samples.
    pub poll_interval: Duration,
    /// How often limits are read again (they change only with a new pod or a resize).
    pub limits_interval: Duration,
    /// How often restart counters and OOM reasons are read (also at the poll after a
    /// container starts a new segment).
    pub restarts_interval: Duration,
    /// Forecasts older than this (Prometheus unreachable) are marked stale and the
    /// daemon reports not ready.
    pub stale_after: Duration,
    pub forecast: ForecastConfig,
    pub server: ServerConfig,
    pub alerts: AlertsConfig,
    /// Each receiver's own validated configuration (see `notify`).
    pub receivers: Vec<Arc<dyn crate::notify::ReceiverConfig>>,
    /// Container names (globs) recognised as injected sidecars; native sidecars are
    /// recognised from kube-state-metrics whatever their name.
    pub sidecar_names: Vec<String>,
    /// `None`: this replica watches every container.
    pub shard: Option<Shard>,
    /// What is accepted but worth saying: queries headroom's PromQL parser could not
    /// read, sent as written (`queries.strict: false`). `config check` prints them
    /// and `run` logs them.
    pub warnings: Vec<String>,
}

/// How alerts are named and re-sent, and how receivers queue and retry.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub alertname: String,
    pub resend_interval: Duration,
    pub resolved_retention: Duration,
    /// Added to every alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Templates with `{namespace}`, `{pod}` and `{container}`.
    pub runbook_url: Option<String>,
    pub dashboard_url: Option<String>,
    pub queue_capacity: usize,
    pub drain_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// The HTTP server: `/metrics`, the API and the status page.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen_address: std::net::SocketAddr,
    pub request_timeout: Duration,
    /// Containers at or above this use of their limit get per-container metrics even
    /// when quiet.
    pub metrics_min_use: f64,
    /// The most containers with per-container metrics: the cardinality bound.
    pub metrics_max_containers: usize,
}

/// How much history is kept per container.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How far back a container's history reaches, and so the longest trend fitted.
    pub lookback: Duration,
    /// The step of range queries: one sample per container per step.
    pub resolution: Duration,
    /// A container absent from this long is forgotten.
    pub forget_after: Duration,
    /// How far back the long tier is read from Prometheus after the first poll, a
    /// day a poll (zero: not read; it then fills as headroom runs).
    pub long_backfill: Duration,
}

/// When a forecast becomes a warning or critical.
#[derive(Debug, Clone)]
pub struct ForecastConfig {
    pub warning_horizon: Duration,
    pub critical_horizon: Duration,
    /// A segment younger than this has too little history to forecast.
    pub min_history: Duration,
    /// Limits below this are ignored as nonsense (e.g. a 1-byte limit from a bad export).
    pub min_limit_bytes: u64,
    /// How long a warning (critical) condition must hold before the alert fires.
    pub warning_pending: Duration,
    pub critical_pending: Duration,
    /// A condition must also hold over this many sample spacings: with coarse
    /// scrapes, a pending period is not one or two evaluations of the same samples.
    pub pending_samples: u32,
    /// How long a firing alert outlives its condition.
    pub keep_firing_for: Duration,
    /// How long a firing warning outlives its condition while the forecast gives
    /// no time to limit at all and the container's hourly high has not backed off.
    pub keep_warning_while_unsure: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_str("", "<defaults>", &Overrides::default()).expect("the defaults are valid")
    }
}

/// Values given on the command line, which win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub prometheus_url: Option<String>,
    pub shard_index: Option<u32>,
    pub shard_count: Option<u32>,
}

/// Every problem found in a config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// Where the config came from: a file path, or `<defaults>`.
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{} has {count} problem{}:",
            self.origin,
            if count == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.line {
                Some(line) => write!(f, "\n  {}:{line}: {}: {}", self.origin, p.key, p.message)?,
                None if p.key.is_empty() => write!(f, "\n  {}: {}", self.origin, p.message)?,
                None => write!(f, "\n  {}: {}: {}", self.origin, p.key, p.message)?,
            }
        }
        Ok(())
    }
}

impl Config {
    /// The explainer this config describes (its sidecar names, forecast parameters
    /// and store step).
    pub fn explainer(&self) -> crate::explain::Explainer {
        crate::explain::Explainer::new(
            self.sidecar_names.clone(),
            self.forecast_params(),
            self.store.resolution,
        )
    }

    /// The model's forecast parameters this config describes.
    pub fn forecast_params(&self) -> crate::model::ForecastParams {
        crate::model::ForecastParams {
            warning_horizon_seconds: self.forecast.warning_horizon.as_secs_f64(),
            critical_horizon_seconds: self.forecast.critical_horizon.as_secs_f64(),
            min_history_seconds: self.forecast.min_history.as_secs_f64(),
            ..crate::model::ForecastParams::default()
        }
    }

    /// How alerts are named, labelled and re-sent.
    pub fn alert_settings(&self) -> crate::notify::AlertSettings {
        crate::notify::AlertSettings {
            alertname: self.alerts.alertname.clone(),
            resend_interval: self.alerts.resend_interval,
            resolved_retention: self.alerts.resolved_retention,
            poll_interval: self.poll_interval,
            extra_labels: self.alerts.labels.clone(),
            runbook_url: self.alerts.runbook_url.clone(),
            dashboard_url: self.alerts.dashboard_url.clone(),
            prometheus_url: self.prometheus.url.to_string(),
        }
    }

    /// How receivers queue and retry.
    pub fn retry_policy(&self) -> crate::notify::RetryPolicy {
        crate::notify::RetryPolicy {
            initial: self.alerts.retry_initial,
            max: self.alerts.retry_max,
            capacity: self.alerts.queue_capacity,
        }
    }

    /// The alert state machine's timing this config describes.
    pub fn alert_params(&self) -> crate::model::AlertParams {
        crate::model::AlertParams {
            pending_warning_seconds: self.forecast.warning_pending.as_secs_f64(),
            pending_critical_seconds: self.forecast.critical_pending.as_secs_f64(),
            keep_firing_for_seconds: self.forecast.keep_firing_for.as_secs_f64(),
            hold_unsure_seconds: self.forecast.keep_warning_while_unsure.as_secs_f64(),
            pending_samples: f64::from(self.forecast.pending_samples),
            ..crate::model::AlertParams::default()
        }
    }
}

/// The labels headroom sets on every alert, which `alerts.labels` cannot override.
const RESERVED_ALERT_LABELS: [&str; 7] = [
    "alertname",
    "namespace",
    "pod",
    "container",
    "severity",
    "sidecar",
    "workload",
];

impl Config {
    /// Reads and validates a config file; `None` means built-in defaults plus overrides.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        match path {
            None => Config::parse_str("", "<defaults>", overrides),
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    origin: origin.clone(),
                    problems: vec![Problem {
                        key: String::new(),
                        line: None,
                        message: format!("cannot read config file: {e}"),
                    }],
                })?;
                Config::parse_str(&text, &origin, overrides)
            }
        }
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse_str(
        text: &str,
        origin: &str,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let (raw, parse_problems) = parse_raw(text);
        let raw = raw.ok_or_else(|| ConfigError {
            origin: origin.to_string(),
            problems: parse_problems.clone(),
        })?;
        let mut v = Validator::new(text);
        v.problems.extend(parse_problems);
        let config = v.validate(raw, overrides);
        // Read top to bottom, like the file; problems about defaults come last.
        v.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        if v.problems.is_empty() {
            Ok(config.expect("no problems means every value was set"))
        } else {
            Err(ConfigError {
                origin: origin.to_string(),
                problems: v.problems,
            })
        }
    }
}

/// The file as written, and every problem reading it: an unknown key or a value of
/// the wrong type is noted and left out, and the rest read on, so that one mistake
/// hides no other. `None` when the text is no YAML mapping at all.
fn parse_raw(text: &str) -> (Option<RawConfig>, Vec<Problem>) {
    // What no config needs and a parser spends seconds or minutes on: refused first.
    if let Some(why) = too_big(text) {
        return (
            None,
            vec![Problem {
                key: String::new(),
                line: None,
                message: why,
            }],
        );
    }
    // An empty file, or one of comments only, means "all defaults".
    let mut value: yaml_serde::Value = match yaml_serde::from_str(text) {
        Ok(v) => v,
        Err(e) => return (None, vec![yaml_problem(&e, "")]),
    };
    if value.is_null() {
        return (Some(RawConfig::default()), Vec::new());
    }
    let mut problems = Vec::new();
    // Each round leaves one bad key out; a file has only so many. Every round reads
    // text (the file, then the file less its bad keys), never a YAML value: read as
    // text, a plain scalar is whatever the field wants (`1` a string or a number), as
    // the file's author meant.
    for round in 0..64 {
        let again;
        let text_now = if round == 0 {
            text
        } else {
            again = match yaml_serde::to_string(&value) {
                Ok(t) => t,
                Err(_) => return (None, problems),
            };
            again.as_str()
        };
        let deserializer = yaml_serde::Deserializer::from_str(text_now);
        match serde_path_to_error::deserialize::<_, RawConfig>(deserializer) {
            Ok(raw) => return (Some(raw), problems),
            Err(e) => {
                let path = e.path().to_string();
                let key = if path == "." { String::new() } else { path };
                let mut problem = yaml_problem(e.inner(), &key);
                // Lines of later rounds are of the text less its bad keys: locate
                // the key in the file instead.
                if round > 0 || problem.line.is_none() {
                    problem.line = crate::vocab::check::locate_key(text, &key);
                }
                problems.push(problem);
                if key.is_empty() || !remove_key(&mut value, &key) {
                    return (None, problems);
                }
            }
        }
    }
    (None, problems)
}

/// Why `text` is no config file worth parsing: over a mebibyte, nested deeper than
/// 64 levels of `[`/`{`, or indented deeper than 256 columns (a config nests a few
/// levels; a file 100,000 levels deep took the YAML parser most of a minute).
fn too_big(text: &str) -> Option<String> {
    const MAX_BYTES: usize = 1 << 20;
    const MAX_FLOW_DEPTH: usize = 64;
    const MAX_INDENT: usize = 256;
    if text.len() > MAX_BYTES {
        return Some(format!(
            "is {} bytes; a config file is at most {MAX_BYTES}",
            text.len()
        ));
    }
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None::<char>);
    for c in text.chars() {
        match (quote, c) {
            // A quote never spans lines here (a comment's apostrophe must not
            // hide the rest of the file).
            (_, '\n') => quote = None,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_FLOW_DEPTH {
        return Some(format!(
            "nests {deepest} levels of [ or {{; a config file nests at most {MAX_FLOW_DEPTH}"
        ));
    }
    if let Some((i, _)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.len() - l.trim_start().len() > MAX_INDENT)
    {
        return Some(format!(
            "line {} is indented more than {MAX_INDENT} columns; a config file nests a few levels",
            i + 1
        ));
    }
    None
}

/// Removes the dotted `key` (`a.b[2].c`) from `value`; false when it is not there.
fn remove_key(value: &mut yaml_serde::Value, key: &str) -> bool {
    let segments: Vec<&str> = key.split('.').collect();
    remove_path(value, &segments)
}

fn remove_path(value: &mut yaml_serde::Value, segments: &[&str]) -> bool {
    let split = |segment: &str| -> (String, Option<usize>) {
        match segment.split_once('[') {
            Some((n, i)) => (n.to_string(), i.trim_end_matches(']').parse().ok()),
            None => (segment.to_string(), None),
        }
    };
    match segments {
        [] => false,
        [last] => match split(last) {
            (name, Some(i)) => match value
                .get_mut(name.as_str())
                .and_then(|v| v.as_sequence_mut())
            {
                Some(seq) if i < seq.len() => {
                    seq.remove(i);
                    true
                }
                _ => false,
            },
            (name, None) => value
                .as_mapping_mut()
                .and_then(|m| m.remove(name.as_str()))
                .is_some(),
        },
        [first, rest @ ..] => {
            let (name, index) = split(first);
            let child = value.get_mut(name.as_str());
            let child = match index {
                Some(i) => child.and_then(|c| c.get_mut(i)),
                None => child,
            };
            child.is_some_and(|c| remove_path(c, rest))
        }
    }
}

fn yaml_problem(e: &yaml_serde::Error, key: &str) -> Problem {
    // yaml_serde appends " at line L column C"; we show the line ourselves.
    let message = e.to_string();
    let mut message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    // yaml_serde prefixes its own path ("prometheus: unknown field"); we print the key.
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && key.starts_with(prefix) {
            message = rest.to_string();
        }
    }
    if message.contains("repetition limit exceeded") {
        message = "its aliases (*name) expand to too many nodes (repetition limit exceeded); \
                   a config file needs a few"
            .into();
    }
    Problem {
        key: key.to_string(),
        line: e.location().map(|l| l.line()),
        message,
    }
}

impl Validator<'_> {
    fn validate(&mut self, raw: RawConfig, overrides: &Overrides) -> Option<Config> {
        let prometheus = self.prometheus(raw.prometheus, overrides);
        let (queries, warnings) = self.queries(raw.queries);

        let extra_identity_labels = self.identity(raw.identity);

        let lookback = self.duration("store.lookback", &raw.store.lookback, "6h");
        let resolution = self.duration("store.resolution", &raw.store.resolution, "30s");
        let forget_after = self.duration("store.forget_after", &raw.store.forget_after, "10m");
        // Zero is allowed here (in any unit): it turns the read-back off.
        let long_backfill = match raw.store.long_backfill.as_deref().map(parse_duration) {
            Some(Ok(d)) if d.is_zero() => Some(Duration::ZERO),
            _ => self.duration("store.long_backfill", &raw.store.long_backfill, "14d"),
        };
        if long_backfill.is_some_and(|d| d > Duration::from_secs(14 * 24 * 3600)) {
            self.problem(
                "store.long_backfill",
                "must be at most 14d: the long tier keeps 14 days",
            );
        }
        if let (Some(resolution), Some(lookback)) = (resolution, lookback) {
            if resolution >= lookback {
                self.problem(
                    "store.resolution",
                    "must be much shorter than store.lookback (one sample per resolution step)",
                );
            }
            // The fine tier holds every step of the lookback in memory, for every
            // container: 30 days at 1 s is 2.6 million samples a container. Days
            // belong in the long tier.
            const MAX_SAMPLES: u128 = 25_000;
            let points = lookback.as_millis() / resolution.as_millis().max(1);
            if points > MAX_SAMPLES {
                let longest = humantime::format_duration(Duration::from_secs(
                    (MAX_SAMPLES as u64 * resolution.as_millis() as u64) / 1000,
                ));
                self.problem(
                    "store.resolution",
                    format!(
                        "store.lookback at this resolution holds {points} samples a container; at most {MAX_SAMPLES} (a lookback of {longest} at this resolution): raise it or shorten store.lookback (the long tier keeps days)"
                    ),
                );
            }
            // The backfill reads the lookback at the resolution, max_points_per_request
            // points a request: a combination that needs more requests than this
            // would keep the first poll (and readiness) waiting.
            const MAX_BACKFILL_REQUESTS: u128 = 1_000;
            if let Some(p) = prometheus.as_ref().filter(|_| points <= MAX_SAMPLES) {
                let requests = points / u128::from(p.max_points_per_request.max(1));
                if requests > MAX_BACKFILL_REQUESTS {
                    self.problem(
                        "prometheus.max_points_per_request",
                        format!(
                            "{} points a request read store.lookback at store.resolution in {requests} requests per query; at most {MAX_BACKFILL_REQUESTS}: raise it or store.resolution, or shorten store.lookback",
                            p.max_points_per_request
                        ),
                    );
                }
            }
        }
        let poll_interval = self.duration("poll.interval", &raw.poll.interval, "30s");
        let stale_after = self.duration("poll.stale_after", &raw.poll.stale_after, "5m");
        let limits_interval =
            self.duration("poll.limits_interval", &raw.poll.limits_interval, "5m");
        let restarts_interval =
            self.duration("poll.restarts_interval", &raw.poll.restarts_interval, "5m");
        let server = self.server(raw.server);

        let forecast = self.forecast(raw.forecast, lookback);

        let alerts = self.alerts(raw.alerts);
        let receivers = raw.receivers.validate(self);

        let sidecar_names = raw.sidecars.names.unwrap_or_else(|| {
            crate::explain::DEFAULT_SIDECAR_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });

        let shard = self.sharding(raw.sharding, overrides, &queries);

        Some(Config {
            shard,
            warnings,
            alerts: alerts?,
            receivers,
            sidecar_names,
            prometheus: prometheus?,
            queries,
            extra_identity_labels,
            store: StoreConfig {
                lookback: lookback?,
                resolution: resolution?,
                forget_after: forget_after?,
                long_backfill: long_backfill?,
            },
            poll_interval: poll_interval?,
            stale_after: stale_after?,
            limits_interval: limits_interval?,
            restarts_interval: restarts_interval?,
            server: server?,
            forecast: forecast?,
        })
    }

    /// A count within `range` (`default` when not given); a problem naming the key
    /// and the range (and `why`) otherwise, and the default in its place.
    fn count(
        &mut self,
        key: &str,
        value: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        why: &str,
    ) -> u64 {
        match value.unwrap_or(default) {
            n if range.contains(&n) => n,
            n => {
                self.problem(
                    key,
                    format!("{n} is outside {}..={}{why}", range.start(), range.end()),
                );
                default
            }
        }
    }

    /// The extra identity labels: label names, none of the three always in it.
    fn identity(&mut self, raw: RawIdentity) -> Vec<String> {
        let mut extra_identity_labels = Vec::new();
        for label in raw.extra_labels {
            if !is_label_name(&label) {
                self.problem(
                    "identity.extra_labels",
                    format!("{label:?} is not a Prometheus label name"),
                );
            } else if ["namespace", "pod", "container"].contains(&label.as_str()) {
                self.problem(
                    "identity.extra_labels",
                    format!("{label:?} is always part of the identity; list only extra labels"),
                );
            } else if !extra_identity_labels.contains(&label) {
                extra_identity_labels.push(label);
            }
        }
        extra_identity_labels
    }

    /// The HTTP server: address, timeout, and the per-container metrics' bounds.
    fn server(&mut self, server: RawServer) -> Option<ServerConfig> {
        let listen_text = server.listen_address.as_deref().unwrap_or("0.0.0.0:9464");
        let listen_address = match listen_text.parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                self.problem(
                    "server.listen_address",
                    format!("{listen_text:?} is not host:port ({e})"),
                );
                None
            }
        };
        let request_timeout =
            self.duration("server.request_timeout", &server.request_timeout, "10s");
        let metrics_min_use = server.metrics_min_use.unwrap_or(0.8);
        if !(0.0..=10.0).contains(&metrics_min_use) {
            self.problem("server.metrics_min_use", "must be a ratio such as 0.8");
        }
        let metrics_max_containers = server.metrics_max_containers.unwrap_or(10_000);
        Some(ServerConfig {
            listen_address: listen_address?,
            request_timeout: request_timeout?,
            metrics_min_use,
            metrics_max_containers,
        })
    }

    /// Horizons, pending periods and the smallest limit taken seriously; checked
    /// against each other and against the store's lookback.
    fn forecast(&mut self, f: RawForecast, lookback: Option<Duration>) -> Option<ForecastConfig> {
        let warning_horizon = self.duration("forecast.warning_horizon", &f.warning_horizon, "24h");
        let critical_horizon =
            self.duration("forecast.critical_horizon", &f.critical_horizon, "2h");
        let min_history = self.duration("forecast.min_history", &f.min_history, "30m");
        let warning_pending = self.duration("forecast.warning_pending", &f.warning_pending, "10m");
        let critical_pending =
            self.duration("forecast.critical_pending", &f.critical_pending, "5m");
        let keep_firing_for = self.duration("forecast.keep_firing_for", &f.keep_firing_for, "10m");
        let keep_warning_while_unsure = self.duration(
            "forecast.keep_warning_while_unsure",
            &f.keep_warning_while_unsure,
            "1h",
        );
        let pending_samples = f.pending_samples.unwrap_or(3);
        if pending_samples > 100 {
            self.problem(
                "forecast.pending_samples",
                format!("{pending_samples} samples is more than 100: alerts would wait hours on coarse scrapes"),
            );
        }
        let min_limit_bytes = match parse_bytes(f.min_limit.as_deref().unwrap_or("1Mi")) {
            Ok(b) => Some(b),
            Err(message) => {
                self.problem("forecast.min_limit", message);
                None
            }
        };
        if let (Some(critical), Some(warning)) = (critical_horizon, warning_horizon) {
            if critical > warning {
                self.problem(
                    "forecast.critical_horizon",
                    "must not be longer than forecast.warning_horizon",
                );
            }
        }
        if let (Some(min_history), Some(lookback)) = (min_history, lookback) {
            if min_history > lookback {
                self.problem(
                    "forecast.min_history",
                    "is longer than store.lookback, so no container could ever be forecast",
                );
            }
        }
        Some(ForecastConfig {
            warning_horizon: warning_horizon?,
            critical_horizon: critical_horizon?,
            min_history: min_history?,
            min_limit_bytes: min_limit_bytes?,
            warning_pending: warning_pending?,
            critical_pending: critical_pending?,
            pending_samples,
            keep_firing_for: keep_firing_for?,
            keep_warning_while_unsure: keep_warning_while_unsure?,
        })
    }

    /// This replica's shard (flags win over the file); namespace sharding needs
    /// plain selectors in every query.
    fn sharding(
        &mut self,
        sharding: RawSharding,
        overrides: &Overrides,
        queries: &Queries,
    ) -> Option<Shard> {
        let mode = match sharding.mode.as_deref() {
            None | Some("pod") => Some(ShardMode::Pod),
            Some("namespace") => Some(ShardMode::Namespace),
            Some(other) => {
                self.problem(
                    "sharding.mode",
                    format!("{other:?} is not pod or namespace"),
                );
                None
            }
        };
        let index = overrides.shard_index.or(sharding.index);
        let count = overrides.shard_count.or(sharding.count);
        if mode == Some(ShardMode::Namespace) {
            // Namespace sharding adds a matcher to every selector, which only plain
            // selectors (or `or`s of them) take safely.
            let q = queries;
            for (key, query) in [
                ("queries.working_set", Some(q.working_set.as_str())),
                ("queries.limits", Some(q.limits.as_str())),
                (
                    "queries.init_container_limits",
                    q.init_container_limits.as_deref(),
                ),
                ("queries.cadvisor_limits", q.cadvisor_limits.as_deref()),
                ("queries.restarts", q.restarts.as_deref()),
                ("queries.oom_kills", q.oom_kills.as_deref()),
            ] {
                if let Some(query) = query.filter(|q| !q.trim().is_empty()) {
                    if !is_selector_union(query) {
                        self.problem(
                            key,
                            "sharding.mode namespace needs plain selectors here (metric{labels}, joined by or)",
                        );
                    }
                }
            }
        }
        match (index, count, mode) {
            (None, None, _) | (_, _, None) => None,
            (Some(index), Some(count), Some(mode)) if count >= 1 && index < count => {
                (count > 1).then_some(Shard { index, count, mode })
            }
            (Some(index), Some(count), _) => {
                self.problem(
                    "sharding.index",
                    format!("shard index {index} is not below the shard count {count}"),
                );
                None
            }
            _ => {
                self.problem(
                    "sharding",
                    "index and count go together: set both or neither",
                );
                None
            }
        }
    }
    fn alerts(&mut self, a: RawAlerts) -> Option<AlertsConfig> {
        let alertname = a
            .alertname
            .unwrap_or_else(|| "ContainerMemoryLimitForecast".into());
        if !is_label_name(&alertname) {
            self.problem(
                "alerts.alertname",
                format!("{alertname:?} is not a valid alert name"),
            );
        }
        for name in a.labels.keys() {
            if !is_label_name(name) {
                self.problem(
                    &format!("alerts.labels.{name}"),
                    "is not a Prometheus label name",
                );
            } else if RESERVED_ALERT_LABELS.contains(&name.as_str()) {
                self.problem(
                    &format!("alerts.labels.{name}"),
                    format!(
                        "is set by headroom on every alert ({}), so this would be ignored; choose another name",
                        RESERVED_ALERT_LABELS.join(", ")
                    ),
                );
            }
        }
        let resend_interval = self.duration("alerts.resend_interval", &a.resend_interval, "1m");
        let resolved_retention =
            self.duration("alerts.resolved_retention", &a.resolved_retention, "15m");
        let drain_timeout = self.duration("alerts.drain_timeout", &a.drain_timeout, "10s");
        let retry_initial = self.duration("alerts.retry_initial", &a.retry_initial, "1s");
        let retry_max = self.duration("alerts.retry_max", &a.retry_max, "1m");
        let queue_capacity = a.queue_capacity.unwrap_or(1000);
        if queue_capacity == 0 || queue_capacity > 1_000_000 {
            self.problem(
                "alerts.queue_capacity",
                "must be between 1 and 1000000 (notifications a receiver may hold)",
            );
        }
        let template = |v: Option<String>| v.filter(|t| !t.trim().is_empty());
        Some(AlertsConfig {
            alertname,
            resend_interval: resend_interval?,
            resolved_retention: resolved_retention?,
            labels: a.labels,
            runbook_url: template(a.runbook_url),
            dashboard_url: template(a.dashboard_url),
            queue_capacity,
            drain_timeout: drain_timeout?,
            retry_initial: retry_initial?,
            retry_max: retry_max?,
        })
    }

    fn prometheus(&mut self, p: RawPrometheus, overrides: &Overrides) -> Option<PrometheusConfig> {
        let url_text = overrides
            .prometheus_url
            .clone()
            .or(p.url)
            .unwrap_or_else(|| "http://localhost:9090".to_string());
        let url = match reqwest::Url::parse(&url_text) {
            Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {
                if !url.username().is_empty() || url.password().is_some() {
                    self.problem(
                        "prometheus.url",
                        "must not carry credentials; use prometheus.basic_auth",
                    );
                }
                Some(crate::vocab::with_trailing_slash(url))
            }
            Ok(url) => {
                self.problem(
                    "prometheus.url",
                    format!("scheme {:?} is not http or https", url.scheme()),
                );
                None
            }
            Err(e) => {
                self.problem("prometheus.url", format!("{url_text:?} is not a URL: {e}"));
                None
            }
        };
        let timeout = self.duration("prometheus.timeout", &p.timeout, "30s");

        let auth = self.auth(
            "prometheus",
            &p.bearer_token,
            &p.bearer_token_file,
            p.basic_auth,
        );

        let mut headers = Vec::new();
        for (name, value) in p.headers {
            let key = format!("prometheus.headers.{name}");
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.problem(&key, "is not a valid HTTP header name");
            } else if name.eq_ignore_ascii_case("authorization") {
                self.problem(&key, "set credentials with bearer_token or basic_auth");
            } else if reqwest::header::HeaderValue::from_str(&value).is_err() {
                self.problem(&key, "value is not a valid HTTP header value");
            } else {
                headers.push((name, value));
            }
        }

        let tls = self.tls("prometheus", p.tls);

        let max_points_per_request = self.count(
            "prometheus.max_points_per_request",
            p.max_points_per_request,
            11_000,
            2..=11_000,
            " (Prometheus refuses more than 11,000 points per series)",
        ) as u32;
        let max_concurrent_requests = self.count(
            "prometheus.max_concurrent_requests",
            p.max_concurrent_requests,
            4,
            1..=64,
            "",
        ) as usize;

        let max_response_bytes =
            match parse_bytes(p.max_response_bytes.as_deref().unwrap_or("256Mi")) {
                Ok(n) if (1 << 20..=1 << 34).contains(&n) => n,
                Ok(_) => {
                    self.problem(
                        "prometheus.max_response_bytes",
                        "must be between 1Mi and 16Gi",
                    );
                    1 << 28
                }
                Err(e) => {
                    self.problem("prometheus.max_response_bytes", e);
                    1 << 28
                }
            };

        let max_series = self.count(
            "prometheus.max_series",
            p.max_series,
            500_000,
            1_000..=10_000_000,
            "",
        ) as usize;
        Some(PrometheusConfig {
            url: url?,
            timeout: timeout?,
            auth,
            headers,
            tls,
            max_points_per_request,
            max_concurrent_requests,
            max_response_bytes,
            max_series,
        })
    }

    fn queries(&mut self, q: RawQueries) -> (Queries, Vec<String>) {
        fn optional(value: Option<String>, default: &str) -> Option<String> {
            match value {
                // An empty string switches an optional query off.
                Some(v) if v.trim().is_empty() => None,
                Some(v) => Some(v),
                None => Some(default.to_string()),
            }
        }
        let working_set = q
            .working_set
            .unwrap_or_else(|| DEFAULT_WORKING_SET_QUERY.into());
        if working_set.trim().is_empty() {
            self.problem("queries.working_set", "must not be empty");
        }
        let limits = q.limits.unwrap_or_else(|| DEFAULT_LIMITS_QUERY.into());
        if limits.trim().is_empty() {
            self.problem("queries.limits", "must not be empty");
        }
        let queries = Queries {
            working_set,
            limits,
            init_container_limits: optional(q.init_container_limits, DEFAULT_INIT_LIMITS_QUERY),
            cadvisor_limits: optional(q.cadvisor_limits, DEFAULT_CADVISOR_LIMITS_QUERY),
            restarts: optional(q.restarts, DEFAULT_RESTARTS_QUERY),
            oom_kills: optional(q.oom_kills, DEFAULT_OOM_QUERY),
        };
        // Every query headroom will send, read with the promql-parser crate (Prometheus'
        // grammar): an unbalanced brace, an unknown function, a bad regex are refused
        // before they are sent. What the parser lacks (experimental Prometheus
        // features, MetricsQL) is sent as written with `queries.strict: false`.
        let strict = q.strict.unwrap_or(true);
        let mut warnings = Vec::new();
        for (key, query) in [
            ("queries.working_set", Some(&queries.working_set)),
            ("queries.limits", Some(&queries.limits)),
            (
                "queries.init_container_limits",
                queries.init_container_limits.as_ref(),
            ),
            ("queries.cadvisor_limits", queries.cadvisor_limits.as_ref()),
            ("queries.restarts", queries.restarts.as_ref()),
            ("queries.oom_kills", queries.oom_kills.as_ref()),
        ] {
            if let Some(Err(why)) = query
                .filter(|q| !q.trim().is_empty())
                .map(|q| crate::source::promql::check_query(q))
            {
                if strict {
                    self.problem(
                        key,
                        format!("is not a PromQL expression headroom can read: {why} (queries.strict: false sends what its parser cannot read as written)"),
                    );
                } else {
                    warnings.push(format!(
                        "{key} is not a PromQL expression headroom can read ({why}); sent as written (queries.strict: false)"
                    ));
                }
            }
        }
        (queries, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_str(text, "test.yaml", &Overrides::default())
    }

    /// Issue 16: every mistake gets its own problem, at its own line, in one
    /// reading: unknown keys and wrong types hide nothing else; list items are
    /// located by their own lines; months, empty secrets and headroom's own alert
    /// labels are refused.
    #[test]
    fn every_problem_is_reported_at_once_at_its_own_line() {
        let text = "prometheus:\n  url: http://127.0.0.1:9\n  bogus: 1\nforecast:\n  pending_samples: many\npoll:\n  interval: 5M\nalerts:\n  labels:\n    severity: page\n    team: sre\nreceivers:\n  webhook:\n    - url: http://127.0.0.1:1/a\n    - url: http://127.0.0.1:1/b\n      hmac_secret: \"\"\n      extra: 1\n";
        let err = parse(text).unwrap_err();
        let found: Vec<(&str, Option<usize>)> = err
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        assert_eq!(
            found,
            [
                ("prometheus.bogus", Some(3)),
                ("forecast.pending_samples", Some(5)),
                ("poll.interval", Some(7)),
                ("alerts.labels.severity", Some(10)),
                ("receivers.webhook[1].hmac_secret", Some(16)),
                ("receivers.webhook[1].extra", Some(17)),
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("no months"), "{text}");
        assert!(text.contains("is set by headroom on every alert"), "{text}");
        assert!(text.contains("is empty"), "{text}");
    }

    /// Issue 18: what `config check` accepts, `run` can live with: durations that
    /// would overflow a timer, never poll, or time out before an answer are refused.
    #[test]
    fn durations_and_counts_are_bounded_per_key() {
        for (yaml, key) in [
            (
                "alerts:\n  retry_initial: 300000000000y\n",
                "alerts.retry_initial",
            ),
            ("alerts:\n  drain_timeout: 500w\n", "alerts.drain_timeout"),
            (
                "poll:\n  interval: 18446744073709551615s\n",
                "poll.interval",
            ),
            ("poll:\n  interval: 2h\n", "poll.interval"),
            ("store:\n  lookback: 1000000000y\n", "store.lookback"),
            (
                "server:\n  request_timeout: 1ms\n",
                "server.request_timeout",
            ),
            ("forecast:\n  min_history: 1ms\n", "forecast.min_history"),
            (
                "alerts:\n  queue_capacity: 18446744073709551615\n",
                "alerts.queue_capacity",
            ),
            (
                "receivers:\n  webhook:\n    - url: http://127.0.0.1:1/\n      timeout: 1ms\n",
                "receivers.webhook[0].timeout",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{yaml}: {err}");
            assert_eq!(err.problems[0].key, key, "{err}");
        }
    }

    #[test]
    fn an_unbalanced_query_is_refused_by_key() {
        let err = parse("queries:\n  working_set: 'max by (pod) (m{a=\"b\"'\n").unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].key, "queries.working_set");
        assert_eq!(err.problems[0].line, Some(2));
        assert!(err.problems[0].message.contains("inside braces"), "{err}");
        // What parses but Prometheus would still refuse.
        let err = parse("queries:\n  limits: 'max_over_tme(m[5m])'\n  restarts: 'm{a=~\"(\"}'\n")
            .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.to_string().contains("unknown function"), "{err}");
        assert!(err.to_string().contains("regex"), "{err}");
    }

    /// What the parser cannot read (experimental Prometheus syntax, MetricsQL) is
    /// refused by default, and sent as written with a warning under strict: false.
    #[test]
    fn queries_the_parser_cannot_read_pass_only_when_not_strict() {
        let query = "queries:\n  working_set: 'm{a=\"1\" or b=\"2\"}'\n";
        let err = parse(query).unwrap_err();
        assert!(err.to_string().contains("MetricsQL"), "{err}");
        assert!(err.to_string().contains("queries.strict: false"), "{err}");
        let c = parse(&format!("{query}  strict: false\n")).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("queries.working_set is not"),
            "{:?}",
            c.warnings
        );
        assert!(parse("").unwrap().warnings.is_empty());
    }

    /// Plain scalars are what their field wants, as in the file's own reading: a
    /// number where a string goes, also when another key is wrong.
    #[test]
    fn plain_numbers_fill_string_fields_even_beside_a_bad_key() {
        let text = "store:\n  long_backfill: 0\nprometheus:\n  headers:\n    X-Scope-OrgID: 1\nalerts:\n  labels:\n    tier: 1\n";
        assert!(parse(text).is_ok(), "{:?}", parse(text).err());
        let err = parse(&format!("{text}bogus: 1\n")).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].key, "bogus");
        assert_eq!(err.problems[0].line, Some(9));
        // An apostrophe in a comment hides no depth.
        let deep = format!(
            "# headroom's config\na: {}{}\n",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("levels of ["));
    }

    /// Issue 18: a file 100,000 levels deep took most of a minute to refuse; files
    /// no config needs are refused before they are parsed.
    #[test]
    fn files_too_deep_or_too_large_are_refused_at_once() {
        let flow = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let block: String = (0..400).map(|i| format!("{}b:\n", " ".repeat(i))).collect();
        let huge = format!("# {}\n", "x".repeat(2 << 20));
        for (text, says) in [
            (flow.as_str(), "levels of ["),
            (block.as_str(), "indented more than"),
            (huge.as_str(), "at most 1048576"),
        ] {
            let started = std::time::Instant::now();
            let err = parse(text).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        // Aliases that expand to billions of nodes ("billion laughs"), refused
        // before they are expanded.
        let mut laughs = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            laughs.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse(&laughs).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.to_string().contains("aliases (*name) expand"), "{err}");
        // Quotes hide brackets: a label value full of them is fine.
        assert!(parse("queries:\n  restarts: 'm{a=\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[a]\"}'\n").is_ok());
    }

    /// Issue 18: a config whose backfill would need millions of requests (and keep
    /// readiness waiting for hours) is refused, naming the keys to change.
    #[test]
    fn a_fine_tier_or_backfill_too_big_to_live_with_is_refused() {
        let err = parse(
            "prometheus:\n  max_points_per_request: 2\nstore:\n  lookback: 6h\n  resolution: 1s\n",
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].key, "prometheus.max_points_per_request");
        assert!(err.to_string().contains("10800 requests"), "{err}");
        // A fine tier of millions of samples a container is refused.
        let err = parse("store:\n  lookback: 30d\n  resolution: 1s\n").unwrap_err();
        assert_eq!(err.problems[0].key, "store.resolution", "{err}");
        assert!(
            err.to_string().contains("2592000 samples a container"),
            "{err}"
        );
        // A week at the default resolution is fine.
        assert!(parse("store:\n  lookback: 7d\n").is_ok());
    }

    #[test]
    fn empty_file_means_defaults() {
        let c = parse("# nothing here\n").unwrap();
        assert_eq!(c.prometheus.url.as_str(), "http://localhost:9090/");
        assert_eq!(c.store.lookback, Duration::from_secs(6 * 3600));
        assert_eq!(c.poll_interval, Duration::from_secs(30));
        assert_eq!(c.queries.working_set, DEFAULT_WORKING_SET_QUERY);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("prometheus:\n  url: http://x:9090\n  tmeout: 5s\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "test.yaml:3: prometheus.tmeout: unknown field `tmeout`, expected one of `url`"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let text = "\
prometheus:
  url: ftp://nope
  timeout: soon
store:
  lookback: six hours
forecast:
  critical_horizon: 48h
";
        let err = parse(text).unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("prometheus.url", Some(2)),
                ("prometheus.timeout", Some(3)),
                ("store.lookback", Some(5)),
                ("forecast.critical_horizon", Some(7)),
            ],
            "{err}"
        );
    }

    #[test]
    fn flag_overrides_file() {
        let overrides = Overrides {
            prometheus_url: Some("http://127.0.0.1:1234/prom".into()),
            ..Overrides::default()
        };
        let c = Config::parse_str("prometheus:\n  url: http://x:9090\n", "t", &overrides).unwrap();
        assert_eq!(c.prometheus.url.as_str(), "http://127.0.0.1:1234/prom/");
    }

    #[test]
    fn missing_secret_file_is_named() {
        let err = parse("prometheus:\n  bearer_token_file: /nonexistent/token\n").unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.key, "prometheus.bearer_token_file");
        assert_eq!(p.line, Some(2));
        assert!(p.message.contains("/nonexistent/token"));
    }

    #[test]
    fn secrets_never_print() {
        let c = parse("prometheus:\n  bearer_token: s3cr3t-value\n").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn empty_optional_query_switches_it_off() {
        let c = parse("queries:\n  restarts: \"\"\n").unwrap();
        assert!(c.queries.restarts.is_none());
        assert!(c.queries.cadvisor_limits.is_some());
    }

    #[test]
    fn wrong_type_is_structural_error_with_line() {
        let err = parse("identity:\n  extra_labels: cluster\n").unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.key, "identity.extra_labels");
        assert_eq!(p.line, Some(2));
    }
}

#[cfg(test)]
mod sharding_tests {
    use super::*;

    #[test]
    fn namespace_sharding_refuses_queries_it_cannot_rewrite() {
        let err = Config::parse_str(
            "sharding:\n  mode: namespace\nqueries:\n  working_set: 'rate(x[5m])'\n",
            "t",
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(err.problems[0].key, "queries.working_set");
        let ok = Config::parse_str("sharding:\n  mode: namespace\n", "t", &Overrides::default());
        assert!(ok.is_ok(), "the default queries are plain selectors");
    }

    #[test]
    fn shard_index_must_be_below_count() {
        let overrides = Overrides {
            shard_index: Some(2),
            shard_count: Some(2),
            ..Overrides::default()
        };
        let err = Config::parse_str("", "t", &overrides).unwrap_err();
        assert_eq!(err.problems[0].key, "sharding.index");
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn receiver_secrets_never_print() {
        let c = Config::parse_str(
            "receivers:\n  webhook:\n    - url: http://hook.example/TOKEN-1\n      headers:\n        Authorization: Bearer TOKEN-2\n      hmac_secret: TOKEN-3\n",
            "t",
            &Overrides::default(),
        )
        .unwrap();
        let debug = format!("{:?}", c.receivers);
        for secret in ["TOKEN-1", "TOKEN-2", "TOKEN-3"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }
}
