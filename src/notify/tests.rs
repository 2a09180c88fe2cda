//! Lifecycle and delivery logic with paused tokio time and a recording receiver (the
//! HTTP integrations are tested against real servers in tests/notify.rs).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dispatch::{describe, url_encode};
use super::*;
use crate::model::Pattern;
use crate::vocab::TimestampMs;

fn report(container: &str, alert: Option<Severity>, at: TimestampMs) -> ContainerReport {
    ContainerReport {
        namespace: "prod".into(),
        pod: "payment-service-7f8b9c6d4-xk2nm".into(),
        container: container.into(),
        labels: BTreeMap::new(),
        working_set_bytes: 100.0 * 1048576.0,
        limit_bytes: Some(128.0 * 1048576.0),
        limit_source: None,
        use_ratio: Some(100.0 / 128.0),
        growth_bytes_per_second: Some(32.0 * 1048576.0 / 3600.0),
        time_to_limit_seconds: alert.map(|_| 2280.0),
        time_to_limit_lower_seconds: alert.map(|_| 1860.0),
        time_to_limit_upper_seconds: alert.map(|_| 2820.0),
        severity: alert.unwrap_or(Severity::None),
        alert,
        pattern: Pattern::Leak,
        onset: crate::vocab::Rfc3339::parse("2026-03-19T14:12:00Z"),
        growth_from_daily_peaks: false,
        previous_run_seconds: None,
        evaluated_at: crate::vocab::Rfc3339(at),
        stale: false,
        sidecar: container == "istio-proxy",
        workload: None,
        changes: vec![],
        envoy: None,
        workload_peers: None,
        pod_pressure: None,
        long_history_hours: 0,
        segments: vec![],
    }
}

fn settings() -> AlertSettings {
    AlertSettings {
        alertname: "ContainerMemoryLimitForecast".into(),
        resend_interval: Duration::from_secs(60),
        resolved_retention: Duration::from_secs(900),
        poll_interval: Duration::from_secs(30),
        extra_labels: [("team".to_string(), "platform".to_string())].into(),
        runbook_url: Some("https://runbooks.example/{namespace}/{container}".into()),
        dashboard_url: None,
        prometheus_url: "http://prometheus:9090/".into(),
    }
}

const MIN: i64 = 60_000;

#[test]
fn lifecycle_fires_resends_escalates_and_resolves() {
    let mut d = Dispatcher::new(settings());
    let none = |_: &AlertKey| None;
    let t0 = 1_773_930_000_000;
    let e = d.update(
        &[report("istio-proxy", Some(Severity::Warning), t0)],
        t0,
        none,
    );
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EventKind::Fired);
    assert_eq!(e[0].starts_at, t0);
    assert_eq!(
        e[0].ends_at,
        t0 + 4 * MIN,
        "endsAt = now + 4 x max(poll, resend)"
    );
    assert_eq!(e[0].labels["severity"], "warning");
    assert_eq!(e[0].labels["team"], "platform");
    assert_eq!(
        e[0].annotations["runbook_url"],
        "https://runbooks.example/prod/istio-proxy"
    );
    assert!(e[0].generator_url.starts_with("http://prometheus:9090/graph?g0.expr=container_memory_working_set_bytes%7Bnamespace%3D%22prod%22"));

    // Within the resend interval: nothing; after it: a resend with a fresh endsAt.
    let t1 = t0 + MIN / 2;
    assert!(d
        .update(
            &[report("istio-proxy", Some(Severity::Warning), t1)],
            t1,
            none
        )
        .is_empty());
    let t2 = t0 + MIN;
    let e = d.update(
        &[report("istio-proxy", Some(Severity::Warning), t2)],
        t2,
        none,
    );
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].starts_at, e[0].ends_at),
        (EventKind::Resent, t0, t2 + 4 * MIN)
    );

    let t3 = t2 + MIN / 2;
    let e = d.update(
        &[report("istio-proxy", Some(Severity::Critical), t3)],
        t3,
        none,
    );
    assert_eq!(e[0].kind, EventKind::Escalated);
    assert_eq!(e[0].previous_severity, Some(Severity::Warning));
    assert_eq!(e[0].starts_at, t0, "the same alert, escalated");

    let t4 = t3 + MIN / 2;
    let e = d.update(&[report("istio-proxy", None, t4)], t4, none);
    assert_eq!(e[0].kind, EventKind::Resolved);
    assert_eq!(e[0].ends_at, t4);
    assert_eq!(
        e[0].labels["severity"], "critical",
        "resolves the alert Alertmanager knows"
    );
}

#[test]
fn a_container_that_goes_away_resolves_and_resolved_alerts_are_resent_for_a_while() {
    let mut d = Dispatcher::new(settings());
    let none = |_: &AlertKey| None;
    let t0 = 1_773_930_000_000;
    d.update(
        &[report("istio-proxy", Some(Severity::Critical), t0)],
        t0,
        none,
    );
    let e = d.update(&[], t0 + 30_000, none);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EventKind::Resolved);
    assert!(e[0].annotations["summary"].ends_with("went away"));
    let resent = d.update(&[], t0 + 2 * MIN, none);
    assert_eq!(resent.len(), 1);
    assert_eq!(
        (resent[0].kind, resent[0].firing()),
        (EventKind::Resent, false)
    );
    assert!(
        d.update(&[], t0 + 20 * MIN, none).is_empty(),
        "past the retention"
    );
}

#[test]
fn failures_have_a_reason_class() {
    let class = |r: &str| {
        Verdict::Retry {
            after: None,
            reason: r.into(),
        }
        .reason_class()
    };
    assert_eq!(class("HTTP 429: slow down"), "http_429");
    assert_eq!(class("HTTP 503: busy"), "http_5xx");
    assert_eq!(
        Verdict::Permanent {
            reason: "HTTP 404: no_service".into()
        }
        .reason_class(),
        "http_4xx"
    );
    assert_eq!(class("timed out"), "timeout");
    assert_eq!(class("connection failed"), "transport");
}

#[test]
fn sparkline_scales_to_the_limit() {
    assert_eq!(sparkline(&[0.0, 50.0, 100.0], 100.0, 3), "▁▅█");
    assert_eq!(sparkline(&[], 100.0, 3), "");
}

#[test]
fn one_place_decides_retries() {
    assert_eq!(verdict(Ok((200, None, String::new()))), Verdict::Delivered);
    assert!(matches!(
        verdict(Ok((503, None, "busy".into()))),
        Verdict::Retry { after: None, .. }
    ));
    assert_eq!(
        verdict(Ok((429, Some(Duration::from_secs(7)), "slow down".into()))),
        Verdict::Retry {
            after: Some(Duration::from_secs(7)),
            reason: "HTTP 429: slow down".into()
        }
    );
    assert_eq!(
        verdict(Ok((404, None, "no_service".into()))),
        Verdict::Permanent {
            reason: "HTTP 404: no_service".into()
        }
    );
    assert!(matches!(
        verdict(Err("connection failed".into())),
        Verdict::Retry { .. }
    ));
}

/// Records what it was sent and answers from a script (then `Delivered`).
struct Recorder {
    sent: Mutex<Vec<(tokio::time::Instant, Vec<Event>)>>,
    script: Mutex<VecDeque<Verdict>>,
    interval: Duration,
    /// Every attempt before this instant fails as if the receiver were down.
    down_until: Mutex<Option<tokio::time::Instant>>,
}

impl Recorder {
    fn new(script: Vec<Verdict>, interval: Duration) -> Arc<Self> {
        Arc::new(Recorder {
            sent: Mutex::new(vec![]),
            script: Mutex::new(script.into()),
            interval,
            down_until: Mutex::new(None),
        })
    }
    fn delivered(&self) -> Vec<(String, EventKind, bool)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, events)| {
                events
                    .iter()
                    .map(|e| (e.key.container.clone(), e.kind, e.firing()))
            })
            .collect()
    }
}

impl Receiver for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn wants(&self, e: &Event) -> bool {
        e.kind != EventKind::Resent
    }
    fn max_batch(&self) -> usize {
        10
    }
    fn min_interval(&self) -> Duration {
        self.interval
    }
    fn send<'a>(
        &'a self,
        events: &'a [Event],
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'a>> {
        Box::pin(async move {
            let down = self
                .down_until
                .lock()
                .unwrap()
                .is_some_and(|t| tokio::time::Instant::now() < t);
            let verdict = if down {
                Verdict::Retry {
                    after: None,
                    reason: "connection refused".into(),
                }
            } else {
                self.script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Verdict::Delivered)
            };
            // Only successful deliveries count as "sent"; attempts are counted apart.
            if verdict == Verdict::Delivered {
                self.sent
                    .lock()
                    .unwrap()
                    .push((tokio::time::Instant::now(), events.to_vec()));
            }
            verdict
        })
    }
}

fn event(
    d: &mut Dispatcher,
    container: &str,
    alert: Option<Severity>,
    t: TimestampMs,
) -> Vec<Event> {
    d.update(&[report(container, alert, t)], t, |_: &AlertKey| None)
}

/// Runs a worker (retries from 1 s up to 60 s) on `recorder`, hands it one firing
/// alert, and waits for its delivery: how long that took, and the worker to close.
async fn time_to_delivery(
    recorder: &Arc<Recorder>,
) -> (Duration, Arc<Worker>, tokio::task::JoinHandle<()>) {
    let policy = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        capacity: 10,
    };
    let worker = Worker::new(recorder.clone(), policy, None);
    let task = tokio::spawn(worker.clone().run(Duration::from_secs(5)));
    let mut d = Dispatcher::new(settings());
    let start = tokio::time::Instant::now();
    for e in event(&mut d, "istio-proxy", Some(Severity::Critical), 0) {
        worker.enqueue(&e);
    }
    while recorder.delivered().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (start.elapsed(), worker, task)
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_and_honour_retry_after() {
    let retry = |after| Verdict::Retry {
        after,
        reason: "HTTP 503".into(),
    };
    let recorder = Recorder::new(
        vec![
            retry(None),
            retry(None),
            retry(Some(Duration::from_secs(30))),
        ],
        Duration::ZERO,
    );
    let (took, worker, task) = time_to_delivery(&recorder).await;
    // Backoff 1s then 2s (±20% jitter), then the 30s Retry-After.
    assert!(
        took >= Duration::from_secs(32) && took <= Duration::from_secs(34),
        "{took:?}"
    );
    assert_eq!(
        recorder.delivered(),
        vec![("istio-proxy".into(), EventKind::Fired, true)]
    );
    worker.close();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_ten_minute_outage_loses_nothing_and_sends_nothing_twice() {
    // Down for ten minutes: every attempt in that time fails.
    let recorder = Recorder::new(vec![], Duration::ZERO);
    *recorder.down_until.lock().unwrap() =
        Some(tokio::time::Instant::now() + Duration::from_secs(600));
    let policy = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        capacity: 100,
    };
    let worker = Worker::new(recorder.clone(), policy, None);
    let task = tokio::spawn(worker.clone().run(Duration::from_secs(5)));
    let mut d = Dispatcher::new(settings());
    // Every poll hands the dispatcher all containers, as the daemon does.
    let mut poll = |alerts: &[(&str, Option<Severity>)], t: TimestampMs| {
        let reports: Vec<ContainerReport> = alerts.iter().map(|(c, a)| report(c, *a, t)).collect();
        for e in d.update(&reports, t, |_: &AlertKey| None) {
            worker.enqueue(&e);
        }
    };
    use Severity::{Critical, Warning};
    // A fires and stays firing; B fires, escalates and resolves; C fires and stays.
    poll(
        &[("a", Some(Warning)), ("b", Some(Warning)), ("c", None)],
        0,
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    poll(
        &[
            ("a", Some(Warning)),
            ("b", Some(Critical)),
            ("c", Some(Critical)),
        ],
        120_000,
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    poll(
        &[("a", Some(Warning)), ("b", None), ("c", Some(Critical))],
        240_000,
    );
    // The receiver comes back at ten minutes; the next retry (at most a minute later)
    // delivers everything.
    tokio::time::sleep(Duration::from_secs(15 * 60)).await;
    let mut delivered = recorder.delivered();
    delivered.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        delivered,
        vec![
            ("a".into(), EventKind::Fired, true),
            ("b".into(), EventKind::Resolved, false),
            ("c".into(), EventKind::Fired, true),
        ],
        "the newest state of every alert, once"
    );
    worker.close();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_the_oldest_and_rate_limits_hold() {
    let recorder = Recorder::new(vec![], Duration::from_secs(1));
    let policy = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        capacity: 2,
    };
    let worker = Worker::new(recorder.clone(), policy, None);
    let mut d = Dispatcher::new(settings());
    for c in ["a", "b", "c"] {
        for e in event(&mut d, c, Some(Severity::Warning), 0) {
            worker.enqueue(&e);
        }
    }
    assert_eq!(worker.queued(), 2, "capacity 2: the oldest (a) was dropped");
    let task = tokio::spawn(worker.clone().run(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let names: Vec<String> = recorder.delivered().into_iter().map(|d| d.0).collect();
    assert_eq!(names, ["b", "c"]);
    worker.close();
    task.await.unwrap();
}

/// Issue 18: a burst larger than a receiver's outbox loses nothing the receiver
/// can still take: what was dropped is sent again, as it stands, once there is
/// room, and every alert arrives once, as fired.
#[tokio::test(start_paused = true)]
async fn a_burst_past_the_queue_is_delivered_once_there_is_room() {
    let recorder = Recorder::new(vec![], Duration::ZERO);
    let policy = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        capacity: 10,
    };
    let mut notifier = Notifier::start(
        settings(),
        vec![recorder.clone()],
        policy,
        Duration::from_secs(5),
        None,
    );
    let names: Vec<String> = (0..30).map(|i| format!("c{i:02}")).collect();
    let reports = |t: TimestampMs| -> Vec<ContainerReport> {
        names
            .iter()
            .map(|n| report(n, Some(Severity::Warning), t))
            .collect()
    };
    let none = |_: &AlertKey| None;
    let fired = notifier.publish(&reports(0), 0, none);
    assert_eq!(fired.len(), 30, "thirty alerts fire in one poll");
    // Polls go on, the alerts still firing: the dropped are sent again meanwhile.
    for poll in 1..20 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let t = poll * 30_000;
        notifier.publish(&reports(t), t, none);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut delivered = recorder.delivered();
    delivered.sort_by(|a, b| a.0.cmp(&b.0));
    let got: Vec<&str> = delivered.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(
        got,
        names.iter().map(String::as_str).collect::<Vec<_>>(),
        "each once"
    );
    assert!(delivered.iter().all(|d| d.1 == EventKind::Fired && d.2));
    notifier.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn permanent_refusals_are_dropped_not_retried() {
    let recorder = Recorder::new(
        vec![Verdict::Permanent {
            reason: "HTTP 404: no_service".into(),
        }],
        Duration::ZERO,
    );
    let worker = Worker::new(recorder.clone(), RetryPolicy::default(), None);
    let mut d = Dispatcher::new(settings());
    for e in event(&mut d, "a", Some(Severity::Warning), 0) {
        worker.enqueue(&e);
    }
    let task = tokio::spawn(worker.clone().run(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(recorder.delivered().is_empty());
    assert_eq!(worker.queued(), 0);
    worker.close();
    task.await.unwrap();
}

/// The summary keeps its fixed form (who, limit, time to limit, growth); the story
/// (the run before, the change, the replicas) goes into the description, first.
#[test]
fn a_forecast_from_the_run_before_says_so_in_its_description() {
    let mut r = report("app", Some(Severity::Warning), 0);
    assert!(!describe(&r).contains("run before"), "{}", describe(&r));
    let summary = r.summary();
    r.previous_run_seconds = Some(9900.0);
    assert_eq!(r.summary(), summary, "the summary keeps its form");
    let description = describe(&r);
    assert!(
        description.starts_with(
            "on the course of the run before, which reached the limit 2h45m after its start; working set"
        ),
        "{description}"
    );
}

/// A container not growing whose daily cycle's peak reaches the limit on the level
/// it holds is paged with that, not with a growth of nothing since its onset.
#[test]
fn a_daily_peak_at_the_limit_says_so_in_the_summary() {
    let mut r = report("app", Some(Severity::Warning), 0);
    r.pattern = Pattern::Stable;
    r.growth_bytes_per_second = Some(0.0);
    assert_eq!(
        r.summary(),
        "app in prod/payment-service-7f8b9c6d4-xk2nm will reach its 128Mi limit in ~38m (90% interval 31m–47m); its daily peak reaches it at the level it holds now"
    );
}

/// Growth that stands on days of daily peaks reads per day, since the day it began:
/// not "+8Mi/h began 14:12", which reads as this afternoon.
#[test]
fn growth_over_days_says_since_when_and_per_day() {
    let now = crate::vocab::Rfc3339::parse("2026-03-27T09:30:00Z").unwrap();
    let mut r = report("app", Some(Severity::Warning), now.0);
    r.growth_bytes_per_second = Some(8.0 * 1024.0 * 1024.0 / 3600.0);
    assert!(
        r.summary()
            .ends_with("; growth +8Mi/h began 2026-03-19 14:12"),
        "an onset days back names its day: {}",
        r.summary()
    );
    assert_eq!(r.growth_text().as_deref(), Some("+8Mi/h"));
    r.growth_from_daily_peaks = true;
    assert_eq!(
        r.growth_text().as_deref(),
        Some("+192Mi a day (daily peaks)")
    );
    assert!(
        r.summary()
            .ends_with("; its daily peaks have risen +192Mi a day since 2026-03-19 14:12"),
        "{}",
        r.summary()
    );
    // On the same day, the time of day is enough; the next day, it is not.
    r.evaluated_at = crate::vocab::Rfc3339::parse("2026-03-19T23:50:00Z").unwrap();
    assert!(r.summary().ends_with("since 14:12"), "{}", r.summary());
    r.evaluated_at = crate::vocab::Rfc3339::parse("2026-03-20T09:00:00Z").unwrap();
    assert!(
        r.summary().ends_with("since 2026-03-19 14:12"),
        "{}",
        r.summary()
    );
}

#[test]
fn generator_url_is_scoped_to_the_extra_labels() {
    // Two clusters can hold the same pod name: the link plots this one's only.
    let mut d = Dispatcher::new(settings());
    let t0 = 1_773_930_000_000;
    let mut r = report("istio-proxy", Some(Severity::Warning), t0);
    r.labels.insert("cluster".into(), "eu".into());
    let e = d.update(&[r], t0, |_: &AlertKey| None);
    let expr = "container_memory_working_set_bytes{namespace=\"prod\",cluster=\"eu\",\
                pod=\"payment-service-7f8b9c6d4-xk2nm\",container=\"istio-proxy\"}";
    assert_eq!(
        e[0].generator_url,
        format!(
            "http://prometheus:9090/graph?g0.expr={}&g0.tab=0&g0.range_input=6h",
            url_encode(expr)
        )
    );
}

/// Issue 14: the seed incident fired with "~37m" that was "~113m" three minutes
/// later, and Slack and webhooks, which hear transitions only, kept the 37 minutes.
/// A firing alert whose time to limit moves by a third or more from what receivers
/// heard (aged by the time since) is news, once; a drift that follows the clock is not.
#[test]
fn a_material_change_of_the_time_to_limit_is_told_once() {
    let mut d = Dispatcher::new(settings());
    let none = |_: &AlertKey| None;
    let t0 = 1_773_930_000_000;
    let firing = |eta: f64, at: TimestampMs| {
        let mut r = report("istio-proxy", Some(Severity::Critical), at);
        r.time_to_limit_seconds = Some(eta);
        r
    };
    let told = |events: Vec<Event>| -> Vec<EventKind> {
        events
            .into_iter()
            .map(|e| e.kind)
            .filter(|k| *k != EventKind::Resent)
            .collect()
    };
    assert_eq!(
        told(d.update(&[firing(37.0 * 60.0, t0)], t0, none)),
        [EventKind::Fired]
    );
    // On the clock: 37 minutes less the 10 that passed.
    let t1 = t0 + 10 * MIN;
    assert!(told(d.update(&[firing(27.0 * 60.0, t1)], t1, none)).is_empty());
    // The truth was ~113 minutes: told once, within the spacing not before.
    let t2 = t0 + 11 * MIN;
    let e = d.update(&[firing(102.0 * 60.0, t2)], t2, none);
    assert_eq!(told(e.clone()), [EventKind::Updated]);
    let update = e.iter().find(|e| e.kind == EventKind::Updated).unwrap();
    assert_eq!(update.report.time_to_limit_seconds, Some(102.0 * 60.0));
    assert!(update.annotations["summary"].contains("~1h42m"));
    for m in 12..40 {
        let t = t0 + m * MIN;
        let eta = (102.0 - (m - 11) as f64) * 60.0;
        assert!(
            told(d.update(&[firing(eta, t)], t, none)).is_empty(),
            "minute {m}: no news"
        );
    }
    // Slack hears it; Alertmanager takes it as a refresh.
    assert!(slack::Slack {
        name: "s".into(),
        url: crate::vocab::SecretValue::Inline("http://127.0.0.1:9/".into()),
        http: reqwest::Client::new(),
        timeout: Duration::from_secs(1),
        filter: Filter::default(),
    }
    .wants(update));
    let message = slack::message(update);
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("CRITICAL (time to limit changed): "),
        "{message}"
    );
}

/// A time to limit that stays where it was (a paused climb) is not news every ten
/// minutes; the first time to limit after none is, once.
#[test]
fn a_paused_time_to_limit_is_not_repeated_and_a_first_one_is_told() {
    let mut d = Dispatcher::new(settings());
    let none = |_: &AlertKey| None;
    let t0 = 1_773_930_000_000;
    let firing = |eta: Option<f64>, at: TimestampMs| {
        let mut r = report("istio-proxy", Some(Severity::Critical), at);
        r.time_to_limit_seconds = eta;
        r
    };
    let updates = |d: &mut Dispatcher, eta: Option<f64>, t: TimestampMs| {
        d.update(&[firing(eta, t)], t, none)
            .into_iter()
            .filter(|e| e.kind == EventKind::Updated)
            .count()
    };
    // Fired at the limit, without a time to limit.
    assert_eq!(updates(&mut d, None, t0), 0);
    // Restarted on the course of the run before: its first time to limit is news.
    assert_eq!(updates(&mut d, Some(6000.0), t0 + 11 * MIN), 1);
    // Then it stays at 100 minutes for an hour: nothing more.
    let told: usize = (12..72)
        .map(|m| updates(&mut d, Some(6000.0), t0 + m * MIN))
        .sum();
    assert_eq!(told, 0);
}

/// Issue 16 and 18: Retry-After was read only as seconds, and obeyed past
/// retry_max (an hour's wait held every later alert back). It is read as seconds or
/// an HTTP date, and capped by retry_max.
#[test]
fn retry_after_is_seconds_or_a_date() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-06T18:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        delivery::retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        delivery::retry_after("Sun, 06 Dec 2026 18:01:30 GMT", now),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        delivery::retry_after("Sun, 06 Dec 2026 17:00:00 GMT", now),
        Some(Duration::ZERO),
        "a date past is now"
    );
    assert_eq!(delivery::retry_after("soon", now), None);
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_is_capped_by_retry_max() {
    let recorder = Recorder::new(
        vec![Verdict::Retry {
            after: Some(Duration::from_secs(3600)),
            reason: "HTTP 429".into(),
        }],
        Duration::ZERO,
    );
    let (took, worker, task) = time_to_delivery(&recorder).await;
    assert!(
        took >= Duration::from_secs(60) && took <= Duration::from_secs(61),
        "{took:?}"
    );
    worker.close();
    task.await.unwrap();
}

/// Issue 18: an error answer that echoes the request is logged without the secret
/// URL or token in it.
#[test]
fn receiver_error_bodies_are_redacted_like_their_urls() {
    let url = "https://hooks.slack.example/services/T0001/B0002/XXXXsecretXXXX";
    let headers = [("Authorization".to_string(), "Bearer tok-123456".to_string())];
    let body = "404 Cannot POST /services/T0001/B0002/XXXXsecretXXXX (auth Bearer tok-123456); see https://hooks.slack.example/services/T0001/B0002/XXXXsecretXXXX";
    let redacted = super::delivery::redact(body, url, &headers);
    assert!(!redacted.contains("XXXXsecretXXXX"), "{redacted}");
    assert!(!redacted.contains("tok-123456"), "{redacted}");
    assert!(
        redacted.starts_with("404 Cannot POST <redacted>"),
        "{redacted}"
    );
    // Only the tail alone, echoed: still gone; so are a bare token, a query value
    // and a password in the URL.
    let tail = super::delivery::redact("bad token XXXXsecretXXXX", url, &[]);
    assert_eq!(tail, "bad token <redacted>");
    let bare = super::delivery::redact("invalid token tok-123456", url, &headers);
    assert_eq!(bare, "invalid token <redacted>");
    let with_query = "https://user:pa55word@hooks.example/x?token=qwerty123";
    let echoed = super::delivery::redact("denied for qwerty123 (pa55word)", with_query, &[]);
    assert_eq!(echoed, "denied for <redacted> (<redacted>)");
    // Nothing secret, nothing changed.
    assert_eq!(
        super::delivery::redact("invalid_payload", url, &headers),
        "invalid_payload"
    );
}

/// Issue 18: an attributed OOM kill is an alert of its own that Alertmanager would
/// lose on a restart: it is re-sent while its hour lasts, ending with it, and it
/// carries the killed incarnation's figures, not the restarted one's.
#[test]
fn an_oom_kill_alert_is_resent_while_it_lasts_with_the_killed_figures() {
    use crate::explain::oom::{attribute, ContainerAtKill};
    let mut d = Dispatcher::new(settings());
    let none = |_: &AlertKey| None;
    let t0 = 1_773_930_000_000;
    let kill = attribute(
        t0,
        "prod",
        "payment-service-7f8b9c6d4-xk2nm",
        "payment-service",
        vec![
            ContainerAtKill {
                container: "istio-proxy".into(),
                working_set_bytes: 128.0 * 1048576.0,
                limit_bytes: Some(128.0 * 1048576.0),
            },
            ContainerAtKill {
                container: "payment-service".into(),
                working_set_bytes: 118.0 * 1048576.0,
                limit_bytes: Some(256.0 * 1048576.0),
            },
        ],
    );
    // The restarted sidecar's own forecast: young, small.
    let mut restarted = report("istio-proxy", None, t0);
    restarted.working_set_bytes = 60.0 * 1048576.0;
    restarted.pattern = Pattern::InsufficientData;
    let event = d.oom_event(&kill, &restarted, t0);
    assert_eq!(event.report.working_set_bytes, 128.0 * 1048576.0);
    assert_eq!(event.report.time_to_limit_seconds, Some(0.0));
    assert_eq!(event.ends_at, t0 + 3_600_000);
    let resent = |events: &[Event]| {
        events
            .iter()
            .filter(|e| e.key.container == "oom-kill:istio-proxy" && e.kind == EventKind::Resent)
            .count()
    };
    // Every resend interval while it lasts, ending when the hour does.
    let mut count = 0;
    for minute in 1..=70 {
        let t = t0 + minute * 60_000;
        let events = d.update(&[report("app", None, t)], t, none);
        let n = resent(&events);
        if minute < 60 {
            count += n;
        } else {
            assert_eq!(n, 0, "minute {minute}: over");
        }
    }
    assert!(count >= 55, "re-sent {count} times in its hour");
}

/// Issue 18: shutdown drains every receiver within one drain period: three stuck
/// receivers take it once, not three times (Kubernetes' grace is 30 s).
#[tokio::test(start_paused = true)]
async fn the_whole_drain_fits_in_one_drain_period() {
    let stuck: Vec<Arc<Recorder>> = (0..3)
        .map(|_| {
            let r = Recorder::new(vec![], Duration::ZERO);
            *r.down_until.lock().unwrap() =
                Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            r
        })
        .collect();
    let receivers: Vec<Arc<dyn Receiver>> = stuck
        .iter()
        .map(|r| r.clone() as Arc<dyn Receiver>)
        .collect();
    let drain = Duration::from_secs(10);
    let mut notifier = Notifier::start(settings(), receivers, RetryPolicy::default(), drain, None);
    let none = |_: &AlertKey| None;
    notifier.publish(&[report("a", Some(Severity::Warning), 0)], 0, none);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    notifier.shutdown().await;
    let took = started.elapsed();
    assert!(took <= drain + Duration::from_secs(2), "{took:?}");
    assert!(stuck.iter().all(|r| r.delivered().is_empty()));
}

/// A reload hands what a receiver held (here: alerts it could not deliver while
/// down) to the receiver's new worker: each arrives once, from the new one.
#[tokio::test(start_paused = true)]
async fn a_reload_keeps_what_a_receiver_had_not_delivered() {
    let old = Recorder::new(vec![], Duration::ZERO);
    *old.down_until.lock().unwrap() = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
    let mut notifier = Notifier::start(
        settings(),
        vec![old.clone()],
        RetryPolicy::default(),
        Duration::from_secs(5),
        None,
    );
    let none = |_: &AlertKey| None;
    let reports: Vec<ContainerReport> = ["a", "b", "c"]
        .iter()
        .map(|c| report(c, Some(Severity::Warning), 0))
        .collect();
    notifier.publish(&reports, 0, none);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let new = Recorder::new(vec![], Duration::ZERO);
    notifier.reconfigure(
        settings(),
        vec![new.clone()],
        RetryPolicy::default(),
        Duration::from_secs(5),
        None,
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut got: Vec<(String, EventKind, bool)> = new.delivered();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(got.iter().all(|d| d.1 == EventKind::Fired));
    assert!(old.delivered().is_empty());
    notifier.shutdown().await;
}
