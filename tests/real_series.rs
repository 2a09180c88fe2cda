//! Real memory series from `tests/data/real` (see `common/real.rs` and that folder's
//! README), replayed as a 30-second scrape would see them: the heap that runs
//! out must be alerted ahead of its exhaustion, and the healthy ones (sawtooth,
//! saturating growth, GC thrash, long steady runs, Spark executors against their real
//! maximum and against 1.3 x their highest value) must stay quiet.
//!
//! Every case is replayed twice: as the daemon runs (keeping fits between
//! evaluations, `model::reuse`) and fitting afresh at every evaluation, so that no
//! verdict depends on when fits happen to run.
//!
//! Still alerting (issue 3 stays open for them), named so none is skipped in silence,
//! and checked to still alert, so the lists only shrink:
//! - `STILL_ALERTING`: 12 Spark series against the tight limit whose old generation
//!   climbs until the trace stops at 77% of that limit: 8 old generations, and 4
//!   heaps that rise with them (one, `1_0_100000_16 executor 1`, alerts only fitted
//!   afresh: its floor holds, but its 30 s samples catch that floor too seldom for
//!   the band veto). Each is checked to be excused by its own data: after its first
//!   alert it kept rising, and the line through its last 15 minutes reaches the
//!   limit within the critical horizon (the trace stopped, not the growth).
//! - `UNEXCUSED`: JRockit priopausetime, fitted afresh, and a Spark heap that hovered
//!   after its climb (see the list).
//!
//! No series against its real limit alerts as the daemon runs.

#[path = "common/real.rs"]
mod real;

use headroom::backtest::accuracy::{rule_replay, PredictLinearRule};
use headroom::backtest::{replay, ReplayParams};
use headroom::model::trend::{fit_line, Point};
use headroom::model::{ForecastParams, Sample};
use real::Case;

/// Healthy real series headroom still alerts on, by case name.
const STILL_ALERTING: &[&str] = &[
    "1_0_100000_15 executor 1 old gen, tight",
    "1_0_100000_16 executor 1 heap, tight",
    "1_0_100000_16 executor 2 old gen, tight",
    "5_0_100000_37 executor 1 heap, tight",
    "5_0_100000_37 executor 1 old gen, tight",
    "5_0_50000_39 executor 2 old gen, tight",
    "6_0_50000_48 executor 2 old gen, tight",
    "6_0_50000_49 executor 2 heap, tight",
    "6_0_50000_49 executor 2 old gen, tight",
    "6_0_50000_51 executor 2 old gen, tight",
    "7_0_50000_58 executor 2 heap, tight",
    "7_0_50000_58 executor 2 old gen, tight",
];

/// Healthy real series headroom still alerts on although they did not keep rising:
/// false alarms its data does not excuse. JRockit priopausetime, fitted afresh at
/// minute 126: after 80 minutes of GC cycles too fast for the scrape, up to 312 MB, a
/// 20-minute fill from 96 to 295 MB at 600 MB/h, 84% of the 350 MB heap, that a
/// collection ended. A leak after such a band looks the same and must be alerted (see
/// the model's `fast_fill_after_a_band_near_the_limit_is_alerted`). As the daemon runs,
/// keeping fits, it is quiet.
///
/// `1_0_100000_16 executor 2 heap, tight`: a Spark heap that climbed 1.4 GiB in 20
/// minutes (2.4 GiB/h) and then hovered at 55% of the tight limit until the trace
/// ended. Every system alerts on it. Since forecasts have been held to three times
/// their regime, its first alert comes 3 minutes later, at minute 44, when the hovering
/// had already begun.
const UNEXCUSED: &[&str] = &[
    "SampleJRockit1_4_2priopausetime x8",
    "1_0_100000_16 executor 2 heap, tight",
];

fn params(refit_every_step: bool) -> ReplayParams {
    ReplayParams {
        refit_every_step,
        ..ReplayParams::default()
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
    let cases: Vec<Case> = real::gc_cases()
        .into_iter()
        .filter(|c| c.exhausted_at.is_some())
        .collect();
    assert_eq!(cases.len(), 1);
    for case in &cases {
        let exhausted_at = case.exhausted_at.unwrap();
        for (firing, how) in alerts(&case.samples, case.limit, case.from)
            .iter()
            .zip(["keeping fits", "fitting afresh"])
        {
            // The alert firing when the heap runs out, from the start of its episode
            // (an evaluation every 30 s): one that came and went before is no warning.
            let start = real::episode_start(firing, exhausted_at, 30_000);
            assert!(
                start.is_some(),
                "{}, {how}: no alert firing when the heap ran out (alerts at {:?} min)",
                case.name,
                firing
                    .iter()
                    .map(|t| (t - case.samples[0].at) / 60_000)
                    .collect::<Vec<_>>()
            );
            let lead_minutes = (exhausted_at - start.unwrap()) / 60_000;
            assert!(
                lead_minutes >= 10,
                "{}, {how}: the alert began {lead_minutes} min before the heap ran out",
                case.name
            );
            // And no later than the rule it replaces, `predict_linear(ws[1h], 3600) >=
            // limit for 5m`, on the same evaluations. (Before collections that keep a
            // share of every fill were read as a leak, the alert held only from the
            // last fill: 27 minutes against the rule's 33.)
            let rule = PredictLinearRule {
                range_seconds: 3600.0,
                horizon_seconds: 3600.0,
                pending_seconds: 300.0,
            };
            let segments = std::slice::from_ref(&case.samples);
            let rule_firing: Vec<i64> = rule_replay(segments, case.limit, 30_000, case.from, &rule)
                .iter()
                .filter(|o| o.alert.is_some())
                .map(|o| o.at)
                .collect();
            let rule_start = real::episode_start(&rule_firing, exhausted_at, 30_000)
                .expect("the rule fires when the heap runs out");
            assert!(
                start.unwrap() <= rule_start,
                "{}, {how}: alerted {lead_minutes} min ahead, the 1h rule {} min",
                case.name,
                (exhausted_at - rule_start) / 60_000
            );
        }
    }
}

/// Every healthy case quiet both ways, but for those in `STILL_ALERTING`, which must
/// still alert.
///
/// What keeps a case on `STILL_ALERTING` is its own data, not the model (see
/// [`excuse`]).
fn check_quiet(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases.iter().filter(|c| c.exhausted_at.is_none()) {
        let unexcused = UNEXCUSED.contains(&case.name.as_str());
        let open = unexcused || STILL_ALERTING.contains(&case.name.as_str());
        let label = format!("{} ({:.0} MiB)", case.name, case.limit / 1048576.0);
        match (
            quiet_or_first_alert(&case.samples, case.limit, case.from),
            open,
        ) {
            (Some(a), false) => failures.push(format!(
                "{label}: alerted at {} evaluations, {}",
                a.firing.len(),
                a.first
            )),
            (None, true) => failures.push(format!("{label} is quiet now: take it out of its list")),
            (Some(a), true) => {
                if let (false, Err(why)) =
                    (unexcused, excuse(&case.samples, case.limit, a.firing[0]))
                {
                    failures.push(format!(
                        "{label}: {why} ({}): its own data does not excuse it",
                        a.first
                    ));
                }
            }
            (None, false) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn healthy_real_heaps_stay_quiet() {
    let cases = real::gc_cases();
    assert_eq!(cases.len(), 5);
    check_quiet(&cases);
}

#[test]
fn spark_executor_heaps_stay_quiet() {
    let cases = real::spark_cases();
    assert_eq!(cases.len(), real::SPARK_TRACES.len() * 2 * 2 * 2);
    let gc = real::gc_cases();
    for name in STILL_ALERTING.iter().chain(UNEXCUSED) {
        assert!(
            cases.iter().chain(&gc).any(|c| c.name == *name),
            "{name} names no case"
        );
    }
    check_quiet(&cases);
}

/// Why a healthy series that still alerts is excused by its own data: it kept
/// rising after it first alerted (`at`): the mean of its last 5 minutes is above the
/// mean of the 5 minutes up to `at`; and the trace stopped, not the growth: the
/// least-squares line through its last 15 minutes reaches `limit` within the
/// critical horizon of its last sample. `Err` says which does not hold.
fn excuse(samples: &[Sample], limit: f64, at: i64) -> Result<(), String> {
    let end = samples[samples.len() - 1].at;
    let within = |from: i64, to: i64| samples.iter().filter(move |s| s.at > from && s.at <= to);
    let mean = |from: i64, to: i64| {
        let (sum, n) = within(from, to).fold((0.0, 0.0), |(s, n), x| (s + x.bytes, n + 1.0));
        sum / n
    };
    let (then, now) = (mean(at - 300_000, at), mean(end - 300_000, end));
    if now.partial_cmp(&then) != Some(std::cmp::Ordering::Greater) {
        return Err("it did not keep rising after it first alerted".into());
    }
    let tail: Vec<Point> = within(end - 900_000, end)
        .map(|s| Point {
            t: (s.at - end) as f64 / 1000.0,
            y: s.bytes,
            w: 1.0,
        })
        .collect();
    let slope = fit_line(&tail).map_or(f64::NAN, |line| line.slope);
    let minutes = (limit - samples[samples.len() - 1].bytes) / slope / 60.0;
    let horizon = ForecastParams::default().critical_horizon_seconds / 60.0;
    if slope.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        || minutes.partial_cmp(&horizon) != Some(std::cmp::Ordering::Less)
    {
        return Err(format!(
            "the line through its last 15 minutes reaches the limit in {minutes:.0} min, \
             beyond the critical horizon"
        ));
    }
    Ok(())
}
