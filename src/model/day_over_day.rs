//! Growth measured against the same hours a day before, for an incarnation between
//! one and two days old whose daily cycle cannot be known yet.
//!
//! The daily cycle is found once two days of an incarnation are held (`daily.rs`).
//! Before that, six hours of fine history under a cycle read its upswing as growth:
//! in the random family, the first page of a run of a container with a daily cycle
//! in its first two days was within 25% of the truth for a quarter of the runs, and
//! too early for nine in ten of the rest. Once a day and a few hours are held, the
//! newest hours can be held against the same hours of the day before: whatever the
//! cycle's shape, it is the same at both, so what they differ by is growth.
//!
//! Used only where a cycle is suspected: the hourly means fell, somewhere in the
//! incarnation, by [`SUSPECT_FALL`] of the limit below their highest before. Growth
//! alone (a leak straight, accelerating or slowing; a sawtooth averaged within its
//! hours) does not fall so; a cycle larger than a leak's own growth does.
//!
//! Pure and clock-free: the store makes it as each hour closes (`store::long`).

use super::daily::MIN_CYCLE_HOURS;
use super::excursions::Hour;
use super::forecast::{t_quantile, ForecastParams, TimeToLimit, HOUR_MS};

/// The newest hours held against the same hours a day before.
const HOURS_COMPARED: usize = 3;
/// Hours of the incarnation needed: a day, and the hours compared before it.
pub const MIN_HOURS: usize = 24 + HOURS_COMPARED;
/// How far ahead (hours) the newest day's hours are carried: three days.
const HOURS_AHEAD: usize = 72;
/// A fall of the hourly means below their highest before, as a share of the limit,
/// that makes a daily cycle suspected.
pub const SUSPECT_FALL: f64 = 0.02;

/// What the newest day of an incarnation says against the day before (kept as
/// `f32`, within a part in ten million: a container's record holds it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayOverDay {
    /// The growth (bytes/s) that the differences say, its standard error, and the
    /// degrees of freedom behind it (differences less the two numbers fitted).
    pub growth_bytes_per_second: f32,
    pub growth_stderr: f32,
    pub dof: u8,
    /// When that growth began, in hours before the end of the newest hour (≤ 0
    /// counts back); `None` when a day or more before the oldest difference.
    pub onset_hours: Option<f32>,
    /// The deepest fall of the incarnation's hourly means below their highest before
    /// (bytes).
    pub fall_bytes: f32,
    /// The end of the newest hour (ms since the epoch; 0 when the hours were given
    /// without their times).
    pub at_ms: i64,
}

/// The comparison for the hours `newest_first` of an incarnation, when it holds
/// [`MIN_HOURS`] and fewer than the daily cycle's [`MIN_CYCLE_HOURS`].
///
/// Each hour's mean less the mean of the same hour a day before is free of any
/// daily cycle. Under growth of `s` a second that began at `t0`, that difference is
/// `s·min(t − t0, 24 h)` (0 before `t0`): it climbs while the growth is younger
/// than a day and stands at a day's growth after. The growth and its onset are the
/// least-squares fit of that shape, the onset tried at each hour.
pub fn day_over_day(newest_first: impl Iterator<Item = Option<Hour>>) -> Option<DayOverDay> {
    let hours: Vec<Option<f64>> = newest_first
        .take(MIN_CYCLE_HOURS)
        .map(|h| h.map(|h| h.mean).filter(|m| m.is_finite()))
        .collect();
    // From two days on, the daily cycle has had its test (`daily.rs`).
    if hours.len() < MIN_HOURS || hours.len() >= MIN_CYCLE_HOURS {
        return None;
    }
    // (hour centre before the end of the newest, difference)
    let differences: Vec<(f64, f64)> = (0..hours.len() - 24)
        .filter_map(|ago| Some((-(ago as f64) - 0.5, hours[ago]? - hours[ago + 24]?)))
        .collect();
    if differences.len() < HOURS_COMPARED {
        return None;
    }
    let oldest = differences.last().map_or(0.0, |d| d.0);
    // Onsets at each hour back to a day before the oldest difference, where all
    // differences stand at a day's growth alike.
    let mut best: Option<(f64, f64, f64, f64)> = None; // (sse, slope, onset, Σg²)
    let yy: f64 = differences.iter().map(|d| d.1 * d.1).sum();
    let mut onset = 0.0;
    // (oldest is an hour's middle: at `oldest − 24.5` every difference stands.)
    while onset >= oldest - 24.5 {
        let (mut gg, mut gy) = (0.0, 0.0);
        for &(x, y) in &differences {
            let g = (x - onset).clamp(0.0, 24.0);
            gg += g * g;
            gy += g * y;
        }
        if gg > 0.0 {
            let slope = gy / gg;
            let sse = (yy - slope * gy).max(0.0);
            if best.is_none_or(|b| sse < b.0) {
                best = Some((sse, slope, onset, gg));
            }
        }
        onset -= 1.0;
    }
    let (sse, slope, onset, gg) = best?;
    // Two numbers fitted: the growth and its onset.
    let dof = (differences.len() as f64 - 2.0).max(1.0);
    let scatter = (sse / dof / gg).sqrt();
    let mut highest = f64::NEG_INFINITY;
    let mut fall = 0.0f64;
    for mean in hours.iter().rev().flatten() {
        highest = highest.max(*mean);
        fall = fall.max(highest - mean);
    }
    Some(DayOverDay {
        growth_bytes_per_second: (slope / 3600.0) as f32,
        growth_stderr: (scatter / 3600.0) as f32,
        dof: dof as u8,
        onset_hours: (onset > oldest - 24.0).then_some(onset as f32),
        fall_bytes: fall as f32,
        at_ms: 0,
    })
}

impl DayOverDay {
    /// Whether the growth is more than its scatter allows, at `confidence`
    /// (one-sided).
    pub fn growth_is_real(&self, confidence: f64) -> bool {
        f64::from(self.growth_bytes_per_second)
            > t_quantile(f64::from(self.dof), confidence) * f64::from(self.growth_stderr)
    }

    /// Whether a daily cycle is suspected against `limit_bytes`.
    pub fn suspects_a_cycle(&self, limit_bytes: f64) -> bool {
        f64::from(self.fall_bytes) >= SUSPECT_FALL * limit_bytes
    }

    /// When the working set reaches `limit_bytes`, as of `now` (ms), if each hour
    /// of the day peaks as it did in the newest day (`newest_day[a]`: the highest
    /// sample of the hour that ended `a` hours before the newest's end, NaN without
    /// one), raised by the growth between that hour and the one ahead (from the
    /// onset on): whatever the cycle's shape, the hour that crosses first. `None`
    /// when the growth is not real at `params.growth_confidence`, or no hour crosses within three days (the caller
    /// then calls the growth off: past the warning horizon unless that is set beyond
    /// 58 hours). The interval is a fixed 0.7 to 1.5 times: a day's comparison says
    /// little of its own error.
    pub fn time_to_limit(
        &self,
        limit_bytes: f64,
        now: i64,
        newest_day: &[f64; 24],
        params: &ForecastParams,
    ) -> Option<TimeToLimit> {
        let slope = f64::from(self.growth_bytes_per_second) * 3600.0;
        if !self.growth_is_real(params.growth_confidence) || slope <= 0.0 {
            return None;
        }
        let since_end = if self.at_ms > 0 {
            (now.clamp(self.at_ms, self.at_ms + 2 * HOUR_MS) - self.at_ms) as f64 / 1000.0
        } else {
            0.0
        };
        let onset = self.onset_hours.map_or(f64::NEG_INFINITY, f64::from);
        // The hour ending j hours after the newest's end is the hour of the day that
        // ended 24k − j hours before it, k days on.
        let crossing = (1..=HOURS_AHEAD).find(|&j| {
            let k = j.div_ceil(24);
            let a = 24 * k - j;
            let peak = newest_day[a];
            let (ahead, then) = (j as f64 - 0.5, -(a as f64) - 0.5);
            peak.is_finite() && peak + slope * (ahead - then.max(onset)).max(0.0) >= limit_bytes
        })?;
        // The middle of the hour that crosses.
        let seconds = ((crossing as f64 - 0.5) * 3600.0 - since_end).max(0.0);
        Some(TimeToLimit {
            seconds,
            lower_seconds: seconds * 0.7,
            upper_seconds: Some(seconds * 1.5),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    const MI: f64 = 1024.0 * 1024.0;

    /// `n` hours (oldest first) of a daily cycle of `amplitude` (phase `phase`
    /// hours) over 500Mi, with growth of `growth` a hour from hour `onset` on.
    fn hours(n: usize, amplitude: f64, phase: f64, growth: f64, onset: f64) -> Vec<Option<Hour>> {
        (0..n)
            .map(|h| {
                let t = h as f64 + 0.5;
                let mean = 500.0 * MI
                    + amplitude * (TAU * (t + phase) / 24.0).sin()
                    + growth * (t - onset).max(0.0);
                Some(Hour {
                    max: mean + 5.0 * MI,
                    mean,
                })
            })
            .collect()
    }

    fn of(hours: &[Option<Hour>]) -> Option<DayOverDay> {
        day_over_day(hours.iter().rev().copied())
    }

    #[test]
    fn growth_under_a_cycle_is_read_whatever_the_cycle_and_onset() {
        for n in [28, 36, 47] {
            for phase in [0.0, 6.0, 13.0] {
                for onset_ago in [5.0, 12.0, 40.0] {
                    let onset = n as f64 - onset_ago;
                    let h = hours(n, 100.0 * MI, phase, 4.0 * MI, onset);
                    let d = of(&h).expect("a day and three hours");
                    let growth = f64::from(d.growth_bytes_per_second) * 3600.0 / MI;
                    assert!(
                        (growth - 4.0).abs() < 0.2,
                        "{n}h, {phase}, {onset_ago}: {d:?}"
                    );
                    if onset_ago < 24.0 {
                        let found = -f64::from(d.onset_hours.expect("within the day"));
                        assert!((found - onset_ago).abs() <= 1.0, "{d:?}");
                    }
                    assert!(d.growth_is_real(0.99));
                    assert!(d.suspects_a_cycle(2048.0 * MI), "a 200Mi swing");
                }
            }
        }
    }

    #[test]
    fn a_cycle_alone_does_not_grow_and_a_leak_alone_is_not_suspected() {
        let cycle = of(&hours(40, 100.0 * MI, 3.0, 0.0, 0.0)).unwrap();
        assert!(!cycle.growth_is_real(0.99), "{cycle:?}");
        let p = ForecastParams::default();
        assert_eq!(
            cycle.time_to_limit(1024.0 * MI, 0, &[600.0 * MI; 24], &p),
            None
        );
        let leak = of(&hours(40, 0.0, 0.0, 4.0 * MI, 0.0)).unwrap();
        assert!(!leak.suspects_a_cycle(1024.0 * MI), "{leak:?}");
        assert_eq!(
            of(&hours(26, 100.0 * MI, 0.0, 0.0, 0.0)),
            None,
            "under a day and 3 hours"
        );
        assert_eq!(
            of(&hours(48, 100.0 * MI, 0.0, 0.0, 0.0)),
            None,
            "the cycle's own from 48"
        );
    }

    #[test]
    fn the_hour_that_crosses_is_the_newest_day_carried_on() {
        // Grown 24Mi a day from long before; the newest day peaked at 900Mi 6 hours
        // before its end, 800Mi at every other hour. Limit 1000Mi: the peak's hour
        // needs 100Mi more, 4.2 days' growth (past three days), and the others
        // never come near. At 5Mi/h: the peak's hour tomorrow (+18 hours).
        let mut newest = [800.0 * MI; 24];
        newest[6] = 900.0 * MI;
        let at = |growth_mi_h: f64| DayOverDay {
            growth_bytes_per_second: (growth_mi_h * MI / 3600.0) as f32,
            growth_stderr: 0.0,
            dof: 10,
            onset_hours: None,
            fall_bytes: 0.0,
            at_ms: 0,
        };
        let p = ForecastParams::default();
        assert_eq!(at(1.0).time_to_limit(1000.0 * MI, 0, &newest, &p), None);
        let eta = at(5.0).time_to_limit(1000.0 * MI, 0, &newest, &p).unwrap();
        assert_eq!(eta.seconds, 17.5 * 3600.0, "{eta:?}");
        assert!(eta.lower_seconds < eta.seconds && eta.upper_seconds > Some(eta.seconds));
    }
}
