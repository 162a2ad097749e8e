//! Pure functions that render one offer, SKU, collection or merchant as Violet JSON.
//!
//! Nothing here is stored: offer `index` of merchant `m` is computed from
//! `hash(seed, m, index, field)` each time it is asked for, so a catalog of a million
//! offers costs no memory. Fields that change when an offer is updated (name adjective,
//! prices, stock, status) also hash the generation of the offer's last update
//! (`rev_gen`); everything else depends on the index alone. The deliberate variations
//! Violet shows in the wild (two stock field names, two date styles, an unknown extra
//! field, an unknown status) are hashed too, so they are stable per offer.

use chrono::{DateTime, Datelike, Timelike};
use serde_json::{Value, json};

use super::hash::{below, mix, pick, tag, unit};
use super::skus::{album, external_id, skus, variants_json};
use super::words::{
    ADJECTIVES, COLLECTION_THEMES, CURRENCIES, MATERIALS, PLATFORMS, PRODUCTS, SELLING_POINTS,
    VENDORS,
};

/// Offer ids are `merchant_id * OFFER_ID_STRIDE + index + 1`: unique across merchants.
pub const OFFER_ID_STRIDE: u64 = 10_000_000;
/// Collection ids are `merchant_id * COLLECTION_ID_STRIDE + index + 1`.
pub const COLLECTION_ID_STRIDE: u64 = 100_000;
/// Largest merchant id the id scheme supports (SKU ids stay well inside `i64`).
pub const MAX_MERCHANT_ID: u64 = 100_000_000;
/// 2025-01-06T00:00:00Z: the catalog's "now" at generation 0. Generation `g` happens
/// `g` days later. Fixed, not the wall clock, so output is reproducible.
pub const EPOCH_SECS: i64 = 1_736_121_600;
const DAY: i64 = 86_400;

pub fn offer_id(merchant: u64, index: u64) -> u64 {
    merchant * OFFER_ID_STRIDE + index + 1
}

/// `(merchant, index)` of an offer id, or `None` when it cannot be one.
pub fn split_offer_id(id: u64) -> Option<(u64, u64)> {
    let low = id % OFFER_ID_STRIDE;
    (low != 0).then(|| (id / OFFER_ID_STRIDE, low - 1))
}

pub fn collection_id(merchant: u64, index: u32) -> u64 {
    merchant * COLLECTION_ID_STRIDE + u64::from(index) + 1
}

pub fn split_collection_id(id: u64) -> Option<(u64, u32)> {
    let low = id % COLLECTION_ID_STRIDE;
    (low != 0).then(|| (id / COLLECTION_ID_STRIDE, (low - 1) as u32))
}

/// Violet's two date spellings: `2017-06-15T01:01:01+0000` and `2017-06-15T01:01:01Z`.
pub fn format_date(secs: i64, zulu: bool) -> String {
    // Written by hand: chrono's strftime parser is slow in debug builds, and this
    // runs several times per offer.
    let dt = DateTime::from_timestamp(secs, 0).unwrap_or_default();
    let zone = if zulu { "Z" } else { "+0000" };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// When generation `generation` happened, jittered per entity by `h` (within an hour).
pub fn generation_time(generation: u32, h: u64) -> i64 {
    EPOCH_SECS + i64::from(generation) * DAY + below(h, 3_600) as i64
}

/// What a merchant looks like; derived once from the seed and its spec.
#[derive(Debug, Clone)]
pub struct MerchantProfile {
    pub seed: u64,
    pub id: u64,
    pub name: String,
    pub platform: &'static str,
    pub currency: &'static str,
    pub store_url: String,
    pub collections: u32,
}

impl MerchantProfile {
    pub fn new(seed: u64, id: u64, name: &str, collections: u32) -> MerchantProfile {
        let h = |f: &str| mix(&[seed, id, tag(f)]);
        let platform = pick(h("platform"), PLATFORMS);
        let slug = slug(name);
        let store_url = match platform {
            "SHOPIFY" => format!("https://{slug}.myshopify.com"),
            _ => format!("https://www.{slug}.example.com"),
        };
        MerchantProfile {
            seed,
            id,
            name: name.to_string(),
            platform,
            currency: pick(h("currency"), CURRENCIES),
            store_url,
            collections,
        }
    }

    /// The merchant object (`GET /merchants/{id}` and merchant webhooks).
    pub fn json(&self, status: &str) -> Value {
        let created = EPOCH_SECS
            - 400 * DAY
            - below(mix(&[self.seed, self.id, tag("m_created")]), 300) as i64 * DAY;
        json!({
            "id": self.id,
            "merchant_name": self.name,
            "platform": self.platform,
            "store_url": self.store_url,
            "status": status,
            "currency": self.currency,
            "default_country_code": "US",
            "commission_rate": 10,
            "date_created": format_date(created, false),
            "date_last_modified": format_date(created + 30 * DAY, false),
        })
    }
}

/// One offer index in this many is a product sold by every merchant that has that
/// index (a storefront's `distinct` on `gtins` shows it once).
pub const SHARED_PRODUCT_EVERY: u64 = 6;

/// Everything that determines one offer's JSON.
#[derive(Debug, Clone, Copy)]
pub struct OfferCtx<'a> {
    pub merchant: &'a MerchantProfile,
    pub index: u64,
    /// Generation in which the offer appeared (0 for the initial catalog).
    pub created_gen: u32,
    /// Generation of its last update (equal to `created_gen` when never updated).
    pub rev_gen: u32,
    /// Set when rendering an offer that was removed in that generation.
    pub removed_gen: Option<u32>,
    /// The generation whose date `date_last_modified` shows, when an update did not
    /// move it (the sandbox's "undated change" fault); `None`: that of `rev_gen`.
    pub dated_gen: Option<u32>,
}

impl OfferCtx<'_> {
    pub fn h(&self, field: &str) -> u64 {
        mix(&[self.merchant.seed, self.merchant.id, self.index, tag(field)])
    }

    /// Whether this offer is a product every merchant of the seed sells at the same
    /// index (see [`SHARED_PRODUCT_EVERY`]): same kind, material, vendor and GTINs.
    pub fn is_shared_product(&self) -> bool {
        below(
            mix(&[self.merchant.seed, self.index, tag("shared")]),
            SHARED_PRODUCT_EVERY,
        ) == 0
    }

    /// Hash of a field that says what the product is: the same for every merchant's
    /// offer of a shared product, else [`OfferCtx::h`].
    pub fn product_h(&self, field: &str) -> u64 {
        if self.is_shared_product() {
            mix(&[self.merchant.seed, self.index, tag("shared"), tag(field)])
        } else {
            self.h(field)
        }
    }

    /// Hash of a field that changes whenever the offer is updated.
    pub fn hr(&self, field: &str) -> u64 {
        self.hash_at(field, self.rev_gen)
    }

    /// Hash of a field as it was at `generation`.
    fn hash_at(&self, field: &str, generation: u32) -> u64 {
        mix(&[
            self.merchant.seed,
            self.merchant.id,
            self.index,
            tag(field),
            u64::from(generation),
        ])
    }

    pub fn id(&self) -> u64 {
        offer_id(self.merchant.id, self.index)
    }

    pub fn date_created_secs(&self) -> i64 {
        if self.created_gen > 0 {
            generation_time(self.created_gen, self.h("created"))
        } else {
            // Spread over the four years before the epoch.
            EPOCH_SECS - DAY - below(self.h("created"), 4 * 365 * DAY as u64) as i64
        }
    }

    /// `date_last_modified` in unix seconds; cheap, used by the listing's date filters.
    pub fn date_last_modified_secs(&self) -> i64 {
        if let Some(g) = self.removed_gen {
            return generation_time(g, self.h("removed"));
        }
        let dated = self.dated_gen.unwrap_or(self.rev_gen);
        if dated > self.created_gen {
            return generation_time(dated, self.hash_at("modified", dated));
        }
        let created = self.date_created_secs();
        if self.created_gen > 0 {
            return created;
        }
        created + below(self.h("modified"), (EPOCH_SECS - created) as u64) as i64
    }

    fn zulu(&self) -> bool {
        below(self.h("date_style"), 3) == 0
    }
}

/// Sets `key` on a JSON object by moving `value` in. (`json!` would deep-copy a
/// nested `Value` through `to_value`, which dominated rendering time.)
pub fn put(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// Indexes (0-based) of the collections an offer belongs to: none, one or two.
pub fn collection_indices(merchant: &MerchantProfile, index: u64) -> Vec<u32> {
    let n = u64::from(merchant.collections);
    if n == 0 {
        return Vec::new();
    }
    let h = |f: &str| mix(&[merchant.seed, merchant.id, index, tag(f)]);
    let first = below(h("coll_1"), n);
    match below(h("coll_n"), 3) {
        0 => Vec::new(),
        1 => vec![first as u32],
        _ if n == 1 => vec![first as u32],
        _ => {
            let second = (first + 1 + below(h("coll_2"), n - 1)) % n;
            let mut v = vec![first as u32, second as u32];
            v.sort_unstable();
            v
        }
    }
}

/// The collection object (`index` 0-based).
pub fn collection(merchant: &MerchantProfile, index: u32) -> Value {
    let h = |f: &str| mix(&[merchant.seed, merchant.id, u64::from(index), tag(f)]);
    let theme = COLLECTION_THEMES[index as usize % COLLECTION_THEMES.len()];
    let round = index as usize / COLLECTION_THEMES.len();
    let name = if round == 0 {
        theme.to_string()
    } else {
        format!("{theme} {}", round + 1)
    };
    let id = collection_id(merchant.id, index);
    let parent =
        (index >= 3 && below(h("parent"), 4) == 0).then(|| collection_id(merchant.id, index % 3));
    let created = EPOCH_SECS - 200 * DAY + below(h("created"), 100) as i64 * DAY;
    let media = (below(h("media"), 3) != 0).then(|| {
        json!({
            "source_url": format!("https://cdn.example.com/sandbox/{}/collections/{id}.jpg", merchant.id),
            "alt": name,
            "height": 600,
            "width": 1200,
        })
    });
    let mut out = json!({
        "id": id,
        "external_id": format!("{}", 400_000_000_000 + below(h("external"), 99_999_999_999)),
        "merchant_id": merchant.id,
        "parent_id": parent,
        "name": name,
        "handle": slug(&name),
        "description": format!("<p>{name}: hand-picked by {}.</p>", merchant.name),
        "status": if below(h("status"), 10) == 0 { "INACTIVE" } else { "ACTIVE" },
        "type": if below(h("type"), 2) == 0 { "CUSTOM" } else { "AUTOMATED" },
        "date_created": format_date(created, false),
        "date_last_modified": format_date(created + 7 * DAY, below(h("date_style"), 2) == 0),
    });
    put(&mut out, "media", media.unwrap_or(Value::Null));
    out
}

/// The offer object. `collections` is added only when `include_collections`.
pub fn offer(ctx: &OfferCtx<'_>, include_collections: bool) -> Value {
    let m = ctx.merchant;
    let id = ctx.id();
    let (noun, category, kind_tags) = pick(ctx.product_h("product"), PRODUCTS);
    let name = format!(
        "{} {} {}",
        pick(ctx.hr("adjective"), ADJECTIVES),
        pick(ctx.product_h("material"), MATERIALS),
        noun
    );
    let vendor = pick(ctx.product_h("vendor"), VENDORS);
    let zulu = ctx.zulu();
    let modified = format_date(ctx.date_last_modified_secs(), zulu);
    let skus = skus(ctx, &name, category, &modified);
    let status = match ctx.removed_gen {
        Some(_) => "UNAVAILABLE",
        None => offer_status(unit(ctx.hr("status"))),
    };
    let in_stock = skus.iter().any(|s| s.in_stock);
    let available = status == "AVAILABLE" && in_stock;
    let published = ctx.removed_gen.is_none() && below(ctx.h("published"), 20) != 0;
    let min_price = skus.iter().map(|s| s.sale_price).min().unwrap_or(0);
    let max_price = skus.iter().map(|s| s.sale_price).max().unwrap_or(0);
    let mut tags: Vec<&str> = kind_tags
        .iter()
        .copied()
        .filter(|t| below(mix(&[ctx.h("tags"), tag(t)]), 3) != 0)
        .collect();
    if below(ctx.h("sale_tag"), 5) == 0 {
        tags.push("sale");
    }
    let point = pick(ctx.h("point"), SELLING_POINTS);
    let html = format!(
        "<p>The {name} by {vendor}.</p><ul><li>{point}.</li><li>Material: {}.</li></ul>",
        pick(ctx.product_h("material"), MATERIALS)
    );
    let description = if below(ctx.h("plain"), 2) == 0 {
        format!("The {name} by {vendor}. {point}.")
    } else {
        html.clone()
    };
    let variants = Value::Array(variants_json(ctx, &skus));
    let albums = Value::Array(vec![album(
        id,
        &name,
        1 + below(ctx.h("images"), 4),
        m.id,
        "OFFER",
    )]);
    let mut offer = json!({
        "id": id,
        "external_id": external_id(ctx.h("external")),
        "name": name,
        "description": description,
        "html_description": html,
        "source": m.platform,
        "seller": m.name,
        "vendor": vendor,
        "merchant_id": m.id,
        "available": available,
        "visible": published,
        "min_price": min_price,
        "max_price": max_price,
        "currency": m.currency,
        "status": status,
        "publishing_status": if published { "PUBLISHED" } else { "NOT_PUBLISHED" },
        "tags": tags,
        "source_category_name": category,
        "type": "PHYSICAL",
        "date_created": format_date(ctx.date_created_secs(), zulu),
        "date_last_modified": modified,
    });
    put(&mut offer, "variants", variants);
    put(
        &mut offer,
        "skus",
        Value::Array(skus.into_iter().map(|s| s.json).collect()),
    );
    put(&mut offer, "albums", albums);
    let obj = offer.as_object_mut().expect("json! object");
    if unit(ctx.h("extra")) < 0.03 {
        // A field the contract does not list: clients must keep and ignore it.
        obj.insert(
            "fulfillment".into(),
            json!({"ships_from_country": "US", "handling_days": 1 + below(ctx.h("handling"), 5)}),
        );
    }
    if include_collections {
        let list: Vec<Value> = collection_indices(m, ctx.index)
            .into_iter()
            .map(|c| collection(m, c))
            .collect();
        obj.insert("collections".into(), Value::Array(list));
    }
    offer
}

fn offer_status(r: f64) -> &'static str {
    match r {
        r if r < 0.86 => "AVAILABLE",
        r if r < 0.92 => "UNAVAILABLE",
        r if r < 0.95 => "DISABLED_AVAILABLE",
        r if r < 0.97 => "DISABLED_UNAVAILABLE",
        r if r < 0.98 => "ARCHIVED",
        r if r < 0.99 => "FOR_DELETION",
        // Not in the documented list: clients must treat status as an open string.
        _ => "PENDING_REVIEW",
    }
}

fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(split_offer_id(offer_id(1001, 0)), Some((1001, 0)));
        assert_eq!(split_offer_id(offer_id(7, 9_999_998)), Some((7, 9_999_998)));
        assert_eq!(split_offer_id(1001 * OFFER_ID_STRIDE), None);
        assert_eq!(split_collection_id(collection_id(1002, 4)), Some((1002, 4)));
    }

    #[test]
    fn a_shared_product_has_the_same_kind_vendor_and_first_gtin_at_every_merchant() {
        let (a, b) = (
            MerchantProfile::new(7, 1001, "A", 2),
            MerchantProfile::new(7, 1002, "B", 2),
        );
        let ctx = |merchant, index| OfferCtx {
            merchant,
            index,
            created_gen: 0,
            rev_gen: 0,
            removed_gen: None,
            dated_gen: None,
        };
        let gtins = |offer: &Value| -> Vec<String> {
            offer["skus"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|sku| sku["gtin"].as_str().map(str::to_string))
                .collect()
        };
        let mut shared = 0;
        for index in 0..300 {
            let (x, y) = (ctx(&a, index), ctx(&b, index));
            assert_eq!(x.is_shared_product(), y.is_shared_product());
            let (left, right) = (offer(&x, false), offer(&y, false));
            if x.is_shared_product() {
                shared += 1;
                assert_eq!(left["vendor"], right["vendor"]);
                let (left, right) = (gtins(&left), gtins(&right));
                assert_eq!(
                    left[0], right[0],
                    "every SKU has a GTIN, the first is shared"
                );
                assert!(left.iter().all(|g| g.starts_with("01")));
            } else {
                let (left, right) = (gtins(&left), gtins(&right));
                assert!(
                    left.iter().all(|g| !right.contains(g)),
                    "{left:?} {right:?}"
                );
            }
        }
        // One in six, give or take.
        assert!((30..70).contains(&shared), "{shared}");
    }

    #[test]
    fn dates_have_both_spellings() {
        assert_eq!(format_date(EPOCH_SECS, false), "2025-01-06T00:00:00+0000");
        assert_eq!(format_date(EPOCH_SECS, true), "2025-01-06T00:00:00Z");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Maple & Thread"), "maple-thread");
        assert_eq!(slug("Gifts Under $50"), "gifts-under-50");
    }
}
