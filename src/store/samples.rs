//! A compressed run of samples: what the store keeps for each segment.
//!
//! Working sets are byte counts the kernel keeps in pages, scraped on a fixed step,
//! so a run of them packs the way Prometheus' own chunks do. After the first sample,
//! each is its difference from the one before, as a zigzag varint in units of the
//! largest power of two (up to 4 KiB, a page) that divides every value so far; its
//! time is implied by the step, and only a sample off the step (by more than 10%)
//! carries its time difference: a scrape's jitter, and cAdvisor's own timestamps that
//! wander by a second or two, cost nothing. A stored time is at most 10% of a step
//! from the real one. A 6h run at 30s of a real container takes one or two bytes a sample
//! instead of sixteen. Values are whole bytes: a fractional one (synthetic data only)
//! is rounded, and anything beyond ±2⁵³ is clamped there.
//!
//! Reading is sequential ([`Samples::iter`]); the store decodes a run once per
//! forecast, which costs a few nanoseconds a sample.

use crate::model::Sample;

/// The largest power-of-two unit: a 4 KiB page.
const MAX_SHIFT: u32 = 12;
/// Values are clamped to ±2⁵³, where f64 still holds every integer.
const MAX_VALUE: f64 = 9_007_199_254_740_992.0;

/// Samples in strictly increasing time order, packed.
#[derive(Clone, PartialEq)]
pub struct Samples {
    step_ms: i64,
    len: u32,
    shift: u32,
    first_at: i64,
    first_units: i64,
    last_at: i64,
    last_units: i64,
    /// One record per sample after the first, from `head` on: a trim moves `head`
    /// and the bytes before it are dropped only once there are [`COMPACT_AT`] of them
    /// (moving the whole run at every poll was a tenth of a 100,000-container cycle).
    bytes: Vec<u8>,
    head: u32,
}

/// Trimmed bytes kept before the run is moved down over them.
const COMPACT_AT: usize = 128;

impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Samples")
            .field("len", &self.len)
            .field("start", &self.start())
            .field("end", &self.end())
            .field("packed_bytes", &(self.bytes.len() - self.head as usize))
            .finish()
    }
}

fn whole_bytes(value: f64) -> i64 {
    if value.is_nan() {
        return 0;
    }
    value.round().clamp(-MAX_VALUE, MAX_VALUE) as i64
}

fn off_step_of(dt: i64, step_ms: i64) -> bool {
    (dt - step_ms).abs() > step_ms / 10
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = bytes.get(*pos) {
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    v
}

impl Samples {
    /// An empty run whose samples are expected every `step_ms` (any spacing is kept
    /// exactly; off-step samples only cost a few bytes more).
    pub fn new(step_ms: i64) -> Self {
        Samples {
            step_ms: step_ms.max(1),
            len: 0,
            shift: MAX_SHIFT,
            first_at: 0,
            first_units: 0,
            last_at: 0,
            last_units: 0,
            bytes: Vec::new(),
            head: 0,
        }
    }

    /// A run of `samples` (those not after the previous one are skipped).
    pub fn from_samples(step_ms: i64, samples: &[Sample]) -> Self {
        let mut run = Samples::new(step_ms);
        run.bytes.reserve_exact(samples.len() * 2);
        run.extend(samples.iter().copied());
        run.bytes.shrink_to_fit();
        run
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn start(&self) -> Option<i64> {
        (self.len > 0).then_some(self.first_at)
    }

    /// The mean spacing of the samples (s), 0 with fewer than two: how coarse the
    /// scrape is, which the alert's evidence scales with.
    pub fn spacing_seconds(&self) -> f64 {
        crate::model::spacing_seconds(self.first_at, self.last_at, self.len as usize)
    }

    pub fn end(&self) -> Option<i64> {
        (self.len > 0).then_some(self.last_at)
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Sample> {
        (self.len > 0).then(|| Sample {
            at: self.last_at,
            bytes: (self.last_units << self.shift) as f64,
        })
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            run: self,
            pos: self.head as usize,
            at: self.first_at,
            units: self.first_units,
            remaining: self.len,
        }
    }

    /// Every sample, unpacked.
    pub fn to_vec(&self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter());
        out
    }

    /// Appends samples (see [`Samples::push`]); returns how many were added.
    pub fn extend(&mut self, samples: impl IntoIterator<Item = Sample>) -> usize {
        let mut added = 0;
        for s in samples {
            if self.push(s) {
                added += 1;
            }
        }
        added
    }

    /// Appends a sample if it is at least 90% of a step newer than the newest: one
    /// sample per step, whoever scrapes more often (a 15s target, two jobs).
    pub fn push(&mut self, sample: Sample) -> bool {
        // A time before the epoch or tens of millennia ahead is no scrape (a broken
        // source): refused, so that no difference of times below can overflow.
        if !(0..=MAX_AT).contains(&sample.at) {
            return false;
        }
        if self.len > 0 && sample.at - self.last_at < self.step_ms - self.step_ms / 10 {
            return false;
        }
        let value = whole_bytes(sample.bytes);
        let fits = value == 0 || value.trailing_zeros() >= self.shift;
        if !fits {
            // A value the current unit cannot express: repack in a finer one (at most
            // a dozen times in a run's life, and never for page-sized values).
            let shift = value.trailing_zeros();
            let samples = self.to_vec();
            *self = Samples::new(self.step_ms);
            self.shift = shift;
            self.bytes.reserve_exact(samples.len() * 2 + 8);
            self.extend(samples);
        }
        let units = value >> self.shift;
        if self.len == 0 {
            self.first_at = sample.at;
            self.first_units = units;
        } else {
            if self.bytes.capacity() - self.bytes.len() < 20 {
                // Grow by an eighth, not by doubling: the run's size is bounded by the
                // lookback, and doubled capacity would be held for its whole life.
                self.bytes.reserve_exact(self.bytes.len() / 8 + 20);
            }
            let dt = sample.at - self.last_at;
            let off_step = off_step_of(dt, self.step_ms);
            put_varint(
                &mut self.bytes,
                (zigzag(units - self.last_units) << 1) | u64::from(off_step),
            );
            if off_step {
                put_varint(&mut self.bytes, dt as u64);
            }
        }
        // A sample within 10% of the step lands on it: timestamps jitter by
        // milliseconds to seconds, which is nothing to a forecast and three bytes a
        // sample to keep.
        self.last_at = if self.len > 0 && !off_step_of(sample.at - self.last_at, self.step_ms) {
            self.last_at + self.step_ms
        } else {
            sample.at
        };
        self.last_units = units;
        self.len += 1;
        true
    }

    /// Drops the samples before `at`.
    pub fn drop_before(&mut self, at: i64) {
        if self.len == 0 || self.first_at >= at {
            return;
        }
        if self.last_at < at {
            self.clear();
            return;
        }
        let mut iter = self.iter();
        let mut dropped = 0;
        let mut new_first = None;
        while let Some(s) = iter.next() {
            if s.at >= at {
                new_first = Some((s.at, iter.units, iter.pos));
                break;
            }
            dropped += 1;
        }
        if let Some((first_at, first_units, pos)) = new_first {
            self.first_at = first_at;
            self.first_units = first_units;
            self.head = pos as u32;
            self.len -= dropped;
        }
        if (self.head as usize) < COMPACT_AT {
            return;
        }
        self.bytes.drain(..self.head as usize);
        self.head = 0;
        // Keep at most an eighth spare after a trim (see `push`).
        if self.bytes.capacity() > self.bytes.len() + self.bytes.len() / 8 + 64 {
            self.bytes
                .shrink_to(self.bytes.len() + self.bytes.len() / 8 + 20);
        }
    }

    /// Drops the samples at or after `at`.
    pub fn truncate_from(&mut self, at: i64) {
        if self.len == 0 || self.last_at < at {
            return;
        }
        let kept: Vec<Sample> = self.iter().take_while(|s| s.at < at).collect();
        *self = Samples::from_samples(self.step_ms, &kept);
    }

    /// Splits off the samples from index `index` on.
    pub fn split_off(&mut self, index: usize) -> Samples {
        let mut all = self.to_vec();
        let tail = all.split_off(index.min(all.len()));
        *self = Samples::from_samples(self.step_ms, &all);
        Samples::from_samples(self.step_ms, &tail)
    }

    fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
        self.bytes = Vec::new();
    }
}

/// The latest sample time a run takes (ms since the epoch): about the year 37,600.
pub const MAX_AT: i64 = 1 << 50;

/// Unpacks a run in time order.
pub struct Iter<'a> {
    run: &'a Samples,
    pos: usize,
    at: i64,
    units: i64,
    remaining: u32,
}

impl Iterator for Iter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 {
            return None;
        }
        if self.remaining < self.run.len {
            let record = get_varint(&self.run.bytes, &mut self.pos);
            self.units += unzigzag(record >> 1);
            self.at += if record & 1 == 1 {
                get_varint(&self.run.bytes, &mut self.pos) as i64
            } else {
                self.run.step_ms
            };
        }
        self.remaining -= 1;
        Some(Sample {
            at: self.at,
            bytes: (self.units << self.run.shift) as f64,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(at: i64, bytes: f64) -> Sample {
        Sample { at, bytes }
    }

    #[test]
    fn page_sized_values_on_the_step_take_a_byte_or_two_each() {
        let samples: Vec<Sample> = (0..721)
            .map(|i| {
                s(
                    i * 30_000,
                    (100 * 256 + (i % 7) * 3 + i / 10) as f64 * 4096.0,
                )
            })
            .collect();
        let run = Samples::from_samples(30_000, &samples);
        assert_eq!(run.to_vec(), samples);
        assert!(run.heap_bytes() <= 721, "{} bytes", run.heap_bytes());
    }

    #[test]
    fn odd_values_and_off_step_times_are_kept_exactly() {
        let samples = vec![
            s(1_000, 4096.0),
            s(31_000, 12_345.0),
            s(65_000, 0.0),
            s(120_000, -7.0),
            s(155_001, 1e15),
            s(190_002, 3.0),
        ];
        let run = Samples::from_samples(30_000, &samples);
        assert_eq!(run.to_vec(), samples);
        assert_eq!(run.last(), Some(s(190_002, 3.0)));
    }

    #[test]
    fn trims_from_either_end_and_splits() {
        let samples: Vec<Sample> = (0..100).map(|i| s(i * 30_000, (i * 4096) as f64)).collect();
        let mut run = Samples::from_samples(30_000, &samples);
        run.drop_before(30 * 30_000 + 1);
        assert_eq!(run.to_vec(), samples[31..]);
        run.truncate_from(90 * 30_000);
        assert_eq!(run.to_vec(), samples[31..90]);
        let tail = run.split_off(10);
        assert_eq!(run.to_vec(), samples[31..41]);
        assert_eq!(tail.to_vec(), samples[41..90]);
        run.push(s(41 * 30_000, 5.0));
        assert_eq!(run.to_vec().last(), Some(&s(41 * 30_000, 5.0)));
        run.drop_before(i64::MAX);
        assert!(run.is_empty() && run.start().is_none() && run.iter().next().is_none());
    }

    #[test]
    fn scrape_jitter_lands_on_the_step() {
        let jittered = [0, 30_004, 59_998, 92_500, 130_000, 160_001];
        let run = Samples::from_samples(
            30_000,
            &jittered.iter().map(|&at| s(at, 4096.0)).collect::<Vec<_>>(),
        );
        let times: Vec<i64> = run.iter().map(|x| x.at).collect();
        assert_eq!(times, vec![0, 30_000, 60_000, 90_000, 130_000, 160_000]);
    }

    #[test]
    fn older_and_denser_samples_are_not_appended() {
        let mut run = Samples::new(30_000);
        assert!(run.push(s(60_000, 1.0)));
        assert!(!run.push(s(60_000, 2.0)));
        assert!(!run.push(s(30_000, 2.0)));
        assert!(!run.push(s(75_000, 2.0)), "a 15s scrape between two steps");
        assert!(run.push(s(87_000, 3.0)), "within 10% of the step");
        assert_eq!(
            run.to_vec(),
            vec![s(60_000, 1.0), s(90_000, 3.0)],
            "and lands on it"
        );
    }

    proptest! {
        #[test]
        fn whole_byte_samples_round_trip(
            steps in proptest::collection::vec(
                ((27_000i64..200_000).prop_filter("off the step", |dt| (dt - 30_000).abs() > 3_000),
                 -(1i64 << 40)..(1i64 << 40)),
                0..300,
            ),
            cut in 0usize..300,
        ) {
            let mut at = 1_700_000_000_000i64;
            let samples: Vec<Sample> = steps
                .iter()
                .map(|&(dt, v)| {
                    at += dt;
                    s(at, v as f64)
                })
                .collect();
            let mut run = Samples::from_samples(30_000, &samples);
            prop_assert_eq!(run.to_vec(), samples.clone());
            let cut = cut.min(samples.len());
            if let Some(from) = samples.get(cut) {
                run.drop_before(from.at);
                prop_assert_eq!(run.to_vec(), samples[cut..].to_vec());
            }
        }
    }
}
