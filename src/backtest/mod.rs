//! Replays history through the same model and alert state machine the daemon uses:
//! for `headroom backtest`, and for the accuracy benchmark's scoring.
//!
//! A replay walks one container's segments in time, and at every step forecasts from
//! the samples a daemon would have held then (the current segment, within the
//! lookback, nothing later), then folds the forecast into the container's alert state.

pub mod accuracy;

use crate::model::{self, AlertParams, AlertState, Forecast, ForecastParams, Sample, Severity};

/// How a replay evaluates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayParams {
    pub forecast: ForecastParams,
    pub alert: AlertParams,
    /// Time between evaluations (ms).
    pub step_ms: i64,
    /// History a daemon keeps (ms).
    pub lookback_ms: i64,
}

/// One evaluation of a replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub at: i64,
    /// Index of the segment evaluated.
    pub segment: usize,
    pub forecast: Forecast,
    /// The alert as it would be sent.
    pub alert: Option<Severity>,
}

/// Replays `segments` (oldest first, each in time order) and calls `each` for every
/// evaluation, from one step after the first sample (or from `from`, if later) to the
/// last sample.
pub fn replay(
    segments: &[Vec<Sample>],
    limit_bytes: Option<f64>,
    params: &ReplayParams,
    from: i64,
    mut each: impl FnMut(&Evaluation),
) {
    let Some(first) = segments.iter().find_map(|s| s.first()) else {
        return;
    };
    let last = segments
        .iter()
        .filter_map(|s| s.last())
        .map(|s| s.at)
        .max()
        .unwrap_or(first.at);
    let step = params.step_ms.max(1);
    let mut state = AlertState::default();
    let mut current = 0usize;
    let mut at = first.at + step;
    if from > at {
        at += (from - at + step - 1) / step * step;
    }
    while at <= last {
        while current + 1 < segments.len()
            && segments[current + 1].first().is_some_and(|s| s.at <= at)
        {
            current += 1;
        }
        let segment = &segments[current];
        let end = segment.partition_point(|s| s.at <= at);
        let begin = segment[..end].partition_point(|s| s.at < at - params.lookback_ms);
        let forecast = model::forecast(&segment[begin..end], limit_bytes, at, &params.forecast);
        let alert = state.update(&forecast, &params.forecast, &params.alert, at);
        each(&Evaluation {
            at,
            segment: current,
            forecast,
            alert,
        });
        at += step;
    }
}
