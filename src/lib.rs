//! headroom watches Kubernetes container memory through Prometheus, fits each
//! container's growth trend, and says which container is on course to hit its memory
//! limit, and when — before the OOM killer does.
//!
//! # Layout
//!
//! Data flows one way: source → store → model → outputs. Each module names only
//! modules below it (`tests/layers.rs` holds this), from the bottom up:
//!
//! - [`units`] and [`vocab`]: the shared vocabulary — sizes and durations; the time
//!   unit, labels, the one time format, globs, secrets and the config checker.
//!   [`model`]: pure, clock-free math from samples to a [`model::Forecast`], and the
//!   alert state machine; it imports nothing of the crate.
//! - [`source`]: where samples come from. [`source::prometheus`] is the HTTP client;
//!   [`source::kubernetes`] reads cAdvisor and kube-state-metrics series into
//!   [`source::Batch`]es; [`source::metadata`] reads pod metadata for explanations;
//!   [`source::promql`] is the one home of PromQL text; [`source::config`] is what the
//!   source is configured with. [`sim`] is the demo's simulated cluster (a source
//!   too) and the labeled scenario suite.
//! - [`store`]: per-container history, segmented at every restart, bounded to the
//!   lookback window.
//! - [`report`]: the public JSON schema and the table, with the explanations a report
//!   carries and the one way a time to limit is written.
//! - [`explain`]: explanations added after each evaluation (workloads, sidecars,
//!   changes, pod pressure, Envoy) and OOM-kill attribution. [`plot`]: SVG charts.
//! - [`telemetry`]: headroom's own metrics. [`notify`]: the one alert lifecycle, the
//!   dispatcher, delivery, and one file per receiver, each owning its configuration.
//! - [`config`]: the file, validated into every module's own settings at once.
//! - [`pipeline`]: the one loop — fetch → store → evaluate. [`api`]: HTTP (metrics,
//!   JSON, status page) over the latest [`api::Snapshot`]. [`backtest`]: replays
//!   history through the same model and lifecycle.
//! - [`daemon`]: the service — clock, poll loop, explanations, alerts, snapshots,
//!   one shutdown path.
//! - [`cli`], [`logging`] and [`app`]: flags, logs, and the wiring of commands;
//!   `main.rs` calls [`app`], and sets up the allocator.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod backtest;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod explain;
pub mod logging;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod plot;
pub mod report;
pub mod sim;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod units;
pub mod vocab;
