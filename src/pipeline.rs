//! The one loop: source → store → model → a list of reports.
//!
//! [`Pipeline`] owns the store and a source. Each [`Pipeline::poll`] asks the source for
//! what is new since the last poll (the whole lookback the first time), folds it into
//! the store, and forecasts every container as of `now`. Callers pass `now`, so the same
//! pipeline serves the daemon (wall clock), `check --at` (a past instant) and tests.

use std::time::Duration;

use crate::config::Config;
use crate::model::{self, ForecastParams};
use crate::report::{sort_by_urgency, ContainerReport};
use crate::source::{Source, SourceError, TimestampMs, Window};
use crate::store::{IngestSummary, Store, StoreLimits};

/// Turns the config's forecast section into the model's parameters.
pub fn forecast_params(config: &Config) -> ForecastParams {
    ForecastParams {
        warning_horizon_seconds: config.forecast.warning_horizon.as_secs_f64(),
        critical_horizon_seconds: config.forecast.critical_horizon.as_secs_f64(),
        min_history_seconds: config.forecast.min_history.as_secs_f64(),
        ..ForecastParams::default()
    }
}

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

    /// Forecasts every tracked container as of `now`, most urgent first.
    pub fn reports(&self, now: TimestampMs) -> Vec<ContainerReport> {
        let mut reports: Vec<ContainerReport> = self
            .store
            .iter()
            .filter_map(|(key, tracked)| {
                let segment = tracked.current()?;
                let limit = tracked
                    .limit
                    .and_then(|l| l.bytes)
                    .filter(|&b| b >= self.min_limit_bytes);
                let forecast = model::forecast(&segment.samples, limit, now, &self.params);
                Some(ContainerReport::new(key, tracked, &forecast, now))
            })
            .collect();
        sort_by_urgency(&mut reports);
        reports
    }
}
