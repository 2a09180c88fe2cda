//! Slack incoming webhooks: one message when an alert fires, escalates, de-escalates
//! or resolves (never on re-sends), Block Kit with a plain-text fallback, at most one
//! message per second per webhook.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{
    post, read_secret, Event, EventKind, Filter, RawReceiver, Receiver, ReceiverConfig, Verdict,
};
use crate::model::Severity;
use crate::units::format_bytes;
use crate::vocab::check::Validator;
use crate::vocab::SecretValue;

/// One Slack incoming webhook. Its URL is a secret: never logged.
pub struct Slack {
    pub name: String,
    pub url: SecretValue,
    pub http: reqwest::Client,
    pub timeout: Duration,
    pub filter: Filter,
}

/// `receivers.slack[]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSlack {
    name: Option<String>,
    url: Option<String>,
    url_file: Option<String>,
    timeout: Option<String>,
    min_severity: Option<String>,
    namespaces: Vec<String>,
    containers: Vec<String>,
}

/// One Slack incoming webhook, validated: all it needs but an HTTP client.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub name: String,
    pub url: SecretValue,
    pub timeout: Duration,
    pub filter: Filter,
}

impl RawReceiver for RawSlack {
    fn validate(
        self,
        v: &mut Validator,
        key: &str,
        index: usize,
    ) -> Option<Arc<dyn ReceiverConfig>> {
        let timeout = v.duration(&format!("{key}.timeout"), &self.timeout, "10s");
        let url = v.secret_url(key, &self.url, &self.url_file);
        let filter = Filter::validate(v, key, self.min_severity, self.namespaces, self.containers);
        Some(Arc::new(SlackConfig {
            name: self.name.unwrap_or_else(|| format!("slack-{index}")),
            url: url?,
            timeout: timeout?,
            filter,
        }))
    }
}

impl ReceiverConfig for SlackConfig {
    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, http: &reqwest::Client) -> Result<Arc<dyn Receiver>, String> {
        Ok(Arc::new(Slack {
            name: self.name.clone(),
            url: self.url.clone(),
            http: http.clone(),
            timeout: self.timeout,
            filter: self.filter.clone(),
        }))
    }
}

/// The message for one event.
pub fn message(e: &Event) -> serde_json::Value {
    let r = &e.report;
    let (word, color, emoji) = match (e.kind, e.severity) {
        (EventKind::OomKill, _) => ("OOM KILL", "#6a3d9a", ":boom:"),
        (EventKind::Resolved, _) | (_, None) => ("RESOLVED", "#2eb886", ":white_check_mark:"),
        (_, Some(Severity::Critical)) => ("CRITICAL", "#cb181d", ":red_circle:"),
        (_, Some(_)) => ("WARNING", "#d98c00", ":large_orange_circle:"),
    };
    let what = match e.kind {
        EventKind::Escalated => " (escalated)",
        EventKind::Deescalated => " (de-escalated)",
        EventKind::Updated => " (time to limit changed)",
        _ => "",
    };
    let summary = e
        .annotations
        .get("summary")
        .cloned()
        .unwrap_or_else(|| r.summary());
    let fallback = format!("{word}{what}: {summary}");
    let eta = match (r.time_to_limit_seconds, e.kind) {
        (_, EventKind::Resolved) => "–".to_string(),
        (Some(s), _) => crate::report::eta_text(
            s,
            r.time_to_limit_lower_seconds,
            r.time_to_limit_upper_seconds,
        ),
        (None, _) => "not on course".into(),
    };
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Working set*\n{} of {}{}", format_bytes(r.working_set_bytes), r.limit_bytes.map_or("no limit".into(), format_bytes), r.use_ratio.map_or(String::new(), |u| format!(" ({:.0}%)", u * 100.0)))}),
        json!({"type": "mrkdwn", "text": format!("*Time to limit*\n{eta}")}),
        json!({"type": "mrkdwn", "text": format!("*Growth*\n{}", r.growth_bytes_per_second.map_or("-".into(), |g| format!("{}{}/h", if g >= 0.0 { "+" } else { "" }, format_bytes(g * 3600.0))))}),
        json!({"type": "mrkdwn", "text": format!("*Pattern*\n{}{}", r.pattern.as_str(), r.onset.as_ref().map_or(String::new(), |o| format!(" since {o}")))}),
    ];
    fields.truncate(10);
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{emoji} *{word}{what}* {summary}")}}),
        json!({"type": "section", "fields": fields}),
    ];
    if !e.sparkline.is_empty() {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("last hours vs limit `{}`", e.sparkline)}]}));
    }
    let links: Vec<String> = [("Runbook", "runbook_url"), ("Dashboard", "dashboard_url")]
        .iter()
        .filter_map(|(label, key)| e.annotations.get(*key).map(|u| format!("<{u}|{label}>")))
        .chain(std::iter::once(format!("<{}|Prometheus>", e.generator_url)))
        .collect();
    blocks.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": links.join(" · ")}]}),
    );
    json!({
        "text": fallback,
        "attachments": [{"color": color, "fallback": fallback, "blocks": blocks}],
    })
}

impl Receiver for Slack {
    fn name(&self) -> &str {
        &self.name
    }

    fn wants(&self, event: &Event) -> bool {
        event.kind != EventKind::Resent && self.filter.matches(event)
    }

    fn max_batch(&self) -> usize {
        1
    }

    fn min_interval(&self) -> Duration {
        Duration::from_secs(1)
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
            let body = serde_json::to_vec(&message(&events[0])).unwrap_or_default();
            post(&self.http, &url, body, &[], self.timeout).await
        })
    }
}
