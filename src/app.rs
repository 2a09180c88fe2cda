//! The wiring: turns parsed command-line arguments into a validated config, builds the
//! pipeline, and runs the chosen command. The only module besides `pipeline` that knows
//! every other one.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::backtest::{self, ReplayParams};
use crate::cli::{
    BacktestArgs, BacktestFormat, CheckArgs, Cli, Command, ConfigCommand, OutputFormat,
};
use crate::config::{Config, ConfigError, Overrides};
use crate::pipeline::Pipeline;
use crate::report::render_table;
use crate::source::kubernetes::PrometheusSource;
use crate::source::prometheus::PrometheusClient;
use crate::source::TimestampMs;

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

/// Runs the command `cli` names. `shutdown` ends long-running commands gracefully.
pub async fn run(cli: Cli, shutdown: impl Future<Output = ()> + Send) -> Result<(), AppError> {
    let overrides = Overrides {
        prometheus_url: cli.global.prometheus_url.clone(),
    };
    match cli.command {
        Command::Config(ConfigCommand::Check { file }) => {
            let config = Config::load(Some(&file), &overrides)?;
            println!(
                "{}: ok (Prometheus {}, lookback {}, poll every {})",
                file.display(),
                config.prometheus.url,
                humantime::format_duration(config.store.lookback),
                humantime::format_duration(config.poll_interval),
            );
            Ok(())
        }
        Command::Check(args) => {
            let config = Config::load(cli.global.config.as_deref(), &overrides)?;
            check(&config, &args).await
        }
        Command::Backtest(args) => {
            let config = Config::load(cli.global.config.as_deref(), &overrides)?;
            run_backtest(&config, &args).await
        }
        Command::Run => {
            let config = Config::load(cli.global.config.as_deref(), &overrides)?;
            daemon(&config, shutdown).await
        }
    }
}

fn prometheus_source(config: &Config) -> Result<PrometheusSource, AppError> {
    let client =
        PrometheusClient::new(&config.prometheus).context("cannot set up the Prometheus client")?;
    Ok(PrometheusSource::new(
        client,
        config.queries.clone(),
        config.extra_identity_labels.clone(),
    ))
}

async fn check(config: &Config, args: &CheckArgs) -> Result<(), AppError> {
    let at = match &args.at {
        Some(text) => parse_instant(text).map_err(AppError::Usage)?,
        None => Utc::now().timestamp_millis(),
    };
    let mut pipeline = Pipeline::new(prometheus_source(config)?, config);
    pipeline.poll(at).await.with_context(|| {
        format!(
            "cannot read container memory from {}",
            config.prometheus.url
        )
    })?;
    let reports = pipeline.reports(at);
    match args.format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&reports).context("cannot encode JSON")?;
            println!("{json}");
        }
        OutputFormat::Table => {
            if reports.is_empty() {
                println!(
                    "no containers found (query: {})",
                    config.queries.working_set
                );
            } else {
                print!("{}", render_table(&reports));
            }
        }
    }
    Ok(())
}

async fn daemon(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let mut pipeline = Pipeline::new(prometheus_source(config)?, config);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        prometheus = %config.prometheus.url,
        lookback = %humantime::format_duration(config.store.lookback),
        poll_interval = %humantime::format_duration(config.poll_interval),
        "headroom starting"
    );
    let mut ticker = tokio::time::interval(config.poll_interval);
    // A slow poll delays the next one instead of overlapping it or bunching up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
            _ = ticker.tick() => {}
        }
        let now = Utc::now().timestamp_millis();
        let started = std::time::Instant::now();
        match pipeline.poll(now).await {
            Ok(summary) => {
                let reports = pipeline.reports(now);
                let at_risk = reports
                    .iter()
                    .filter(|r| r.severity != crate::model::Severity::None)
                    .count();
                tracing::info!(
                    containers = summary.containers,
                    samples_added = summary.ingest.samples_added,
                    at_risk,
                    took_ms = started.elapsed().as_millis() as u64,
                    "poll done"
                );
            }
            Err(e) => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::from(e)), "poll failed; keeping the last forecasts");
            }
        }
    }
}

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
    if step.is_zero() {
        return Err(AppError::Usage("--step must be longer than zero".into()));
    }
    let step_ms = config.store.resolution.as_millis() as i64;
    let (containers, from) = if let Some(path) = &args.series {
        let body = std::fs::read(path)
            .with_context(|| format!("cannot read --series {}", path.display()))?;
        let (series, dropped) = crate::source::prometheus::parse_range_response(&body)
            .with_context(|| {
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
        (containers, i64::MIN)
    } else {
        let from = parse_instant(args.from.as_deref().unwrap_or_default())
            .map_err(|e| AppError::Usage(e.replace("--at", "--from")))?;
        let to = parse_instant(args.to.as_deref().unwrap_or_default())
            .map_err(|e| AppError::Usage(e.replace("--at", "--to")))?;
        if to <= from {
            return Err(AppError::Usage("--to must be after --from".into()));
        }
        let mut config = config.clone();
        if let Some(selector) = &args.selector {
            config.queries.working_set = add_matchers(&config.queries.working_set, selector);
        }
        let source = prometheus_source(&config)?;
        let lookback = config.store.lookback.as_millis() as i64;
        let start = from - lookback;
        let window = crate::source::Window {
            start: start - start.rem_euclid(step_ms),
            end: to,
            step: config.store.resolution,
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
                let mut labels: crate::source::Labels = w.key.extra.iter().cloned().collect();
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
        (containers, from)
    };
    if containers.is_empty() {
        return Err(AppError::Runtime(anyhow::anyhow!("no series to replay")));
    }
    let params = ReplayParams {
        forecast: crate::pipeline::forecast_params(config),
        alert: crate::model::AlertParams::default(),
        step_ms: step.as_millis() as i64,
        lookback_ms: config.store.lookback.as_millis() as i64,
    };
    let output = match args.format {
        BacktestFormat::Jsonl => backtest::Output::Jsonl,
        BacktestFormat::Table => backtest::Output::Table,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let svg = backtest::run(
        &containers,
        &params,
        from,
        output,
        args.plot.is_some(),
        &mut out,
    )
    .context("cannot write the replay")?;
    std::io::Write::flush(&mut out).context("cannot write the replay")?;
    if let (Some(path), Some(svg)) = (&args.plot, svg) {
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write --plot {}", path.display()))?;
    }
    Ok(())
}

/// Adds label matchers to a query's first selector: `m{a="b"}` + `c="d"` →
/// `m{a="b",c="d"}`; `m` → `m{c="d"}`.
fn add_matchers(query: &str, matchers: &str) -> String {
    match query.find('}') {
        Some(close) if query[..close].contains('{') => {
            let open = query[..close].rfind('{').unwrap_or(close);
            let inner = query[open + 1..close].trim();
            let sep = if inner.is_empty() { "" } else { "," };
            format!("{}{sep}{matchers}{}", &query[..close], &query[close..])
        }
        _ => format!("{query}{{{matchers}}}"),
    }
}

/// Parses `--at`: RFC 3339, or Unix seconds.
pub fn parse_instant(text: &str) -> Result<TimestampMs, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.timestamp_millis());
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

/// How long graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::add_matchers;

    #[test]
    fn matchers_join_the_first_selector() {
        assert_eq!(
            add_matchers(
                r#"m{container!="",container!="POD"}"#,
                r#"namespace="prod""#
            ),
            r#"m{container!="",container!="POD",namespace="prod"}"#
        );
        assert_eq!(add_matchers("m", r#"a="b""#), r#"m{a="b"}"#);
        assert_eq!(add_matchers("m{}", r#"a="b""#), r#"m{a="b"}"#);
    }
}
