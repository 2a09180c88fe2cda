//! The long tier: beside the fine tier's samples (hours), one summary an hour per
//! container — its highest and its mean working set — for 14 days, across restarts.
//! Built from the samples as they arrive, so the daemon and the replay hold the same;
//! the model reads it as a [`Record`] of excursions that came back, and as the
//! runs between restarts that a restart loop repeats ([`LongTier::run_before`]).
//!
//! Why hours, and why this packing: the excursions it must remember (daily peaks,
//! nightly batches, ramps that released) last tens of minutes to hours, so the hour's
//! maximum keeps each one and its mean tells it came back; 14 days hold two weeks of
//! weekdays. Each value is a bfloat16 (the top 16 bits of an `f32`: within 0.8%,
//! rounded down): 4 bytes an hour, 1.3 KiB for 14 days, grown a day at a time, beside
//! 336 bytes inline (`size_of`; the record 208 of them) and 8 a restart.

use std::collections::VecDeque;

use crate::model::recurrence::{follows_previous_hours, Growing, Recurrence, MIN_HOURS, RAN_OUT};
use crate::model::{Forecast, ForecastParams, Hour, Pattern, Record, Sample};

use crate::vocab::HOUR_MS;
/// Hours kept: 14 days.
pub const KEPT_HOURS: usize = 14 * 24;

/// Restarts told this close together (ms) are one: the counter may be read a
/// scrape or two from the drop that goes with it (two 5-minute scrapes either
/// side). Restarts of a crash loop closer than that count once.
const SAME_RESTART_MS: i64 = 15 * 60_000;
/// Restarts kept at most (those older than the kept hours go first).
const MAX_RESTARTS: usize = KEPT_HOURS;

/// An hour without samples.
const NO_HOUR: [u16; 2] = [u16::MAX, u16::MAX];

/// One container's hours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LongTier {
    /// The first kept hour (ms since the epoch / [`HOUR_MS`]).
    first_hour: i64,
    /// (max, mean) of each kept hour, packed, oldest first.
    hours: VecDeque<[u16; 2]>,
    /// The hour being filled: its index, highest sample, sum and count.
    open: Option<(i64, f32, f64, u32)>,
    /// The newest sample taken, so a sample is never counted twice.
    last_at: Option<i64>,
    /// The oldest sample (ms) taken or read back (to the hour): where the first
    /// incarnation on record began, as far as the tier knows.
    first_at: Option<i64>,
    /// When the container restarted (ms), oldest first: a restart is no release, and
    /// the runs between restarts are what a restart loop repeats.
    restarts: Vec<i64>,
    /// The record of the closed hours, kept up to date as each closes.
    record: Record,
}

fn pack(value: f64) -> u16 {
    ((value as f32).to_bits() >> 16) as u16
}

fn unpack(bits: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(bits) << 16))
}

fn unpack_hour(packed: [u16; 2]) -> Option<Hour> {
    (packed != NO_HOUR).then(|| Hour {
        max: unpack(packed[0]),
        mean: unpack(packed[1]),
    })
}

impl LongTier {
    /// Heap bytes the kept hours and restarts hold (from capacities).
    pub fn heap_bytes(&self) -> usize {
        self.hours.capacity() * std::mem::size_of::<[u16; 2]>()
            + self.restarts.capacity() * std::mem::size_of::<i64>()
    }

    /// Takes one sample (in time order; an older or repeated one is ignored).
    pub fn push(&mut self, sample: Sample) {
        if self.last_at.is_some_and(|t| sample.at <= t) || !sample.bytes.is_finite() {
            return;
        }
        self.last_at = Some(sample.at);
        self.first_at.get_or_insert(sample.at);
        let hour = sample.at.div_euclid(HOUR_MS);
        match &mut self.open {
            Some((h, max, sum, n)) if *h == hour => {
                *max = max.max(sample.bytes as f32);
                *sum += sample.bytes;
                *n += 1;
            }
            _ => {
                self.close();
                self.open = Some((hour, sample.bytes as f32, sample.bytes, 1));
            }
        }
    }

    /// Closes the open hour into the kept ones and updates the record.
    fn close(&mut self) {
        let Some((hour, max, sum, n)) = self.open.take() else {
            return;
        };
        if self.hours.is_empty() {
            self.first_hour = hour;
        }
        let next = self.first_hour + self.hours.len() as i64;
        // Hours without samples in between (a pause, a gap in the source).
        for _ in next..hour {
            self.append(NO_HOUR);
        }
        self.append([pack(f64::from(max)), pack(sum / f64::from(n))]);
        self.update_record();
    }

    fn update_record(&mut self) {
        let first = self.first_hour;
        self.restarts.retain(|&at| at >= first * HOUR_MS);
        let restarts = &self.restarts;
        self.record = Record::of_hours(self.hours.iter().map(|&h| unpack_hour(h)), |i| {
            let start = (first + i as i64) * HOUR_MS;
            let next = restarts.partition_point(|&at| at < start);
            restarts.get(next).is_some_and(|&at| at < start + HOUR_MS)
        });
        // The line through the daily peaks stands at the end of the newest hour.
        let end = (first + self.hours.len() as i64) * HOUR_MS;
        if let Some(peaks) = &mut self.record.peaks {
            peaks.at_ms = end;
        }
        if let Some(daily) = &mut self.record.daily {
            daily.at_ms = end;
        }
        if let Some(day) = &mut self.record.day_over_day {
            day.at_ms = end;
        }
        if let Some(tops) = &mut self.record.envelope {
            tops.at_ms = end;
        }
    }

    /// Notes that the container restarted at `at` (ms): what it reached before is not
    /// an excursion it came back from.
    pub fn restarted(&mut self, at: i64) {
        // Restarts may be learned out of order (a kill found when the limit is first
        // read, after later ones): kept sorted, once each. The same restart may be
        // told twice, by the new incarnation's first sample and by the restart
        // counter read a scrape or two later: the earlier time stands.
        let index = self.restarts.partition_point(|&r| r < at);
        let near = |r: &i64| (r - at).abs() <= SAME_RESTART_MS;
        if index > 0 && near(&self.restarts[index - 1]) {
            return;
        }
        if let Some(r) = self.restarts.get_mut(index).filter(|r| near(r)) {
            if *r != at {
                *r = at;
                self.update_record();
            }
            return;
        }
        self.restarts.insert(index, at);
        if self.restarts.len() > MAX_RESTARTS {
            self.restarts.remove(0);
        }
        self.update_record();
    }

    fn append(&mut self, packed: [u16; 2]) {
        // Room first, so the ring never grows past 14 days.
        while self.hours.len() >= KEPT_HOURS {
            self.hours.pop_front();
            self.first_hour += 1;
        }
        if self.hours.len() == self.hours.capacity() {
            // Grown a day at a time: most containers never keep 14 days.
            self.hours
                .reserve_exact(24.min(KEPT_HOURS - self.hours.len()));
        }
        self.hours.push_back(packed);
    }

    /// Adds hours read from the source's own history (a backfill), before those kept:
    /// `(hour start ms, summary)` in any order; hours at or after the first kept one
    /// (or the open one) are ignored, and at most 14 days are kept in all.
    pub fn prepend(&mut self, hours: &[(i64, Hour)]) {
        let before = match (self.hours.is_empty(), &self.open) {
            (false, _) => self.first_hour,
            (true, Some((open, ..))) => *open,
            (true, None) => i64::MAX,
        };
        let mut earlier: Vec<(i64, Hour)> = hours
            .iter()
            .map(|&(at, h)| (at.div_euclid(HOUR_MS), h))
            .filter(|&(hour, h)| hour < before && h.max.is_finite() && h.mean.is_finite())
            .collect();
        if earlier.is_empty() {
            return;
        }
        earlier.sort_by_key(|&(hour, _)| hour);
        earlier.dedup_by_key(|&mut (hour, _)| hour);
        let newest = earlier.last().map_or(before, |&(hour, _)| hour);
        // Hours between the backfill and what is kept are hours without samples.
        let mut next = if self.hours.is_empty() {
            newest + 1
        } else {
            before
        };
        let mut front = Vec::new();
        for (hour, h) in earlier.into_iter().rev() {
            while next > hour + 1 {
                next -= 1;
                front.push(NO_HOUR);
            }
            front.push([pack(h.max), pack(h.mean)]);
            next = hour;
        }
        let room = KEPT_HOURS.saturating_sub(self.hours.len());
        front.truncate(room);
        self.hours.reserve_exact(front.len());
        for packed in &front {
            self.hours.push_front(*packed);
        }
        self.first_hour = if self.hours.len() == front.len() {
            newest + 1 - front.len() as i64
        } else {
            before - front.len() as i64
        };
        // Where the history begins now, as far as the hours read back say (to the
        // hour; those 14 days back and more were not kept).
        let oldest = self.first_hour * HOUR_MS;
        self.first_at = Some(self.first_at.map_or(oldest, |at| at.min(oldest)));
        self.update_record();
    }

    /// Each kept hour, oldest first: `None` for an hour without samples.
    #[cfg(test)]
    pub fn summaries(&self) -> Vec<Option<Hour>> {
        self.hours.iter().map(|&h| unpack_hour(h)).collect()
    }

    /// What the closed hours say about the container's excursions.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The record's [`Record::apply_with_day`] for the evaluation at `now` (ms),
    /// with the newest closed day's hours.
    ///
    /// Then a restart loop: an incarnation that follows the run before it, which ran
    /// out, runs out as long after its start (see [`LongTier::run_before`]). The
    /// fine history's own word on a run before stands (it has the samples), and a
    /// forecast at the limit; this one is for runs longer than the fine history
    /// holds, whose curve a line through the last hours reads early or late. It
    /// stands over the record's steps: a course that ended in a kill is no
    /// excursion the container came back from, and says more than days of peaks,
    /// the day before or the tops.
    pub fn apply(
        &self,
        forecast: &mut Forecast,
        limit_bytes: Option<f64>,
        params: &ForecastParams,
        now: i64,
    ) {
        // The fine trend's own reading, before the record's word on it.
        let growing = match (forecast.pattern, forecast.trend) {
            (Pattern::Leak | Pattern::SawtoothLeak, Some(trend)) => Some(Growing {
                level_bytes: trend.level_bytes + trend.cycle_now_bytes,
                growth_bytes_per_second: trend.growth_bytes_per_second,
            }),
            _ => None,
        };
        self.record
            .apply_with_day(forecast, limit_bytes, params, now, || self.newest_day());
        let at_limit = forecast.time_to_limit.is_some_and(|t| t.seconds <= 0.0);
        let Some(limit) = limit_bytes.filter(|l| *l > 0.0) else {
            return;
        };
        if at_limit || forecast.previous_run_ms.is_some() {
            return;
        }
        if let Some(r) = self.run_before(limit, now, growing) {
            forecast.pattern = Pattern::Leak;
            forecast.growth_bytes_per_second = Some(r.growth_bytes_per_second);
            forecast.severity = params.severity_for(Some(r.time_to_limit.seconds), 1.0);
            forecast.time_to_limit = Some(r.time_to_limit);
            forecast.previous_run_ms = Some(r.previous_took_ms);
            forecast.from_daily_peaks = false;
        }
    }

    /// What the run before the current incarnation says of it, from the kept hours
    /// (see [`follows_previous_hours`]): the current one began at the newest
    /// restart, the one before at the restart before that, or else where the tier's
    /// history begins (which may be later than that run began: the comparison age
    /// for age, level and pace, is what guards against a run only partly seen).
    /// `None` unless that run ran out at `limit`, and the current one follows its
    /// course hour for hour (hours with samples wholly after the restart) and grows:
    /// by the fine trend's reading (`growing`) over two such hours, or by themselves
    /// over [`MIN_HOURS`]. A run before whose start the ring no longer keeps says
    /// nothing.
    pub fn run_before(&self, limit: f64, now: i64, growing: Option<Growing>) -> Option<Recurrence> {
        let (&current_start, earlier) = self.restarts.split_last()?;
        if growing.is_none() && now - current_start < MIN_HOURS as i64 * HOUR_MS {
            return None;
        }
        let previous_start = match earlier.last() {
            Some(&at) => at,
            None => self.first_at.filter(|&at| at < current_start)?,
        };
        let first = self.first_hour;
        if previous_start < first * HOUR_MS {
            return None;
        }
        let start_of = |i: usize| (first + i as i64) * HOUR_MS;
        let kept = || {
            self.hours
                .iter()
                .enumerate()
                .filter_map(|(i, &packed)| unpack_hour(packed).map(|h| (start_of(i), h)))
        };
        // Each hour wholly inside a run, as its mean at the middle of the hour.
        let run = |from: i64, to: i64| -> Vec<Sample> {
            kept()
                .filter(|&(start, _)| start >= from && start + HOUR_MS <= to)
                .map(|(start, h)| Sample {
                    at: start + HOUR_MS / 2,
                    bytes: h.mean,
                })
                .collect()
        };
        // Its highest sample before the kill: in the hour of the restart (the new
        // incarnation starts low) or the one before it, within the run. Most
        // restarts are no kill (a rollout): nothing more is read for them.
        let restart_hour = current_start.div_euclid(HOUR_MS);
        let top = [restart_hour, restart_hour - 1]
            .into_iter()
            .filter(|&hour| hour * HOUR_MS >= previous_start)
            .filter_map(|hour| usize::try_from(hour - first).ok())
            .filter_map(|i| self.hours.get(i).copied().and_then(unpack_hour))
            .map(|h| h.max)
            .fold(f64::NEG_INFINITY, f64::max);
        if top < RAN_OUT * limit {
            return None;
        }
        let current = run(current_start, now);
        let mut previous = run(previous_start, current_start);
        previous.push(Sample {
            at: current_start,
            bytes: top,
        });
        follows_previous_hours(
            &current,
            current_start,
            &previous,
            previous_start,
            limit,
            now,
            growing,
        )
    }

    /// The highest sample of each of the 24 newest closed hours, newest first; NaN
    /// for an hour without samples or not kept.
    fn newest_day(&self) -> [f64; 24] {
        let mut day = [f64::NAN; 24];
        for (slot, &packed) in day.iter_mut().zip(self.hours.iter().rev()) {
            if let Some(h) = unpack_hour(packed) {
                *slot = h.max;
            }
        }
        day
    }

    /// Hours kept, with samples or without.
    pub fn kept_hours(&self) -> usize {
        self.hours.len()
    }

    /// Hours with samples kept (closed ones).
    pub fn hours(&self) -> usize {
        self.record.hours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_773_878_400_000; // an hour boundary

    #[test]
    fn hours_keep_their_highest_and_mean_sample_across_gaps() {
        let mut long = LongTier::default();
        for (minute, bytes) in [
            (0, 100.0),
            (30, 300.0),
            (59, 200.0),
            (180, 50.0),
            (240, 10.0),
        ] {
            long.push(Sample {
                at: T0 + minute * 60_000,
                bytes,
            });
        }
        let hours = long.summaries();
        // Hours 0, 1 (none), 2 (none), 3 closed; hour 4 is open.
        assert_eq!(hours.len(), 4);
        let first = hours[0].unwrap();
        assert_eq!(first.max, 300.0);
        assert_eq!(first.mean, 200.0);
        assert_eq!(hours[1], None);
        assert_eq!(hours[3].unwrap().max, 50.0);
        assert_eq!(long.hours(), 2);
        // Repeated and older samples are not counted twice.
        long.push(Sample {
            at: T0,
            bytes: 1e12,
        });
        assert_eq!(long.summaries()[0].unwrap().max, 300.0);
    }

    /// The line through the hourly maxima as the store makes it, through its
    /// packed hours (a bfloat16 maximum is rounded down by up to 0.8%): a slow leak
    /// under a 5-minute sawtooth scraped every 5 minutes (its tops 1 GiB above the
    /// mean, aliased into noise), 40 hours climbing 20 MiB an hour toward a 4 GiB
    /// limit, reads as that climb, and stands at the end of the newest hour.
    #[test]
    fn the_tops_line_reads_a_slow_leak_through_the_packed_hours() {
        const MI: f64 = 1024.0 * 1024.0;
        let mut long = LongTier::default();
        let step = 300_000;
        for i in 0..(40 * 12) {
            let at = T0 + i * step;
            let tooth = ((i * 7919 % 97) as f64 / 97.0) * 1024.0 * MI;
            long.push(Sample {
                at,
                bytes: 2048.0 * MI + tooth + 20.0 * MI * (i * step) as f64 / HOUR_MS as f64,
            });
        }
        let tops = long.record().envelope.expect("a day and more of hours");
        let per_hour = f64::from(tops.growth_bytes_per_second) * 3600.0 / MI;
        assert!((15.0..25.0).contains(&per_hour), "{per_hour} Mi/h");
        assert_eq!(
            tops.at_ms,
            T0 + 39 * HOUR_MS,
            "the end of the newest closed hour"
        );
        let limit = 4096.0 * MI;
        let eta = tops
            .time_to_limit(limit, tops.at_ms, 0.99, 0.9)
            .expect("tops near the limit, climbing");
        assert!(eta.seconds < 40.0 * 3600.0, "{eta:?}");
        // (That one holds by the line's reach.) The tops stand about 300 MiB under
        // the limit after 39 hours, climbing 20 MiB an hour: some 15 hours to go.
        assert!((10.0..20.0).contains(&(eta.seconds / 3600.0)), "{eta:?}");
    }

    #[test]
    fn fourteen_days_are_kept_packed() {
        let mut long = LongTier::default();
        for hour in 0..(20 * 24) {
            long.push(Sample {
                at: T0 + hour * HOUR_MS,
                bytes: 1e9 + hour as f64,
            });
        }
        assert_eq!(long.summaries().len(), KEPT_HOURS);
        assert!(long.hours.capacity() <= KEPT_HOURS + 24);
        let last = long.summaries().last().copied().flatten().unwrap();
        assert!(
            (last.max - 1e9).abs() / 1e9 < 0.01,
            "bfloat16 keeps 3 digits: {last:?}"
        );
    }

    #[test]
    fn a_backfill_goes_before_what_is_kept() {
        let mut long = LongTier::default();
        for hour in 10..13 {
            long.push(Sample {
                at: T0 + hour * HOUR_MS,
                bytes: 5.0,
            });
        }
        let h = |v: f64| Hour { max: v, mean: v };
        // Hours 7 and 9 read back (8 had no samples); 10 and later are the store's.
        long.prepend(&[
            (T0 + 9 * HOUR_MS, h(9.0)),
            (T0 + 7 * HOUR_MS, h(7.0)),
            (T0 + 11 * HOUR_MS, h(1e9)),
        ]);
        let hours = long.summaries();
        assert_eq!(hours.len(), 5, "{hours:?}");
        assert_eq!(hours[0].unwrap().max, 7.0);
        assert_eq!(hours[1], None);
        assert_eq!(hours[2].unwrap().max, 9.0);
        assert_eq!(hours[3].unwrap().max, 5.0);
        assert_eq!(long.first_hour, T0 / HOUR_MS + 7);
        // Into an empty tier: the backfill alone.
        let mut empty = LongTier::default();
        empty.prepend(&[(T0, h(1.0)), (T0 + 2 * HOUR_MS, h(2.0))]);
        assert_eq!(empty.summaries().len(), 3);
        assert_eq!(empty.first_hour, T0 / HOUR_MS);
    }

    /// A restart loop whose runs outlast the fine history: each run flat for 4
    /// hours, then climbing as a power of time that slows (0.7), to 99% of its
    /// limit 24 hours after its start, where it is killed. Ten hours into the third
    /// run, the fine history's six hours bend enough to read as a warm-up levelling
    /// off below the limit; the run before says 14 hours, as long after its start
    /// as it took.
    #[test]
    fn a_run_on_the_course_of_the_one_before_runs_out_as_long_after_its_start() {
        use crate::model::{forecast_after, ForecastParams};
        const MI: f64 = 1024.0 * 1024.0;
        let limit = 1024.0 * MI;
        let course = |age_ms: i64, rate: f64, bend: f64| {
            let hours = age_ms as f64 / HOUR_MS as f64;
            let climb = ((hours - 4.0).max(0.0) / 20.0).powf(bend);
            300.0 * MI + rate * 714.0 * MI * climb + if age_ms % 120_000 == 0 { MI } else { -MI }
        };
        let run_ms = 24 * HOUR_MS;
        // The first run starts 7 minutes past an hour; the third is followed for
        // 10 hours. The second ends at `second_ends` of its course.
        let loop_of = |third_rate: f64, second_ends: f64, third_hours: i64, bend: f64| {
            let mut long = LongTier::default();
            let mut fine = Vec::new();
            let mut start = T0 + 7 * 60_000;
            for run in 0..3 {
                if run > 0 {
                    long.restarted(start);
                }
                let (rate, length) = match run {
                    2 => (third_rate, third_hours * HOUR_MS),
                    1 => (1.0, (run_ms as f64 * second_ends) as i64),
                    _ => (1.0, run_ms),
                };
                for age in (0..length).step_by(60_000) {
                    let sample = Sample {
                        at: start + age,
                        bytes: course(age, rate, bend),
                    };
                    long.push(sample);
                    if run == 2 && age + 6 * HOUR_MS >= length {
                        fine.push(sample);
                    }
                }
                start += length;
            }
            (long, fine)
        };
        let params = ForecastParams::default();
        let (long, fine) = loop_of(1.0, 1.0, 10, 0.7);
        let now = fine.last().unwrap().at;
        let mut forecast = forecast_after(&fine, None, Some(limit), now, &params);
        assert_eq!(forecast.time_to_limit, None, "{forecast:?}");
        assert_eq!(forecast.pattern, Pattern::Plateau);
        long.apply(&mut forecast, Some(limit), &params, now);
        let eta = forecast.time_to_limit.expect("from the run before");
        assert!(
            (eta.seconds / 3600.0 - 14.0).abs() < 0.05,
            "{eta:?} against 14 h"
        );
        assert_eq!(forecast.previous_run_ms, Some(run_ms));
        assert_eq!(forecast.severity, crate::model::Severity::Warning);
        assert!(eta.lower_seconds < eta.seconds && eta.upper_seconds.unwrap() > eta.seconds);
        // Growing half as fast this time: off the course, the fine history stands.
        let (slower, fine) = loop_of(0.5, 1.0, 10, 0.7);
        let now = fine.last().unwrap().at;
        assert_eq!(slower.run_before(limit, now, None), None);
        // The run before was restarted at 80% of its course, short of the limit
        // (a rollout): no kill, nothing said.
        let (redeployed, fine) = loop_of(1.0, 0.8, 10, 0.7);
        let now = fine.last().unwrap().at;
        assert_eq!(redeployed.run_before(limit, now, None), None);
        // Straight climbs this time. An hour into the third run's climb its hours
        // (four flat ones) do not grow yet, but its fine trend does, where the run
        // before stood, about as fast: 19 hours to go.
        let (long, fine) = loop_of(1.0, 1.0, 5, 1.0);
        let now = fine.last().unwrap().at;
        let mut forecast = forecast_after(&fine, None, Some(limit), now, &params);
        assert_eq!(forecast.pattern, Pattern::Leak, "{forecast:?}");
        long.apply(&mut forecast, Some(limit), &params, now);
        let eta = forecast.time_to_limit.expect("from the run before").seconds;
        assert!((eta / 3600.0 - 19.0).abs() < 0.05, "{eta} s against 19 h");
        assert_eq!(long.run_before(limit, now, None), None, "hours alone");
    }

    /// A run before whose start the 14-day ring has let go of is no run to go by,
    /// though what is left of it looks like the course: the ring lets go of
    /// restarts with their hours, and what began before the first kept hour may
    /// have been several runs. Runs flat for 60 hours, then climbing to 99% of the
    /// limit in 200; the second, 100 hours in (40 of them climbing), follows the
    /// first, whose first day the ring dropped.
    #[test]
    fn a_run_before_partly_out_of_the_ring_says_nothing() {
        let (base, limit) = (1e9, 2e9);
        let (flat, climb) = (60 * HOUR_MS, 200 * HOUR_MS);
        let course =
            |age: i64| base + (age - flat).max(0) as f64 / climb as f64 * (0.99 * limit - base);
        let mut long = LongTier::default();
        let restart = T0 + flat + climb;
        let now = restart + 100 * HOUR_MS;
        for at in (T0..now).step_by(15 * 60_000) {
            if at == restart {
                long.restarted(at);
            }
            let age = if at >= restart { at - restart } else { at - T0 };
            long.push(Sample {
                at,
                bytes: course(age),
            });
        }
        assert!(
            long.first_hour * HOUR_MS > T0,
            "the ring let go of the start"
        );
        assert_eq!(long.run_before(limit, now, None), None);
    }

    /// Restarts learned out of order (a kill found when the limit is first read,
    /// after later restarts) still bar what came before them.
    #[test]
    fn restarts_are_kept_in_order() {
        let mut long = LongTier::default();
        long.restarted(T0 + 5 * HOUR_MS);
        long.restarted(T0 + 2 * HOUR_MS);
        long.restarted(T0 + 5 * HOUR_MS);
        assert_eq!(long.restarts, vec![T0 + 2 * HOUR_MS, T0 + 5 * HOUR_MS]);
        // Told again a minute earlier (the counter, then the new incarnation's
        // first sample): one restart, at the earlier time.
        long.restarted(T0 + 5 * HOUR_MS - 60_000);
        long.restarted(T0 + 5 * HOUR_MS + 30_000);
        assert_eq!(
            long.restarts,
            vec![T0 + 2 * HOUR_MS, T0 + 5 * HOUR_MS - 60_000]
        );
    }
}
