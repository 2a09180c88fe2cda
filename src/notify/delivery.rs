//! Delivery: one bounded, coalescing outbox and task per receiver ([`Worker`]), and
//! the one place that decides what an answer means ([`verdict`]): done, retry with
//! backoff, or give up with the body quoted. URLs never appear in errors: they may be
//! secrets.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::dispatch::{AlertKey, Event};
use super::lifecycle::EventKind;
use super::Receiver;
use crate::telemetry::Telemetry;

/// What to do after a delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Try again, after `after` when the receiver said so (429 Retry-After).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Do not retry: a permanent 4xx.
    Permanent {
        reason: String,
    },
}

impl Verdict {
    /// A short reason class for the failures counter: `http_429`, `http_5xx`,
    /// `http_4xx`, `timeout` or `transport`.
    pub fn reason_class(&self) -> &'static str {
        let reason = match self {
            Verdict::Delivered => return "none",
            Verdict::Retry { reason, .. } | Verdict::Permanent { reason } => reason.as_str(),
        };
        match reason.strip_prefix("HTTP ").and_then(|r| r.get(..3)) {
            Some("429") => "http_429",
            Some(code) if code.starts_with('5') => "http_5xx",
            Some(_) => "http_4xx",
            None if reason.contains("timed out") => "timeout",
            None => "transport",
        }
    }
}

/// The one place that decides retries: 2xx done; 429, 5xx and transport errors retry
/// (429 honouring Retry-After); any other status is permanent, with the body quoted.
pub fn verdict(result: Result<(u16, Option<Duration>, String), String>) -> Verdict {
    match result {
        Err(transport) => Verdict::Retry {
            after: None,
            reason: transport,
        },
        Ok((status, _, _)) if (200..300).contains(&status) => Verdict::Delivered,
        Ok((429, retry_after, body)) => Verdict::Retry {
            after: retry_after,
            reason: format!("HTTP 429: {}", excerpt(&body)),
        },
        Ok((status, _, body)) if status >= 500 => Verdict::Retry {
            after: None,
            reason: format!("HTTP {status}: {}", excerpt(&body)),
        },
        Ok((status, _, body)) => Verdict::Permanent {
            reason: format!("HTTP {status}: {}", excerpt(&body)),
        },
    }
}

fn excerpt(body: &str) -> String {
    crate::units::excerpt(body, 200)
}

/// Posts `body` and classifies the answer. Errors never contain the URL: it may be a
/// secret (Slack and webhook URLs are).
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
    timeout: Duration,
) -> Verdict {
    let mut request = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let result = async {
        let response = request.send().await.map_err(transport_reason)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, chrono::Utc::now()));
        // Read whole, so the connection goes back to the pool; only a refusal's body
        // is quoted, so only it is redacted.
        let body = response.text().await.unwrap_or_default();
        let text = if (200..300).contains(&status) {
            String::new()
        } else {
            redact(&body, url, headers)
        };
        Ok((status, retry_after, text))
    }
    .await;
    verdict(result)
}

/// `body` with every part of `url` and every header value that could be a secret
/// replaced: an answer that echoes the request ("404 Cannot POST /services/T000/…")
/// must not put a Slack URL or a token into the logs.
pub(super) fn redact(body: &str, url: &str, headers: &[(String, String)]) -> String {
    let mut secrets: Vec<String> = vec![url.to_string()];
    if let Ok(parsed) = reqwest::Url::parse(url) {
        if parsed.path().len() > 1 {
            secrets.push(parsed.path().to_string());
        }
        if let Some(query) = parsed.query() {
            secrets.push(query.to_string());
        }
        secrets.extend(
            parsed
                .path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 6)
                .map(str::to_string),
        );
        secrets.extend(
            parsed
                .query_pairs()
                .map(|(_, v)| v.into_owned())
                .filter(|v| v.len() >= 6),
        );
        if let Some(password) = parsed.password() {
            secrets.push(password.to_string());
        }
    }
    // A header's whole value, and each of its words (the token after `Bearer`).
    for (_, value) in headers {
        secrets.push(value.clone());
        secrets.extend(value.split_whitespace().map(str::to_string));
    }
    secrets.retain(|s| s.len() >= 6);
    // Longest first, so a whole URL goes before its parts.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = body.to_string();
    for secret in &secrets {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

/// A `Retry-After` header's wait: delay-seconds, or an HTTP date (RFC 9110's
/// IMF-fixdate, which RFC 2822 parsing takes) less `now`; `None` when it is neither.
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

fn transport_reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// A secret's current value, or the retry verdict naming the file that could not be
/// read (a mounted Secret may be mid-rotation).
pub(crate) fn read_secret(secret: &crate::vocab::SecretValue) -> Result<String, Verdict> {
    secret.read().map_err(|reason| Verdict::Retry {
        after: None,
        reason,
    })
}

/// Retry timing of a worker.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Pending events kept per receiver; the oldest are dropped past it.
    pub capacity: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            capacity: 1000,
        }
    }
}

/// The newest pending event per alert, in arrival order.
#[derive(Default)]
struct Outbox {
    order: VecDeque<(AlertKey, u64)>,
    pending: HashMap<AlertKey, (u64, Event)>,
    next_seq: u64,
    closed: bool,
}

/// A receiver's queue and delivery task.
pub struct Worker {
    receiver: Arc<dyn Receiver>,
    outbox: Mutex<Outbox>,
    wake: Notify,
    policy: RetryPolicy,
    telemetry: Option<Arc<Telemetry>>,
}

impl Worker {
    pub fn new(
        receiver: Arc<dyn Receiver>,
        policy: RetryPolicy,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Arc<Self> {
        Arc::new(Worker {
            receiver,
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            policy,
            telemetry,
        })
    }

    pub fn name(&self) -> &str {
        self.receiver.name()
    }

    fn count(&self, outcome: &str, n: u64) {
        if let Some(t) = &self.telemetry {
            t.notifications
                .with_label_values(&[self.receiver.name(), outcome])
                .inc_by(n);
        }
    }

    fn count_failure(&self, verdict: &Verdict) {
        if let Some(t) = &self.telemetry {
            t.notification_failures
                .with_label_values(&[self.receiver.name(), verdict.reason_class()])
                .inc();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event` if the receiver wants it; a newer event for the same alert
    /// replaces a pending one. Never blocks on the receiver. Past the capacity the
    /// oldest pending alerts are dropped (counted): their keys are returned, for the
    /// caller to send them again once there is room.
    pub fn enqueue(&self, event: &Event) -> Vec<(AlertKey, EventKind)> {
        if !self.receiver.wants(event) {
            return Vec::new();
        }
        let dropped = {
            let mut o = self.lock();
            let seq = o.next_seq;
            o.next_seq += 1;
            let key = event.key.clone();
            let mut event = event.clone();
            if matches!(event.kind, EventKind::Resent | EventKind::Updated) {
                // A re-send or an update refreshes the alert but must not erase what
                // the pending event says happened (fired, escalated: Alertmanager
                // resolves the old severity's alert from it; Slack says it fired).
                if let Some((_, pending)) = o.pending.get(&key) {
                    if pending.kind != EventKind::Resent {
                        event.kind = pending.kind;
                        event.previous_severity = pending.previous_severity;
                    }
                }
            }
            if let Some(old) = o.pending.insert(key.clone(), (seq, event)) {
                // Keep the original position in line for a replaced event.
                if let Some(slot) = o.order.iter_mut().find(|(k, s)| *k == key && *s == old.0) {
                    slot.1 = seq;
                }
            } else {
                o.order.push_back((key, seq));
            }
            let mut dropped = Vec::new();
            while o.order.len() > self.policy.capacity {
                if let Some((k, _)) = o.order.pop_front() {
                    if let Some((_, e)) = o.pending.remove(&k) {
                        dropped.push((k, e.kind));
                    }
                }
            }
            self.set_queue_gauge(o.order.len());
            dropped
        };
        if !dropped.is_empty() {
            self.count("dropped", dropped.len() as u64);
        }
        self.wake.notify_one();
        dropped
    }

    /// Takes every pending event out of the outbox (a reload hands them to the
    /// receiver's new worker): each alert and the kind of its pending event.
    pub fn take_pending(&self) -> Vec<(AlertKey, EventKind)> {
        let mut o = self.lock();
        let order = std::mem::take(&mut o.order);
        let mut pending = std::mem::take(&mut o.pending);
        let taken = order
            .into_iter()
            .filter_map(|(k, _)| pending.remove(&k).map(|(_, e)| (k, e.kind)))
            .collect::<Vec<_>>();
        self.set_queue_gauge(0);
        taken
    }

    /// Room left in the outbox.
    pub fn room(&self) -> usize {
        self.policy.capacity.saturating_sub(self.queued())
    }

    /// The outbox's capacity.
    pub fn capacity(&self) -> usize {
        self.policy.capacity
    }

    fn set_queue_gauge(&self, len: usize) {
        if let Some(t) = &self.telemetry {
            t.notification_queue
                .with_label_values(&[self.receiver.name()])
                .set(len as i64);
        }
    }

    pub fn queued(&self) -> usize {
        self.lock().order.len()
    }

    /// Stops accepting work; `run` returns once the outbox is empty or `deadline` passes.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Delivers until closed and drained, or until the drain deadline after closing.
    pub async fn run(self: Arc<Self>, drain: Duration) {
        let mut backoff = self.policy.initial;
        let mut last_send: Option<tokio::time::Instant> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut logged_permanent = false;
        // Since when deliveries have been failing, and how many tries: said once
        // the receiver answers again.
        let mut failing: Option<(tokio::time::Instant, u64)> = None;
        loop {
            let batch: Vec<(AlertKey, u64, Event)> = {
                let o = self.lock();
                if o.closed && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + drain);
                }
                o.order
                    .iter()
                    .take(self.receiver.max_batch().max(1))
                    .filter_map(|(k, seq)| {
                        o.pending
                            .get(k)
                            .map(|(s, e)| (k.clone(), *s, e.clone()))
                            .filter(|(_, s, _)| s == seq)
                    })
                    .collect()
            };
            if batch.is_empty() {
                if deadline.is_some() {
                    return;
                }
                self.wake.notified().await;
                continue;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                let left = self.queued() as u64;
                self.count("dropped", left);
                tracing::warn!(
                    receiver = self.name(),
                    left,
                    "drain deadline passed with notifications queued"
                );
                return;
            }
            if let Some(t) = last_send {
                let wait = self.receiver.min_interval().saturating_sub(t.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let events: Vec<Event> = batch.iter().map(|(_, _, e)| e.clone()).collect();
            last_send = Some(tokio::time::Instant::now());
            let verdict = self.receiver.send(&events).await;
            if verdict != Verdict::Delivered {
                self.count_failure(&verdict);
            }
            match verdict {
                Verdict::Delivered => {
                    backoff = self.policy.initial;
                    self.remove(&batch);
                    self.count("sent", batch.len() as u64);
                    if let Some((since, tries)) = failing.take() {
                        tracing::info!(
                            receiver = self.name(),
                            failed_tries = tries,
                            outage_seconds = since.elapsed().as_secs(),
                            "receiver answers again; delivering what it missed"
                        );
                    }
                }
                Verdict::Permanent { reason } => {
                    self.remove(&batch);
                    self.count("failed_permanent", batch.len() as u64);
                    if !logged_permanent {
                        tracing::error!(receiver = self.name(), error = %reason, "receiver refused notifications; not retrying them (logged once)");
                        logged_permanent = true;
                    }
                }
                Verdict::Retry { after, reason } => {
                    self.count("retried", batch.len() as u64);
                    let (since, tries) = failing.unwrap_or((tokio::time::Instant::now(), 0));
                    failing = Some((since, tries + 1));
                    // A receiver's Retry-After is honoured up to retry_max: an hour's
                    // wait must not hold every later alert back.
                    let wait = after
                        .map(|a| a.min(self.policy.max))
                        .unwrap_or_else(|| jitter(backoff));
                    tracing::warn!(receiver = self.name(), error = %reason, retry_in_ms = wait.as_millis() as u64, "delivery failed; will retry");
                    backoff = (backoff * 2).min(self.policy.max);
                    let sleep = tokio::time::sleep(wait);
                    match deadline {
                        Some(d) => {
                            tokio::select! {
                                _ = sleep => {}
                                _ = tokio::time::sleep_until(d) => {}
                            }
                        }
                        None => sleep.await,
                    }
                }
            }
        }
    }

    fn remove(&self, batch: &[(AlertKey, u64, Event)]) {
        let mut o = self.lock();
        for (key, seq, _) in batch {
            // Only if no newer event replaced it meanwhile.
            if o.pending.get(key).is_some_and(|(s, _)| s == seq) {
                o.pending.remove(key);
                o.order.retain(|(k, s)| !(k == key && s == seq));
            }
        }
        self.set_queue_gauge(o.order.len());
    }
}

/// ±20% so that many headroom replicas do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let factor = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(factor)
}
