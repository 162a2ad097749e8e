//! The upstream: Violet's API client, its models, and webhook signatures.

pub mod signature;
