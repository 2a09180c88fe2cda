//! Keeping a quiet forecast between evaluations instead of re-fitting it.
//!
//! A forecast is a fit over the whole lookback, but one new sample rarely changes it:
//! the model works on time bins (see [`super::forecast`]), and until a bin closes, the
//! newest sample only nudges the last one. So a container whose forecast is quiet (no
//! time to limit, no severity) keeps that forecast until one of these happens, and is
//! re-fitted then:
//! - a bin closes (the time since the fit reaches the bin width the fit used: 5 min
//!   for a 6h history);
//! - the working set sets a new high since the fit, or reaches the limit;
//! - more than one new sample arrived since the last evaluation (a catch-up after an
//!   outage, data finer than the evaluations): only the newest is looked at;
//! - the segment or the limit changes.
//!
//! Growth shows up as new highs, so it is fitted the poll it appears; a container with
//! a time to limit, or still short of history, is re-fitted every evaluation. At fleet
//! scale most containers are quiet, and most evaluations cost a comparison.

use super::forecast::{bin_width_ms, forecast, Forecast, ForecastParams, Pattern, Severity};
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
    /// The newest sample's time at the last evaluation.
    latest_at: i64,
}

/// What is cheap to know about a segment without unpacking it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentFacts {
    /// When the segment began (its first sample ever, not the first in the window):
    /// it names the incarnation.
    pub start: i64,
    pub latest: Sample,
    /// The spacing of its samples (ms).
    pub step_ms: i64,
}

impl Memo {
    /// The forecast as of `now`: the kept one if nothing above calls for a fit, else a
    /// fit of `samples()` (only called then).
    pub fn forecast<'a>(
        &mut self,
        facts: SegmentFacts,
        samples: impl FnOnce() -> std::borrow::Cow<'a, [Sample]>,
        limit_bytes: Option<f64>,
        now: i64,
        params: &ForecastParams,
    ) -> Forecast {
        if let Some(kept) = &mut self.kept {
            let reached_limit = limit_bytes.is_some_and(|l| facts.latest.bytes >= l);
            let one_new_sample_at_most =
                facts.latest.at - kept.latest_at <= facts.step_ms + facts.step_ms / 10;
            if kept.segment_start == facts.start
                && one_new_sample_at_most
                && kept.limit_bits == limit_bytes.map(f64::to_bits)
                && now >= kept.fitted_at
                && now < kept.refit_at
                && facts.latest.at <= now
                && facts.latest.bytes <= kept.high
                && !reached_limit
            {
                self.reuses += 1;
                kept.latest_at = facts.latest.at;
                let mut out = kept.forecast;
                out.working_set_bytes = facts.latest.bytes;
                return out;
            }
        }
        self.fits += 1;
        let samples = samples();
        let out = forecast(&samples, limit_bytes, now, params);
        let quiet = out.severity == Severity::None
            && out.time_to_limit.is_none()
            && out.pattern != Pattern::InsufficientData;
        self.kept = None;
        if quiet {
            let from = samples.partition_point(|s| s.at < now - 6 * 3_600_000);
            let visible = &samples[from..samples.partition_point(|s| s.at <= now)];
            if let (Some(first), Some(last)) = (visible.first(), visible.last()) {
                let high = visible
                    .iter()
                    .map(|s| s.bytes)
                    .fold(f64::NEG_INFINITY, f64::max);
                // Refit about when a bin closes, at a phase of its own, so that a
                // fleet backfilled at one instant does not refit all at once.
                let width = bin_width_ms(first.at, last.at, visible.len());
                let phase = (high.to_bits() % width.max(1) as u64) as i64;
                self.kept = Some(Kept {
                    forecast: out,
                    fitted_at: now,
                    refit_at: {
                        // The first instant at least half a bin away whose phase is
                        // this container's: a bin apart on average.
                        let earliest = now + width / 2;
                        earliest
                            + (width - (earliest + phase).rem_euclid(width.max(1))) % width.max(1)
                    },
                    segment_start: facts.start,
                    limit_bits: limit_bytes.map(f64::to_bits),
                    high,
                    latest_at: last.at,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const MI: f64 = 1024.0 * 1024.0;

    fn run(samples: &[Sample], memo: &mut Memo, now: i64, limit: f64) -> Forecast {
        let from = samples.partition_point(|s| s.at < now - 6 * 3_600_000);
        let visible = &samples[from..samples.partition_point(|s| s.at <= now)];
        let facts = SegmentFacts {
            start: samples[0].at,
            latest: *visible.last().unwrap(),
            step_ms: 30_000,
        };
        memo.forecast(
            facts,
            || Cow::Borrowed(visible),
            Some(limit),
            now,
            &ForecastParams::default(),
        )
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
        }
        assert!(run(&samples, &mut memo, 1199 * 30_000, 256.0 * MI)
            .time_to_limit
            .is_some());
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
