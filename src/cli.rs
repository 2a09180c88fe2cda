//! Command-line definitions (clap) and nothing else: parsing, help texts, defaults.
//! Turning these into a validated [`crate::config::Config`] happens in `app`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// headroom forecasts which Kubernetes container will hit its memory limit, and when,
/// from the working-set series already in Prometheus.
#[derive(Debug, Parser)]
#[command(name = "headroom", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// YAML config file (see config/headroom.example.yaml); built-in defaults without it.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE",
        env = "HEADROOM_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Prometheus-compatible API base URL (Prometheus, Thanos, Mimir, VictoriaMetrics).
    /// Overrides prometheus.url from the config file.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "URL",
        env = "HEADROOM_PROMETHEUS_URL"
    )]
    pub prometheus_url: Option<String>,

    /// Log line format.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or tracing filter, e.g. `info` or `headroom=debug,info`.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "LEVEL",
        default_value = "info",
        env = "HEADROOM_LOG"
    )]
    pub log_level: String,

    /// This replica's shard, 0-based (with --shard-count): it watches and alerts only
    /// for the containers that hash to it. Either a number or a StatefulSet pod name,
    /// whose ordinal suffix is taken ("headroom-2" is shard 2), so a chart can pass
    /// the pod's own name.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "I",
        env = "HEADROOM_SHARD_INDEX",
        requires = "shard_count",
        value_parser = parse_shard_index
    )]
    pub shard_index: Option<u32>,

    /// How many replicas share the containers (with --shard-index).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "N",
        env = "HEADROOM_SHARD_COUNT",
        requires = "shard_index"
    )]
    pub shard_count: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: backfill every container's history, then poll Prometheus and
    /// re-forecast every poll interval until SIGTERM or Ctrl-C.
    Run,

    /// Run the whole pipeline on an embedded simulated cluster, no Prometheus needed:
    /// the seed incident (an istio-proxy sidecar leaking toward its 128Mi limit after a
    /// rollout) among healthy pods, in accelerated time, with the API and status page.
    Demo(DemoArgs),

    /// Read Prometheus once and print every container's forecast, most urgent first.
    Check(CheckArgs),

    /// Replay history through the daemon's model and alert state machine: a saved
    /// `/api/v1/query_range` response (--series), or Prometheus itself (--from/--to).
    Backtest(BacktestArgs),

    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// A saved `/api/v1/query_range` response, exactly as curl prints it (one or many
    /// series). Series without namespace/pod/container labels are named by position.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub series: Option<PathBuf>,

    /// Replay Prometheus history from this instant (RFC 3339 or Unix seconds); the
    /// lookback before it is read too, as a running daemon would hold it.
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,

    /// Replay Prometheus history up to this instant.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,

    /// Extra label matchers added to the working-set query, e.g.
    /// 'namespace="prod",container="istio-proxy"'.
    #[arg(long, value_name = "MATCHERS", requires = "from")]
    pub selector: Option<String>,

    /// The memory limit (128Mi, 1Gi, bytes). Required with --series; with --from it
    /// overrides the limits read from Prometheus.
    #[arg(long, value_name = "BYTES", required_unless_present = "from")]
    pub limit: Option<String>,

    /// Time between evaluations (default: the poll interval, 30s).
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,

    /// jsonl: one JSON object per evaluation per series; table: the alert transitions.
    #[arg(long, value_enum, default_value_t = BacktestFormat::Jsonl)]
    pub format: BacktestFormat,

    /// Also draw each series with its limit, forecast bands and alert periods as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    Jsonl,
    Table,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated seconds per wall-clock second (60: an hour of cluster time a minute).
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,

    /// Where to serve /metrics, the API and the status page.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub listen: std::net::SocketAddr,

    /// Keep running after the sidecar's first OOM kill instead of stopping.
    #[arg(long)]
    pub forever: bool,

    /// Also send the demo's alerts to this Slack incoming webhook.
    #[arg(long, value_name = "URL")]
    pub slack_url: Option<String>,

    /// Also send the demo's alerts to this generic webhook (headroom's JSON payload).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Evaluate as of this instant instead of now (RFC 3339, e.g. 2026-03-19T14:00:00Z,
    /// or Unix seconds): for post-mortems and replays of backfilled history.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Output format: an aligned table for people, or a JSON array for programs
    /// (schema in docs/json.md).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and print every problem at once (exit 2 if any).
    Check {
        /// The config file to validate.
        file: PathBuf,
    },
}

/// A shard index: `2`, or a StatefulSet pod name ending in its ordinal (`headroom-2`).
fn parse_shard_index(value: &str) -> Result<u32, String> {
    let digits = value.rsplit('-').next().unwrap_or(value);
    digits.parse().map_err(|_| {
        format!(
            "{value:?} is neither a shard number nor a StatefulSet pod name ending in -<ordinal>"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::parse_shard_index;

    #[test]
    fn a_shard_index_is_a_number_or_a_statefulset_pod_name() {
        assert_eq!(parse_shard_index("3"), Ok(3));
        assert_eq!(parse_shard_index("headroom-2"), Ok(2));
        assert_eq!(parse_shard_index("my-release-headroom-11"), Ok(11));
        let err = parse_shard_index("headroom-abc").unwrap_err();
        assert!(err.contains("headroom-abc"), "{err}");
        assert!(parse_shard_index("").is_err());
    }
}
