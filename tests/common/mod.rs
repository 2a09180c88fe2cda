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
    http_request(port, "GET", path)
}

/// Minimal HTTP POST without a body (e.g. `/-/reload`); returns (status, body).
pub fn http_post(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "POST", path)
}

fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
pub fn reap_with_parent(pid: u32) {
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
        Self::start_streamed(|out| out.write_all(history.as_bytes()), prometheus_yml)
    }

    /// Like [`TestPrometheus::start_with_config`], with the OpenMetrics history written
    /// straight to promtool's input file by `write` (for histories too big to build
    /// as one string).
    pub fn start_streamed(
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
        prometheus_yml: &str,
    ) -> TestPrometheus {
        require_binary("prometheus", "prometheus");
        let promtool = require_binary("promtool", "prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let input = dir.path().join("history.om");
        {
            let file = std::fs::File::create(&input).expect("create promtool input");
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            write(&mut out).expect("write promtool input");
            std::io::Write::flush(&mut out).expect("write promtool input");
        }
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
        // Fleet benchmarks write gigabytes here; the blocks are all that is needed now.
        let _ = std::fs::remove_file(&input);
        Self::launch(dir, &data, prometheus_yml, &[])
    }

    /// Starts Prometheus on an existing TSDB directory (e.g. blocks a benchmark kept
    /// from an earlier run), with extra command-line flags.
    pub fn start_on(data: &Path, prometheus_yml: &str, flags: &[&str]) -> TestPrometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::launch(dir, data, prometheus_yml, flags)
    }

    fn launch(
        dir: tempfile::TempDir,
        data: &Path,
        prometheus_yml: &str,
        flags: &[&str],
    ) -> TestPrometheus {
        let prometheus = require_binary("prometheus", "prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, prometheus_yml).unwrap();
        let log_path = dir.path().join("prometheus.log");
        let port = free_port();
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=3650d".to_string(),
            "--log.level=warn".to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
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

    /// The process id, for benchmarks that read its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// The config `headroom run` would read for `prometheus` with `extra_yaml` after the
/// URL, and a pipeline on it, as the daemon builds them.
pub fn pipeline_on(
    prometheus: &TestPrometheus,
    extra_yaml: &str,
) -> (
    headroom::config::Config,
    headroom::pipeline::Pipeline<headroom::source::kubernetes::PrometheusSource>,
) {
    let config = headroom::config::Config::parse_str(
        &format!("prometheus:\n  url: {}\n{extra_yaml}", prometheus.url()),
        "test",
        &headroom::config::Overrides::default(),
    )
    .expect("test config is valid");
    let source = headroom::app::prometheus_source(&config).expect("a Prometheus source");
    let pipeline = headroom::pipeline::Pipeline::new(source, &config);
    (config, pipeline)
}

/// Starts `headroom run` on `config_yaml` (written to a temp file, returned so it
/// lives as long as the process) with `flags` after it, stdout discarded.
pub fn headroom_run(
    config_yaml: &str,
    flags: &[&str],
    stderr: Stdio,
) -> (Child, tempfile::NamedTempFile) {
    let config = tempfile::NamedTempFile::new().expect("temp config");
    std::fs::write(config.path(), config_yaml).expect("write temp config");
    let child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .arg("run")
        .arg("--config")
        .arg(config.path())
        .args(flags)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start headroom run");
    reap_with_parent(child.id());
    (child, config)
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

/// How the test receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Status(u16, Vec<(String, String)>, String),
    /// Waits this long, then answers 200.
    Slow(Duration),
    /// Closes the connection without answering.
    Drop,
}

/// One request the test receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
    /// The status it was answered with; `None` when the connection was dropped.
    pub status: Option<u16>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A local HTTP receiver standing in for Slack or a webhook endpoint: records every
/// request and answers from a script (then 200 "ok").
pub struct TestReceiver {
    pub port: u16,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl TestReceiver {
    pub fn start(script: Vec<Reply>) -> TestReceiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind"), script)
    }

    /// Listens on a port chosen before (for outage tests that start it late).
    pub fn start_at(port: u16, script: Vec<Reply>) -> TestReceiver {
        Self::start_on(
            TcpListener::bind(("127.0.0.1", port)).expect("bind"),
            script,
        )
    }

    fn start_on(listener: TcpListener, script: Vec<Reply>) -> TestReceiver {
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        let script = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            script,
        )));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let log = log.clone();
                let script = script.clone();
                std::thread::spawn(move || serve_one(stream, &log, &script));
            }
        });
        TestReceiver { port, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve_one(
    mut stream: TcpStream,
    log: &std::sync::Mutex<Vec<Received>>,
    script: &std::sync::Mutex<std::collections::VecDeque<Reply>>,
) {
    use std::io::{BufRead, BufReader};
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let reply = script.lock().unwrap().pop_front();
        log.lock().unwrap().push(Received {
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            at: Instant::now(),
            status: match &reply {
                Some(Reply::Drop) => None,
                Some(Reply::Status(s, _, _)) => Some(*s),
                Some(Reply::Slow(_)) | None => Some(200),
            },
        });
        let (status, extra, text) = match reply {
            Some(Reply::Drop) => return,
            Some(Reply::Slow(d)) => {
                std::thread::sleep(d);
                (200, vec![], "ok".to_string())
            }
            Some(Reply::Status(s, h, b)) => (s, h, b),
            None => (200, vec![], "ok".to_string()),
        };
        let mut response = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", text.len());
        for (k, v) in extra {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&text);
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A real Alertmanager on 127.0.0.1 (clustering off) with the given config.
pub struct TestAlertmanager {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl TestAlertmanager {
    pub fn start(config_yml: &str) -> TestAlertmanager {
        let binary = find_alertmanager();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yml).unwrap();
        let log_path = dir.path().join("alertmanager.log");
        let port = free_port();
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
            "--log.level=warn".to_string(),
        ];
        let child = spawn_logged(&binary, &args, &log_path);
        let mut am = TestAlertmanager {
            port,
            child,
            _dir: dir,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(http_get(port, "/-/ready"), Ok((200, _))) {
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!(
                    "alertmanager exited ({status}): {}",
                    std::fs::read_to_string(&am.log_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestAlertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian names the binary prometheus-alertmanager; upstream, alertmanager.
fn find_alertmanager() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["prometheus-alertmanager", "alertmanager"] {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    require_binary("prometheus-alertmanager", "prometheus-alertmanager")
}
