//! Slow growth that only the hours show: a line through an incarnation's hourly
//! maxima, from its first day to its third.
//!
//! A leak of a few MiB an hour under a GC sawtooth of a tenth to a fifth of the
//! limit, or under a scrape too coarse for the sawtooth (every 5 minutes, a sawtooth
//! of minutes reads as noise), is no trend in six hours of fine history: its growth
//! is within the scatter. Its hourly maxima, the sawtooth's tops, climb all the
//! same, hour after hour, and the kill comes when a top reaches the limit. In the
//! random family such leaks are most of the OOMs missed outright. The daily peaks
//! (`excursions`) read that growth from three days on; this reads it from one day on.
//!
//! A daily cycle's upswing is no leak: its tops stray from a line in long runs,
//! hour after hour on the same side, and the slope's error is widened for residuals
//! that follow each other. Used only where the fine history sees no growth at all,
//! and it reaches no further ahead than the hours it stands on.
//!
//! Pure and clock-free: the store makes it as each hour closes (`store::long`).
//! An incarnation past three days has none: its daily peaks read the same growth.

use super::excursions::Hour;
use super::forecast::{t_quantile, TimeToLimit, HOUR_MS, MODEL_ERROR};
use super::trend::{autocorrelation_inflation, fit_line, residual_autocorrelation, Point};

/// Hours of the incarnation needed: a day, over which a daily cycle shows.
pub const MIN_HOURS: usize = 24;
/// The most hours fitted: three days, where the daily peaks take over.
const MAX_HOURS: usize = 72;
const _: () = assert!(MAX_HOURS <= u8::MAX as usize, "hours are kept as a u8");
/// Hours with samples needed of those.
const MIN_HOURS_SEEN: usize = 20;
/// The most lag-one correlation of the tops' residuals counted: past it, a fit of
/// 20-72 hours says too little of it.
const MAX_RHO: f64 = 0.9;

/// A line through the hourly maxima of an incarnation's newest hours (kept as
/// `f32`: a container's record holds it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Envelope {
    /// The line at the end of the newest hour (bytes).
    pub level_bytes: f32,
    /// Its slope (bytes/s), the slope's standard error (widened for residuals
    /// that follow each other), and the degrees of freedom behind it.
    pub growth_bytes_per_second: f32,
    pub growth_stderr: f32,
    pub dof: u8,
    /// Hours fitted (from the oldest to the end of the newest).
    pub hours: u8,
    /// The scatter of the tops about the line (bytes): a kill comes when one top
    /// reaches the limit, not the line.
    pub scatter_bytes: f32,
    /// The highest top of the newest hour with samples (bytes).
    pub newest_top_bytes: f32,
    /// The end of the newest hour (ms since the epoch; 0 when the hours were given
    /// without their times).
    pub at_ms: i64,
}

/// The line through the hourly maxima of `newest_first` (an incarnation's hours,
/// newest first), when it holds [`MIN_HOURS`] or more.
pub fn envelope(newest_first: impl Iterator<Item = Option<Hour>>) -> Option<Envelope> {
    // (hour centre before the end of the newest, maximum), newest first; and how
    // many hours the incarnation holds, up to one past three days.
    let mut points = Vec::with_capacity(MAX_HOURS);
    let mut hours = 0;
    for (ago, h) in newest_first.take(MAX_HOURS + 1).enumerate() {
        hours = ago + 1;
        if let Some(max) = h.map(|h| h.max).filter(|m| m.is_finite()) {
            points.push(Point {
                t: -(ago as f64) - 0.5,
                y: max,
                w: 1.0,
            });
        }
    }
    // Past three days the daily peaks read the same growth (`excursions`).
    if !(MIN_HOURS..=MAX_HOURS).contains(&hours) || points.len() < MIN_HOURS_SEEN {
        return None;
    }
    points.reverse();
    let line = fit_line(&points)?;
    // Residuals that follow each other (a daily swing, a sawtooth's beat, an hour's
    // spill into the next) say less than as many independent ones: the slope's
    // error widens for their lag-one correlation, and the degrees of freedom
    // shrink alike.
    let rho = residual_autocorrelation(&points, &line).min(MAX_RHO);
    let inflation = autocorrelation_inflation(rho);
    let n = points.len() as f64;
    Some(Envelope {
        level_bytes: line.at(0.0) as f32,
        growth_bytes_per_second: (line.slope / 3600.0) as f32,
        growth_stderr: (line.slope_std_error(rho) / 3600.0) as f32,
        dof: ((n - 2.0) / inflation.powi(2)).clamp(1.0, 255.0) as u8,
        hours: hours as u8,
        scatter_bytes: line.residual_variance().sqrt() as f32,
        newest_top_bytes: points.last().map_or(f64::NAN, |p| p.y) as f32,
        at_ms: 0,
    })
}

impl Envelope {
    /// When the line reaches `limit_bytes`, as of `now` (ms), with an interval at
    /// `interval` (two-sided): `None` when the growth is not real at `confidence`
    /// (one-sided), or when the limit is further ahead than the hours fitted.
    pub fn time_to_limit(
        &self,
        limit_bytes: f64,
        now: i64,
        confidence: f64,
        interval: f64,
    ) -> Option<TimeToLimit> {
        let growth = f64::from(self.growth_bytes_per_second);
        let stderr = f64::from(self.growth_stderr);
        let dof = f64::from(self.dof);
        let needed = t_quantile(dof, confidence) * stderr;
        if growth.is_nan() || needed.is_nan() || growth <= needed {
            return None;
        }
        // The line stands at the end of the newest hour; the evaluation is within
        // the open hour after it.
        let since = if self.at_ms > 0 {
            (now - self.at_ms).clamp(0, HOUR_MS) as f64 / 1000.0
        } else {
            0.0
        };
        let room = limit_bytes - f64::from(self.level_bytes);
        // A line past the limit while the newest top is below it is tops that
        // level off under it (a least-squares line overshoots a bend at its end):
        // no reading.
        if room <= 0.0 && f64::from(self.newest_top_bytes) < limit_bytes {
            return None;
        }
        let seconds = (room / growth - since).max(0.0);
        let reach = f64::from(self.hours) * HOUR_MS as f64 / 1000.0;
        if seconds > reach {
            return None;
        }
        // The growth's own error either way, the model's, and, sooner, a top
        // above the line by the tops' scatter.
        let t = t_quantile(dof, 0.5 + interval / 2.0);
        let (fast, slow) = (growth + t * stderr, growth - t * stderr);
        let room_low = (room - t * f64::from(self.scatter_bytes)).max(0.0);
        Some(TimeToLimit {
            seconds,
            lower_seconds: (room_low / fast - since)
                .max(0.0)
                .min(seconds * (1.0 - MODEL_ERROR)),
            upper_seconds: (slow > 0.0)
                .then(|| (room / slow - since).max(seconds * (1.0 + MODEL_ERROR))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rng;

    const MI: f64 = 1024.0 * 1024.0;

    /// `n` hours, oldest first: a sawtooth's tops over a noisy base, rising by
    /// `growth` an hour.
    fn hours(n: usize, growth: f64, seed: u64) -> Vec<Option<Hour>> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|h| {
                let base = 200.0 * MI + growth * h as f64;
                Some(Hour {
                    max: base + 40.0 * MI + 3.0 * MI * rng.normal(),
                    mean: base + 20.0 * MI + 1.0 * MI * rng.normal(),
                })
            })
            .collect()
    }

    #[test]
    fn tops_that_climb_for_a_day_reach_the_limit() {
        let h = hours(30, 1.0 * MI, 1);
        let e = envelope(h.iter().rev().copied()).expect("a day and more");
        let per_hour = f64::from(e.growth_bytes_per_second) * 3600.0 / MI;
        assert!((0.8..1.2).contains(&per_hour), "{per_hour}");
        // Tops at about 270Mi: a 285Mi limit is some 15 hours off, and a top
        // above the line by their scatter may cross hours sooner.
        let eta = e
            .time_to_limit(285.0 * MI, 0, 0.99, 0.9)
            .expect("on course");
        assert!((10.0..20.0).contains(&(eta.seconds / 3600.0)), "{eta:?}");
        assert!(eta.lower_seconds < 0.8 * eta.seconds, "{eta:?}");
        // Further than the 30 hours fitted: none.
        assert_eq!(e.time_to_limit(400.0 * MI, 0, 0.99, 0.9), None);
    }

    #[test]
    fn flat_tops_a_young_incarnation_and_a_cycle_say_nothing() {
        let flat = hours(40, 0.0, 2);
        let e = envelope(flat.iter().rev().copied()).unwrap();
        assert_eq!(e.time_to_limit(250.0 * MI, 0, 0.99, 0.9), None, "{e:?}");
        assert!(envelope(hours(20, MI, 3).iter().rev().copied()).is_none());
        // A day of a daily swing, its upswing newest: a line through its tops rises
        // 2.4Mi/h, some five standard errors of independent tops, and would reach
        // 240Mi in under five hours; but the tops stray from it for hours on end,
        // and that is no growth.
        let cycle: Vec<Option<Hour>> = (0..24)
            .map(|h| {
                let v = 200.0 * MI
                    + 30.0 * MI * (std::f64::consts::TAU * (h as f64 + 12.0) / 24.0).sin();
                Some(Hour { max: v, mean: v })
            })
            .collect();
        let e = envelope(cycle.iter().rev().copied()).unwrap();
        assert_eq!(e.time_to_limit(240.0 * MI, 0, 0.99, 0.9), None, "{e:?}");
        // Past three days: the daily peaks read it.
        assert!(envelope(hours(80, MI, 4).iter().rev().copied()).is_none());
    }
}
