//! Fleet benchmark: N containers of mixed patterns written as OpenMetrics, backfilled
//! into a real Prometheus with promtool, then headroom against it: the backfill, the
//! long tier read back (as the daemon does behind readiness), 20 steady-state cycles
//! (fetch, parse, store, re-forecast, alert states), memory by part, and what
//! Prometheus spends (engine time and process CPU, its idle taken off) on a cycle next
//! to the predict_linear rule it replaces and next to re-reading the whole lookback
//! each poll. Then `headroom run` as a process: ready time, RSS and CPU over a window
//! of real polls.
//!
//!     cargo bench --bench fleet                                # 1,000 containers
//!     HEADROOM_BENCH_CONTAINERS=10000 cargo bench --bench fleet
//!     HEADROOM_BENCH_DATA=/var/tmp/fleet-10k HEADROOM_BENCH_CONTAINERS=10000 \
//!         cargo bench --bench fleet                            # keeps the TSDB blocks
//!     HEADROOM_BENCH_DATA=/var/tmp/fleet-100k HEADROOM_BENCH_CONTAINERS=100000 \
//!         cargo bench --bench fleet                            # blocks written in ~16 min
//!     HEADROOM_BENCH_BACKEND=synthetic HEADROOM_BENCH_CONTAINERS=100000 \
//!         cargo bench --bench fleet                            # headroom alone
//!
//! History runs from 6h before the start to 4h after it (2h past 20,000 containers),
//! so cycles can step ahead without waiting and the daemon sees new samples every
//! poll. With HEADROOM_BENCH_DATA the blocks are kept there and reused while they
//! still cover the run. HEADROOM_BENCH_BACKEND=synthetic serves the same generator
//! through a stand-in for the query API (benches/support/synthetic_api.rs) and
//! measures headroom alone.
//! HEADROOM_BENCH_CYCLES sets the number of cycles and HEADROOM_BENCH_CYCLES_ONLY
//! stops after them, for profiling a cycle with `perf record -D`;
//! HEADROOM_BENCH_PREPARE_ONLY stops once the blocks are written, and
//! HEADROOM_BENCH_DAEMON_SECONDS sets how long `headroom run` is watched (60). Figures, not
//! assertions: nothing here passes or fails on speed.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/synthetic_api.rs"]
mod synthetic_api;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{free_port, http_get, wait_for, TestPrometheus, MI};
use headroom::config::{Config, Overrides};
use headroom::pipeline::{Pipeline, Reported};
use headroom::source::kubernetes::PrometheusSource;
use headroom::source::prometheus::PrometheusClient;

/// The allocator `headroom run` uses (src/main.rs), so in-process figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STEP_S: i64 = 30;
/// Limits hold still and are read by instant queries: written every 4 minutes, within
/// Prometheus' 5-minute lookback, they cost promtool an eighth of the samples without
/// changing what those queries find. Restart counters are read raw, every sample, as
/// the working set is, so they are written every 30 s as a cluster scrapes them.
const LIMITS_STEP_S: i64 = 240;
const LOOKBACK_S: i64 = 6 * 3600;
/// History written past the start: up to 20,000 containers 4 hours (the blocks kept
/// with HEADROOM_BENCH_DATA stay usable for 3), beyond that 2 (usable for 1; each
/// hour is 12 million samples more for promtool at 100,000).
fn ahead_s(containers: usize) -> i64 {
    if containers > 20_000 {
        2 * 3600
    } else {
        4 * 3600
    }
}
const PAGE: f64 = 4096.0;

/// The value of container `i` at `t`, rounded to pages as the kernel counts them:
/// 10% leak from 2h into the history, 10% GC sawtooth, 10% hourly batch ramps, the
/// rest flat with noise.
fn working_set(i: usize, t: i64, start: i64) -> f64 {
    let base = (50 + i % 100) as f64 * MI;
    let noise = ((t / STEP_S * 7919 + i as i64 * 104_729) % 23) as f64 * 0.05 * MI;
    let x = (t - start) as f64;
    let bytes = match i % 10 {
        0 => base + 20.0 * MI * ((x - 2.0 * 3600.0).max(0.0) / 3600.0),
        1 => base + 40.0 * MI * ((x % 1200.0) / 1200.0),
        2 => base + 30.0 * MI * (((x + i as f64 * 60.0) % 3600.0) / 3600.0).powi(2),
        _ => base,
    } + noise;
    (bytes / PAGE).round() * PAGE
}

/// Writes the history as OpenMetrics: working sets and restart counters every 30 s as
/// they are scraped, limits every 4 minutes (each family written together, as the
/// format wants).
fn write_history(
    out: &mut dyn Write,
    containers: usize,
    start: i64,
    end: i64,
) -> std::io::Result<()> {
    let labels = |i: usize| {
        format!(
            "namespace=\"team-{}\",pod=\"svc-{}-7f8b9c6d4-{:05}\",container=\"{}\"",
            i % 50,
            i / 3,
            i / 3,
            ["app", "istio-proxy", "log-shipper"][i % 3]
        )
    };
    // One family after another, each series every `step`.
    let mut family = |name: &str, step: i64, line: &dyn Fn(usize, &str, i64) -> String| {
        writeln!(out, "# TYPE {name} gauge")?;
        for i in 0..containers {
            let l = labels(i);
            let mut t = start;
            while t <= end {
                writeln!(out, "{name}{} {t}", line(i, &l, t))?;
                t += step;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    family("container_memory_working_set_bytes", STEP_S, &|i, l, t| {
        format!(
            "{{{l},id=\"/kubepods/burstable/pod{i}/c{i:08x}\",image=\"img:1\"}} {}",
            working_set(i, t, start)
        )
    })?;
    family(
        "kube_pod_container_resource_limits",
        LIMITS_STEP_S,
        &|_, l, _| format!("{{{l},resource=\"memory\",unit=\"byte\"}} {}", 512.0 * MI),
    )?;
    family(
        "kube_pod_container_status_restarts_total",
        STEP_S,
        &|_, l, _| format!("{{{l}}} 0"),
    )?;
    writeln!(out, "# EOF")
}

fn unix_now() -> i64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    t - t % STEP_S
}

/// What headroom reads from: a real Prometheus on backfilled blocks, or (for fleets
/// too big to backfill here) the synthetic API in a child process.
enum Backend {
    Real(TestPrometheus),
    Synthetic {
        child: std::process::Child,
        port: u16,
    },
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Real(p) => p.url(),
            Backend::Synthetic { port, .. } => format!("http://127.0.0.1:{port}"),
        }
    }

    /// Seconds Prometheus' query engine has spent so far (queueing, preparing,
    /// evaluating and sorting: everything but HTTP and JSON), from its own metrics;
    /// zero for the synthetic API.
    fn engine_seconds(&self) -> f64 {
        let Backend::Real(prometheus) = self else {
            return 0.0;
        };
        let (_, text) = http_get(prometheus.port, "/metrics").unwrap();
        text.lines()
            .filter(|l| l.starts_with("prometheus_engine_query_duration_seconds_sum"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Backend {
    /// CPU seconds (user and system) the Prometheus process has used so far: what a
    /// poll really costs it, encoding the answers included; zero for the synthetic API.
    fn process_cpu_seconds(&self) -> f64 {
        match self {
            Backend::Real(prometheus) => process_cpu(&prometheus.pid().to_string()),
            Backend::Synthetic { .. } => 0.0,
        }
    }
}

/// utime and stime of a process (fields 14 and 15 of /proc/PID/stat), in seconds.
fn process_cpu(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    (fields.get(11).unwrap_or(&0.0) + fields.get(12).unwrap_or(&0.0)) / 100.0
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Synthetic { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The synthetic API as a child process (this benchmark's own binary), so that its
/// CPU is not counted as headroom's.
fn synthetic(containers: usize) -> Backend {
    let port = free_port();
    let start = unix_now() - LOOKBACK_S;
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(
            "HEADROOM_BENCH_SERVE",
            format!("{port} {containers} {start}"),
        )
        .spawn()
        .unwrap();
    wait_for("the synthetic API", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
    println!("fleet: {containers} containers served by the synthetic API (no Prometheus figures)");
    Backend::Synthetic { child, port }
}

/// The Prometheus to measure against, and the span its history covers.
fn prometheus(containers: usize) -> (TestPrometheus, i64, i64) {
    let yml = "global:\n  scrape_interval: 15s\n";
    // The predict_linear rule over 100,000 containers loads 72M samples at once, past
    // Prometheus' default --query.max-samples (50M): raised here so it can be measured.
    let flags = ["--query.max-samples=500000000"];
    let now = unix_now();
    let kept: Option<PathBuf> = std::env::var_os("HEADROOM_BENCH_DATA").map(PathBuf::from);
    if let Some(dir) = &kept {
        let meta = dir.join("headroom-bench.txt");
        if let Ok(text) = std::fs::read_to_string(&meta) {
            let fields: Vec<i64> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            if let [n, start, end] = fields[..] {
                // Room for the cycles (10 minutes ahead) and the daemon's window.
                if n as usize == containers && end - now >= 1200 + daemon_window().as_secs() as i64
                {
                    println!("fleet: reusing the TSDB blocks in {}", dir.display());
                    return (
                        TestPrometheus::start_on(&dir.join("data"), yml, &flags),
                        start,
                        end,
                    );
                }
            }
        }
    }
    let start = now - LOOKBACK_S;
    let end = now + ahead_s(containers);
    let t = Instant::now();
    let prometheus = match &kept {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir.join("data")).unwrap();
            backfill_into(dir, containers, start, end);
            std::fs::write(
                dir.join("headroom-bench.txt"),
                format!("{containers} {start} {end}\n"),
            )
            .unwrap();
            TestPrometheus::start_on(&dir.join("data"), yml, &flags)
        }
        None => {
            TestPrometheus::start_streamed(|out| write_history(out, containers, start, end), yml)
        }
    };
    println!(
        "fleet: {containers} containers, {}h at {STEP_S}s ({} samples); OpenMetrics + promtool backfill + Prometheus start {:.0}s",
        (end - start) / 3600,
        containers as i64 * (2 * ((end - start) / STEP_S + 1) + (end - start) / LIMITS_STEP_S + 1),
        t.elapsed().as_secs_f64()
    );
    (prometheus, start, end)
}

fn backfill_into(dir: &Path, containers: usize, start: i64, end: i64) {
    let input = dir.join("history.om");
    {
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&input).unwrap());
        write_history(&mut out, containers, start, end).unwrap();
        out.flush().unwrap();
    }
    let promtool = common::require_binary("promtool", "prometheus");
    let output = std::process::Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(input);
}

/// CPU time of this process so far (all threads), from the scheduler's nanosecond
/// accounting.
fn cpu_seconds() -> f64 {
    let mut ns: u64 = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                ns += text
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 / 1e9
}

fn rss_bytes(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if let Ok(spec) = std::env::var("HEADROOM_BENCH_SERVE") {
        let f: Vec<i64> = spec
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        synthetic_api::serve(f[0] as u16, f[1] as usize, f[2], working_set);
    }
    let containers: usize = std::env::var("HEADROOM_BENCH_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let cycles: usize = std::env::var("HEADROOM_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let prometheus = if std::env::var("HEADROOM_BENCH_BACKEND").as_deref() == Ok("synthetic") {
        synthetic(containers)
    } else {
        Backend::Real(prometheus(containers).0)
    };
    if std::env::var_os("HEADROOM_BENCH_PREPARE_ONLY").is_some() {
        // Blocks written (kept with HEADROOM_BENCH_DATA) and Prometheus started on them.
        return;
    }
    let now = unix_now();

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
    let cycles_only = runtime.block_on(async {
        let client = PrometheusClient::new(&config.prometheus).unwrap();
        let source = PrometheusSource::new(client.clone(), config.queries.clone(), vec![]);
        let mut pipeline = Pipeline::new(source, &config);

        // Backfill, as of `now`.
        let (engine, cpu, stats) = (prometheus.engine_seconds(), cpu_seconds(), client.stats().snapshot());
        let prometheus_cpu = prometheus.process_cpu_seconds();
        let t = Instant::now();
        pipeline.poll(now * 1000).await.unwrap();
        // What the daemon reports at each poll (see `pipeline::Reported`).
        let reported = Reported::Worth {
            min_use: config.server.metrics_min_use,
            most_urgent: headroom::api::MOST_URGENT_SHOWN,
        };
        pipeline.evaluate_reporting(now * 1000, reported);
        let backfill_wall = t.elapsed().as_secs_f64();
        let backfill_cpu = cpu_seconds() - cpu;
        let backfill_engine = prometheus.engine_seconds() - engine;
        let backfill = client.stats().snapshot() - stats;
        let backfill_prometheus_cpu = prometheus.process_cpu_seconds() - prometheus_cpu;
        println!(
            "backfill:  {:.2}s wall, {:.2}s CPU, {} requests, {:.1} MB, {} samples; Prometheus engine {:.2}s, process CPU {:.2}s",
            backfill_wall, backfill_cpu, backfill.requests, backfill.response_bytes as f64 / 1e6,
            backfill.samples, backfill_engine, backfill_prometheus_cpu
        );

        // The long tier's backfill, which the daemon reads a piece a poll after it is
        // ready: read whole here, so that the cycles below are the steady state. The
        // history written reaches 6h before the start, so this measures the reads'
        // fixed cost (a query per piece and function over every series), not 14 days
        // of samples.
        let (engine, cpu, stats) = (prometheus.engine_seconds(), cpu_seconds(), client.stats().snapshot());
        let prometheus_cpu = prometheus.process_cpu_seconds();
        let t = Instant::now();
        pipeline.read_all_long_history().await.unwrap();
        let long = client.stats().snapshot() - stats;
        println!(
            "long tier: {} days asked back in {:.2}s wall, {:.2}s CPU, {} requests, {:.1} MB; Prometheus engine {:.2}s, process CPU {:.2}s",
            pipeline.long_history_days().1, t.elapsed().as_secs_f64(), cpu_seconds() - cpu,
            long.requests, long.response_bytes as f64 / 1e6,
            prometheus.engine_seconds() - engine, prometheus.process_cpu_seconds() - prometheus_cpu
        );

        // Steady state: one cycle per poll interval, stepping ahead through history
        // that is already there (no waiting for the clock).
        let (mut walls, mut cpus, mut engines, mut bytes, mut requests) =
            (vec![], vec![], vec![], vec![], vec![]);
        // What Prometheus spends asked nothing (head compaction, its own scrape): an
        // idle baseline over 10 s, taken off the cycles' and the rule's CPU below.
        let idle_before = prometheus.process_cpu_seconds();
        let idle_started = Instant::now();
        if matches!(prometheus, Backend::Real(_)) {
            std::thread::sleep(std::time::Duration::from_secs(10));
        }
        let idle_rate =
            (prometheus.process_cpu_seconds() - idle_before) / idle_started.elapsed().as_secs_f64();
        let cycles_started = Instant::now();
        let prometheus_cpu_before = prometheus.process_cpu_seconds();
        let (fits_before, reuses_before) = pipeline.fit_counts();
        for k in 1..=cycles as i64 {
            let at = (now + k * STEP_S) * 1000;
            let (engine, cpu, stats) = (prometheus.engine_seconds(), cpu_seconds(), client.stats().snapshot());
            let t = Instant::now();
            pipeline.poll(at).await.unwrap();
            let reports = pipeline.evaluate_reporting(at, reported);
            std::hint::black_box(&reports);
            drop(reports);
            walls.push(t.elapsed().as_secs_f64());
            cpus.push(cpu_seconds() - cpu);
            engines.push(prometheus.engine_seconds() - engine);
            let delta = client.stats().snapshot() - stats;
            bytes.push(delta.response_bytes as f64);
            requests.push(delta.requests as f64);
        }
        let (fits, reuses) = pipeline.fit_counts();
        let (fits, reuses) = (fits - fits_before, reuses - reuses_before);
        // One poll's reports, held as the daemon holds them (the API keeps the last
        // poll's while the next is built: two at once at the peak): those worth it,
        // and the most urgent the status page shows.
        let reports = pipeline
            .evaluate_reporting((now + cycles as i64 * STEP_S) * 1000, reported)
            .reports;
        let reports_held = reports.len();
        let reports_bytes = reports.capacity() * std::mem::size_of::<headroom::report::ContainerReport>()
            + reports.iter().map(|r| r.heap_bytes()).sum::<usize>();
        drop(reports);
        // Per cycle, over all of them: the process's clock ticks are 10 ms.
        let cycle_prometheus_cpu_gross =
            (prometheus.process_cpu_seconds() - prometheus_cpu_before) / cycles as f64;
        // Per run of `n` requests over the time since `started`, its share of the idle
        // taken off.
        let net = |gross: f64, started: Instant, n: f64| {
            (gross - idle_rate * started.elapsed().as_secs_f64() / n).max(0.0)
        };
        let cycle_prometheus_cpu = net(cycle_prometheus_cpu_gross, cycles_started, cycles as f64);

        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
        // Every 5 minutes (10 cycles) a cycle also reads restart counters, OOM reasons
        // and limits: the median shows the common cycle, mean and max include those.
        println!(
            "cycle:     {cycles} cycles, CPU median {:.3}s / mean {:.3}s / max {:.3}s; wall median {:.3}s / max {:.3}s; Prometheus engine median {:.1} ms / mean {:.1} ms; {:.2} MB and {} requests (median); {:.0} fits + {:.0} kept forecasts per cycle",
            median(&mut cpus.clone()), mean(&cpus), max(&cpus),
            median(&mut walls.clone()), max(&walls),
            median(&mut engines.clone()) * 1000.0, mean(&engines) * 1000.0,
            median(&mut bytes) / 1e6, median(&mut requests),
            fits as f64 / cycles as f64, reuses as f64 / cycles as f64
        );
        let cycle_engine = mean(&engines);
        let last = (now + cycles as i64 * STEP_S) * 1000;
        let memory = |pipeline: &Pipeline<PrometheusSource>| {
            let store = pipeline.store();
            let heap = store.heap_use();
            let n = store.len().max(1) as f64;
            let mb = |b: usize| b as f64 / 1e6;
            println!(
                "memory:    store {} containers, {:.1} MB heap = {:.0} bytes/container (table {:.1} MB, slots with follow state {:.1}, keys {:.1}, fine tier {:.1}, long tier {:.1} = {:.0} B/container); beside it: one poll's reports {:.1} MB ({} of them, {:.0} B each); bench process RSS {:.0} MiB",
                store.len(), mb(heap.total()), heap.total() as f64 / n,
                mb(heap.table), mb(heap.slots), mb(heap.keys), mb(heap.fine), mb(heap.long), heap.long as f64 / n,
                mb(reports_bytes), reports_held,
                reports_bytes as f64 / reports_held.max(1) as f64,
                rss_bytes("self") / MI
            );
        };
        if std::env::var_os("HEADROOM_BENCH_CYCLES_ONLY").is_some()
            || !matches!(prometheus, Backend::Real(_))
        {
            memory(&pipeline);
        }
        if std::env::var_os("HEADROOM_BENCH_CYCLES_ONLY").is_some() {
            // For profiling the cycle (perf record -D past the backfill).
            return true;
        }

        if !matches!(prometheus, Backend::Real(_)) {
            return false;
        }
        // The rule users would otherwise run, on the same data at the same instant.
        let rule = r#"predict_linear(container_memory_working_set_bytes{container!="",container!="POD"}[6h], 4*3600) > on(namespace,pod,container) group_left kube_pod_container_resource_limits{resource="memory"}"#;
        let (mut rule_engine, mut rule_wall) = (vec![], vec![]);
        let mut fired = 0;
        let rule_cpu_before = prometheus.process_cpu_seconds();
        let rule_started = Instant::now();
        for _ in 0..5 {
            let engine = prometheus.engine_seconds();
            let t = Instant::now();
            match client.query(rule, last).await {
                Ok(result) => fired = result.len(),
                Err(e) => println!("rule:      failed: {e}"),
            }
            rule_wall.push(t.elapsed().as_secs_f64());
            rule_engine.push(prometheus.engine_seconds() - engine);
        }
        let rule_prometheus_cpu_gross = (prometheus.process_cpu_seconds() - rule_cpu_before) / 5.0;
        let rule_prometheus_cpu = net(rule_prometheus_cpu_gross, rule_started, 5.0);
        let rule_engine = median(&mut rule_engine);

        // The simplest alternative: re-read the whole lookback every poll.
        let mut naive = Pipeline::new(
            PrometheusSource::new(client.clone(), config.queries.clone(), vec![]),
            &config,
        );
        let (engine, stats) = (prometheus.engine_seconds(), client.stats().snapshot());
        let t = Instant::now();
        naive.poll(last).await.unwrap();
        let naive_wall = t.elapsed().as_secs_f64();
        let naive_engine = prometheus.engine_seconds() - engine;
        let naive_cost = client.stats().snapshot() - stats;
        drop(naive);
        println!(
            "prometheus: engine time per cycle: headroom {:.1} ms (mean over the cycles); predict_linear rule {:.1} ms ({:.0}x headroom; {:.2}s wall, {fired} series over the limit); re-reading the 6h lookback {:.1} ms ({:.2}s wall, {:.1} MB)",
            cycle_engine * 1000.0, rule_engine * 1000.0, rule_engine / cycle_engine.max(1e-9),
            median(&mut rule_wall), naive_engine * 1000.0, naive_wall, naive_cost.response_bytes as f64 / 1e6
        );
        println!(
            "prometheus: process CPU (user + system, answers encoded included, its idle {:.1} ms/s taken off): headroom {:.1} ms a cycle (mean over the cycles; {:.1} before the idle is taken off); predict_linear rule {:.1} ms an evaluation ({:.1}); {:.1}x headroom",
            idle_rate * 1000.0,
            cycle_prometheus_cpu * 1000.0, cycle_prometheus_cpu_gross * 1000.0,
            rule_prometheus_cpu * 1000.0, rule_prometheus_cpu_gross * 1000.0,
            rule_prometheus_cpu / cycle_prometheus_cpu.max(1e-9)
        );

        memory(&pipeline);
        false
    });
    drop(runtime);
    if !cycles_only {
        daemon_footprint(&prometheus, containers);
    }
}

/// How long `headroom run` is watched: HEADROOM_BENCH_DAEMON_SECONDS, a minute unless
/// set (an hour covers twelve 5-minute limits polls).
fn daemon_window() -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var("HEADROOM_BENCH_DAEMON_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    )
}

/// `headroom run` as a process against the same Prometheus: RSS and CPU once the
/// backfill is done, over [`daemon_window`] of real 30-second polls.
fn daemon_footprint(prometheus: &Backend, containers: usize) {
    let port = free_port();
    let (mut child, _config) = common::headroom_run(
        &format!(
            "prometheus:\n  url: {}\nserver:\n  listen_address: 127.0.0.1:{port}\n",
            prometheus.url()
        ),
        &["--log-level", "warn"],
        std::process::Stdio::inherit(),
    );
    let started = Instant::now();
    wait_for("headroom run to be ready", 900, || {
        matches!(http_get(port, "/readyz"), Ok((200, _))).then_some(())
    });
    let ready_after = started.elapsed();
    let pid = child.id().to_string();
    let cpu = process_cpu;
    let (rss_ready, cpu_ready) = (rss_bytes(&pid), cpu(&pid));
    let window = daemon_window();
    let mut peak = rss_ready;
    let until = Instant::now() + window;
    while Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_secs(1));
        peak = peak.max(rss_bytes(&pid));
    }
    let (rss, cpu_after) = (rss_bytes(&pid), cpu(&pid));
    println!(
        "daemon:    {containers} containers: ready (backfilled) after {:.1}s; RSS {:.0} MiB at ready, {:.0} MiB after {}s of polling (peak {:.0} MiB); CPU {:.2}s over those {}s ({:.1}% of a core)",
        ready_after.as_secs_f64(),
        rss_ready / MI,
        rss / MI,
        window.as_secs(),
        peak / MI,
        cpu_after - cpu_ready,
        window.as_secs(),
        (cpu_after - cpu_ready) / window.as_secs_f64() * 100.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
