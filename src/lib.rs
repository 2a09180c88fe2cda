//! headroom watches Kubernetes container memory through Prometheus, fits each
//! container's growth trend, and says which container is on course to hit its memory
//! limit, and when — before the OOM killer does.
//!
//! # Layout
//!
//! Data flows one way: source → store → model → outputs.
//!
//! - [`source`]: where samples come from. [`source::prometheus`] is the HTTP client for
//!   any Prometheus-compatible API; [`source::kubernetes`] reads cAdvisor and
//!   kube-state-metrics series through it into [`source::Batch`]es, and pod metadata
//!   for explanations. [`sim`] holds the demo's simulated cluster (a source too) and
//!   the labeled scenario suite.
//! - [`store`]: per-container history, segmented at every restart, bounded to the
//!   lookback window.
//! - [`model`]: pure, clock-free math from samples to a [`model::Forecast`], and the
//!   alert state machine.
//! - [`explain`]: pure explanations — sidecars, the change behind growth, OOM-kill
//!   attribution, workload peers.
//! - [`pipeline`]: the one loop body: source → store → model, per poll.
//! - [`daemon`]: the service around it — clock, snapshots, shutdown — feeding
//!   [`api`] (HTTP: metrics, JSON, status page), [`telemetry`] (headroom's own
//!   metrics) and [`notify`] (Alertmanager, Slack, webhooks).
//! - [`report`] and [`plot`]: the public JSON schema, the table, the SVG charts.
//! - [`backtest`]: replays history through the same model and alert machine.
//! - [`config`], [`cli`], [`units`], [`logging`]: input validation and plumbing.
//! - [`app`]: the wiring of commands; `main.rs` only calls it.

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
