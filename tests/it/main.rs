//! The integration tests, in one test binary (one link instead of one per file): each
//! module is the tests of one part of the daemon against a real PostgreSQL, the
//! sandbox and the daemon's own HTTP surfaces; the helper modules below are shared.
//! `cargo test --test it <module>::` runs one part, e.g. `cargo test --test it search_api::`.
//! One test lives in a binary of its own, `tests/ops_metrics.rs` (see there why).

// Helpers shared by the test modules.
mod admin_support;
mod common;
mod mirror_common;
mod search_support;

mod admin_api;
mod admin_cli;
mod admin_page;
mod cli;
mod demo;
mod intake;
mod jobs;
mod lifecycles;
mod migrations;
mod mirror_collections;
mod mirror_delta;
mod mirror_incremental;
mod mirror_lifecycle;
mod mirror_refresh;
mod notifications;
mod ops_process;
mod sandbox_catalog;
mod sandbox_cli;
mod sandbox_http;
mod sandbox_knobs;
mod sandbox_scale;
mod sandbox_webhooks;
mod search_api;
mod search_bounds;
mod search_clients;
mod search_errors;
mod search_hostile;
mod search_index;
mod search_onboarding;
mod search_ranking;
mod search_sort;
mod search_syntax;
mod soak;
mod sync_state;
mod systemd;
mod violet_client;
mod violet_faults;
mod violet_metrics;
