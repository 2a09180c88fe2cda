//! Straight-line fits of bytes over time.

use super::Sample;

/// A fitted line `bytes(t) = level_bytes + slope * (t - at)` with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// The time (ms) the level refers to: the last sample's time.
    pub at: i64,
    /// The fitted value at `at`.
    pub level_bytes: f64,
    /// Growth in bytes per second.
    pub slope_bytes_per_second: f64,
    /// Standard error of the slope, bytes per second.
    pub slope_std_error: f64,
    /// Standard deviation of the residuals, bytes.
    pub residual_std_bytes: f64,
    /// Samples fitted.
    pub n: usize,
}

/// Ordinary least squares over finite samples, anchored at the last sample's time.
/// Returns `None` with fewer than 3 usable samples or no spread in time.
pub fn least_squares(samples: &[Sample]) -> Option<Line> {
    let usable = samples.iter().filter(|s| s.bytes.is_finite());
    let anchor = samples.iter().rev().find(|s| s.bytes.is_finite())?.at;
    let (mut n, mut sum_x, mut sum_y) = (0usize, 0.0f64, 0.0f64);
    for s in usable.clone() {
        n += 1;
        sum_x += (s.at - anchor) as f64 / 1000.0;
        sum_y += s.bytes;
    }
    if n < 3 {
        return None;
    }
    let (mean_x, mean_y) = (sum_x / n as f64, sum_y / n as f64);
    let (mut sxx, mut sxy) = (0.0f64, 0.0f64);
    for s in usable.clone() {
        let dx = (s.at - anchor) as f64 / 1000.0 - mean_x;
        sxx += dx * dx;
        sxy += dx * (s.bytes - mean_y);
    }
    if sxx <= 0.0 || !sxx.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let mut sse = 0.0f64;
    for s in usable {
        let x = (s.at - anchor) as f64 / 1000.0;
        let r = s.bytes - (intercept + slope * x);
        sse += r * r;
    }
    let residual_var = sse / (n as f64 - 2.0);
    Some(Line {
        at: anchor,
        level_bytes: intercept,
        slope_bytes_per_second: slope,
        slope_std_error: (residual_var / sxx).sqrt(),
        residual_std_bytes: residual_var.sqrt(),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(s, bytes)| Sample {
                at: s * 1000,
                bytes,
            })
            .collect()
    }

    #[test]
    fn exact_line_is_recovered() {
        let s = series(&[(0, 100.0), (10, 200.0), (20, 300.0), (30, 400.0)]);
        let line = least_squares(&s).unwrap();
        assert_eq!(line.at, 30_000);
        assert!((line.slope_bytes_per_second - 10.0).abs() < 1e-9);
        assert!((line.level_bytes - 400.0).abs() < 1e-9);
        assert!(line.slope_std_error < 1e-9);
    }

    #[test]
    fn too_few_or_degenerate_samples_give_none() {
        assert!(least_squares(&[]).is_none());
        assert!(least_squares(&series(&[(0, 1.0), (1, 2.0)])).is_none());
        assert!(least_squares(&series(&[(5, 1.0), (5, 2.0), (5, 3.0)])).is_none());
    }
}
