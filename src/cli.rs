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
    #[arg(long, global = true, value_name = "FILE", env = "HEADROOM_CONFIG")]
    pub config: Option<PathBuf>,

    /// Prometheus-compatible API base URL (Prometheus, Thanos, Mimir, VictoriaMetrics).
    /// Overrides prometheus.url from the config file.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "HEADROOM_PROMETHEUS_URL"
    )]
    pub prometheus_url: Option<String>,

    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or tracing filter, e.g. `info` or `headroom=debug,info`.
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "info",
        env = "HEADROOM_LOG"
    )]
    pub log_level: String,
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

    /// Read Prometheus once and print every container's forecast, most urgent first.
    Check(CheckArgs),

    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Evaluate as of this instant instead of now (RFC 3339, e.g. 2026-03-19T14:00:00Z,
    /// or Unix seconds): for post-mortems and replays of backfilled history.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Output format: an aligned table for people, or a JSON array for programs
    /// (schema in the README).
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
