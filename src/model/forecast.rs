//! From one segment's samples and a limit to a forecast: growth, time to limit with a
//! 90% interval, a pattern and a severity.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::trend::least_squares;
use super::Sample;

/// What shape a segment has, in words a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Steady growth toward the limit.
    Leak,
    /// No growth that matters.
    Stable,
    /// Too little history in the current segment to tell.
    InsufficientData,
}

/// How urgent a forecast is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    None,
    Warning,
    Critical,
}

/// Seconds from `now` until the working set reaches the limit, with a two-sided
/// interval at [`ForecastParams::confidence`]. `upper_seconds: None` means the interval
/// includes "never".
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TimeToLimit {
    pub seconds: f64,
    pub lower_seconds: f64,
    pub upper_seconds: Option<f64>,
}

/// Knobs of one forecast, already resolved for the container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastParams {
    pub warning_horizon_seconds: f64,
    pub critical_horizon_seconds: f64,
    /// A segment spanning less than this is `insufficient_data`.
    pub min_history_seconds: f64,
    /// Coverage of the time-to-limit interval, e.g. 0.9.
    pub confidence: f64,
}

impl Default for ForecastParams {
    fn default() -> Self {
        ForecastParams {
            warning_horizon_seconds: 24.0 * 3600.0,
            critical_horizon_seconds: 2.0 * 3600.0,
            min_history_seconds: 30.0 * 60.0,
            confidence: 0.9,
        }
    }
}

/// The forecast of one container segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The last observed working set.
    pub working_set_bytes: f64,
    /// The fitted working set at `now`, which the time to limit extrapolates from.
    pub level_bytes: Option<f64>,
    pub growth_bytes_per_second: Option<f64>,
    /// `None` when the container is not on course to reach its limit (or has none).
    pub time_to_limit: Option<TimeToLimit>,
    /// When the current growth regime began (ms): for now, the segment's start.
    pub onset: Option<i64>,
    pub pattern: Pattern,
    pub severity: Severity,
}

/// Forecasts one segment. `samples` must be in time order; `limit_bytes: None` means the
/// container has no limit (it is forecast, never alerted).
pub fn forecast(
    samples: &[Sample],
    limit_bytes: Option<f64>,
    now: i64,
    params: &ForecastParams,
) -> Forecast {
    let working_set_bytes = samples
        .iter()
        .rev()
        .find(|s| s.bytes.is_finite())
        .map_or(f64::NAN, |s| s.bytes);
    let mut out = Forecast {
        working_set_bytes,
        level_bytes: None,
        growth_bytes_per_second: None,
        time_to_limit: None,
        onset: samples.first().map(|s| s.at),
        pattern: Pattern::InsufficientData,
        severity: Severity::None,
    };
    let span_seconds = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => (b.at - a.at) as f64 / 1000.0,
        _ => 0.0,
    };
    let limit = limit_bytes.filter(|l| l.is_finite() && *l > 0.0);
    if let Some(limit) = limit {
        if working_set_bytes >= limit {
            out.time_to_limit = Some(TimeToLimit {
                seconds: 0.0,
                lower_seconds: 0.0,
                upper_seconds: Some(0.0),
            });
            out.severity = Severity::Critical;
        }
    }
    if span_seconds < params.min_history_seconds {
        return out;
    }
    let Some(line) = least_squares(samples) else {
        return out;
    };
    let ahead = (now - line.at) as f64 / 1000.0;
    let level = line.level_bytes + line.slope_bytes_per_second * ahead.max(0.0);
    let slope = line.slope_bytes_per_second;
    out.level_bytes = Some(level);
    out.growth_bytes_per_second = Some(slope);

    let t = student_t_quantile(line.n, params.confidence);
    let slope_low = slope - t * line.slope_std_error;
    let slope_high = slope + t * line.slope_std_error;
    out.pattern = if slope_low > 0.0 {
        Pattern::Leak
    } else {
        Pattern::Stable
    };
    let Some(limit) = limit else {
        return out;
    };
    if out.time_to_limit.is_some() || slope <= 0.0 || out.pattern != Pattern::Leak {
        return out;
    }
    let headroom = (limit - level).max(0.0);
    let seconds = headroom / slope;
    let eta = TimeToLimit {
        seconds,
        lower_seconds: headroom / slope_high,
        upper_seconds: (slope_low > 0.0).then(|| headroom / slope_low),
    };
    out.time_to_limit = Some(eta);
    out.severity = if seconds <= params.critical_horizon_seconds {
        Severity::Critical
    } else if seconds <= params.warning_horizon_seconds {
        Severity::Warning
    } else {
        Severity::None
    };
    out
}

/// The two-sided `confidence` quantile of Student's t with `n - 2` degrees of freedom.
fn student_t_quantile(n: usize, confidence: f64) -> f64 {
    let dof = (n.saturating_sub(2)).max(1) as f64;
    let p = 0.5 + confidence.clamp(0.0, 0.999) / 2.0;
    StudentsT::new(0.0, 1.0, dof)
        .map(|d| d.inverse_cdf(p))
        .unwrap_or(1.645)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: f64 = 1048576.0;

    fn ramp(start_bytes: f64, bytes_per_second: f64, minutes: i64) -> Vec<Sample> {
        (0..=minutes * 2)
            .map(|i| Sample {
                at: i * 30_000,
                bytes: start_bytes + bytes_per_second * (i * 30) as f64,
            })
            .collect()
    }

    #[test]
    fn steady_leak_gives_exact_eta() {
        // 64Mi growing 32Mi/h toward 128Mi: after 60 min it is at 96Mi, 1h to go.
        let samples = ramp(64.0 * MI, 32.0 * MI / 3600.0, 60);
        let now = samples.last().unwrap().at;
        let f = forecast(&samples, Some(128.0 * MI), now, &ForecastParams::default());
        let eta = f.time_to_limit.unwrap();
        assert!((eta.seconds - 3600.0).abs() < 1.0, "{eta:?}");
        assert_eq!(f.pattern, Pattern::Leak);
        assert_eq!(f.severity, Severity::Critical);
    }

    #[test]
    fn flat_series_is_stable_and_quiet() {
        let samples = ramp(64.0 * MI, 0.0, 60);
        let mut noisy = samples.clone();
        for (i, s) in noisy.iter_mut().enumerate() {
            s.bytes += if i % 2 == 0 { MI } else { -MI };
        }
        let f = forecast(
            &noisy,
            Some(128.0 * MI),
            3_600_000,
            &ForecastParams::default(),
        );
        assert_eq!(f.pattern, Pattern::Stable);
        assert_eq!(f.severity, Severity::None);
        assert!(f.time_to_limit.is_none());
    }

    #[test]
    fn short_history_is_insufficient() {
        let samples = ramp(64.0 * MI, 1000.0, 10);
        let f = forecast(
            &samples,
            Some(128.0 * MI),
            600_000,
            &ForecastParams::default(),
        );
        assert_eq!(f.pattern, Pattern::InsufficientData);
        assert_eq!(f.severity, Severity::None);
    }

    #[test]
    fn at_limit_is_critical_now_even_without_history() {
        let samples = vec![Sample {
            at: 0,
            bytes: 128.0 * MI,
        }];
        let f = forecast(&samples, Some(128.0 * MI), 0, &ForecastParams::default());
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.time_to_limit.unwrap().seconds, 0.0);
    }

    #[test]
    fn no_limit_is_forecast_but_never_alerted() {
        let samples = ramp(64.0 * MI, 32.0 * MI / 3600.0, 60);
        let f = forecast(&samples, None, 3_600_000, &ForecastParams::default());
        assert_eq!(f.pattern, Pattern::Leak);
        assert!(f.time_to_limit.is_none());
        assert_eq!(f.severity, Severity::None);
    }
}
