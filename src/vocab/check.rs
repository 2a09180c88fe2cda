//! Checking what a user wrote: a collector of problems, each naming its key and,
//! where the key is in the file, its line; and the parsers every part of the config
//! shares (durations, files, secrets, URLs, auth, TLS). The config module and each
//! receiver's own configuration validate through it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Auth, SecretValue, TlsConfig};
use crate::units::parse_duration;

/// One thing wrong with a config, naming the key and, when known, the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Collects problems while turning raw values into typed ones.
pub struct Validator<'a> {
    /// The file's text, to find each problem's line.
    text: &'a str,
    pub problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    pub fn new(text: &'a str) -> Self {
        Validator {
            text,
            problems: Vec::new(),
        }
    }

    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        let line = locate_key(self.text, key);
        self.problems.push(Problem {
            key: key.to_string(),
            line,
            message: message.into(),
        });
    }

    /// Parses a duration; `None` (with a problem recorded) when it is invalid, so that
    /// cross-field checks skip it instead of reporting follow-on problems.
    pub fn duration(
        &mut self,
        key: &str,
        value: &Option<String>,
        default: &str,
    ) -> Option<Duration> {
        let text = value.as_deref().unwrap_or(default);
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.problem(key, "must be longer than zero");
                None
            }
            Ok(d) => {
                let (min, max) = duration_bounds(key);
                if d < min || d > max {
                    self.problem(
                        key,
                        format!(
                            "{text} is out of bounds: between {} and {}",
                            humantime::format_duration(min),
                            humantime::format_duration(max)
                        ),
                    );
                    return None;
                }
                Some(d)
            }
            Err(message) => {
                self.problem(key, message);
                None
            }
        }
    }

    pub fn existing_file(&mut self, key: &str, path: &Option<String>) -> Option<PathBuf> {
        let path = path.as_ref()?;
        let path = PathBuf::from(path);
        if let Err(e) = std::fs::metadata(&path) {
            self.problem(key, format!("cannot read {}: {e}", path.display()));
        }
        Some(path)
    }

    pub fn secret(
        &mut self,
        key: &str,
        inline: &Option<String>,
        file: &Option<String>,
    ) -> Option<SecretValue> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(value), None) if value.trim().is_empty() => {
                self.problem(key, format!("is empty (remove {key} or give it a value)"));
                None
            }
            (Some(value), None) => Some(SecretValue::Inline(value.clone())),
            (None, Some(_)) => self
                .existing_file(&format!("{key}_file"), file)
                .map(SecretValue::File),
            (None, None) => None,
        }
    }

    pub fn http_url(&mut self, key: &str, text: &str) -> Option<reqwest::Url> {
        match reqwest::Url::parse(text) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
            // The text may be a secret (a Slack URL): never quoted.
            _ => {
                self.problem(key, "is not an http(s) URL");
                None
            }
        }
    }

    /// A receiver URL that is a secret (Slack, webhooks): inline or from a file,
    /// required, and checked without ever being quoted.
    pub fn secret_url(
        &mut self,
        key: &str,
        url: &Option<String>,
        url_file: &Option<String>,
    ) -> Option<SecretValue> {
        if let Some(u) = url {
            self.http_url(&format!("{key}.url"), u);
        }
        if url.is_none() && url_file.is_none() {
            self.problem(&format!("{key}.url"), "is required (or url_file)");
        }
        self.secret(&format!("{key}.url"), url, url_file)
    }

    /// A bearer token or basic auth (each inline or from a file), not both.
    pub fn auth(
        &mut self,
        key: &str,
        bearer_token: &Option<String>,
        bearer_token_file: &Option<String>,
        basic_auth: Option<RawBasicAuth>,
    ) -> Auth {
        let bearer = self.secret(
            &format!("{key}.bearer_token"),
            bearer_token,
            bearer_token_file,
        );
        let basic = basic_auth.and_then(|b| {
            if b.username.is_empty() {
                self.problem(&format!("{key}.basic_auth.username"), "must not be empty");
            }
            let password = self.secret(
                &format!("{key}.basic_auth.password"),
                &b.password,
                &b.password_file,
            );
            if b.password.is_none() && b.password_file.is_none() {
                self.problem(
                    &format!("{key}.basic_auth"),
                    "needs password or password_file",
                );
            }
            password.map(|password| (b.username, password))
        });
        match (bearer, basic) {
            (Some(_), Some(_)) => {
                self.problem(
                    &format!("{key}.basic_auth"),
                    "set either bearer_token(_file) or basic_auth, not both",
                );
                Auth::None
            }
            (Some(token), None) => Auth::Bearer(token),
            (None, Some((username, password))) => Auth::Basic { username, password },
            (None, None) => Auth::None,
        }
    }

    /// TLS files (each must exist) and the verification switch.
    pub fn tls(&mut self, key: &str, raw: RawTls) -> TlsConfig {
        let tls = TlsConfig {
            ca_file: self.existing_file(&format!("{key}.tls.ca_file"), &raw.ca_file),
            cert_file: self.existing_file(&format!("{key}.tls.cert_file"), &raw.cert_file),
            key_file: self.existing_file(&format!("{key}.tls.key_file"), &raw.key_file),
            insecure_skip_verify: raw.insecure_skip_verify,
        };
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            self.problem(
                &format!("{key}.tls"),
                "cert_file and key_file go together: set both or neither",
            );
        }
        tls
    }
}

const MS: u64 = 1;
const S: u64 = 1000 * MS;
const M: u64 = 60 * S;
const H: u64 = 60 * M;
const D: u64 = 24 * H;

/// What a duration may be, by key (milliseconds, lowest and highest): a daemon must
/// live with every value a config check accepts (no timer that overflows, no poll
/// that never comes, no timeout too short to answer). Unlisted keys may be 1ms to a
/// year; receivers' timeouts are bounded as `prometheus.timeout` is.
pub const DURATION_BOUNDS: &[(&str, u64, u64)] = &[
    ("store.lookback", 10 * M, 30 * D),
    ("store.resolution", S, H),
    ("store.forget_after", M, 7 * D),
    ("poll.interval", S, H),
    ("poll.stale_after", S, D),
    ("poll.limits_interval", S, D),
    ("poll.restarts_interval", S, D),
    ("server.request_timeout", 100 * MS, 10 * M),
    ("prometheus.timeout", 100 * MS, 10 * M),
    ("forecast.warning_horizon", M, 90 * D),
    ("forecast.critical_horizon", M, 30 * D),
    ("forecast.min_history", M, 7 * D),
    ("forecast.warning_pending", S, D),
    ("forecast.critical_pending", S, D),
    ("forecast.keep_firing_for", S, D),
    ("forecast.keep_warning_while_unsure", S, D),
    ("alerts.resend_interval", S, D),
    ("alerts.resolved_retention", M, 7 * D),
    ("alerts.drain_timeout", S, 10 * M),
    ("alerts.retry_initial", 10 * MS, H),
    ("alerts.retry_max", 100 * MS, D),
];

fn duration_bounds(key: &str) -> (Duration, Duration) {
    let receiver_timeout = key.starts_with("receivers.") && key.ends_with(".timeout");
    let lookup = if receiver_timeout {
        "prometheus.timeout"
    } else {
        key
    };
    let (min, max) = DURATION_BOUNDS
        .iter()
        .find(|(k, _, _)| *k == lookup)
        .map_or((MS, 365 * D), |&(_, min, max)| (min, max));
    (Duration::from_millis(min), Duration::from_millis(max))
}

/// Finds the 1-based line of a dotted key (`prometheus.tls.ca_file`, or with list
/// items `receivers.webhook[1].url`) in block-style YAML, so a problem found after
/// parsing can still point at its line. A key the file does not spell out (a
/// default) gets the line of its nearest parent that it does; flow-style YAML none.
pub fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    // Each line's entries: a list item's dash, and the text after it (or the line's
    // text), with their indents.
    enum Entry<'t> {
        Item,
        Text(&'t str),
    }
    let mut entries: Vec<(usize, usize, Entry)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut indent = line.len() - trimmed.len();
        let mut rest = trimmed;
        while rest == "-" || rest.starts_with("- ") {
            entries.push((index + 1, indent, Entry::Item));
            let after = rest[1..].trim_start();
            indent += rest.len() - after.len();
            rest = after;
        }
        if !rest.is_empty() {
            entries.push((index + 1, indent, Entry::Text(rest)));
        }
    }
    let key_of = |t: &str| -> Option<String> {
        let (key, _) = t.split_once(':')?;
        Some(key.trim().trim_matches(['"', '\'']).to_string())
    };
    let mut found = None;
    let mut start = 0usize;
    let mut min_indent = 0usize;
    for segment in dotted.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        // The key, within the block being searched.
        let mut at = None;
        for (i, (line, indent, entry)) in entries.iter().enumerate().skip(start) {
            if *indent < min_indent {
                break;
            }
            if let Entry::Text(t) = entry {
                if key_of(t).as_deref() == Some(name) {
                    at = Some((i, *line, *indent));
                    break;
                }
            }
        }
        let Some((i, line, indent)) = at else {
            return found;
        };
        found = Some(line);
        start = i + 1;
        min_indent = indent + 1;
        let Some(wanted) = index else {
            continue;
        };
        // The wanted item of the list under it: dashes at the first dash's indent
        // (which may be the key's own: `key:` then `- item` below it).
        let mut dashes = entries
            .iter()
            .enumerate()
            .skip(start)
            .take_while(|(_, (_, at, e))| {
                *at > indent || (*at == indent && matches!(e, Entry::Item))
            })
            .filter(|(_, (_, _, e))| matches!(e, Entry::Item));
        let Some((first, (_, dash_indent, _))) = dashes.next() else {
            return found;
        };
        let item = std::iter::once((first, &entries[first]))
            .chain(dashes)
            .filter(|(_, (_, indent, _))| indent == dash_indent)
            .nth(wanted);
        let Some((i, (line, indent, _))) = item else {
            return found;
        };
        found = Some(*line);
        start = i + 1;
        min_indent = indent + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_key_walks_nesting() {
        let text = "a:\n  x: 1\nb:\n  x: 2\n  c:\n    x: 3\n";
        assert_eq!(locate_key(text, "b.x"), Some(4));
        assert_eq!(locate_key(text, "b.c.x"), Some(6));
        assert_eq!(locate_key(text, "a.x"), Some(2));
        assert_eq!(locate_key(text, "a.nope"), Some(1));
    }

    #[test]
    fn locate_key_finds_list_items_by_their_own_line() {
        let text = "receivers:\n  webhook:\n    - url: a\n      hmac_secret: x\n    # two\n    - name: b\n      url: c\n  slack:\n  - url: d\n";
        assert_eq!(locate_key(text, "receivers.webhook[0].url"), Some(3));
        assert_eq!(
            locate_key(text, "receivers.webhook[0].hmac_secret"),
            Some(4)
        );
        assert_eq!(locate_key(text, "receivers.webhook[1]"), Some(6));
        assert_eq!(locate_key(text, "receivers.webhook[1].url"), Some(7));
        // A key the item does not spell out: the item's line.
        assert_eq!(locate_key(text, "receivers.webhook[1].timeout"), Some(6));
        assert_eq!(locate_key(text, "receivers.slack[0].url"), Some(9));
        assert_eq!(locate_key(text, "receivers.webhook[5].url"), Some(2));
    }
}
