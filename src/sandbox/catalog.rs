//! The sandbox catalog: which offers each merchant has in each generation, and the
//! JSON the API serves for them.
//!
//! Offers are never materialised. A merchant's state is a small [`Generation`]: how
//! many indexes were ever allocated, which were removed (and when), which were
//! updated (and when), and the ranges added by each `advance`. Rendering goes through
//! [`super::generator`], a pure function of the seed and that state, so the JSON the
//! HTTP API serves and what tests read from here are the same bytes. `advance` swaps
//! in a new `Arc<Generation>` (copy on write), so readers never block writers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde_json::Value;

use super::MerchantSpec;
use super::collection_dates;
use super::generator::{
    self, MerchantProfile, OFFER_ID_STRIDE, OfferCtx, collection_id, offer_id, split_collection_id,
    split_offer_id,
};
use super::hash::{Rng, mix, tag};

/// Offers added, updated and removed by one [`Catalog::advance`], ids ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    pub merchant_id: u64,
    pub generation: u32,
    pub added: Vec<u64>,
    pub updated: Vec<u64>,
    pub removed: Vec<u64>,
}

/// Inclusive bounds on `date_last_modified`, unix seconds (`None`: unbounded).
pub type DateRange = (Option<i64>, Option<i64>);

/// One merchant's catalog at one generation. Cheap to clone behind an `Arc`.
#[derive(Debug, Clone, Default)]
struct Generation {
    number: u32,
    /// Indexes `0..next_index` were allocated at some point.
    next_index: u64,
    /// Removed index -> generation it was removed in.
    removed: BTreeMap<u64, u32>,
    /// Updated index -> generation of its last update.
    modified: HashMap<u64, u32>,
    /// Index -> generation whose date its `date_last_modified` still shows: its last
    /// update did not move the date (the "undated change" fault of [`ChangeMix`]).
    undated: HashMap<u64, u32>,
    /// `(first index, generation)` of each batch added by `advance`, ascending.
    added: Vec<(u64, u32)>,
}

impl Generation {
    fn count(&self) -> u64 {
        self.next_index - self.removed.len() as u64
    }

    fn created_gen(&self, index: u64) -> u32 {
        let at = self.added.partition_point(|&(first, _)| first <= index);
        if at == 0 { 0 } else { self.added[at - 1].1 }
    }

    /// Index of the `rank`-th (0-based) present offer, if there are that many.
    fn select(&self, rank: u64) -> Option<u64> {
        if rank >= self.count() {
            return None;
        }
        let mut index = rank;
        for &r in self.removed.keys() {
            if r <= index {
                index += 1;
            } else {
                break;
            }
        }
        Some(index)
    }

    /// `(index, generation)` of every offer `advance` added or removed: what can change
    /// a collection's membership (`collection_dates`).
    fn membership_changes(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let added = self.added.iter().enumerate().flat_map(|(at, &(first, g))| {
            let end = self
                .added
                .get(at + 1)
                .map_or(self.next_index, |next| next.0);
            (first..end).map(move |i| (i, g))
        });
        let removed = self.removed.iter().map(|(&i, &g)| (i, g));
        added.chain(removed)
    }

    /// Present indexes in order, starting at the `rank`-th.
    fn present_from(self: &Arc<Self>, rank: u64) -> impl Iterator<Item = u64> + use<> {
        let state = Arc::clone(self);
        let start = self.select(rank).unwrap_or(self.next_index);
        (start..self.next_index).filter(move |i| !state.removed.contains_key(i))
    }
}

struct Merchant {
    profile: MerchantProfile,
    state: RwLock<Arc<Generation>>,
}

/// Seeded, lazily generated catalogs of every sandbox merchant.
pub struct Catalog {
    seed: u64,
    merchants: BTreeMap<u64, Merchant>,
    /// The last event time handed to a scenario (unix seconds): scenarios built one
    /// after another get strictly later times, as Violet's real events would.
    event_clock: std::sync::atomic::AtomicI64,
    /// What `advance` changes.
    change_mix: RwLock<ChangeMix>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("seed", &self.seed)
            .field("merchants", &self.merchant_ids())
            .finish()
    }
}

impl Catalog {
    /// Checks the specs: ids unique and within the id scheme, sizes within bounds.
    pub fn new(seed: u64, merchants: &[MerchantSpec]) -> anyhow::Result<Catalog> {
        let mut map = BTreeMap::new();
        for spec in merchants {
            anyhow::ensure!(
                (1..generator::MAX_MERCHANT_ID).contains(&spec.id),
                "merchant id {} must be between 1 and {}",
                spec.id,
                generator::MAX_MERCHANT_ID - 1
            );
            anyhow::ensure!(
                spec.offers <= MAX_OFFERS,
                "merchant {}: at most {MAX_OFFERS} offers (got {})",
                spec.id,
                spec.offers
            );
            anyhow::ensure!(
                u64::from(spec.collections) < generator::COLLECTION_ID_STRIDE,
                "merchant {}: at most {} collections",
                spec.id,
                generator::COLLECTION_ID_STRIDE - 1
            );
            let state = Generation {
                next_index: spec.offers,
                ..Generation::default()
            };
            let merchant = Merchant {
                profile: MerchantProfile::new(seed, spec.id, &spec.name, spec.collections),
                state: RwLock::new(Arc::new(state)),
            };
            anyhow::ensure!(
                map.insert(spec.id, merchant).is_none(),
                "merchant id {} appears twice",
                spec.id
            );
        }
        Ok(Catalog {
            seed,
            merchants: map,
            event_clock: std::sync::atomic::AtomicI64::new(i64::MIN),
            change_mix: RwLock::new(ChangeMix::default()),
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next event time: `not_before`, or one second after the last time handed
    /// out when that is later. Deterministic for the same sequence of calls.
    pub fn next_event_time(&self, not_before: i64) -> i64 {
        let previous = self
            .event_clock
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |last| Some(not_before.max(last.saturating_add(1))),
            )
            .expect("the update closure always returns Some");
        not_before.max(previous.saturating_add(1))
    }

    pub fn merchant_ids(&self) -> Vec<u64> {
        self.merchants.keys().copied().collect()
    }

    pub fn has_merchant(&self, merchant_id: u64) -> bool {
        self.merchants.contains_key(&merchant_id)
    }

    fn snapshot(&self, merchant_id: u64) -> Option<(&MerchantProfile, Arc<Generation>)> {
        let m = self.merchants.get(&merchant_id)?;
        let state = Arc::clone(&m.state.read().unwrap_or_else(|e| e.into_inner()));
        Some((&m.profile, state))
    }

    /// The merchant's current generation: 0 at start (and for an unknown merchant),
    /// plus one per [`Catalog::advance`].
    pub fn generation(&self, merchant_id: u64) -> u32 {
        self.snapshot(merchant_id).map_or(0, |(_, s)| s.number)
    }

    /// Offers the merchant has now (0 for an unknown merchant).
    pub fn offer_count(&self, merchant_id: u64) -> u64 {
        self.snapshot(merchant_id).map_or(0, |(_, s)| s.count())
    }

    /// Ids of the merchant's current offers, ascending: the order the listing serves.
    pub fn offer_ids(&self, merchant_id: u64) -> impl Iterator<Item = u64> + use<> {
        let snap = self.snapshot(merchant_id).map(|(p, s)| (p.id, s));
        snap.into_iter()
            .flat_map(|(id, s)| s.present_from(0).map(move |i| offer_id(id, i)))
    }

    /// The offer as the API serves it with `include=collections` (the listing the
    /// mirror uses, and the body of offer webhooks); `None` when it does not exist now.
    pub fn offer_json(&self, offer_id: u64) -> Option<Value> {
        self.offer_json_with(offer_id, true)
    }

    /// The offer as served without `include=collections` (no `collections` key):
    /// `GET /catalog/offers/{id}` and the listing without `include`.
    pub fn offer_json_bare(&self, offer_id: u64) -> Option<Value> {
        self.offer_json_with(offer_id, false)
    }

    pub fn offer_json_with(&self, offer_id: u64, include_collections: bool) -> Option<Value> {
        let (m, index) = split_offer_id(offer_id)?;
        let (profile, state) = self.snapshot(m)?;
        if index >= state.next_index || state.removed.contains_key(&index) {
            return None;
        }
        Some(generator::offer(
            &ctx(profile, &state, index),
            include_collections,
        ))
    }

    /// The last version of an offer that was removed, as sent in `OFFER_REMOVED`:
    /// status `UNAVAILABLE`, dated at its removal. `None` unless it is removed now.
    pub fn removed_offer_json(&self, offer_id: u64) -> Option<Value> {
        let (m, index) = split_offer_id(offer_id)?;
        let (profile, state) = self.snapshot(m)?;
        let removed = *state.removed.get(&index)?;
        let ctx = OfferCtx {
            removed_gen: Some(removed),
            ..ctx(profile, &state, index)
        };
        Some(generator::offer(&ctx, true))
    }

    /// One page of the merchant's offers (1-based page), plus whether it is the last.
    /// `filter` keeps offers whose `date_last_modified` (unix seconds) is inside it.
    pub fn offer_page(
        &self,
        merchant_id: u64,
        page: u64,
        size: u64,
        include_collections: bool,
        filter: Option<DateRange>,
    ) -> (Vec<Value>, bool) {
        let Some((profile, state)) = self.snapshot(merchant_id) else {
            return (Vec::new(), true);
        };
        let skip = page.saturating_sub(1).saturating_mul(size);
        let render = |i: u64| generator::offer(&ctx(profile, &state, i), include_collections);
        match filter {
            None => {
                let items: Vec<Value> = state
                    .present_from(skip)
                    .take(size as usize)
                    .map(render)
                    .collect();
                let last = skip.saturating_add(size) >= state.count();
                (items, last)
            }
            Some((min, max)) => {
                let keep = |i: &u64| {
                    let t = ctx(profile, &state, *i).date_last_modified_secs();
                    min.is_none_or(|m| t >= m) && max.is_none_or(|m| t <= m)
                };
                let mut matching = state.present_from(0).filter(keep).skip(skip as usize);
                let items: Vec<Value> = matching.by_ref().take(size as usize).map(render).collect();
                let last = matching.next().is_none();
                (items, last)
            }
        }
    }

    /// The merchant's collections, ascending by id, each dated at its last membership
    /// change (`collection_dates`).
    pub fn collections(&self, merchant_id: u64) -> Vec<Value> {
        self.snapshot(merchant_id)
            .map(|(p, state)| {
                let moved = collection_dates::membership_moved(p, state.membership_changes());
                (0..p.collections)
                    .map(|c| collection_dates::collection(p, c, moved.get(&c).copied()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn collection_count(&self, merchant_id: u64) -> u32 {
        self.snapshot(merchant_id).map_or(0, |(p, _)| p.collections)
    }

    pub fn collection_json(&self, collection_id: u64) -> Option<Value> {
        let (m, c) = split_collection_id(collection_id)?;
        let (profile, state) = self.snapshot(m)?;
        if c >= profile.collections {
            return None;
        }
        let moved = collection_dates::membership_moved(profile, state.membership_changes());
        Some(collection_dates::collection(
            profile,
            c,
            moved.get(&c).copied(),
        ))
    }

    /// Ids of the offers in a collection now, ascending (a scan of the merchant).
    pub fn collection_offer_ids(&self, collection_id: u64) -> Vec<u64> {
        let Some((m, c)) = split_collection_id(collection_id) else {
            return Vec::new();
        };
        let Some((profile, state)) = self.snapshot(m) else {
            return Vec::new();
        };
        if c >= profile.collections {
            return Vec::new();
        }
        state
            .present_from(0)
            .filter(|&i| generator::collection_indices(profile, i).contains(&c))
            .map(|i| offer_id(m, i))
            .collect()
    }

    /// The merchant object (status `CONNECTED`).
    pub fn merchant_json(&self, merchant_id: u64) -> Option<Value> {
        self.merchant_json_with_status(merchant_id, "CONNECTED")
    }

    pub fn merchant_json_with_status(&self, merchant_id: u64, status: &str) -> Option<Value> {
        self.merchants
            .get(&merchant_id)
            .map(|m| m.profile.json(status))
    }

    /// Moves the merchant to its next generation with the catalog's [`ChangeMix`] (by
    /// default about 2 % of its offers updated, 1 % removed and 1 % added).
    pub fn advance(&self, merchant_id: u64) -> ChangeSet {
        self.advance_with(merchant_id, &self.change_mix())
    }

    /// What [`advance`](Self::advance) changes from now on.
    pub fn change_mix(&self) -> ChangeMix {
        *self.change_mix.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_change_mix(&self, mix: ChangeMix) -> Result<(), String> {
        mix.check()?;
        *self.change_mix.write().unwrap_or_else(|e| e.into_inner()) = mix;
        Ok(())
    }

    /// Moves the merchant to its next generation: `mix` says which share of its offers
    /// is updated (new price and name, and a newer `date_last_modified` unless the
    /// update is one of the `undated` share), removed and added (each at least one
    /// when its share is above zero). Deterministic from the seed, the generation number
    /// and the mix. Unknown merchant: an empty change set.
    pub fn advance_with(&self, merchant_id: u64, mix_of: &ChangeMix) -> ChangeSet {
        let Some(m) = self.merchants.get(&merchant_id) else {
            return ChangeSet {
                merchant_id,
                ..ChangeSet::default()
            };
        };
        let mut guard = m.state.write().unwrap_or_else(|e| e.into_inner());
        let old = Arc::clone(&guard);
        let g = old.number + 1;
        let n = old.count();
        let mut rng = Rng::new(mix(&[self.seed, merchant_id, tag("advance"), u64::from(g)]));
        let n_remove = share(n, mix_of.removed).min(n);
        let n_update = share(n, mix_of.updated).min(n - n_remove);
        let n_add = share(n, mix_of.added).min(MAX_OFFERS.saturating_sub(old.next_index));
        let n_undated = (n_update as f64 * mix_of.undated).round() as usize;

        // Floyd's sampling of distinct ranks among the present offers.
        let k = n_remove + n_update;
        let mut seen = HashSet::with_capacity(k as usize);
        let mut ranks = Vec::with_capacity(k as usize);
        for j in (n - k)..n {
            let t = rng.below(j + 1);
            let r = if seen.insert(t) { t } else { j };
            seen.insert(r);
            ranks.push(r);
        }
        let (remove_ranks, update_ranks) = ranks.split_at(n_remove as usize);
        let mut removed: Vec<u64> = remove_ranks.iter().filter_map(|&r| old.select(r)).collect();
        let mut updated: Vec<u64> = update_ranks.iter().filter_map(|&r| old.select(r)).collect();
        // Ranks come in random order: the first ones are as good a sample as any.
        let undated: Vec<u64> = updated.iter().take(n_undated).copied().collect();
        removed.sort_unstable();
        updated.sort_unstable();

        let mut next = Generation::clone(&old);
        next.number = g;
        for &i in &removed {
            next.removed.insert(i, g);
        }
        for &i in &updated {
            next.undated.remove(&i);
        }
        for &i in &undated {
            // The date it showed before this update: its last dated update's, or none.
            let shown = ctx(&m.profile, &old, i);
            next.undated
                .insert(i, shown.dated_gen.unwrap_or(shown.rev_gen));
        }
        for &i in &updated {
            next.modified.insert(i, g);
        }
        let first_added = next.next_index;
        if n_add > 0 {
            next.added.push((first_added, g));
            next.next_index += n_add;
        }
        *guard = Arc::new(next);
        ChangeSet {
            merchant_id,
            generation: g,
            added: (first_added..first_added + n_add)
                .map(|i| offer_id(merchant_id, i))
                .collect(),
            updated: updated
                .into_iter()
                .map(|i| offer_id(merchant_id, i))
                .collect(),
            removed: removed
                .into_iter()
                .map(|i| offer_id(merchant_id, i))
                .collect(),
        }
    }

    /// Collection ids of the merchant, ascending.
    pub fn collection_ids(&self, merchant_id: u64) -> Vec<u64> {
        (0..self.collection_count(merchant_id))
            .map(|c| collection_id(merchant_id, c))
            .collect()
    }
}

/// What one [`Catalog::advance`] changes: shares (0 to 1) of the merchant's offers
/// updated, removed and added, and the share of the updates whose `date_last_modified`
/// does not move (a fault: Violet is assumed to move it on every change, and a delta
/// refresh misses such an update until a full pass reads it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangeMix {
    pub updated: f64,
    pub removed: f64,
    pub added: f64,
    pub undated: f64,
}

impl Default for ChangeMix {
    fn default() -> Self {
        Self {
            updated: 0.02,
            removed: 0.01,
            added: 0.01,
            undated: 0.0,
        }
    }
}

impl ChangeMix {
    pub fn check(&self) -> Result<(), String> {
        for (name, share) in [
            ("updated", self.updated),
            ("removed", self.removed),
            ("added", self.added),
            ("undated", self.undated),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!(
                    "{name} must be a share between 0 and 1, got {share}"
                ));
            }
        }
        if self.updated + self.removed > 1.0 {
            return Err("updated and removed together must be at most 1".into());
        }
        Ok(())
    }
}

/// `fraction` of `n`, at least one when the fraction is above zero (rounded down; the
/// epsilon keeps 0.01 of 300 at 3 despite binary fractions).
fn share(n: u64, fraction: f64) -> u64 {
    if fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction + 1e-9).floor() as u64).max(1)
}

/// Most offers one merchant can have (including those added by `advance`).
pub const MAX_OFFERS: u64 = OFFER_ID_STRIDE - 1;

fn ctx<'a>(profile: &'a MerchantProfile, state: &Generation, index: u64) -> OfferCtx<'a> {
    let created_gen = state.created_gen(index);
    let rev_gen = state.modified.get(&index).copied().unwrap_or(created_gen);
    OfferCtx {
        merchant: profile,
        index,
        created_gen,
        rev_gen,
        removed_gen: None,
        dated_gen: state.undated.get(&index).copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u64, offers: u64) -> MerchantSpec {
        MerchantSpec {
            id,
            name: format!("M{id}"),
            offers,
            collections: 4,
        }
    }

    #[test]
    fn select_skips_removed() {
        let mut g = Generation {
            next_index: 10,
            ..Generation::default()
        };
        for i in [0, 3, 4, 9] {
            g.removed.insert(i, 1);
        }
        let g = Arc::new(g);
        let present: Vec<u64> = g.present_from(0).collect();
        assert_eq!(present, vec![1, 2, 5, 6, 7, 8]);
        for (rank, &i) in present.iter().enumerate() {
            assert_eq!(g.select(rank as u64), Some(i));
            assert_eq!(g.present_from(rank as u64).next(), Some(i));
        }
        assert_eq!(g.select(6), None);
    }

    #[test]
    fn advance_on_tiny_catalogs_terminates() {
        let cat = Catalog::new(1, &[spec(1, 0), spec(2, 1), spec(3, 2)]).unwrap();
        for m in 1..=3 {
            for _ in 0..5 {
                cat.advance(m);
            }
            assert_eq!(cat.offer_ids(m).count() as u64, cat.offer_count(m));
        }
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(Catalog::new(1, &[spec(1, 1), spec(1, 2)]).is_err());
        assert!(Catalog::new(1, &[spec(0, 1)]).is_err());
        assert!(Catalog::new(1, &[spec(1, OFFER_ID_STRIDE)]).is_err());
    }
}
