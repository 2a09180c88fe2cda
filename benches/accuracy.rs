//! Accuracy benchmark: the labeled scenario suite replayed through headroom and through
//! the two predict_linear alert rules users write today, scored the same way.
//!
//!     cargo bench --bench accuracy                    # 8 seeds per pattern
//!     HEADROOM_SUITE_SEEDS=20 cargo bench --bench accuracy
//!     HEADROOM_SUITE_VERBOSE=1 cargo bench --bench accuracy   # list misses
//!
//! Then the real series of `tests/data/real` (tests/common/real.rs), the same four
//! ways: how many healthy ones alert, and how far ahead the one that runs out does.
//!
//! Then, when `HEADROOM_BITBRAINS` names the folder, 40 real VMs over three months
//! (benches/support/bitbrains.rs): how many 14-day windows each system alerts on, per
//! group, for the held-out and the tuning half.
//!
//! Prints figures; tests/accuracy.rs and tests/real_series.rs keep regression guards
//! on them.

#[path = "support/bitbrains.rs"]
mod bitbrains;
#[path = "../tests/common/real.rs"]
mod real;

use std::time::Instant;

use headroom::backtest::accuracy::{
    headroom_outcomes, rule_outcomes, rule_replay, score, PredictLinearRule, Score,
};
use headroom::backtest::{replay, replay_with_long, ReplayParams};
use headroom::model::Severity;
use headroom::sim::scenarios::{random_family, suite, Kind};

fn row(name: &str, s: &Score) {
    println!(
        "{name:<44} {:>6.1}% {:>6.1}% {:>8.0}m {:>6.0}% {:>6.1}% {:>6.1}% {:>7} {:>7}",
        100.0 * s.alerted_share(),
        100.0 * s.critical_share(),
        s.median_lead_seconds / 60.0,
        100.0 * s.median_lead_fraction,
        100.0 * s.healthy_alerted_share(),
        100.0 * s.healthy_critical_share(),
        s.median_eta_error
            .map_or("-".into(), |e| format!("{:.1}%", 100.0 * e)),
        s.interval_coverage
            .map_or("-".into(), |c| format!("{:.1}%", 100.0 * c)),
    );
}

fn main() {
    let seeds: u64 = std::env::var("HEADROOM_SUITE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let verbose = std::env::var_os("HEADROOM_SUITE_VERBOSE").is_some();
    let scenarios = suite(seeds);
    let samples: usize = scenarios.iter().map(|s| s.sample_count()).sum();
    let ooms: usize = scenarios.iter().map(|s| s.ooms.len()).sum();
    let healthy = scenarios.iter().filter(|s| s.healthy()).count();
    println!(
        "suite: {} scenarios ({} kinds x {seeds} seeds + seed incident), {ooms} OOM events, {healthy} healthy, {samples} samples",
        scenarios.len(),
        Kind::ALL.len()
    );

    let params = ReplayParams::default();
    // The replay is timed five times and the median kept: one run of the suite takes
    // a tenth of a second, short enough for a busy machine to skew.
    let replay_all = |params: &ReplayParams| -> Vec<_> {
        scenarios
            .iter()
            .map(|s| headroom_outcomes(s, params))
            .collect()
    };
    let (headroom, took) = median_time(5, || replay_all(&params));
    let evaluations: usize = headroom.iter().map(Vec::len).sum();

    let rules = [
        PredictLinearRule {
            range_seconds: 3600.0,
            horizon_seconds: 3600.0,
            pending_seconds: 300.0,
        },
        PredictLinearRule {
            range_seconds: 6.0 * 3600.0,
            horizon_seconds: 4.0 * 3600.0,
            pending_seconds: 600.0,
        },
    ];
    println!();
    println!(
        "{:<44} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "system",
        "OOM≥10m",
        "crit≥10m",
        "med lead",
        "lead %",
        "healthy",
        "h.crit",
        "ETA err",
        "covered"
    );
    let headroom_score = score(&scenarios, &headroom);
    row("headroom", &headroom_score);
    // The same model fitted afresh at every evaluation: what keeping fits between
    // evaluations (as the daemon does) costs or gains in accuracy.
    let fresh_params = ReplayParams {
        refit_every_step: true,
        ..params
    };
    let (fresh, fresh_took) = median_time(3, || replay_all(&fresh_params));
    row(
        "headroom, fitting afresh every step",
        &score(&scenarios, &fresh),
    );
    let mut rule_runs = Vec::new();
    for rule in &rules {
        let outcomes: Vec<_> = scenarios
            .iter()
            .map(|s| rule_outcomes(s, rule, 30_000))
            .collect();
        row(&rule.label(), &score(&scenarios, &outcomes));
        rule_runs.push((rule.label(), outcomes));
    }
    println!();
    println!(
        "replay speed: {evaluations} evaluations over {samples} samples in {took:.3}s (median of 5) = {:.0} samples/s, {:.1} µs per evaluation (one core)",
        samples as f64 / took,
        took * 1e6 / evaluations as f64
    );
    println!(
        "fitting afresh at every evaluation instead: {:.3}s (median of 3) = {:.0} samples/s",
        fresh_took,
        samples as f64 / fresh_took
    );
    println!();
    first_page_row("headroom", &headroom_score);
    first_page_row(
        "headroom, fitting afresh every step",
        &score(&scenarios, &fresh),
    );
    for (label, outcomes) in &rule_runs {
        first_page_row(label, &score(&scenarios, outcomes));
    }
    random_scenarios(&params, &rules);
    real_series(&params, &rules, verbose);
    bitbrains_windows(&params, &rules, verbose);
    if let Ok(name) = std::env::var("HEADROOM_SUITE_TRACE") {
        trace(&scenarios, &name, &params);
    }
    if verbose {
        let systems = std::iter::once(("headroom".to_string(), &headroom))
            .chain(rule_runs.iter().map(|(label, outs)| (label.clone(), outs)));
        for (label, outcomes) in systems {
            println!("\nper kind ({label}):");
            for kind in Kind::ALL {
                let (subset, outs): (Vec<_>, Vec<_>) = scenarios
                    .iter()
                    .zip(outcomes)
                    .filter(|(s, _)| s.kind == kind)
                    .map(|(s, o)| (s.clone(), o.clone()))
                    .unzip();
                row(kind.name(), &score(&subset, &outs));
            }
        }
        println!(
            "\nmissed: {:#?}\nfalse alarms: {:#?}",
            headroom_score.missed, headroom_score.false_alarms
        );
        let mut worst = headroom_score.first_page_errors.clone();
        worst.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("\nfirst pages furthest from the truth (headroom):");
        for (what, error) in worst.iter().take(10) {
            println!("  {:>6.1}%  {what}", 100.0 * error);
        }
    }
}

/// Scenarios drawn at random from wide ranges (sim::scenarios::random_family), a new
/// seed each run unless HEADROOM_RANDOM_SEED fixes it: the same scores, and the worst
/// cases by name (each name says what was drawn).
fn random_scenarios(params: &ReplayParams, rules: &[PredictLinearRule]) {
    let seed: u64 = std::env::var("HEADROOM_RANDOM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    let count: usize = std::env::var("HEADROOM_RANDOM_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let scenarios = random_family(seed, count);
    let ooms: usize = scenarios.iter().map(|s| s.ooms.len()).sum();
    let healthy = scenarios.iter().filter(|s| s.healthy()).count();
    println!(
        "\nrandom family: HEADROOM_RANDOM_SEED={seed}, {count} scenarios, {ooms} OOM events, {healthy} healthy"
    );
    let headroom: Vec<_> = scenarios
        .iter()
        .map(|s| headroom_outcomes(s, params))
        .collect();
    if let Ok(name) = std::env::var("HEADROOM_SUITE_TRACE") {
        if name.starts_with("random/") {
            trace(&scenarios, &name, params);
        }
    }
    let s = score(&scenarios, &headroom);
    row("headroom", &s);
    for rule in rules {
        let outcomes: Vec<_> = scenarios
            .iter()
            .map(|sc| rule_outcomes(sc, rule, 30_000))
            .collect();
        row(&rule.label(), &score(&scenarios, &outcomes));
    }
    first_page_row("headroom", &s);
    // What the long tier could know: a daily cycle is found after 48 closed hours of
    // an incarnation (give or take its first hour), not before.
    let (young, young_share) = s.first_pages_by_age(|hours| hours < 48.0);
    let (old, old_share) = s.first_pages_by_age(|hours| hours >= 48.0);
    let percent =
        |share: Option<f64>| share.map_or("-".to_string(), |x| format!("{:.1}%", 100.0 * x));
    println!(
        "  by the incarnation's age at the first page: under two days {} of {young} within 25%, two days or more {} of {old}",
        percent(young_share),
        percent(old_share)
    );
    let (runs, runs_share) = s.first_pages_of_runs_within_a_quarter();
    println!(
        "  the first alerted evaluation of each such run, whether its alert lasted or not: {} of {runs} within 25%",
        percent(runs_share)
    );
    // Daily cycles can be told from growth only once days of them are held: the
    // healthy draws that run past two days, and those alerted after that.
    let two_days = 2 * 86_400_000;
    let (mut held, mut alerted, mut critical) = (0, 0, 0);
    for (scenario, outcomes) in scenarios.iter().zip(&headroom) {
        let Some(start) = scenario.segments.iter().flatten().next().map(|x| x.at) else {
            continue;
        };
        let end = scenario
            .segments
            .iter()
            .flatten()
            .map(|x| x.at)
            .max()
            .unwrap_or(start);
        if !scenario.healthy() || end - start <= two_days {
            continue;
        }
        held += 1;
        let later: Vec<_> = outcomes
            .iter()
            .filter(|o| o.at >= start + two_days)
            .collect();
        alerted += usize::from(later.iter().any(|o| o.alert.is_some()));
        critical += usize::from(later.iter().any(|o| o.alert == Some(Severity::Critical)));
        if std::env::var_os("HEADROOM_SUITE_VERBOSE").is_some() {
            if let Some(first) = later.iter().find(|o| o.alert.is_some()) {
                println!(
                    "  alerted after two days: {} at +{:.1}h ({:?}, ETA {:?} s)",
                    scenario.name,
                    (first.at - start) as f64 / 3_600_000.0,
                    first.alert,
                    first.eta.map(|e| e.round())
                );
            }
        }
    }
    println!(
        "healthy draws alerted once two days are held: {alerted} of {held} ({critical} critical)"
    );
    println!("worst cases (headroom):");
    for missed in s.missed.iter().take(8) {
        println!("  missed       {missed}");
    }
    for alarm in s.false_alarms.iter().take(8) {
        println!("  false alarm  {alarm}");
    }
    let mut pages = s.first_page_errors.clone();
    pages.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown = if std::env::var_os("HEADROOM_SUITE_VERBOSE").is_some() {
        pages.len()
    } else {
        5
    };
    for (what, error) in pages.iter().take(shown) {
        println!("  first page {:>6.1}% off  {what}", 100.0 * error);
    }
    if std::env::var_os("HEADROOM_SUITE_VERBOSE").is_some() {
        for (what, error) in &s.first_page_of_run_errors {
            println!("  run's first page {:>6.1}% off  {what}", 100.0 * error);
        }
    }
}

/// What the first page said: the time to limit at the first evaluation of each alert
/// episode that lasts to an OOM, against the truth.
fn first_page_row(label: &str, s: &Score) {
    match (s.first_page_error_quantiles(), s.first_pages_within_a_quarter()) {
        (Some((median, p90)), Some(share)) => println!(
            "first page {label:<44} error median {:>5.1}%  p90 {:>5.1}%  within 25% of the truth: {:>5.1}% of {}{}",
            100.0 * median,
            100.0 * p90,
            100.0 * share,
            s.first_page_errors.len(),
            s.first_page_coverage().map_or(String::new(), |c| format!(
                "; its 90% interval held the truth: {:.1}%",
                100.0 * c
            ))
        ),
        _ => println!("first page {label:<44} no time to limit at a first page"),
    }
}

/// One evaluation: its time, and the alert then (`Some(critical)` while firing).
type Evaluated = (i64, Option<bool>);

/// Every evaluation of one real case replayed by each system: headroom keeping fits,
/// headroom fitting afresh, then the rules.
fn real_alerts(
    case: &real::Case,
    params: &ReplayParams,
    rules: &[PredictLinearRule],
) -> Vec<Vec<Evaluated>> {
    let mut out = Vec::new();
    let samples = std::slice::from_ref(&case.samples);
    for fresh in [false, true] {
        let params = ReplayParams {
            refit_every_step: fresh,
            ..*params
        };
        let mut evaluations = Vec::new();
        replay(samples, Some(case.limit), &params, case.from, |e| {
            evaluations.push((e.at, e.alert.map(|s| s == Severity::Critical)));
        });
        out.push(evaluations);
    }
    for rule in rules {
        let outcomes = rule_replay(samples, case.limit, params.step_ms, case.from, rule);
        out.push(
            outcomes
                .iter()
                .map(|o| (o.at, o.alert.map(|s| s == Severity::Critical)))
                .collect(),
        );
    }
    out
}

/// The real-series table: healthy series alerted (against their real limit, and
/// against a tight one), and the lead on the one that runs out, per system.
fn real_series(params: &ReplayParams, rules: &[PredictLinearRule], verbose: bool) {
    let cases: Vec<real::Case> = real::gc_cases()
        .into_iter()
        .chain(real::spark_cases())
        .collect();
    let systems: Vec<String> = [
        "headroom".to_string(),
        "headroom, fitting afresh every step".to_string(),
    ]
    .into_iter()
    .chain(rules.iter().map(|r| r.label()))
    .collect();
    let results: Vec<Vec<Vec<Evaluated>>> = cases
        .iter()
        .map(|c| real_alerts(c, params, rules))
        .collect();
    if let Some(name) = std::env::var("HEADROOM_SUITE_TRACE")
        .ok()
        .and_then(|n| n.strip_prefix("real:").map(str::to_string))
    {
        trace_real(&cases, &name, params);
    }
    let alerted = |e: &[Evaluated]| e.iter().any(|e| e.1.is_some());
    let critical = |e: &[Evaluated]| e.iter().any(|e| e.1 == Some(true));
    let tight = |c: &real::Case| c.name.ends_with(", tight");
    let healthy = |c: &real::Case| c.exhausted_at.is_none();
    let real_limit = cases.iter().filter(|c| healthy(c) && !tight(c)).count();
    let tight_limit = cases.iter().filter(|c| healthy(c) && tight(c)).count();
    println!(
        "\nreal series (tests/data/real at a 30 s scrape): {} healthy against their real limit, {} against 1.3x their top, {} that runs out",
        real_limit,
        tight_limit,
        cases.len() - real_limit - tight_limit
    );
    // The lead is the alert still firing when the heap runs out, from its start: an
    // alert that came and went before does not count.
    println!(
        "{:<44} {:>16} {:>16} {:>16}",
        "system", "healthy, real", "healthy, tight", "run-out lead"
    );
    for (i, system) in systems.iter().enumerate() {
        let count = |wanted: &dyn Fn(&real::Case) -> bool| {
            let of = |check: &dyn Fn(&[Evaluated]) -> bool| {
                cases
                    .iter()
                    .zip(&results)
                    .filter(|(c, r)| healthy(c) && wanted(c) && check(&r[i]))
                    .count()
            };
            format!("{} ({} crit)", of(&alerted), of(&critical))
        };
        let leads: Vec<String> = cases
            .iter()
            .zip(&results)
            .filter_map(|(c, r)| {
                let at = c.exhausted_at?;
                let firing: Vec<i64> = r[i].iter().filter(|e| e.1.is_some()).map(|e| e.0).collect();
                Some(
                    real::episode_start(&firing, at, params.step_ms)
                        .map_or("missed".into(), |t| format!("{} min", (at - t) / 60_000)),
                )
            })
            .collect();
        println!(
            "{system:<44} {:>16} {:>16} {:>16}",
            count(&|c| !tight(c)),
            count(&|c| tight(c)),
            leads.join(", ")
        );
    }
    if verbose {
        println!("\nreal series alerted (first alert, minutes into the series; headroom, afresh, 1h rule, 6h rule):");
        for (case, r) in cases.iter().zip(&results) {
            if !r.iter().any(|e| alerted(e)) {
                continue;
            }
            let start = case.samples[0].at;
            let cells: Vec<String> = r
                .iter()
                .map(|e| {
                    e.iter()
                        .find(|e| e.1.is_some())
                        .map_or("-".into(), |(at, _)| format!("+{}m", (at - start) / 60_000))
                })
                .collect();
            println!("  {:<52} {}", case.name, cells.join("  "));
        }
    }
}

/// The Bitbrains table: per group and half, the 14-day VM windows each system alerted
/// on (critical among them).
fn bitbrains_windows(params: &ReplayParams, rules: &[PredictLinearRule], verbose: bool) {
    let dir = match bitbrains::folder() {
        Ok(dir) => dir,
        Err(why) => {
            println!("\nbitbrains: {why}; not replayed");
            return;
        }
    };
    let started = Instant::now();
    let vms = bitbrains::vms(&dir);
    // As the daemon runs by default (store.long_backfill 14d); HEADROOM_BENCH_NO_LONG
    // replays as if the long tier started empty.
    let backfill_long = std::env::var_os("HEADROOM_BENCH_NO_LONG").is_none();
    let backfill_ms = params.lookback_ms;
    // Per VM window: its VM, its start, and (alerted, critical) for headroom then
    // each rule.
    type Window<'a> = (&'a bitbrains::Vm, i64, Vec<(bool, bool)>, Option<i64>);
    // Near capacity, alert episodes (headroom's) and those the working set did not
    // follow to 95% of the limit within 6 hours: alerts ahead of no approach.
    let (mut episodes, mut unfollowed) = (0usize, 0usize);
    // For each episode, the highest the working set went within those 6 hours, as a
    // share of the limit (followed episodes included): how near to 95% they came.
    let mut reached: Vec<f64> = Vec::new();
    let mut results: Vec<Window> = Vec::new();
    let mut evaluations = 0usize;
    for vm in &vms {
        for (start, runs) in bitbrains::windows(vm) {
            let from = start + backfill_ms;
            let mut seen = Vec::new();
            let (mut alerted, mut critical) = (false, false);
            let mut first_alert = None;
            // What the daemon's long backfill reads back: the 14 days before.
            let long = if backfill_long {
                bitbrains::long_before(vm, start)
            } else {
                headroom::store::LongTier::default()
            };
            let mut starts = Vec::new();
            let mut firing = false;
            replay_with_long(&runs, Some(vm.limit), params, from, long, |e| {
                evaluations += 1;
                alerted |= e.alert.is_some();
                critical |= e.alert == Some(Severity::Critical);
                if e.alert.is_some() && first_alert.is_none() {
                    first_alert = Some(e.at);
                }
                if e.alert.is_some() && !firing {
                    starts.push(e.at);
                }
                firing = e.alert.is_some();
            });
            if vm.group == "near_capacity" {
                let approached = |at: i64| {
                    runs.iter().flatten().any(|s| {
                        s.at >= at && s.at <= at + 6 * 3_600_000 && s.bytes >= 0.95 * vm.limit
                    })
                };
                episodes += starts.len();
                unfollowed += starts.iter().filter(|&&at| !approached(at)).count();
                reached.extend(starts.iter().map(|&at| {
                    runs.iter()
                        .flatten()
                        .filter(|s| s.at >= at && s.at <= at + 6 * 3_600_000)
                        .map(|s| s.bytes / vm.limit)
                        .fold(0.0, f64::max)
                }));
            }
            seen.push((alerted, critical));
            for rule in rules {
                let outcomes = rule_replay(&runs, vm.limit, params.step_ms, from, rule);
                seen.push((
                    outcomes.iter().any(|o| o.alert.is_some()),
                    outcomes.iter().any(|o| o.alert == Some(Severity::Critical)),
                ));
            }
            results.push((vm, start, seen, first_alert));
        }
    }
    if let Some(name) = std::env::var("HEADROOM_SUITE_TRACE")
        .ok()
        .and_then(|n| n.strip_prefix("bitbrains:").map(str::to_string))
    {
        trace_bitbrains(&vms, &name, params, backfill_long);
    }
    let systems: Vec<String> = std::iter::once("headroom".to_string())
        .chain(rules.iter().map(|r| r.label()))
        .collect();
    println!(
        "\nbitbrains ({}): {} VMs, {} windows of 14 days at 5-minute samples, each after a {} h backfill ({}), an evaluation every {} s ({evaluations} for headroom, {:.1} s in all); VM windows alerted (critical), against the provisioned memory",
        dir.display(),
        vms.len(),
        results.len(),
        backfill_ms / 3_600_000,
        if backfill_long {
            "the long tier read back over the 14 days before"
        } else {
            "the long tier empty"
        },
        params.step_ms / 1000,
        started.elapsed().as_secs_f64()
    );
    println!(
        "split: within each group in index.csv order, odd positions are held out, even ones tune"
    );
    let groups = ["daily", "bursts", "drift", "stable", "near_capacity"];
    print!("{:<26} {:>8}", "group", "windows");
    for s in &systems {
        print!(" {s:>34}");
    }
    println!();
    for held_out in [true, false] {
        for group in groups {
            let rows: Vec<_> = results
                .iter()
                .filter(|(vm, _, _, _)| vm.group == group && vm.held_out == held_out)
                .collect();
            print!(
                "{:<26} {:>8}",
                format!("{group} ({})", if held_out { "held out" } else { "tuning" }),
                rows.len()
            );
            for i in 0..systems.len() {
                let alerted = rows.iter().filter(|r| r.2[i].0).count();
                let critical = rows.iter().filter(|r| r.2[i].1).count();
                print!(" {:>34}", format!("{alerted} ({critical} crit)"));
            }
            println!();
        }
    }
    println!(
        "near_capacity (both halves): {episodes} alert episodes, {unfollowed} of them not followed by the working set at 95% of the limit within 6 h"
    );
    reached.sort_by(f64::total_cmp);
    let at_least = |share: f64| reached.iter().filter(|&&r| r >= share).count();
    println!(
        "  the highest within those 6 h: {} reached 90% of the limit, {} 80%, {} 70%; median {:.0}%",
        at_least(0.9),
        at_least(0.8),
        at_least(0.7),
        reached.get(reached.len() / 2).map_or(0.0, |r| r * 100.0)
    );
    if verbose {
        println!("\nbitbrains windows headroom alerted on:");
        for (vm, start, seen, first) in &results {
            if seen[0].0 {
                println!(
                    "  vm_{:0>3} {:<14} {}{}, first alert {:.0} h in",
                    vm.id,
                    vm.group,
                    headroom::vocab::rfc3339(*start),
                    if seen[0].1 { " (critical)" } else { "" },
                    first.map_or(f64::NAN, |t| (t - start) as f64 / 3_600_000.0)
                );
            }
        }
    }
}

/// Runs `f` `runs` times: its last answer, and the median time (s) a run took.
fn median_time<T>(runs: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut times = Vec::with_capacity(runs);
    let mut answer = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        answer = Some(f());
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (answer.expect("ran once at least"), times[times.len() / 2])
}

/// Prints one scenario's evaluations, every fifth, for reading what the model did.
fn trace(scenarios: &[headroom::sim::scenarios::Scenario], name: &str, params: &ReplayParams) {
    // "random/47" names the draw as well as its whole description does.
    let named = |s: &&headroom::sim::scenarios::Scenario| {
        s.name == name
            || s.name
                .strip_prefix(name)
                .is_some_and(|r| r.starts_with(':'))
    };
    let Some(scenario) = scenarios.iter().find(named) else {
        println!("no scenario {name}");
        return;
    };
    let start = scenario.segments[0][0].at;
    println!(
        "\n{name}: limit {:.0}Mi, ooms at {:?} min",
        scenario.limit_bytes / 1048576.0,
        scenario
            .ooms
            .iter()
            .map(|o| (o.at - start) / 60_000)
            .collect::<Vec<_>>()
    );
    let params = ReplayParams {
        lookback_ms: scenario.lookback_seconds * 1000,
        step_ms: params.step_ms.max(scenario.step_seconds * 1000),
        ..*params
    };
    trace_replay(
        &scenario.segments,
        scenario.limit_bytes,
        &params,
        scenario.evaluate_from,
        headroom::store::LongTier::default(),
    );
}

/// [`trace`] for a real series (`HEADROOM_SUITE_TRACE=real:<start of its name>`).
fn trace_real(cases: &[real::Case], name: &str, params: &ReplayParams) {
    let Some(case) = cases.iter().find(|c| c.name.starts_with(name)) else {
        println!("no real series {name}");
        return;
    };
    println!(
        "\n{}: limit {:.0}Mi, runs out at {:?} min",
        case.name,
        case.limit / 1048576.0,
        case.exhausted_at
            .map(|at| (at - case.samples[0].at) / 60_000)
    );
    trace_replay(
        std::slice::from_ref(&case.samples),
        case.limit,
        params,
        case.from,
        headroom::store::LongTier::default(),
    );
}

/// [`trace`] for a Bitbrains window (`HEADROOM_SUITE_TRACE=bitbrains:vm_288:3`, the
/// VM's fourth 14-day window), its long tier read back as the table's replay has it.
fn trace_bitbrains(vms: &[bitbrains::Vm], name: &str, params: &ReplayParams, backfill_long: bool) {
    let (id, index) = name.split_once(':').unwrap_or((name, "0"));
    let id = id.trim_start_matches("vm_").trim_start_matches('0');
    let index: usize = index.parse().unwrap_or(0);
    let Some(vm) = vms.iter().find(|v| v.id == id) else {
        println!("no bitbrains VM {id}");
        return;
    };
    let Some((start, runs)) = bitbrains::windows(vm).into_iter().nth(index) else {
        println!("{id} has no window {index}");
        return;
    };
    let long = if backfill_long {
        bitbrains::long_before(vm, start)
    } else {
        headroom::store::LongTier::default()
    };
    println!(
        "\n{id} ({}) window {index}: limit {:.0}Mi",
        vm.group,
        vm.limit / 1048576.0
    );
    trace_replay(&runs, vm.limit, params, start + params.lookback_ms, long);
}

/// Prints every fifth evaluation of a replay, and every one alerted.
fn trace_replay(
    segments: &[Vec<headroom::model::Sample>],
    limit: f64,
    params: &ReplayParams,
    from: i64,
    long: headroom::store::LongTier,
) {
    let start = segments[0][0].at;
    let mut i = 0;
    headroom::backtest::replay_with_long(segments, Some(limit), params, from, long, |e| {
        i += 1;
        if i % 5 != 0 && e.alert.is_none() {
            return;
        }
        let f = &e.forecast;
        println!(
            "{:>6.0}m ws {:>7.1}Mi level {:>7.1} slope {:>8.2}Mi/h eta {:>8} [{:>7}, {:>7}] onset {:>6} {:?} {:?}",
            (e.at - start) as f64 / 60_000.0,
            f.working_set_bytes / 1048576.0,
            f.level_bytes.unwrap_or(f64::NAN) / 1048576.0,
            f.growth_bytes_per_second.unwrap_or(f64::NAN) * 3600.0 / 1048576.0,
            f.time_to_limit.map_or("-".into(), |t| format!("{:.0}m", t.seconds / 60.0)),
            f.time_to_limit.map_or("-".into(), |t| format!("{:.0}m", t.lower_seconds / 60.0)),
            f.time_to_limit.map_or("-".into(), |t| t.upper_seconds.map_or("inf".into(), |u| format!("{:.0}m", u / 60.0))),
            f.onset.map_or("-".into(), |o| format!("{}m", (o - start) / 60_000)),
            f.pattern,
            e.alert,
        );
    });
}
