//! A compressed run of samples: what the store keeps for each segment.
//!
//! Working sets are byte counts the kernel keeps in pages, scraped on a fixed step,
//! so a run of them packs the way Prometheus' own chunks do. After the first sample,
//! each is its difference from the one before, in units of the largest power of two
//! (up to 4 KiB, a page) that divides every value so far, zigzagged, and bit-packed
//! in blocks of [`BLOCK`]: a block is a byte giving the width of its widest
//! difference, then its differences at that width. A flat container's block of
//! 16 takes a few bytes, a noisy one about ten bits a sample (a varint took one or two
//! bytes). A sample's time is implied by the step, and only a sample off the step (by
//! more than 10%) carries its time difference, listed ahead of its block's bits: a
//! scrape's jitter, and cAdvisor's own timestamps that wander by a second or two,
//! cost nothing. A stored time is at most 10% of a step from the real one. Values are
//! whole bytes: a fractional one (synthetic data only) is rounded, and anything
//! beyond ±2⁵³ is clamped there.
//!
//! Reading is sequential ([`Samples::iter`], a block at a time); the store decodes a
//! run once per forecast, which costs a few nanoseconds a sample. Appending writes
//! the new difference into the last block's bits, or re-packs that block (at most
//! 16 differences) when it needs a wider one or a new block begins.

use crate::model::Sample;

/// The largest power-of-two unit: a 4 KiB page.
const MAX_SHIFT: u32 = 12;
/// Values are clamped to ±2⁵³, where f64 still holds every integer.
const MAX_VALUE: f64 = 9_007_199_254_740_992.0;
/// Differences per block.
const BLOCK: usize = 16;
/// A block header's bit for a block with a sample off the step: a 16-bit mask of
/// which, and their time differences as varints, follow the header.
const OFF_STEP_BLOCK: u8 = 0x80;
/// A header's width bits (a zigzagged difference of clamped values needs ≤ 56).
const WIDTH_BITS: u8 = 0x3f;
/// The most bytes one block takes: header, mask, 16 varint times, 16 × 56 bits.
const MAX_BLOCK_BYTES: usize = 1 + 2 + BLOCK * 10 + BLOCK * 7;

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
    /// Blocks of differences, one per sample after the first, from `head` on: a trim
    /// moves `head` (and `skip`) and the bytes before it are dropped only once there
    /// are [`COMPACT_AT`] of them (moving the whole run at every poll was a tenth of a
    /// 100,000-container cycle).
    bytes: Vec<u8>,
    /// Where the block of the first kept sample's successor begins.
    head: u32,
    /// Where the last block begins; it holds `open_n` differences (1..=16 once the
    /// run has two samples).
    open_at: u32,
    /// Differences of the head block that a trim dropped.
    skip: u8,
    open_n: u8,
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

fn width_of(z: u64) -> u32 {
    64 - z.leading_zeros()
}

/// Writes `v` as a varint at the start of `out`; returns its length.
fn put_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut len = 0;
    while v >= 0x80 {
        out[len] = (v as u8) | 0x80;
        v >>= 7;
        len += 1;
    }
    out[len] = v as u8;
    len + 1
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

/// ORs the low `width` bits of `v` into `bytes` at bit `bit` after `start`,
/// least significant first (the bytes there are zero or hold earlier values).
fn or_bits(bytes: &mut [u8], start: usize, bit: usize, v: u64, width: u32) {
    let mut v = u128::from(v);
    let mut bit = bit;
    let mut left = width as usize;
    while left > 0 {
        let offset = bit % 8;
        bytes[start + bit / 8] |= (v << offset) as u8;
        let taken = (8 - offset).min(left);
        v >>= taken;
        bit += taken;
        left -= taken;
    }
}

/// One block, unpacked: its zigzagged differences and, for a sample off the step,
/// its time difference (0 on the step, which no real difference is).
#[derive(Clone, Copy)]
struct Block {
    n: usize,
    z: [u64; BLOCK],
    dt: [i64; BLOCK],
}

impl Block {
    const EMPTY: Block = Block {
        n: 0,
        z: [0; BLOCK],
        dt: [0; BLOCK],
    };

    /// Reads the block at `pos` holding `n` differences; returns where the next begins.
    fn read(&mut self, bytes: &[u8], mut pos: usize, n: usize) -> usize {
        let header = bytes[pos];
        pos += 1;
        let width = u32::from(header & WIDTH_BITS);
        self.n = n;
        self.dt = [0; BLOCK];
        if header & OFF_STEP_BLOCK != 0 {
            let mask = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
            pos += 2;
            for (i, dt) in self.dt.iter_mut().enumerate().take(n) {
                if mask & (1 << i) != 0 {
                    *dt = get_varint(bytes, &mut pos) as i64;
                }
            }
        }
        let mut acc: u128 = 0;
        let mut have = 0u32;
        let keep = (1u64 << width) - 1;
        for z in self.z.iter_mut().take(n) {
            while have < width {
                acc |= u128::from(bytes[pos]) << have;
                pos += 1;
                have += 8;
            }
            *z = (acc as u64) & keep;
            acc = acc.checked_shr(width).unwrap_or(0);
            have -= width;
        }
        pos
    }

    /// Packs the block into `buf`; returns the part written.
    fn write<'b>(&self, buf: &'b mut [u8; MAX_BLOCK_BYTES]) -> &'b [u8] {
        let (z, dt) = (&self.z[..self.n], &self.dt[..self.n]);
        let width = z.iter().map(|&v| width_of(v)).max().unwrap_or(0);
        let mask = dt
            .iter()
            .enumerate()
            .filter(|(_, &d)| d != 0)
            .fold(0u16, |m, (i, _)| m | (1 << i));
        buf[0] = width as u8 | if mask != 0 { OFF_STEP_BLOCK } else { 0 };
        let mut len = 1;
        if mask != 0 {
            buf[1..3].copy_from_slice(&mask.to_le_bytes());
            len = 3;
            for &d in dt.iter().filter(|&&d| d != 0) {
                len += put_varint(&mut buf[len..], d as u64);
            }
        }
        let end = len + (self.n * width as usize).div_ceil(8);
        buf[len..end].fill(0);
        for (i, &v) in z.iter().enumerate() {
            or_bits(buf, len, i * width as usize, v, width);
        }
        &buf[..end]
    }
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
            open_at: 0,
            skip: 0,
            open_n: 0,
        }
    }

    /// A run of `samples` (those not after the previous one are skipped).
    pub fn from_samples(step_ms: i64, samples: &[Sample]) -> Self {
        let mut run = Samples::new(step_ms);
        run.bytes.reserve_exact(samples.len() * 5 / 4 + 8);
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
        let mut iter = Iter {
            run: self,
            block_at: self.head as usize,
            next_at: self.head as usize,
            block: Block::EMPTY,
            i: 0,
            at: self.first_at,
            units: self.first_units,
            remaining: self.len,
        };
        if self.len > 1 {
            iter.read_block();
            iter.i = usize::from(self.skip);
        }
        iter
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
            self.bytes.reserve_exact(samples.len() * 5 / 4 + 8);
            self.extend(samples);
        }
        let units = value >> self.shift;
        if self.len == 0 {
            self.first_at = sample.at;
            self.first_units = units;
        } else {
            let dt = sample.at - self.last_at;
            let off_step = off_step_of(dt, self.step_ms);
            self.append(
                zigzag(units - self.last_units),
                if off_step { dt } else { 0 },
            );
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

    /// Appends one difference (`dt`: 0 on the step) to the last block, or starts one.
    fn append(&mut self, z: u64, dt: i64) {
        let open = self.open_at as usize;
        let n = usize::from(self.open_n);
        if n > 0 && n < BLOCK && dt == 0 {
            let header = self.bytes[open];
            let width = u32::from(header & WIDTH_BITS);
            if header & OFF_STEP_BLOCK == 0 && width_of(z) <= width {
                // The common case: the difference fits the block's width.
                let need = open + 1 + ((n + 1) * width as usize).div_ceil(8);
                self.room(need - self.bytes.len().min(need));
                if self.bytes.len() < need {
                    self.bytes.resize(need, 0);
                }
                or_bits(&mut self.bytes, open + 1, n * width as usize, z, width);
                self.open_n += 1;
                return;
            }
        }
        let mut block = Block::EMPTY;
        if n > 0 && n < BLOCK {
            // Re-pack the last block with the new difference.
            block.read(&self.bytes, open, n);
            self.bytes.truncate(open);
        } else {
            self.open_at = self.bytes.len() as u32;
        }
        block.z[block.n] = z;
        block.dt[block.n] = dt;
        block.n += 1;
        let mut packed = [0u8; MAX_BLOCK_BYTES];
        let packed = block.write(&mut packed);
        self.room(packed.len());
        self.bytes.extend_from_slice(packed);
        self.open_n = block.n as u8;
    }

    /// Makes room for `extra` more bytes, growing by an eighth rather than doubling:
    /// the run's size is bounded by the lookback, and doubled capacity would be held
    /// for its whole life.
    fn room(&mut self, extra: usize) {
        if self.bytes.capacity() - self.bytes.len() < extra {
            self.bytes
                .reserve_exact(extra.max(self.bytes.len() / 8 + 20));
        }
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
                new_first = Some((s.at, iter.units, iter.resume_point()));
                break;
            }
            dropped += 1;
        }
        let Some((first_at, first_units, resume)) = new_first else {
            return;
        };
        self.first_at = first_at;
        self.first_units = first_units;
        self.len -= dropped;
        match resume {
            Some((head, skip)) => {
                self.head = head as u32;
                self.skip = skip as u8;
            }
            None => {
                // One sample left: no differences.
                self.bytes = Vec::new();
                self.head = 0;
                self.skip = 0;
                self.open_at = 0;
                self.open_n = 0;
                return;
            }
        }
        if (self.head as usize) < COMPACT_AT {
            return;
        }
        self.bytes.drain(..self.head as usize);
        self.open_at -= self.head;
        self.head = 0;
        // Keep at most an eighth spare after a trim (see `room`).
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
        *self = Samples {
            shift: self.shift,
            ..Samples::new(self.step_ms)
        };
    }
}

/// The latest sample time a run takes (ms since the epoch): about the year 37,600.
pub const MAX_AT: i64 = 1 << 50;

/// Unpacks a run in time order.
pub struct Iter<'a> {
    run: &'a Samples,
    /// Where the block in `block` begins, and where the next one does.
    block_at: usize,
    next_at: usize,
    block: Block,
    /// The block's next difference.
    i: usize,
    at: i64,
    units: i64,
    remaining: u32,
}

impl Iter<'_> {
    fn read_block(&mut self) {
        let n = if self.next_at == self.run.open_at as usize {
            usize::from(self.run.open_n)
        } else {
            BLOCK
        };
        self.block_at = self.next_at;
        self.next_at = self.block.read(&self.run.bytes, self.next_at, n);
        self.i = 0;
    }

    /// Where the difference after the sample last returned lies, as (block, index in
    /// it); `None` after the last sample.
    fn resume_point(&self) -> Option<(usize, usize)> {
        if self.remaining == 0 {
            None
        } else if self.i < self.block.n {
            Some((self.block_at, self.i))
        } else {
            Some((self.next_at, 0))
        }
    }
}

impl Iterator for Iter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        if self.remaining == 0 {
            return None;
        }
        if self.remaining < self.run.len {
            if self.i == self.block.n {
                self.read_block();
            }
            let (z, dt) = (self.block.z[self.i], self.block.dt[self.i]);
            self.i += 1;
            self.units += unzigzag(z);
            self.at += if dt != 0 { dt } else { self.run.step_ms };
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
    fn page_sized_values_on_the_step_take_a_byte_or_less_each() {
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
    fn noisy_runs_take_their_noise_in_bits_and_flat_ones_almost_nothing() {
        // The fleet bench's noise: up to ±282 pages from one scrape to the next
        // (a varint took two bytes for each).
        let noisy: Vec<Sample> = (0..721)
            .map(|i| s(i * 30_000, (12_800 + (i * 7919 % 23) * 13) as f64 * 4096.0))
            .collect();
        let run = Samples::from_samples(30_000, &noisy);
        assert_eq!(run.to_vec(), noisy);
        assert!(
            run.heap_bytes() <= 721 * 3 / 2,
            "{} bytes",
            run.heap_bytes()
        );
        let flat: Vec<Sample> = (0..721)
            .map(|i| s(i * 30_000, (12_800 + i % 2) as f64 * 4096.0))
            .collect();
        let run = Samples::from_samples(30_000, &flat);
        assert_eq!(run.to_vec(), flat);
        assert!(run.heap_bytes() <= 721 / 3, "{} bytes", run.heap_bytes());
    }

    #[test]
    fn a_window_kept_a_day_holds_little_beside_its_samples() {
        // Pushed one at a time and trimmed to 6h, as the store keeps a segment.
        let mut run = Samples::new(30_000);
        for i in 0..2_880i64 {
            let at = i * 30_000;
            run.push(s(at, (12_800 + (i * 7919 % 23) * 13) as f64 * 4096.0));
            run.drop_before(at - 6 * 3_600_000);
        }
        let packed = run.bytes.len() - run.head as usize;
        assert_eq!(run.len(), 721);
        assert!(packed <= 880, "{packed} bytes packed");
        assert!(
            run.heap_bytes() <= packed + packed / 8 + COMPACT_AT + 24,
            "{} bytes held for {packed} packed",
            run.heap_bytes()
        );
    }

    #[test]
    fn the_widest_differences_and_off_step_times_round_trip() {
        // Odd values a whole range apart: unit 1 byte, 55-bit zigzagged differences.
        let big = 9_007_199_254_740_991.0;
        let samples: Vec<Sample> = (0..40i64)
            .map(|i| s(i * 47_000 + i % 3, if i % 2 == 0 { big } else { -big }))
            .collect();
        let mut run = Samples::from_samples(30_000, &samples);
        assert_eq!(run.to_vec(), samples);
        run.drop_before(samples[17].at);
        run.push(s(40 * 47_000, 1.0));
        let mut expected = samples[17..].to_vec();
        expected.push(s(40 * 47_000, 1.0));
        assert_eq!(run.to_vec(), expected);
    }

    #[test]
    fn a_run_cut_or_split_takes_new_samples() {
        let samples: Vec<Sample> = (0..50).map(|i| s(i * 30_000, (i * 8192) as f64)).collect();
        let mut run = Samples::from_samples(30_000, &samples);
        run.truncate_from(20 * 30_000);
        run.push(s(20 * 30_000, 3.0 * 4096.0));
        assert_eq!(run.to_vec()[..20], samples[..20]);
        assert_eq!(run.last(), Some(s(20 * 30_000, 3.0 * 4096.0)));
        let mut tail = run.split_off(7);
        tail.push(s(21 * 30_000, 5.0));
        assert_eq!(run.to_vec(), samples[..7]);
        assert_eq!(tail.len(), 15);
        assert_eq!(tail.to_vec()[..13], samples[7..20]);
        assert_eq!(tail.last(), Some(s(21 * 30_000, 5.0)));
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

        /// The store's life: samples appended one at a time, the window trimmed
        /// between them (compacting now and then), widths growing inside a block.
        #[test]
        fn appends_and_trims_interleaved_match_a_plain_list(
            steps in proptest::collection::vec(
                (prop_oneof![9 => Just(30_000i64), 1 => 40_000i64..200_000],
                 prop_oneof![4 => -3i64..3, 2 => -300i64..300, 1 => -(1i64 << 30)..(1i64 << 30)],
                 0usize..4),
                0..600,
            ),
        ) {
            let mut run = Samples::new(30_000);
            let mut kept: Vec<Sample> = Vec::new();
            let (mut at, mut units) = (1_700_000_000_000i64, 1i64 << 20);
            for (dt, du, trim) in steps {
                at += dt;
                units += du;
                // Now and then a value off the page: the run re-packs in bytes.
                let odd = i64::from(du % 97 == 5);
                let sample = s(at, (units * 4096 + odd) as f64);
                prop_assert!(run.push(sample));
                kept.push(sample);
                prop_assert_eq!(run.last(), Some(sample));
                if trim == 0 && kept.len() > 3 {
                    let from = kept[kept.len() / 3].at;
                    run.drop_before(from);
                    kept.retain(|x| x.at >= from);
                }
                prop_assert_eq!(run.len(), kept.len());
            }
            prop_assert_eq!(run.to_vec(), kept);
        }
    }
}
