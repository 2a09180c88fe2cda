//! headroom as a service: the demo as a newcomer runs it, and `headroom run` against a
//! real Prometheus that also scrapes it, through an outage and a SIGTERM.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::{
    free_port, http_get, http_post, openmetrics, wait_for, SeriesSpec, TestPrometheus, MI,
};

/// Waits up to `seconds` for `child` to exit: its status and what it wrote to
/// stdout (`stderr: false`) or stderr.
fn exit_and_output(
    child: &mut std::process::Child,
    what: &str,
    seconds: u64,
    stderr: bool,
) -> (std::process::ExitStatus, String) {
    let status = wait_for(what, seconds, || child.try_wait().ok().flatten());
    let mut text = String::new();
    if stderr {
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    } else {
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    }
    (status, text)
}

/// `headroom demo --speed 900` serving on `port`, with `extra` arguments; its stdout
/// and stderr go to `output()`.
fn demo(port: u16, extra: &[&str], output: fn() -> Stdio) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "demo",
            "--speed",
            "900",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    common::reap_with_parent(child.id());
    child
}

#[test]
fn demo_alerts_on_the_sidecar_and_serves_the_api() {
    let port = free_port();
    let mut child = demo(port, &[], Stdio::piped);
    let ready = wait_for("the demo to be ready", 30, || {
        match http_get(port, "/readyz") {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body).ok(),
            _ => None,
        }
    });
    // Ready with the fine tier; the long tier's backfill says how far it has come.
    assert_eq!(ready["ready"], true, "{ready}");
    let long = &ready["long_history"];
    assert!(
        long["days"].as_f64().is_some_and(|d| d > 0.0)
            && long["days_read"]
                .as_f64()
                .zip(long["days"].as_f64())
                .is_some_and(|(read, days)| (0.0..=days).contains(&read))
            && long["complete"].is_boolean(),
        "{ready}"
    );
    let critical = wait_for("the sidecar's critical alert in the API", 30, || {
        let (_, body) = http_get(port, "/api/v1/forecasts?severity=critical").ok()?;
        let reports: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        reports.into_iter().find(|r| r["alert"] == "critical")
    });
    assert_eq!(critical["container"], "istio-proxy");
    assert_eq!(critical["pod"], "payment-service-7f8b9c6d4-xk2nm");
    assert_eq!(critical["limit_bytes"], 128.0 * MI);
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains(r#"headroom_time_to_limit_seconds{container="istio-proxy",namespace="prod",pod="payment-service-7f8b9c6d4-xk2nm",sidecar="true"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"headroom_alert_state{container="istio-proxy",namespace="prod",pod="payment-service-7f8b9c6d4-xk2nm",severity="critical",sidecar="true"} 1"#));
    let (status, page) = http_get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("<svg") && page.contains("forecast-band") && page.contains("badge critical")
    );

    let (status, stdout) = exit_and_output(&mut child, "the demo to finish", 60, false);
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("ALERT CRITICAL: istio-proxy in prod/payment-service-7f8b9c6d4-xk2nm will reach its 128Mi limit in ~"),
        "{stdout}"
    );
    // The story under the summary: the rollout and the values change it carried.
    assert!(
        stdout.contains("        growth began 1 min after ReplicaSet payment-service-7f8b9c6d4 was created (changed: proxy_istio_io_config"),
        "{stdout}"
    );
    // Restarted, the sidecar leaks again as before: its alert goes on, forecast from
    // the run that ran out.
    assert!(!stdout.contains("resolved: istio-proxy"), "{stdout}");
    assert!(
        stdout.contains("and its alert goes on: it leaks again on the course of the run before"),
        "{stdout}"
    );
    assert!(stdout.contains("no other container alerted"), "{stdout}");
    assert!(
        !stdout.contains("ALERT CRITICAL: payment-service"),
        "{stdout}"
    );
}

/// History up to now (Prometheus' five-minute lookback keeps it current for the
/// test's few minutes), so a daemon on the wall clock sees a live leak: istio-proxy
/// grows from 64Mi toward its 128Mi limit. Nothing is written in the future: the TSDB
/// would then refuse the scraped samples older than its newest block.
fn live_history() -> String {
    let now = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        t - t % 30
    };
    let (start, end) = (now - 3 * 3600, now);
    let onset = now - 90 * 60;
    let labels = |c: &str| -> Vec<(String, String)> {
        [
            ("namespace", "prod"),
            ("pod", "payment-service-7f8b9c6d4-xk2nm"),
            ("container", c),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let with = |c: &str, extra: &[(&str, &str)]| {
        let mut l = labels(c);
        l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        l
    };
    let series = vec![
        SeriesSpec {
            metric: "container_memory_working_set_bytes".into(),
            labels: with("istio-proxy", &[("id", "/pod/proxy")]),
            samples: vec![],
        }
        .every(start, end, 30, |t| {
            64.0 * MI
                + (t - onset).max(0) as f64 * 25.0 * MI / 3600.0
                + ((t / 30) % 3) as f64 * 50_000.0
        }),
        SeriesSpec {
            metric: "container_memory_working_set_bytes".into(),
            labels: with("payment-service", &[("id", "/pod/app")]),
            samples: vec![],
        }
        .every(start, end, 30, |t| {
            118.0 * MI + ((t / 30) % 4) as f64 * 100_000.0
        }),
        SeriesSpec {
            metric: "kube_pod_container_resource_limits".into(),
            labels: with("istio-proxy", &[("resource", "memory")]),
            samples: vec![],
        }
        .every(start, end, 30, |_| 128.0 * MI),
        SeriesSpec {
            metric: "kube_pod_container_resource_limits".into(),
            labels: with("payment-service", &[("resource", "memory")]),
            samples: vec![],
        }
        .every(start, end, 30, |_| 256.0 * MI),
    ];
    openmetrics(&series)
}

#[test]
fn run_is_scraped_survives_an_outage_and_stops_on_sigterm() {
    let headroom_port = free_port();
    let prometheus_yml = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: headroom\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{headroom_port}']\n"
    );
    let mut prometheus = TestPrometheus::start_with_config(&live_history(), &prometheus_yml);
    let (mut child, _config) = common::headroom_run(
        &format!(
            "prometheus:\n  url: {}\n  timeout: 2s\nstore:\n  lookback: 3h\n  resolution: 2s\npoll:\n  interval: 2s\n  stale_after: 4s\nserver:\n  listen_address: 127.0.0.1:{headroom_port}\n",
            prometheus.url()
        ),
        &["--log-format", "json"],
        Stdio::piped(),
    );

    wait_for("headroom to be ready", 60, || {
        matches!(http_get(headroom_port, "/readyz"), Ok((200, _))).then_some(())
    });
    // The real Prometheus scrapes headroom and sees the leaking sidecar's forecast.
    let seen = wait_for(
        "Prometheus to scrape headroom_time_to_limit_seconds",
        60,
        || {
            let (_, body) = http_get(
            prometheus.port,
            "/api/v1/query?query=headroom_time_to_limit_seconds%7Bcontainer%3D%22istio-proxy%22%7D",
        )
        .ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let result = v["data"]["result"].as_array()?.first()?.clone();
            Some(result)
        },
    );
    assert_eq!(seen["metric"]["namespace"], "prod");
    let eta: f64 = seen["value"][1].as_str().unwrap().parse().unwrap();
    assert!(eta > 0.0 && eta < 3.0 * 3600.0, "ETA {eta}s");

    // Outage: readiness flips, the process stays up, forecasts are kept.
    prometheus.stop();
    let (_, body) = wait_for("readiness to flip during the outage", 60, || {
        http_get(headroom_port, "/readyz")
            .ok()
            .filter(|(s, _)| *s == 503)
    });
    assert!(body.contains("forecasts are stale: "), "{body}");
    let (status, forecasts) = http_get(headroom_port, "/api/v1/forecasts").unwrap();
    assert_eq!(status, 200);
    assert!(forecasts.contains(r#""stale":true"#), "{forecasts}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "headroom must not exit during an outage"
    );

    prometheus.restart();
    wait_for("readiness to return after the outage", 60, || {
        matches!(http_get(headroom_port, "/readyz"), Ok((200, _))).then_some(())
    });

    // One shutdown path: SIGTERM drains and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, logs) = exit_and_output(&mut child, "headroom to exit after SIGTERM", 20, true);
    assert!(status.success(), "exit {status}: {logs}");
    assert!(logs.contains(r#""message":"headroom starting""#), "{logs}");
    assert!(
        logs.contains(r#""message":"poll failed; keeping the last forecasts""#),
        "{logs}"
    );
    assert!(logs.contains(r#""message":"headroom stopped""#), "{logs}");
    // Recovery is said, with how long the outage lasted.
    assert!(
        logs.contains(r#""message":"polling Prometheus again""#) && logs.contains("outage_seconds"),
        "{logs}"
    );
}

/// Issue 16: SIGHUP and `POST /-/reload` reload the configuration as Prometheus
/// does. The new settings take effect (a shorter critical horizon turns the
/// sidecar's critical alert into a warning) while history and alert state carry on
/// (the alert is not fired again); a broken file is
/// refused with its problem, the one in force kept and the process alive.
#[test]
fn reload_takes_a_new_config_keeps_history_and_refuses_a_broken_one() {
    let port = free_port();
    let prometheus = TestPrometheus::start(&live_history());
    let config = |critical: &str| {
        format!(
            "prometheus:\n  url: {}\n  timeout: 2s\nstore:\n  lookback: 3h\n  resolution: 2s\npoll:\n  interval: 2s\nforecast:\n  critical_horizon: {critical}\n  warning_pending: 1s\n  critical_pending: 1s\n  pending_samples: 1\n  keep_firing_for: 1s\nserver:\n  listen_address: 127.0.0.1:{port}\n",
            prometheus.url()
        )
    };
    let (mut child, file) =
        common::headroom_run(&config("2h"), &["--log-format", "json"], Stdio::piped());
    let sidecar = || -> Option<serde_json::Value> {
        let (_, body) = http_get(port, "/api/v1/forecasts").ok()?;
        let reports: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
        reports
            .into_iter()
            .find(|r| r["container"] == "istio-proxy")
    };
    let before = wait_for("the sidecar's critical alert", 120, || {
        sidecar().filter(|r| r["alert"] == "critical")
    });
    let metric = |name: &str| -> Option<f64> {
        let (_, body) = http_get(port, "/metrics").ok()?;
        body.lines()
            .find(|l| l.starts_with(&format!("{name} ")))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    assert_eq!(metric("headroom_config_last_reload_successful"), Some(1.0));

    // SIGHUP with an unchanged file: reloaded, the process alive.
    let hup = |child: &std::process::Child| {
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let first_success = metric("headroom_config_last_reload_success_timestamp_seconds").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    hup(&child);
    wait_for("the SIGHUP reload", 20, || {
        metric("headroom_config_last_reload_success_timestamp_seconds")
            .filter(|t| *t > first_success)
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not end headroom"
    );

    // POST /-/reload with a critical horizon of 10 minutes: the alert is a warning now.
    std::fs::write(file.path(), config("10m")).unwrap();
    let (status, body) = http_post(port, "/-/reload").unwrap();
    assert_eq!(status, 200, "{body}");
    let after = wait_for("the alert to follow the new horizon", 30, || {
        sidecar().filter(|r| r["alert"] == "warning")
    });
    // The same incarnation (its start slides with the lookback, so it is not
    // compared); that the alert state carried on is what the events below show.
    assert_eq!(
        after["segments"][0]["container_id"], before["segments"][0]["container_id"],
        "the same incarnation: {after}"
    );
    let (_, events) = http_get(port, "/api/v1/events").unwrap();
    let events: serde_json::Value = serde_json::from_str(&events).unwrap();
    let kinds: Vec<&str> = events["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["container"] == "istio-proxy")
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["fired", "deescalated"], "{events:?}");

    // A broken file: refused with its problem, by key and line; nothing changes.
    std::fs::write(
        file.path(),
        config("10m").replace("interval: 2s", "interval: soon"),
    )
    .unwrap();
    let (status, body) = http_post(port, "/-/reload").unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("poll.interval"), "{body}");
    assert_eq!(metric("headroom_config_last_reload_successful"), Some(0.0));
    hup(&child);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a bad reload must not end headroom"
    );
    assert_eq!(sidecar().unwrap()["alert"], "warning");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let (status, logs) = exit_and_output(&mut child, "headroom to exit", 20, true);
    assert!(status.success(), "{logs}");
    assert!(
        logs.contains(r#""message":"configuration reloaded""#),
        "{logs}"
    );
    assert!(
        logs.contains(r#""message":"configuration reload failed; keeping the one in force""#),
        "{logs}"
    );
}

/// Issue 18: a flood of connections that never send a request cannot take the
/// probes down. Past the cap new connections are closed on arrival, so the file
/// descriptors last; the flood's own connections are closed once they have not sent
/// their headers in 10 s, and `/healthz` answers again.
#[test]
fn a_connection_flood_cannot_silence_the_probes() {
    let port = free_port();
    let mut child = demo(port, &["--forever"], Stdio::null);
    wait_for("the demo to be ready", 30, || {
        matches!(http_get(port, "/readyz"), Ok((200, _))).then_some(())
    });
    // More idle connections than the cap (512), each sending nothing.
    let flood: Vec<std::net::TcpStream> = (0..600)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(flood.len() >= 512, "{} connections opened", flood.len());
    let started = std::time::Instant::now();
    wait_for("/healthz to answer during the flood", 30, || {
        matches!(http_get(port, "/healthz"), Ok((200, _))).then_some(())
    });
    let waited = started.elapsed();
    // The flood's connections were closed by headroom, not left open.
    let mut closed = 0;
    for mut c in flood {
        c.set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 1];
        let gone = match c.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        closed += usize::from(gone);
    }
    assert!(
        closed >= 512,
        "{closed} idle connections closed by headroom"
    );
    assert!(waited < std::time::Duration::from_secs(25), "{waited:?}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "headroom survived the flood"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The status page as a browser paints it, while the sidecar alert fires. The demo
/// runs with --forever here, so the sidecar leaks, is killed and leaks again: at
/// --speed 900 an alert lasts a few seconds, and on a busy machine Chromium may paint
/// after it ended. Each try waits for the alert first; up to five tries.
#[test]
fn the_status_page_renders_during_the_demo() {
    let port = free_port();
    let mut child = demo(port, &["--forever"], Stdio::null);
    let mut last = String::new();
    for _ in 0..5 {
        wait_for("the sidecar's critical alert in the API", 120, || {
            let (_, body) = http_get(port, "/api/v1/forecasts?severity=critical").ok()?;
            body.contains("istio-proxy").then_some(())
        });
        match status_page_paints(port) {
            Ok(()) => {
                last.clear();
                break;
            }
            Err(e) => last = e,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(last.is_empty(), "{last}");
}

/// Takes a screenshot of the status page in headless Chromium and checks that the
/// charts rendered: the working-set line (#08519c), the limit line (#cb181d) and the
/// forecast band (#9ecae1 at 45%) are all painted. A missing Chromium fails the test
/// outright; a page that did not paint them is an `Err` saying what was missing.
fn status_page_paints(port: u16) -> Result<(), String> {
    let chromium = common::require_binary("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("status.png");
    let output = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    if !shot.exists() {
        return Err(format!(
            "chromium took no screenshot: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if let Ok(keep) = std::env::var("HEADROOM_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let near = |p: &[u8], rgb: (i32, i32, i32), tolerance: i32| {
        (p[0] as i32 - rgb.0).abs() <= tolerance
            && (p[1] as i32 - rgb.1).abs() <= tolerance
            && (p[2] as i32 - rgb.2).abs() <= tolerance
    };
    let count = |rgb: (i32, i32, i32), tolerance: i32| {
        pixels[..info.buffer_size()]
            .chunks(channels)
            .filter(|p| near(p, rgb, tolerance))
            .count()
    };
    let working_set = count((0x08, 0x51, 0x9c), 40);
    let limit = count((0xcb, 0x18, 0x1d), 40);
    // #9ecae1 at 45% over white.
    let band = count((0xd2, 0xe6, 0xf3), 12);
    if working_set > 300 && limit > 300 && band > 300 {
        Ok(())
    } else {
        Err(format!(
            "status page pixels: working-set line {working_set}, limit line {limit}, \
             forecast band {band} (each must exceed 300)"
        ))
    }
}
