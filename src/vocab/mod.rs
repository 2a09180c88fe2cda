//! The shared vocabulary at the bottom of the crate: the time unit, label sets, the
//! one time format, name globs, base URLs, secrets and the HTTP client settings that
//! carry them ([`secret`]), and the config checker every part validates through
//! ([`check`]). Every layer may use these; they use nothing of headroom's but
//! [`crate::units`].

pub mod check;
pub mod secret;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

pub use secret::{Auth, RedactedValue, SecretValue, TlsConfig};

/// Milliseconds since the Unix epoch: the one time unit inside headroom.
pub type TimestampMs = i64;

/// A series' labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A time as RFC 3339 in UTC to the second, the one format headroom prints.
pub fn rfc3339(at: TimestampMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| at.to_string())
}

/// `*` matches any run of characters, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some('?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    rec(&p, &t)
}

/// The URL with a trailing slash, so relative API paths join onto its path
/// (`https://thanos.example/prometheus/` keeps its prefix): `Url::join` replaces the
/// last path segment unless the base ends in `/`.
pub fn with_trailing_slash(mut url: reqwest::Url) -> reqwest::Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shells() {
        assert!(glob("prod*", "prod-eu"));
        assert!(glob("*-proxy", "istio-proxy"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("prod*", "staging"));
    }
}
