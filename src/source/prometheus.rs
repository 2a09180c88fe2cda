//! A client for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`), as
//! served by Prometheus, Thanos Query, Mimir and VictoriaMetrics.
//!
//! It owns transport concerns only: authentication, TLS, timeouts, splitting long range
//! queries under Prometheus' 11,000-points-per-series limit, bounding concurrency, and
//! turning every failure into a [`QueryError`] that says what Prometheus answered. It
//! knows nothing about containers; `source::kubernetes` gives the series meaning.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::config::PrometheusConfig;
use crate::vocab::{Auth, Labels, TimestampMs};

/// One series of a range query, with non-finite samples already dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<(TimestampMs, f64)>,
}

/// One sample of an instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub at: TimestampMs,
    pub value: f64,
}

/// What went wrong talking to Prometheus. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot reach Prometheus at {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("Prometheus at {url} answered HTTP {status}{}: {body_excerpt}",
        api_error.as_ref().map(|(t, e)| format!(" ({t}: {e})")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        /// Prometheus' `errorType` and `error`, when the body carried them.
        api_error: Option<(String, String)>,
        body_excerpt: String,
    },
    #[error("Prometheus at {url} answered with invalid JSON ({reason}): {body_excerpt}")]
    InvalidJson {
        url: String,
        reason: String,
        body_excerpt: String,
    },
    #[error("Prometheus at {url} answered more than {limit} bytes (prometheus.max_response_bytes): raise it, narrow queries.working_set, or split the fleet with --shard-count")]
    TooLarge { url: String, limit: u64 },
    #[error("Prometheus at {url} answered more than {limit} series (prometheus.max_series): raise it, narrow the queries, or split the fleet with --shard-count")]
    TooManySeries { url: String, limit: usize },
    #[error("query {query:?} returned a {got} result; headroom needs a {expected}")]
    WrongResultType {
        query: String,
        expected: &'static str,
        got: String,
    },
    #[error("not a Prometheus API response ({reason}): {body_excerpt}")]
    SavedResponse {
        reason: String,
        body_excerpt: String,
    },
    #[error("cannot use secret: {0}")]
    Secret(String),
    #[error("cannot build HTTP client: {0}")]
    Client(String),
    /// A configured query that cannot be rewritten (config check refuses those).
    #[error("cannot add matchers to the {0}")]
    BadQuery(String),
}

impl QueryError {
    /// A short, stable reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            QueryError::Transport { .. } => "transport",
            QueryError::Timeout { .. } => "timeout",
            QueryError::Status { status, .. } if *status >= 500 => "http_5xx",
            QueryError::Status { .. } => "http_4xx",
            QueryError::InvalidJson { .. } | QueryError::SavedResponse { .. } => "invalid_response",
            QueryError::WrongResultType { .. } => "wrong_result_type",
            QueryError::TooLarge { .. } => "too_large",
            QueryError::TooManySeries { .. } => "too_many_series",
            QueryError::Secret(_) => "secret",
            QueryError::Client(_) => "client",
            QueryError::BadQuery(_) => "bad_query",
        }
    }
}

/// Counters of what the client did, for headroom's own metrics and benchmarks.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub requests: AtomicU64,
    pub failed_requests: AtomicU64,
    pub response_bytes: AtomicU64,
    pub samples: AtomicU64,
    /// `NaN` and `±Inf` samples, parsed and then dropped: they cannot be fitted.
    pub non_finite_samples: AtomicU64,
    /// Wall time spent waiting for answers, summed over requests (µs).
    pub request_micros: AtomicU64,
}

impl FetchStats {
    pub fn snapshot(&self) -> FetchTotals {
        FetchTotals {
            requests: self.requests.load(Ordering::Relaxed),
            failed_requests: self.failed_requests.load(Ordering::Relaxed),
            response_bytes: self.response_bytes.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
            non_finite_samples: self.non_finite_samples.load(Ordering::Relaxed),
            request_micros: self.request_micros.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`FetchStats`] at one moment; subtract two to get one poll's figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FetchTotals {
    pub requests: u64,
    pub failed_requests: u64,
    pub response_bytes: u64,
    pub samples: u64,
    pub non_finite_samples: u64,
    pub request_micros: u64,
}

/// What was fetched since `earlier` (zero for a counter that started again, as a
/// reloaded source's does).
impl std::ops::Sub for FetchTotals {
    type Output = FetchTotals;
    fn sub(self, earlier: FetchTotals) -> FetchTotals {
        FetchTotals {
            requests: self.requests.saturating_sub(earlier.requests),
            failed_requests: self.failed_requests.saturating_sub(earlier.failed_requests),
            response_bytes: self.response_bytes.saturating_sub(earlier.response_bytes),
            samples: self.samples.saturating_sub(earlier.samples),
            non_finite_samples: self
                .non_finite_samples
                .saturating_sub(earlier.non_finite_samples),
            request_micros: self.request_micros.saturating_sub(earlier.request_micros),
        }
    }
}

/// The Prometheus API client. Cheap to clone; clones share the connection pool,
/// the concurrency limit and the stats.
#[derive(Clone)]
pub struct PrometheusClient {
    http: reqwest::Client,
    base: reqwest::Url,
    auth: Auth,
    timeout: Duration,
    max_points_per_request: u32,
    max_concurrent_requests: usize,
    max_response_bytes: u64,
    max_series: usize,
    permits: Arc<Semaphore>,
    stats: Arc<FetchStats>,
}

const BODY_EXCERPT_CHARS: usize = 300;

impl PrometheusClient {
    pub fn new(config: &PrometheusConfig) -> Result<Self, QueryError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| QueryError::Client(format!("header {name}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| QueryError::Client(format!("header {name}: {e}")))?;
            headers.insert(name, value);
        }
        let builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("headroom/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(config.max_concurrent_requests)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)));
        let builder = config.tls.apply(builder).map_err(QueryError::Client)?;
        let http = builder
            .build()
            .map_err(|e| QueryError::Client(e.without_url().to_string()))?;
        Ok(PrometheusClient {
            http,
            base: config.url.clone(),
            auth: config.auth.clone(),
            timeout: config.timeout,
            max_points_per_request: config.max_points_per_request,
            max_concurrent_requests: config.max_concurrent_requests,
            max_response_bytes: config.max_response_bytes,
            max_series: config.max_series,
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            stats: Arc::new(FetchStats::default()),
        })
    }

    pub fn stats(&self) -> &FetchStats {
        &self.stats
    }

    /// Evaluates `query` at one instant; the result must be an instant vector.
    pub async fn query(
        &self,
        query: &str,
        at: TimestampMs,
    ) -> Result<Vec<InstantSample>, QueryError> {
        let form = [
            ("query", query.to_string()),
            ("time", format_seconds(at)),
            ("timeout", format!("{}ms", self.timeout.as_millis())),
        ];
        match self.post("api/v1/query", &form, None).await? {
            Data::Vector(Capped(samples)) => Ok(samples
                .into_iter()
                .filter_map(|s| {
                    let (at, value) = self.sample(s.value)?;
                    Some(InstantSample {
                        labels: s.metric,
                        at,
                        value,
                    })
                })
                .collect()),
            other => Err(QueryError::WrongResultType {
                query: query.to_string(),
                expected: "vector",
                got: other.kind().to_string(),
            }),
        }
    }

    /// Evaluates `query` over `[start, end]` every `step`, splitting the range so that no
    /// request asks for more than `max_points_per_request` points per series, with at most
    /// `max_concurrent_requests` requests in flight. Series are merged across the pieces.
    pub async fn query_range(
        &self,
        query: &str,
        start: TimestampMs,
        end: TimestampMs,
        step: Duration,
    ) -> Result<Vec<RangeSeries>, QueryError> {
        let pieces = split_range(start, end, step, self.max_points_per_request);
        let step_text = format!("{}ms", step.as_millis().max(1));
        let responses: Vec<Vec<RangeSeries>> = stream::iter(pieces)
            .map(|(piece_start, piece_end)| {
                let form = [
                    ("query", query.to_string()),
                    ("start", format_seconds(piece_start)),
                    ("end", format_seconds(piece_end)),
                    ("step", step_text.clone()),
                    ("timeout", format!("{}ms", self.timeout.as_millis())),
                ];
                async move {
                    let data = self.post("api/v1/query_range", &form, None).await?;
                    self.matrix(query, data)
                }
            })
            .buffered(self.max_concurrent_requests)
            .try_collect()
            .await?;
        Ok(merge_pieces(responses))
    }

    /// The raw samples of `selector` (a plain series selector) in `(after, end]`, as
    /// scraped: one instant query of `selector[range]` per piece, the pieces no longer
    /// than `max_points_per_request` steps and fetched one after another. This is the
    /// cheapest read Prometheus has: no evaluation per step, only the chunks decoded
    /// (on a 10,000-container backfill its engine spent 0.14 s per million samples,
    /// against 1.8 s for `max by` over a range query of the same span). Each series
    /// keeps only the `keep` labels: series that differ only in others come back as
    /// several series of the same labels, for the caller to merge.
    pub async fn read_raw(
        &self,
        selector: &str,
        after: TimestampMs,
        end: TimestampMs,
        step: Duration,
        keep: &[String],
    ) -> Result<Vec<RangeSeries>, QueryError> {
        let piece_ms =
            (step.as_millis() as i64).max(1) * i64::from(self.max_points_per_request.max(1));
        let mut pieces = Vec::new();
        let mut from = after;
        while from < end {
            let to = (from + piece_ms).min(end);
            let query = format!("{selector}[{}ms]", to - from);
            let form = [
                ("query", query.clone()),
                ("time", format_seconds(to)),
                ("timeout", format!("{}ms", self.timeout.as_millis())),
            ];
            let data = self.post("api/v1/query", &form, Some(keep)).await?;
            let mut piece = self.matrix(&query, data)?;
            // Prometheus 2 includes a sample exactly at the range's start, Prometheus 3
            // does not: keep (from, to] either way.
            for series in &mut piece {
                series.samples.retain(|&(at, _)| at > from);
            }
            pieces.push(piece);
            from = to;
        }
        Ok(merge_pieces(pieces))
    }

    fn matrix(&self, query: &str, data: Data) -> Result<Vec<RangeSeries>, QueryError> {
        match data {
            Data::Matrix(Capped(series)) => Ok(range_series(series, |v| self.sample(v))),
            other => Err(QueryError::WrongResultType {
                query: query.to_string(),
                expected: "matrix",
                got: other.kind().to_string(),
            }),
        }
    }

    /// A sample counted in the stats; `None` (and counted) when not finite.
    fn sample(&self, wire: (f64, SampleValue)) -> Option<(TimestampMs, f64)> {
        self.stats.samples.fetch_add(1, Ordering::Relaxed);
        let kept = finite(wire);
        if kept.is_none() {
            self.stats
                .non_finite_samples
                .fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// Sends a query form to `path` and parses the answer, keeping only the `keep`
    /// labels of each series when given.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        keep: Option<&[String]>,
    ) -> Result<Data, QueryError> {
        let url = self
            .base
            .join(path)
            .expect("API paths are valid relative URLs");
        let shown_url = url.to_string();
        let _permit = self.permits.acquire().await.expect("never closed");
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let result = self.post_once(url, &shown_url, form, keep).await;
        self.stats
            .request_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        if result.is_err() {
            self.stats.failed_requests.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn post_once(
        &self,
        url: reqwest::Url,
        shown_url: &str,
        form: &[(&str, String)],
        keep: Option<&[String]>,
    ) -> Result<Data, QueryError> {
        let mut request = self.http.post(url).form(form).timeout(self.timeout);
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.bearer_auth(token.read().map_err(QueryError::Secret)?)
            }
            Auth::Basic { username, password } => {
                request =
                    request.basic_auth(username, Some(password.read().map_err(QueryError::Secret)?))
            }
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                QueryError::Timeout {
                    url: shown_url.to_string(),
                    timeout: self.timeout,
                }
            } else {
                QueryError::Transport {
                    url: shown_url.to_string(),
                    reason: error_chain(&e.without_url()),
                }
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let too_large = || QueryError::TooLarge {
            url: shown_url.to_string(),
            limit: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_response_bytes)
        {
            return Err(too_large());
        }
        // Read in chunks, so an answer past the cap is refused before it is held.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        self.stats
            .response_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);

        let (parsed, over_cap) = parse_capped(&body, self.max_series, keep);
        if over_cap {
            return Err(QueryError::TooManySeries {
                url: shown_url.to_string(),
                limit: self.max_series,
            });
        }
        if !status.is_success() {
            let api_error = parsed.ok().and_then(|r| Some((r.error_type?, r.error?)));
            return Err(QueryError::Status {
                url: shown_url.to_string(),
                status: status.as_u16(),
                api_error,
                body_excerpt: excerpt(&body),
            });
        }
        let response = parsed.map_err(|e| QueryError::InvalidJson {
            url: shown_url.to_string(),
            reason: e.to_string(),
            body_excerpt: excerpt(&body),
        })?;
        for warning in &response.warnings {
            tracing::warn!(url = shown_url, warning = %warning, "Prometheus returned a warning");
        }
        if response.status != "success" {
            return Err(QueryError::Status {
                url: shown_url.to_string(),
                status: status.as_u16(),
                api_error: Some((
                    response.error_type.unwrap_or_default(),
                    response.error.unwrap_or_default(),
                )),
                body_excerpt: excerpt(&body),
            });
        }
        response.data.ok_or_else(|| QueryError::InvalidJson {
            url: shown_url.to_string(),
            reason: "status success without data".into(),
            body_excerpt: excerpt(&body),
        })
    }
}

/// The wire format of every API answer.
#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Matrix(Capped<WireRangeSeries>),
    Vector(Capped<WireInstantSample>),
    Scalar(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

impl Data {
    fn kind(&self) -> &'static str {
        match self {
            Data::Matrix(_) => "matrix",
            Data::Vector(_) => "vector",
            Data::Scalar(_) => "scalar",
            Data::String(_) => "string",
        }
    }
}

#[derive(Deserialize)]
struct WireRangeSeries {
    #[serde(deserialize_with = "kept_labels")]
    metric: Labels,
    values: Vec<(f64, SampleValue)>,
}

thread_local! {
    /// While an answer is parsed on this thread: the most series it may hold, and
    /// whether it held more (see [`parse_capped`]).
    static SERIES_CAP: std::cell::Cell<(usize, bool)> =
        const { std::cell::Cell::new((usize::MAX, false)) };
    /// While an answer is parsed on this thread: the only labels its range series
    /// keep, when set (see [`parse_capped`]).
    static KEEP_LABELS: std::cell::RefCell<Option<Vec<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// Parses an answer, refusing it as soon as it holds more than `max_series` series,
/// before they are built (a million series of labels take gigabytes). Returns the
/// parse, and whether the cap stopped it.
///
/// With `keep`, a range answer's series keep only those labels: the rest are
/// skipped as they are read, never allocated into the label maps.
fn parse_capped(
    body: &[u8],
    max_series: usize,
    keep: Option<&[String]>,
) -> (Result<ApiResponse, serde_json::Error>, bool) {
    SERIES_CAP.with(|c| c.set((max_series, false)));
    KEEP_LABELS.with(|k| *k.borrow_mut() = keep.map(<[String]>::to_vec));
    let parsed = serde_json::from_slice(body);
    KEEP_LABELS.with(|k| *k.borrow_mut() = None);
    let over = SERIES_CAP.with(|c| c.replace((usize::MAX, false)).1);
    (parsed, over)
}

/// A range series' labels, only those in the thread's [`KEEP_LABELS`] when it is
/// set. A raw read of cAdvisor's working set brings a dozen labels a series (image,
/// name, instance, job, node, ...), and a label map of them costs about 2 KB; the
/// identity and `id` are all headroom reads of them.
fn kept_labels<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Labels, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Labels;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of label names to values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
            KEEP_LABELS.with(|keep| {
                let keep = keep.borrow();
                let mut labels = Labels::new();
                while let Some(LabelName(name)) = map.next_key()? {
                    let wanted = keep.as_ref().is_none_or(|k| k.iter().any(|n| *n == name));
                    if wanted {
                        labels.insert(name.into_owned(), map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(labels)
            })
        }
    }
    deserializer.deserialize_map(Visitor)
}

/// A label name, borrowed from the answer where its JSON allows (no escapes): the
/// labels [`kept_labels`] skips are never allocated.
struct LabelName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for LabelName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LabelName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a label name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<LabelName<'de>, E> {
                Ok(LabelName(name.into()))
            }
            fn visit_str<E>(self, name: &str) -> Result<LabelName<'de>, E> {
                Ok(LabelName(name.to_owned().into()))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A result list that stops at the thread's [`SERIES_CAP`].
struct Capped<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Capped<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of series")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Capped<T>, A::Error> {
                let cap = SERIES_CAP.with(|c| c.get().0);
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element()? {
                    if out.len() == cap {
                        SERIES_CAP.with(|c| c.set((cap, true)));
                        return Err(serde::de::Error::custom(format!("more than {cap} series")));
                    }
                    out.push(item);
                }
                Ok(Capped(out))
            }
        }
        deserializer.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

/// A sample value as Prometheus sends it, a JSON string ("1.5e8", "NaN", "+Inf"),
/// parsed straight from the response buffer without allocating a String per sample.
struct SampleValue(f64);

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SampleValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sample value as a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SampleValue, E> {
                // Prometheus spells these "NaN", "+Inf" and "-Inf"; Rust's parser reads all three.
                v.parse::<f64>()
                    .map(SampleValue)
                    .map_err(|_| E::custom(format!("{v:?} is not a sample value")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[derive(Deserialize)]
struct WireInstantSample {
    metric: Labels,
    value: (f64, SampleValue),
}

/// The latest sample time taken (ms): the year 2255. A timestamp past it (or before
/// 1970) is a broken source, dropped as a non-finite value is, never allowed near
/// the arithmetic of windows and deadlines.
pub const LATEST_SAMPLE_MS: TimestampMs = 9_000_000_000_000;

/// A wire sample in milliseconds, or `None` when its value is NaN or ±Inf (they
/// cannot be fitted) or its time is outside 1970..=2255.
fn finite((at_seconds, SampleValue(value)): (f64, SampleValue)) -> Option<(TimestampMs, f64)> {
    let at = (at_seconds * 1000.0).round();
    (value.is_finite() && (0.0..=LATEST_SAMPLE_MS as f64).contains(&at))
        .then_some((at as i64, value))
}

/// Wire series to ours, every sample through `sample` (dropped where it says `None`).
fn range_series(
    series: Vec<WireRangeSeries>,
    mut sample: impl FnMut((f64, SampleValue)) -> Option<(TimestampMs, f64)>,
) -> Vec<RangeSeries> {
    series
        .into_iter()
        .map(|s| RangeSeries {
            labels: s.metric,
            samples: s.values.into_iter().filter_map(&mut sample).collect(),
        })
        .collect()
}

/// Parses a saved `/api/v1/query_range` response, as `curl` prints it. Used by backtests
/// and tests; non-finite samples are dropped and counted in the returned total.
pub fn parse_range_response(body: &[u8]) -> Result<(Vec<RangeSeries>, u64), QueryError> {
    let saved = |reason: String| QueryError::SavedResponse {
        reason,
        body_excerpt: excerpt(body),
    };
    let response: ApiResponse =
        serde_json::from_slice(body).map_err(|e| saved(format!("invalid JSON: {e}")))?;
    match response.data {
        Some(Data::Matrix(Capped(series))) => {
            let mut dropped = 0;
            let series = range_series(series, |v| {
                let kept = finite(v);
                dropped += u64::from(kept.is_none());
                kept
            });
            Ok((series, dropped))
        }
        Some(other) => Err(saved(format!(
            "it holds a {} result; a /api/v1/query_range answer holds a matrix",
            other.kind()
        ))),
        None => Err(saved(format!(
            "status {:?} without data: {} {}",
            response.status,
            response.error_type.unwrap_or_default(),
            response.error.unwrap_or_default()
        ))),
    }
}

/// Splits `[start, end]` into pieces of at most `max_points` step-spaced points each.
/// Pieces do not overlap: each starts one step after the previous one ends.
pub fn split_range(
    start: TimestampMs,
    end: TimestampMs,
    step: Duration,
    max_points: u32,
) -> Vec<(TimestampMs, TimestampMs)> {
    let step_ms = (step.as_millis() as i64).max(1);
    let span = step_ms * (i64::from(max_points.max(1)) - 1);
    let mut pieces = Vec::new();
    let mut piece_start = start;
    while piece_start <= end {
        let piece_end = (piece_start + span).min(end);
        pieces.push((piece_start, piece_end));
        piece_start = piece_end + step_ms;
    }
    pieces
}

fn merge_pieces(responses: Vec<Vec<RangeSeries>>) -> Vec<RangeSeries> {
    if responses.len() == 1 {
        return responses.into_iter().next().unwrap_or_default();
    }
    let mut merged: BTreeMap<Labels, Vec<(TimestampMs, f64)>> = BTreeMap::new();
    for series in responses.into_iter().flatten() {
        merged
            .entry(series.labels)
            .or_default()
            .extend(series.samples);
    }
    merged
        .into_iter()
        .map(|(labels, samples)| RangeSeries { labels, samples })
        .collect()
}

fn format_seconds(at: TimestampMs) -> String {
    // f64 holds millisecond timestamps of this era exactly to three decimals.
    format!("{:.3}", at as f64 / 1000.0)
}

fn excerpt(body: &[u8]) -> String {
    crate::units::excerpt(&String::from_utf8_lossy(body), BODY_EXCERPT_CHARS)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_point_limit_and_covers_range() {
        let step = Duration::from_secs(30);
        let pieces = split_range(0, 6 * 3600 * 1000, step, 11_000);
        assert_eq!(pieces, vec![(0, 6 * 3600 * 1000)]);

        let pieces = split_range(0, 10 * 30_000, step, 4);
        assert_eq!(
            pieces,
            vec![(0, 90_000), (120_000, 210_000), (240_000, 300_000)]
        );
        for (s, e) in &pieces {
            let points = (e - s) / 30_000 + 1;
            assert!(points <= 4, "{points} points");
        }
    }

    #[test]
    fn saved_response_parses_and_drops_non_finite() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1.5,"1"],[2,"NaN"],[3,"+Inf"],[4,"-Inf"],[5,"2e3"]]}]}}"#;
        let (series, dropped) = parse_range_response(body).unwrap();
        assert_eq!(dropped, 3);
        assert_eq!(series[0].samples, vec![(1500, 1.0), (5000, 2000.0)]);
    }

    /// Issue 18 (found by the fuzz campaign): a timestamp of 10^18 seconds became
    /// i64::MAX milliseconds and overflowed the store's window arithmetic. Times
    /// outside 1970..=2255 are dropped as non-finite values are.
    #[test]
    fn samples_outside_sane_times_are_dropped() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1e18,"1"],[-5,"1"],[1700000000,"2"]]}]}}"#;
        let (series, dropped) = parse_range_response(body).unwrap();
        assert_eq!(dropped, 2);
        assert_eq!(series[0].samples, vec![(1_700_000_000_000, 2.0)]);
    }

    /// A raw read keeps only the labels asked for; parses without a list, and a saved
    /// answer parsed on the same thread after it, keep all of theirs.
    #[test]
    fn range_series_keep_only_the_labels_asked_for() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"w","namespace":"n","pod":"p","container":"c","id":"/k/p/c","image":"i:1","node":"n1","instance":"10.0.0.1:10250"},"values":[[1700000000,"5"]]}]}}"#;
        let keep = ["namespace", "pod", "container", "id"].map(String::from);
        let labels = |keep: Option<&[String]>| match parse_capped(body, 10, keep).0 {
            Ok(ApiResponse {
                data: Some(Data::Matrix(Capped(series))),
                ..
            }) => series[0]
                .metric
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(","),
            _ => panic!("a matrix"),
        };
        assert_eq!(labels(Some(&keep)), "container,id,namespace,pod");
        let all = "__name__,container,id,image,instance,namespace,node,pod";
        assert_eq!(labels(None), all);
        // The list is the parse's alone: a saved answer read next keeps every label.
        assert_eq!(labels(Some(&keep)), "container,id,namespace,pod");
        let (saved, _) = parse_range_response(body).unwrap();
        let saved: Vec<_> = saved[0].labels.keys().cloned().collect();
        assert_eq!(saved.join(","), all);
        // A name written with escapes is read as the name it spells.
        let escaped = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"na\u006despace":"n","im\u0061ge":"i"},"values":[[1700000000,"5"]]}]}}"#;
        let Ok(ApiResponse {
            data: Some(Data::Matrix(Capped(series))),
            ..
        }) = parse_capped(escaped, 10, Some(&keep)).0
        else {
            panic!("a matrix");
        };
        assert_eq!(
            series[0].metric.get("namespace").map(String::as_str),
            Some("n")
        );
        assert_eq!(series[0].metric.len(), 1);
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "x".repeat(1000);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), BODY_EXCERPT_CHARS + 1);
    }

    #[test]
    fn seconds_format_keeps_millis() {
        assert_eq!(format_seconds(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_seconds(-1), "-0.001");
    }
}
