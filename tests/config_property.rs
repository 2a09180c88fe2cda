//! Issue 18: every config that `headroom config check` accepts is one `headroom run`
//! can live with. Configs are drawn with each bounded setting at its lowest, its
//! highest or left out (from a fixed seed, so a run is repeatable); `config check` must accept or refuse them
//! cleanly (exit 0 or 2, never a panic), and each accepted one must start `run`
//! against a real Prometheus and a webhook, poll successfully, and stop on SIGTERM with exit 0
//! and no panic. 48 cases a run (each starts a daemon); proptest keeps any
//! failure under `tests/config_property.proptest-regressions`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    free_port, http_get, openmetrics, recent_minute, wait_for, SeriesSpec, TestPrometheus,
    TestReceiver, MI,
};
use proptest::prelude::*;
use proptest::strategy::Strategy;

/// The counts `config check` bounds.
const COUNTS: &[(&str, &str, &str)] = &[
    ("prometheus.max_points_per_request", "2", "11000"),
    ("prometheus.max_concurrent_requests", "1", "64"),
    ("prometheus.max_series", "1000", "10000000"),
    ("prometheus.max_response_bytes", "1Mi", "16Gi"),
    ("alerts.queue_capacity", "1", "100000"),
    ("server.metrics_max_containers", "1", "1000000"),
    ("forecast.pending_samples", "1", "100"),
];

struct World {
    prometheus: TestPrometheus,
    webhook: TestReceiver,
}

/// A real Prometheus holding two hours of a leaking container, and a webhook.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let end = recent_minute();
        let start = end - 2 * 3600;
        let labels = [("namespace", "prod"), ("pod", "p-1"), ("container", "app")];
        let mut ws = labels.to_vec();
        ws.push(("id", "/kubepods/p-1/app"));
        let mut limit = labels.to_vec();
        limit.extend([("resource", "memory"), ("unit", "byte")]);
        let series = vec![
            SeriesSpec::new("container_memory_working_set_bytes", &ws).every(start, end, 30, |t| {
                (100.0 + 100.0 * (t - start) as f64 / 7200.0) * MI
            }),
            SeriesSpec::new("kube_pod_container_resource_limits", &limit).every(
                start,
                end,
                30,
                |_| 256.0 * MI,
            ),
        ];
        World {
            prometheus: TestPrometheus::start(&openmetrics(&series)),
            webhook: TestReceiver::start(vec![]),
        }
    })
}

/// One setting: its dotted key and the value to write (`None`: left out).
fn setting(
    choices: Vec<(&'static str, String, String)>,
) -> impl Strategy<Value = Vec<(&'static str, Option<String>)>> {
    let each: Vec<_> = choices
        .into_iter()
        .map(|(key, low, high)| {
            prop_oneof![
                4 => Just(None),
                1 => Just(Some(low)),
                1 => Just(Some(high)),
            ]
            .prop_map(move |v| (key, v))
        })
        .collect();
    each
}

/// The durations `config check` bounds, at their bounds (its own table), and the
/// counts, at theirs.
fn durations() -> Vec<(&'static str, String, String)> {
    headroom::vocab::check::DURATION_BOUNDS
        .iter()
        .map(|&(key, low, high)| (key, format!("{low}ms"), format!("{high}ms")))
        .collect()
}

fn counts() -> Vec<(&'static str, String, String)> {
    COUNTS
        .iter()
        .map(|&(key, low, high)| (key, low.to_string(), high.to_string()))
        .collect()
}

/// The config text: the settings grouped under their sections, with Prometheus,
/// the listen address and the webhook filled in.
fn config_text(settings: &[(&str, Option<String>)], port: u16, world: &World) -> String {
    let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (key, value) in settings {
        if let (Some((section, name)), Some(value)) = (key.split_once('.'), value) {
            sections
                .entry(section)
                .or_default()
                .push(format!("  {name}: {value}"));
        }
    }
    sections
        .entry("prometheus")
        .or_default()
        .push(format!("  url: {}", world.prometheus.url()));
    sections
        .entry("server")
        .or_default()
        .push(format!("  listen_address: 127.0.0.1:{port}"));
    let mut text = String::new();
    for (section, lines) in sections {
        text.push_str(&format!("{section}:\n{}\n", lines.join("\n")));
    }
    text.push_str(&format!(
        "receivers:\n  webhook:\n    - name: hook\n      url: {}\n      timeout: 100ms\n",
        world.webhook.url("/hook")
    ));
    text
}

/// `config check` on `text`: `Some(true)` accepted, `Some(false)` refused (exit 2).
fn check(path: &std::path::Path) -> (Option<bool>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["config", "check"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let verdict = match out.status.code() {
        Some(0) => Some(true),
        Some(2) => Some(false),
        _ => None,
    };
    (verdict, text)
}

/// Starts `run` on the config at `path`, waits for its first poll (done or failed),
/// sends SIGTERM, and returns the exit status and the logs.
fn run_poll_stop(path: &std::path::Path, port: u16) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .arg("run")
        .arg("--config")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::reap_with_parent(child.id());
    let polled = (0..600).any(|_| {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        // A successful poll: the last one's time is set.
        let done = http_get(port, "/metrics").is_ok_and(|(_, body)| {
            body.lines().any(|l| {
                l.strip_prefix("headroom_last_successful_poll_timestamp_seconds ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|t| t > 0.0)
            })
        });
        if !done {
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_for("headroom to exit after SIGTERM", 30, || {
        child.try_wait().ok().flatten()
    });
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    if !polled {
        logs.push_str("\n(no successful poll within 60 s)");
        return (None, logs);
    }
    (status.code(), logs)
}

#[test]
fn every_config_check_accepts_runs_polls_and_stops() {
    use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
    let world = world();
    use proptest::test_runner::{RngAlgorithm, TestRng};
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 48,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
                "tests/config_property.proptest-regressions",
            ))),
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let (accepted, refused) = (
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    );
    let result = runner.run(
        &(setting(durations()), setting(counts())),
        |(durations, counts)| {
            let port = free_port();
            let settings: Vec<_> = durations.into_iter().chain(counts).collect();
            let text = config_text(&settings, port, world);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("headroom.yaml");
            std::fs::write(&path, &text).unwrap();
            let (verdict, said) = check(&path);
            let fail = |why: String| Err(TestCaseError::fail(why));
            match verdict {
                None => {
                    return fail(format!(
                        "config check neither accepted nor refused:\n{text}\n{said}"
                    ))
                }
                Some(false) => {
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(());
                }
                Some(true) => {}
            }
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (code, logs) = run_poll_stop(&path, port);
            if logs.contains("panicked") {
                return fail(format!("a panic:\n{text}\n{logs}"));
            }
            if code != Some(0) {
                return fail(format!(
                    "run did not poll and stop cleanly ({code:?}):\n{text}\n{logs}"
                ));
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    eprintln!("configs accepted and run: {accepted}; refused by config check: {refused}");
    // The draw must exercise run, not only config check.
    assert!(
        accepted >= 8,
        "only {accepted} of {} configs were accepted",
        accepted + refused
    );
}
