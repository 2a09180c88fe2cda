//! Regression guard on forecast accuracy: the labeled scenario suite (8 seeds of every
//! pattern plus the seed incident) replayed through the daemon's model and alert state
//! machine. Thresholds sit just below what `cargo bench --bench accuracy` measured, so
//! a change that makes forecasts worse fails here. Not a timing test.

use headroom::backtest::accuracy::{headroom_outcomes, rule_outcomes, score, PredictLinearRule};
use headroom::backtest::ReplayParams;
use headroom::sim::scenarios::suite;

/// headroom's score over `scenarios`, replayed with `params`.
fn scored(
    scenarios: &[headroom::sim::scenarios::Scenario],
    params: &ReplayParams,
) -> headroom::backtest::accuracy::Score {
    let outcomes: Vec<_> = scenarios
        .iter()
        .map(|s| headroom_outcomes(s, params))
        .collect();
    score(scenarios, &outcomes)
}

#[test]
fn suite_accuracy_stays_above_the_measured_bar() {
    let scenarios = suite(8);
    let params = ReplayParams::default();
    let s = scored(&scenarios, &params);
    let summary = format!("{s:#?}");

    assert!(s.oom_events >= 70, "{summary}");
    assert!(
        s.alerted_share() >= 0.98,
        "OOM events alerted 10 min ahead: {summary}"
    );
    assert!(
        s.critical_share() >= 0.97,
        "critical 10 min ahead: {summary}"
    );
    // 0.75 before forecasts were held to three times the segment's history; young
    // segments (warm-ups, growth from the start) warn later; restarts on the course
    // of the run before are forecast from it (72%, median lead 152m). Held to three
    // times their regime's length as well (a ramp of 40 minutes is not extrapolated
    // 17 hours), first pages are more often right and come a little later: 70%,
    // 142m when measured; 148m once rising daily peaks near the limit were met at
    // the next peak (issue 14 asks for 60%).
    assert!(
        s.median_lead_fraction >= 0.68,
        "lead as share of onset-to-OOM: {summary}"
    );
    assert!(
        s.median_lead_seconds >= 138.0 * 60.0,
        "median lead: {summary}"
    );
    assert!(
        s.healthy_alerted_share() <= 0.03,
        "healthy series alerted: {summary}"
    );
    assert_eq!(
        s.healthy_critical, 0,
        "healthy series alerted critically: {summary}"
    );
    let error = s.median_eta_error.expect("ETAs were given");
    assert!(error <= 0.07, "median ETA error {error}: {summary}");
    let coverage = s.interval_coverage.expect("intervals were given");
    assert!(
        (0.85..=0.95).contains(&coverage),
        "90% interval coverage {coverage}: {summary}"
    );

    // What the first page said: 90.4% within 25% of the truth when measured (issue
    // 14 asks for 90%; 89.0% before a climb after a flat start stopped being read as
    // acceleration). Three warm-up crossings are still about a third pessimistic.
    let first_pages = s.first_pages_within_a_quarter().expect("first pages");
    assert!(
        first_pages >= 0.90,
        "first pages within 25% of the truth: {first_pages}: {summary}"
    );

    // The bar: the predict_linear rules users write today, scored the same way.
    for (range_hours, horizon_hours, pending_seconds) in [(1.0, 1.0, 300.0), (6.0, 4.0, 600.0)] {
        let rule = PredictLinearRule {
            range_seconds: range_hours * 3600.0,
            horizon_seconds: horizon_hours * 3600.0,
            pending_seconds,
        };
        let rule_outcomes: Vec<_> = scenarios
            .iter()
            .map(|sc| rule_outcomes(sc, &rule, 30_000))
            .collect();
        let bar = score(&scenarios, &rule_outcomes);
        let both = format!("{}\n{summary}\n{bar:#?}", rule.label());
        assert!(s.median_lead_seconds > bar.median_lead_seconds, "{both}");
        assert!(s.median_lead_fraction > bar.median_lead_fraction, "{both}");
        assert!(s.healthy_alerted < bar.healthy_alerted, "{both}");
        assert!(error < bar.median_eta_error.unwrap(), "{both}");
        assert!(
            first_pages > bar.first_pages_within_a_quarter().unwrap_or(0.0),
            "{both}"
        );
    }

    // Keeping fits between evaluations (as the daemon does) must not be what makes
    // these figures: fitted afresh at every evaluation, the suite scores as well.
    let fresh_params = ReplayParams {
        refit_every_step: true,
        ..params
    };
    let f = scored(&scenarios, &fresh_params);
    let fresh_summary = format!("fitting afresh:\n{f:#?}");
    assert!(f.alerted_share() >= 0.98, "{fresh_summary}");
    assert!(f.healthy_alerted_share() <= 0.03, "{fresh_summary}");
    assert_eq!(f.healthy_critical, 0, "{fresh_summary}");
    assert!(f.median_lead_fraction >= 0.68, "{fresh_summary}");
}

/// White noise is not a leak, however the regime search bends it: a random-family
/// draw (seed 7, random/163: flat at 44% of its limit, 1.3% noise) was read as a
/// 17Mi/h accelerating leak for 12 minutes after 52 hours, from a parabola's end
/// slope over a 3.3 h regime whose straight line hardly rose. At each of those
/// evaluations, on the fine tier alone, it is stable.
#[test]
fn a_bend_in_white_noise_is_not_growth() {
    use headroom::model::forecast::{forecast, ForecastParams};
    let all = headroom::sim::scenarios::random_family(7, 200);
    let s = all
        .iter()
        .find(|s| s.name.starts_with("random/163:"))
        .expect("the draw");
    assert!(s.name.ends_with("healthy"), "{}", s.name);
    let start = s.segments[0][0].at;
    for minute in (3120..=3136).step_by(2) {
        let now = start + minute * 60_000;
        let window: Vec<_> = s
            .segments
            .iter()
            .flatten()
            .filter(|x| x.at <= now && x.at > now - 6 * 3_600_000)
            .cloned()
            .collect();
        let f = forecast(
            &window,
            Some(s.limit_bytes),
            now,
            &ForecastParams::default(),
        );
        assert!(
            f.time_to_limit.is_none(),
            "+{minute}m: {:?} at {:?}B/s",
            f.pattern,
            f.growth_bytes_per_second
        );
    }
}

/// Regression guard on the random family (`cargo bench --bench accuracy` draws 200
/// scenarios from wide ranges; docs/forecasting.md). At seed 42, one the model's
/// choices were made on (seeds 7, 11 and 8 are kept for judging them), what the
/// bench measured, less a little: OOMs alerted 10 minutes ahead 98.5%, healthy
/// draws alerted 16.5%, the lasting alert's first page within 25% of the truth
/// 81.4% and its interval holding the truth 86.6%, ETA error 10.7%.
#[test]
fn the_random_family_stays_above_the_measured_bar() {
    use headroom::sim::scenarios::random_family;
    let scenarios = random_family(42, 200);
    let params = ReplayParams::default();
    let s = scored(&scenarios, &params);
    let summary = format!(
        "{:#?}",
        (
            s.oom_events,
            s.alerted_share(),
            s.healthy_alerted_share(),
            s.first_pages_within_a_quarter(),
            s.first_page_coverage(),
            s.median_eta_error,
            &s.missed
        )
    );
    assert!(s.oom_events >= 190, "{summary}");
    assert!(s.alerted_share() >= 0.98, "OOMs alerted: {summary}");
    assert!(
        s.healthy_alerted_share() <= 0.18,
        "healthy draws alerted: {summary}"
    );
    let first_pages = s.first_pages_within_a_quarter().expect("first pages");
    assert!(first_pages >= 0.80, "first pages within 25%: {summary}");
    let coverage = s.first_page_coverage().expect("first pages with intervals");
    assert!(coverage >= 0.85, "first pages' intervals: {summary}");
    let error = s.median_eta_error.expect("ETAs were given");
    assert!(error <= 0.115, "ETA error: {summary}");
}
