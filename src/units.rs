//! Parsing and printing of the two units every user types and reads: byte sizes
//! (`128Mi`, `1.5G`, `134217728`) and durations (`30s`, `2h`).
//!
//! Kubernetes quantities are the reference: binary suffixes `Ki Mi Gi Ti Pi Ei`,
//! decimal suffixes `k K M G T P E`, or a plain number of bytes.

use std::time::Duration;

/// Parses a byte size the way Kubernetes resource quantities read.
///
/// Returns a human-readable reason on failure so the caller can prefix the
/// config key or flag it came from.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty size; expected e.g. 128Mi, 1Gi, 1.5G or a number of bytes".into());
    }
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.trim().is_empty() {
        return Err(format!(
            "{text:?} is not a size; expected e.g. 128Mi, 1Gi, 1.5G or 134217728"
        ));
    }
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        other => {
            return Err(format!(
                "unknown size suffix {other:?} in {text:?}; use Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal)"
            ))
        }
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("{text:?} is not a size; expected e.g. 128Mi, 1Gi, 1.5G or 134217728")
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} must be a finite, non-negative size"));
    }
    let bytes = value * multiplier;
    if bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is larger than any memory limit"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration as Prometheus writes them: whole numbers of `y` (365 days),
/// `w`, `d`, `h`, `m`, `s` and `ms`, each unit at most once and largest first:
/// `30s`, `5m`, `1h30m`, `7d`, `200ms`; `0` alone is zero. There are no months
/// (`5M` is an error, not five months) and no fractions.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = |why: String| {
        format!("{text:?} is not a duration: {why}; write e.g. 30s, 5m, 1h30m, 7d (units y, w, d, h, m, s, ms)")
    };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    if trimmed.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let mut rest = trimmed;
    let mut total: u64 = 0;
    let mut last_rank = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad(format!("{rest:?} does not start with a whole number")));
        }
        let (number, after) = rest.split_at(digits);
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad(if unit.is_empty() {
                format!("{number} has no unit")
            } else if unit == "M" {
                "\"M\" is no unit (there are no months; 30d is a month's worth)".into()
            } else {
                format!("{unit:?} is no unit")
            }));
        };
        if last_rank.is_some_and(|r| rank <= r) {
            return Err(bad(format!(
                "{unit:?} comes after a unit as small or smaller (largest first, each once)"
            )));
        }
        last_rank = Some(rank);
        let value: u64 = number
            .parse()
            .map_err(|_| bad(format!("{number} is too large")))?;
        total = value
            .checked_mul(UNITS[rank].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| bad("it is too long".into()))?;
        rest = after;
    }
    Ok(Duration::from_millis(total))
}

/// Formats bytes with the binary suffix a Kubernetes user reads limits in: `127.3Mi`.
pub fn format_bytes(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "-".into();
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    let magnitude = bytes.abs();
    const UNITS: [(&str, f64); 5] = [
        ("Ti", 1099511627776.0),
        ("Gi", 1073741824.0),
        ("Mi", 1048576.0),
        ("Ki", 1024.0),
        ("B", 1.0),
    ];
    for (suffix, size) in UNITS {
        if magnitude >= size || suffix == "B" {
            let scaled = magnitude / size;
            return if suffix == "B" {
                format!("{sign}{scaled:.0}B")
            } else if scaled >= 100.0 || (scaled - scaled.round()).abs() < 0.05 {
                format!("{sign}{scaled:.0}{suffix}")
            } else {
                format!("{sign}{scaled:.1}{suffix}")
            };
        }
    }
    unreachable!("the last unit always matches")
}

/// Formats a span of seconds the way an on-call engineer says it: `38m`, `2h05m`, `3d4h`.
pub fn format_duration_short(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".into();
    }
    if seconds < 0.0 {
        return "now".into();
    }
    let total = seconds.round() as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        (total % 86_400) / 3600,
        (total % 3600) / 60,
        total % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// At most `max_chars` of a response body, trimmed, for error messages: enough to
/// see what a server said without flooding a log line.
pub fn excerpt(body: &str, max_chars: usize) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "<empty body>".into();
    }
    let mut cut: String = body.chars().take(max_chars).collect();
    if cut.len() < body.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_kubernetes_quantities() {
        let table: &[(&str, u64)] = &[
            ("128Mi", 134_217_728),
            ("1Gi", 1_073_741_824),
            ("1.5G", 1_500_000_000),
            ("134217728", 134_217_728),
            ("64Ki", 65_536),
            ("2k", 2_000),
            (" 1Ti ", 1_099_511_627_776),
        ];
        for (text, want) in table {
            assert_eq!(parse_bytes(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(parse_bytes("12XB")
            .unwrap_err()
            .contains("unknown size suffix"));
        assert!(parse_bytes("lots").unwrap_err().contains("not a size"));
        assert!(parse_bytes("-1Mi").unwrap_err().contains("non-negative"));
        assert!(parse_bytes("").unwrap_err().contains("empty"));
    }

    #[test]
    fn durations_parse_and_fail_clearly() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("2 hours please")
            .unwrap_err()
            .contains("not a duration"));
        // Prometheus' units, largest first, each once.
        let ms = |text: &str| parse_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("200ms"), Ok(200));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("2w1d"), Ok(15 * 86_400_000));
        assert_eq!(ms("1y"), Ok(365 * 86_400_000));
        assert_eq!(ms("1h0m5s10ms"), Ok(3_605_010));
        assert_eq!(ms(" 0 "), Ok(0));
        // No months, fractions, repeats, wrong order, bare numbers or overflow.
        for (text, says) in [
            ("5M", "no months"),
            ("1.5h", "no unit"),
            ("30m1h", "largest first"),
            ("5m5m", "largest first"),
            ("30", "30 has no unit"),
            ("", "empty"),
            ("h", "whole number"),
            ("99999999999999999999s", "too large"),
            ("600000000y", "too long"),
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn bytes_format_with_binary_suffixes() {
        assert_eq!(format_bytes(134_217_728.0), "128Mi");
        assert_eq!(format_bytes(133_169_152.0), "127Mi");
        assert_eq!(format_bytes(1.5 * 1048576.0), "1.5Mi");
        assert_eq!(format_bytes(512.0), "512B");
        assert_eq!(format_bytes(-2.0 * 1048576.0), "-2Mi");
    }

    #[test]
    fn durations_format_short() {
        assert_eq!(format_duration_short(2280.0), "38m");
        assert_eq!(format_duration_short(7500.0), "2h05m");
        assert_eq!(format_duration_short(3.0 * 86400.0 + 4.0 * 3600.0), "3d4h");
        assert_eq!(format_duration_short(42.0), "42s");
        assert_eq!(format_duration_short(-5.0), "now");
    }
}
