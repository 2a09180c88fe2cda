//! Real memory series from `tests/data/real` (see its README for the sources and
//! licences), as a 30-second scrape would see them, with the limits they are replayed
//! against: shared by `tests/real_series.rs` and the accuracy bench.
//! - `gcviewer/`: JVM GC logs that users sent to the GCViewer project, on a stretched
//!   time axis for the logs that last seconds: one heap that runs out, and sawtooth,
//!   saturating growth, GC thrash and long steady runs that do not.
//! - `exathlon/`: executor heaps and old generations of an undisturbed Spark streaming
//!   job (44–60 min at ~1 s), against the JVM's own maximum and against a tight limit
//!   1.3 × the series' highest value. None ran out.

#![allow(dead_code)]

use std::path::PathBuf;

use headroom::model::Sample;

/// One real series and what it is replayed against.
pub struct Case {
    /// Unique, e.g. `SampleJRockit1_4_2priopausetime x8` or
    /// `1_0_100000_15 executor 1 old gen, tight`.
    pub name: String,
    pub samples: Vec<Sample>,
    pub limit: f64,
    /// Evaluations start here (ms).
    pub from: i64,
    /// When the series ran out (ms), for the one that does.
    pub exhausted_at: Option<i64>,
}

/// The GC logs: the CMS heap that runs out, then the healthy ones.
pub fn gc_cases() -> Vec<Case> {
    let mut out = Vec::new();
    // CMS, 77.6 s: the post-GC floor climbs to the 64 MB heap; stretched x200 (4.3 h).
    let events = read_log("SampleSun1_5_0CMS_PrintGCDetails.csv");
    let limit = events.iter().map(|e| e.capacity).fold(0.0, f64::max);
    let stretch = 200.0;
    let samples = scrape(&events, stretch);
    let exhausted = events
        .iter()
        .find(|e| e.after >= 0.98 * e.capacity && e.capacity >= 0.99 * limit)
        .expect("the log exhausts its heap");
    out.push(Case {
        name: "SampleSun1_5_0CMS_PrintGCDetails x200".into(),
        exhausted_at: Some(samples[0].at + ((exhausted.t - events[0].t) * stretch * 1000.0) as i64),
        from: i64::MIN,
        samples,
        limit,
    });
    let healthy: [(&str, f64, f64); 4] = [
        // JRockit gencon, 16.9 h of steady nursery sawtooth under 1 GB.
        ("SampleJRockit1_4_2gencon-big", 1.0, 1024.0),
        // JRockit priopausetime on a x8 axis (6 h): for its first 100 minutes the
        // whole band climbs (post-GC floor 27 -> 99 MB, peaks 305 -> 334 MB, 95% of
        // the heap), then the floor stops: growth that saturates, under 350 MB.
        ("SampleJRockit1_4_2priopausetime", 8.0, 350.0),
        // CMS with concurrent-mode failures on a x20 axis (4.7 h): flat at 53 MB, a
        // 25 MB step within 5 minutes into a 69-94 MB band of GC thrash, under a
        // 128 MB heap. A plateau with thrash, not a leak.
        ("SampleSun1_5_0ConcurrentModeFailure", 20.0, 128.0),
        // Shenandoah, back-to-back System.gc(): 1 MB per collection, 6 MB to 33 MB of
        // 128 MB over 4 h on a x300 axis: never watched long enough for its 13 h.
        ("SampleShenandoahSeveralSystemGC", 300.0, 128.0),
    ];
    for (name, stretch, limit_mib) in healthy {
        let events = read_log(&format!("{name}.csv"));
        let samples = scrape(&events, stretch);
        assert!(samples.len() > 100, "{name}: {} samples", samples.len());
        // A JVM's first fill of its heap after start, before any old collection, looks
        // exactly like a leak toward the limit (gencon-big climbs 100 MB to 900 MB of
        // 1 GB in 8 minutes): evaluation starts at the first old collection, as a
        // daemon watching a long-running container would.
        let first_old = events.iter().find(|e| e.old).map_or(events[0].t, |e| e.t);
        out.push(Case {
            name: format!("{name} x{stretch}"),
            from: samples[0].at + ((first_old - events[0].t) * stretch * 1000.0) as i64,
            samples,
            limit: limit_mib * 1048576.0,
            exhausted_at: None,
        });
    }
    out
}

/// The Spark executors 1 and 2 of every trace, heap and old generation, each against
/// the JVM's own maximum (`real max`) and 1.3 x its highest value (`tight`).
pub fn spark_cases() -> Vec<Case> {
    let mut out = Vec::new();
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
                let series = format!(
                    "{} executor {executor} {what}",
                    trace.trim_end_matches(".csv.gz")
                );
                assert!(samples.len() > 60, "{series}: {} samples", samples.len());
                let top = highest(&samples.iter().map(|s| s.bytes).collect::<Vec<_>>());
                assert!(real_max > top, "{series}: max {real_max} under {top}");
                for (kind, limit) in [("real max", real_max), ("tight", 1.3 * top)] {
                    out.push(Case {
                        name: format!("{series}, {kind}"),
                        samples: samples.clone(),
                        limit,
                        from: i64::MIN,
                        exhausted_at: None,
                    });
                }
            }
        }
    }
    out
}

/// When the alert still firing at `at` began: `firing` holds the times (ms, in order)
/// of the evaluations, one every `step_ms`, at which an alert fired. `None` when the
/// evaluation at or just before `at` did not fire: an alert that came and went before
/// is no warning.
pub fn episode_start(firing: &[i64], at: i64, step_ms: i64) -> Option<i64> {
    let end = firing.partition_point(|&t| t <= at);
    let mut i = end.checked_sub(1).filter(|&i| at - firing[i] <= step_ms)?;
    while i > 0 && firing[i] - firing[i - 1] <= step_ms {
        i -= 1;
    }
    Some(firing[i])
}

/// The index of column `wanted` in a CSV `header` line of file `name`.
fn column(header: &str, wanted: &str, name: &str) -> usize {
    header
        .split(',')
        .position(|h| h == wanted)
        .unwrap_or_else(|| panic!("{name}: no column {wanted}"))
}

/// `tests/data/real/{folder}`, part of the repository.
pub fn data_dir(folder: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/real")
        .join(folder)
}

/// The text of a gzipped file.
fn read_gz(path: &std::path::Path) -> String {
    use std::io::Read;
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

/// One GC event: time (s), heap before and after (bytes), capacity (bytes).
pub struct GcEvent {
    pub t: f64,
    pub old: bool,
    pub before: f64,
    pub after: f64,
    pub capacity: f64,
}

pub fn read_log(name: &str) -> Vec<GcEvent> {
    let text = read_gz(&data_dir("gcviewer").join(format!("{name}.gz")));
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let col = |n: &str| column(header, n, name);
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
pub fn scrape(events: &[GcEvent], stretch: f64) -> Vec<Sample> {
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

/// The columns `wanted` of one gzipped Exathlon trace, with its times (ms); cells that
/// do not parse are NaN.
pub fn read_trace(name: &str, wanted: &[String]) -> (Vec<i64>, Vec<Vec<f64>>) {
    let text = read_gz(&data_dir("exathlon").join(name));
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let col = |n: &str| column(header, n, name);
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
pub fn every_30s(times: &[i64], values: &[f64]) -> Vec<Sample> {
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

pub const SPARK_TRACES: [&str; 11] = [
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
