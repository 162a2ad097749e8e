//! The upstream: Violet's API client, its models, and webhook signatures.

mod api;
mod auth;
pub mod client;
pub mod dates;
pub mod error;
mod limits;
pub mod models;
pub mod signature;
mod transport;

pub use client::VioletClient;
pub use error::VioletError;
pub use models::{
    Album, Collection, CollectionMedia, CollectionStatus, CollectionType, FromJson, Media,
    Merchant, Offer, OfferStatus, Page, PublishingStatus, Sku, Variant, VariantValue,
};
