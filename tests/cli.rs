//! headroom as a user runs it: exit codes and the messages bad input gets.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

use headroom::config::{Config, Overrides};
use headroom::source::prometheus::{PrometheusClient, QueryError};

fn headroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(args)
        .env_remove("HEADROOM_PROMETHEUS_URL")
        .env_remove("HEADROOM_CONFIG")
        .output()
        .expect("run headroom")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_temp(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file
}

#[test]
fn example_config_is_valid_and_documents_every_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/headroom.example.yaml");
    let out = headroom(&["config", "check", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));

    // Every key the example spells out (commented or not) is one the parser accepts:
    // uncommenting the whole file (with placeholder files) must still parse.
    let text = std::fs::read_to_string(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let placeholder = dir.path().join("secret");
    std::fs::write(&placeholder, "x").unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let indent = &l[..l.len() - t.len()];
            // A commented-out key is indented and reads `# key: value`, `# key:` or
            // `# - key: value` (a list item).
            if let Some(rest) = t.strip_prefix("# ") {
                let item = rest.trim_start().trim_start_matches("- ");
                let is_key = item.split_once(':').is_some_and(|(k, v)| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        && (v.is_empty() || v.starts_with(' '))
                });
                if !indent.is_empty() && is_key {
                    return format!("{indent}{rest}");
                }
            }
            l.to_string()
        })
        // Keep one auth method per section (basic auth from a file).
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("bearer_token") || t.starts_with("password: "))
        })
        .collect();
    // An empty value (`[]`, `{}`) followed by uncommented children becomes a parent.
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let mut fixed = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let next_is_child = lines.get(i + 1).is_some_and(|n| {
            !n.trim_start().starts_with('#') && !n.trim().is_empty() && indent_of(n) > indent_of(l)
        });
        let emptied = [": []", ": {}"].iter().find_map(|e| l.strip_suffix(e));
        match emptied {
            Some(key) if next_is_child => fixed.push(format!("{key}:")),
            _ => fixed.push(l.clone()),
        }
    }
    let mut uncommented = fixed.join("\n");
    for file in [
        "/etc/headroom/prometheus-password",
        "/etc/headroom/ca.pem",
        "/etc/headroom/client.pem",
        "/etc/headroom/client-key.pem",
        "/etc/headroom/slack-url",
        "/etc/headroom/webhook-url",
        "/etc/headroom/webhook-hmac",
        "/etc/headroom/am-ca.pem",
        "/etc/headroom/am-client.pem",
        "/etc/headroom/am-client-key.pem",
    ] {
        uncommented = uncommented.replace(file, placeholder.to_str().unwrap());
    }
    match Config::parse_str(&uncommented, "uncommented example", &Overrides::default()) {
        Ok(c) => {
            assert_eq!(
                c.prometheus.headers,
                vec![("X-Scope-OrgID".to_string(), "team-a".to_string())]
            );
        }
        Err(e) => panic!("{e}\n---\n{uncommented}"),
    }
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    let file = write_temp("store:\n  lookback: 6h\n  lookbak: 2h\n");
    let out = headroom(&["config", "check", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let path = file.path().display();
    assert!(
        err.contains(&format!("{path}:3: store.lookbak: unknown field `lookbak`")),
        "{err}"
    );
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let file = write_temp("poll:\n  interval: often\nstore:\n  lookback: 6h\n  resolution: 30x\n");
    let out = headroom(&["config", "check", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("has 2 problems"), "{err}");
    assert!(
        err.contains(":2: poll.interval: \"often\" is not a duration"),
        "{err}"
    );
    assert!(
        err.contains(":5: store.resolution: \"30x\" is not a duration"),
        "{err}"
    );
}

#[test]
fn missing_config_file_exits_2() {
    let out = headroom(&["--config", "/nonexistent/headroom.yaml", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/headroom.yaml: cannot read config file: No such file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_at_is_a_usage_error() {
    let out = headroom(&[
        "check",
        "--at",
        "yesterday-ish",
        "--prometheus-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--at \"yesterday-ish\" is not a time"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreachable_prometheus_exits_1_with_the_cause() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = headroom(&["check", "--prometheus-url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot read container memory from {url}/")),
        "{err}"
    );
    assert!(
        err.contains(&format!("cannot reach Prometheus at {url}/api/v1/")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
}

/// A one-shot HTTP server on 127.0.0.1 that answers every request with `response`
/// (raw HTTP), standing in for a broken Prometheus or proxy.
fn canned_server(status_line: &str, content_type: &str, body: &str) -> u16 {
    let response = format!(
        "HTTP/1.1 {status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

fn client_for(port: u16, extra: &str) -> PrometheusClient {
    let text = format!("prometheus:\n  url: http://127.0.0.1:{port}\n  timeout: 2s\n{extra}");
    let config = Config::parse_str(&text, "t", &Overrides::default()).unwrap();
    PrometheusClient::new(&config.prometheus).unwrap()
}

#[tokio::test]
async fn http_5xx_keeps_status_and_body_excerpt() {
    let port = canned_server(
        "503 Service Unavailable",
        "text/plain",
        "upstream connect error: overflow",
    );
    let err = client_for(port, "").query("up", 0).await.unwrap_err();
    assert!(
        matches!(err, QueryError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("Prometheus at http://127.0.0.1:{port}/api/v1/query answered HTTP 503: upstream connect error: overflow")
    );
}

#[tokio::test]
async fn invalid_json_is_an_error_with_an_excerpt() {
    let port = canned_server("200 OK", "text/html", "<html>login required</html>");
    let err = client_for(port, "").query("up", 0).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("answered with invalid JSON"), "{text}");
    assert!(text.ends_with(": <html>login required</html>"), "{text}");
}

#[tokio::test]
async fn secrets_stay_out_of_errors() {
    let port = canned_server(
        "401 Unauthorized",
        "application/json",
        r#"{"status":"error","errorType":"auth","error":"bad token!!"}"#,
    );
    let client = client_for(port, "  bearer_token: tok-SECRET-123\n");
    let err = client.query("up", 0).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("HTTP 401 (auth: bad token!!)"), "{text}");
    assert!(!text.contains("tok-SECRET-123"), "{text}");
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let err = client_for(port, "").query("up", 0).await.unwrap_err();
    assert!(matches!(err, QueryError::Transport { .. }), "{err:?}");
}

#[test]
fn receiver_problems_name_their_keys_without_quoting_secrets() {
    let file = write_temp(
        "receivers:\n  alertmanager:\n    - url: http://am:9093\n      tls:\n        ca_file: /nonexistent/ca.pem\n        cert_file: /nonexistent/cert.pem\n  slack:\n    - url: not-a-url-SECRET\n      min_severity: urgent\n",
    );
    let out = headroom(&["config", "check", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("receivers.alertmanager[0].tls.ca_file: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    assert!(
        err.contains("receivers.alertmanager[0].tls: cert_file and key_file go together"),
        "{err}"
    );
    assert!(
        err.contains("receivers.slack[0].url: is not an http(s) URL"),
        "{err}"
    );
    assert!(
        err.contains("receivers.slack[0].min_severity: \"urgent\" is not warning or critical"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "a receiver URL is a secret: {err}");
}

/// Issue 18: `check --format json | head -1` and `config check F | true` panicked on
/// the broken pipe (exit 101). A reader that goes away ends the output quietly: exit
/// 0, no panic. The replay writes hundreds of kilobytes, so it is still writing
/// when the reader is gone.
#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let series = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seed-live/istio-proxy-realpace.json"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args([
            "backtest", "--series", series, "--limit", "128Mi", "--format", "jsonl",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run headroom");
    // Read one line, then hang up, as `| head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let _ = stdout.read(&mut first);
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

/// Issue 18: a saved series whose last sample is in 2100 would have the replay
/// evaluate every 30 s for 74 years (it wrote 4.35 GB in 20 s); it is refused with
/// what to do, as is a step under a second.
#[test]
fn a_replay_that_would_explode_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"namespace":"n","pod":"p","container":"c"},"values":[[1773900000,"1000"],[1773900030,"2000"],[4102444800,"3000"]]}]}}"#,
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let out = headroom(&["backtest", "--series", path, "--limit", "128Mi"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("evaluations at --step") && err.contains("2100-01-01"),
        "{err}"
    );
    let out = headroom(&[
        "backtest", "--series", path, "--limit", "128Mi", "--step", "200ms",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--step must be 1s or longer"));
}
