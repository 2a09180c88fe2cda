//! Scores forecasts against labeled scenarios: how many OOM events were alerted early
//! enough, how early, how often healthy series alerted, how far off the time to limit
//! was and how often its interval held the truth. The same scoring runs for headroom
//! and for the two `predict_linear` alert rules users write today, on the same series.

use crate::model::{Sample, Severity};
use crate::sim::scenarios::Scenario;

use super::{replay, ReplayParams};

/// A Prometheus alerting rule `predict_linear(working_set[range], horizon) >= limit`
/// with `for: pending`, emulated exactly: least squares over the raw samples in
/// `[t - range, t]`, intercept at `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictLinearRule {
    pub range_seconds: f64,
    pub horizon_seconds: f64,
    pub pending_seconds: f64,
}

impl PredictLinearRule {
    pub fn label(&self) -> String {
        format!(
            "predict_linear([{}], {}) for {}",
            humantime::format_duration(std::time::Duration::from_secs(self.range_seconds as u64)),
            humantime::format_duration(std::time::Duration::from_secs(self.horizon_seconds as u64)),
            humantime::format_duration(std::time::Duration::from_secs(self.pending_seconds as u64)),
        )
    }
}

/// `predict_linear`'s regression at `at` over `samples` already cut to the range:
/// (intercept at `at`, slope per second). Needs two samples, as Prometheus does.
pub fn predict_linear_fit(samples: &[Sample], at: i64) -> Option<(f64, f64)> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for s in samples {
        let x = (s.at - at) as f64 / 1000.0;
        sx += x;
        sy += s.bytes;
        sxx += x * x;
        sxy += x * s.bytes;
    }
    let cov = sxy - sx * sy / n;
    let var = sxx - sx * sx / n;
    if var == 0.0 {
        return Some((sy / n, 0.0));
    }
    let slope = cov / var;
    Some((sy / n - slope * sx / n, slope))
}

/// What one system did at one evaluation of one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub at: i64,
    pub alert: Option<Severity>,
    /// Time to limit (s), with interval when the system gives one.
    pub eta: Option<f64>,
    pub eta_lower: Option<f64>,
    pub eta_upper: Option<Option<f64>>,
}

impl Outcome {
    /// Whether its interval held `truth` (s); `None` without an interval.
    fn interval_holds(&self, truth: f64) -> Option<bool> {
        let (lower, upper) = (self.eta_lower?, self.eta_upper?);
        Some(lower <= truth && upper.is_none_or(|u| truth <= u))
    }
}

/// Replays a scenario through headroom.
pub fn headroom_outcomes(scenario: &Scenario, params: &ReplayParams) -> Vec<Outcome> {
    let mut out = Vec::new();
    let params = ReplayParams {
        lookback_ms: scenario.lookback_seconds * 1000,
        step_ms: params.step_ms.max(scenario.step_seconds * 1000),
        ..*params
    };
    replay(
        &scenario.segments,
        Some(scenario.limit_bytes),
        &params,
        scenario.evaluate_from,
        |e| {
            let eta = e.forecast.time_to_limit;
            out.push(Outcome {
                at: e.at,
                alert: e.alert,
                eta: eta.map(|t| t.seconds),
                eta_lower: eta.map(|t| t.lower_seconds),
                eta_upper: eta.map(|t| t.upper_seconds),
            });
        },
    );
    out
}

/// Replays a scenario through a `predict_linear` rule, at the same evaluation times.
pub fn rule_outcomes(scenario: &Scenario, rule: &PredictLinearRule, step_ms: i64) -> Vec<Outcome> {
    rule_replay(
        &scenario.segments,
        scenario.limit_bytes,
        step_ms.max(scenario.step_seconds * 1000),
        scenario.evaluate_from,
        rule,
    )
}

/// [`rule_outcomes`] over any segments (oldest first) against `limit_bytes`,
/// evaluated every `step_ms` from `evaluate_from` on.
pub fn rule_replay(
    segments: &[Vec<Sample>],
    limit_bytes: f64,
    step_ms: i64,
    evaluate_from: i64,
    rule: &PredictLinearRule,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let Some(first) = segments.iter().find_map(|s| s.first()) else {
        return out;
    };
    let last = segments
        .iter()
        .filter_map(|s| s.last())
        .map(|s| s.at)
        .max()
        .unwrap_or(first.at);
    let step = step_ms.max(1);
    let range_ms = (rule.range_seconds * 1000.0) as i64;
    let mut current = 0;
    let mut pending_since: Option<i64> = None;
    let mut at = first.at + step;
    if evaluate_from > at {
        at += (evaluate_from - at + step - 1) / step * step;
    }
    while at <= last {
        while current + 1 < segments.len()
            && segments[current + 1].first().is_some_and(|s| s.at <= at)
        {
            current += 1;
        }
        let segment = &segments[current];
        let end = segment.partition_point(|s| s.at <= at);
        // Prometheus drops a series five minutes after its last sample (staleness).
        let fresh = end > 0 && at - segment[end - 1].at <= 300_000;
        let begin = segment[..end].partition_point(|s| s.at < at - range_ms);
        let fit = if fresh {
            predict_linear_fit(&segment[begin..end], at)
        } else {
            None
        };
        let condition = fit.is_some_and(|(intercept, slope)| {
            intercept + slope * rule.horizon_seconds >= limit_bytes
        });
        if condition {
            pending_since.get_or_insert(at);
        } else {
            pending_since = None;
        }
        let firing =
            pending_since.is_some_and(|s| (at - s) as f64 >= rule.pending_seconds * 1000.0);
        let eta = fit.and_then(|(intercept, slope)| {
            (slope > 0.0).then(|| ((limit_bytes - intercept) / slope).max(0.0))
        });
        out.push(Outcome {
            at,
            alert: firing.then_some(Severity::Critical),
            eta,
            eta_lower: None,
            eta_upper: None,
        });
        at += step;
    }
    out
}

/// The accuracy table's figures for one system over a suite.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Score {
    pub oom_events: usize,
    /// OOM events with an alert firing 10 minutes before them.
    pub alerted_10m_ahead: usize,
    pub critical_10m_ahead: usize,
    /// Median over OOM events of the lead of the alert episode that covered the OOM
    /// (0 for events not alerted), seconds.
    pub median_lead_seconds: f64,
    /// Median of lead / (OOM time − growth onset).
    pub median_lead_fraction: f64,
    pub healthy_series: usize,
    pub healthy_alerted: usize,
    pub healthy_critical: usize,
    /// Median |ETA − truth| / truth over evaluations with ETA under 12h.
    pub median_eta_error: Option<f64>,
    /// Share of those evaluations whose interval held the truth (None: no interval).
    pub interval_coverage: Option<f64>,
    pub eta_evaluations: usize,
    /// |ETA − truth| / truth at the first evaluation of each alert episode that lasts
    /// to an OOM, with a time to limit ahead: what the page a person reads first said,
    /// with the scenario's name and the OOM's minute, in order of the events.
    pub first_page_errors: Vec<(String, f64)>,
    /// How old the incarnation was at each of those first pages (hours), in the same
    /// order: a daily cycle is known from the long tier only after two days of it.
    pub first_page_ages_hours: Vec<f64>,
    /// Of those first pages with an interval, how many, and how many held the
    /// truth: the issue asks that the interval a person reads first hold it.
    pub first_pages_with_interval: usize,
    pub first_pages_covered: usize,
    /// |ETA − truth| / truth at the first alerted evaluation with a time to limit
    /// ahead, from the growth's onset on, of each run that one of those episodes
    /// ends (an alert before the onset was a false alarm), whether or not the alert
    /// that page began lasted: an alert that resolved and fired again was read
    /// first, and leaving it out would reward a model for flapping.
    pub first_page_of_run_errors: Vec<(String, f64)>,
    /// Names of OOM scenarios missed and healthy scenarios that alerted, for reading.
    pub missed: Vec<String>,
    pub false_alarms: Vec<String>,
}

impl Score {
    pub fn alerted_share(&self) -> f64 {
        ratio(self.alerted_10m_ahead, self.oom_events)
    }
    pub fn critical_share(&self) -> f64 {
        ratio(self.critical_10m_ahead, self.oom_events)
    }
    pub fn healthy_alerted_share(&self) -> f64 {
        ratio(self.healthy_alerted, self.healthy_series)
    }
    pub fn healthy_critical_share(&self) -> f64 {
        ratio(self.healthy_critical, self.healthy_series)
    }
    /// The median and the 90th percentile of [`Score::first_page_errors`].
    pub fn first_page_error_quantiles(&self) -> Option<(f64, f64)> {
        let mut e: Vec<f64> = self.first_page_errors.iter().map(|x| x.1).collect();
        if e.is_empty() {
            return None;
        }
        e.sort_by(f64::total_cmp);
        let at = |q: f64| e[((e.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.9)))
    }
    /// The first pages whose incarnation's age (hours) is kept by `keep` (see
    /// [`Score::first_page_ages_hours`]): how many, and the share within 25% of the
    /// truth.
    pub fn first_pages_by_age(&self, keep: impl Fn(f64) -> bool) -> (usize, Option<f64>) {
        let errors: Vec<f64> = self
            .first_page_errors
            .iter()
            .zip(&self.first_page_ages_hours)
            .filter(|(_, &age)| keep(age))
            .map(|(e, _)| e.1)
            .collect();
        let n = errors.len();
        let within = errors.iter().filter(|&&e| e <= 0.25).count();
        (n, (n > 0).then(|| within as f64 / n as f64))
    }

    /// The share of first pages with an interval whose interval held the truth.
    pub fn first_page_coverage(&self) -> Option<f64> {
        (self.first_pages_with_interval > 0)
            .then(|| ratio(self.first_pages_covered, self.first_pages_with_interval))
    }

    /// The share of first pages within 25% of the truth.
    pub fn first_pages_within_a_quarter(&self) -> Option<f64> {
        self.first_pages_by_age(|_| true).1
    }

    /// The share of [`Score::first_page_of_run_errors`] within 25% of the truth, and
    /// how many there are.
    pub fn first_pages_of_runs_within_a_quarter(&self) -> (usize, Option<f64>) {
        let e = &self.first_page_of_run_errors;
        let within = e.iter().filter(|x| x.1 <= 0.25).count();
        (
            e.len(),
            (!e.is_empty()).then(|| within as f64 / e.len() as f64),
        )
    }
}

/// A first page's scenario and OOM, named for reading, and its relative error: the
/// time to limit `eta` it said against the `truth` (s).
fn page_error(scenario: &Scenario, oom_at: i64, truth: f64, page: &Outcome) -> (String, f64) {
    let eta = page.eta.unwrap_or(f64::NAN);
    let interval = match (page.eta_lower, page.eta_upper) {
        (Some(lower), Some(upper)) => format!(
            " ({:.0}m–{})",
            lower / 60.0,
            upper.map_or("never".to_string(), |u| format!("{:.0}m", u / 60.0))
        ),
        _ => String::new(),
    };
    (
        format!(
            "{} (OOM at +{}m, paged {:.0}m ahead with ~{:.0}m{interval})",
            scenario.name,
            (oom_at - scenario.segments[0][0].at) / 60_000,
            truth / 60.0,
            eta / 60.0
        ),
        (eta - truth).abs() / truth,
    )
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// Scores outcomes of every scenario (same order as `scenarios`).
pub fn score(scenarios: &[Scenario], outcomes: &[Vec<Outcome>]) -> Score {
    let mut s = Score::default();
    let mut leads = Vec::new();
    let mut fractions = Vec::new();
    let mut errors = Vec::new();
    let mut covered = 0usize;
    let mut with_interval = 0usize;
    const AHEAD_MS: i64 = 600_000;
    const ETA_CAP_S: f64 = 12.0 * 3600.0;
    for (scenario, outcomes) in scenarios.iter().zip(outcomes) {
        if scenario.healthy() {
            s.healthy_series += 1;
            let alerted = outcomes.iter().any(|o| o.alert.is_some());
            if alerted {
                s.healthy_alerted += 1;
                s.false_alarms.push(scenario.name.clone());
            }
            if outcomes.iter().any(|o| o.alert == Some(Severity::Critical)) {
                s.healthy_critical += 1;
            }
            continue;
        }
        let mut previous_oom = i64::MIN;
        for oom in &scenario.ooms {
            s.oom_events += 1;
            let window: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.at > previous_oom && o.at <= oom.at)
                .collect();
            let check_at = oom.at - AHEAD_MS;
            // The evaluation 10 minutes before the OOM, and the episode it belongs to.
            let episode_start = |wanted: &dyn Fn(&Outcome) -> bool| -> Option<i64> {
                let index = window.iter().rposition(|o| o.at <= check_at)?;
                if !wanted(window[index]) {
                    return None;
                }
                let mut start = index;
                while start > 0 && wanted(window[start - 1]) {
                    start -= 1;
                }
                Some(window[start].at)
            };
            let any = episode_start(&|o: &Outcome| o.alert.is_some());
            let critical = episode_start(&|o: &Outcome| o.alert == Some(Severity::Critical));
            if any.is_some() {
                s.alerted_10m_ahead += 1;
            } else {
                s.missed.push(format!(
                    "{} (OOM at +{}m)",
                    scenario.name,
                    (oom.at - scenario.segments[0][0].at) / 60_000
                ));
            }
            if critical.is_some() {
                s.critical_10m_ahead += 1;
            }
            // The first page of this run: the episode's first evaluation with a time to
            // limit ahead (an episode held through a restart begins at the kill before,
            // at the limit; its run's own first word is the update that follows).
            let first = any.and_then(|start| {
                window
                    .iter()
                    .find(|o| o.at >= start && o.eta.is_some_and(|e| e > 0.0))
            });
            if let Some(first) = first {
                let truth = (oom.at - first.at) as f64 / 1000.0;
                if first.eta.is_some() && truth > 0.0 {
                    s.first_page_errors
                        .push(page_error(scenario, oom.at, truth, first));
                    let incarnation = scenario
                        .segments
                        .iter()
                        .rev()
                        .filter_map(|segment| segment.first())
                        .find(|x| x.at <= first.at)
                        .map_or(first.at, |x| x.at);
                    s.first_page_ages_hours
                        .push((first.at - incarnation) as f64 / 3_600_000.0);
                    if let Some(held) = first.interval_holds(truth) {
                        s.first_pages_with_interval += 1;
                        s.first_pages_covered += usize::from(held);
                    }
                }
            }
            let first_of_run = any.and_then(|_| {
                window.iter().find(|o| {
                    o.at >= oom.onset && o.alert.is_some() && o.eta.is_some_and(|e| e > 0.0)
                })
            });
            if let Some(page) = first_of_run {
                let truth = (oom.at - page.at) as f64 / 1000.0;
                if truth > 0.0 {
                    s.first_page_of_run_errors
                        .push(page_error(scenario, oom.at, truth, page));
                }
            }
            let lead = any.map_or(0.0, |start| (oom.at - start) as f64 / 1000.0);
            leads.push(lead);
            let growth = (oom.at - oom.onset) as f64 / 1000.0;
            if growth > 0.0 {
                fractions.push((lead / growth).min(1.0));
            }
            for o in &window {
                let truth = (oom.at - o.at) as f64 / 1000.0;
                let Some(eta) = o.eta else { continue };
                if eta >= ETA_CAP_S || truth <= 0.0 || o.at < oom.onset {
                    continue;
                }
                errors.push((eta - truth).abs() / truth);
                if let Some(held) = o.interval_holds(truth) {
                    with_interval += 1;
                    covered += usize::from(held);
                }
            }
            previous_oom = oom.at;
        }
    }
    s.median_lead_seconds = median(&mut leads).unwrap_or(0.0);
    s.median_lead_fraction = median(&mut fractions).unwrap_or(0.0);
    s.eta_evaluations = errors.len();
    s.median_eta_error = median(&mut errors);
    s.interval_coverage = (with_interval > 0).then(|| covered as f64 / with_interval as f64);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_linear_matches_the_definition() {
        // y = 100 + 2/s · (t - at): intercept 100 at `at`, slope 2.
        let at = 1_000_000;
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                at: at - 30_000 * i,
                bytes: 100.0 - 2.0 * 30.0 * i as f64,
            })
            .rev()
            .collect();
        let (intercept, slope) = predict_linear_fit(&samples, at).unwrap();
        assert!((intercept - 100.0).abs() < 1e-6);
        assert!((slope - 2.0).abs() < 1e-9);
    }
}
