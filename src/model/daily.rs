//! A container's daily cycle, from its long history: what its working set does at
//! each time of day, so that the fine history's few hours are read without it.
//!
//! Six hours of fine history see a quarter of a day: a daily upswing reads as a leak,
//! a downswing hides one, and a time to limit drawn on either misses the hour at
//! which the day's peak meets the limit. The long tier holds the days that show the
//! cycle. Its hourly means over the current incarnation (a week at most) are fitted
//! a line and two harmonics of a day (the cycle and its half), by least squares; the
//! harmonics are the cycle when they explain most of what the line leaves
//! ([`MIN_EXPLAINED`]) over [`MIN_HOURS`] hours or more, so some times of day have
//! been seen twice.
//!
//! Why harmonics and not an hour-of-day profile: a day and a half of hours gives a
//! profile a single value at half the hours, while the harmonics use all of them
//! with four numbers; two harmonics follow a cycle with one peak a day, or a working
//! day's plateau, closely enough for a time of day to within the hour. Pure and
//! clock-free: the store fits it as each hour closes (`store::long`).

use std::f64::consts::TAU;

use super::excursions::Hour;

/// Hours of the current incarnation the cycle needs: a day and a half.
pub const MIN_HOURS: usize = 48;
/// The most hours fitted: a week.
const MAX_HOURS: usize = 7 * 24;
/// The share of the variance about the line the harmonics must explain.
pub const MIN_EXPLAINED: f64 = 0.5;

/// Two harmonics of a day, as fitted (bytes), phased from `at_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DailyCycle {
    /// cos and sin of one cycle a day, then of two.
    coefficients: [f32; 4],
    /// The end of the newest hour fitted (ms since the epoch): phase 0.
    pub at_ms: i64,
}

impl DailyCycle {
    /// The cycle at `ms` (ms since the epoch), about its daily mean (bytes).
    pub fn at(&self, ms: i64) -> f64 {
        let w = TAU * (ms - self.at_ms) as f64 / (24.0 * 3_600_000.0);
        let c = self.coefficients.map(f64::from);
        c[0] * w.cos() + c[1] * w.sin() + c[2] * (2.0 * w).cos() + c[3] * (2.0 * w).sin()
    }

    /// The cycle at `from` (ms since the epoch) and every `step` ms after, `count`
    /// values: [`DailyCycle::at`] by rotation, two `sin_cos` in all.
    pub fn every(&self, from: i64, step: i64, count: usize) -> impl Iterator<Item = f64> {
        let day = 24.0 * 3_600_000.0;
        let w = TAU * (from - self.at_ms) as f64 / day;
        let dw = TAU * step as f64 / day;
        let c = self.coefficients.map(f64::from);
        let (s1, c1) = w.sin_cos();
        let (ds, dc) = dw.sin_cos();
        (0..count).scan((c1, s1), move |(cos, sin), _| {
            // cos 2w = cos² − sin², sin 2w = 2 sin cos.
            let v = c[0] * *cos
                + c[1] * *sin
                + c[2] * (*cos * *cos - *sin * *sin)
                + c[3] * 2.0 * *sin * *cos;
            (*cos, *sin) = (*cos * dc - *sin * ds, *sin * dc + *cos * ds);
            Some(v)
        })
    }

    /// From its lowest to its highest over a day (bytes), to within a quarter hour.
    pub fn range(&self) -> f64 {
        let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in self.every(self.at_ms, 900_000, 96) {
            low = low.min(v);
            high = high.max(v);
        }
        high - low
    }
}

/// The daily cycle of the hours of one incarnation, newest first (`None` for an hour
/// without samples), or `None` when they show none (see the module's documentation).
pub fn daily_cycle(newest_first: impl Iterator<Item = Option<Hour>>) -> Option<DailyCycle> {
    // (hours before the newest, mean); each hour is taken at its middle.
    let points: Vec<(usize, f64)> = newest_first
        .take(MAX_HOURS)
        .enumerate()
        .filter_map(|(ago, h)| h.filter(|h| h.mean.is_finite()).map(|h| (ago, h.mean)))
        .collect();
    let n = points.len();
    if n < MIN_HOURS {
        return None;
    }
    // Bytes centred and scaled by their spread.
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let scale = points
        .iter()
        .map(|p| (p.1 - mean_y).abs())
        .fold(0.0f64, f64::max);
    if scale <= 0.0 {
        return None;
    }
    // The trend: a line bending at each day's end, counted back from the newest
    // hour (hat functions on knots a day apart): it follows a leak that began on
    // any day, and cannot itself swing up and down within a day.
    let knots = (points[n - 1].0 as f64 + 0.5).div_euclid(24.0) as usize + 2;
    let m = knots + 4;
    // The harmonics at each hour of the day, counted back from the newest hour's
    // middle: hours a day apart share them.
    let harmonics: [[f64; 4]; 24] = std::array::from_fn(|ago| {
        let w = -TAU * (ago as f64 + 0.5) / 24.0;
        let (s1, c1) = w.sin_cos();
        let (s2, c2) = (2.0 * w).sin_cos();
        [c1, s1, c2, s2]
    });
    // Each hour touches two knots and the four harmonics: six columns of the normal
    // equations, not all of them.
    let row = |ago: usize| {
        let k = ago / 24;
        let after = (ago as f64 + 0.5 - 24.0 * k as f64) / 24.0;
        let h = harmonics[ago % 24];
        [
            (k, 1.0 - after),
            (k + 1, after),
            (knots, h[0]),
            (knots + 1, h[1]),
            (knots + 2, h[2]),
            (knots + 3, h[3]),
        ]
    };
    let mut a = [[0.0f64; MAX_PARAMS]; MAX_PARAMS];
    let mut b = [0.0f64; MAX_PARAMS];
    let mut yy = 0.0;
    for &(ago, y) in &points {
        let r = row(ago);
        let y = (y - mean_y) / scale;
        yy += y * y;
        for &(i, ri) in &r {
            b[i] += ri * y;
            for &(j, rj) in &r {
                a[i][j] += ri * rj;
            }
        }
    }
    // The trend's columns come first: eliminating them alone gives the trend's fit,
    // and the harmonics' what they add to it, in one pass.
    let (full, gains) = solve(a, b, m)?;
    let sse_trend = yy - gains[..knots].iter().sum::<f64>();
    let sse_full = yy - gains[..m].iter().sum::<f64>();
    // A trend that explains all leaves nothing for a cycle to explain.
    if sse_trend <= 1e-9 * yy || 1.0 - sse_full.max(0.0) / sse_trend < MIN_EXPLAINED {
        return None;
    }
    Some(DailyCycle {
        coefficients: [
            (full[knots] * scale) as f32,
            (full[knots + 1] * scale) as f32,
            (full[knots + 2] * scale) as f32,
            (full[knots + 3] * scale) as f32,
        ],
        at_ms: 0,
    })
}

/// The most parameters fitted: a knot a day over [`MAX_HOURS`], and the harmonics.
const MAX_PARAMS: usize = MAX_HOURS / 24 + 2 + 4;

/// The first `size` equations of `a·x = b`, `a` symmetric positive definite (normal
/// equations), by Gaussian elimination in order, without pivoting; with the share of
/// `y·y` each column explains given those before it (their sum over the first `k`
/// columns is what the fit of those `k` alone explains). `None` when singular.
fn solve(
    mut a: [[f64; MAX_PARAMS]; MAX_PARAMS],
    mut b: [f64; MAX_PARAMS],
    size: usize,
) -> Option<([f64; MAX_PARAMS], [f64; MAX_PARAMS])> {
    let mut gains = [0.0; MAX_PARAMS];
    for col in 0..size {
        let d = a[col][col];
        if d < 1e-12 {
            return None;
        }
        gains[col] = b[col] * b[col] / d;
        let (done, rest) = a.split_at_mut(col + 1);
        let pivot_row = &done[col];
        for (row, r) in rest.iter_mut().enumerate().take(size - col - 1) {
            let f = r[col] / d;
            if f == 0.0 {
                continue;
            }
            for (x, p) in r[col..size].iter_mut().zip(&pivot_row[col..size]) {
                *x -= f * p;
            }
            b[col + 1 + row] -= f * b[col];
        }
    }
    let mut x = [0.0; MAX_PARAMS];
    for row in (0..size).rev() {
        let s: f64 = (row + 1..size).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some((x, gains))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(n: usize, f: impl Fn(f64) -> f64) -> Vec<Option<Hour>> {
        // Oldest first; hour i's middle at i + 0.5.
        (0..n)
            .map(|i| {
                let v = f(i as f64 + 0.5);
                Some(Hour { max: v, mean: v })
            })
            .collect()
    }

    #[test]
    fn a_daily_cycle_over_a_leak_is_recovered() {
        let n = 60;
        let cycle = |x: f64| 1e8 * (TAU * x / 24.0).sin();
        let h = hours(n, |x| 1e9 + 2e6 * x + cycle(x));
        let c = daily_cycle(h.iter().rev().copied()).expect("a cycle");
        // Phase 0 is the end of the newest hour, hour n.
        let end = 0i64;
        for x in [0.5, 6.0, 13.0, 20.0, 59.5] {
            let at = end + ((x - n as f64) * 3_600_000.0) as i64;
            assert!(
                (c.at(at) - cycle(x)).abs() < 1e6,
                "at {x}: {} vs {}",
                c.at(at),
                cycle(x)
            );
        }
        assert!((c.range() - 2e8).abs() < 2e6, "{}", c.range());
        for (q, v) in c.every(-7_200_000, 900_000, 96).enumerate() {
            let exact = c.at(-7_200_000 + q as i64 * 900_000);
            assert!((v - exact).abs() < 1.0, "quarter {q}: {v} vs {exact}");
        }
    }

    #[test]
    fn noise_a_line_or_too_few_hours_show_no_cycle() {
        let mut state = 7u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let noisy: Vec<Option<Hour>> = (0..100)
            .map(|_| {
                let v = 1e9 + 1e7 * noise();
                Some(Hour { max: v, mean: v })
            })
            .collect();
        assert_eq!(daily_cycle(noisy.iter().rev().copied()), None);
        let line = hours(100, |x| 1e9 + 1e6 * x);
        assert_eq!(daily_cycle(line.iter().rev().copied()), None);
        let short = hours(30, |x| 1e9 + 1e8 * (TAU * x / 24.0).sin());
        assert_eq!(daily_cycle(short.iter().rev().copied()), None);
    }
}
