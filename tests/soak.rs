//! Issue 18: the soak. `headroom run` polls every second for `HEADROOM_SOAK_SECONDS`
//! (150 unless set: 150 polls, over an hour of polling at the default 30 s) through a
//! proxy in front of a real Prometheus that cycles through faults: slow answers past
//! the timeout, 503s, garbage, answers over the byte cap, samples three hours in the
//! future, dropped connections, and a stretch of 10 s when Prometheus is gone. Its
//! webhook flaps: 503s, 429s with Retry-After, dropped connections and slow answers
//! between the 200s. Containers step to their limit and back, one after
//! another, so alerts fire and resolve throughout.
//!
//! Asserted: the daemon never exits or panics; every alert transition the lifecycle
//! saw (`/api/v1/events`) reached the webhook exactly once (counting only the
//! requests it answered 2xx); the RSS stays under 256 MiB with no growth between the
//! first and the last quarter. The figures (polls, faults, transitions, deliveries,
//! RSS min/max) are printed.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    free_port, http_get, openmetrics, wait_for, Reply, SeriesSpec, TestPrometheus, TestReceiver, MI,
};

const CONTAINERS: i64 = 8;
const LIMIT: f64 = 256.0 * MI;

/// What the proxy did, by fault.
#[derive(Default)]
struct Faults {
    requests: AtomicU64,
    slow: AtomicU64,
    unavailable: AtomicU64,
    garbage: AtomicU64,
    huge: AtomicU64,
    future: AtomicU64,
    dropped: AtomicU64,
}

/// The working set of container `j` at unix second `t`, the soak starting at `s`
/// and lasting `len` seconds: 50% of the limit, and at the limit for 20 s of every
/// episode (at the limit is critical at once);
/// container `j`'s episodes start `j * 11` s apart, one every `CONTAINERS * 11` s,
/// and none in the last 40 s (so every alert has resolved before the end).
fn working_set(j: i64, t: i64, s: i64, len: i64) -> f64 {
    let period = CONTAINERS * 11;
    let since = t - s - 15 - j * 11;
    let at_limit = since >= 0 && t < s + len - 40 && since % period < 20;
    if at_limit {
        LIMIT
    } else {
        0.5 * LIMIT + (t % 3) as f64 * 4096.0
    }
}

fn history(s: i64, len: i64) -> String {
    let (from, to) = (s - 600, s + len + 120);
    let mut series = Vec::new();
    for j in 0..CONTAINERS {
        let pod = format!("soak-{j}");
        let labels = [
            ("namespace", "soak"),
            ("pod", pod.as_str()),
            ("container", "app"),
        ];
        let id = format!("/kubepods/pod{j}/app");
        let mut ws = labels.to_vec();
        ws.push(("id", id.as_str()));
        series.push(
            SeriesSpec::new("container_memory_working_set_bytes", &ws).every(
                from,
                to,
                1,
                move |t| working_set(j, t, s, len),
            ),
        );
        let mut limit = labels.to_vec();
        limit.extend([("resource", "memory"), ("unit", "byte")]);
        series.push(
            SeriesSpec::new("kube_pod_container_resource_limits", &limit).every(
                from,
                to,
                15,
                |_| LIMIT,
            ),
        );
    }
    openmetrics(&series)
}

/// Reads one HTTP/1.1 request (head and Content-Length body) from `stream`.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    buf.extend(body);
    Some(buf)
}

/// Sends `request` to Prometheus as HTTP/1.0 (no chunking, closed at the end) and
/// returns the status and body.
fn forward(upstream: u16, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    let text = String::from_utf8_lossy(request);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let first = lines.next()?.replace("HTTP/1.1", "HTTP/1.0");
    let mut out = format!("{first}\r\n");
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with("connection:") && !lower.starts_with("host:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "Host: 127.0.0.1:{upstream}\r\nConnection: close\r\n\r\n{body}"
    ));
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.write_all(out.as_bytes()).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = String::from_utf8_lossy(&answer[..split])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, answer[split + 4..].to_vec()))
}

/// Moves every sample of a matrix or vector answer three hours ahead.
fn into_the_future(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    let shift = |p: &mut serde_json::Value| {
        if let Some(t) = p[0].as_f64() {
            p[0] = serde_json::json!(t + 3.0 * 3600.0);
        }
    };
    if let Some(result) = v["data"]["result"].as_array_mut() {
        for series in result {
            if let Some(values) = series["values"].as_array_mut() {
                values.iter_mut().for_each(shift);
            }
            if series.get("value").is_some() {
                shift(&mut series["value"]);
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// A proxy in front of Prometheus on `upstream` that injects a fault into one
/// request in 25 (each of six kinds in turn, drawn at random), and drops everything while `gone` says.
fn faulty_proxy(
    upstream: u16,
    faults: Arc<Faults>,
    gone: impl Fn() -> bool + Send + Sync + 'static,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gone = Arc::new(gone);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let faults = faults.clone();
            let gone = gone.clone();
            std::thread::spawn(move || {
                let Some(request) = read_request(&mut stream) else {
                    return;
                };
                let i = faults.requests.fetch_add(1, Ordering::Relaxed);
                if gone() {
                    faults.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // One request in 25 gets a fault, drawn by a fixed-seed hash of its
                // index (a fixed cycle fell on the same query of every poll).
                let draw = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % 150;
                match draw {
                    0 => {
                        faults.slow.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(1500));
                    }
                    1 => {
                        faults.unavailable.fetch_add(1, Ordering::Relaxed);
                        return respond(
                            &mut stream,
                            503,
                            br#"{"status":"error","errorType":"unavailable","error":"overloaded"}"#,
                        );
                    }
                    2 => {
                        faults.garbage.fetch_add(1, Ordering::Relaxed);
                        return respond(
                            &mut stream,
                            200,
                            br#"{"status":"success","data":{"resultType":"matr"#,
                        );
                    }
                    3 => {
                        faults.huge.fetch_add(1, Ordering::Relaxed);
                        let mut body = br#"{"status":"success","padding":""#.to_vec();
                        body.extend(std::iter::repeat_n(b'x', 2 << 20));
                        body.extend(br#""}"#);
                        return respond(&mut stream, 200, &body);
                    }
                    4 => {
                        faults.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => {}
                }
                let Some((status, body)) = forward(upstream, &request) else {
                    return;
                };
                let body = if draw == 5 {
                    faults.future.fetch_add(1, Ordering::Relaxed);
                    into_the_future(&body)
                } else {
                    body
                };
                respond(&mut stream, status, &body);
            });
        }
    });
    port
}

/// The flapping webhook's script: between runs of 200s, a 503, a 429 with
/// Retry-After, a dropped connection and a slow 200 (under the client's timeout).
fn flapping(replies: usize) -> Vec<Reply> {
    (0..replies)
        .map(|i| match i % 9 {
            2 => Reply::Status(503, vec![], "unavailable".into()),
            4 => Reply::Status(
                429,
                vec![("Retry-After".into(), "1".into())],
                "slow down".into(),
            ),
            6 => Reply::Drop,
            8 => Reply::Slow(Duration::from_millis(100)),
            _ => Reply::Status(200, vec![], "ok".into()),
        })
        .collect()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// (namespace/pod/container, kind, from, to) of a transition or a delivery.
type Transition = (String, String, String, String);

/// The transitions `/api/v1/events` lists, each with the time of the poll that saw
/// it (which tells two alike transitions apart).
fn transitions(body: &str) -> Vec<(String, Transition)> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let at = t["at"].as_str().unwrap_or_default().to_string();
            let key = (
                format!("{}/{}/{}", t["namespace"], t["pod"], t["container"]).replace('"', ""),
                t["kind"].as_str().unwrap_or_default().to_string(),
                t["from"].to_string(),
                t["to"].to_string(),
            );
            (at, key)
        })
        .collect()
}

#[test]
fn a_soak_through_faults_loses_no_transition_and_repeats_none() {
    let len: i64 = std::env::var("HEADROOM_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let now = chrono::Utc::now().timestamp();
    let s = now + 20;
    let prometheus = TestPrometheus::start(&history(s, len));
    let faults = Arc::new(Faults::default());
    let started = Instant::now();
    let offset = s - now;
    // Prometheus is gone for 10 s a third of the way in.
    let gone_from = (offset + len / 3) as u64;
    let proxy = faulty_proxy(prometheus.port, faults.clone(), move || {
        (gone_from..gone_from + 10).contains(&started.elapsed().as_secs())
    });
    let webhook = TestReceiver::start(flapping(len as usize * 2));
    let port = free_port();
    let config = format!(
        "prometheus:\n  url: http://127.0.0.1:{proxy}\n  timeout: 1s\n  max_response_bytes: 1Mi\n\
         store:\n  lookback: 10m\n  resolution: 1s\n\
         poll:\n  interval: 1s\n  stale_after: 30s\n  limits_interval: 15s\n\
         forecast:\n  min_history: 1m\n  warning_pending: 1s\n  critical_pending: 1s\n  pending_samples: 1\n  keep_firing_for: 1s\n\
         alerts:\n  retry_initial: 100ms\n  retry_max: 2s\n\
         server:\n  listen_address: 127.0.0.1:{port}\n\
         receivers:\n  webhook:\n    - name: hook\n      url: {}\n      timeout: 1s\n",
        webhook.url("/hook")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headroom.yaml");
    std::fs::write(&path, config).unwrap();
    let log_path = dir.path().join("headroom.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    // A failed assertion must not leave the daemon running.
    common::reap_with_parent(pid);

    // Soak: the RSS each second, the process alive throughout.
    let mut rss = Vec::new();
    let mut seen_all: std::collections::BTreeSet<(String, Transition)> = Default::default();
    while started.elapsed() < Duration::from_secs((offset + len) as u64) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "headroom exited during the soak:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        // The events list holds the last 100 transitions: read every second, merged.
        if let Ok((200, body)) = http_get(port, "/api/v1/events") {
            seen_all.extend(transitions(&body));
        }
        // From the first poll on (before it, the process is still loading).
        if let Some(kib) = rss_kib(pid).filter(|_| started.elapsed() > Duration::from_secs(5)) {
            rss.push(kib);
        }
        std::thread::sleep(Duration::from_secs(1));
    }

    // The last episodes have ended; wait for the lifecycle to settle and every
    // transition to be delivered, then compare.
    let delivered = || -> Vec<Transition> {
        webhook
            .requests()
            .iter()
            .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|r| {
                let v = r.json();
                let a = &v["alert"];
                (
                    format!("{}/{}/{}", a["namespace"], a["pod"], a["container"]).replace('"', ""),
                    v["event"].as_str().unwrap_or_default().to_string(),
                    a["previous_severity"].to_string(),
                    a["severity"].to_string(),
                )
            })
            .collect()
    };
    // Every transition the lifecycle counted (`/api/v1/events` lists the last 100).
    let counted = || -> Option<usize> {
        let (_, body) = http_get(port, "/metrics").ok()?;
        let total: f64 = body
            .lines()
            .filter(|l| l.starts_with("headroom_alert_transitions_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        Some(total as usize)
    };
    let mut events = r#"{"alerts":[]}"#.to_string();
    let mut total = 0;
    let settled = Instant::now();
    while settled.elapsed() < Duration::from_secs(60) {
        if let (Ok((200, body)), Some(n)) = (http_get(port, "/api/v1/events"), counted()) {
            events = body;
            total = n;
            if n > 0 && delivered().len() >= n {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = wait_for("headroom to exit after SIGTERM", 30, || {
        child.try_wait().ok().flatten()
    });
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();

    let count = |list: Vec<Transition>| {
        let mut m: BTreeMap<Transition, usize> = BTreeMap::new();
        for t in list {
            *m.entry(t).or_default() += 1;
        }
        m
    };
    seen_all.extend(transitions(&events));
    let seen: Vec<Transition> = seen_all.into_iter().map(|(_, t)| t).collect();
    let n_seen = seen.len();
    let requests = webhook.requests();
    let answered_ok = requests
        .iter()
        .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
        .count();
    let q = rss.len() / 4;
    let (first, last) = (&rss[..q.max(1)], &rss[rss.len() - q.max(1)..]);
    let f = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "soak: {len} s of 1 s polls; Prometheus requests {} (slow {}, 503 {}, garbage {}, over the byte cap {}, future samples {}, dropped or gone {}); \
         transitions {total}; webhook requests {} ({answered_ok} answered 2xx); RSS min {} KiB, max {} KiB (first quarter max {}, last quarter max {}); exit {status}",
        f(&faults.requests), f(&faults.slow), f(&faults.unavailable), f(&faults.garbage), f(&faults.huge), f(&faults.future), f(&faults.dropped),
        requests.len(),
        rss.iter().min().unwrap_or(&0),
        rss.iter().max().unwrap_or(&0),
        first.iter().max().unwrap_or(&0),
        last.iter().max().unwrap_or(&0),
    );
    assert!(status.success(), "exit {status}:\n{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(
        total >= 6,
        "transitions: {total}; log tail:\n{}",
        logs.lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        delivered().len(),
        total,
        "as many deliveries as transitions"
    );
    assert_eq!(n_seen, total, "every transition counted was listed");
    assert_eq!(
        count(delivered()),
        count(seen),
        "every transition delivered exactly once"
    );
    assert!(*rss.iter().max().unwrap() < 256 * 1024, "RSS {rss:?}");
    assert!(
        last.iter().max() <= first.iter().max().map(|m| m + m / 2 + 10 * 1024).as_ref(),
        "RSS grew: {rss:?}"
    );
}
