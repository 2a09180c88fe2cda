//! A stand-in for Prometheus' query API serving the fleet benchmark's generator on
//! the fly, for fleets too big to backfill here (100,000 containers is ~60 GB of
//! OpenMetrics for promtool). It answers what headroom asks at steady state and
//! backfill: raw reads (`selector[range]`) of the working set and restart counters,
//! and the limits; anything else gets an empty answer. It measures headroom, not
//! Prometheus: the benchmark prints no Prometheus figures against it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Serves on 127.0.0.1:`port` until killed: one thread per connection, keep-alive.
pub fn serve(port: u16, containers: usize, start: i64, value: fn(usize, i64, i64) -> f64) -> ! {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the synthetic API");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = connection(stream, containers, start, value);
        });
    }
    unreachable!("incoming() never ends")
}

fn connection(
    stream: TcpStream,
    containers: usize,
    start: i64,
    value: fn(usize, i64, i64) -> f64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, v)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let form = parse_form(&String::from_utf8_lossy(&body));
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        let json = answer(path, &form, containers, start, value);
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            json.len()
        )?;
        out.write_all(json.as_bytes())?;
        out.flush()?;
    }
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn labels(i: usize) -> String {
    format!(
        r#""namespace":"team-{}","pod":"svc-{}-7f8b9c6d4-{:05}","container":"{}""#,
        i % 50,
        i / 3,
        i / 3,
        ["app", "istio-proxy", "log-shipper"][i % 3]
    )
}

fn answer(
    path: &str,
    form: &[(String, String)],
    containers: usize,
    start: i64,
    value: fn(usize, i64, i64) -> f64,
) -> String {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let query = get("query").unwrap_or("");
    let time: f64 = get("time").and_then(|t| t.parse().ok()).unwrap_or(0.0);
    let empty_vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let empty_matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    if !path.ends_with("/api/v1/query") {
        return empty_matrix.to_string();
    }
    // A raw read: selector[Nms] at `time`.
    if let Some((selector, range)) = query.strip_suffix("ms]").and_then(|q| q.rsplit_once('[')) {
        let range_ms: i64 = range.parse().unwrap_or(0);
        let end = time as i64;
        let from = end - range_ms / 1000;
        let first = from - from.rem_euclid(30) + 30;
        let metric = if selector.starts_with("container_memory_working_set_bytes") {
            Some(true)
        } else if selector.starts_with("kube_pod_container_status_restarts_total") {
            Some(false)
        } else {
            None
        };
        let Some(working_set) = metric else {
            return empty_matrix.to_string();
        };
        let mut out =
            String::with_capacity(containers * 64 * (((end - first) / 30 + 1).max(1) as usize));
        out.push_str(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
        for i in 0..containers {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"metric":{"#);
            out.push_str(&labels(i));
            if working_set {
                out.push_str(&format!(r#","id":"/kubepods/burstable/pod{i}/c{i:08x}""#));
            }
            out.push_str(r#"},"values":["#);
            let mut t = first;
            let mut sep = "";
            while t <= end {
                let v = if working_set { value(i, t, start) } else { 0.0 };
                out.push_str(&format!("{sep}[{t},\"{v}\"]"));
                sep = ",";
                t += 30;
            }
            out.push_str("]}");
        }
        out.push_str("]}}");
        return out;
    }
    if query.contains("kube_pod_container_resource_limits") {
        let mut out = String::with_capacity(containers * 120);
        out.push_str(r#"{"status":"success","data":{"resultType":"vector","result":["#);
        for i in 0..containers {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                r#"{{"metric":{{{}}},"value":[{time},"536870912"]}}"#,
                labels(i)
            ));
        }
        out.push_str("]}}");
        return out;
    }
    empty_vector.to_string()
}
