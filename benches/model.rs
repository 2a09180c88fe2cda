//! Micro-benchmark of the model alone: forecasts per second for one container's 6h
//! window at 30s (721 samples) of a few shapes, fitted from scratch and answered from
//! a kept fit (`model::reuse`), on one core; the long tier's record of a container
//! (its excursions and daily cycle, `model::excursions` and `model::daily`), made as
//! each hour closes, over a week and two of hours. Then `backtest`'s replay with each of its
//! outputs (`--format jsonl` and `table`), in input samples per second, over the
//! labeled suite's series written to nowhere.
//!
//!     cargo bench --bench model
//!
//! Timed by hand (median of 15 runs of a fixed batch) rather than with criterion: the
//! figure wanted is a rate to print, and criterion's dependencies would be compiled
//! by every CI run for it. Figures, not assertions.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use headroom::backtest::{self, Container, Output, ReplayParams};
use headroom::model::{forecast, ForecastParams, Hour, Memo, Record, Sample, SegmentFacts};
use headroom::sim::scenarios::suite;
use headroom::source::ContainerKey;

/// The allocator the `headroom` binary uses (src/main.rs), so `backtest`'s figures
/// are those of the command as shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MI: f64 = 1024.0 * 1024.0;
const STEP_MS: i64 = 30_000;

/// Bytes above the base at `t` seconds into the window.
type Shape = fn(f64) -> f64;

fn window(shape: Shape) -> Vec<Sample> {
    (0..721)
        .map(|i| {
            let noise = ((i * 7919) % 17) as f64 * 0.1 * MI;
            Sample {
                at: i * STEP_MS,
                bytes: ((100.0 * MI + shape(i as f64 * 30.0) + noise) / 4096.0).round() * 4096.0,
            }
        })
        .collect()
}

/// Median seconds per call of `f` over 15 batches of `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() / n as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let params = ForecastParams::default();
    let limit = Some(512.0 * MI);
    let shapes: [(&str, Shape); 4] = [
        ("flat", |_| 0.0),
        ("leak after 2h", |t| {
            20.0 * MI * ((t - 7200.0).max(0.0) / 3600.0)
        }),
        ("GC sawtooth", |t| 40.0 * MI * ((t % 1200.0) / 1200.0)),
        ("hourly batch ramps", |t| {
            30.0 * MI * ((t % 3600.0) / 3600.0).powi(2)
        }),
    ];
    println!("model: one container, 6h at 30s (721 samples), one core");
    for (name, shape) in shapes {
        let samples = window(shape);
        let now = samples[samples.len() - 1].at;
        let fit = per_call(2_000, || {
            black_box(forecast(black_box(&samples), limit, now, &params));
        });
        // A kept fit: the same container asked again within its bin (what most
        // containers cost at most polls), after one fit.
        let mut memo = Memo::default();
        let facts = SegmentFacts {
            start: samples[0].at,
            latest: samples[samples.len() - 1],
            step_ms: STEP_MS,
            daily: None,
        };
        let first = memo.forecast(
            facts,
            || Cow::Borrowed(&samples),
            || None,
            limit,
            now,
            &params,
        );
        let kept = per_call(200_000, || {
            black_box(memo.forecast(
                facts,
                || Cow::Borrowed(&samples),
                || None,
                limit,
                now + 1,
                &params,
            ));
        });
        println!(
            "  {name:<20} fit {:>7.1} µs = {:>8.0} forecasts/s; kept {} ({:.3} µs = {:.1}M/s); pattern {}",
            fit * 1e6,
            1.0 / fit,
            if memo.reuses > 0 { "yes" } else { "no: re-fitted" },
            kept * 1e6,
            1.0 / kept / 1e6,
            first.pattern.as_str()
        );
    }
    long_record();
    backtest_output();
}

/// The record the long tier makes as each hour closes: at the hour's turn every
/// container closes one, so a fleet pays this times its containers once an hour.
fn long_record() {
    println!("\nlong tier record, made as an hour closes, one core");
    // A day and a half: the day-over-day comparison's age (`model::day_over_day`),
    // before the daily cycle is looked for.
    for (label, count) in [
        ("36 hours", 36usize),
        (" 7 days", 7 * 24),
        ("14 days", 14 * 24),
    ] {
        let hours: Vec<Option<Hour>> = (0..count)
            .map(|h| {
                let x = h as f64;
                let mean = 1e9 + 2e5 * x + 1e8 * (std::f64::consts::TAU * x / 24.0).sin();
                Some(Hour {
                    max: mean * 1.05,
                    mean,
                })
            })
            .collect();
        let mut record = Record::default();
        let seconds = per_call(100, || {
            record = black_box(Record::of(black_box(&hours), &[]));
        });
        let cycle = per_call(100, || {
            black_box(headroom::model::daily::daily_cycle(
                black_box(&hours).iter().rev().copied(),
            ));
        });
        println!(
            "  {label} of hours  {:>6.1} µs, {:.1} of them the daily cycle ({}); 100,000 containers: {:.2} s an hour",
            seconds * 1e6,
            cycle * 1e6,
            if record.daily.is_some() { "found" } else { "none" },
            seconds * 100_000.0
        );
    }
}

/// `backtest`'s replay and output over the labeled suite (seeds 1–8), each series a
/// container evaluated at its own scrape interval (`--step` set to it), written to a
/// sink: samples read per second.
fn backtest_output() {
    let containers: Vec<(Container, ReplayParams)> = suite(8)
        .into_iter()
        .map(|s| {
            let params = ReplayParams {
                step_ms: s.step_seconds * 1000,
                lookback_ms: s.lookback_seconds * 1000,
                ..ReplayParams::default()
            };
            let container = Container {
                key: ContainerKey {
                    namespace: "prod".into(),
                    pod: s.name.replace([' ', '/', ':', ','], "-"),
                    container: "app".into(),
                    extra: Vec::new(),
                },
                segments: s.segments,
                limit_bytes: Some(s.limit_bytes),
            };
            (container, params)
        })
        .collect();
    let samples: usize = containers
        .iter()
        .flat_map(|(c, _)| &c.segments)
        .map(Vec::len)
        .sum();
    println!(
        "\nbacktest over the labeled suite ({} series, {samples} samples, an evaluation a sample), one core",
        containers.len()
    );
    for (name, output) in [("jsonl", Output::Jsonl), ("table", Output::Table)] {
        let mut lines = 0usize;
        let seconds = per_call(1, || {
            let mut out = CountingSink::default();
            for (c, params) in &containers {
                backtest::run(
                    std::slice::from_ref(c),
                    params,
                    i64::MIN,
                    output,
                    false,
                    &mut out,
                )
                .expect("a sink takes everything");
            }
            lines = out.lines;
        });
        println!(
            "  --format {name:<6} {:>6.3} s = {:>5.2}M samples/s ({lines} lines)",
            seconds,
            samples as f64 / seconds / 1e6
        );
    }
}

/// Discards what is written, counting lines (each written whole, as both outputs do).
#[derive(Default)]
struct CountingSink {
    lines: usize,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines += usize::from(buf.last() == Some(&b'\n'));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
