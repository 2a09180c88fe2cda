//! Fits of bytes over time: weighted least-squares lines and parabolas, the lag-1
//! autocorrelation that corrects their uncertainty, and the change-point search that
//! finds where the current growth regime began.
//!
//! Times are seconds relative to an anchor chosen by the caller, so sums stay well
//! conditioned whatever the epoch.

/// A point to fit: time (s, relative), value (bytes), weight (samples it stands for).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: f64,
    pub y: f64,
    pub w: f64,
}

/// A fitted line `y = intercept + slope * t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub intercept: f64,
    pub slope: f64,
    /// Sum of weighted squared residuals.
    pub sse: f64,
    /// Weighted spread of the times: Σw(t - t̄)².
    pub sxx: f64,
    /// Weighted mean time t̄.
    pub t_mean: f64,
    /// Number of points fitted.
    pub n: usize,
    /// Total weight.
    pub weight: f64,
}

impl Line {
    pub fn at(&self, t: f64) -> f64 {
        self.intercept + self.slope * t
    }

    /// Residual variance of a unit-weight observation: Σw·e² / (n − 2).
    pub fn residual_variance(&self) -> f64 {
        if self.n <= 2 {
            return 0.0;
        }
        self.sse / (self.n as f64 - 2.0)
    }

    /// Standard error of the slope, inflated for autocorrelated residuals by the
    /// effective sample size `n_eff = n (1 - ρ) / (1 + ρ)`.
    pub fn slope_std_error(&self, rho: f64) -> f64 {
        if self.sxx <= 0.0 {
            return f64::INFINITY;
        }
        let base = (self.residual_variance() / self.sxx).sqrt();
        base * autocorrelation_inflation(rho)
    }

    /// Standard error of the fitted value at `t`, inflated like the slope's.
    pub fn value_std_error(&self, t: f64, rho: f64) -> f64 {
        if self.sxx <= 0.0 || self.weight <= 0.0 {
            return f64::INFINITY;
        }
        let var =
            self.residual_variance() * (1.0 / self.weight + (t - self.t_mean).powi(2) / self.sxx);
        var.max(0.0).sqrt() * autocorrelation_inflation(rho)
    }
}

/// √(n / n_eff) for lag-1 autocorrelation ρ (ρ ≤ 0 gives no inflation).
pub fn autocorrelation_inflation(rho: f64) -> f64 {
    let rho = rho.clamp(0.0, 0.98);
    ((1.0 + rho) / (1.0 - rho)).sqrt()
}

/// Running sums for O(1) weighted line fits over any contiguous range of points.
#[derive(Debug, Clone)]
pub struct PrefixSums {
    // len + 1 entries; entry i sums points [0, i).
    sums: Vec<Sums>,
}

/// Σw, Σwt, Σwy, Σwt², Σwty, Σwy² over some points.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    w: f64,
    wt: f64,
    wy: f64,
    wtt: f64,
    wty: f64,
    wyy: f64,
}

impl Sums {
    fn add(&mut self, t: f64, y: f64, w: f64) {
        self.w += w;
        self.wt += w * t;
        self.wy += w * y;
        self.wtt += w * t * t;
        self.wty += w * t * y;
        self.wyy += w * y * y;
    }

    /// The residual sum of squares of [`Sums::line`] (the same quantity, not the
    /// same rounding), without the rest of the line, in one division rather than
    /// three: `syy − sxy²/sxx` with each moment scaled by
    /// `w` (`w·Σwy² − (Σwy)²` and so on), so that no mean is divided out first. The
    /// regime search calls it twice for every split it tries, and its divisions were
    /// what it waited on.
    fn sse(to: &Sums, from: &Sums) -> Option<f64> {
        let w = to.w - from.w;
        if w <= 0.0 {
            return None;
        }
        let wt = to.wt - from.wt;
        let wy = to.wy - from.wy;
        let sxx = w * (to.wtt - from.wtt) - wt * wt;
        if sxx <= 1e-9 * w * w || !sxx.is_finite() {
            return None;
        }
        let sxy = w * (to.wty - from.wty) - wt * wy;
        let syy = w * (to.wyy - from.wyy) - wy * wy;
        Some(((syy * sxx - sxy * sxy) / (sxx * w)).max(0.0))
    }

    /// The least-squares line through points whose sums are `to − from` (`n` points).
    fn line(to: &Sums, from: &Sums, n: usize) -> Option<Line> {
        let w = to.w - from.w;
        if w <= 0.0 {
            return None;
        }
        let wt = to.wt - from.wt;
        let wy = to.wy - from.wy;
        let t_mean = wt / w;
        let y_mean = wy / w;
        let sxx = (to.wtt - from.wtt) - wt * t_mean;
        let sxy = (to.wty - from.wty) - wt * y_mean;
        let syy = (to.wyy - from.wyy) - wy * y_mean;
        if sxx <= 1e-9 * w || !sxx.is_finite() {
            return None;
        }
        let slope = sxy / sxx;
        let sse = (syy - slope * sxy).max(0.0);
        Some(Line {
            intercept: y_mean - slope * t_mean,
            slope,
            sse,
            sxx,
            t_mean,
            n,
            weight: w,
        })
    }
}

impl PrefixSums {
    pub fn new(points: &[Point]) -> Self {
        let mut sums = Vec::with_capacity(points.len() + 1);
        let mut running = Sums::default();
        sums.push(running);
        for p in points {
            running.add(p.t, p.y, p.w);
            sums.push(running);
        }
        PrefixSums { sums }
    }

    /// The least-squares line through points `[from, to)`; `None` with fewer than 2
    /// points or no spread in time.
    pub fn line(&self, from: usize, to: usize) -> Option<Line> {
        if to < from + 2 || to >= self.sums.len() {
            return None;
        }
        Sums::line(&self.sums[to], &self.sums[from], to - from)
    }

    /// `line(from, to)`'s residual sum of squares alone.
    pub fn line_sse(&self, from: usize, to: usize) -> Option<f64> {
        if to < from + 2 || to >= self.sums.len() {
            return None;
        }
        Sums::sse(&self.sums[to], &self.sums[from])
    }
}

/// Weighted least squares line through `points` (all of them).
pub fn fit_line(points: &[Point]) -> Option<Line> {
    fit_line_of(points.iter().map(|p| (p.t, p.y, p.w)), points.len())
}

/// [`fit_line`] over `n` (t, y, w) triples, without collecting them.
pub(super) fn fit_line_of(points: impl Iterator<Item = (f64, f64, f64)>, n: usize) -> Option<Line> {
    if n < 2 {
        return None;
    }
    let mut sums = Sums::default();
    for (t, y, w) in points {
        sums.add(t, y, w);
    }
    Sums::line(&sums, &Sums::default(), n)
}

/// Lag-1 autocorrelation of a line's residuals over `points`.
pub fn residual_autocorrelation(points: &[Point], line: &Line) -> f64 {
    autocorrelation(points.iter().map(|p| p.y - line.at(p.t)))
}

/// A fitted parabola `y = a + b·u + c·u²` in the scaled time `u = (t − center) / scale`,
/// with the coefficients' covariance, so values and slopes come with standard errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parabola {
    coef: [f64; 3],
    /// Covariance of `coef` (σ² (XᵀWX)⁻¹).
    cov: [[f64; 3]; 3],
    center: f64,
    scale: f64,
    pub sse: f64,
    pub n: usize,
}

impl Parabola {
    fn u(&self, t: f64) -> f64 {
        (t - self.center) / self.scale
    }

    pub fn value_at(&self, t: f64) -> f64 {
        let u = self.u(t);
        self.coef[0] + self.coef[1] * u + self.coef[2] * u * u
    }

    /// dy/dt at `t`.
    pub fn slope_at(&self, t: f64) -> f64 {
        (self.coef[1] + 2.0 * self.coef[2] * self.u(t)) / self.scale
    }

    /// Where the slope is zero (s): the vertex of the parabola.
    pub fn vertex(&self) -> Option<f64> {
        (self.coef[2] != 0.0)
            .then(|| self.center - self.scale * self.coef[1] / (2.0 * self.coef[2]))
    }

    /// The curvature c in y = … + c·t² (bytes/s²).
    pub fn curvature(&self) -> f64 {
        self.coef[2] / (self.scale * self.scale)
    }

    fn quadratic_form(&self, g: [f64; 3]) -> f64 {
        let mut v = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                v += g[i] * self.cov[i][j] * g[j];
            }
        }
        v.max(0.0)
    }

    pub fn value_std_error(&self, t: f64) -> f64 {
        let u = self.u(t);
        self.quadratic_form([1.0, u, u * u]).sqrt()
    }

    pub fn slope_std_error(&self, t: f64) -> f64 {
        let u = self.u(t);
        self.quadratic_form([0.0, 1.0, 2.0 * u]).sqrt() / self.scale
    }

    /// The standard error of [`Parabola::curvature`] (bytes/s²).
    pub fn curvature_std_error(&self) -> f64 {
        self.cov[2][2].max(0.0).sqrt() / (self.scale * self.scale)
    }

    /// z-score of the curvature.
    pub fn curvature_z(&self) -> f64 {
        let se = self.cov[2][2].max(0.0).sqrt();
        if se > 0.0 {
            self.coef[2] / se
        } else if self.coef[2] == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(self.coef[2])
        }
    }
}

/// Lag-1 autocorrelation of a parabola's residuals over `points`.
pub fn parabola_autocorrelation(points: &[Point], parabola: &Parabola) -> f64 {
    autocorrelation(points.iter().map(|p| p.y - parabola.value_at(p.t)))
}

fn autocorrelation(residuals: impl Iterator<Item = f64>) -> f64 {
    // One pass, no buffer; the sums add in the same order as two passes would.
    let (mut n, mut var, mut cov) = (0usize, -0.0f64, -0.0f64);
    let mut previous: Option<f64> = None;
    for r in residuals {
        n += 1;
        var += r * r;
        if let Some(p) = previous {
            cov += p * r;
        }
        previous = Some(r);
    }
    if n < 3 || var <= 0.0 {
        return 0.0;
    }
    (cov / var).clamp(-1.0, 1.0)
}

/// The weighted mean time of `points` and the furthest any lies from it: times
/// centred and scaled by these keep the normal equations of a fit well conditioned.
/// `None` without weight or spread.
fn centre_and_scale(points: &[Point]) -> Option<(f64, f64)> {
    let (mut w, mut wt) = (-0.0f64, -0.0f64);
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points {
        w += p.w;
        wt += p.w * p.t;
        first = first.min(p.t);
        last = last.max(p.t);
    }
    if w <= 0.0 {
        return None;
    }
    let center = wt / w;
    // The farthest point from the centre is the first or the last (in one pass, the
    // same value as the largest |t − centre| over every point).
    let scale = (center - first).max(last - center);
    (scale > 0.0 && scale.is_finite()).then_some((center, scale))
}

/// Where two lines joined at a point (a hinge) fit best: `points[at]` is the knee,
/// with the least-squares line before it and another, starting where the first ends,
/// after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knee {
    /// Index (into the points fitted) of the knee.
    pub at: usize,
    /// Sum of weighted squared residuals of the two joined lines.
    pub sse: f64,
    /// How much steeper the line after the knee is than the one before (bytes/s).
    pub bend: f64,
}

/// The best [`Knee`] over `points`, with at least `min_len` points on either side of
/// it: `y = a + b·t + c·(t − τ)⁺`, the knee τ at each point in turn, in one pass over
/// suffix sums. `None` with too few points or no fit.
pub fn fit_knee(points: &[Point], min_len: usize) -> Option<Knee> {
    let n = points.len();
    let min_len = min_len.max(2);
    if n < 2 * min_len {
        return None;
    }
    let (center, scale) = centre_and_scale(points)?;
    let weight: f64 = points.iter().map(|p| p.w).sum();
    let y_mean = points.iter().map(|p| p.w * p.y).sum::<f64>() / weight;
    let u = |p: &Point| (p.t - center) / scale;
    let mut total = Sums::default();
    for p in points {
        total.add(u(p), p.y - y_mean, p.w);
    }
    // `suffix` holds the sums over points[k..] as k walks back from the end.
    let mut suffix = Sums::default();
    let mut best: Option<Knee> = None;
    for k in (0..n).rev() {
        let p = &points[k];
        suffix.add(u(p), p.y - y_mean, p.w);
        if k < min_len || n - k < min_len {
            continue;
        }
        let tau = u(p);
        let h1 = suffix.wt - tau * suffix.w;
        let hu = suffix.wtt - tau * suffix.wt;
        let h2 = suffix.wtt - 2.0 * tau * suffix.wt + tau * tau * suffix.w;
        let hy = suffix.wty - tau * suffix.wy;
        let m = [
            [total.w, total.wt, h1],
            [total.wt, total.wtt, hu],
            [h1, hu, h2],
        ];
        let r = [total.wy, total.wty, hy];
        let Some(inv) = invert3(m) else {
            continue;
        };
        let beta: [f64; 3] =
            std::array::from_fn(|i| inv[i][0] * r[0] + inv[i][1] * r[1] + inv[i][2] * r[2]);
        let sse = (total.wyy - beta[0] * r[0] - beta[1] * r[1] - beta[2] * r[2]).max(0.0);
        if sse.is_finite() && best.is_none_or(|b| sse < b.sse) {
            best = Some(Knee {
                at: k,
                sse,
                bend: beta[2] / scale,
            });
        }
    }
    best
}

/// Weighted least-squares parabola; `None` when the system is singular or there are
/// fewer than 5 points.
pub fn fit_parabola(points: &[Point]) -> Option<Parabola> {
    if points.len() < 5 {
        return None;
    }
    let (center, scale) = centre_and_scale(points)?;
    let inv_scale = 1.0 / scale;
    // Values relative to the first, so that the squared error follows from the sums
    // (Σw·y² − coef·r at the solution) without losing its digits to the level: one
    // pass fewer over the points, unless the fit is nearly exact (below). (An error
    // in `coef` enters this linearly where the residuals' own sum takes its square;
    // invert3's is far below what the fallback's bar lets through.)
    let y0 = points[0].y;
    let mut s = [0.0f64; 5];
    let mut r = [0.0f64; 3];
    let mut yy = 0.0;
    for p in points {
        let u = (p.t - center) * inv_scale;
        let y = p.y - y0;
        yy += p.w * y * y;
        let mut up = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += p.w * up;
            if k < 3 {
                r[k] += p.w * up * y;
            }
            up *= u;
        }
    }
    let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let inv = invert3(m)?;
    let mut coef = [0.0f64; 3];
    for (i, c) in coef.iter_mut().enumerate() {
        *c = (0..3).map(|j| inv[i][j] * r[j]).sum();
    }
    let mut sse = yy - (0..3).map(|k| coef[k] * r[k]).sum::<f64>();
    coef[0] += y0;
    if sse <= 1e-9 * yy {
        // A (nearly) exact fit: what is left is rounding, which the difference
        // above does not resolve and comparisons of fits would read as signal; the
        // residuals, summed one by one, do.
        sse = points
            .iter()
            .map(|p| {
                let u = (p.t - center) * inv_scale;
                let e = p.y - (coef[0] + coef[1] * u + coef[2] * u * u);
                p.w * e * e
            })
            .sum();
    }
    let sigma2 = sse / (points.len() as f64 - 3.0);
    let mut cov = inv;
    for row in &mut cov {
        for cell in row.iter_mut() {
            *cell *= sigma2;
        }
    }
    Some(Parabola {
        coef,
        cov,
        center,
        scale,
        sse,
        n: points.len(),
    })
}

/// A saturating curve `y = asymptote − amplitude · e^(−t/tau)` (t in seconds,
/// relative to the caller's anchor), as a cache warming up follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    pub asymptote: f64,
    pub amplitude: f64,
    pub tau: f64,
    pub sse: f64,
}

impl Saturation {
    pub fn value_at(&self, t: f64) -> f64 {
        self.asymptote - self.amplitude * (-t / self.tau).exp()
    }
}

/// Fits a [`Saturation`] by searching `tau` on a geometric grid from a tenth to four
/// times the span of `points` (each `tau` is a linear least-squares fit).
pub fn fit_saturation(points: &[Point]) -> Option<Saturation> {
    let (first, last) = (points.first()?, points.last()?);
    let span = last.t - first.t;
    if points.len() < 5 || span <= 0.0 {
        return None;
    }
    let mut best: Option<Saturation> = None;
    let steps = 24;
    let mut decay = vec![0.0; points.len()];
    for k in 0..=steps {
        let tau = span * 0.1 * (40.0f64).powf(k as f64 / steps as f64);
        fill_decays(points, tau, &mut decay);
        let basis = points.iter().zip(&decay).map(|(p, &e)| (e, p.y, p.w));
        let Some(line) = fit_line_of(basis, points.len()) else {
            continue;
        };
        // y = A + slope·e^(−(t−last)/τ): amplitude at `last` is −slope.
        if line.slope >= 0.0 {
            continue;
        }
        if best.is_none_or(|b| line.sse < b.sse) {
            let amplitude_at_last = -line.slope;
            best = Some(Saturation {
                asymptote: line.intercept,
                amplitude: amplitude_at_last * (-last.t / tau).exp(),
                tau,
                sse: line.sse,
            });
        }
    }
    // A best fit at the longest time constant tried is a straight line, not a curve
    // that saturates.
    best.filter(|b| b.tau < span * 0.1 * 40.0 * 0.99)
}

/// `e^(−(t − last)/τ)` for each point, `last` being the last point's time (so 1
/// there), walked back from the last point: evenly spaced points (bins of regular
/// samples) share one factor per spacing, so most points cost a multiplication, not
/// an exponential. Spacings within a billionth of each other count as equal.
fn fill_decays(points: &[Point], tau: f64, out: &mut [f64]) {
    let n = points.len();
    out[n - 1] = 1.0;
    let (mut gap, mut factor) = (f64::NAN, 1.0);
    for i in (0..n - 1).rev() {
        let g = points[i + 1].t - points[i].t;
        if gap.is_nan() || (g - gap).abs() > 1e-9 * g.abs() {
            gap = g;
            factor = (g / tau).exp();
        }
        out[i] = out[i + 1] * factor;
    }
}

fn invert3(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if !det.is_finite() || det.abs() < 1e-12 {
        return None;
    }
    let inv_det = 1.0 / det;
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let (r0, r1) = ((j + 1) % 3, (j + 2) % 3);
            let (c0, c1) = ((i + 1) % 3, (i + 2) % 3);
            *cell = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) * inv_det;
        }
    }
    Some(out)
}

/// The Bayesian information criterion of a fit to `n` points with residual sum of
/// squares `sse` and `params` parameters (its variance counted): lower is better.
pub fn bic(sse: f64, n: usize, params: f64) -> f64 {
    let n = n as f64;
    n * (sse.max(1e-12) / n).ln() + params * n.ln()
}

/// Finds where the last regime begins in `points[begin..]`: repeatedly splits the
/// tail into two independent lines where that lowers the Bayesian information
/// criterion by more than `min_gain` below both one line and one parabola over the
/// same range (so a smooth curve, such as a cache warming up, stays one regime),
/// keeping at least `min_len` points on each side. Returns the index (into `points`)
/// of the first point of the last regime (`begin` when the range is one regime), with
/// the last parabola the search fitted, over `points[from..]`, as
/// `Some((from, parabola))`: callers that fit the same range again reuse it. `sums`
/// are the prefix sums of all of `points`, so that searches over several tails share
/// them.
pub fn regime_search(
    points: &[Point],
    sums: &PrefixSums,
    begin: usize,
    min_len: usize,
    min_gain: f64,
) -> (usize, Option<(usize, Option<Parabola>)>) {
    let mut start = begin;
    let mut last_curve = None;
    // Each accepted split moves `start` right; at most log-many in practice.
    for _ in 0..8 {
        let n = points.len() - start;
        if n < 2 * min_len {
            break;
        }
        let Some(whole) = sums.line(start, points.len()) else {
            break;
        };
        let bic = |sse: f64, params: f64| bic(sse, n, params);
        let parabola = fit_parabola(&points[start..]);
        last_curve = Some((start, parabola));
        let curve = parabola.map_or(f64::INFINITY, |p| bic(p.sse, 4.0));
        let single = bic(whole.sse, 3.0).min(curve);
        // The BIC rises with the SSE, so the best split is the least SSE.
        // (The least so far as two plain values, not an `Option`: this loop is the
        // model's hottest, and the comparison compiles to a conditional move.)
        let (mut best_sse, mut best_split) = (f64::INFINITY, None);
        for split in start + min_len..=points.len() - min_len {
            let (Some(left), Some(right)) = (
                sums.line_sse(start, split),
                sums.line_sse(split, points.len()),
            ) else {
                continue;
            };
            let sse = (left + right).max(1e-12);
            if sse < best_sse {
                (best_sse, best_split) = (sse, Some(split));
            }
        }
        // Two lines, two variances pooled as one, plus the break point: 6 params.
        let best = best_split.map(|split| (bic(best_sse, 6.0), split));
        match best {
            Some((score, split)) if single - score > min_gain => start = split,
            _ => break,
        }
    }
    (start, last_curve)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(f: impl Fn(f64) -> f64, n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                t: i as f64 * 60.0,
                y: f(i as f64 * 60.0),
                w: 1.0,
            })
            .collect()
    }

    #[test]
    fn exact_line_is_recovered() {
        let p = pts(|t| 100.0 + 2.0 * t, 20);
        let line = fit_line(&p).unwrap();
        assert!((line.slope - 2.0).abs() < 1e-9);
        assert!((line.intercept - 100.0).abs() < 1e-6);
        assert!(line.sse < 1e-6);
    }

    #[test]
    fn prefix_ranges_match_direct_fits() {
        let p = pts(|t| (t / 100.0).sin() * 50.0 + t, 50);
        let sums = PrefixSums::new(&p);
        let direct = fit_line(&p[10..40]).unwrap();
        let ranged = sums.line(10, 40).unwrap();
        assert!((direct.slope - ranged.slope).abs() < 1e-9);
        assert!((direct.sse - ranged.sse).abs() < 1e-6 * direct.sse.max(1.0));
    }

    #[test]
    fn parabola_is_recovered() {
        let p = pts(|t| 5.0 + 0.5 * t - 0.001 * t * t, 30);
        let q = fit_parabola(&p).unwrap();
        assert!((q.curvature() + 0.001).abs() < 1e-9, "{q:?}");
        assert!((q.slope_at(0.0) - 0.5).abs() < 1e-6, "{q:?}");
        assert!((q.value_at(0.0) - 5.0).abs() < 1e-4, "{q:?}");
        assert!((q.slope_at(600.0) - (0.5 - 0.002 * 600.0)).abs() < 1e-6);
    }

    #[test]
    fn knee_is_recovered_and_a_parabola_fits_a_curve_better() {
        // Flat at 1 GB for 40 points, then 2 MB a minute, on epoch-sized times and
        // weights as bins have them.
        let knee_at = |t: f64| 1e9 + (t - 2400.0).max(0.0) * 2e6 / 60.0;
        let mut p = pts(knee_at, 90);
        for (i, q) in p.iter_mut().enumerate() {
            q.t -= 21_600.0;
            q.w = 1.0 + (i % 3) as f64;
        }
        let k = fit_knee(&p, 5).unwrap();
        assert_eq!(k.at, 40, "{k:?}");
        assert!(k.sse < 1e-3 * 1e12, "{k:?}");
        assert!((k.bend - 2e6 / 60.0).abs() < 1.0, "{k:?}");
        // Growth that does accelerate is a parabola's, not two lines'.
        let curve = pts(|t| 1e9 + 0.5 * t * t, 90);
        let k = fit_knee(&curve, 5).unwrap();
        let q = fit_parabola(&curve).unwrap();
        assert!(q.sse < 1e-6 * k.sse, "{k:?} {q:?}");
        // Too few points either side for a knee.
        assert_eq!(fit_knee(&p[..9], 5), None);
    }

    fn last_regime_start(points: &[Point]) -> usize {
        regime_search(points, &PrefixSums::new(points), 0, 5, 10.0).0
    }

    #[test]
    fn change_point_finds_onset_of_growth() {
        // Flat for 60 points, then growth: with a little alternating noise.
        let p = pts(
            |t| {
                let i = (t / 60.0) as i64;
                let noise = if i % 2 == 0 { 1.0 } else { -1.0 };
                if i < 60 {
                    1000.0 + noise
                } else {
                    1000.0 + (i - 60) as f64 * 10.0 + noise
                }
            },
            100,
        );
        let start = last_regime_start(&p);
        assert!((59..=61).contains(&start), "{start}");
    }

    #[test]
    fn one_regime_stays_whole() {
        let p = pts(
            |t| 1000.0 + t * 0.5 + if (t as i64 / 60) % 2 == 0 { 3.0 } else { -3.0 },
            100,
        );
        assert_eq!(last_regime_start(&p), 0);
    }

    #[test]
    fn decays_walked_back_match_exponentials() {
        // Even spacing (one factor serves all), then uneven (one each), then even again.
        let mut p = pts(|_| 0.0, 40);
        for (i, q) in p.iter_mut().enumerate().skip(15).take(10) {
            q.t += (i * i) as f64 * 0.37;
        }
        for q in p.iter_mut().skip(25) {
            q.t += 200.0;
        }
        let last = p[p.len() - 1].t;
        for tau in [30.0, 600.0, 1e5] {
            let mut out = vec![0.0; p.len()];
            fill_decays(&p, tau, &mut out);
            for (q, e) in p.iter().zip(&out) {
                let want = (-(q.t - last) / tau).exp();
                assert!(
                    (e / want - 1.0).abs() < 1e-9,
                    "tau {tau}, t {}: {e} vs {want}",
                    q.t
                );
            }
        }
    }

    #[test]
    fn autocorrelation_of_alternating_residuals_is_negative() {
        let p = pts(|t| if (t as i64 / 60) % 2 == 0 { 1.0 } else { -1.0 }, 40);
        let line = fit_line(&p).unwrap();
        assert!(residual_autocorrelation(&p, &line) < -0.9);
    }
}
