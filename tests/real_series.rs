//! Real memory series from `../shared/data/real` (see that folder's README for the
//! sources), replayed as a 30-second scrape would see them:
//! - `gcviewer/`: JVM GC logs that users sent to the GCViewer project, on a stretched
//!   time axis for the logs that last seconds. Sawtooth, saturating growth and long
//!   steady runs must stay quiet; the heap that runs out must be alerted ahead of its
//!   exhaustion.
//! - `exathlon/`: executor heaps and old generations of an undisturbed Spark streaming
//!   job (44–60 min at ~1 s), against the JVM's own maximum and against a tight limit
//!   1.3 × the series' highest value. None ran out, so none may alert.
//!
//! Every case is replayed twice: as the daemon runs (keeping fits between
//! evaluations, `model::reuse`) and fitting afresh at every evaluation, so that no
//! verdict depends on when fits happen to run.
//!
//! Still alerting (issue 3 stays open for them), named so none is skipped in silence
//! and checked to still alert, so the lists only shrink: `SampleJRockit1_4_2priopausetime`
//! (stretch x8, 350 MB: for its first 100 minutes the whole band climbs, post-GC
//! floor 27 -> 99 MB and peaks 305 -> 334 MB, 95% of the heap; fitting afresh it
//! alerts at minute 126 on one long GC cycle's fill), and the Spark series in
//! `SPARK_OPEN`.

use std::path::PathBuf;

use headroom::backtest::{replay, ReplayParams};
use headroom::model::{AlertParams, ForecastParams, Sample};

fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real/gcviewer");
    assert!(
        dir.is_dir(),
        "{} is missing: the real series live in the shared/ folder beside the repository",
        dir.display()
    );
    dir
}

/// One GC event: time (s), heap before and after (bytes), capacity (bytes).
struct GcEvent {
    t: f64,
    old: bool,
    before: f64,
    after: f64,
    capacity: f64,
}

fn read_log(name: &str) -> Vec<GcEvent> {
    let path = data_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("{name}: no column {n}"))
    };
    let (t, kind, before, after, capacity) = (
        col("t_s"),
        col("kind"),
        col("heap_before_kb"),
        col("heap_after_kb"),
        col("heap_capacity_kb"),
    );
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            Some(GcEvent {
                t: num(t)?,
                old: f
                    .get(kind)
                    .is_some_and(|k| k.contains("old") || k.contains("full")),
                before: num(before)? * 1024.0,
                after: num(after)? * 1024.0,
                capacity: num(capacity)? * 1024.0,
            })
            .filter(|e| e.t.is_finite())
        })
        .collect()
}

/// The heap as a scrape every 30 s would see it, with the log's time axis stretched by
/// `stretch`: between collections the heap grows linearly from one event's `after`
/// to the next one's `before`, over at most five typical gaps (a JVM that logs no GC
/// for an hour was idle, not allocating slowly).
fn scrape(events: &[GcEvent], stretch: f64) -> Vec<Sample> {
    let mut gaps: Vec<f64> = events
        .windows(2)
        .map(|w| (w[1].t - w[0].t) * stretch)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let max_growth = 5.0 * gaps.get(gaps.len() / 2).copied().unwrap_or(30.0);
    let start = events[0].t * stretch;
    let end = events[events.len() - 1].t * stretch;
    let mut out = Vec::new();
    let mut i = 0;
    let mut t = start;
    while t <= end {
        while i + 1 < events.len() && events[i + 1].t * stretch <= t {
            i += 1;
        }
        let value = match events.get(i + 1) {
            Some(next) => {
                let t1 = next.t * stretch;
                let t0 = (events[i].t * stretch).max(t1 - max_growth);
                let frac = if t1 > t0 {
                    ((t - t0) / (t1 - t0)).max(0.0)
                } else {
                    0.0
                };
                events[i].after + (next.before - events[i].after) * frac
            }
            None => events[i].after,
        };
        out.push(Sample {
            at: 1_773_878_400_000 + ((t - start) * 1000.0) as i64,
            bytes: value,
        });
        t += 30.0;
    }
    out
}

fn params(refit_every_step: bool) -> ReplayParams {
    ReplayParams {
        forecast: ForecastParams::default(),
        alert: AlertParams::default(),
        step_ms: 30_000,
        lookback_ms: 6 * 3_600_000,
        refit_every_step,
    }
}

/// Times (ms) at which an alert was firing, evaluating from `from`, as the daemon
/// would (keeping fits between evaluations) and with a fresh fit at every one: the
/// verdict of every case below must not depend on when fits happen to run.
fn alerts(samples: &[Sample], limit: f64, from: i64) -> [Vec<i64>; 2] {
    [false, true]
        .map(|fresh| replay_alerts(samples, limit, from, fresh).map_or_else(Vec::new, |a| a.firing))
}

/// Where a replay alerted: every firing evaluation, and what the model said at the
/// first one, for a failure message that shows why.
struct Alerted {
    firing: Vec<i64>,
    first: String,
}

/// The first replay that alerts, keeping fits or fitting afresh (see [`alerts`]).
fn quiet_or_first_alert(samples: &[Sample], limit: f64, from: i64) -> Option<Alerted> {
    replay_alerts(samples, limit, from, false).or_else(|| {
        replay_alerts(samples, limit, from, true).map(|mut a| {
            a.first = format!("{} (fitting afresh at every evaluation)", a.first);
            a
        })
    })
}

fn replay_alerts(samples: &[Sample], limit: f64, from: i64, fresh: bool) -> Option<Alerted> {
    let start = samples.first().map_or(0, |s| s.at);
    let mut firing = Vec::new();
    let mut first = String::new();
    replay(
        &[samples.to_vec()],
        Some(limit),
        &params(fresh),
        from,
        |e| {
            if e.alert.is_none() {
                return;
            }
            if firing.is_empty() {
                let f = &e.forecast;
                let mib =
                    |b: Option<f64>| b.map_or("-".into(), |b| format!("{:.0}Mi", b / 1048576.0));
                first = format!(
                "first at +{} min: working set {}, level {}, growth {}/h, time to limit {}, onset +{} min, {:?}",
                (e.at - start) / 60_000,
                mib(Some(f.working_set_bytes)),
                mib(f.level_bytes),
                mib(f.growth_bytes_per_second.map(|g| g * 3600.0)),
                f.time_to_limit
                    .map_or("-".into(), |t| format!("{:.0} min", t.seconds / 60.0)),
                f.onset.map_or(0, |o| (o - start) / 60_000),
                f.pattern,
            );
            }
            firing.push(e.at);
        },
    );
    (!firing.is_empty()).then_some(Alerted { firing, first })
}

#[test]
fn heap_that_runs_out_is_alerted_ahead() {
    // CMS, 77.6 s: the post-GC floor climbs to the 64 MB heap; stretched ×200 (4.3 h).
    let events = read_log("SampleSun1_5_0CMS_PrintGCDetails.csv");
    let limit = events.iter().map(|e| e.capacity).fold(0.0, f64::max);
    let stretch = 200.0;
    let samples = scrape(&events, stretch);
    let exhausted = events
        .iter()
        .find(|e| e.after >= 0.98 * e.capacity && e.capacity >= 0.99 * limit)
        .expect("the log exhausts its heap");
    let exhausted_at = samples[0].at + ((exhausted.t - events[0].t) * stretch * 1000.0) as i64;
    for (firing, how) in alerts(&samples, limit, i64::MIN)
        .iter()
        .zip(["keeping fits", "fitting afresh"])
    {
        let first = *firing.first().expect("an alert before exhaustion");
        let lead_minutes = (exhausted_at - first) / 60_000;
        assert!(
            lead_minutes >= 10,
            "{how}: alerted {lead_minutes} min before the heap ran out"
        );
    }
}

#[test]
fn healthy_real_heaps_stay_quiet() {
    // (log, time stretch, heap limit, still alerts: see the module's doc)
    let cases: &[(&str, f64, f64, bool)] = &[
        // JRockit gencon, 16.9 h of steady nursery sawtooth under 1 GB.
        (
            "SampleJRockit1_4_2gencon-big.csv",
            1.0,
            1024.0 * 1048576.0,
            false,
        ),
        // JRockit priopausetime on a x8 axis (6 h): for its first 100 minutes the
        // whole band climbs (post-GC floor 27 -> 99 MB, peaks 305 -> 334 MB, 95% of
        // the heap), then the floor stops: growth that saturates, under 350 MB.
        (
            "SampleJRockit1_4_2priopausetime.csv",
            8.0,
            350.0 * 1048576.0,
            true,
        ),
        // CMS with concurrent-mode failures on a x20 axis (4.7 h): flat at 53 MB, a
        // 25 MB step within 5 minutes into a 69-94 MB band of GC thrash, under a
        // 128 MB heap. A plateau with thrash, not a leak.
        (
            "SampleSun1_5_0ConcurrentModeFailure.csv",
            20.0,
            128.0 * 1048576.0,
            false,
        ),
        // Shenandoah, back-to-back System.gc(): 1 MB per collection, 6 MB to 33 MB of
        // 128 MB over 4 h on a x300 axis: never watched long enough for its 13 h.
        (
            "SampleShenandoahSeveralSystemGC.csv",
            300.0,
            128.0 * 1048576.0,
            false,
        ),
    ];
    let mut failures = Vec::new();
    for &(name, stretch, limit, open) in cases {
        let events = read_log(name);
        let samples = scrape(&events, stretch);
        assert!(samples.len() > 100, "{name}: {} samples", samples.len());
        // A JVM's first fill of its heap after start, before any old collection, looks
        // exactly like a leak toward the limit (gencon-big climbs 100 MB to 900 MB of
        // 1 GB in 8 minutes): evaluation starts at the first old collection, as a
        // daemon watching a long-running container would.
        let first_old = events.iter().find(|e| e.old).map_or(events[0].t, |e| e.t);
        let from = samples[0].at + ((first_old - events[0].t) * stretch * 1000.0) as i64;
        match (quiet_or_first_alert(&samples, limit, from), open) {
            (Some(a), false) => failures.push(format!(
                "{name} alerted at {} evaluations, {}",
                a.firing.len(),
                a.first
            )),
            (None, true) => failures.push(format!("{name} is quiet now: mark it so")),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The Exathlon Spark traces (`../shared/data/real/exathlon`, see its README).
fn exathlon_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real/exathlon");
    assert!(
        dir.is_dir(),
        "{} is missing: the Exathlon traces live in the shared/ folder beside the repository",
        dir.display()
    );
    dir
}

/// The columns `wanted` of one gzipped Exathlon trace, with its times (ms); cells that
/// do not parse are NaN.
fn read_trace(name: &str, wanted: &[String]) -> (Vec<i64>, Vec<Vec<f64>>) {
    use std::io::Read;
    let path = exathlon_dir().join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("{name}: no column {n}"))
    };
    let t = col("t");
    let indices: Vec<usize> = wanted.iter().map(|w| col(w)).collect();
    let mut times = Vec::new();
    let mut columns = vec![Vec::new(); wanted.len()];
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| {
            f.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let at = num(t);
        if !at.is_finite() {
            continue;
        }
        times.push((at * 1000.0) as i64);
        for (c, &i) in columns.iter_mut().zip(&indices) {
            c.push(num(i));
        }
    }
    (times, columns)
}

/// What a 30-second scrape sees of a ~1 s series: at each tick, the last value at or
/// before it. A zero is an executor that is not running (before it registers, after
/// it ends), not a heap, and is left out.
fn every_30s(times: &[i64], values: &[f64]) -> Vec<Sample> {
    let mut out = Vec::new();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return out;
    };
    let mut i = 0;
    let mut tick = first;
    while tick <= last {
        while i + 1 < times.len() && times[i + 1] <= tick {
            i += 1;
        }
        let v = values[i];
        if v.is_finite() && v > 0.0 {
            out.push(Sample { at: tick, bytes: v });
        }
        tick += 30_000;
    }
    out
}

const SPARK_TRACES: [&str; 11] = [
    "1_0_100000_15.csv.gz",
    "1_0_100000_16.csv.gz",
    "1_0_10000_17.csv.gz",
    "1_0_500000_18.csv.gz",
    "5_0_100000_37.csv.gz",
    "5_0_50000_39.csv.gz",
    "6_0_50000_48.csv.gz",
    "6_0_50000_49.csv.gz",
    "6_0_50000_51.csv.gz",
    "7_0_50000_58.csv.gz",
    "9_0_100000_3.csv.gz",
];

/// A limit a Spark series is replayed against.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SparkLimit {
    /// The JVM's own maximum for that memory (`jvm_heap_max`, `PS-Old-Gen_max`).
    RealMax,
    /// 1.3 × the highest value the series reaches: a container sized tight but right.
    Tight,
}

/// Series headroom still alerts on, named so that none is skipped in silence: the test
/// checks each still alerts, so a fix has to move it out of this list.
const SPARK_OPEN: &[(&str, &str, &str, SparkLimit)] = &[
    ("1_0_100000_15.csv.gz", "1", "old gen", SparkLimit::Tight),
    ("1_0_100000_16.csv.gz", "1", "heap", SparkLimit::Tight),
    ("1_0_100000_16.csv.gz", "2", "heap", SparkLimit::Tight),
    ("1_0_100000_16.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("1_0_10000_17.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("1_0_500000_18.csv.gz", "1", "heap", SparkLimit::Tight),
    ("1_0_500000_18.csv.gz", "2", "heap", SparkLimit::Tight),
    ("5_0_100000_37.csv.gz", "1", "heap", SparkLimit::Tight),
    ("5_0_100000_37.csv.gz", "1", "old gen", SparkLimit::Tight),
    ("5_0_100000_37.csv.gz", "2", "heap", SparkLimit::RealMax),
    ("5_0_100000_37.csv.gz", "2", "heap", SparkLimit::Tight),
    ("5_0_50000_39.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("6_0_50000_48.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("6_0_50000_49.csv.gz", "2", "heap", SparkLimit::Tight),
    ("6_0_50000_49.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("6_0_50000_51.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("7_0_50000_58.csv.gz", "2", "heap", SparkLimit::Tight),
    ("7_0_50000_58.csv.gz", "2", "old gen", SparkLimit::Tight),
    ("9_0_100000_3.csv.gz", "1", "old gen", SparkLimit::Tight),
];

#[test]
fn spark_executor_heaps_stay_quiet() {
    let mut replayed = 0;
    let mut failures = Vec::new();
    for trace in SPARK_TRACES {
        for executor in ["1", "2"] {
            let wanted: Vec<String> = [
                "jvm_heap_used_value",
                "jvm_heap_max_value",
                "jvm_pools_PS-Old-Gen_used_value",
                "jvm_pools_PS-Old-Gen_max_value",
            ]
            .iter()
            .map(|c| format!("{executor}_{c}"))
            .collect();
            let (times, columns) = read_trace(trace, &wanted);
            let highest = |c: &[f64]| {
                c.iter()
                    .copied()
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max)
            };
            for (what, used, real_max) in [
                ("heap", &columns[0], highest(&columns[1])),
                ("old gen", &columns[2], highest(&columns[3])),
            ] {
                let samples = every_30s(&times, used);
                let name = format!("{trace} executor {executor} {what}");
                assert!(samples.len() > 60, "{name}: {} samples", samples.len());
                let top = highest(&samples.iter().map(|s| s.bytes).collect::<Vec<_>>());
                assert!(real_max > top, "{name}: max {real_max} under {top}");
                for (kind, limit) in [
                    (SparkLimit::RealMax, real_max),
                    (SparkLimit::Tight, 1.3 * top),
                ] {
                    replayed += 1;
                    let open = SPARK_OPEN
                        .iter()
                        .any(|o| (o.0, o.1, o.2, o.3) == (trace, executor, what, kind));
                    let alerted = quiet_or_first_alert(&samples, limit, i64::MIN);
                    let case = format!("{name} against {kind:?} ({:.0} MiB)", limit / 1048576.0);
                    match (alerted, open) {
                        (Some(a), false) => failures.push(format!(
                            "{case}: alerted at {} evaluations, {}",
                            a.firing.len(),
                            a.first
                        )),
                        (None, true) => {
                            failures.push(format!("{case} is quiet now: take it out of SPARK_OPEN"))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    assert_eq!(replayed, SPARK_TRACES.len() * 2 * 2 * 2);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
