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
            Ok(d) => Some(d),
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

/// Finds the 1-based line of a dotted key (`prometheus.tls.ca_file`) in block-style YAML,
/// so a problem found after parsing can still point at its line. Returns `None` for keys
/// the file does not spell out (defaults) or flow-style YAML.
pub fn locate_key(text: &str, dotted: &str) -> Option<usize> {
    let mut parts = dotted.split('.').peekable();
    let mut want = parts.next()?;
    let mut min_indent = 0usize;
    let mut found = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if found.is_some() && indent < min_indent {
            // Left the parent's block without finding the child.
            return found;
        }
        if indent < min_indent {
            continue;
        }
        let key = trimmed
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        if key == want && trimmed.contains(':') {
            found = Some(index + 1);
            match parts.next() {
                Some(next) => {
                    want = next;
                    min_indent = indent + 1;
                }
                None => return found,
            }
        }
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
}
