//! Fleet benchmark: N containers of 6h history backfilled into a real Prometheus, then
//! headroom's backfill and one steady-state poll against it. Prints wall time, bytes
//! and samples fetched, Prometheus requests, and store memory per container.
//!
//!     cargo bench --bench fleet                          # 1,000 containers
//!     HEADROOM_BENCH_CONTAINERS=10000 cargo bench --bench fleet
//!
//! Figures, not assertions: nothing here passes or fails on speed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{free_port, http_get, openmetrics, wait_for, SeriesSpec, TestPrometheus, MI};
use headroom::config::{Config, Overrides};
use headroom::pipeline::Pipeline;
use headroom::source::kubernetes::PrometheusSource;
use headroom::source::prometheus::PrometheusClient;

const STEP_S: i64 = 30;

fn history(containers: usize, start: i64, end: i64) -> String {
    let mut series = Vec::with_capacity(containers * 3);
    for i in 0..containers {
        let ns = format!("team-{}", i % 20);
        let pod = format!("svc-{}-7f8b9c6d4-{:05}", i / 3, i);
        let container = ["app", "istio-proxy", "log-shipper"][i % 3].to_string();
        let id = format!("/kubepods/burstable/pod{i}/c{i:08x}");
        let labels = |extra: &[(&str, &str)]| {
            let mut l: Vec<(String, String)> = vec![
                ("namespace".into(), ns.clone()),
                ("pod".into(), pod.clone()),
                ("container".into(), container.clone()),
            ];
            l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            l
        };
        let base = 50.0 + (i % 100) as f64;
        let growth = if i % 10 == 0 { 20.0 } else { 0.0 };
        series.push(
            SeriesSpec {
                metric: "container_memory_working_set_bytes".into(),
                labels: labels(&[("id", &id), ("image", "img:1")]),
                samples: vec![],
            }
            .every(start, end, STEP_S, move |t| {
                (base + growth * (t - start) as f64 / 3600.0 + ((t / STEP_S) % 7) as f64 * 0.3) * MI
            }),
        );
        series.push(
            SeriesSpec {
                metric: "kube_pod_container_resource_limits".into(),
                labels: labels(&[("resource", "memory"), ("unit", "byte")]),
                samples: vec![],
            }
            .every(start, end, STEP_S, |_| 512.0 * MI),
        );
        series.push(
            SeriesSpec {
                metric: "kube_pod_container_status_restarts_total".into(),
                labels: labels(&[]),
                samples: vec![],
            }
            .every(start, end, STEP_S, |_| 0.0),
        );
    }
    openmetrics(&series)
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let containers: usize = std::env::var("HEADROOM_BENCH_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // History up to now, so the daemon measured below sees live containers.
    let end = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        t - t % 30
    };
    let start = end - 6 * 3600;

    let t = Instant::now();
    let text = history(containers, start, end);
    let prometheus = TestPrometheus::start(&text);
    drop(text);
    println!(
        "fleet: {containers} containers, 6h at {STEP_S}s; promtool backfill + Prometheus start {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let config = Config::parse_str(
        &format!("prometheus:\n  url: {}\n", prometheus.url()),
        "bench",
        &Overrides::default(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = PrometheusClient::new(&config.prometheus).unwrap();
        let source = PrometheusSource::new(client.clone(), config.queries.clone(), vec![]);
        let mut pipeline = Pipeline::new(source, &config);
        let rss_before = rss_bytes();

        let t = Instant::now();
        pipeline.poll((end - 60) * 1000).await.unwrap();
        let backfill_wall = t.elapsed();
        let backfill = client.stats().snapshot();
        let rss_after = rss_bytes();

        let t = Instant::now();
        let summary = pipeline.poll(end * 1000).await.unwrap();
        let poll_wall = t.elapsed();
        let poll = client.stats().snapshot() - backfill;

        let t = Instant::now();
        let reports = pipeline.reports(end * 1000);
        let forecast_wall = t.elapsed();

        // What Prometheus spends: headroom's poll (above) against the rule users
        // would otherwise run, and against re-reading the whole lookback every poll.
        let rule = r#"predict_linear(container_memory_working_set_bytes{container!="",container!="POD"}[6h], 4*3600) > on(namespace,pod,container) group_left kube_pod_container_resource_limits{resource="memory"}"#;
        let before = client.stats().snapshot();
        let t = Instant::now();
        let fired = client.query(rule, end * 1000).await.unwrap();
        let rule_wall = t.elapsed();
        let rule_cost = client.stats().snapshot() - before;
        let mut naive = Pipeline::new(
            PrometheusSource::new(client.clone(), config.queries.clone(), vec![]),
            &config,
        );
        let before = client.stats().snapshot();
        let t = Instant::now();
        naive.poll(end * 1000).await.unwrap();
        let naive_wall = t.elapsed();
        let naive_cost = client.stats().snapshot() - before;
        println!(
            "prometheus: headroom poll {:.1} ms of requests; predict_linear rule {:.1} ms ({} series over the limit, {} bytes); re-reading the 6h lookback each poll {:.1} ms, {} bytes",
            poll.request_micros as f64 / 1000.0,
            rule_wall.as_secs_f64() * 1000.0,
            fired.len(),
            rule_cost.response_bytes,
            naive_wall.as_secs_f64() * 1000.0,
            naive_cost.response_bytes
        );

        let store = pipeline.store();
        let heap = store.heap_bytes();
        println!("backfill:  {:>8.2}s wall, {:>6} requests, {:>12} bytes, {:>10} samples",
            backfill_wall.as_secs_f64(), backfill.requests, backfill.response_bytes, backfill.samples);
        println!("poll:      {:>8.3}s wall, {:>6} requests, {:>12} bytes, {:>10} samples ({} new in store)",
            poll_wall.as_secs_f64(), poll.requests, poll.response_bytes, poll.samples, summary.ingest.samples_added);
        println!("forecast:  {:>8.3}s for {} containers ({:.0} forecasts/s)",
            forecast_wall.as_secs_f64(), reports.len(), reports.len() as f64 / forecast_wall.as_secs_f64());
        println!("store:     {} containers, {} heap bytes = {:.0} bytes/container (RSS grew {:.1} MiB during backfill)",
            store.len(), heap, heap as f64 / store.len() as f64, (rss_after.saturating_sub(rss_before)) as f64 / MI);
    });
    daemon_footprint(&prometheus, containers);
}

/// `headroom run` as a process against the same Prometheus: RSS and CPU once the
/// backfill is done, over a minute of 30-second polls.
fn daemon_footprint(prometheus: &TestPrometheus, containers: usize) {
    let port = free_port();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "prometheus:\n  url: {}\nserver:\n  listen_address: 127.0.0.1:{port}\n",
            prometheus.url()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "run",
            "--config",
            config.path().to_str().unwrap(),
            "--log-level",
            "warn",
        ])
        .spawn()
        .unwrap();
    let started = Instant::now();
    wait_for("headroom run to be ready", 300, || {
        matches!(http_get(port, "/readyz"), Ok((200, _))).then_some(())
    });
    let ready_after = started.elapsed();
    let stat = |pid: u32| -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of /proc/PID/stat (1-based).
        let ticks: f64 = fields
            .get(11)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        (rss_kb * 1024.0, ticks / 100.0)
    };
    let (rss_ready, cpu_ready) = stat(child.id());
    let window = std::time::Duration::from_secs(60);
    std::thread::sleep(window);
    let (rss, cpu) = stat(child.id());
    println!(
        "daemon:    {containers} containers: ready (backfilled) after {:.1}s; RSS {:.1} MiB at ready, {:.1} MiB after 60s of polling; CPU {:.2}s over those 60s ({:.2}% of a core)",
        ready_after.as_secs_f64(),
        rss_ready / MI,
        rss / MI,
        cpu - cpu_ready,
        (cpu - cpu_ready) / window.as_secs_f64() * 100.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
