//! The wiring: turns parsed command-line arguments into a validated config, builds the
//! pipeline, and runs the chosen command (`check`, `run`, `demo`, `backtest`,
//! `config check`). The top of the layers: it may use every module, and none uses it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use chrono::Utc;

use crate::backtest::{self, ReplayParams};
use crate::cli::{
    BacktestArgs, BacktestFormat, CheckArgs, Cli, Command, ConfigCommand, DemoArgs, OutputFormat,
};
use crate::config::{Config, ConfigError, Overrides};
use crate::daemon::{self, LoopOptions, WallClock};
use crate::pipeline::Pipeline;
use crate::report::render_table;
use crate::source::kubernetes::PrometheusSource;
use crate::source::prometheus::PrometheusClient;
use crate::vocab::TimestampMs;

/// Why a command failed, which decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad arguments: exit 2.
    #[error("{0}")]
    Usage(String),
    /// A config with problems: exit 2.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything that went wrong while running: exit 1.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) | AppError::Config(_) => 2,
            AppError::Runtime(_) => 1,
        }
    }
}

/// Runs the command `cli` names. `shutdown` ends long-running commands gracefully;
/// the daemon calls `after_poll` once each poll is done (see `LoopOptions`).
pub async fn run(
    cli: Cli,
    after_poll: fn(),
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let overrides = Overrides {
        prometheus_url: cli.global.prometheus_url.clone(),
        shard_index: cli.global.shard_index,
        shard_count: cli.global.shard_count,
    };
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            let config = Config::load(Some(&file), &overrides)?;
            let warnings: String = config
                .warnings
                .iter()
                .map(|w| format!("  warning: {w}\n"))
                .collect();
            emit(&format!(
                "{}: ok (Prometheus {}, lookback {}, poll every {})\n{warnings}",
                file.display(),
                config.prometheus.url,
                humantime::format_duration(config.store.lookback),
                humantime::format_duration(config.poll_interval),
            ))
        }
        Command::Check(args) => {
            let config = Config::load(cli.global.config.as_deref(), &overrides)?;
            check(&config, &args).await
        }
        Command::Backtest(args) => {
            let config = Config::load(cli.global.config.as_deref(), &overrides)?;
            run_backtest(&config, &args).await
        }
        Command::Demo(args) => {
            let config = Config::load(cli.global.config.as_deref(), &overrides)?;
            demo(&config, &args, shutdown).await
        }
        Command::Run => {
            let path = cli.global.config.clone();
            let config = Config::load(path.as_deref(), &overrides)?;
            // What SIGHUP and POST /-/reload run: the file read again, the same
            // command-line overrides on top.
            config.warnings.iter().for_each(|w| tracing::warn!("{w}"));
            let reload: daemon::Reload<PrometheusSource> = Box::new(move || {
                let config =
                    Config::load(path.as_deref(), &overrides).map_err(|e| e.to_string())?;
                config.warnings.iter().for_each(|w| tracing::warn!("{w}"));
                let source = prometheus_source(&config).map_err(|e| format!("{e:#}"))?;
                Ok((config, source))
            });
            daemon(&config, reload, after_poll, shutdown).await
        }
    }
}

/// The Prometheus source a config describes: its client, queries, extra identity
/// labels and shard, as `run`, `check` and `backtest` read.
pub fn prometheus_source(config: &Config) -> Result<PrometheusSource, AppError> {
    let client =
        PrometheusClient::new(&config.prometheus).context("cannot set up the Prometheus client")?;
    Ok(PrometheusSource::new(
        client,
        config.queries.clone(),
        config.extra_identity_labels.clone(),
    )
    .with_shard(config.shard))
}

async fn check(config: &Config, args: &CheckArgs) -> Result<(), AppError> {
    let at = match &args.at {
        Some(text) => parse_instant(text).map_err(AppError::Usage)?,
        None => Utc::now().timestamp_millis(),
    };
    let mut pipeline = Pipeline::new(prometheus_source(config)?, config);
    let polled = pipeline.poll(at).await.with_context(|| {
        format!(
            "cannot read container memory from {}",
            config.prometheus.url
        )
    })?;
    // The long tier as a daemon holds it once read back.
    if let Err(e) = pipeline.read_all_long_history().await {
        tracing::warn!(
            error = %format!("{:#}", anyhow::Error::from(e)),
            "cannot read the long history back; forecasting without it"
        );
    }
    // Replay the pending period's evaluations (over enough samples, on coarse
    // scrapes) so `alert` is what a daemon would send.
    let evidence = std::time::Duration::from_secs_f64(
        f64::from(config.forecast.pending_samples) * pipeline.widest_spacing_seconds(),
    );
    let warmup = config
        .forecast
        .warning_pending
        .max(config.forecast.critical_pending)
        .max(evidence);
    let mut reports = pipeline.evaluate_with_warmup(at, warmup);
    let mut explainer = config.explainer();
    explainer
        .explain(pipeline.source(), pipeline.store(), &mut reports, at)
        .await;
    match args.format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&reports).context("cannot encode JSON")?;
            emit(&format!("{json}\n"))
        }
        OutputFormat::Table if reports.is_empty() => {
            let ingest = &polled.ingest;
            let unnamed = ingest.series_without_identity;
            let why = match (ingest.series_fetched + unnamed, unnamed) {
                (0, _) => "the working-set query returned no series".to_string(),
                (n, unnamed) if unnamed > 0 => format!(
                    "the working-set query returned {n} series, {unnamed} of them without a namespace, pod or container label (queries.working_set must keep them, and identity.extra_labels)"
                ),
                (n, _) => format!("the working-set query returned {n} series, none of them with samples in the lookback"),
            };
            emit(&format!(
                "no containers found: {why} (query: {})\n",
                config.queries.working_set
            ))
        }
        OutputFormat::Table => emit(&render_table(&reports)),
    }
}

/// Writes a command's output to stdout. A reader that went away (`| head -1`) ends
/// it quietly, as Unix tools do, instead of a panic.
fn emit(text: &str) -> Result<(), AppError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(AppError::Runtime(
            anyhow::Error::from(e).context("cannot write the output"),
        )),
        _ => Ok(()),
    }
}

async fn daemon(
    config: &Config,
    reload: daemon::Reload<PrometheusSource>,
    after_poll: fn(),
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let source = prometheus_source(config)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen_address)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen_address))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        prometheus = %config.prometheus.url,
        listen = %config.server.listen_address,
        lookback = %humantime::format_duration(config.store.lookback),
        resolution = %humantime::format_duration(config.store.resolution),
        poll_interval = %humantime::format_duration(config.poll_interval),
        warning_horizon = %humantime::format_duration(config.forecast.warning_horizon),
        critical_horizon = %humantime::format_duration(config.forecast.critical_horizon),
        auth = match config.prometheus.auth {
            crate::vocab::Auth::None => "none",
            crate::vocab::Auth::Bearer(_) => "bearer",
            crate::vocab::Auth::Basic { .. } => "basic",
        },
        "headroom starting"
    );
    let pipeline = Pipeline::new(source, config);
    daemon::serve(
        pipeline,
        config,
        std::sync::Arc::new(WallClock),
        LoopOptions {
            after_poll,
            ..LoopOptions::from_config(config)
        },
        listener,
        Box::new(|_, _| {}),
        |s: &PrometheusSource| s.client().stats().snapshot(),
        Some(reload),
        shutdown,
    )
    .await?;
    tracing::info!("headroom stopped");
    Ok(())
}

async fn demo(
    config: &Config,
    args: &DemoArgs,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    use crate::sim::cluster::SimulatedCluster;
    if !(args.speed.is_finite() && args.speed > 0.0 && args.speed <= 100_000.0) {
        return Err(AppError::Usage(
            "--speed must be a number above 0 and at most 100000".into(),
        ));
    }
    let mut config = config.clone();
    add_demo_receivers(&mut config, args)?;
    let config = &config;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (choose another with --listen)",
                args.listen
            )
        })?;
    // The simulated day: the payment-service rollout happened 20 minutes ago.
    let start = Utc::now().timestamp_millis() / 60_000 * 60_000;
    let rollout = start - 20 * 60_000;
    let oom = SimulatedCluster::sidecar_oom_at(rollout);
    println!(
        "headroom demo: a simulated cluster at {}x speed (one wall second = {} simulated)",
        args.speed,
        humantime::format_duration(std::time::Duration::from_secs_f64(args.speed.round()))
    );
    println!("  status page  http://{}/", args.listen);
    println!("  forecasts    http://{}/api/v1/forecasts", args.listen);
    println!("  metrics      http://{}/metrics", args.listen);
    println!("payment-service-7f8b9c6d4-xk2nm was rolled out at {} with trace sampling at 100%; its istio-proxy sidecar has a 128Mi limit.\n", crate::vocab::Rfc3339(rollout).clock());
    let mut options = LoopOptions::from_config(config);
    options.speed = args.speed;
    options.stop_at = (!args.forever).then_some(oom + 15 * 60_000);
    let outcome = std::sync::Arc::new(DemoOutcome::default());
    let pipeline = Pipeline::new(SimulatedCluster::new(rollout), config);
    daemon::serve(
        pipeline,
        config,
        std::sync::Arc::new(daemon::ScaledClock::new(start, args.speed)),
        options,
        listener,
        demo_console(outcome.clone()),
        |_| Default::default(),
        None,
        shutdown,
    )
    .await?;
    let quiet = if outcome.others_alerted.load(Ordering::Relaxed) {
        "another container alerted too (see above)"
    } else {
        "no other container alerted"
    };
    let after = if outcome.recurring.load(Ordering::Relaxed) {
        ", and its alert goes on: it leaks again on the course of the run before"
    } else {
        ""
    };
    println!(
        "\ndemo over: the sidecar reached its limit at {} and was restarted{after}; {quiet}.",
        crate::vocab::Rfc3339(oom).clock()
    );
    Ok(())
}

/// The demo's `--slack-url` and `--webhook-url`, as receivers of every warning.
fn add_demo_receivers(config: &mut Config, args: &DemoArgs) -> Result<(), AppError> {
    let timeout = std::time::Duration::from_secs(10);
    for (flag, url) in [
        ("--slack-url", &args.slack_url),
        ("--webhook-url", &args.webhook_url),
    ] {
        let Some(url) = url else { continue };
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            // The URL is a secret: say what is wrong without quoting it.
            _ => return Err(AppError::Usage(format!("{flag} is not an http(s) URL"))),
        }
        let secret = crate::vocab::SecretValue::Inline(url.clone());
        let filter = crate::notify::Filter {
            min_severity: Some(crate::model::Severity::Warning),
            ..Default::default()
        };
        let name = flag.trim_start_matches("--").trim_end_matches("-url");
        let receiver: std::sync::Arc<dyn crate::notify::ReceiverConfig> = if flag == "--slack-url" {
            std::sync::Arc::new(crate::notify::slack::SlackConfig {
                name: format!("demo-{name}"),
                url: secret,
                timeout,
                filter,
            })
        } else {
            std::sync::Arc::new(crate::notify::webhook::WebhookConfig {
                name: format!("demo-{name}"),
                url: secret,
                hmac_secret: None,
                headers: vec![],
                timeout,
                filter,
            })
        };
        config.receivers.push(receiver);
    }
    Ok(())
}

/// What the demo's console saw, for its closing line.
#[derive(Default)]
struct DemoOutcome {
    /// A container other than the sidecar alerted.
    others_alerted: AtomicBool,
    /// At the last poll, the restarted sidecar is still alerted, forecast from the
    /// run before (it leaks on the same course).
    recurring: AtomicBool,
}

/// Prints each poll's OOM kills and alert transitions, and a status line every 10
/// simulated minutes.
fn demo_console(outcome: std::sync::Arc<DemoOutcome>) -> daemon::OnPoll {
    let mut polls = 0u64;
    Box::new(move |snapshot, events| {
        let transitions = events.iter().filter(|e| e.is_news());
        if transitions
            .clone()
            .any(|e| e.severity.is_some() && e.report.container != "istio-proxy")
        {
            outcome.others_alerted.store(true, Ordering::Relaxed);
        }
        let at = snapshot
            .evaluated_at
            .map(crate::vocab::rfc3339)
            .unwrap_or_default();
        let clock = at.get(11..16).unwrap_or("");
        if let Some(sidecar) = snapshot
            .reports
            .iter()
            .find(|r| r.container == "istio-proxy")
        {
            outcome.recurring.store(
                sidecar.alert.is_some() && sidecar.previous_run_seconds.is_some(),
                Ordering::Relaxed,
            );
        }
        for kill in &snapshot.new_oom_kills {
            println!("[{clock}] {}", kill.sentence);
        }
        for e in transitions {
            let summary = e.annotations.get("summary").map_or("", String::as_str);
            let changed = if e.kind == crate::notify::EventKind::Updated {
                " (time to limit changed)"
            } else {
                ""
            };
            match e.severity {
                Some(severity) => {
                    println!(
                        "[{clock}] ALERT {}{changed}: {summary}",
                        severity.as_str().to_uppercase(),
                    );
                    // The story the description leads with: the change the growth
                    // began with, the run before it follows.
                    let story = e.report.story();
                    if !story.is_empty() {
                        println!("        {}", story.join("; "));
                    }
                }
                None => println!("[{clock}] resolved: {summary}"),
            }
        }
        if polls % 20 == 0 {
            println!("[{clock}] {}", status_line(&snapshot.reports));
        }
        polls += 1;
    })
}

/// "12 containers; most urgent: istio-proxy 97Mi (limit in ~1h10m), …"
fn status_line(reports: &[crate::report::ContainerReport]) -> String {
    let top: Vec<String> = reports
        .iter()
        .take(3)
        .map(|r| {
            format!(
                "{} {}{}",
                r.container,
                crate::units::format_bytes(r.working_set_bytes),
                r.time_to_limit_seconds.map_or(String::new(), |s| format!(
                    " (limit in ~{}{})",
                    crate::units::format_duration_short(s),
                    if r.previous_run_seconds.is_some() {
                        ", on the course of the run before"
                    } else {
                        ""
                    }
                ))
            )
        })
        .collect();
    format!(
        "{} containers; most urgent: {}",
        reports.len(),
        top.join(", ")
    )
}

/// The most evaluations one series may ask of a replay: a year at 15 s steps.
const MAX_REPLAY_EVALUATIONS: i64 = 2_200_000;

async fn run_backtest(config: &Config, args: &BacktestArgs) -> Result<(), AppError> {
    let limit = args
        .limit
        .as_deref()
        .map(crate::units::parse_bytes)
        .transpose()
        .map_err(|e| AppError::Usage(format!("--limit: {e}")))?
        .map(|b| b as f64);
    let step = match &args.step {
        Some(text) => crate::units::parse_duration(text)
            .map_err(|e| AppError::Usage(format!("--step: {e}")))?,
        None => config.poll_interval,
    };
    if step < std::time::Duration::from_secs(1) {
        return Err(AppError::Usage("--step must be 1s or longer".into()));
    }
    let (containers, from) = match &args.series {
        Some(path) => (saved_series(config, path, limit)?, i64::MIN),
        None => history_from_prometheus(config, args, limit).await?,
    };
    if containers.is_empty() {
        return Err(AppError::Runtime(anyhow::anyhow!("no series to replay")));
    }
    // A replay evaluates every step from a series' first sample to its last: a sample
    // decades off (a broken file) would run for hours and write gigabytes.
    for c in &containers {
        let times = c.segments.iter().flatten().map(|s| s.at);
        let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
            continue;
        };
        let evaluations = (last - first.max(from)) / step.as_millis().max(1) as i64;
        if evaluations > MAX_REPLAY_EVALUATIONS {
            return Err(AppError::Usage(format!(
                "{} spans {} to {}: {evaluations} evaluations at --step {}, more than {MAX_REPLAY_EVALUATIONS}; give a coarser --step or trim the series",
                c.key,
                crate::vocab::rfc3339(first),
                crate::vocab::rfc3339(last),
                humantime::format_duration(step),
            )));
        }
    }
    let params = ReplayParams {
        forecast: config.forecast_params(),
        alert: config.alert_params(),
        step_ms: step.as_millis() as i64,
        lookback_ms: config.store.lookback.as_millis() as i64,
        forget_after_ms: config.store.forget_after.as_millis() as i64,
        refit_every_step: false,
    };
    let output = match args.format {
        BacktestFormat::Jsonl => backtest::Output::Jsonl,
        BacktestFormat::Table => backtest::Output::Table,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = backtest::run(
        &containers,
        &params,
        from,
        output,
        args.plot.is_some(),
        &mut out,
    )
    .and_then(|svg| std::io::Write::flush(&mut out).map(|()| svg));
    let svg = match written {
        // A reader that went away (`| head`) ends the replay quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("cannot write the replay")?,
    };
    if let (Some(path), Some(svg)) = (&args.plot, svg) {
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write --plot {}", path.display()))?;
    }
    Ok(())
}

/// The containers of a saved `/api/v1/query_range` answer (`backtest --series`).
fn saved_series(
    config: &Config,
    path: &std::path::Path,
    limit: Option<f64>,
) -> Result<Vec<backtest::Container>, AppError> {
    let step_ms = config.store.resolution.as_millis() as i64;
    let body =
        std::fs::read(path).with_context(|| format!("cannot read --series {}", path.display()))?;
    let (series, dropped) =
        crate::source::prometheus::parse_range_response(&body).with_context(|| {
            format!(
                "{} is not a saved /api/v1/query_range response",
                path.display()
            )
        })?;
    if dropped > 0 {
        tracing::info!(dropped, "dropped NaN/Inf samples");
    }
    let containers = backtest::containers(
        series,
        vec![],
        vec![],
        limit,
        &config.extra_identity_labels,
        step_ms,
    );
    Ok(containers)
}

/// The containers' history from `--from` (less the lookback, so the first
/// evaluation has what a daemon would hold) to `--to`, read from Prometheus with
/// their restarts and limits; and `--from`.
async fn history_from_prometheus(
    config: &Config,
    args: &BacktestArgs,
    limit: Option<f64>,
) -> Result<(Vec<backtest::Container>, TimestampMs), AppError> {
    let step_ms = config.store.resolution.as_millis() as i64;
    let from = parse_instant(args.from.as_deref().unwrap_or_default())
        .map_err(|e| AppError::Usage(e.replace("--at", "--from")))?;
    let to = parse_instant(args.to.as_deref().unwrap_or_default())
        .map_err(|e| AppError::Usage(e.replace("--at", "--to")))?;
    if to <= from {
        return Err(AppError::Usage("--to must be after --from".into()));
    }
    let mut config = config.clone();
    if let Some(selector) = &args.selector {
        config.queries.working_set =
            crate::source::promql::add_matchers(&config.queries.working_set, selector)
                .map_err(|e| AppError::Usage(format!("--selector: {e}")))?;
    }
    let source = prometheus_source(&config)?;
    let lookback = config.store.lookback.as_millis() as i64;
    let start = from - lookback;
    let window = crate::source::Window {
        start: start - start.rem_euclid(step_ms),
        end: to,
        step: config.store.resolution,
        limits: true,
        restarts_from: Some(start - start.rem_euclid(step_ms)),
    };
    use crate::source::Source as _;
    let batch = source
        .fetch(window)
        .await
        .with_context(|| format!("cannot read history from {}", config.prometheus.url))?;
    let series: Vec<_> = batch
        .working_sets
        .into_iter()
        .map(|w| {
            let mut labels: crate::vocab::Labels = w.key.extra.iter().cloned().collect();
            labels.insert("namespace".into(), w.key.namespace);
            labels.insert("pod".into(), w.key.pod);
            labels.insert("container".into(), w.key.container);
            if let Some(id) = w.container_id {
                labels.insert("id".into(), id);
            }
            crate::source::prometheus::RangeSeries {
                labels,
                samples: w.samples.into_iter().map(|s| (s.at, s.bytes)).collect(),
            }
        })
        .collect();
    let containers = backtest::containers(
        series,
        batch.restarts,
        batch.limits,
        limit,
        &config.extra_identity_labels,
        step_ms,
    );
    Ok((containers, from))
}

/// Parses `--at`: RFC 3339, or Unix seconds.
pub fn parse_instant(text: &str) -> Result<TimestampMs, String> {
    if let Some(t) = crate::vocab::Rfc3339::parse(text.trim()) {
        return Ok(t.0);
    }
    if let Ok(seconds) = text.trim().parse::<f64>() {
        if seconds.is_finite() {
            return Ok((seconds * 1000.0).round() as i64);
        }
    }
    Err(format!(
        "--at {text:?} is not a time; use RFC 3339 (2026-03-19T14:00:00Z) or Unix seconds"
    ))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
