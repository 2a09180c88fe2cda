//! The math: pure, clock-free functions from samples (and `now`) to forecasts.
//!
//! This module imports nothing else from the crate. It takes `now` as a parameter,
//! never reads a clock, never does I/O, and never panics on any input (property-tested):
//! it is the part that must be exactly right, so it is the part easiest to test.

pub mod alert;
pub mod daily;
pub mod day_over_day;
pub mod envelope;
pub mod excursions;
pub mod forecast;
pub mod recurrence;
pub mod reuse;
pub mod trend;

pub use alert::{AlertParams, AlertState, Context};
pub use daily::DailyCycle;
pub use excursions::{Hour, Record};
pub use forecast::{
    forecast, forecast_after, forecast_in_cycle, Forecast, ForecastParams, Pattern, Severity,
    TimeToLimit, Trend,
};
pub use reuse::{Memo, SegmentFacts};

/// The mean spacing (s) of `count` samples from `first_at` to `last_at` (ms); 0 with
/// fewer than two. How coarse a scrape is: the alert's evidence scales with it.
pub fn spacing_seconds(first_at: i64, last_at: i64, count: usize) -> f64 {
    if count < 2 {
        return 0.0;
    }
    (last_at - first_at) as f64 / 1000.0 / (count - 1) as f64
}

/// One working-set observation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub bytes: f64,
}
