//! `backtest --format jsonl`: one object per evaluation, written by hand.
//!
//! A replay evaluates a container at every step, so the line is written as often as
//! the model runs, and serializing it through serde cost more than the model did
//! (0.69M samples/s against 1.1M for `--format table`). What is the same on every
//! line of a container (its labels, its limit) is escaped once; the timestamp's date
//! is formatted once a day; numbers go through serde_json's own formatter. The
//! output is byte for byte what serde_json wrote (tested against it below).

use std::io::Write;

use crate::model::{Forecast, Severity};
use crate::source::ContainerKey;

/// Writes one container's lines.
pub struct LineWriter {
    /// `","namespace":…,"working_set_bytes":`, escaped once.
    labels: Vec<u8>,
    /// `,"limit_bytes":…`, written once.
    limit: Vec<u8>,
    /// The day (since the epoch) `date` spells, and `YYYY-MM-DDT`.
    day: i64,
    date: String,
    line: Vec<u8>,
}

impl LineWriter {
    pub fn new(key: &ContainerKey, limit_bytes: Option<f64>) -> LineWriter {
        let mut labels = Vec::with_capacity(128);
        labels.extend_from_slice(b"\",\"namespace\":");
        json_string(&mut labels, &key.namespace);
        labels.extend_from_slice(b",\"pod\":");
        json_string(&mut labels, &key.pod);
        labels.extend_from_slice(b",\"container\":");
        json_string(&mut labels, &key.container);
        labels.extend_from_slice(b",\"working_set_bytes\":");
        let mut limit = b",\"limit_bytes\":".to_vec();
        number(&mut limit, limit_bytes);
        LineWriter {
            labels,
            limit,
            day: i64::MIN,
            date: String::new(),
            line: Vec::with_capacity(512),
        }
    }

    /// Writes the line of the evaluation at `at` (ms).
    pub fn write(
        &mut self,
        out: &mut dyn Write,
        at: i64,
        f: &Forecast,
        alert: Option<Severity>,
    ) -> std::io::Result<()> {
        let line = &mut self.line;
        line.clear();
        line.extend_from_slice(b"{\"at\":\"");
        timestamp(line, &mut self.day, &mut self.date, at);
        line.extend_from_slice(&self.labels);
        number(line, Some(f.working_set_bytes));
        line.extend_from_slice(&self.limit);
        let eta = f.time_to_limit;
        line.extend_from_slice(b",\"time_to_limit_seconds\":");
        number(line, eta.map(|t| t.seconds));
        line.extend_from_slice(b",\"time_to_limit_lower_seconds\":");
        number(line, eta.map(|t| t.lower_seconds));
        line.extend_from_slice(b",\"time_to_limit_upper_seconds\":");
        number(line, eta.and_then(|t| t.upper_seconds));
        line.extend_from_slice(b",\"growth_bytes_per_second\":");
        number(line, f.growth_bytes_per_second);
        line.extend_from_slice(b",\"pattern\":\"");
        line.extend_from_slice(f.pattern.as_str().as_bytes());
        line.extend_from_slice(b"\",\"severity\":\"");
        line.extend_from_slice(f.severity.as_str().as_bytes());
        line.extend_from_slice(b"\",\"alert\":");
        match alert {
            Some(s) => {
                line.push(b'"');
                line.extend_from_slice(s.as_str().as_bytes());
                line.push(b'"');
            }
            None => line.extend_from_slice(b"null"),
        }
        line.extend_from_slice(b"}\n");
        out.write_all(line)
    }
}

/// A number as serde_json writes an `Option<f64>`: `null` for none and for values
/// JSON cannot hold (NaN, infinities).
fn number(out: &mut Vec<u8>, value: Option<f64>) {
    use serde_json::ser::{CompactFormatter, Formatter};
    match value {
        // Writing into a Vec cannot fail.
        Some(v) if v.is_finite() => {
            let _ = CompactFormatter.write_f64(out, v);
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn json_string(out: &mut Vec<u8>, text: &str) {
    // serde_json cannot fail on a str into a Vec.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// `at` (ms) as `crate::vocab::rfc3339` spells it (`2026-03-19T14:12:00Z`), the
/// date (`date`, of `day` since the epoch) formatted only when the day changes.
fn timestamp(out: &mut Vec<u8>, day: &mut i64, date: &mut String, at: i64) {
    use crate::vocab::DAY_MS;
    let today = at.div_euclid(DAY_MS);
    if *day != today {
        *day = today;
        date.clear();
        // A day whose midnight is beyond i64 milliseconds leaves `date` empty too.
        let midnight = today
            .checked_mul(DAY_MS)
            .map_or_else(String::new, crate::vocab::rfc3339);
        // `YYYY-MM-DDT00:00:00Z`; a date spelled otherwise (beyond year 9999, or
        // beyond chrono) leaves `date` empty, and every line is spelled whole.
        if midnight.len() == 20 && midnight.ends_with("T00:00:00Z") {
            date.push_str(&midnight[..11]);
        }
    }
    if date.is_empty() {
        out.extend_from_slice(crate::vocab::rfc3339(at).as_bytes());
        return;
    }
    out.extend_from_slice(date.as_bytes());
    let seconds = at.div_euclid(1000) - today * 86_400;
    let two = |out: &mut Vec<u8>, v: i64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two(out, seconds / 3600);
    out.push(b':');
    two(out, seconds / 60 % 60);
    out.push(b':');
    two(out, seconds % 60);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Pattern, TimeToLimit};
    use proptest::prelude::*;

    /// The line as serde_json wrote it before: the reference.
    #[derive(serde::Serialize)]
    struct JsonLine<'a> {
        at: String,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        working_set_bytes: f64,
        limit_bytes: Option<f64>,
        time_to_limit_seconds: Option<f64>,
        time_to_limit_lower_seconds: Option<f64>,
        time_to_limit_upper_seconds: Option<f64>,
        growth_bytes_per_second: Option<f64>,
        pattern: Pattern,
        severity: Severity,
        alert: Option<Severity>,
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (0.0f64..1e12),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(0.0),
            Just(-0.0),
            Just(134217728.0),
            Just(1e21),
            Just(1e-7),
        ]
    }

    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{1,20}",
            any::<String>(),
            Just("quote\" back\\slash\ttab\u{1}\u{7f}é✓".to_string()),
        ]
    }

    /// Times chrono spells otherwise (beyond year 9999, or not at all) are spelled
    /// whole, as `rfc3339` spells them.
    #[test]
    fn times_beyond_the_calendar_are_spelled_as_before() {
        let key = ContainerKey {
            namespace: "n".into(),
            pod: "p".into(),
            container: "c".into(),
            extra: Vec::new(),
        };
        let forecast = Forecast {
            working_set_bytes: 1.0,
            level_bytes: None,
            growth_bytes_per_second: None,
            time_to_limit: None,
            onset: None,
            pattern: Pattern::Stable,
            severity: Severity::None,
            trend: None,
            previous_run_ms: None,
            recent_high_bytes: 1.0,
            from_daily_peaks: false,
        };
        let mut writer = LineWriter::new(&key, None);
        for at in [
            i64::MIN,
            i64::MIN + 1,
            -62_135_596_800_001,
            253_402_300_800_000,
            300_000_000_000_000,
            i64::MAX,
        ] {
            let mut line = Vec::new();
            writer.write(&mut line, at, &forecast, None).unwrap();
            let expected = format!("{{\"at\":\"{}\",", crate::vocab::rfc3339(at));
            let line = String::from_utf8(line).unwrap();
            assert!(line.starts_with(&expected), "{line}");
        }
    }

    proptest! {
        #[test]
        fn lines_are_what_serde_json_wrote(
            // 1900 to 2255, and the same day twice (the cached date).
            at in -2_208_988_800_000i64..9_000_000_000_000,
            later in 0i64..86_400_000,
            namespace in label(), pod in label(), container in label(),
            working_set in float(), limit in proptest::option::of(float()),
            eta in proptest::option::of((float(), float(), proptest::option::of(float()))),
            growth in proptest::option::of(float()),
            pattern in prop_oneof![
                Just(Pattern::Leak), Just(Pattern::SawtoothLeak), Just(Pattern::Plateau),
                Just(Pattern::Stable), Just(Pattern::InsufficientData), Just(Pattern::Excursion),
            ],
            severity in prop_oneof![Just(Severity::None), Just(Severity::Warning), Just(Severity::Critical)],
            alert in proptest::option::of(prop_oneof![Just(Severity::Warning), Just(Severity::Critical)]),
        ) {
            let key = ContainerKey {
                namespace: namespace.clone(),
                pod: pod.clone(),
                container: container.clone(),
                extra: Vec::new(),
            };
            let forecast = Forecast {
                working_set_bytes: working_set,
                level_bytes: None,
                growth_bytes_per_second: growth,
                time_to_limit: eta.map(|(seconds, lower_seconds, upper_seconds)| TimeToLimit {
                    seconds,
                    lower_seconds,
                    upper_seconds,
                }),
                onset: None,
                pattern,
                severity,
                trend: None,
                previous_run_ms: None,
                recent_high_bytes: working_set,
                from_daily_peaks: false,
            };
            let mut writer = LineWriter::new(&key, limit);
            for at in [at, at + later, at - later] {
                let mut ours = Vec::new();
                writer.write(&mut ours, at, &forecast, alert).unwrap();
                let reference = JsonLine {
                    at: crate::vocab::rfc3339(at),
                    namespace: &namespace,
                    pod: &pod,
                    container: &container,
                    working_set_bytes: working_set,
                    limit_bytes: limit,
                    time_to_limit_seconds: eta.map(|e| e.0),
                    time_to_limit_lower_seconds: eta.map(|e| e.1),
                    time_to_limit_upper_seconds: eta.and_then(|e| e.2),
                    growth_bytes_per_second: growth,
                    pattern,
                    severity,
                    alert,
                };
                let mut theirs = serde_json::to_vec(&reference).unwrap();
                theirs.push(b'\n');
                prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
            }
        }
    }
}
