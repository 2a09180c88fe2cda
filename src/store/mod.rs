//! Per-container history in two tiers. The fine tier: samples in segments, one
//! segment per incarnation, so that no fit ever spans a restart; bounded to the
//! lookback window. The long tier ([`long`]): one summary an hour for 14 days, across
//! restarts.
//!
//! Memory per tracked container is the key, limit and segment bookkeeping and the
//! pipeline's follow state (its alert and kept fit): about 770 bytes in one
//! allocation, beside the key's names in the map, plus the packed samples ([`Samples`]: bit-packed
//! differences, a few bits each for a flat container's page-sized working set on the
//! scrape step and ten or so for a noisy one, so 0.2-1 KiB for a 6h lookback at 30s)
//! plus the long tier (4 bytes an hour: up to 1.3 KiB after
//! 14 days). `cargo bench --bench fleet` measures it.

pub mod long;
mod samples;

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use long::LongTier;
pub use samples::Samples;

use crate::model::{AlertState, Memo, Sample};
use crate::source::{Batch, ContainerKey, LimitSource, LongSeries, WorkingSetSeries};
use crate::vocab::TimestampMs;

/// A run of samples from one incarnation of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// cAdvisor's `id` when known. Two segments may share `None` (or an id) when a
    /// restart was detected from the restart counter instead.
    /// Shared with every report of the segment.
    pub container_id: Option<Arc<str>>,
    /// The segment's first sample ever (the window's first moves on as it is trimmed).
    pub began: TimestampMs,
    /// Samples in strictly increasing time order, packed.
    pub samples: Samples,
}

impl Segment {
    pub fn start(&self) -> Option<TimestampMs> {
        self.samples.start()
    }
    pub fn end(&self) -> Option<TimestampMs> {
        self.samples.end()
    }
}

/// A container's limit and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// `None`: the container runs without a limit.
    pub bytes: Option<f64>,
    pub source: LimitSource,
}

/// The store's heap by part (bytes, from capacities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapUse {
    /// The map's table: a key and a pointer per bucket (empty ones included).
    pub table: usize,
    /// The containers' [`Tracked`], each in its own allocation: limits, bookkeeping,
    /// the long tier's summary and the follow state.
    pub slots: usize,
    /// The keys' strings.
    pub keys: usize,
    /// The fine tier: segments, their packed samples and container ids.
    pub fine: usize,
    /// The long tier's hours.
    pub long: usize,
}

impl HeapUse {
    pub fn total(&self) -> usize {
        self.table + self.slots + self.keys + self.fine + self.long
    }
}

/// What the pipeline carries for a container from one evaluation to the next: its
/// alert and its kept fit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Followed {
    pub alert: AlertState,
    pub memo: Memo,
}

impl Followed {
    /// Whether an evaluation has taken this container in (each one fits or reuses a
    /// fit): before that nothing was sent and there is no fit to report.
    pub fn evaluated(&self) -> bool {
        self.memo.fits + self.memo.reuses > 0
    }
}

/// Everything headroom keeps about one container.
#[derive(Debug, Clone, Default)]
pub struct Tracked {
    /// Oldest first; the last one is current.
    pub segments: Vec<Segment>,
    /// `None` until a limit series was seen (then: unknown, reported as "no limit").
    pub limit: Option<Limit>,
    /// The last restart-counter reading, to see the next increase.
    last_restart_count: Option<(TimestampMs, f64)>,
    /// One summary an hour for 14 days, across restarts: the long tier.
    pub long: LongTier,
    /// The follow state, kept in the container's slot rather than a map of its own
    /// (a second key and table were 17 MB at 100,000 containers, by capacity), and forgotten with
    /// it. In a cell, so the evaluation can update it while reading the store.
    pub follow: RefCell<Followed>,
}

impl Tracked {
    pub fn current(&self) -> Option<&Segment> {
        self.segments.last()
    }

    /// The last sample strictly before `at`, whatever its segment.
    pub fn sample_before(&self, at: TimestampMs) -> Option<Sample> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.samples.iter().take_while(|x| x.at < at).last())
    }

    /// The working set a kill reported at `at` is judged on: the last sample of the
    /// incarnation it ended. The restart counter that reports a kill may rise up to
    /// `lag_ms` after the new incarnation's first sample (kube-state-metrics reads it
    /// 15-40 s after cAdvisor sees the new cgroup), so an incarnation that began in
    /// `(at - lag_ms, at]` is the one after the kill, and the one before it is judged.
    pub fn sample_at_kill(&self, at: TimestampMs, lag_ms: i64) -> Option<Sample> {
        let began = |s: &Segment| s.start().unwrap_or(s.began);
        if let Some(i) = self.segments.iter().rposition(|s| began(s) <= at) {
            if i > 0 && began(&self.segments[i]) > at - lag_ms {
                return self.segments[i - 1].samples.last();
            }
        }
        self.sample_before(at)
    }

    pub fn last_seen(&self) -> Option<TimestampMs> {
        self.current().and_then(Segment::end)
    }

    pub fn sample_count(&self) -> usize {
        self.segments.iter().map(|s| s.samples.len()).sum()
    }

    /// The samples of the incarnation before the current one, for a forecast from the
    /// run before (`model::recurrence`): only while it is whole (the lookback has not
    /// trimmed its start, so ages line up), lasted longer than the current one so far,
    /// and ended at the `limit` (checked from its last sample before unpacking it all).
    pub fn previous_run(&self, step_ms: i64, limit: Option<f64>) -> Option<Vec<Sample>> {
        let [.., previous, current] = self.segments.as_slice() else {
            return None;
        };
        if !crate::model::recurrence::ran_out(previous.samples.last(), limit) {
            return None;
        }
        let whole = previous.start()? <= previous.began + step_ms;
        let longer = previous.end()? - previous.began > current.end()? - current.began;
        (whole && longer).then(|| previous.samples.to_vec())
    }

    /// Whether the incarnation before the current one ended at the `limit` (ran out).
    pub fn ran_out_before(&self, limit: Option<f64>) -> bool {
        let [.., previous, _] = self.segments.as_slice() else {
            return false;
        };
        crate::model::recurrence::ran_out(previous.samples.last(), limit)
    }
}

/// Bounds of the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub lookback_ms: i64,
    pub forget_after_ms: i64,
    /// Sample spacing, used to find the drop that goes with a restart.
    pub step_ms: i64,
}

/// All tracked containers.
#[derive(Debug)]
pub struct Store {
    limits: StoreLimits,
    /// Each container's state boxed: a table of 100,000 has 131,072 buckets, and
    /// an empty bucket then costs a key and a pointer, not a whole [`Tracked`].
    containers: FxHashMap<ContainerKey, Box<Tracked>>,
}

/// What one ingest changed, for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestSummary {
    pub samples_added: usize,
    pub new_containers: usize,
    pub new_segments: usize,
    /// New segments of containers already tracked: restarts with a new container id.
    pub new_incarnations: usize,
    /// Containers without a container id whose working set at least halved from one
    /// sample to the next: maybe a restart the counter will confirm.
    pub sudden_drops: usize,
    pub forgotten_containers: usize,
    /// Samples timestamped further ahead of the batch's `now` than [`FUTURE_SKEW_MS`]
    /// (a clock gone wrong, a broken source): dropped, never allowed to move a
    /// segment's end past the present.
    pub future_samples: usize,
    /// Working-set series the source returned, and those of them it could not name a
    /// container for (no namespace, pod or container label), as the batch counted them.
    pub series_fetched: usize,
    pub series_without_identity: usize,
    /// Working-set series dropped as twins of a container's own cAdvisor series, as
    /// the batch counted them.
    pub twin_series: usize,
    /// Working-set series without the cgroup `id` (or with one nested under the
    /// current segment's) for a container whose current segment has one: a twin
    /// answering alone in this window, ignored rather than splitting the history.
    pub twin_series_ignored: usize,
    /// Restart-counter increases seen: (container, first sample at the new count).
    pub restarts: Vec<(ContainerKey, TimestampMs)>,
}

/// How far ahead of `now` a sample may be and still be taken: clocks differ by
/// seconds, not minutes.
pub const FUTURE_SKEW_MS: i64 = 5 * 60_000;

/// An OOMKilled reason counts for a restart when seen from two steps before it to
/// ten steps after: the reason shows up with the restart, within a few scrapes.
const OOM_REASON_STEPS: (i64, i64) = (2, 10);

impl IngestSummary {
    /// The restarts that came with an OOMKilled reason: `flags` holds each
    /// container's termination-reason readings (time, 1 while the last one was an
    /// OOM kill), `step_ms` the scrape step.
    pub fn oom_restarts(
        &self,
        flags: &FxHashMap<ContainerKey, Vec<(TimestampMs, f64)>>,
        step_ms: i64,
    ) -> Vec<(ContainerKey, TimestampMs)> {
        let (before, after) = OOM_REASON_STEPS;
        self.restarts
            .iter()
            .filter(|(key, at)| {
                flags.get(key).is_some_and(|readings| {
                    readings.iter().any(|&(t, v)| {
                        t >= at - before * step_ms && t <= at + after * step_ms && v >= 1.0
                    })
                })
            })
            .cloned()
            .collect()
    }

    /// Adds another ingest's figures to these (a fetch stored piece by piece).
    pub fn absorb(&mut self, other: IngestSummary) {
        self.samples_added += other.samples_added;
        self.new_containers += other.new_containers;
        self.new_segments += other.new_segments;
        self.new_incarnations += other.new_incarnations;
        self.sudden_drops += other.sudden_drops;
        self.forgotten_containers += other.forgotten_containers;
        self.future_samples += other.future_samples;
        self.series_fetched += other.series_fetched;
        self.series_without_identity += other.series_without_identity;
        self.twin_series += other.twin_series;
        self.twin_series_ignored += other.twin_series_ignored;
        self.restarts.extend(other.restarts);
    }
}

impl Store {
    pub fn new(limits: StoreLimits) -> Self {
        Store {
            limits,
            containers: FxHashMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    pub fn get(&self, key: &ContainerKey) -> Option<&Tracked> {
        self.containers.get(key).map(|t| &**t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ContainerKey, &Tracked)> {
        self.containers.iter().map(|(k, t)| (k, &**t))
    }

    /// Heap bytes held by the store, counted from capacities: the figure benchmarks
    /// report per container.
    pub fn heap_bytes(&self) -> usize {
        self.heap_use().total()
    }

    /// [`Store::heap_bytes`] by part.
    pub fn heap_use(&self) -> HeapUse {
        use std::mem::size_of;
        // The table's buckets: a power of two, at most 7/8 of them used.
        let buckets = match self.containers.capacity() {
            0 => 0,
            c if c < 8 => (c + 1).next_power_of_two(),
            c => (c * 8 / 7).next_power_of_two(),
        };
        let mut out = HeapUse {
            table: buckets * (size_of::<(ContainerKey, Box<Tracked>)>() + 1),
            slots: self.containers.len() * size_of::<Tracked>(),
            ..HeapUse::default()
        };
        for (key, tracked) in &self.containers {
            out.keys += key.heap_bytes();
            out.fine += tracked.segments.capacity() * size_of::<Segment>()
                + tracked
                    .segments
                    .iter()
                    .map(|s| {
                        s.samples.heap_bytes()
                            + s.container_id.as_ref().map_or(0, |id| id.len() + 16)
                    })
                    .sum::<usize>();
            out.long += tracked.long.heap_bytes();
        }
        out
    }

    /// Adds hours read back from the source's history to the long tier of the
    /// containers tracked (before the hours they already keep). Returns how many
    /// containers took some.
    pub fn backfill_long(&mut self, series: &[LongSeries]) -> usize {
        let mut took = 0;
        for s in series {
            let Some(tracked) = self.containers.get_mut(&s.key) else {
                continue;
            };
            let hours: Vec<(TimestampMs, crate::model::Hour)> = s
                .hours
                .iter()
                .map(|&(at, max, mean)| (at, crate::model::Hour { max, mean }))
                .collect();
            let before = tracked.long.kept_hours();
            tracked.long.prepend(&hours);
            took += usize::from(tracked.long.kept_hours() > before);
        }
        took
    }

    /// Adds a batch fetched up to `now`, splits segments at restarts, then trims to the
    /// lookback and forgets containers unseen for longer than the grace period.
    pub fn ingest(&mut self, batch: Batch, now: TimestampMs) -> IngestSummary {
        let mut summary = IngestSummary {
            series_fetched: batch.series_fetched,
            series_without_identity: batch.series_without_identity,
            twin_series: batch.twin_series,
            ..IngestSummary::default()
        };
        for mut series in batch.working_sets {
            let before = series.samples.len();
            series
                .samples
                .retain(|s| s.at <= now.saturating_add(FUTURE_SKEW_MS));
            summary.future_samples += before - series.samples.len();
            if before > 0 && series.samples.is_empty() {
                continue;
            }
            let tracked = match self.containers.get_mut(&series.key) {
                Some(t) => t,
                None => {
                    summary.new_containers += 1;
                    self.containers.entry(series.key.clone()).or_default()
                }
            };
            append(tracked, series, self.limits.step_ms, &mut summary);
        }
        for restarts in batch.restarts {
            if let Some(tracked) = self.containers.get_mut(&restarts.key) {
                let mut seen = Vec::new();
                summary.new_segments +=
                    split_at_restarts(tracked, &restarts.samples, self.limits.step_ms, &mut seen);
                summary
                    .restarts
                    .extend(seen.into_iter().map(|at| (restarts.key.clone(), at)));
            }
        }
        for reading in batch.limits {
            if let Some(tracked) = self.containers.get_mut(&reading.key) {
                let known = tracked.limit.and_then(|l| l.bytes);
                tracked.limit = Some(Limit {
                    bytes: reading.bytes,
                    source: reading.source,
                });
                // A limit first known (the last piece of a backfill reads them) or
                // changed: look for kills seen only as drops in what is held.
                if let Some(limit) = reading.bytes.filter(|&l| Some(l) != known) {
                    summary.new_segments += split_at_kills(tracked, limit);
                }
            }
        }
        let oldest = now.saturating_sub(self.limits.lookback_ms);
        let forget_before = now.saturating_sub(self.limits.forget_after_ms);
        let before = self.containers.len();
        self.containers.retain(|_, tracked| {
            for segment in &mut tracked.segments {
                segment.samples.drop_before(oldest);
            }
            tracked.segments.retain(|s| !s.samples.is_empty());
            tracked
                .last_seen()
                .is_some_and(|seen| seen >= forget_before)
        });
        summary.forgotten_containers = before - self.containers.len();
        summary
    }
}

/// A fall from at least this share of the limit...
pub const KILLED_FROM: f64 = 0.97;
/// ...to below this share, from one sample to the next, is a kill: without a restart
/// signal (a saved series, a source without container ids or restart counters) the
/// OOM killer shows only as that drop, and the run after it is a new incarnation.
pub const KILLED_TO: f64 = 0.6;

/// Whether a working set going from `before` to `after` (bytes) fell from the limit
/// to far below it: a kill (see [`KILLED_FROM`]).
fn fell_from_the_limit(before: f64, after: f64, limit_bytes: f64) -> bool {
    before >= KILLED_FROM * limit_bytes && after < KILLED_TO * limit_bytes
}

/// Where `samples` fall from the limit to far below it (see [`KILLED_FROM`]): the
/// index of each first sample after such a fall.
pub fn kill_points(samples: &[Sample], limit_bytes: f64) -> Vec<usize> {
    samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| fell_from_the_limit(w[0].bytes, w[1].bytes, limit_bytes))
        .map(|(i, _)| i + 1)
        .collect()
}

/// Splits segments where the working set fell from the limit to far below it, as a
/// restart would; returns the segments added. Segments already split there (by a new
/// container id or a restart counter) are not split again.
fn split_at_kills(tracked: &mut Tracked, limit_bytes: f64) -> usize {
    let mut added = 0;
    let mut i = 0;
    while i < tracked.segments.len() {
        // With container ids a kill is a new id; a drop without one is not a kill.
        if tracked.segments[i].container_id.is_some() {
            i += 1;
            continue;
        }
        let samples = tracked.segments[i].samples.to_vec();
        if let Some(&cut) = kill_points(&samples, limit_bytes).first() {
            let tail = tracked.segments[i].samples.split_off(cut);
            let began = tail.start().unwrap_or(samples[cut].at);
            let container_id = tracked.segments[i].container_id.clone();
            tracked.long.restarted(began);
            tracked.segments.insert(
                i + 1,
                Segment {
                    container_id,
                    began,
                    samples: tail,
                },
            );
            added += 1;
        }
        i += 1;
    }
    added
}

/// Appends one incarnation's samples. A new container id starts a new segment and cuts
/// the previous one where the new one begins (range queries repeat a dead series' last
/// value for up to five minutes); samples of an older incarnation are ignored.
fn append(
    tracked: &mut Tracked,
    series: WorkingSetSeries,
    step_ms: i64,
    summary: &mut IngestSummary,
) {
    let Some(first) = series.samples.first().map(|s| s.at) else {
        return;
    };
    // A twin of the container's own cAdvisor series, answering alone this window (the
    // source drops twins when both answer): without an id where the current segment
    // has one, or with an id nested under a segment's. Never a new incarnation.
    let is_twin = match (&series.container_id, tracked.current()) {
        (None, Some(current)) => current.container_id.is_some(),
        (Some(id), _) => tracked.segments.iter().any(|s| {
            s.container_id
                .as_deref()
                .is_some_and(|parent| crate::source::is_nested_in(id, parent))
        }),
        _ => false,
    };
    if is_twin {
        summary.twin_series_ignored += 1;
        return;
    }
    // The container's own series after only its twin (without an id) was seen: the
    // same incarnation, now named.
    if let (Some(id), [only]) = (&series.container_id, tracked.segments.as_mut_slice()) {
        if only.container_id.is_none() {
            only.container_id = Some(Arc::from(id.as_str()));
        }
    }
    let current_id_matches = tracked
        .current()
        .is_some_and(|c| c.container_id.as_deref() == series.container_id.as_deref());
    if current_id_matches {
        let current = tracked.segments.last_mut().expect("checked above");
        if series.container_id.is_none() {
            // Without a container id only the restart counter tells a restart; a
            // working set halving from one sample to the next is worth asking it now.
            let mut previous = current.samples.last().map(|s| s.bytes);
            for s in &series.samples {
                if previous.is_some_and(|p| s.bytes < p / 2.0) {
                    summary.sudden_drops += 1;
                    break;
                }
                previous = Some(s.bytes);
            }
        }
        for s in &series.samples {
            tracked.long.push(*s);
        }
        let current = tracked.segments.last_mut().expect("checked above");
        let limit = tracked
            .limit
            .and_then(|l| l.bytes)
            .filter(|_| series.container_id.is_none());
        let killed = limit.is_some_and(|l| {
            let mut previous = current.samples.last().map(|s| s.bytes);
            series.samples.iter().any(|s| {
                let fell = previous.is_some_and(|p| fell_from_the_limit(p, s.bytes, l));
                previous = Some(s.bytes);
                fell
            })
        });
        summary.samples_added += current.samples.extend(series.samples);
        if let (true, Some(limit)) = (killed, limit) {
            summary.new_segments += split_at_kills(tracked, limit);
        }
        return;
    }
    let is_older_incarnation = series.container_id.is_some()
        && tracked
            .segments
            .iter()
            .any(|s| s.container_id.as_deref() == series.container_id.as_deref());
    if is_older_incarnation {
        return;
    }
    if let Some(current) = tracked.segments.last_mut() {
        current.samples.truncate_from(first);
        if current.samples.is_empty() {
            tracked.segments.pop();
        }
    }
    for s in &series.samples {
        tracked.long.push(*s);
    }
    let samples = Samples::from_samples(step_ms, &series.samples);
    summary.samples_added += samples.len();
    summary.new_segments += 1;
    if !tracked.segments.is_empty() {
        summary.new_incarnations += 1;
        tracked.long.restarted(first);
    }
    // Most containers keep one segment for life: no spare room for more.
    tracked.segments.reserve_exact(1);
    tracked.segments.push(Segment {
        container_id: series.container_id.as_deref().map(Arc::from),
        began: first,
        samples,
    });
}

/// Splits segments where the restart counter rose and the working set dropped, for
/// sources that do not label incarnations with a container id. Returns segments added.
fn split_at_restarts(
    tracked: &mut Tracked,
    counts: &[(TimestampMs, f64)],
    step_ms: i64,
    restarts: &mut Vec<TimestampMs>,
) -> usize {
    let mut added = 0;
    for &(at, count) in counts {
        let previous = tracked.last_restart_count;
        if previous.is_some_and(|(seen_at, _)| at <= seen_at) {
            continue;
        }
        tracked.last_restart_count = Some((at, count));
        let Some((prev_at, prev_count)) = previous else {
            continue;
        };
        if count <= prev_count {
            continue;
        }
        restarts.push(at);
        // The counter is certain: what came before was no excursion that came back.
        tracked.long.restarted(at);
        // The restart happened in (prev_at, at]; the drop may show a scrape or two
        // either side of the counter's increase.
        let from = prev_at - 2 * step_ms;
        let to = at + 2 * step_ms;
        let Some(index) = tracked.segments.iter().position(|s| {
            s.start().is_some_and(|start| start <= to) && s.end().is_some_and(|end| end >= from)
        }) else {
            continue;
        };
        let segment = &tracked.segments[index];
        // With container ids a restart is a new id, whenever it shows beside the
        // counter (kube-state-metrics' counter rises 15-40 s after cAdvisor's new id
        // appears, or before it): the counter never splits an incarnation that has one.
        if segment.container_id.is_some() {
            continue;
        }
        // Already split here (a new container id did it).
        if segment
            .start()
            .is_some_and(|start| start > prev_at - step_ms)
        {
            continue;
        }
        let unpacked = segment.samples.to_vec();
        let drop_at = unpacked
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1].at > from && w[1].at <= to && w[1].bytes < w[0].bytes)
            .max_by(|(_, a), (_, b)| {
                (a[0].bytes - a[1].bytes).total_cmp(&(b[0].bytes - b[1].bytes))
            })
            .map(|(i, _)| i + 1);
        if let Some(split) = drop_at {
            let tail = tracked.segments[index].samples.split_off(split);
            tracked.long.restarted(tail.start().unwrap_or(at));
            let container_id = tracked.segments[index].container_id.clone();
            tracked.segments.insert(
                index + 1,
                Segment {
                    container_id,
                    began: tail.start().unwrap_or(at),
                    samples: tail,
                },
            );
            added += 1;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{LimitReading, RestartSeries};

    fn key(container: &str) -> ContainerKey {
        ContainerKey {
            namespace: "prod".into(),
            pod: "p".into(),
            container: container.into(),
            extra: vec![],
        }
    }

    fn samples(from_s: i64, to_s: i64, f: impl Fn(i64) -> f64) -> Vec<Sample> {
        (from_s / 30..=to_s / 30)
            .map(|i| Sample {
                at: i * 30_000,
                bytes: f(i * 30),
            })
            .collect()
    }

    fn store() -> Store {
        Store::new(StoreLimits {
            lookback_ms: 6 * 3_600_000,
            forget_after_ms: 600_000,
            step_ms: 30_000,
        })
    }

    fn ws(container: &str, id: Option<&str>, s: Vec<Sample>) -> WorkingSetSeries {
        WorkingSetSeries {
            key: key(container),
            container_id: id.map(String::from),
            samples: s,
        }
    }

    #[test]
    fn new_container_id_starts_segment_and_cuts_stale_tail() {
        let mut st = store();
        // Old incarnation 0..1800s, with a 5-minute stale tail to 2100s; new one from 1830s.
        let batch = Batch {
            working_sets: vec![
                ws("c", Some("/old"), samples(0, 2100, |t| t as f64)),
                ws("c", Some("/new"), samples(1830, 3600, |_| 5.0)),
            ],
            ..Batch::default()
        };
        let summary = st.ingest(batch, 3_600_000);
        let tracked = st.get(&key("c")).unwrap();
        assert_eq!(tracked.segments.len(), 2);
        assert_eq!(tracked.segments[0].end(), Some(1_800_000));
        assert_eq!(tracked.segments[1].start(), Some(1_830_000));
        assert_eq!(summary.new_segments, 2);
        assert_eq!(summary.new_containers, 1);
    }

    #[test]
    fn polls_append_only_new_samples_and_ignore_older_incarnations() {
        let mut st = store();
        st.ingest(
            Batch {
                working_sets: vec![
                    ws("c", Some("/old"), samples(0, 600, |_| 1.0)),
                    ws("c", Some("/new"), samples(630, 900, |_| 2.0)),
                ],
                ..Batch::default()
            },
            900_000,
        );
        let summary = st.ingest(
            Batch {
                working_sets: vec![
                    ws("c", Some("/old"), samples(900, 960, |_| 1.0)),
                    ws("c", Some("/new"), samples(900, 960, |_| 2.0)),
                ],
                ..Batch::default()
            },
            960_000,
        );
        assert_eq!(summary.samples_added, 2);
        let tracked = st.get(&key("c")).unwrap();
        assert_eq!(tracked.segments.len(), 2);
        assert_eq!(tracked.current().unwrap().end(), Some(960_000));
    }

    #[test]
    fn restart_counter_with_drop_splits_segment_without_ids() {
        let mut st = store();
        // Grows to 3000s, drops to 10 at 3030s; counter goes 0 -> 1 at 3060s.
        let batch = Batch {
            working_sets: vec![ws(
                "c",
                None,
                samples(0, 3600, |t| if t <= 3000 { 100.0 + t as f64 } else { 10.0 }),
            )],
            restarts: vec![RestartSeries {
                key: key("c"),
                samples: (0..=120)
                    .map(|i| (i * 30_000, if i * 30 >= 3060 { 1.0 } else { 0.0 }))
                    .collect(),
            }],
            ..Batch::default()
        };
        st.ingest(batch, 3_600_000);
        let tracked = st.get(&key("c")).unwrap();
        assert_eq!(tracked.segments.len(), 2);
        assert_eq!(tracked.segments[1].start(), Some(3_030_000));
        assert_eq!(tracked.segments[0].end(), Some(3_000_000));
    }

    /// Issue 15: a twin answering alone in a poll (the kubelet resource endpoint's
    /// series without `id`, or a child cgroup's) never splits the history.
    #[test]
    fn twins_answering_alone_do_not_split_the_history() {
        let mut st = store();
        let own = "/kubepods/burstable/pod1/abc";
        st.ingest(
            Batch {
                working_sets: vec![ws("c", Some(own), samples(0, 600, |_| 10.0))],
                ..Batch::default()
            },
            600_000,
        );
        let child = format!("{own}/docker/x");
        let summary = st.ingest(
            Batch {
                working_sets: vec![
                    ws("c", None, samples(630, 660, |_| 11.0)),
                    ws("c", Some(&child), samples(630, 660, |_| 1.0)),
                ],
                ..Batch::default()
            },
            660_000,
        );
        assert_eq!(summary.twin_series_ignored, 2);
        st.ingest(
            Batch {
                working_sets: vec![ws("c", Some(own), samples(630, 690, |_| 10.0))],
                ..Batch::default()
            },
            690_000,
        );
        let tracked = st.get(&key("c")).unwrap();
        assert_eq!(tracked.segments.len(), 1);
        assert_eq!(tracked.current().unwrap().end(), Some(690_000));
        // Seen first without an id (only the twin answered), then named: one segment.
        st.ingest(
            Batch {
                working_sets: vec![ws("d", None, samples(0, 300, |_| 5.0))],
                ..Batch::default()
            },
            300_000,
        );
        st.ingest(
            Batch {
                working_sets: vec![ws("d", Some("/d1"), samples(330, 600, |_| 5.0))],
                ..Batch::default()
            },
            600_000,
        );
        let tracked = st.get(&key("d")).unwrap();
        assert_eq!(tracked.segments.len(), 1);
        assert_eq!(tracked.segments[0].container_id.as_deref(), Some("/d1"));
    }

    /// Issue 15: kube-state-metrics' counter rises 15-40 s after cAdvisor's new id
    /// appears. The counter must not cut a fragment off the old incarnation, and the
    /// kill is judged on the old incarnation's last sample, whichever came first.
    #[test]
    fn a_kill_is_judged_on_the_incarnation_it_ended_whatever_the_order() {
        const LIMIT: f64 = 512.0;
        for (new_id_at, counter_at) in [(3030, 3060), (3030, 3030), (3060, 3035)] {
            let mut st = store();
            // Leaks to 508, jitters there (a drop the counter could take for the
            // restart) and is killed at ~3000 s; the new run starts low.
            let old = samples(0, 3000, |t| match t {
                ..2700 => 100.0 + 408.0 * t as f64 / 2700.0,
                _ => 508.0 - (t / 30 % 2) as f64,
            });
            let new = samples(new_id_at, 3600, |_| 20.0);
            let counter: Vec<(i64, f64)> = (0..=120)
                .map(|i| (i * 30_000 + 5_000, f64::from(i * 30 + 5 >= counter_at)))
                .collect();
            st.ingest(
                Batch {
                    working_sets: vec![ws("c", Some("/old"), old), ws("c", Some("/new"), new)],
                    restarts: vec![RestartSeries {
                        key: key("c"),
                        samples: counter,
                    }],
                    limits: vec![LimitReading {
                        key: key("c"),
                        bytes: Some(LIMIT),
                        source: LimitSource::KubeStateMetrics,
                    }],
                    ..Batch::default()
                },
                3_600_000,
            );
            let tracked = st.get(&key("c")).unwrap();
            assert_eq!(tracked.segments.len(), 2, "{new_id_at}/{counter_at}");
            let restart_at = ((counter_at - 5 + 29) / 30 * 30 + 5) * 1000;
            let judged = tracked.sample_at_kill(restart_at, 120_000).unwrap();
            assert!(judged.bytes > 500.0, "{new_id_at}/{counter_at}: {judged:?}");
            assert!(
                tracked.previous_run(30_000, Some(LIMIT)).is_some(),
                "{new_id_at}/{counter_at}: the run before informs the next"
            );
        }
    }

    #[test]
    fn a_sharp_drop_without_container_ids_is_flagged() {
        let mut st = store();
        // Pages held from `from` to `to` (seconds), without container ids.
        let mut hold = |from: i64, to: i64, pages: f64| {
            st.ingest(
                Batch {
                    working_sets: vec![ws("c", None, samples(from, to, |_| pages * 4096.0))],
                    ..Batch::default()
                },
                to * 1000,
            )
        };
        hold(0, 600, 100.0);
        assert_eq!(hold(630, 660, 90.0).sudden_drops, 0);
        assert_eq!(hold(690, 720, 10.0).sudden_drops, 1);
    }

    /// Issue 14: a restart loop in a saved series (no restart counter) drops from the
    /// limit to its start; read as a release, the runs after the first were never
    /// alerted. A fall from 97% of the limit to under 60% is a kill: a new segment,
    /// and the long tier knows it restarted.
    #[test]
    fn samples_from_the_future_are_dropped_and_counted() {
        let mut store = Store::new(StoreLimits {
            lookback_ms: 6 * 3_600_000,
            forget_after_ms: 600_000,
            step_ms: 30_000,
        });
        let key = ContainerKey {
            namespace: "n".into(),
            pod: "p".into(),
            container: "c".into(),
            extra: Vec::new(),
        };
        let now = 10_000_000;
        let series = |samples: Vec<Sample>| Batch {
            working_sets: vec![WorkingSetSeries {
                key: key.clone(),
                container_id: None,
                samples,
            }],
            ..Batch::default()
        };
        let at = |t: i64| Sample { at: t, bytes: 1e6 };
        // One sample three hours ahead among present ones.
        let summary = store.ingest(
            series(vec![at(now - 60_000), at(now + 3 * 3_600_000), at(now)]),
            now,
        );
        assert_eq!(summary.future_samples, 1);
        let held = store.get(&key).unwrap().current().unwrap().samples.to_vec();
        assert_eq!(
            held.last().unwrap().at,
            now,
            "the segment's end stays at the present"
        );
        // The next poll's samples are taken, not ignored behind the future one.
        let summary = store.ingest(series(vec![at(now + 30_000)]), now + 30_000);
        assert_eq!(summary.future_samples, 0);
        assert_eq!(summary.samples_added, 1);
    }

    #[test]
    fn a_fall_from_the_limit_is_a_kill_without_a_restart_signal() {
        let mut st = store();
        // 100 -> 990 of 1000 over 50 minutes, then 100 again, twice.
        let run = |t: i64| 100.0 + (t % 3000) as f64 * 890.0 / 2970.0;
        let limit = |bytes| LimitReading {
            key: key("c"),
            bytes: Some(bytes),
            source: LimitSource::KubeStateMetrics,
        };
        st.ingest(
            Batch {
                working_sets: vec![ws("c", None, samples(0, 5970, run))],
                limits: vec![limit(1000.0)],
                ..Batch::default()
            },
            5_970_000,
        );
        let tracked = st.get(&key("c")).unwrap();
        assert_eq!(
            tracked.segments.len(),
            2,
            "split where the limit is first known"
        );
        assert_eq!(tracked.segments[1].began, 3_000_000);
        // Steady polls: the next fall splits as it arrives.
        st.ingest(
            Batch {
                working_sets: vec![ws("c", None, samples(6000, 6300, run))],
                ..Batch::default()
            },
            6_300_000,
        );
        assert_eq!(st.get(&key("c")).unwrap().segments.len(), 3);
        // A fall from 90% is not one; nor is a fall to 70%.
        let mut st = store();
        st.ingest(
            Batch {
                working_sets: vec![ws(
                    "c",
                    None,
                    samples(0, 5970, |t| if t % 3000 < 2970 { 900.0 } else { 100.0 }),
                )],
                limits: vec![limit(1000.0)],
                ..Batch::default()
            },
            5_970_000,
        );
        assert_eq!(st.get(&key("c")).unwrap().segments.len(), 1);
        // With container ids a kill is a new id: the same fall under one id is not.
        let mut st = store();
        st.ingest(
            Batch {
                working_sets: vec![ws("c", Some("a"), samples(0, 5970, run))],
                limits: vec![limit(1000.0)],
                ..Batch::default()
            },
            5_970_000,
        );
        assert_eq!(st.get(&key("c")).unwrap().segments.len(), 1);
    }

    #[test]
    fn restart_counter_without_drop_does_not_split() {
        let mut st = store();
        let batch = Batch {
            working_sets: vec![ws("c", None, samples(0, 3600, |t| t as f64))],
            restarts: vec![RestartSeries {
                key: key("c"),
                samples: vec![(0, 0.0), (1_800_000, 1.0)],
            }],
            ..Batch::default()
        };
        st.ingest(batch, 3_600_000);
        assert_eq!(st.get(&key("c")).unwrap().segments.len(), 1);
    }

    #[test]
    fn lookback_trims_and_absent_containers_are_forgotten() {
        let mut st = store();
        st.ingest(
            Batch {
                working_sets: vec![
                    ws("old", None, samples(0, 600, |_| 1.0)),
                    ws("live", None, samples(0, 7 * 3600, |_| 1.0)),
                ],
                limits: vec![LimitReading {
                    key: key("live"),
                    bytes: Some(100.0),
                    source: LimitSource::Cadvisor,
                }],
                ..Batch::default()
            },
            7 * 3_600_000,
        );
        assert!(st.get(&key("old")).is_none());
        let live = st.get(&key("live")).unwrap();
        assert_eq!(live.current().unwrap().start(), Some(3_600_000));
        assert_eq!(live.sample_count(), 6 * 120 + 1);
        assert_eq!(live.limit.unwrap().bytes, Some(100.0));
    }
}
