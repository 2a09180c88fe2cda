//! A leak that ran a container out of memory, starting over after the restart.
//!
//! A new incarnation is too young for a trend of its own until it has
//! `min_history` (30 min by default), and too young to extrapolate far for a while
//! after. But when the incarnation before it ran out by growing (it climbed steadily
//! to the limit and ended there) and this one follows the same course, age for age,
//! growing significantly, the previous run already says when this one will run out:
//! as long after its start as the previous one took. A previous run that sat near the
//! limit, or jumped to it, says nothing of when the next one will; neither does one
//! this incarnation does not follow.
//!
//! The fine tier holds a run before only while it lies whole in the lookback; runs
//! longer than that are read from the long tier's hours ([`follows_previous_hours`]).

use super::forecast::{TimeToLimit, HOUR_MS, MODEL_ERROR};
use super::trend::fit_line_of;
use super::Sample;

/// A previous run ended at the limit when its last sample (from hours: the highest
/// of the hour of the restart and the hour before) was this close to it.
pub const RAN_OUT: f64 = 0.95;

/// Whether an incarnation whose last sample was `last` ran out at `limit` (bytes):
/// ended at [`RAN_OUT`] of it or more. No limit, no running out.
pub fn ran_out(last: Option<Sample>, limit: Option<f64>) -> bool {
    match (last, limit) {
        (Some(last), Some(limit)) => {
            limit.is_finite() && limit > 0.0 && last.bytes >= RAN_OUT * limit
        }
        _ => false,
    }
}
/// The youngest incarnation compared with the previous run (ms), and the fewest
/// samples.
const MIN_AGE_MS: i64 = 5 * 60_000;
const MIN_SAMPLES: usize = 8;
/// The fewest closed hours of an incarnation compared hour by hour (each the mean
/// of an hour's samples: steadier than a sample) that must grow by themselves.
pub const MIN_HOURS: usize = 6;
/// The fewest closed hours that must have followed the run before when the fine
/// trend reads the growth: a warm-up's first hour or two is no course.
pub const MIN_HOURS_BESIDE_TREND: usize = 2;
/// The same course: on average within this fraction of the limit of the previous
/// run at the same age, and no sample farther than twice that.
const COURSE_BAND: f64 = 0.04;
/// The previous run climbed to the limit: from the current age to its end, at each
/// quarter of the way, within this fraction of the limit of a straight climb.
const CLIMB_BAND: f64 = 0.15;
/// The current incarnation's growth must be this many standard errors above zero.
const GROWTH_T: f64 = 3.0;

/// What the previous run says of the current one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recurrence {
    pub time_to_limit: TimeToLimit,
    /// The current incarnation's growth (bytes/s): its own line so far, or the fine
    /// trend's growth now (from hours beside a growing trend).
    pub growth_bytes_per_second: f64,
    /// How long the previous run took from its start to the limit (ms).
    pub previous_took_ms: i64,
}

/// Whether `current` (a young incarnation, oldest first) follows `previous` (the
/// one before it, oldest first) toward `limit`, as of `now` (ms).
pub fn follows_previous(
    current: &[Sample],
    previous: &[Sample],
    limit: f64,
    now: i64,
) -> Option<Recurrence> {
    let current = Run {
        points: current,
        start: current.first()?.at,
    };
    let previous = Run {
        points: previous,
        start: previous.first()?.at,
    };
    follows_course(current, previous, limit, now, Evidence::Samples)
}

/// A run's points, oldest first, and when it began (ms).
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    points: &'a [Sample],
    start: i64,
}

/// What the fine history reads of a growing incarnation now: its trend's level and
/// growth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growing {
    pub level_bytes: f64,
    pub growth_bytes_per_second: f64,
}

/// What a course is compared on, and what says the current run grows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Evidence {
    /// The fine tier's samples, [`MIN_SAMPLES`] at least, growing by themselves.
    Samples,
    /// Hours' means, [`MIN_HOURS`] at least, growing by themselves.
    Hours,
    /// Hours' means, [`MIN_HOURS_BESIDE_TREND`] at least, beside the fine trend's
    /// reading of growth now.
    HoursBesideTrend(Growing),
}

/// [`follows_previous`] for runs longer than the fine history, read from the long
/// tier: each run as its hours' means (at the middle of each hour wholly inside
/// it), the previous one ending with its highest sample when it was killed (its
/// last point, at the restart), and each run's start (ms) given, as hours do not
/// begin with a run. An hour's mean carries a daily swing of more than the course's
/// band off it, so a run under a large daily cycle does not count as the same course.
///
/// Growth shows in the fine history long before it does in hours (a leak after a
/// flat start is hours old before hours' means grow significantly): where the fine
/// trend reads growth (`growing`), [`MIN_HOURS_BESIDE_TREND`] closed hours that
/// follow the course so far do, if the trend stands where the run before stood at
/// this age (within the course's band) and climbs at half to twice its pace there
/// (its hours' means an hour either side). Without it, [`MIN_HOURS`] closed hours
/// must grow by themselves.
pub fn follows_previous_hours(
    current: &[Sample],
    current_start: i64,
    previous: &[Sample],
    previous_start: i64,
    limit: f64,
    now: i64,
    growing: Option<Growing>,
) -> Option<Recurrence> {
    let evidence = match growing {
        Some(g) => Evidence::HoursBesideTrend(g),
        None => Evidence::Hours,
    };
    let current = Run {
        points: current,
        start: current_start,
    };
    let previous = Run {
        points: previous,
        start: previous_start,
    };
    follows_course(current, previous, limit, now, evidence)
}

fn follows_course(
    current: Run,
    previous: Run,
    limit: f64,
    now: i64,
    evidence: Evidence,
) -> Option<Recurrence> {
    let (current, current_start) = (current.points, current.start);
    let (previous, previous_start) = (previous.points, previous.start);
    let prev_last = previous.last()?;
    if !ran_out(Some(*prev_last), Some(limit)) {
        return None;
    }
    let age = now - current_start;
    let took = prev_last.at - previous_start;
    let (trend, min_points) = match evidence {
        Evidence::Samples => (None, MIN_SAMPLES),
        Evidence::Hours => (None, MIN_HOURS),
        Evidence::HoursBesideTrend(growing) => (Some(growing), MIN_HOURS_BESIDE_TREND),
    };
    if age < MIN_AGE_MS
        || current.len() < min_points
        || age >= took
        || current.last().is_some_and(|last| last.at > now)
    {
        return None;
    }
    // The previous run's working set at the age of each current sample.
    let previous_at = |age: i64| -> Option<f64> {
        let at = previous_start + age;
        let i = previous.partition_point(|s| s.at < at);
        let after = previous.get(i)?;
        let before = if i == 0 { after } else { &previous[i - 1] };
        let span = (after.at - before.at) as f64;
        let frac = if span > 0.0 {
            (at - before.at) as f64 / span
        } else {
            0.0
        };
        Some(before.bytes + (after.bytes - before.bytes) * frac)
    };
    let band = COURSE_BAND * limit;
    let mut sum = 0.0;
    for s in current {
        let off = s.bytes - previous_at(s.at - current_start)?;
        if !off.is_finite() || off.abs() > 2.0 * band {
            return None;
        }
        sum += off;
    }
    if (sum / current.len() as f64).abs() > band {
        return None;
    }
    // Both growing, at comparable rates: (its growth, its pace against the run
    // before).
    let (growth, ratio) = match trend {
        Some(reading) => {
            let growth = reading.growth_bytes_per_second;
            let off = (reading.level_bytes - previous_at(age)?).abs();
            if off.is_nan() || off > band || growth.is_nan() || growth <= 0.0 {
                return None;
            }
            let (a, b) = ((age - HOUR_MS).max(0), (age + HOUR_MS).min(took));
            let pace = (previous_at(b)? - previous_at(a)?) / ((b - a) as f64 / 1000.0);
            if pace.is_nan() || pace <= 0.0 {
                return None;
            }
            (growth, growth / pace)
        }
        None => {
            let line = |run: &[Sample], start: i64| {
                let points = run
                    .iter()
                    .map(|s| ((s.at - start) as f64 / 1000.0, s.bytes, 1.0));
                fit_line_of(points, run.len())
            };
            let own = line(current, current_start)?;
            let before = line(
                &previous[..previous.partition_point(|s| s.at - previous_start <= age)],
                previous_start,
            )?;
            if own.slope - GROWTH_T * own.slope_std_error(0.0) <= 0.0 || before.slope <= 0.0 {
                return None;
            }
            (own.slope, own.slope / before.slope)
        }
    };
    // The previous run climbed from here to the limit, rather than sitting near it
    // for hours or jumping to it.
    let from = previous_at(age)?;
    let climbed = (1..4).all(|q| {
        let at = age + (took - age) * q / 4;
        let straight = from + (prev_last.bytes - from) * q as f64 / 4.0;
        previous_at(at).is_some_and(|v| (v - straight).abs() <= CLIMB_BAND * limit)
    });
    if !climbed || prev_last.bytes - from < 4.0 * band {
        return None;
    }
    if !(0.5..=2.0).contains(&ratio) {
        return None;
    }
    let seconds = (took - age) as f64 / 1000.0;
    // Growing slower than last time, it takes longer, and faster, less: the interval
    // spans both readings, and the model's own error at least.
    let (low, high) = (seconds / ratio.max(1.0), seconds / ratio.min(1.0));
    Some(Recurrence {
        time_to_limit: TimeToLimit {
            seconds,
            lower_seconds: low.min(seconds * (1.0 - MODEL_ERROR)),
            upper_seconds: Some(high.max(seconds * (1.0 + MODEL_ERROR))),
        },
        growth_bytes_per_second: growth,
        previous_took_ms: took,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: f64 = 1024.0 * 1024.0;

    /// 100Mi growing 50Mi/h from `start` for `minutes`, with a little alternating noise.
    fn run(start: i64, minutes: i64, rate_per_hour: f64) -> Vec<Sample> {
        (0..=minutes * 2)
            .map(|i| Sample {
                at: start + i * 30_000,
                bytes: 100.0 * MI
                    + rate_per_hour * MI * i as f64 / 120.0
                    + if i % 2 == 0 { 0.3 * MI } else { -0.3 * MI },
            })
            .collect()
    }

    #[test]
    fn a_run_on_the_same_course_runs_out_as_long_after_its_start() {
        // 100Mi -> 256Mi at 50Mi/h: 187 minutes, then killed.
        let previous = run(0, 187, 50.0);
        let start = previous.last().unwrap().at + 60_000;
        let current = run(start, 10, 50.0);
        let now = current.last().unwrap().at;
        let r = follows_previous(&current, &previous, 256.0 * MI, now).expect("same course");
        assert_eq!(r.previous_took_ms, 187 * 60_000);
        assert!(
            (r.time_to_limit.seconds - 177.0 * 60.0).abs() < 1.0,
            "{r:?}"
        );
        let t = r.time_to_limit;
        assert!(t.lower_seconds < t.seconds && t.seconds < t.upper_seconds.unwrap());
        assert!(
            (r.growth_bytes_per_second * 3600.0 / MI - 50.0).abs() < 5.0,
            "{r:?}"
        );
    }

    /// Through the forecast: the young incarnation gets its time to limit from the
    /// previous run, and without that run it has none; once its own trend is fitted
    /// but too young to extrapolate that far, the previous run still gives it.
    #[test]
    fn a_young_incarnation_is_forecast_from_the_run_before() {
        use crate::model::{forecast_after, ForecastParams, Pattern, Severity};
        let previous = run(0, 187, 50.0);
        let start = previous.last().unwrap().at + 60_000;
        let limit = Some(256.0 * MI);
        let params = ForecastParams::default();
        for minutes in [10, 45] {
            let current = run(start, minutes, 50.0);
            let now = current.last().unwrap().at;
            let alone = forecast_after(&current, None, limit, now, &params);
            assert_eq!(alone.time_to_limit, None, "at {minutes} min: {alone:?}");
            let f = forecast_after(&current, Some(&previous), limit, now, &params);
            let eta = f.time_to_limit.expect("from the previous run").seconds;
            assert!(
                (eta - (187 - minutes) as f64 * 60.0).abs() < 60.0,
                "at {minutes} min: {f:?}"
            );
            assert_eq!(f.pattern, Pattern::Leak);
            assert_eq!(f.severity, Severity::Warning, "{f:?}");
            assert_eq!(f.previous_run_ms, Some(187 * 60_000));
            assert_eq!(alone.previous_run_ms, None);
        }
    }

    /// Restarts near the limit that were not a climb to it: a warm-up to a plateau at
    /// 96% (a rollout or a probe restarted it), and a slow creep that jumped to the
    /// limit at the end.
    #[test]
    fn a_run_that_sat_near_the_limit_or_jumped_to_it_says_nothing() {
        let limit = 256.0 * MI;
        let shape = |start: i64, minutes: i64, f: &dyn Fn(f64) -> f64| -> Vec<Sample> {
            (0..=minutes * 2)
                .map(|i| Sample {
                    at: start + i * 30_000,
                    bytes: f(i as f64 / 2.0) + if i % 2 == 0 { 0.3 * MI } else { -0.3 * MI },
                })
                .collect()
        };
        // 30 minutes from 100Mi to 96% of the limit, then flat for three hours.
        let plateau = |m: f64| 100.0 * MI + (0.96 * limit - 100.0 * MI) * (m / 30.0).min(1.0);
        let previous = shape(0, 210, &plateau);
        let start = previous.last().unwrap().at + 60_000;
        let current = shape(start, 10, &plateau);
        let now = current.last().unwrap().at;
        assert_eq!(follows_previous(&current, &previous, limit, now), None);
        // 100Mi creeping 10Mi/h for three hours, then at the limit in the last minute.
        let creep = |m: f64| {
            if m < 179.0 {
                100.0 * MI + 10.0 * MI * m / 60.0
            } else {
                limit
            }
        };
        let previous = shape(0, 180, &creep);
        let start = previous.last().unwrap().at + 60_000;
        let current = shape(start, 30, &creep);
        let now = current.last().unwrap().at;
        assert_eq!(follows_previous(&current, &previous, limit, now), None);
    }

    /// Runs read from hours: a climb of 150Mi in 20 hours to a 256Mi limit, each
    /// hour its mean at its middle, the run before ending at its top. Beside a fine
    /// trend that grows where that run stood, two closed hours say it; one (a
    /// warm-up's first hour) does not, nor do two without the trend, nor a trend
    /// that stands apart or grows three times as fast.
    #[test]
    fn hours_beside_a_growing_trend_follow_the_run_before() {
        let limit = 256.0 * MI;
        let hour = HOUR_MS;
        let at_age = |age: i64| 100.0 * MI + 150.0 * MI * age as f64 / (20 * hour) as f64;
        let means = |start: i64, hours: i64| -> Vec<Sample> {
            (0..hours)
                .map(|h| Sample {
                    at: start + h * hour + hour / 2,
                    bytes: at_age(h * hour + hour / 2),
                })
                .collect()
        };
        let mut previous = means(0, 20);
        previous.push(Sample {
            at: 20 * hour,
            bytes: 0.99 * limit,
        });
        let start = 20 * hour;
        let pace = 150.0 * MI / (20.0 * 3600.0);
        let trend = |age: i64, growth: f64| Growing {
            level_bytes: at_age(age),
            growth_bytes_per_second: growth,
        };
        let said = |hours: i64, growing: Option<Growing>| {
            let now = start + hours * hour + hour / 4;
            follows_previous_hours(
                &means(start, hours),
                start,
                &previous,
                0,
                limit,
                now,
                growing,
            )
        };
        let age = |hours: i64| hours * hour + hour / 4;
        let r = said(2, Some(trend(age(2), pace))).expect("two hours beside the trend");
        assert_eq!(r.previous_took_ms, 20 * hour);
        assert!((r.time_to_limit.seconds - (20 * hour - age(2)) as f64 / 1000.0).abs() < 1.0);
        assert_eq!(said(1, Some(trend(age(1), pace))), None, "one hour");
        assert_eq!(said(2, None), None, "two hours alone");
        let mut apart = trend(age(2), pace);
        apart.level_bytes += 0.1 * limit;
        assert_eq!(said(2, Some(apart)), None, "standing apart");
        assert_eq!(
            said(2, Some(trend(age(2), 3.0 * pace))),
            None,
            "three times as fast"
        );
        // Six closed hours grow by themselves.
        assert!(said(6, None).is_some());
    }

    #[test]
    fn nothing_is_said_off_course_or_without_a_run_out() {
        let previous = run(0, 187, 50.0);
        let start = previous.last().unwrap().at + 60_000;
        let limit = 256.0 * MI;
        let on_course = run(start, 10, 50.0);
        let now = on_course.last().unwrap().at;
        // Flat this time.
        assert_eq!(
            follows_previous(&run(start, 10, 0.0), &previous, limit, now),
            None
        );
        // Three times as fast: far off the course within minutes.
        let fast = run(start, 10, 300.0);
        assert_eq!(follows_previous(&fast, &previous, limit, now), None);
        // Started 40Mi higher.
        let higher: Vec<Sample> = on_course
            .iter()
            .map(|s| Sample {
                bytes: s.bytes + 40.0 * MI,
                ..*s
            })
            .collect();
        assert_eq!(follows_previous(&higher, &previous, limit, now), None);
        // The previous run restarted half-way, not at the limit.
        assert_eq!(
            follows_previous(&on_course, &previous[..200], limit, now),
            None
        );
        // Too young yet.
        assert_eq!(
            follows_previous(&on_course[..6], &previous, limit, on_course[5].at),
            None
        );
        assert!(follows_previous(&on_course, &previous, limit, now).is_some());
    }
}
