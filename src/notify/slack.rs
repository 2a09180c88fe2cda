//! Slack incoming webhooks: one message when an alert fires, escalates, de-escalates
//! or resolves (never on re-sends), Block Kit with a plain-text fallback, at most one
//! message per second per webhook. Text is escaped for mrkdwn and kept within Block
//! Kit's limits (see [`message`]).

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

/// Slack's Block Kit limits (characters): a section's text, a section field, a
/// context element, and the top-level `text` shown in notifications.
pub const SECTION_TEXT_MAX: usize = 3000;
pub const FIELD_TEXT_MAX: usize = 2000;
pub const CONTEXT_TEXT_MAX: usize = 2000;
pub const FALLBACK_TEXT_MAX: usize = 3000;

/// The message for one event: top-level Block Kit blocks, with `text` as the
/// notification fallback (shown in notifications, not in the channel, so the
/// message reads once). Every text from a report or an annotation is escaped for
/// mrkdwn (`&`, `<`, `>`), and every block kept within Slack's limits, cut with an
/// ellipsis: Slack rejects a message over them, and a rejected message is lost.
pub fn message(e: &Event) -> serde_json::Value {
    let r = &e.report;
    let (word, emoji) = match (e.kind, e.severity) {
        (EventKind::OomKill, _) => ("OOM KILL", ":boom:"),
        (EventKind::Resolved, _) | (_, None) => ("RESOLVED", ":white_check_mark:"),
        (_, Some(Severity::Critical)) => ("CRITICAL", ":red_circle:"),
        (_, Some(_)) => ("WARNING", ":large_orange_circle:"),
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
    let fallback = cut_escaped(&format!("{word}{what}: {summary}"), FALLBACK_TEXT_MAX);
    let eta = match (r.time_to_limit_seconds, e.kind) {
        (_, EventKind::Resolved) => "–".to_string(),
        (Some(s), _) => crate::report::eta_text(
            s,
            r.time_to_limit_lower_seconds,
            r.time_to_limit_upper_seconds,
        ),
        (None, _) => "not on course".into(),
    };
    let field = |title: &str, body: String| {
        let title = format!("*{title}*\n");
        let body = cut_escaped(&body, FIELD_TEXT_MAX - title.chars().count());
        json!({"type": "mrkdwn", "text": format!("{title}{body}")})
    };
    let fields = vec![
        field("Working set", r.working_set_text()),
        field("Time to limit", eta),
        field("Growth", r.growth_text().unwrap_or_else(|| "-".into())),
        field(
            "Pattern",
            format!(
                "{}{}",
                r.pattern.as_str(),
                r.onset
                    .as_ref()
                    .map_or(String::new(), |o| format!(" since {o}"))
            ),
        ),
    ];
    let head = format!("{emoji} *{word}{what}* ");
    let text = format!(
        "{head}{}",
        cut_escaped(&summary, SECTION_TEXT_MAX - head.chars().count())
    );
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}),
        json!({"type": "section", "fields": fields}),
    ];
    // The story beyond the summary (the change the growth began with, the run
    // before, the replicas), when there is one.
    let story = r.story();
    if !story.is_empty() {
        let story = cut_escaped(&story.join("; "), CONTEXT_TEXT_MAX);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": story}]}));
    }
    if !e.sparkline.is_empty() {
        let spark = cut_escaped(&e.sparkline, CONTEXT_TEXT_MAX - 30);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("last hours vs limit `{spark}`")}]}));
    }
    // Links, each whole or left out: a cut link is a broken one.
    let mut links = String::new();
    for (label, url) in [("Runbook", "runbook_url"), ("Dashboard", "dashboard_url")]
        .iter()
        .filter_map(|(label, key)| e.annotations.get(*key).map(|u| (*label, u.as_str())))
        .chain(std::iter::once(("Prometheus", e.generator_url.as_str())))
    {
        let link = format!("<{}|{label}>", link_target(url));
        let joined = if links.is_empty() { 0 } else { 3 };
        if links.chars().count() + joined + link.chars().count() <= CONTEXT_TEXT_MAX {
            if !links.is_empty() {
                links.push_str(" · ");
            }
            links.push_str(&link);
        }
    }
    if !links.is_empty() {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]}));
    }
    json!({
        "text": fallback,
        "blocks": blocks,
    })
}

/// `text` escaped for Slack's mrkdwn (`&`, `<`, `>`) and at most `max` characters
/// once escaped, cut with an ellipsis (never inside an escape).
pub fn cut_escaped(text: &str, max: usize) -> String {
    let escape = |c: char| -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            _ => None,
        }
    };
    let width = |c: char| escape(c).map_or(1, str::len);
    let total: usize = text.chars().map(width).sum();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::with_capacity(text.len().min(budget * 4));
    let mut used = 0;
    for c in text.chars() {
        let w = width(c);
        if used + w > budget {
            out.push('…');
            return out;
        }
        used += w;
        match escape(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    out
}

/// A URL as the target of a mrkdwn link: `|` and `>` would end it early, so they
/// are percent-encoded; the rest is left as written.
fn link_target(url: &str) -> String {
    url.replace('|', "%7C")
        .replace('>', "%3E")
        .replace('<', "%3C")
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
