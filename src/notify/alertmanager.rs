//! Alertmanager's `POST /api/v2/alerts`: every event, batched, to every configured
//! Alertmanager (each is its own receiver, so an HA pair gets every alert).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    post, read_secret, Event, EventKind, Filter, RawReceiver, Receiver, ReceiverConfig, Verdict,
};
use crate::vocab::check::{RawBasicAuth, RawTls, Validator};
use crate::vocab::{rfc3339, Auth, SecretValue, TlsConfig};

/// `receivers.alertmanager[]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlertmanager {
    name: Option<String>,
    url: Option<String>,
    timeout: Option<String>,
    tls: RawTls,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    min_severity: Option<String>,
    namespaces: Vec<String>,
    containers: Vec<String>,
}

/// One Alertmanager, validated: all it needs but an HTTP client.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    pub name: String,
    /// Base URL, with a trailing slash; `api/v2/alerts` is joined onto it.
    pub url: reqwest::Url,
    pub timeout: Duration,
    pub auth: Auth,
    pub tls: TlsConfig,
    pub filter: Filter,
}

impl RawReceiver for RawAlertmanager {
    fn validate(
        self,
        v: &mut Validator,
        key: &str,
        index: usize,
    ) -> Option<Arc<dyn ReceiverConfig>> {
        let timeout = v.duration(&format!("{key}.timeout"), &self.timeout, "10s");
        let url = match &self.url {
            Some(u) => {
                let url = v.http_url(&format!("{key}.url"), u);
                if url
                    .as_ref()
                    .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
                {
                    v.problem(
                        &format!("{key}.url"),
                        "must not carry credentials; use basic_auth",
                    );
                }
                url.map(crate::vocab::with_trailing_slash)
            }
            None => {
                v.problem(&format!("{key}.url"), "is required");
                None
            }
        };
        let auth = v.auth(
            key,
            &self.bearer_token,
            &self.bearer_token_file,
            self.basic_auth,
        );
        let filter = Filter::validate(v, key, self.min_severity, self.namespaces, self.containers);
        let tls = v.tls(key, self.tls);
        Some(Arc::new(AlertmanagerConfig {
            name: self.name.unwrap_or_else(|| format!("alertmanager-{index}")),
            url: url?,
            timeout: timeout?,
            auth,
            tls,
            filter,
        }))
    }
}

impl ReceiverConfig for AlertmanagerConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, http: &reqwest::Client) -> Result<Arc<dyn Receiver>, String> {
        let tls = &self.tls;
        let http = if tls.ca_file.is_some() || tls.cert_file.is_some() || tls.insecure_skip_verify {
            super::tls_client(tls)?
        } else {
            http.clone()
        };
        let (bearer_token, basic_auth) = match &self.auth {
            Auth::None => (None, None),
            Auth::Bearer(t) => (Some(t.clone()), None),
            Auth::Basic { username, password } => {
                (None, Some((username.clone(), password.clone())))
            }
        };
        Ok(Arc::new(Alertmanager {
            name: self.name.clone(),
            url: self.url.clone(),
            http,
            bearer_token,
            basic_auth,
            timeout: self.timeout,
            filter: self.filter.clone(),
        }))
    }
}

/// One Alertmanager.
pub struct Alertmanager {
    pub name: String,
    /// Base URL; `api/v2/alerts` is joined onto it.
    pub url: reqwest::Url,
    pub http: reqwest::Client,
    pub bearer_token: Option<SecretValue>,
    pub basic_auth: Option<(String, SecretValue)>,
    pub timeout: Duration,
    pub filter: Filter,
}

#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: std::borrow::Cow<'a, std::collections::BTreeMap<String, String>>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

/// The alerts one event stands for: a severity change resolves the alert with the old
/// severity label (Alertmanager tells alerts apart by labels) and fires the new one.
pub fn postable(events: &[Event]) -> serde_json::Value {
    let mut alerts = Vec::new();
    for e in events {
        if matches!(e.kind, EventKind::Escalated | EventKind::Deescalated) {
            if let Some(previous) = e.previous_severity {
                let mut labels = e.labels.clone();
                labels.insert("severity".into(), previous.as_str().into());
                alerts.push(PostableAlert {
                    labels: std::borrow::Cow::Owned(labels),
                    annotations: &e.annotations,
                    starts_at: rfc3339(e.starts_at),
                    ends_at: rfc3339(e.report_time()),
                    generator_url: &e.generator_url,
                });
            }
        }
        alerts.push(PostableAlert {
            labels: std::borrow::Cow::Borrowed(&e.labels),
            annotations: &e.annotations,
            starts_at: rfc3339(e.starts_at),
            ends_at: rfc3339(e.ends_at),
            generator_url: &e.generator_url,
        });
    }
    serde_json::to_value(alerts).unwrap_or_default()
}

impl Event {
    /// When the event's forecast was made (ms).
    pub fn report_time(&self) -> i64 {
        self.report.evaluated_at.0
    }
}

impl Receiver for Alertmanager {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event: &Event) -> bool {
        self.filter.matches(event)
    }

    fn max_batch(&self) -> usize {
        64
    }

    fn send<'a>(
        &'a self,
        events: &'a [Event],
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&postable(events)).unwrap_or_default();
            let mut headers = Vec::new();
            if let Some(token) = &self.bearer_token {
                match read_secret(token) {
                    Ok(t) => headers.push(("Authorization".to_string(), format!("Bearer {t}"))),
                    Err(verdict) => return verdict,
                }
            }
            if let Some((user, password)) = &self.basic_auth {
                match read_secret(password) {
                    Ok(p) => {
                        use base64_lite::encode;
                        headers.push((
                            "Authorization".to_string(),
                            format!("Basic {}", encode(&format!("{user}:{p}"))),
                        ));
                    }
                    Err(verdict) => return verdict,
                }
            }
            let url = self
                .url
                .join("api/v2/alerts")
                .expect("a relative path joins");
            post(&self.http, url.as_str(), body, &headers, self.timeout).await
        })
    }
}

/// Standard base64, for basic auth headers.
mod base64_lite {
    pub fn encode(text: &str) -> String {
        const TABLE: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn encodes_like_rfc4648() {
        assert_eq!(encode("user:pass"), "dXNlcjpwYXNz");
        assert_eq!(encode("a"), "YQ==");
        assert_eq!(encode("ab"), "YWI=");
    }
}
