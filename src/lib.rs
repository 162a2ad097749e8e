//! catalog-mirror: a daemon that keeps a fast, searchable local mirror of Violet
//! merchants' catalogs. See DESIGN.md for the architecture; `main.rs` is only the CLI.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod gauges;
pub mod http;
pub mod intake;
pub mod jobs;
#[cfg(test)]
mod layering;
pub mod lifecycle;
pub mod mirror;
pub mod notify;
pub mod runner;
pub mod sandbox;
pub mod search;
pub mod systemd;
pub mod telemetry;
pub mod violet;
pub mod web;
pub mod work;

/// mimalloc for the daemon and everything built on this library (tests, benchmarks):
/// decoding and encoding catalog JSON allocates a small object per field, and glibc's
/// malloc spent more CPU on that than the decoding itself (see BENCHMARKS.md, Refresh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
