//! The one loop: fetch → store → evaluate.
//!
//! [`Pipeline`] owns the store and a source. Each [`Pipeline::poll`] asks the source for
//! what is new since the last poll (the whole lookback the first time, in pieces),
//! folds it into the store, and notes the restarts that were OOM kills;
//! [`Pipeline::evaluate`] forecasts every container as of `now` and folds each
//! forecast into its alert state. Callers pass `now`, so the same pipeline serves the
//! daemon (wall clock), `check --at` (a past instant) and tests. Explanations and
//! OOM-kill attribution come after, from `explain`; charts from `plot`.

use std::borrow::Cow;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::model::{self, AlertParams, ForecastParams, SegmentFacts, Trend};
use crate::report::{sort_by_urgency, ContainerReport};
use crate::source::{Batch, ContainerKey, Source, SourceError, Window};
use crate::store::{Followed, IngestSummary, Store, StoreLimits};
use crate::vocab::{TimestampMs, DAY_MS, HOUR_MS};

/// What one poll did.
#[derive(Debug, Clone, PartialEq)]
pub struct PollSummary {
    pub window: Option<Window>,
    /// What this poll stored, with what the stored pieces of a failed poll before it
    /// found (their samples lie before `window`).
    pub ingest: IngestSummary,
    pub containers: usize,
    /// Restarts in this poll that were OOM kills: the container Kubernetes reported,
    /// and when it restarted. `explain::oom` attributes them.
    pub oom_restarts: Vec<(ContainerKey, TimestampMs)>,
    /// This poll was the backfill: its kills are history from before headroom
    /// started, not news.
    pub backfill: bool,
}

/// The most samples one query of a fetch asks for: a backfill of more is split in
/// time. A million samples is about 25 MB of JSON, far below Prometheus' default
/// `--query.max-samples` (50M) and its response limits, and bounds what headroom
/// holds while reading.
pub const SAMPLES_PER_FETCH: usize = 1_000_000;
/// The first piece of a backfill, before the number of containers is known: 10 min.
const FIRST_BACKFILL_STEPS: i64 = 20;
/// A day (ms): the most the long tier's backfill reads at once.
/// The raw samples one read of the long tier's backfill may touch in Prometheus, well
/// under its default `--query.max-samples` (50M): a day a read up to ~3,000
/// containers, an hour a read at 100,000.
const LONG_SAMPLES_PER_READ: i64 = 10_000_000;

pub struct Pipeline<S> {
    source: S,
    store: Store,
    step: Duration,
    lookback: Duration,
    min_limit_bytes: f64,
    params: ForecastParams,
    alert_params: AlertParams,
    /// The end of the last window fetched; `None` until the first (backfill) poll.
    fetched_until: Option<TimestampMs>,
    /// Whether a whole window has been fetched: until then, kills found are history
    /// from before headroom started.
    caught_up: bool,
    /// When limits were last read, and how often to read them.
    limits_read_at: Option<TimestampMs>,
    limits_interval: Duration,
    /// The end of the last window restart counters and OOM reasons were read for,
    /// how often to read them, and whether a new segment asks for them sooner.
    restarts_until: Option<TimestampMs>,
    restarts_interval: Duration,
    restarts_due: bool,
    /// What the stored pieces of a poll that then failed found (restarts, OOM
    /// reasons), carried into the next poll: the store has taken those restarts in,
    /// so no later poll would see them again, and their OOM kills would be lost.
    carried: Option<(IngestSummary, OomFlags)>,
    /// Samples one query may return (see [`SAMPLES_PER_FETCH`]).
    samples_per_fetch: usize,
    /// Working-set series the last answer carried, before a pod-mode shard kept its
    /// own: pieces are sized by it, not by this shard's containers alone.
    series_per_answer: usize,
    /// How often a backfill in pieces logs its progress.
    progress_every: Duration,
    /// The spacing of evaluations (ms): the poll interval, or the store's resolution
    /// when that is coarser. A kept fit is news-checked against one sample per step.
    evaluation_step_ms: i64,
    /// The long tier's backfill: how far back to read (ms), and where it has read
    /// back to (`None` until the first poll set where the fine tier begins).
    long_backfill_ms: i64,
    long_until: Option<TimestampMs>,
    long_from: TimestampMs,
}

/// OOM-termination readings by container: (time, 1 while the last one was an OOM kill).
type OomFlags = FxHashMap<ContainerKey, Vec<(TimestampMs, f64)>>;

impl<S: Source> Pipeline<S> {
    pub fn new(source: S, config: &Config) -> Self {
        let step = config.store.resolution;
        Pipeline {
            source,
            store: Store::new(StoreLimits {
                lookback_ms: config.store.lookback.as_millis() as i64,
                forget_after_ms: config.store.forget_after.as_millis() as i64,
                step_ms: step.as_millis() as i64,
            }),
            step,
            lookback: config.store.lookback,
            min_limit_bytes: config.forecast.min_limit_bytes as f64,
            params: config.forecast_params(),
            alert_params: config.alert_params(),
            fetched_until: None,
            caught_up: false,
            carried: None,
            samples_per_fetch: SAMPLES_PER_FETCH,
            series_per_answer: 0,
            progress_every: Duration::from_secs(5),
            evaluation_step_ms: config
                .poll_interval
                .max(config.store.resolution)
                .as_millis() as i64,
            limits_read_at: None,
            limits_interval: config.limits_interval,
            restarts_until: None,
            restarts_interval: config.restarts_interval,
            restarts_due: false,
            long_backfill_ms: config.store.long_backfill.as_millis() as i64,
            long_until: None,
            long_from: 0,
        }
    }

    /// Takes a reloaded configuration: a new `source` (its URL, credentials,
    /// queries), the forecast and alert settings, and how often limits and restarts
    /// are read, while the store (every container's history, both tiers) and each
    /// container's alert state carry on. What the store was built with — its
    /// resolution, lookback and forgetting — stays as it was until a restart (the
    /// caller says which settings wait for one).
    pub fn reconfigure(&mut self, source: S, config: &Config) {
        self.source = source;
        self.min_limit_bytes = config.forecast.min_limit_bytes as f64;
        self.params = config.forecast_params();
        self.alert_params = config.alert_params();
        self.evaluation_step_ms = config.poll_interval.max(self.step).as_millis() as i64;
        self.limits_interval = config.limits_interval;
        self.restarts_interval = config.restarts_interval;
        // A new source may see other limits: read them at the next poll.
        self.limits_read_at = None;
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    fn step_ms(&self) -> i64 {
        (self.step.as_millis() as i64).max(1)
    }

    /// The window the next poll at `now` would fetch: the whole lookback first, then
    /// only what is new. Bounds are aligned to the step so that consecutive polls see
    /// the same sample times. `None` when nothing new is due yet.
    pub fn next_window(&self, now: TimestampMs) -> Option<Window> {
        let step_ms = (self.step.as_millis() as i64).max(1);
        let end = now - now.rem_euclid(step_ms);
        let start = match self.fetched_until {
            Some(until) => until + step_ms,
            None => {
                let from = end - self.lookback.as_millis() as i64;
                from - from.rem_euclid(step_ms)
            }
        };
        let limits = self
            .limits_read_at
            .is_none_or(|t| end - t >= self.limits_interval.as_millis() as i64);
        let restarts_from = match self.restarts_until {
            None => Some(start),
            Some(until)
                if self.restarts_due
                    || end - until >= self.restarts_interval.as_millis() as i64 =>
            {
                Some((until + step_ms).min(start))
            }
            Some(_) => None,
        };
        (start <= end).then_some(Window {
            start,
            end,
            step: self.step,
            limits,
            restarts_from,
        })
    }

    /// The first fetch of a window: at most [`SAMPLES_PER_FETCH`] samples per query
    /// (by the number of containers known so far; the first piece of a backfill is
    /// short, to learn it), the whole window when that fits. Restart counters start
    /// where the window says (they may reach back further than its working set, and
    /// are few); limits are read with the piece that ends the window.
    fn next_piece(&self, window: Window) -> Window {
        let step_ms = (window.step.as_millis() as i64).max(1);
        let steps = if self.store.is_empty() && self.series_per_answer == 0 {
            FIRST_BACKFILL_STEPS
        } else {
            let series = self.store.len().max(self.series_per_answer).max(1);
            (self.samples_per_fetch / series).clamp(1, 1 << 20) as i64
        };
        let end = (window.start + (steps - 1) * step_ms).min(window.end);
        Window {
            end,
            limits: window.limits && end == window.end,
            ..window
        }
    }

    /// `now`, or the newest sample's time when that is past `now` by no more than the
    /// store's snapping (a tenth of a step, see `store::Samples`): a snapped time must
    /// not hide the newest sample. Samples further ahead (`check --at` replaying the
    /// past) are left to the model, which ignores them.
    fn not_before_snapped(&self, now: TimestampMs, newest: TimestampMs) -> TimestampMs {
        let tenth = self.step.as_millis() as i64 / 10;
        if newest > now && newest - now <= tenth {
            newest
        } else {
            now
        }
    }

    /// Fetches what is new as of `now` and folds it into the store.
    pub async fn poll(&mut self, now: TimestampMs) -> Result<PollSummary, SourceError> {
        let Some(window) = self.next_window(now) else {
            return Ok(PollSummary {
                window: None,
                ingest: IngestSummary::default(),
                containers: self.store.len(),
                oom_restarts: Vec::new(),
                backfill: false,
            });
        };
        let backfill = !self.caught_up;
        let (ingest, oom_flags) = self.fetch_in_pieces(window, backfill).await?;
        self.caught_up = true;
        if backfill {
            // The long tier is read back from where the fine tier begins, a day a
            // poll from the next poll on, so the first poll (and readiness) waits
            // for nothing more.
            let begins = window.start - window.start.rem_euclid(HOUR_MS);
            self.long_until = Some(begins);
            self.long_from = begins - self.long_backfill_ms;
        } else {
            self.read_long_history().await;
        }
        self.plan_next_reads(window, &ingest);
        let oom_restarts = ingest.oom_restarts(&oom_flags, self.step_ms());
        Ok(PollSummary {
            window: Some(window),
            ingest,
            containers: self.store.len(),
            oom_restarts,
            backfill,
        })
    }

    /// Fetches and stores `window` piece by piece, so neither Prometheus nor headroom
    /// holds a whole backfill (or a catch-up after an outage) at once; what is left is
    /// planned again after each piece, with the containers known. What the pieces
    /// stored is carried into the next poll when a later piece fails.
    async fn fetch_in_pieces(
        &mut self,
        window: Window,
        backfill: bool,
    ) -> Result<(IngestSummary, OomFlags), SourceError> {
        let (mut ingest, mut oom_flags) = self.carried.take().unwrap_or_default();
        let step_ms = self.step_ms();
        let mut remaining = Some(window);
        let mut progress_at = std::time::Instant::now();
        while let Some(rest) = remaining.take() {
            let piece = self.next_piece(rest);
            let batch = match self.source.fetch(piece).await {
                Ok(batch) => batch,
                Err(e) => {
                    self.carried = Some((ingest, oom_flags));
                    // The pieces left unread held restart counters too.
                    self.restarts_due |= piece.restarts_from.is_some();
                    return Err(e);
                }
            };
            if batch.series_without_identity > 0 {
                tracing::debug!(
                    series = batch.series_without_identity,
                    "ignored working-set series without namespace, pod or container"
                );
            }
            self.series_per_answer = batch.series_fetched;
            for (key, flags) in batch_oom(&batch) {
                oom_flags.entry(key).or_insert_with(Vec::new).extend(flags);
            }
            let piece_ingest = self.store.ingest(batch, piece.end);
            if piece_ingest.twin_series + piece_ingest.twin_series_ignored > 0 {
                tracing::debug!(
                    dropped = piece_ingest.twin_series,
                    ignored = piece_ingest.twin_series_ignored,
                    "working-set twins left out: each container's own cAdvisor series (with its cgroup id) is the one read"
                );
            }
            if piece_ingest.future_samples > 0 {
                tracing::warn!(
                    samples = piece_ingest.future_samples,
                    "dropped samples timestamped more than 5 minutes ahead of the window fetched (a clock gone wrong, or a broken source)"
                );
            }
            ingest.absorb(piece_ingest);
            if piece.end < window.end && progress_at.elapsed() >= self.progress_every {
                progress_at = std::time::Instant::now();
                self.log_progress(window, piece, &ingest, backfill);
            }
            self.fetched_until = Some(piece.end);
            if piece.restarts_from.is_some() {
                self.restarts_until = Some(piece.end);
            }
            if piece.limits {
                self.limits_read_at = Some(piece.end);
            }
            let next = piece.end + step_ms;
            if next <= window.end {
                remaining = Some(Window {
                    start: next,
                    restarts_from: window.restarts_from.map(|_| next),
                    ..window
                });
            }
        }
        Ok((ingest, oom_flags))
    }

    /// Reads the next (older) piece of the long tier's backfill — a day, or fewer
    /// hours for a large fleet — if any is left. Best effort: a failure is logged and
    /// the same piece asked again at the next poll.
    async fn read_long_history(&mut self) {
        if let Err(e) = self.read_long_piece().await {
            tracing::warn!(
                error = %format!("{:#}", anyhow::Error::from(e)),
                "cannot read the long history back; trying again at the next poll"
            );
        }
    }

    /// Reads the whole long tier's backfill at once, piece after piece: what
    /// `check` holds, as a daemon would once it has read it.
    pub async fn read_all_long_history(&mut self) -> Result<(), SourceError> {
        while !self.long_history_read() && self.long_until.is_some() {
            self.read_long_piece().await?;
        }
        Ok(())
    }

    async fn read_long_piece(&mut self) -> Result<(), SourceError> {
        let Some(until) = self.long_until.filter(|&u| u > self.long_from) else {
            return Ok(());
        };
        // A piece of hours sized by the fleet, as the fine backfill's are: an hour of
        // 30 s samples of every container touches 120 a container in Prometheus.
        let containers = self.store.len().max(1) as i64;
        let piece_hours = (LONG_SAMPLES_PER_READ / (containers * 120)).clamp(1, 24);
        let from = (until - piece_hours * HOUR_MS).max(self.long_from);
        let series = self.source.long_history(from, until).await?;
        let took = self.store.backfill_long(&series);
        self.long_until = Some(from);
        let (done, total) = self.long_history_days();
        tracing::info!(
            containers = took,
            "long history: {done} of {total} days read back"
        );
        Ok(())
    }

    /// The widest sample spacing (s) among the containers' current segments, at most
    /// 15 minutes: how long a condition needs to show over `pending_samples`.
    pub fn widest_spacing_seconds(&self) -> f64 {
        self.store
            .iter()
            .filter_map(|(_, t)| t.current().map(|s| s.samples.spacing_seconds()))
            .fold(0.0, f64::max)
            .min(900.0)
    }

    /// Days of the long tier's backfill read back so far, and the days it reads in
    /// all (`store.long_backfill`).
    pub fn long_history_days(&self) -> (f64, f64) {
        let total = self.long_backfill_ms as f64 / DAY_MS as f64;
        let read = self.long_until.map_or(0.0, |until| {
            (self.long_backfill_ms - (until - self.long_from).max(0)) as f64 / DAY_MS as f64
        });
        // To a tenth of a day: pieces of an hour would read 0.041666….
        let tenth = |d: f64| (d * 10.0).round() / 10.0;
        (tenth(read.clamp(0.0, total)), tenth(total))
    }

    /// Whether the long tier's backfill has read all it will.
    pub fn long_history_read(&self) -> bool {
        self.long_until.is_some_and(|u| u <= self.long_from)
    }

    /// A long backfill or catch-up says how far it has come.
    fn log_progress(&self, window: Window, piece: Window, ingest: &IngestSummary, backfill: bool) {
        let step_ms = self.step_ms();
        let span = (window.end - window.start + step_ms) as f64;
        let done = piece.end - window.start + step_ms;
        let percent = (done as f64 / span * 100.0).floor();
        tracing::info!(
            containers = self.store.len(),
            samples = ingest.samples_added,
            percent,
            "{} {percent:.0}% done: {} of {} fetched",
            if backfill { "backfill" } else { "catch-up" },
            crate::units::format_duration_short((done / 1000) as f64),
            crate::units::format_duration_short(span / 1000.0),
        );
    }

    /// After a window: new containers have their limits read at the next poll, not
    /// minutes later; a container that restarted (a new container id), or one
    /// without an id that fell sharply, has its restart counters and reasons read at
    /// the next poll.
    fn plan_next_reads(&mut self, window: Window, ingest: &IngestSummary) {
        if !window.limits && ingest.new_containers > 0 {
            self.limits_read_at = None;
        }
        if window.restarts_from.is_some() {
            self.restarts_due = false;
        } else if ingest.new_incarnations > 0 || ingest.sudden_drops > 0 {
            self.restarts_due = true;
        }
    }

    /// Forecasts every container as of `now` and folds each forecast into its alert
    /// state, with a report for every one: what `check` and the replay print. Most
    /// urgent first. Explanations, the sidecar flag among them, are added after by
    /// `explain::Explainer`.
    pub fn evaluate(&mut self, now: TimestampMs) -> Vec<ContainerReport> {
        self.evaluate_reporting(now, Reported::Every).reports
    }

    /// Forecasts every container as of `now` and folds each forecast into its alert
    /// state, as [`Pipeline::evaluate`] does, but reports only what `reported`
    /// asks for: what the daemon does every poll. At 100,000 containers a report for
    /// each is 45 MB a poll that nobody reads; the rest are made when asked for
    /// ([`Pipeline::reports_of`]).
    pub fn evaluate_reporting(&mut self, now: TimestampMs, reported: Reported) -> Evaluated {
        let mut reports = Vec::with_capacity(match reported {
            Reported::Every => self.store.len(),
            Reported::Worth { .. } => 0,
        });
        // Containers not worth a report, the highest use first, while there is room
        // among the most urgent (a small fleet is reported whole).
        let mut quiet: std::collections::BinaryHeap<Quiet> = std::collections::BinaryHeap::new();
        let mut forecast_count = 0;
        for (key, tracked) in self.store.iter() {
            let Some(segment) = tracked.current() else {
                continue;
            };
            let Some(latest) = segment.samples.last() else {
                continue;
            };
            let now = self.not_before_snapped(now, latest.at);
            let limit = self.usable_limit(tracked);
            let knobs = (self.step, self.evaluation_step_ms, &self.params);
            let (forecast, was, alert) = {
                let followed = &mut *tracked.follow.borrow_mut();
                let Some(forecast) = forecast_of(followed, tracked, limit, now, knobs) else {
                    continue;
                };
                let context = model::Context {
                    limit_bytes: limit,
                    sample_spacing_seconds: segment.samples.spacing_seconds(),
                    after_running_out: tracked.ran_out_before(limit),
                };
                let was = followed.alert.firing();
                let alert = followed.alert.update(
                    &forecast,
                    context,
                    &self.params,
                    &self.alert_params,
                    now,
                );
                (forecast, was, alert)
            };
            forecast_count += 1;
            let use_ratio = limit.map_or(-1.0, |l| forecast.working_set_bytes / l);
            let worth = match reported {
                Reported::Every => true,
                Reported::Worth { min_use, .. } => {
                    alert.is_some()
                        || was.is_some()
                        || forecast.severity != model::Severity::None
                        || use_ratio >= min_use
                }
            };
            if worth {
                reports.push(self.report(key, tracked, &forecast, now, alert));
            } else if let Reported::Worth { most_urgent, .. } = reported {
                // A heap of the most urgent, its top the least (as
                // `sort_by_urgency` orders them), each with what its report is
                // made of.
                let entry = Quiet {
                    eta_seconds: forecast.time_to_limit.map_or(f64::INFINITY, |t| t.seconds),
                    negated_use: if use_ratio.is_nan() { 1.0 } else { -use_ratio },
                    key,
                    tracked,
                    forecast,
                    now,
                };
                if quiet.len() < most_urgent {
                    quiet.push(entry);
                } else if quiet.peek().is_some_and(|top| entry < *top) {
                    quiet.pop();
                    quiet.push(entry);
                }
            }
        }
        if let Reported::Worth { most_urgent, .. } = reported {
            // Beside those worth it: the most urgent of the others (as
            // `sort_by_urgency` orders them: the nearest time to limit, then the
            // most used), to fill the places the status page shows, and the rest
            // of every pod reported (a pod's containers are read side by side: a
            // pod is reported whole or not at all).
            let room = most_urgent.saturating_sub(reports.len());
            for q in quiet.into_sorted_vec().into_iter().take(room) {
                reports.push(self.report(q.key, q.tracked, &q.forecast, q.now, None));
            }
            if !reports.is_empty() {
                let reported_keys: rustc_hash::FxHashSet<ContainerKey> =
                    reports.iter().map(ContainerReport::key).collect();
                let pods: rustc_hash::FxHashSet<PodOf> = reported_keys.iter().map(pod_of).collect();
                reports.extend(self.reports_of(now, |k| {
                    pods.contains(&pod_of(k)) && !reported_keys.contains(k)
                }));
            }
        }
        sort_by_urgency(&mut reports);
        Evaluated {
            reports,
            containers: forecast_count,
        }
    }

    /// Reports of the containers `selected` picks, as of the evaluation at `now`
    /// (the last one: nothing is folded into their alert states, which say what
    /// was sent). Most urgent first. What the API asks for beyond what a poll reports.
    pub fn reports_of(
        &mut self,
        now: TimestampMs,
        selected: impl Fn(&ContainerKey) -> bool,
    ) -> Vec<ContainerReport> {
        let mut reports = Vec::new();
        for (key, tracked) in self.store.iter() {
            if !selected(key) {
                continue;
            }
            let Some(latest) = tracked.current().and_then(|s| s.samples.last()) else {
                continue;
            };
            let now = self.not_before_snapped(now, latest.at);
            let limit = self.usable_limit(tracked);
            let knobs = (self.step, self.evaluation_step_ms, &self.params);
            let (forecast, alert) = {
                let followed = &mut *tracked.follow.borrow_mut();
                if !followed.evaluated() {
                    continue;
                }
                let Some(forecast) = forecast_of(followed, tracked, limit, now, knobs) else {
                    continue;
                };
                (forecast, followed.alert.firing())
            };
            reports.push(self.report(key, tracked, &forecast, now, alert));
        }
        sort_by_urgency(&mut reports);
        reports
    }

    /// Replays the evaluations of the `warmup` before `at` (one per step) so that
    /// alerts carry their pending periods, as in a daemon that had been running: what
    /// `check` prints.
    pub fn evaluate_with_warmup(
        &mut self,
        at: TimestampMs,
        warmup: Duration,
    ) -> Vec<ContainerReport> {
        let step = (self.step.as_millis() as i64).max(1);
        let mut t = at - warmup.as_millis() as i64;
        while t < at {
            self.evaluate(t);
            t += step;
        }
        self.evaluate(at)
    }

    /// Fits run and evaluations answered from a kept fit so far, over all containers
    /// followed now (see `model::reuse`): what benchmarks print.
    pub fn fit_counts(&self) -> (u64, u64) {
        self.store.iter().fold((0, 0), |(f, r), (_, t)| {
            let memo = &t.follow.borrow().memo;
            (f + memo.fits, r + memo.reuses)
        })
    }

    /// The trend last fitted for a container, for its chart.
    pub fn trend(&self, key: &ContainerKey) -> Option<Trend> {
        self.store
            .get(key)
            .and_then(|t| t.follow.borrow().memo.trend())
    }

    /// A container's limit, none when it is below `forecast.min_limit`.
    fn usable_limit(&self, tracked: &crate::store::Tracked) -> Option<f64> {
        tracked
            .limit
            .and_then(|l| l.bytes)
            .filter(|&b| b >= self.min_limit_bytes)
    }

    /// A container's report of `forecast`, with the alert as sent.
    fn report(
        &self,
        key: &ContainerKey,
        tracked: &crate::store::Tracked,
        forecast: &model::Forecast,
        now: TimestampMs,
        alert: Option<model::Severity>,
    ) -> ContainerReport {
        let mut report = ContainerReport::new(key, tracked, forecast, now);
        self.drop_nonsense_limit(&mut report);
        report.alert = alert;
        report
    }

    /// A limit below `forecast.min_limit` is treated as none, in reports too.
    fn drop_nonsense_limit(&self, report: &mut ContainerReport) {
        if report.limit_bytes.is_some_and(|l| l < self.min_limit_bytes) {
            report.limit_bytes = None;
            report.use_ratio = None;
        }
    }
}

/// A pod: its namespace, name and extra identity labels.
type PodOf<'k> = (&'k str, &'k str, &'k [(String, String)]);

/// The pod a container is in.
fn pod_of(key: &ContainerKey) -> PodOf<'_> {
    (
        key.namespace.as_str(),
        key.pod.as_str(),
        key.extra.as_slice(),
    )
}

/// Which containers a poll reports (see [`Pipeline::evaluate_reporting`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reported {
    /// Every container.
    Every,
    /// Those worth it: alerting now or before this evaluation, with a severity of
    /// their own, or using `min_use` of their limit or more; the most urgent of the
    /// others while fewer than `most_urgent` are reported; and the rest of every pod
    /// reported.
    Worth { min_use: f64, most_urgent: usize },
}

/// What a poll's evaluation reported, of how many containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// Most urgent first.
    pub reports: Vec<ContainerReport>,
    /// Containers tracked.
    pub containers: usize,
}

/// A container not worth a report, with what its report is made of, ordered as
/// `sort_by_urgency` orders reports without alert or severity (the time to limit,
/// then the share of the limit in use, highest first, then the key): the heap's
/// top is the least urgent.
struct Quiet<'a> {
    eta_seconds: f64,
    negated_use: f64,
    key: &'a ContainerKey,
    tracked: &'a crate::store::Tracked,
    forecast: model::Forecast,
    now: TimestampMs,
}

impl PartialEq for Quiet<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Quiet<'_> {}
impl PartialOrd for Quiet<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quiet<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.eta_seconds
            .total_cmp(&other.eta_seconds)
            .then_with(|| self.negated_use.total_cmp(&other.negated_use))
            .then_with(|| {
                (&self.key.namespace, &self.key.pod, &self.key.container).cmp(&(
                    &other.key.namespace,
                    &other.key.pod,
                    &other.key.container,
                ))
            })
    }
}

/// One container's forecast as of `now`: its kept fit, or a new one, and the long
/// tier's word on it.
/// `knobs`: the store's step, the spacing of evaluations (ms) and the forecast's
/// parameters.
fn forecast_of(
    followed: &mut Followed,
    tracked: &crate::store::Tracked,
    limit: Option<f64>,
    now: TimestampMs,
    knobs: (Duration, i64, &ForecastParams),
) -> Option<model::Forecast> {
    let (step, evaluation_step_ms, params) = knobs;
    let segment = tracked.current()?;
    let latest = segment.samples.last()?;
    let facts = SegmentFacts {
        start: segment.began,
        latest,
        step_ms: evaluation_step_ms,
        daily: tracked.long.record().daily,
    };
    let mut forecast = followed.memo.forecast(
        facts,
        || Cow::Owned(segment.samples.to_vec()),
        || {
            tracked
                .previous_run(step.as_millis() as i64, limit)
                .map(Cow::Owned)
        },
        limit,
        now,
        params,
    );
    // The long tier's word: growth like the excursions the container came back
    // from is its known behaviour, not a leak; slow growth over days is read off
    // its days; a run on the course of one that ran out runs out as long after its
    // start.
    tracked.long.apply(&mut forecast, limit, params, now);
    Some(forecast)
}

/// The OOM-termination flags of a batch by container.
fn batch_oom(batch: &Batch) -> OomFlags {
    batch
        .oom_terminations
        .iter()
        .map(|s| (s.key.clone(), s.samples.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
