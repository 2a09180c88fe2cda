//! The test harness: real Prometheus (and later Alertmanager) processes on 127.0.0.1
//! with free ports, history backfilled with `promtool tsdb create-blocks-from
//! openmetrics`, and helpers to write that history.
//!
//! A missing binary fails the test with the command that installs it; nothing skips.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MI: f64 = 1048576.0;

/// Finds a binary on PATH or fails the test saying how to install it.
pub fn require_binary(name: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed, and this test needs the real thing. Install it with:\n    \
         apt-get update && apt-get install -y {debian_package}\n(.ci/run does this on CI)"
    );
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Minimal HTTP GET over a raw socket, for readiness probes; returns (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Kills `pid` when the current (test) process exits, even if it panics or is killed,
/// so a shared server in a `static` never outlives the test binary.
fn reap_with_parent(pid: u32) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill {pid} 2>/dev/null"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Time-ordered samples of one series, written as OpenMetrics.
#[derive(Debug, Clone)]
pub struct SeriesSpec {
    pub metric: String,
    pub labels: Vec<(String, String)>,
    /// (unix seconds, value); the value may be NaN.
    pub samples: Vec<(i64, f64)>,
}

impl SeriesSpec {
    pub fn new(metric: &str, labels: &[(&str, &str)]) -> Self {
        SeriesSpec {
            metric: metric.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: Vec::new(),
        }
    }

    /// Samples every `step_s` from `from_s` to `to_s` inclusive.
    pub fn every(mut self, from_s: i64, to_s: i64, step_s: i64, f: impl Fn(i64) -> f64) -> Self {
        let mut t = from_s;
        while t <= to_s {
            self.samples.push((t, f(t)));
            t += step_s;
        }
        self
    }
}

/// Renders series as an OpenMetrics document that promtool backfills. Series of one
/// metric family are written together, as the format requires.
pub fn openmetrics(series: &[SeriesSpec]) -> String {
    let mut families: Vec<&str> = series.iter().map(|s| s.metric.as_str()).collect();
    families.sort();
    families.dedup();
    let mut out = String::new();
    for family in families {
        writeln!(out, "# TYPE {family} gauge").unwrap();
        for s in series.iter().filter(|s| s.metric == family) {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            for (t, v) in &s.samples {
                let value = if v.is_nan() {
                    "NaN".to_string()
                } else {
                    format!("{v}")
                };
                writeln!(out, "{family}{{{}}} {value} {t}", labels.join(",")).unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A real Prometheus on 127.0.0.1 serving backfilled history.
pub struct TestPrometheus {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    /// How to start it again after [`TestPrometheus::stop`].
    command: (PathBuf, Vec<String>),
}

impl TestPrometheus {
    /// Backfills `history` (OpenMetrics text) and starts Prometheus on it.
    pub fn start(history: &str) -> TestPrometheus {
        Self::start_with_config(history, "global:\n  scrape_interval: 15s\n")
    }

    /// Like [`TestPrometheus::start`] with a custom prometheus.yml (e.g. scrape configs).
    pub fn start_with_config(history: &str, prometheus_yml: &str) -> TestPrometheus {
        let prometheus = require_binary("prometheus", "prometheus");
        let promtool = require_binary("promtool", "prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let input = dir.path().join("history.om");
        std::fs::write(&input, history).unwrap();
        let output = Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool could not backfill the history: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, prometheus_yml).unwrap();
        let log_path = dir.path().join("prometheus.log");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=3650d".to_string(),
            "--log.level=warn".to_string(),
        ];
        let child = spawn_logged(&prometheus, &args, &log_path);
        let mut p = TestPrometheus {
            port,
            child,
            dir,
            log_path,
            command: (prometheus, args),
        };
        p.wait_ready();
        p
    }

    /// Starts it again on the same port and data after [`TestPrometheus::stop`].
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn_logged(&self.command.0, &self.command.1, &self.log_path);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prometheus exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if matches!(http_get(self.port, "/-/ready"), Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops the process (for outage tests); the data directory stays.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_logged(binary: &Path, args: &[String], log_path: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    reap_with_parent(child.id());
    child
}

/// Polls `check` every 200 ms until it returns `Some`, failing with `what` after
/// `seconds`.
pub fn wait_for<T>(what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The current time floored to the minute, in Unix seconds: a base for backfilled
/// history that Prometheus' retention keeps.
pub fn recent_minute() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now - now % 60
}
