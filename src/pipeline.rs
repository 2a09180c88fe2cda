//! The one loop: source → store → model → a list of reports.
//!
//! [`Pipeline`] owns the store and a source. Each [`Pipeline::poll`] asks the source for
//! what is new since the last poll (the whole lookback the first time), folds it into
//! the store, and forecasts every container as of `now`. Callers pass `now`, so the same
//! pipeline serves the daemon (wall clock), `check --at` (a past instant) and tests.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Config;
use crate::model::{self, AlertParams, AlertState, ForecastParams, Trend};
use crate::report::{sort_by_urgency, ContainerReport};
use crate::source::{ContainerKey, Source, SourceError, TimestampMs, Window};
use crate::store::{IngestSummary, Store, StoreLimits, Tracked};

/// Turns the config's forecast section into the model's parameters.
pub fn forecast_params(config: &Config) -> ForecastParams {
    ForecastParams {
        warning_horizon_seconds: config.forecast.warning_horizon.as_secs_f64(),
        critical_horizon_seconds: config.forecast.critical_horizon.as_secs_f64(),
        min_history_seconds: config.forecast.min_history.as_secs_f64(),
        ..ForecastParams::default()
    }
}

/// Turns the config's alert timing into the alert state machine's parameters.
pub fn alert_params(config: &Config) -> AlertParams {
    AlertParams {
        pending_warning_seconds: config.forecast.warning_pending.as_secs_f64(),
        pending_critical_seconds: config.forecast.critical_pending.as_secs_f64(),
        keep_firing_for_seconds: config.forecast.keep_firing_for.as_secs_f64(),
        hysteresis: AlertParams::default().hysteresis,
    }
}

/// One container's recent history for charts: samples (downsampled, peaks kept) and
/// the fitted trend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerHistory {
    /// (ms, bytes), every segment in the lookback, in time order.
    pub samples: Vec<(TimestampMs, f64)>,
    /// Where each segment begins (ms).
    pub segment_starts: Vec<TimestampMs>,
    pub trend: Option<Trend>,
}

/// The most points a chart's history keeps.
pub const HISTORY_POINTS: usize = 360;

/// What one poll did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSummary {
    pub window: Option<Window>,
    pub ingest: IngestSummary,
    pub containers: usize,
}

pub struct Pipeline<S> {
    source: S,
    store: Store,
    step: Duration,
    lookback: Duration,
    min_limit_bytes: f64,
    params: ForecastParams,
    alert_params: AlertParams,
    /// Each container's alert state, carried from evaluation to evaluation.
    alerts: HashMap<ContainerKey, AlertState>,
    /// The last trend fitted per container, for charts.
    trends: HashMap<ContainerKey, Trend>,
    /// The end of the last window fetched; `None` until the first (backfill) poll.
    fetched_until: Option<TimestampMs>,
}

impl<S: Source> Pipeline<S> {
    pub fn new(source: S, config: &Config) -> Self {
        let step = config.store.resolution;
        Pipeline {
            source,
            store: Store::new(StoreLimits {
                lookback_ms: config.store.lookback.as_millis() as i64,
                forget_after_ms: config.store.forget_after.as_millis() as i64,
                step_ms: step.as_millis() as i64,
            }),
            step,
            lookback: config.store.lookback,
            min_limit_bytes: config.forecast.min_limit_bytes as f64,
            params: forecast_params(config),
            alert_params: alert_params(config),
            alerts: HashMap::new(),
            trends: HashMap::new(),
            fetched_until: None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// The window the next poll at `now` would fetch: the whole lookback first, then
    /// only what is new. Bounds are aligned to the step so that consecutive polls see
    /// the same sample times. `None` when nothing new is due yet.
    pub fn next_window(&self, now: TimestampMs) -> Option<Window> {
        let step_ms = (self.step.as_millis() as i64).max(1);
        let end = now - now.rem_euclid(step_ms);
        let start = match self.fetched_until {
            Some(until) => until + step_ms,
            None => {
                let from = end - self.lookback.as_millis() as i64;
                from - from.rem_euclid(step_ms)
            }
        };
        (start <= end).then_some(Window {
            start,
            end,
            step: self.step,
        })
    }

    /// Fetches what is new as of `now` and folds it into the store.
    pub async fn poll(&mut self, now: TimestampMs) -> Result<PollSummary, SourceError> {
        let Some(window) = self.next_window(now) else {
            return Ok(PollSummary {
                window: None,
                ingest: IngestSummary::default(),
                containers: self.store.len(),
            });
        };
        let batch = self.source.fetch(window).await?;
        if batch.series_without_identity > 0 {
            tracing::debug!(
                series = batch.series_without_identity,
                "ignored working-set series without namespace, pod or container"
            );
        }
        let ingest = self.store.ingest(batch, window.end);
        self.fetched_until = Some(window.end);
        Ok(PollSummary {
            window: Some(window),
            ingest,
            containers: self.store.len(),
        })
    }

    /// Forecasts every tracked container as of `now`, most urgent first, without
    /// touching alert states (`alert` stays as the last evaluation left it).
    pub fn reports(&self, now: TimestampMs) -> Vec<ContainerReport> {
        let mut reports: Vec<ContainerReport> = self
            .store
            .iter()
            .filter_map(|(key, tracked)| {
                let forecast = self.forecast(tracked, now)?;
                let mut report = ContainerReport::new(key, tracked, &forecast, now);
                report.alert = self.alerts.get(key).and_then(AlertState::firing);
                Some(report)
            })
            .collect();
        sort_by_urgency(&mut reports);
        reports
    }

    fn forecast(&self, tracked: &Tracked, now: TimestampMs) -> Option<model::Forecast> {
        let segment = tracked.current()?;
        let limit = tracked
            .limit
            .and_then(|l| l.bytes)
            .filter(|&b| b >= self.min_limit_bytes);
        Some(model::forecast(&segment.samples, limit, now, &self.params))
    }

    /// Forecasts every container as of `now` and folds each forecast into its alert
    /// state: what the daemon does every poll. Most urgent first.
    pub fn evaluate(&mut self, now: TimestampMs) -> Vec<ContainerReport> {
        let mut reports = Vec::with_capacity(self.store.len());
        for (key, tracked) in self.store.iter() {
            let Some(forecast) = self.forecast(tracked, now) else {
                continue;
            };
            let state = self.alerts.entry(key.clone()).or_default();
            let alert = state.update(&forecast, &self.params, &self.alert_params, now);
            match forecast.trend {
                Some(trend) => {
                    self.trends.insert(key.clone(), trend);
                }
                None => {
                    self.trends.remove(key);
                }
            }
            let mut report = ContainerReport::new(key, tracked, &forecast, now);
            report.alert = alert;
            reports.push(report);
        }
        // Containers the store forgot take their alert state with them.
        let store = &self.store;
        self.alerts.retain(|key, _| store.get(key).is_some());
        self.trends.retain(|key, _| store.get(key).is_some());
        sort_by_urgency(&mut reports);
        reports
    }

    /// Replays the evaluations of the `warmup` before `at` (one per step) so that
    /// alerts carry their pending periods, as in a daemon that had been running: what
    /// `check` prints.
    pub fn evaluate_with_warmup(
        &mut self,
        at: TimestampMs,
        warmup: Duration,
    ) -> Vec<ContainerReport> {
        let step = (self.step.as_millis() as i64).max(1);
        let mut t = at - warmup.as_millis() as i64;
        while t < at {
            self.evaluate(t);
            t += step;
        }
        self.evaluate(at)
    }

    /// A container's recent history for charts, at most [`HISTORY_POINTS`] points
    /// (each the highest sample of its stretch, so peaks survive).
    pub fn history(&self, key: &ContainerKey) -> Option<ContainerHistory> {
        let tracked = self.store.get(key)?;
        let total = tracked.sample_count();
        let per_point = total.div_ceil(HISTORY_POINTS).max(1);
        let mut samples = Vec::with_capacity(total / per_point + tracked.segments.len());
        let mut segment_starts = Vec::new();
        for segment in &tracked.segments {
            if let Some(start) = segment.start() {
                segment_starts.push(start);
            }
            for chunk in segment.samples.chunks(per_point) {
                let peak = chunk
                    .iter()
                    .max_by(|a, b| a.bytes.total_cmp(&b.bytes))
                    .expect("chunks are not empty");
                samples.push((chunk[chunk.len() - 1].at, peak.bytes));
            }
        }
        Some(ContainerHistory {
            samples,
            segment_starts,
            trend: self.trends.get(key).copied(),
        })
    }
}
