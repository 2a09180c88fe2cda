//! A container's daily cycle, from its long history: what its working set does at
//! each time of day, so that the fine history's few hours are read without it.
//!
//! Six hours of fine history see a quarter of a day: a daily upswing reads as a leak,
//! a downswing hides one, and a time to limit drawn on either misses the hour at
//! which the day's peak meets the limit. The long tier holds the days that show the
//! cycle. Its hourly means over the current incarnation (two days at least, a week
//! at most) are fitted, by least squares, a trend that bends once a day, and once
//! more at the hour where that explains most (so a leak that began on any day, at
//! any hour, is trend, not cycle), and two harmonics of a day (the cycle and its
//! half). The extra bend (a hinge) is searched every other hour, and kept when it
//! pays for its place and slope (BIC); without it, a leak begun twenty hours into
//! two days bent the trend where no knot was, and the harmonics took the bend for
//! cycle, off by up to their whole amplitude. The harmonics are the cycle when
//! - they explain [`MIN_EXPLAINED`] of what the trend leaves, over all the hours;
//! - they explain it day by day (24 hours counted back from the newest, with 12
//!   hours of samples or more): [`MIN_EXPLAINED_DAY_OF_FEW`] within each of two or
//!   three days, [`MIN_EXPLAINED_A_DAY`] within two thirds of four or more. A step
//!   or a one-off bump that the trend cannot follow is explained by harmonics on
//!   its own days only; the others contradict them, but two or three days may all
//!   share it, hence the higher bar there;
//! - [`MIN_HOURS_OF_DAY`] of the 24 hours of the day have been seen, so the
//!   harmonics do not invent the hours in between.
//!
//! Why harmonics and not an hour-of-day profile: two days give each hour of the
//! day two values, noise included, while the harmonics use all the hours with four
//! numbers; two harmonics follow a cycle with one peak a day, or a working day's
//! plateau, closely enough for a time of day to within the hour. Pure and
//! clock-free: the store fits it as each hour closes (`store::long`).

use std::f64::consts::TAU;

use super::excursions::Hour;

/// Hours with samples of the current incarnation the cycle needs: two days. With a
/// day and a half, a leak's onset was read as cycle (docs/forecasting.md).
pub const MIN_CYCLE_HOURS: usize = 48;
/// The most hours fitted: a week.
const MAX_HOURS: usize = 7 * 24;
/// The share of the variance about the trend the harmonics must explain.
pub const MIN_EXPLAINED: f64 = 0.5;
/// The share they must explain within two thirds of the days held, from four days.
pub const MIN_EXPLAINED_A_DAY: f64 = 0.25;
/// The share they must explain within each day held, with two or three: so few
/// days share any one-off shape the trend cannot follow (a step a day old, a bump
/// of half a day), which harmonics explained at 0.25–0.7 on each of them.
pub const MIN_EXPLAINED_DAY_OF_FEW: f64 = 0.7;
/// The share of the variance about the day knots the harmonics must explain for
/// the trend's hinge to be searched.
const HINGE_MIN_EXPLAINED: f64 = 0.2;
/// Hours of the day that must have been seen.
pub const MIN_HOURS_OF_DAY: usize = 18;

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
        self.every(ms, 1, 1).next().unwrap_or(0.0)
    }

    /// The cycle at `from` (ms since the epoch) and every `step` ms after, `count`
    /// values, the angle turned by rotation: two `sin_cos` in all.
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

    /// From its lowest to its highest over a day (bytes), to within a quarter hour:
    /// what the tests check a fit's amplitude by.
    #[cfg(test)]
    fn range(&self) -> f64 {
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
    let mut hours_of_day = [false; 24];
    for &(ago, _) in &points {
        hours_of_day[ago % 24] = true;
    }
    if n < MIN_CYCLE_HOURS || hours_of_day.iter().filter(|&&seen| seen).count() < MIN_HOURS_OF_DAY {
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
    let (mut full, mut gains) = solve(a, b, m)?;
    let mut trend_columns = knots;
    let mut harmonic = knots;
    let mut hinge_at = None;
    // A leak that began between two knots bends the trend where no knot is, and
    // the harmonics took the bend for cycle: two days of a leak begun 20 hours in
    // gave a cycle off by its whole amplitude. So the trend may bend once more, at
    // the hour where that bend explains most, when it pays for its two parameters
    // (its place and its slope; BIC).
    // Searched only when the harmonics already explain a fifth of what the day
    // knots leave: the hinge is for a cycle read wrong, and most hours of most
    // containers show none.
    let scaled = |y: f64| (y - mean_y) / scale;
    let sse_knots = yy - gains[..knots].iter().sum::<f64>();
    let sse = yy - gains[..m].iter().sum::<f64>();
    let worth_a_look = sse < (1.0 - HINGE_MIN_EXPLAINED) * sse_knots;
    let found = worth_a_look.then(|| hinge(&points, row, &a, &full, m, scaled));
    if let Some(Hinge {
        tau,
        g,
        gg,
        gy,
        reduction,
    }) = found.flatten()
    {
        let n = n as f64;
        if sse > 0.0 && n * ((sse - reduction).max(1e-12 * sse) / sse).ln() + 2.0 * n.ln() < 0.0 {
            // The hinge's column goes after the knots', before the harmonics'.
            let at = |j: usize| if j < knots { j } else { j + 1 };
            let mut wide = [[0.0f64; MAX_PARAMS]; MAX_PARAMS];
            let mut wide_b = [0.0f64; MAX_PARAMS];
            for i in 0..m {
                for j in 0..m {
                    wide[at(i)][at(j)] = a[i][j];
                }
                wide[knots][at(i)] = g[i];
                wide[at(i)][knots] = g[i];
                wide_b[at(i)] = b[i];
            }
            wide[knots][knots] = gg;
            wide_b[knots] = gy;
            // Should the wider system fail the pivot test where the narrower passed,
            // the fit without the hinge stands.
            if let Some(wider) = solve(wide, wide_b, m + 1) {
                (full, gains) = wider;
                (trend_columns, harmonic, hinge_at) = (knots + 1, knots + 1, Some(tau));
            }
        }
    }
    let m = harmonic + 4;
    let sse_trend = yy - gains[..trend_columns].iter().sum::<f64>();
    let sse_full = yy - gains[..m].iter().sum::<f64>();
    // The trend at an hour: its two knots, and the hinge when there is one.
    let trend_at = |ago: usize, r: &[(usize, f64); 6]| {
        let bend = hinge_at.map_or(0.0, |tau: f64| {
            full[knots] * (tau - ago as f64 - 0.5).max(0.0) / 24.0
        });
        r[0].1 * full[r[0].0] + r[1].1 * full[r[1].0] + bend
    };
    // A trend that explains all leaves nothing for a cycle to explain (written so
    // that NaN fails).
    let explained = 1.0 - sse_full.max(0.0) / sse_trend;
    if explained.is_nan() || sse_trend <= 1e-9 * yy || explained < MIN_EXPLAINED {
        return None;
    }
    // Day by day: what the trend leaves (rr) and what the harmonics leave of it (ee),
    // with the hours of samples each day holds.
    let mut days = [(0.0f64, 0.0f64, 0usize); MAX_HOURS / 24];
    for &(ago, y) in &points {
        let r = row(ago);
        let y = (y - mean_y) / scale;
        let trend = trend_at(ago, &r);
        let cycle: f64 = (0..4).map(|i| r[2 + i].1 * full[harmonic + i]).sum();
        let day = &mut days[ago / 24];
        day.0 += (y - trend).powi(2);
        day.1 += (y - trend - cycle).powi(2);
        day.2 += 1;
    }
    let held = days.iter().filter(|d| d.2 >= 12);
    // Hours spread thin over the week hold no day whole: no cycle is shown.
    if held.clone().count() < 2 {
        return None;
    }
    let few = held.clone().count() < 4;
    let bar = if few {
        MIN_EXPLAINED_DAY_OF_FEW
    } else {
        MIN_EXPLAINED_A_DAY
    };
    let showing = held
        .clone()
        .filter(|&&(rr, ee, _)| rr > 0.0 && 1.0 - ee / rr >= bar)
        .count();
    // Up to three days, every one; from four, two thirds of them (a week's
    // weekend may be quiet).
    let days_held = held.count();
    let needed = if few {
        days_held
    } else {
        (2 * days_held).div_ceil(3)
    };
    if showing < needed {
        return None;
    }
    Some(DailyCycle {
        coefficients: [
            (full[harmonic] * scale) as f32,
            (full[harmonic + 1] * scale) as f32,
            (full[harmonic + 2] * scale) as f32,
            (full[harmonic + 3] * scale) as f32,
        ],
        at_ms: 0,
    })
}

/// The trend's best extra bend: `tau` hours before the newest hour's end, its column
/// `g` against the others (`g·x_j` for each), `g·g`, `g·y`, and how much of the fit's
/// squared error it takes away.
struct Hinge {
    tau: f64,
    g: [f64; MAX_PARAMS],
    gg: f64,
    gy: f64,
    reduction: f64,
}

/// The hinge `(τ − t)⁺ / 24` (t the hours back to each hour's middle; in days) at
/// every other hour τ from 6 back from the newest to 7 or so after the oldest
/// (`6..span − 6`, exclusive, by 2), added to the
/// `m` columns whose normal equations `a` have been solved (`full`): the one that
/// takes the most squared error away. One pass over the hours, newest first, keeps
/// the sums over the hours newer than each place, from which each hinge's column of
/// the normal equations follows, and what it adds follows from the Cholesky factor
/// of `a` (`(g·r)² / (g·g − |L⁻¹G|²)`, `r` the fit's residuals); so a week costs
/// about two and a half times the fit alone (8.2 µs against 3.4, `cargo bench --bench
/// model`) instead of eighty fits. `None` without room.
fn hinge<const W: usize>(
    points: &[(usize, f64)],
    row: impl Fn(usize) -> [(usize, f64); W],
    a: &[[f64; MAX_PARAMS]; MAX_PARAMS],
    full: &[f64; MAX_PARAMS],
    m: usize,
    scaled: impl Fn(f64) -> f64,
) -> Option<Hinge> {
    let span = points.last()?.0;
    let inverse = invert_lower(&cholesky(a, m)?, m);
    // Over the hours newer than the place: Σx_j and Σu·x_j per column (u the hours
    // back to an hour's middle), Σy, Σu·y, the count, Σu, Σu².
    let (mut s0, mut s1) = ([0.0f64; MAX_PARAMS], [0.0f64; MAX_PARAMS]);
    let (mut y0, mut y1, mut n0, mut u1, mut u2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut next = 0;
    let mut best: Option<Hinge> = None;
    for tau in (6..span.saturating_sub(6)).step_by(2) {
        while let Some(&(ago, y)) = points.get(next).filter(|p| p.0 < tau) {
            let u = ago as f64 + 0.5;
            for (j, x) in row(ago) {
                s0[j] += x;
                s1[j] += u * x;
            }
            let y = scaled(y);
            (y0, y1, n0, u1, u2) = (y0 + y, y1 + u * y, n0 + 1.0, u1 + u, u2 + u * u);
            next += 1;
        }
        let t = tau as f64;
        let g: [f64; MAX_PARAMS] = std::array::from_fn(|j| (t * s0[j] - s1[j]) * DAYS_PER_HOUR);
        let gg = (t * t * n0 - 2.0 * t * u1 + u2) * DAYS_PER_HOUR * DAYS_PER_HOUR;
        let gy = (t * y0 - y1) * DAYS_PER_HOUR;
        let along = gy
            - g[..m]
                .iter()
                .zip(&full[..m])
                .map(|(g, x)| g * x)
                .sum::<f64>();
        let apart = gg - forward_norm(&inverse, &g, m);
        if apart <= 1e-9 * gg {
            continue;
        }
        let reduction = along * along / apart;
        if best.as_ref().is_none_or(|b| reduction > b.reduction) {
            best = Some(Hinge {
                tau: t,
                g,
                gg,
                gy,
                reduction,
            });
        }
    }
    best
}

const DAYS_PER_HOUR: f64 = 1.0 / 24.0;

/// The lower Cholesky factor of the first `m` rows and columns of `a`; `None` when
/// not positive definite, to within 1e-12 of a diagonal.
fn cholesky(
    a: &[[f64; MAX_PARAMS]; MAX_PARAMS],
    m: usize,
) -> Option<[[f64; MAX_PARAMS]; MAX_PARAMS]> {
    let mut l = [[0.0f64; MAX_PARAMS]; MAX_PARAMS];
    for j in 0..m {
        let d = a[j][j] - (0..j).map(|k| l[j][k] * l[j][k]).sum::<f64>();
        if d.is_nan() || d <= 1e-12 * a[j][j] {
            return None;
        }
        l[j][j] = d.sqrt();
        for i in j + 1..m {
            l[i][j] = (a[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>()) / l[j][j];
        }
    }
    Some(l)
}

/// The inverse of the lower triangular `l` (first `m` rows), itself lower
/// triangular.
fn invert_lower(l: &[[f64; MAX_PARAMS]; MAX_PARAMS], m: usize) -> [[f64; MAX_PARAMS]; MAX_PARAMS] {
    let mut inverse = [[0.0f64; MAX_PARAMS]; MAX_PARAMS];
    for i in 0..m {
        inverse[i][i] = 1.0 / l[i][i];
        for j in 0..i {
            let s: f64 = (j..i).map(|k| l[i][k] * inverse[k][j]).sum();
            inverse[i][j] = -s * inverse[i][i];
        }
    }
    inverse
}

/// `|L⁻¹g|²` over the first `m` entries (`g·a⁻¹·g` for `a = L·Lᵀ`), from `L⁻¹`:
/// rows that do not wait on each other, where a forward substitution would (its
/// chain was most of a hinge's cost).
fn forward_norm(inverse: &[[f64; MAX_PARAMS]; MAX_PARAMS], g: &[f64; MAX_PARAMS], m: usize) -> f64 {
    inverse[..m]
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let w: f64 = row[..=i].iter().zip(&g[..=i]).map(|(a, b)| a * b).sum();
            w * w
        })
        .sum()
}

/// Room for the most parameters fitted: the knots (a day apart, one past each end of
/// [`MAX_HOURS`]: 8), the hinge and the four harmonics.
const MAX_PARAMS: usize = MAX_HOURS / 24 + 2 + 4;

/// The first `size` equations of `a·x = b`, `a` a Gram matrix (normal equations:
/// symmetric, positive semidefinite), by Gaussian elimination in order, without
/// pivoting; with the share of `y·y` each column explains given those before it
/// (their sum over the first `k` columns is what the fit of those `k` alone
/// explains). `None` when singular or nearly: a pivot under 1e-9 of its column's
/// own diagonal (a knot with no hours near it, as after two days without samples).
fn solve(
    mut a: [[f64; MAX_PARAMS]; MAX_PARAMS],
    mut b: [f64; MAX_PARAMS],
    size: usize,
) -> Option<([f64; MAX_PARAMS], [f64; MAX_PARAMS])> {
    let mut gains = [0.0; MAX_PARAMS];
    let diagonal: [f64; MAX_PARAMS] = std::array::from_fn(|i| a[i][i]);
    for col in 0..size {
        let d = a[col][col];
        if d.is_nan() || d <= 1e-9 * diagonal[col] {
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

    fn hours(n: usize, mut f: impl FnMut(f64) -> f64) -> Vec<Option<Hour>> {
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

    /// A leak that began between two knots (20, 40 or 60 hours in, two days to four
    /// held) is trend, not cycle: without the hinge, the cycle came out off by up to
    /// its whole amplitude.
    #[test]
    fn a_leak_begun_between_knots_leaves_the_cycle_as_it_is() {
        for (n, began) in [
            (49usize, 19.6f64),
            (55, 19.6),
            (64, 19.6),
            (55, 40.0),
            (100, 60.0),
        ] {
            for phase in [0.0, 6.0, 12.0, 18.0] {
                let cycle = |x: f64| 5e7 * (TAU * (x + phase) / 24.0).sin();
                let h = hours(n, |x| 9e8 + 2.7e7 * (x - began).max(0.0) + cycle(x));
                let c = daily_cycle(h.iter().rev().copied()).expect("a cycle");
                for x in (0..24).map(|k| n as f64 - k as f64 - 0.5) {
                    let at = ((x - n as f64) * 3_600_000.0) as i64;
                    let off = (c.at(at) - cycle(x)).abs();
                    assert!(
                        off < 0.15 * 5e7,
                        "{n} h, leak from {began}, phase {phase}: {off:e} off at {x}"
                    );
                }
            }
        }
    }

    /// A cycle with noise and no leak: whatever bend the search finds in the noise,
    /// the cycle comes out as it is.
    #[test]
    fn a_noisy_cycle_without_a_leak_keeps_its_shape() {
        let mut state = 11u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 2e7
        };
        for n in [48usize, 72, 168] {
            let cycle = |x: f64| 5e7 * (TAU * x / 24.0).sin();
            let h = hours(n, |x| 1e9 + cycle(x) + noise());
            let c = daily_cycle(h.iter().rev().copied()).expect("a cycle");
            assert!(
                (c.range() - 1e8).abs() < 0.1 * 1e8,
                "{n} h: range {:e}",
                c.range()
            );
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

    /// A step the daily trend cannot follow, or a bump of half a day, is explained
    /// by harmonics on its own days only; two or three days may all share it (the
    /// harmonics explained 0.25–0.7 of what the trend left on each), hence the
    /// higher bar there. Probed at every even age from 2 hours: what still passes
    /// is a step exactly a day old, or a bump 26 or 34 hours old, on hours 48–54.
    #[test]
    fn a_step_or_a_one_off_bump_is_no_cycle() {
        for n in [60, 72, 96, 120] {
            let step = hours(n, |x| if x > n as f64 - 24.0 { 1.3e9 } else { 1e9 });
            assert_eq!(daily_cycle(step.iter().rev().copied()), None, "step, {n} h");
            let bump = hours(n, |x| {
                if (n as f64 - 30.0..n as f64 - 18.0).contains(&x) {
                    1.3e9
                } else {
                    1e9
                }
            });
            assert_eq!(daily_cycle(bump.iter().rev().copied()), None, "bump, {n} h");
        }
        // The same hours with a cycle on every day do show one.
        for n in [48, 60, 72, 96, 120] {
            let cycle = hours(n, |x| 1e9 + 1e8 * (TAU * x / 24.0).sin());
            assert!(daily_cycle(cycle.iter().rev().copied()).is_some(), "{n} h");
        }
    }

    /// Hours missing at the same times every day leave the harmonics free there.
    #[test]
    fn a_cycle_needs_most_hours_of_the_day_seen() {
        let mut h = hours(96, |x| 1e9 + 1e8 * (TAU * x / 24.0).sin());
        for (i, hour) in h.iter_mut().enumerate() {
            if i % 24 < 8 {
                *hour = None;
            }
        }
        assert_eq!(daily_cycle(h.iter().rev().copied()), None);
    }
}
