//! When each sandbox collection last changed: its `date_last_modified` moves to the
//! generation in which its membership last changed (an offer in it was added or
//! removed by `Catalog::advance`), as Violet is assumed to move it, so a mirror can
//! tell a collection whose membership did not change from one it must read again.
//!
//! Nothing is stored: the dates are derived from the generation state each time the
//! collections are served (one pass over the offers `advance` added or removed, far
//! fewer than the catalog). Offers embed their collections with the creation date
//! (`generator::offer`): moving that too would change every member offer's JSON.

use std::collections::HashMap;

use serde_json::Value;

use super::generator::{self, MerchantProfile, collection_indices, format_date, put};
use super::hash::{mix, tag};

/// The generation in which each collection's membership last changed, from the
/// `(offer index, generation)` of every addition and removal.
pub fn membership_moved(
    profile: &MerchantProfile,
    changes: impl Iterator<Item = (u64, u32)>,
) -> HashMap<u32, u32> {
    let mut moved: HashMap<u32, u32> = HashMap::new();
    for (index, generation) in changes {
        for c in collection_indices(profile, index) {
            let last = moved.entry(c).or_insert(generation);
            *last = (*last).max(generation);
        }
    }
    moved
}

/// The collection's JSON, its `date_last_modified` moved to `moved` (the generation of
/// its last membership change), in the date style it already has.
pub fn collection(profile: &MerchantProfile, index: u32, moved: Option<u32>) -> Value {
    let mut out = generator::collection(profile, index);
    let Some(generation) = moved.filter(|g| *g > 0) else {
        return out;
    };
    let zulu = out["date_last_modified"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z'));
    let h = mix(&[profile.seed, profile.id, u64::from(index), tag("members")]);
    let date = format_date(generator::generation_time(generation, h), zulu);
    put(&mut out, "date_last_modified", Value::String(date));
    out
}
