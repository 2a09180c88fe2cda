//! Generic webhooks: a documented, versioned JSON payload per event (fired,
//! escalated, de-escalated, resolved, updated, OOM kill), optionally signed with HMAC-SHA256.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use super::{
    post, read_secret, Event, EventKind, Filter, RawReceiver, Receiver, ReceiverConfig, Verdict,
};
use crate::vocab::check::Validator;
use crate::vocab::{rfc3339, RedactedValue, SecretValue};

/// The payload version; bumped only for incompatible changes.
pub const PAYLOAD_VERSION: &str = "1";
/// The signature header: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Headroom-Signature";

/// One webhook. Its URL and HMAC key are secrets: never logged.
pub struct Webhook {
    pub name: String,
    pub url: SecretValue,
    pub http: reqwest::Client,
    pub headers: Vec<(String, String)>,
    pub hmac_secret: Option<SecretValue>,
    pub timeout: Duration,
    pub filter: Filter,
}

/// `receivers.webhook[]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebhook {
    name: Option<String>,
    url: Option<String>,
    url_file: Option<String>,
    hmac_secret: Option<String>,
    hmac_secret_file: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    timeout: Option<String>,
    min_severity: Option<String>,
    namespaces: Vec<String>,
    containers: Vec<String>,
}

/// One webhook, validated: all it needs but an HTTP client.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub name: String,
    pub url: SecretValue,
    pub hmac_secret: Option<SecretValue>,
    /// Header values may hold tokens: Debug prints them redacted.
    pub headers: Vec<(String, RedactedValue)>,
    pub timeout: Duration,
    pub filter: Filter,
}

impl RawReceiver for RawWebhook {
    fn validate(
        self,
        v: &mut Validator,
        key: &str,
        index: usize,
    ) -> Option<Arc<dyn ReceiverConfig>> {
        let timeout = v.duration(&format!("{key}.timeout"), &self.timeout, "10s");
        let url = v.secret_url(key, &self.url, &self.url_file);
        let hmac_secret = v.secret(
            &format!("{key}.hmac_secret"),
            &self.hmac_secret,
            &self.hmac_secret_file,
        );
        let mut headers = Vec::new();
        for (name, value) in self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(&value).is_err()
            {
                v.problem(
                    &format!("{key}.headers.{name}"),
                    "is not a valid HTTP header",
                );
            } else {
                headers.push((name, RedactedValue(value)));
            }
        }
        let filter = Filter::validate(v, key, self.min_severity, self.namespaces, self.containers);
        Some(Arc::new(WebhookConfig {
            name: self.name.unwrap_or_else(|| format!("webhook-{index}")),
            url: url?,
            hmac_secret,
            headers,
            timeout: timeout?,
            filter,
        }))
    }
}

impl ReceiverConfig for WebhookConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, http: &reqwest::Client) -> Result<Arc<dyn Receiver>, String> {
        Ok(Arc::new(Webhook {
            name: self.name.clone(),
            url: self.url.clone(),
            http: http.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            hmac_secret: self.hmac_secret.clone(),
            timeout: self.timeout,
            filter: self.filter.clone(),
        }))
    }
}

/// The payload for one event (version 1).
pub fn payload(receiver: &str, e: &Event) -> serde_json::Value {
    let r = &e.report;
    json!({
        "version": PAYLOAD_VERSION,
        "receiver": receiver,
        "status": if e.firing() { "firing" } else { "resolved" },
        "event": e.kind,
        "alert": {
            "labels": e.labels,
            "annotations": e.annotations,
            "starts_at": rfc3339(e.starts_at),
            "ends_at": if e.firing() { serde_json::Value::Null } else { json!(rfc3339(e.ends_at)) },
            "generator_url": e.generator_url,
            "namespace": r.namespace,
            "pod": r.pod,
            "container": r.container,
            "severity": e.severity,
            "previous_severity": e.previous_severity,
            "working_set_bytes": r.working_set_bytes,
            "limit_bytes": r.limit_bytes,
            "use_ratio": r.use_ratio,
            "growth_bytes_per_second": r.growth_bytes_per_second,
            "time_to_limit_seconds": r.time_to_limit_seconds,
            "time_to_limit_lower_seconds": r.time_to_limit_lower_seconds,
            "time_to_limit_upper_seconds": r.time_to_limit_upper_seconds,
            "pattern": r.pattern,
            "onset": r.onset,
            "evaluated_at": r.evaluated_at,
        }
    })
}

/// `sha256=<hex>` of HMAC-SHA256(key, body).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

impl Receiver for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event: &Event) -> bool {
        event.kind != EventKind::Resent && self.filter.matches(event)
    }

    fn max_batch(&self) -> usize {
        1
    }

    fn send<'a>(
        &'a self,
        events: &'a [Event],
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            let url = match read_secret(&self.url) {
                Ok(u) => u,
                Err(verdict) => return verdict,
            };
            let body = serde_json::to_vec(&payload(&self.name, &events[0])).unwrap_or_default();
            let mut headers = self.headers.clone();
            if let Some(secret) = &self.hmac_secret {
                match read_secret(secret) {
                    Ok(key) => headers.push((
                        SIGNATURE_HEADER.to_string(),
                        signature(key.as_bytes(), &body),
                    )),
                    Err(verdict) => return verdict,
                }
            }
            post(&self.http, &url, body, &headers, self.timeout).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
