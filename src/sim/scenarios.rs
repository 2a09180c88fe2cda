//! The labeled scenario suite: every memory pattern headroom must handle, with several
//! parameter sets each, generated from seeds. Healthy scenarios must never alert;
//! leaking ones end in OOM events that must be alerted early.

use super::Rng;
use crate::model::Sample;

const MI: f64 = 1048576.0;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// 2026-03-19T00:00:00Z, the day of the seed incident: every scenario starts here.
pub const SUITE_EPOCH_SECONDS: i64 = 1_773_878_400;

/// The shapes of the suite, after the forecasting issue's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// 1. Flat for hours, then a steady leak from a rollout until the limit.
    LeakAfterChange,
    /// 2a. GC sawtooth whose floor rises.
    SawtoothLeak,
    /// 2b. GC sawtooth with a stable floor and peaks near the limit (healthy).
    SawtoothStable,
    /// 3a. Cache warm-up decelerating to a plateau below the limit (healthy).
    WarmupPlateau,
    /// 3b. Decelerating growth that still crosses the limit.
    WarmupCrossing,
    /// 4. A step up after a rollout, then flat (healthy).
    StepThenFlat,
    /// 5a. Daily seasonality with peaks below the limit (healthy).
    SeasonalHealthy,
    /// 5b. The same seasonality on top of a slow leak.
    SeasonalLeak,
    /// 6. Noise and short spikes (healthy).
    NoiseSpikes,
    /// 7. A leak that OOMs, restarts and leaks again.
    OomRestartCycles,
    /// 8. Periodic batch ramps released every cycle (healthy).
    BatchRamps,
    /// 9. Accelerating growth.
    Accelerating,
    /// 10. A slow leak over days at coarse resolution.
    SlowLeakDays,
    /// Drawn at random from wide ranges ([`random_family`]); not in the fixed suite.
    Random,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::LeakAfterChange => "leak_after_change",
            Kind::SawtoothLeak => "sawtooth_leak",
            Kind::SawtoothStable => "sawtooth_stable",
            Kind::WarmupPlateau => "warmup_plateau",
            Kind::WarmupCrossing => "warmup_crossing",
            Kind::StepThenFlat => "step_then_flat",
            Kind::SeasonalHealthy => "seasonal_healthy",
            Kind::SeasonalLeak => "seasonal_leak",
            Kind::NoiseSpikes => "noise_spikes",
            Kind::OomRestartCycles => "oom_restart_cycles",
            Kind::BatchRamps => "batch_ramps",
            Kind::Accelerating => "accelerating",
            Kind::SlowLeakDays => "slow_leak_days",
            Kind::Random => "random",
        }
    }

    pub const ALL: [Kind; 13] = [
        Kind::LeakAfterChange,
        Kind::SawtoothLeak,
        Kind::SawtoothStable,
        Kind::WarmupPlateau,
        Kind::WarmupCrossing,
        Kind::StepThenFlat,
        Kind::SeasonalHealthy,
        Kind::SeasonalLeak,
        Kind::NoiseSpikes,
        Kind::OomRestartCycles,
        Kind::BatchRamps,
        Kind::Accelerating,
        Kind::SlowLeakDays,
    ];
}

/// A memory limit being reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OomEvent {
    /// When the working set reached the limit (ms).
    pub at: i64,
    /// When the growth that led there began (ms).
    pub onset: i64,
}

/// One labeled series.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub kind: Kind,
    pub limit_bytes: f64,
    /// Scrape interval of the series (s).
    pub step_seconds: i64,
    /// The lookback a daemon would use for this resolution (s).
    pub lookback_seconds: i64,
    /// One run of samples per container incarnation; a restart starts the next.
    pub segments: Vec<Vec<Sample>>,
    /// Evaluations start here (ms): the samples before it are history a daemon would
    /// already hold for a long-running container (a daily cycle needs two days of it
    /// before it can be told from growth, a batch cycle a few repetitions).
    pub evaluate_from: i64,
    pub ooms: Vec<OomEvent>,
}

impl Scenario {
    pub fn healthy(&self) -> bool {
        self.ooms.is_empty()
    }

    pub fn sample_count(&self) -> usize {
        self.segments.iter().map(Vec::len).sum()
    }
}

/// What a generator returns for a time: seconds since the segment (the incarnation)
/// began, and since the series began (the wall clock, which a daily cycle follows
/// across restarts).
type Shape<'a> = Box<dyn FnMut(f64, f64, &mut Rng) -> f64 + 'a>;

struct Spec {
    limit: f64,
    step: i64,
    duration: i64,
    noise: f64,
    /// Growth onset within each segment (s since the segment began); None: healthy.
    onset: Option<f64>,
    /// After an OOM, restart this many times (pattern 7).
    restarts: usize,
    lookback: i64,
    /// Seconds of history before evaluations start.
    history: i64,
}

fn generate(name: String, kind: Kind, spec: Spec, mut shape: Shape<'_>, rng: &mut Rng) -> Scenario {
    let mut segments = vec![Vec::new()];
    let mut ooms = Vec::new();
    let mut segment_start = 0i64;
    let mut restarts_left = spec.restarts;
    let mut t = 0i64;
    while t <= spec.duration {
        let local = (t - segment_start) as f64;
        let value = (shape(local, t as f64, rng) + spec.noise * rng.normal()).max(0.0);
        let at = (SUITE_EPOCH_SECONDS + t) * 1000;
        let value = value.min(spec.limit);
        segments
            .last_mut()
            .expect("one segment")
            .push(Sample { at, bytes: value });
        if value >= spec.limit {
            ooms.push(OomEvent {
                at,
                onset: (SUITE_EPOCH_SECONDS + segment_start) * 1000
                    + (spec.onset.unwrap_or(0.0) * 1000.0) as i64,
            });
            if restarts_left == 0 {
                break;
            }
            restarts_left -= 1;
            // The kubelet restarts the container a little later.
            t += spec.step * 2;
            segment_start = t;
            segments.push(Vec::new());
            continue;
        }
        t += spec.step;
    }
    if spec.onset.is_none() {
        assert!(ooms.is_empty(), "healthy scenario {name} reached its limit");
    }
    Scenario {
        name,
        kind,
        evaluate_from: (SUITE_EPOCH_SECONDS + spec.history) * 1000,
        limit_bytes: spec.limit,
        step_seconds: spec.step,
        lookback_seconds: spec.lookback,
        segments,
        ooms,
    }
}

fn pick<T: Copy>(rng: &mut Rng, choices: &[T]) -> T {
    choices[(rng.next_u64() % choices.len() as u64) as usize]
}

/// One scenario of `kind` from `seed`.
pub fn scenario(kind: Kind, seed: u64) -> Scenario {
    let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(kind as u64));
    let limit = pick(&mut rng, &[128.0, 256.0, 512.0, 1024.0, 4096.0]) * MI;
    let name = format!("{}/seed={seed}", kind.name());
    let r = &mut rng;
    let six_hours = 6 * HOUR;
    match kind {
        Kind::Random => random_scenario(seed, 0),
        Kind::LeakAfterChange => {
            let base = limit * r.range(0.35, 0.6);
            let flat = r.range(1.0, 3.0) * HOUR as f64;
            let to_oom = r.range(1.5, 6.0) * HOUR as f64;
            let rate = (limit - base) / to_oom;
            let spec = Spec {
                limit,
                step: 30,
                duration: (flat + to_oom) as i64 + HOUR,
                noise: limit * r.range(0.002, 0.008),
                onset: Some(flat),
                restarts: 0,
                lookback: six_hours,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| base + (t - flat).max(0.0) * rate),
                r,
            )
        }
        Kind::SawtoothLeak => {
            let floor = limit * r.range(0.3, 0.45);
            let amplitude = limit * r.range(0.1, 0.25);
            let period = pick(r, &[45.0, 300.0, 900.0]);
            let flat = r.range(0.0, 2.0) * HOUR as f64;
            let to_oom = r.range(2.0, 7.0) * HOUR as f64;
            let rate = (limit - floor - amplitude) / to_oom;
            let phase = r.range(0.0, period);
            let spec = Spec {
                limit,
                step: 30,
                duration: (flat + to_oom) as i64 + 2 * HOUR,
                noise: limit * 0.003,
                onset: Some(flat),
                restarts: 0,
                lookback: six_hours,
                history: 2 * HOUR,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| {
                    floor + (t - flat).max(0.0) * rate + amplitude * ((t + phase) / period).fract()
                }),
                r,
            )
        }
        Kind::SawtoothStable => {
            let floor = limit * r.range(0.4, 0.6);
            let peak = limit * r.range(0.85, 0.93);
            let period = pick(r, &[45.0, 300.0, 900.0]);
            let phase = r.range(0.0, period);
            let spec = Spec {
                limit,
                step: 30,
                duration: 10 * HOUR,
                noise: limit * 0.003,
                onset: None,
                restarts: 0,
                lookback: six_hours,
                history: 2 * HOUR,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| floor + (peak - floor) * ((t + phase) / period).fract()),
                r,
            )
        }
        Kind::WarmupPlateau => {
            let base = limit * r.range(0.1, 0.3);
            let asymptote = limit * r.range(0.7, 0.88);
            let tau = r.range(20.0, 90.0) * MINUTE as f64;
            let spec = Spec {
                limit,
                step: 30,
                duration: 10 * HOUR,
                noise: limit * r.range(0.002, 0.006),
                onset: None,
                restarts: 0,
                lookback: six_hours,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| asymptote - (asymptote - base) * (-t / tau).exp()),
                r,
            )
        }
        Kind::WarmupCrossing => {
            let base = limit * r.range(0.1, 0.3);
            let asymptote = limit * r.range(1.15, 1.6);
            let tau = r.range(1.0, 4.0) * HOUR as f64;
            let spec = Spec {
                limit,
                step: 30,
                duration: 24 * HOUR,
                noise: limit * 0.004,
                onset: Some(0.0),
                restarts: 0,
                lookback: six_hours,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| asymptote - (asymptote - base) * (-t / tau).exp()),
                r,
            )
        }
        Kind::StepThenFlat => {
            let base = limit * r.range(0.3, 0.5);
            let step_up = limit * r.range(0.15, 0.3);
            let at = r.range(1.5, 3.0) * HOUR as f64;
            let ramp = pick(r, &[30.0, 60.0, 120.0]);
            let spec = Spec {
                limit,
                step: 30,
                duration: 9 * HOUR,
                noise: limit * r.range(0.002, 0.006),
                onset: None,
                restarts: 0,
                lookback: six_hours,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| base + step_up * ((t - at) / ramp).clamp(0.0, 1.0)),
                r,
            )
        }
        Kind::SeasonalHealthy | Kind::SeasonalLeak => {
            let peak = limit * r.range(0.78, 0.88);
            let amplitude = limit * r.range(0.12, 0.2);
            let mean = peak - amplitude;
            let phase = r.range(0.0, std::f64::consts::TAU);
            let leak = kind == Kind::SeasonalLeak;
            let to_oom_days = r.range(3.0, 4.0);
            let rate = if leak {
                (limit - peak) / (to_oom_days * DAY as f64)
            } else {
                0.0
            };
            let spec = Spec {
                limit,
                step: 300,
                duration: 5 * DAY,
                noise: limit * 0.005,
                onset: leak.then_some(0.0),
                restarts: 0,
                lookback: 3 * DAY,
                history: 2 * DAY,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| {
                    mean + amplitude * (std::f64::consts::TAU * t / DAY as f64 + phase).sin()
                        + rate * t
                }),
                r,
            )
        }
        Kind::NoiseSpikes => {
            let base = limit * r.range(0.4, 0.65);
            let noise = limit * r.range(0.005, 0.015);
            let every = r.range(20.0, 60.0) * MINUTE as f64;
            let height = limit * r.range(0.1, 0.2);
            let mut next_spike = every;
            let mut spike_left = 0;
            let spec = Spec {
                limit,
                step: 30,
                duration: 10 * HOUR,
                noise,
                onset: None,
                restarts: 0,
                lookback: six_hours,
                history: HOUR,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, rng| {
                    if t >= next_spike {
                        next_spike = t + every * rng.range(0.5, 1.5);
                        spike_left = 1 + (rng.next_u64() % 2) as i32;
                    }
                    if spike_left > 0 {
                        spike_left -= 1;
                        base + height * rng.range(0.6, 1.0)
                    } else {
                        base
                    }
                }),
                r,
            )
        }
        Kind::OomRestartCycles => {
            let base = limit * r.range(0.3, 0.45);
            let to_oom = r.range(1.5, 3.0) * HOUR as f64;
            let rate = (limit - base) / to_oom;
            let spec = Spec {
                limit,
                step: 30,
                duration: 12 * HOUR,
                noise: limit * 0.004,
                onset: Some(0.0),
                restarts: 2,
                lookback: six_hours,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| base + t * rate),
                r,
            )
        }
        Kind::BatchRamps => {
            let base = limit * r.range(0.3, 0.4);
            let top = limit * r.range(0.75, 0.88);
            let ramp = r.range(30.0, 60.0) * MINUTE as f64;
            let idle = r.range(10.0, 30.0) * MINUTE as f64;
            let cycle = ramp + idle;
            let spec = Spec {
                limit,
                step: 30,
                duration: 10 * HOUR,
                noise: limit * 0.004,
                onset: None,
                restarts: 0,
                lookback: six_hours,
                history: 3 * HOUR,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| {
                    let phase = t % cycle;
                    if phase < idle {
                        base
                    } else {
                        base + (top - base) * (phase - idle) / ramp
                    }
                }),
                r,
            )
        }
        Kind::Accelerating => {
            let base = limit * r.range(0.3, 0.4);
            let to_oom = r.range(2.0, 6.0) * HOUR as f64;
            let flat = r.range(0.5, 1.5) * HOUR as f64;
            // Quadratic growth reaching the limit `to_oom` after onset.
            let a = (limit - base) / (to_oom * to_oom);
            let spec = Spec {
                limit,
                step: 30,
                duration: (flat + to_oom) as i64 + HOUR,
                noise: limit * 0.004,
                onset: Some(flat),
                restarts: 0,
                lookback: six_hours,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| base + a * (t - flat).max(0.0).powi(2)),
                r,
            )
        }
        Kind::SlowLeakDays => {
            let base = limit * r.range(0.3, 0.5);
            let to_oom = r.range(2.0, 4.0) * DAY as f64;
            let rate = (limit - base) / to_oom;
            let spec = Spec {
                limit,
                step: 300,
                duration: 5 * DAY,
                noise: limit * 0.005,
                onset: Some(0.0),
                restarts: 0,
                lookback: DAY,
                history: 0,
            };
            generate(
                name,
                kind,
                spec,
                Box::new(move |t, _, _| base + t * rate),
                r,
            )
        }
    }
}

/// The seed incident: istio-proxy flat at 64Mi for three hours, then +32Mi/h from a
/// rollout until its 128Mi limit.
pub fn seed_incident() -> Scenario {
    let mut rng = Rng::new(19);
    let flat = 3.0 * HOUR as f64;
    let spec = Spec {
        limit: 128.0 * MI,
        step: 30,
        duration: 6 * HOUR,
        noise: 0.4 * MI,
        onset: Some(flat),
        restarts: 0,
        lookback: 6 * HOUR,
        history: 0,
    };
    generate(
        "seed_incident/istio-proxy".into(),
        Kind::LeakAfterChange,
        spec,
        Box::new(move |t, _, _| 64.0 * MI + (t - flat).max(0.0) * 32.0 * MI / HOUR as f64),
        &mut rng,
    )
}

/// The suite: `per_kind` seeds of every kind, plus the seed incident.
pub fn suite(per_kind: u64) -> Vec<Scenario> {
    let mut out = vec![seed_incident()];
    for kind in Kind::ALL {
        for seed in 1..=per_kind {
            out.push(scenario(kind, seed));
        }
    }
    out
}

/// `n` scenarios whose parameters are drawn at random from wide ranges (from `seed`):
/// limits from 64Mi to 16Gi, scrapes from 15 s to 5 min, a base of 10-70% of the
/// limit with noise, a daily cycle (on the wall clock: a restart does not reset
/// it), a GC sawtooth, and in about 60% of them a leak
/// from an onset within the first day to the limit in half an hour to three days,
/// straight, accelerating or decelerating, restarted up to twice. Each scenario's
/// name says what was drawn, so the worst cases read as their parameters. Healthy
/// ones stay under 95% of the limit.
pub fn random_family(seed: u64, n: usize) -> Vec<Scenario> {
    (0..n)
        .map(|i| random_scenario(seed.wrapping_mul(7919).wrapping_add(i as u64), i))
        .collect()
}

fn random_scenario(seed: u64, index: usize) -> Scenario {
    let mut rng = Rng::new(seed);
    let r = &mut rng;
    let limit = (64.0 * MI) * 2f64.powf(r.range(0.0, 8.0));
    let step = pick(r, &[15, 30, 60, 300]);
    let base = limit * r.range(0.1, 0.7);
    let noise = limit * r.range(0.0, 0.02);
    let daily = if r.uniform() < 0.5 {
        limit * r.range(0.02, 0.2)
    } else {
        0.0
    };
    let phase = r.range(0.0, DAY as f64);
    let (saw, saw_period) = if r.uniform() < 0.4 {
        (limit * r.range(0.03, 0.2), r.range(60.0, 1200.0))
    } else {
        (0.0, 1.0)
    };
    let headroom = limit - base - daily - saw - 3.0 * noise;
    let leaking = r.uniform() < 0.6 && headroom > 0.05 * limit;
    let onset = r.range(0.5, 24.0) * HOUR as f64;
    let to_oom = r.range(0.5, 72.0) * HOUR as f64;
    let bend = pick(r, &[0.7, 1.0, 1.0, 1.4]);
    let restarts = if leaking { pick(r, &[0, 0, 1, 2]) } else { 0 };
    let duration = if leaking {
        // Room for every run to reach the limit, whatever the daily phase then.
        (onset + 1.1 * to_oom) as i64 * (1 + restarts as i64) + DAY
    } else {
        (r.range(1.0, 4.0) * DAY as f64) as i64
    };
    let name = format!(
        "random/{index}: limit {:.0}Mi, {step}s scrape, base {:.0}%, noise {:.1}%, daily {:.0}%, sawtooth {:.0}%/{:.0}m, {}",
        limit / MI,
        100.0 * base / limit,
        100.0 * noise / limit,
        100.0 * daily / limit,
        100.0 * saw / limit,
        saw_period / 60.0,
        if leaking {
            format!(
                "leak from +{:.1}h to the limit in {:.1}h ({}), {restarts} restarts",
                onset / HOUR as f64,
                to_oom / HOUR as f64,
                match bend {
                    b if b < 1.0 => "decelerating",
                    b if b > 1.0 => "accelerating",
                    _ => "straight",
                }
            )
        } else {
            "healthy".to_string()
        }
    );
    let room = (limit - base - daily - saw).max(0.0);
    let spec = Spec {
        limit,
        step,
        duration,
        // A healthy draw's noise is added by its shape, kept under 95% of the limit.
        noise: if leaking { noise } else { 0.0 },
        onset: leaking.then_some(onset),
        restarts,
        lookback: 6 * HOUR,
        history: 6 * HOUR,
    };
    let shape: Shape<'_> = Box::new(move |t, wall, rng| {
        // The daily cycle follows the wall clock: a restart does not reset it.
        let cycle =
            daily * (0.5 + 0.5 * (std::f64::consts::TAU * (wall + phase) / DAY as f64).sin());
        let tooth = saw * ((t / saw_period).fract());
        if !leaking {
            return (base + cycle + tooth + noise * rng.normal()).min(0.95 * limit);
        }
        let leak = if t > onset {
            // Reaches the room left at the peaks' top at `to_oom` after the onset.
            room * ((t - onset) / to_oom).powf(bend) * 1.05
        } else {
            0.0
        };
        base + cycle + tooth + leak
    });
    generate(name, Kind::Random, spec, shape, &mut rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_is_deterministic_and_labeled() {
        let a = suite(2);
        let b = suite(2);
        assert_eq!(a.len(), 1 + 2 * Kind::ALL.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.segments, y.segments, "{}", x.name);
        }
        for s in &a {
            let leaking = !matches!(
                s.kind,
                Kind::SawtoothStable
                    | Kind::WarmupPlateau
                    | Kind::StepThenFlat
                    | Kind::SeasonalHealthy
                    | Kind::NoiseSpikes
                    | Kind::BatchRamps
            );
            assert_eq!(!s.healthy(), leaking, "{} ooms {:?}", s.name, s.ooms);
        }
    }

    #[test]
    fn the_random_family_is_reproducible_and_labeled() {
        let a = random_family(7, 60);
        let b = random_family(7, 60);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.name, &x.segments), (&y.name, &y.segments));
        }
        for s in &a {
            let top = s
                .segments
                .iter()
                .flatten()
                .map(|x| x.bytes)
                .fold(0.0, f64::max);
            if s.name.ends_with("healthy") {
                assert!(s.healthy() && top < s.limit_bytes, "{}", s.name);
            } else {
                assert!(!s.healthy(), "every leak reaches its limit: {}", s.name);
            }
        }
        assert!(a.iter().any(|s| s.healthy()) && a.iter().any(|s| !s.healthy()));
    }

    #[test]
    fn restart_cycles_have_one_oom_per_segment() {
        let s = scenario(Kind::OomRestartCycles, 1);
        assert_eq!(s.ooms.len(), 3);
        assert_eq!(s.segments.len(), 3);
        for (segment, oom) in s.segments.iter().zip(&s.ooms) {
            assert_eq!(segment.last().unwrap().at, oom.at);
            assert_eq!(segment[0].at, oom.onset);
        }
    }

    #[test]
    fn seed_incident_reaches_128mi_two_hours_after_onset() {
        let s = seed_incident();
        let oom = s.ooms[0];
        let hours = (oom.at - oom.onset) as f64 / 3_600_000.0;
        assert!((1.9..2.05).contains(&hours), "{hours}");
    }
}
