//! Fuzzing as a habit, within the stable toolchain (`cargo fuzz` needs nightly):
//! property tests that feed the parsers arbitrary bytes and mutations of real
//! inputs kept in the repository (the corpus: `tests/data/seed-live`'s saved
//! Prometheus answer, which is also what `backtest --series` loads, and
//! `config/headroom.example.yaml`), and the store's encoder any samples at all. Each must answer with a value or a clear error, never a panic.
//! They run with the other tests, a few hundred cases each (bounded time);
//! `PROPTEST_CASES=100000 cargo test --test fuzz` runs a longer campaign, and
//! proptest keeps any failure it finds under `tests/fuzz.proptest-regressions`.

use headroom::config::{Config, Overrides};
use headroom::model::Sample;
use headroom::source::prometheus::parse_range_response;
use headroom::store::Samples;
use proptest::prelude::*;

const SAVED_ANSWER: &[u8] = include_bytes!("data/seed-live/istio-proxy-realpace.json");
const EXAMPLE_CONFIG: &str = include_str!("../config/headroom.example.yaml");

/// `seed` with `edits` applied: each (position, byte, kind) overwrites, inserts or
/// deletes a byte, or truncates there.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(pos, byte, kind) in edits {
        if out.is_empty() {
            out.push(byte);
            continue;
        }
        let at = pos % out.len();
        match kind % 4 {
            0 => out[at] = byte,
            1 => out.insert(at, byte),
            2 => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/fuzz.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_prometheus_answer_of_any_bytes_parses_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_range_response(&bytes);
    }

    #[test]
    fn a_mutated_prometheus_answer_parses_or_is_refused(edits in edits()) {
        let body = mutate(SAVED_ANSWER, &edits);
        if let Ok((series, _)) = parse_range_response(&body) {
            for s in &series {
                prop_assert!(s.samples.iter().all(|(_, v)| v.is_finite()));
            }
            // The rest of the series file loader (`backtest --series`): the
            // containers as the store holds them, whatever the labels and times.
            let _ = headroom::backtest::containers(series, vec![], vec![], Some(128.0 * 1048576.0), &[], 30_000);
        }
    }

    #[test]
    fn a_config_of_any_text_loads_or_names_its_problems(text in "\\PC{0,400}") {
        if let Err(e) = Config::parse_str(&text, "fuzz.yaml", &Overrides::default()) {
            prop_assert!(!e.problems.is_empty());
        }
    }

    #[test]
    fn a_mutated_example_config_loads_or_names_its_problems(edits in edits()) {
        let text = String::from_utf8_lossy(&mutate(EXAMPLE_CONFIG.as_bytes(), &edits)).into_owned();
        if let Err(e) = Config::parse_str(&text, "fuzz.yaml", &Overrides::default()) {
            prop_assert!(!e.problems.is_empty());
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn the_store_encoder_takes_any_samples(
        samples in proptest::collection::vec(
            (any::<i64>(), prop_oneof![any::<f64>(), (0.0f64..1e12)]),
            0..200,
        ),
        step in 1i64..3_600_000,
    ) {
        let samples: Vec<Sample> = samples.into_iter().map(|(at, bytes)| Sample { at, bytes }).collect();
        let mut run = Samples::from_samples(step, &[]);
        for s in &samples {
            run.push(*s);
        }
        // What it kept is in time order and finite.
        let kept = run.to_vec();
        prop_assert!(kept.windows(2).all(|w| w[0].at < w[1].at));
        prop_assert!(kept.iter().all(|s| s.bytes.is_finite()));
    }
}
