//! catalog-mirror: a daemon that keeps a fast, searchable local mirror of Violet
//! merchants' catalogs. See DESIGN.md for the architecture; `main.rs` is only the CLI.

pub mod config;
pub mod sandbox;
pub mod violet;
