//! SKUs, variants and albums of a generated offer.
//!
//! Split from [`super::generator`] to keep files small. Like the rest of the
//! generator these are pure functions of the offer's hashes: 1 to 5 SKUs, variant
//! dimensions (Size, Color, or Color x Size) whose `values[].sku_ids` point back at
//! the SKUs, prices in minor units that move when the offer is updated, and stock
//! counts under either of Violet's two field names.

use serde_json::{Value, json};

use super::generator::{OfferCtx, put};
use super::hash::{below, mix, tag, unit};
use super::words::{COLORS, SIZES};

pub struct Sku {
    pub in_stock: bool,
    pub sale_price: u64,
    /// (variant name, value) pairs.
    values: Vec<(&'static str, &'static str)>,
    id: u64,
    pub json: Value,
}

/// Variant dimensions for `n` SKUs: none, one (Size or Color), or Color x Size.
fn dimensions(
    ctx: &OfferCtx<'_>,
    n: u64,
    category: &str,
) -> Vec<(&'static str, Vec<&'static str>)> {
    let sized = category.starts_with("Apparel") || category == "Footwear";
    let sizes = |k: usize| {
        let start = below(ctx.h("size_start"), (SIZES.len() - k + 1) as u64) as usize;
        SIZES[start..start + k].to_vec()
    };
    let colors = |k: usize| {
        let start = below(ctx.h("color_start"), COLORS.len() as u64) as usize;
        (0..k)
            .map(|i| COLORS[(start + i * 3) % COLORS.len()])
            .collect::<Vec<_>>()
    };
    match n {
        1 => Vec::new(),
        4 => vec![("Color", colors(2)), ("Size", sizes(2))],
        k if sized => vec![("Size", sizes(k as usize))],
        k => vec![("Color", colors(k as usize))],
    }
}

pub fn skus(ctx: &OfferCtx<'_>, name: &str, category: &str, modified: &str) -> Vec<Sku> {
    let m = ctx.merchant;
    let offer_id = ctx.id();
    let n = 1 + below(ctx.h("sku_count"), 5);
    let dims = dimensions(ctx, n, category);
    let base = (5 + below(ctx.h("base_price"), 250)) * 100 - 1;
    let factor = if ctx.rev_gen > 0 {
        0.85 + 0.3 * unit(ctx.hr("price"))
    } else {
        1.0
    };
    let on_sale = unit(ctx.hr("on_sale")) < 0.3;
    let offer_status = ctx.removed_gen.map(|_| "UNAVAILABLE");
    (0..n)
        .map(|k| {
            let hs = |f: &str| mix(&[ctx.h("sku"), k, tag(f)]);
            let hsr = |f: &str| mix(&[ctx.hr("sku"), k, tag(f)]);
            let values: Vec<(&'static str, &'static str)> = match dims.len() {
                0 => Vec::new(),
                1 => vec![(dims[0].0, dims[0].1[k as usize])],
                _ => vec![
                    (dims[0].0, dims[0].1[(k / 2) as usize]),
                    (dims[1].0, dims[1].1[(k % 2) as usize]),
                ],
            };
            let retail = ((((base + k * 500) as f64 * factor) as u64) / 100) * 100 + 99;
            let sale = if on_sale {
                ((retail as f64 * 0.8) as u64 / 100) * 100 + 99
            } else {
                retail
            };
            let qty = if unit(hsr("stockout")) < 0.12 || ctx.removed_gen.is_some() {
                0
            } else {
                1 + below(hsr("qty"), 120)
            };
            let id = offer_id * 10 + k + 1;
            let suffix: Vec<&str> = values.iter().map(|(_, v)| *v).collect();
            let sku_name = if suffix.is_empty() {
                name.to_string()
            } else {
                format!("{name} - {}", suffix.join(" / "))
            };
            let upc = upc(hs("upc"));
            // A shared product's SKUs all carry the product's GTINs, its k-th SKU the
            // k-th: two merchants' offers of it share at least the first.
            let gtin = if ctx.is_shared_product() {
                Some(format!("01{:012}", ctx.index * 10 + k))
            } else {
                (below(hs("gtin"), 10) != 0).then(|| format!("00{upc}"))
            };
            let mut json = json!({
                "id": id,
                "offer_id": offer_id,
                "merchant_id": m.id,
                "external_id": external_id(hs("external")),
                "name": sku_name,
                "gtin": gtin,
                "upc": upc,
                "ean": format!("0{upc}"),
                "isbn": null,
                "in_stock": qty > 0,
                "sale_price": sale,
                "retail_price": retail,
                "currency": m.currency,
                "status": offer_status.unwrap_or(if qty > 0 { "AVAILABLE" } else { "UNAVAILABLE" }),
                "type": "PHYSICAL",
                "taxable": true,
                "date_last_modified": modified,
            });
            let variant_values = values
                .iter()
                .map(|(v, val)| json!({"variant": v, "value": val}))
                .collect();
            put(&mut json, "variant_values", Value::Array(variant_values));
            let albums = if values.is_empty() {
                Vec::new()
            } else {
                vec![album(id, &sku_name, 1, m.id, "SKU")]
            };
            put(&mut json, "albums", Value::Array(albums));
            // Violet has served both spellings of the stock count.
            let qty_field = if below(hs("qty_field"), 2) == 0 {
                "qty_available"
            } else {
                "quantity_available"
            };
            put(&mut json, qty_field, qty.into());
            Sku {
                in_stock: qty > 0,
                sale_price: sale,
                values,
                id,
                json,
            }
        })
        .collect()
}

pub fn variants_json(ctx: &OfferCtx<'_>, skus: &[Sku]) -> Vec<Value> {
    let mut dims: Vec<(&str, Vec<&str>)> = Vec::new();
    for sku in skus {
        for (d, (variant, value)) in sku.values.iter().enumerate() {
            if dims.len() <= d {
                dims.push((variant, Vec::new()));
            }
            if !dims[d].1.contains(value) {
                dims[d].1.push(value);
            }
        }
    }
    dims.iter()
        .enumerate()
        .map(|(d, (variant, values))| {
            let values: Vec<Value> = values
                .iter()
                .map(|value| {
                    let ids: Vec<u64> = skus
                        .iter()
                        .filter(|s| s.values[d].1 == *value)
                        .map(|s| s.id)
                        .collect();
                    let mut v = json!({"name": value});
                    put(&mut v, "sku_ids", ids.into());
                    v
                })
                .collect();
            // SKU ids use offer_id * 10 + 1..=5; variants take 6 and 7.
            let mut v = json!({"id": ctx.id() * 10 + 6 + d as u64, "name": variant});
            put(&mut v, "values", Value::Array(values));
            v
        })
        .collect()
}

pub fn album(owner_id: u64, name: &str, images: u64, merchant: u64, kind: &str) -> Value {
    let media: Vec<Value> = (0..images)
        .map(|i| {
            let url = format!(
                "https://cdn.example.com/sandbox/{merchant}/{}/{owner_id}-{i}.jpg",
                kind.to_lowercase()
            );
            json!({
                "id": owner_id * 10 + i + 1,
                "url": url,
                "source_url": url,
                "type": "IMAGE",
                "display_order": i,
                "primary": i == 0,
            })
        })
        .collect();
    let mut album = json!({"id": owner_id, "type": kind, "name": name});
    put(&mut album, "media", Value::Array(media));
    album
}

pub fn external_id(h: u64) -> String {
    format!("{}", 7_000_000_000_000 + below(h, 999_999_999_999))
}

/// A 12-digit UPC-A with a valid check digit.
fn upc(h: u64) -> String {
    let body = format!("{:011}", below(h, 100_000_000_000));
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upc_check_digit() {
        // 03600029145 -> check digit 2 (a well-known UPC-A example).
        let body = 3_600_029_145u64;
        assert_eq!(upc(body), "036000291452");
    }
}
