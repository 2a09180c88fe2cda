//! Keeping a forecast between evaluations instead of re-fitting it.
//!
//! A forecast is a fit over the whole lookback, but one new sample rarely changes it:
//! the model works on time bins (see [`mod@super::forecast`]), and a sample nudges one bin
//! of up to 96. So a container keeps its last fit, aged (a time to limit shrinks by
//! the time gone by, and the severity follows it), until one of these happens, and is
//! re-fitted then:
//! - its refresh comes due: a bin after the fit on average (the bin width the fit
//!   used: 5 min for a 6h history), between half and one and a half bins, at a phase
//!   of the container's own so that a fleet does not refit at once; for a quiet
//!   forecast (no time to limit), the same with a sixteenth of its history for the bin
//!   when that is longer (22 min for a 6h history);
//! - the working set sets a new high (for a container on course for its limit: above
//!   the course, the fit's own growth with a quarter to spare), or reaches the limit;
//! - a container on course for its limit falls below everything it held in the last
//!   quarter of its history, or its time to limit runs out;
//! - more than one evaluation step of new samples arrived since the last evaluation
//!   (a catch-up after an outage): only the newest is looked at;
//! - the segment or the limit changes, or `now` is before the fit or the newest sample;
//! - a daily cycle is found that the fit did not have, or one it took out is no
//!   longer found (once an incarnation as its second day closes, or when the cycle's
//!   tests flip as an hour closes: at most a fit an hour).
//!
//! Growth shows up as new highs, so it is fitted the poll it appears; growth that
//! slows shows at the next refresh. A container short of history is fitted every
//! evaluation (the fit stops at the span check), unless the run before gave it a
//! time to limit, which is kept and aged like any other. At fleet scale most
//! evaluations cost a comparison.

use super::daily::DailyCycle;
use super::forecast::{
    bin_width_ms, forecast_in_cycle, Forecast, ForecastParams, Pattern, TimeToLimit,
};
use super::Sample;

/// One segment's last fit, carried from evaluation to evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memo {
    kept: Option<Kept>,
    /// Fits run and evaluations answered from a kept fit, for benchmarks.
    pub fits: u64,
    pub reuses: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Kept {
    forecast: Forecast,
    fitted_at: i64,
    refit_at: i64,
    segment_start: i64,
    limit_bits: Option<u64>,
    high: f64,
    /// A working set below this calls for a fit.
    floor: f64,
    /// The newest sample's time at the last evaluation.
    latest_at: i64,
    /// The daily cycle when fitted, when the fit took one out.
    cycle_at_fit: Option<f64>,
}

/// What is cheap to know about a segment without unpacking it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentFacts {
    /// When the segment began (its first sample ever, not the first in the window):
    /// it names the incarnation.
    pub start: i64,
    pub latest: Sample,
    /// The spacing of evaluations (ms): a kept fit is checked against at most one new
    /// sample per step; more (a catch-up) calls for a fit.
    pub step_ms: i64,
    /// The container's daily cycle from its long history (see [`super::daily`]),
    /// for the next fit: it changes as slowly as hours close, so a kept fit stands
    /// until its refresh, unless the cycle was found or lost since.
    pub daily: Option<DailyCycle>,
}

impl Memo {
    /// The trend of the kept fit: what the last evaluation's forecast was aged from
    /// (none while the segment is too short for one).
    pub fn trend(&self) -> Option<super::Trend> {
        self.kept.as_ref().and_then(|k| k.forecast.trend)
    }

    /// The forecast as of `now`: the kept one if nothing above calls for a fit, else a
    /// fit of `samples()` and `previous()`, the container's previous incarnation (both
    /// only called then).
    pub fn forecast<'a>(
        &mut self,
        facts: SegmentFacts,
        samples: impl FnOnce() -> std::borrow::Cow<'a, [Sample]>,
        previous: impl FnOnce() -> Option<std::borrow::Cow<'a, [Sample]>>,
        limit_bytes: Option<f64>,
        now: i64,
        params: &ForecastParams,
    ) -> Forecast {
        if let Some(kept) = &mut self.kept {
            let reached_limit = limit_bytes.is_some_and(|l| facts.latest.bytes >= l);
            let one_new_sample_at_most =
                facts.latest.at - kept.latest_at <= facts.step_ms + facts.step_ms / 10;
            let elapsed_seconds = (now - kept.fitted_at) as f64 / 1000.0;
            // Growing as the fit said it would is no news: the allowance is the fit's
            // own growth since, with a quarter to spare. A quiet forecast (no time to
            // limit) is news at any new high.
            let growth = match kept.forecast.time_to_limit {
                Some(_) => kept.forecast.growth_bytes_per_second.unwrap_or(0.0),
                None => 0.0,
            };
            // A daily cycle's upswing since the fit is no news either: the fit took
            // the cycle out of its samples.
            let allowed_high = kept.high + growth.max(0.0) * elapsed_seconds * GROWTH_SLACK;
            let within_course = facts.latest.bytes <= allowed_high
                || facts.daily.zip(kept.cycle_at_fit).is_some_and(|(d, then)| {
                    let rise = d.at(facts.latest.at) - then;
                    facts.latest.bytes <= allowed_high + rise.max(0.0)
                });
            // A cycle the fit did not have (the incarnation's second day has just
            // closed), or one it took out that is no longer found, is news: a fit on
            // either side of that reads the same samples differently.
            let same_cycle_known = kept.cycle_at_fit.is_some() == facts.daily.is_some();
            if kept.segment_start == facts.start
                && same_cycle_known
                && one_new_sample_at_most
                && kept.limit_bits == limit_bytes.map(f64::to_bits)
                && now >= kept.fitted_at
                && now < kept.refit_at
                && facts.latest.at <= now
                && within_course
                && facts.latest.bytes >= kept.floor
                && !reached_limit
            {
                self.reuses += 1;
                kept.latest_at = facts.latest.at;
                // The hour's high goes on with every sample between fits. Samples
                // that leave the hour are not taken out until the next fit (a bin for
                // a forecast on course, a sixteenth of the history for one without a
                // time to limit): the high errs high, toward news.
                kept.forecast.recent_high_bytes =
                    kept.forecast.recent_high_bytes.max(facts.latest.bytes);
                return aged(&kept.forecast, facts.latest.bytes, elapsed_seconds, params);
            }
        }
        self.fits += 1;
        let samples = samples();
        let previous = previous();
        let out = forecast_in_cycle(
            &samples,
            previous.as_deref(),
            facts.daily.as_ref(),
            limit_bytes,
            now,
            params,
        );
        self.kept = None;
        if out.pattern != Pattern::InsufficientData {
            // The caller's samples are the lookback; the fit saw those up to now.
            let visible = &samples[..samples.partition_point(|s| s.at <= now)];
            if let (Some(first), Some(last)) = (visible.first(), visible.last()) {
                let high = visible
                    .iter()
                    .map(|s| s.bytes)
                    .fold(f64::NEG_INFINITY, f64::max);
                // Refit about when a bin closes, at a phase of its own, so that a
                // fleet backfilled at one instant does not refit all at once.
                // A quiet fit is refreshed once a sixteenth of its history is new;
                // one on course for the limit, every bin.
                let bin = bin_width_ms(first.at, last.at, visible.len());
                let width = match out.time_to_limit {
                    Some(_) => bin,
                    None => bin.max((last.at - first.at) / REFIT_FRACTION),
                };
                let phase = (high.to_bits() % width.max(1) as u64) as i64;
                // The first instant at least half a bin away whose phase is this
                // container's: a bin apart on average.
                let earliest = now.saturating_add(width / 2);
                let mut refit_at =
                    earliest + (width - (earliest + phase).rem_euclid(width.max(1))) % width.max(1);
                // A forecast whose limit would come sooner is fitted again by then.
                if let Some(t) = out.time_to_limit {
                    refit_at = refit_at.min(now.saturating_add((t.seconds * 1000.0) as i64));
                }
                self.kept = Some(Kept {
                    forecast: out,
                    fitted_at: now,
                    refit_at,
                    segment_start: facts.start,
                    limit_bits: limit_bytes.map(f64::to_bits),
                    // A container on course for its limit that falls below everything
                    // it held in the last quarter of its history is not on that course.
                    floor: if out.time_to_limit.is_some() {
                        visible[visible.len() * 3 / 4..]
                            .iter()
                            .map(|s| s.bytes)
                            .fold(f64::INFINITY, f64::min)
                    } else {
                        f64::NEG_INFINITY
                    },
                    high,
                    latest_at: last.at,
                    cycle_at_fit: facts.daily.map(|d| d.at(now)),
                });
            }
        }
        out
    }
}

/// A quiet fit is refreshed once this fraction of its history is new, or when a bin
/// closes if that is later.
const REFIT_FRACTION: i64 = 16;

/// How much faster than its fit a kept forecast may grow before it is fitted again.
const GROWTH_SLACK: f64 = 1.25;

/// A kept forecast `elapsed_seconds` after its fit, with the newest working set: the
/// limit is as far off as the fit said, less the time gone by, and its severity
/// follows; the level of one on course moves along the fitted growth (a quiet one's
/// level, whose growth is not significant, stays as fitted).
fn aged(
    kept: &Forecast,
    working_set_bytes: f64,
    elapsed_seconds: f64,
    params: &ForecastParams,
) -> Forecast {
    let mut out = *kept;
    out.working_set_bytes = working_set_bytes;
    if let Some(t) = out.time_to_limit {
        if let (Some(level), Some(growth)) = (out.level_bytes, out.growth_bytes_per_second) {
            out.level_bytes = Some(level + growth * elapsed_seconds);
        }
        let less = |s: f64| (s - elapsed_seconds).max(0.0);
        let seconds = less(t.seconds);
        out.time_to_limit = Some(TimeToLimit {
            seconds,
            lower_seconds: less(t.lower_seconds),
            upper_seconds: t.upper_seconds.map(less),
        });
        out.severity = params.severity_for(Some(seconds), 1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{forecast, Severity};
    use std::borrow::Cow;

    const MI: f64 = 1024.0 * 1024.0;

    fn run(samples: &[Sample], memo: &mut Memo, now: i64, limit: f64) -> Forecast {
        let from = samples.partition_point(|s| s.at < now - 6 * 3_600_000);
        let visible = &samples[from..samples.partition_point(|s| s.at <= now)];
        let facts = SegmentFacts {
            start: samples[0].at,
            latest: *visible.last().unwrap(),
            step_ms: 30_000,
            daily: None,
        };
        memo.forecast(
            facts,
            || Cow::Borrowed(visible),
            || None,
            Some(limit),
            now,
            &ForecastParams::default(),
        )
    }

    /// A daily cycle found (the incarnation's second day has closed) or lost since the
    /// kept fit is news: the fit is made again with it, or without it.
    #[test]
    fn a_cycle_found_or_lost_since_the_fit_forces_one() {
        let samples: Vec<Sample> = (0..800)
            .map(|i| Sample {
                at: i * 30_000,
                bytes: 100.0 * MI + ((i * 7919) % 13) as f64 * 0.2 * MI,
            })
            .collect();
        let hours: Vec<Option<super::super::Hour>> = (0..60)
            .map(|h| {
                let v = 1e8 + 1e7 * (std::f64::consts::TAU * h as f64 / 24.0).sin();
                Some(super::super::Hour { max: v, mean: v })
            })
            .collect();
        let cycle = crate::model::daily::daily_cycle(hours.iter().rev().copied());
        assert!(cycle.is_some());
        let mut memo = Memo::default();
        let mut ask = |i: usize, daily| {
            let latest = samples[i];
            let facts = SegmentFacts {
                start: 0,
                latest,
                step_ms: 30_000,
                daily,
            };
            memo.forecast(
                facts,
                || Cow::Borrowed(&samples[..=i]),
                || None,
                Some(512.0 * MI),
                latest.at,
                &ForecastParams::default(),
            );
            (memo.fits, memo.reuses)
        };
        assert_eq!(ask(760, None), (1, 0));
        assert_eq!(ask(761, None), (1, 1), "the same cycle known: kept");
        assert_eq!(ask(762, cycle), (2, 1), "a cycle found: fitted again");
        assert_eq!(ask(763, cycle), (2, 2));
        assert_eq!(ask(764, None), (3, 2), "the cycle lost: fitted again");
    }

    /// Flat and noisy for 6h, then a leak: the kept fits agree with fresh ones, and the
    /// leak is fitted the poll its first new high arrives.
    #[test]
    fn kept_forecasts_match_fresh_ones_and_growth_is_fitted_at_once() {
        let samples: Vec<Sample> = (0..1200)
            .map(|i| {
                let noise = ((i * 7919) % 13) as f64 * 0.2 * MI;
                let leak = if i > 900 {
                    (i - 900) as f64 * 0.4 * MI
                } else {
                    0.0
                };
                Sample {
                    at: i * 30_000,
                    bytes: 100.0 * MI + noise + leak,
                }
            })
            .collect();
        let mut memo = Memo::default();
        let params = ForecastParams::default();
        for i in 720..1200 {
            if i == 900 {
                // Flat so far: a fit per closed 5-minute bin, or per new high.
                assert!(
                    memo.reuses > 4 * memo.fits,
                    "{} fits, {} reuses",
                    memo.fits,
                    memo.reuses
                );
            }
            let now = i * 30_000;
            let kept = run(&samples, &mut memo, now, 256.0 * MI);
            let from = samples.partition_point(|s| s.at < now - 6 * 3_600_000);
            let to = samples.partition_point(|s| s.at <= now);
            let fresh = forecast(&samples[from..to], Some(256.0 * MI), now, &params);
            assert_eq!(kept.severity, fresh.severity, "at sample {i}");
            assert_eq!(
                kept.time_to_limit.is_some(),
                fresh.time_to_limit.is_some(),
                "at {i}"
            );
            assert_eq!(kept.working_set_bytes, fresh.working_set_bytes);
            // The hour's high: exact when fitted, never lower when kept.
            let hour = &samples[samples
                .partition_point(|s| s.at < now - crate::model::forecast::HIGH_WINDOW_MS)
                ..to];
            let high = hour
                .iter()
                .map(|s| s.bytes)
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(fresh.recent_high_bytes, high, "at {i}");
            assert!(kept.recent_high_bytes >= high, "at {i}");
        }
        assert!(run(&samples, &mut memo, 1199 * 30_000, 256.0 * MI)
            .time_to_limit
            .is_some());
    }

    /// A leak on course keeps its fit through a bin, its time to limit shrinking with
    /// the clock; a working set off the course either way is fitted at once.
    #[test]
    fn a_forecast_on_course_is_aged_and_one_off_course_refitted() {
        let leak = |i: i64| Sample {
            at: i * 30_000,
            bytes: 100.0 * MI + i as f64 * 0.2 * MI,
        };
        let mut samples: Vec<Sample> = (0..=360).map(leak).collect();
        let limit = 256.0 * MI;
        let mut memo = Memo::default();
        let first = run(&samples, &mut memo, 360 * 30_000, limit);
        let eta = first.time_to_limit.expect("on course").seconds;
        let fits = memo.fits;
        samples.push(leak(361));
        let next = run(&samples, &mut memo, 361 * 30_000, limit);
        assert_eq!(memo.fits, fits, "kept");
        let aged = next.time_to_limit.unwrap().seconds;
        assert!((eta - aged - 30.0).abs() < 1e-6, "{eta} then {aged}");
        assert_eq!(next.working_set_bytes, samples[361].bytes);
        // From here, a jump far above the course, or a fall below everything of the
        // last quarter.
        for (bytes, why) in [(220.0 * MI, "above the course"), (110.0 * MI, "below it")] {
            let mut memo = memo.clone();
            let mut samples = samples.clone();
            samples.push(Sample {
                at: 362 * 30_000,
                bytes,
            });
            run(&samples, &mut memo, 362 * 30_000, limit);
            assert_eq!(memo.fits, fits + 1, "{why}");
        }
        samples.push(leak(362));
        run(&samples, &mut memo, 362 * 30_000, limit);
        assert_eq!(memo.fits, fits, "on course");
    }

    #[test]
    fn a_new_limit_or_reaching_it_forces_a_fit() {
        let samples: Vec<Sample> = (0..800)
            .map(|i| Sample {
                at: i * 30_000,
                bytes: 100.0 * MI + (i % 5) as f64 * MI,
            })
            .collect();
        let mut memo = Memo::default();
        run(&samples, &mut memo, 790 * 30_000, 256.0 * MI);
        let fits = memo.fits;
        run(&samples, &mut memo, 791 * 30_000, 256.0 * MI);
        assert_eq!(memo.fits, fits, "kept");
        run(&samples, &mut memo, 792 * 30_000, 200.0 * MI);
        assert_eq!(memo.fits, fits + 1, "new limit");
        let at_limit = run(&samples, &mut memo, 793 * 30_000, 100.0 * MI);
        assert_eq!(at_limit.severity, Severity::Critical);
        run(&samples, &mut memo, 794 * 30_000, 256.0 * MI);
        let fits = memo.fits;
        run(&samples, &mut memo, 797 * 30_000, 256.0 * MI);
        assert_eq!(memo.fits, fits + 1, "three new samples at once");
    }
}
