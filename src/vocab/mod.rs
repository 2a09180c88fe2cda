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

/// An hour in that unit: the long tier's summaries, and the step its history is read
/// back at.
pub const HOUR_MS: i64 = 3_600_000;

/// A day in that unit.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A series' labels, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A time kept as [`TimestampMs`] that prints and serializes as [`rfc3339`], as every
/// time in headroom's JSON is: what a report holds for every container at every
/// poll, eight bytes where the text would be a string of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rfc3339(pub TimestampMs);

impl Rfc3339 {
    /// Parses RFC 3339 text (any offset); `None` when it is not.
    pub fn parse(text: &str) -> Option<Rfc3339> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Rfc3339(t.timestamp_millis()))
    }

    /// The time of day in UTC, `14:12`.
    pub fn clock(&self) -> String {
        let text = rfc3339(self.0);
        text.get(11..16).map_or_else(|| text.clone(), String::from)
    }

    /// The time as read at `now`: `14:12` on the same day (UTC) and not after it,
    /// else with its date, `2026-11-27 14:12`, so that growth that began days ago,
    /// or yesterday, does not read as having begun this afternoon.
    pub fn clock_at(&self, now: TimestampMs) -> String {
        let same_day = self.0 <= now && self.0.div_euclid(DAY_MS) == now.div_euclid(DAY_MS);
        if same_day {
            return self.clock();
        }
        let text = rfc3339(self.0);
        text.get(..16)
            .map_or_else(|| text.clone(), |t| t.replacen('T', " ", 1))
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

/// A time as RFC 3339 in UTC to the second, the one format headroom prints.
pub fn rfc3339(at: TimestampMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| at.to_string())
}

/// `*` matches any run of characters, `?` one character. Greedy with one point to
/// back up to (the last `*`): at most pattern × text steps, where trying every way
/// to split the text at every `*` took 22 s for `*a*a*a*a*a*a*a*b` on a 63-character
/// name.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen, and where in the text it is tried to end next.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // The `*` takes one more character; try the rest again from there.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
    fn a_clock_names_the_day_unless_it_is_the_same_day() {
        let at = Rfc3339::parse("2026-03-19T14:12:00Z").unwrap();
        let hour = 3_600_000;
        assert_eq!(at.clock_at(at.0), "14:12");
        assert_eq!(at.clock_at(at.0 + 9 * hour), "14:12", "23:12 the same day");
        assert_eq!(
            at.clock_at(at.0 + 10 * hour),
            "2026-03-19 14:12",
            "the day after"
        );
        assert_eq!(at.clock_at(at.0 - hour), "2026-03-19 14:12", "a time ahead");
    }

    /// The matcher before: every way to split the text at every `*` (exponential).
    fn by_every_split(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => {
                by_every_split(&p[1..], t) || (!t.is_empty() && by_every_split(p, &t[1..]))
            }
            (Some('?'), Some(_)) => by_every_split(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => by_every_split(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest::proptest! {
        #[test]
        fn glob_agrees_with_trying_every_split(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            proptest::prop_assert_eq!(glob(&pattern, &text), by_every_split(&p, &t));
        }
    }

    #[test]
    fn a_pattern_of_many_stars_answers() {
        let name = "a".repeat(62) + "c";
        assert!(!glob("*a*a*a*a*a*a*a*b", &name));
        assert!(glob("*a*a*a*a*a*a*a*c", &name));
    }

    #[test]
    fn globs_match_like_shells() {
        assert!(glob("prod*", "prod-eu"));
        assert!(glob("*-proxy", "istio-proxy"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("prod*", "staging"));
    }
}
