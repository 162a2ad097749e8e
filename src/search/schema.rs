//! The typed tantivy schema of an offer document, and the catalogue of attributes the
//! search API knows (which can be filtered, faceted, sorted, searched, highlighted).
//!
//! Three kinds of fields:
//! - text fields the query words run against, one per relevance weight (`t_name`,
//!   `t_secondary` for vendor/seller/tags/category/collections/SKU names,
//!   `t_description`, `t_codes` for GTIN/UPC/EAN), tokenized by [`TEXT_TOKENIZER`];
//!   all but the codes keep word positions, for phrases (`terms`);
//! - one field per filterable attribute, named like the attribute: numbers as `f64`
//!   (indexed and fast: filters, ranges, sort, numeric facets), strings and booleans
//!   as lowercased keywords (indexed by [`KEYWORD_TOKENIZER`] for case-insensitive
//!   filters, fast with their original spelling for facet values);
//! - one fast `_sort_<attribute>` field per sortable text or boolean attribute,
//!   holding the value as Meilisearch sorts it ([`sort_key`]): its term ordinals
//!   order the documents within a segment (see `collect`);
//! - `_nulls`/`_empties` (which attributes are `null` or empty in this document, for
//!   `IS NULL`/`IS EMPTY`) and `_source`, the stored JSON returned as a hit;
//! - `_fingerprint`, a fast `u64` hash of `_source`: the indexer compares it with the
//!   fingerprint of the document the mirror yields now and rewrites only what differs
//!   (see `diff`).
//!
//! Bump [`SCHEMA_VERSION`] whenever fields, tokenizers or what a document holds
//! change: the indexer then rebuilds aside and swaps (see `store`).

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};

/// Version of the schema and of the document projection; stored in each commit payload.
pub const SCHEMA_VERSION: u32 = 5;

/// Words: split on non-alphanumerics, lowercased, accents folded.
pub const TEXT_TOKENIZER: &str = "cm_text";
/// Whole values, lowercased: case-insensitive equality in filters.
pub const KEYWORD_TOKENIZER: &str = "cm_keyword";

/// How a filterable attribute is stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    /// `f64`: numeric comparison, ranges, sort, facet stats.
    Number,
    /// String (or boolean as `"true"`/`"false"`): case-insensitive equality.
    Keyword,
}

/// Filterable (and facetable) attributes of an offer document, in display order.
pub const FILTERABLE: &[(&str, AttrKind)] = &[
    ("id", AttrKind::Number),
    ("merchant_id", AttrKind::Number),
    ("min_price", AttrKind::Number),
    ("max_price", AttrKind::Number),
    ("date_last_modified", AttrKind::Number),
    ("collection_ids", AttrKind::Number),
    ("vendor", AttrKind::Keyword),
    ("seller", AttrKind::Keyword),
    ("tags", AttrKind::Keyword),
    ("category", AttrKind::Keyword),
    ("collections", AttrKind::Keyword),
    ("currency", AttrKind::Keyword),
    ("available", AttrKind::Keyword),
    ("visible", AttrKind::Keyword),
    ("status", AttrKind::Keyword),
    ("gtins", AttrKind::Keyword),
    ("upcs", AttrKind::Keyword),
    ("eans", AttrKind::Keyword),
];

/// Other names accepted for an attribute in `filter`, `sort` and `facets`.
pub const ALIASES: &[(&str, &str)] = &[("price", "min_price")];

/// Text and boolean attributes `sort` accepts, each with the fast field holding its
/// sort key. Only single-valued attributes a storefront orders by: a document of the
/// mirror has one name, vendor, seller, category, currency, status and one
/// availability and visibility (numbers sort on their own fields, see [`FILTERABLE`]).
/// The mirror gives every attribute one JSON type (`document::OfferRow`), so an
/// attribute here never holds a number and one of [`FILTERABLE`]'s numbers never holds
/// text.
pub const SORTABLE_TEXT: &[(&str, &str)] = &[
    ("name", "_sort_name"),
    ("vendor", "_sort_vendor"),
    ("seller", "_sort_seller"),
    ("category", "_sort_category"),
    ("currency", "_sort_currency"),
    ("status", "_sort_status"),
    ("available", "_sort_available"),
    ("visible", "_sort_visible"),
];

/// Attributes whose text the query words match, with the text field holding them.
/// Highlighting and cropping apply to these.
pub const SEARCHABLE: &[(&str, TextField)] = &[
    ("name", TextField::Name),
    ("vendor", TextField::Secondary),
    ("seller", TextField::Secondary),
    ("tags", TextField::Secondary),
    ("category", TextField::Secondary),
    ("collections", TextField::Secondary),
    ("sku_names", TextField::Secondary),
    ("description", TextField::Description),
    ("gtins", TextField::Codes),
    ("upcs", TextField::Codes),
    ("eans", TextField::Codes),
];

/// Every attribute of a hit document, in the order the API lists them.
pub const DISPLAYED: &[&str] = &[
    "id",
    "merchant_id",
    "name",
    "description",
    "vendor",
    "seller",
    "tags",
    "category",
    "collection_ids",
    "collections",
    "sku_names",
    "gtins",
    "upcs",
    "eans",
    "min_price",
    "max_price",
    "currency",
    "available",
    "visible",
    "status",
    "date_last_modified",
    "image_url",
];

/// The text fields, from most to least important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    Name,
    Secondary,
    Description,
    Codes,
}

/// The schema with every field resolved.
#[derive(Debug, Clone)]
pub struct OfferSchema {
    pub schema: Schema,
    pub t_name: Field,
    pub t_secondary: Field,
    pub t_description: Field,
    pub t_codes: Field,
    pub nulls: Field,
    pub empties: Field,
    pub source: Field,
    /// Fast `u64`: the fingerprint of `_source` (see `document::fingerprint`).
    pub fingerprint: Field,
    /// Filterable attributes: name, kind, field (same order as [`FILTERABLE`]).
    pub attributes: Vec<(&'static str, AttrKind, Field)>,
    /// Sortable text attributes and their sort-key fields (same order as
    /// [`SORTABLE_TEXT`]).
    pub sort_keys: Vec<(&'static str, Field)>,
}

impl OfferSchema {
    /// The schema this build writes.
    pub fn current() -> OfferSchema {
        OfferSchema::resolve(&build()).expect("the built schema resolves")
    }

    /// Resolves every field by name in `schema` (an index on disk); `None` when a field
    /// is missing, i.e. the index cannot be served by this build.
    pub fn resolve(schema: &Schema) -> Option<OfferSchema> {
        let field = |name: &str| schema.get_field(name).ok();
        let mut attributes = Vec::with_capacity(FILTERABLE.len());
        for &(name, kind) in FILTERABLE {
            attributes.push((name, kind, field(name)?));
        }
        let mut sort_keys = Vec::with_capacity(SORTABLE_TEXT.len());
        for &(name, key_field) in SORTABLE_TEXT {
            sort_keys.push((name, field(key_field)?));
        }
        Some(OfferSchema {
            schema: schema.clone(),
            t_name: field("t_name")?,
            t_secondary: field("t_secondary")?,
            t_description: field("t_description")?,
            t_codes: field("t_codes")?,
            nulls: field("_nulls")?,
            empties: field("_empties")?,
            source: field("_source")?,
            fingerprint: field("_fingerprint")?,
            attributes,
            sort_keys,
        })
    }

    pub fn text_field(&self, which: TextField) -> Field {
        match which {
            TextField::Name => self.t_name,
            TextField::Secondary => self.t_secondary,
            TextField::Description => self.t_description,
            TextField::Codes => self.t_codes,
        }
    }

    /// The filterable attribute `name` (aliases resolved).
    pub fn attribute(&self, name: &str) -> Option<(&'static str, AttrKind, Field)> {
        let name = canonical(name);
        self.attributes
            .iter()
            .copied()
            .find(|(attr, _, _)| *attr == name)
    }
}

/// `name` with aliases resolved (`price` is `min_price`).
pub fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map(|(_, target)| *target)
        .unwrap_or(name)
}

/// The filterable attribute `name` names (aliases resolved), with its kind: what
/// `facets`, `facetName` and `distinct` accept.
pub fn filterable(name: &str) -> Option<(&'static str, AttrKind)> {
    let name = canonical(name);
    FILTERABLE
        .iter()
        .copied()
        .find(|(attribute, _)| *attribute == name)
}

/// Names accepted by `filter`/`facets`, for error messages.
pub fn filterable_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = FILTERABLE.iter().map(|(name, _)| *name).collect();
    names.extend(ALIASES.iter().map(|(alias, _)| *alias));
    names.sort_unstable();
    names
}

/// What `sort` orders an attribute by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// The attribute's own `f64` fast field.
    Number(&'static str),
    /// The attribute's `_sort_<attribute>` fast field of [`sort_key`]s.
    Text(&'static str),
}

/// The sortable attribute `name` (aliases resolved): its canonical name and where its
/// sort values are.
pub fn sortable(name: &str) -> Option<(&'static str, SortField)> {
    let name = canonical(name);
    if let Some(&(attribute, _)) = FILTERABLE
        .iter()
        .find(|(attribute, kind)| *attribute == name && *kind == AttrKind::Number)
    {
        return Some((attribute, SortField::Number(attribute)));
    }
    SORTABLE_TEXT
        .iter()
        .find(|(attribute, _)| *attribute == name)
        .map(|&(attribute, field)| (attribute, SortField::Text(field)))
}

/// The sortable attributes of a document, sorted (what the settings list).
pub fn sortable_attributes() -> Vec<&'static str> {
    let mut names: Vec<&str> = FILTERABLE
        .iter()
        .filter(|(_, kind)| *kind == AttrKind::Number)
        .map(|(name, _)| *name)
        .chain(SORTABLE_TEXT.iter().map(|(name, _)| *name))
        .collect();
    names.sort_unstable();
    names
}

/// Names accepted by `sort` (the attributes and their aliases), for error messages.
pub fn sortable_names() -> Vec<&'static str> {
    let mut names = sortable_attributes();
    names.extend(ALIASES.iter().map(|(alias, _)| *alias));
    names.sort_unstable();
    names
}

/// A string as Meilisearch sorts it: trimmed, compatibility-decomposed (NFKD), then
/// lowercased, compared byte by byte. Meilisearch's `normalize_facet`
/// (crates/milli/src/lib.rs) is the same, and its facet extractor
/// (crates/milli/src/update/new/extract/faceted/extract_facets.rs) sorts booleans as
/// the strings `true`/`false` and never sorts an empty string (it counts as missing).
/// `None` when the value has no sort key (empty).
pub fn sort_key(value: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    if value.is_empty() {
        return None;
    }
    Some(value.trim().nfkd().collect::<String>().to_lowercase())
}

/// Builds the tantivy schema.
pub fn build() -> Schema {
    let mut builder = Schema::builder();
    let text = |record| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TEXT_TOKENIZER)
                .set_index_option(record),
        )
    };
    // Positions let a phrase match consecutive words; tantivy leaves a gap between the
    // values of a field, so a phrase never runs from one attribute into the next.
    for name in ["t_name", "t_secondary", "t_description"] {
        builder.add_text_field(name, text(IndexRecordOption::WithFreqsAndPositions));
    }
    // Codes are whole words: an exact match, never a phrase.
    builder.add_text_field("t_codes", text(IndexRecordOption::Basic));
    let keyword_indexing = TextFieldIndexing::default()
        .set_tokenizer(KEYWORD_TOKENIZER)
        .set_index_option(IndexRecordOption::Basic);
    let keyword = TextOptions::default()
        .set_indexing_options(keyword_indexing.clone())
        .set_fast("raw");
    for &(name, kind) in FILTERABLE {
        match kind {
            AttrKind::Number => {
                builder.add_f64_field(name, INDEXED | FAST);
            }
            AttrKind::Keyword => {
                builder.add_text_field(name, keyword.clone());
            }
        }
    }
    // Fast only, stored as given (the document already holds the normalized key):
    // sort reads it by document, never searches it.
    let sort_key = TextOptions::default().set_fast("raw");
    for &(_, name) in SORTABLE_TEXT {
        builder.add_text_field(name, sort_key.clone());
    }
    let marker = TextOptions::default().set_indexing_options(keyword_indexing);
    builder.add_text_field("_nulls", marker.clone());
    builder.add_text_field("_empties", marker);
    // Stored as text, not bytes: tantivy reads a stored string in one copy, bytes one
    // at a time.
    builder.add_text_field("_source", STORED);
    // Fast only: read by document while diffing a merchant, never searched.
    builder.add_u64_field("_fingerprint", FAST);
    builder.build()
}

/// The analyzer for words (index and query side).
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The analyzer for keyword values.
pub fn keyword_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .build()
}

/// Registers our tokenizers on an index (needed after every open).
pub fn register_tokenizers(index: &tantivy::Index) {
    index.tokenizers().register(TEXT_TOKENIZER, text_analyzer());
    index
        .tokenizers()
        .register(KEYWORD_TOKENIZER, keyword_analyzer());
}

/// Normalizes a keyword value the way [`KEYWORD_TOKENIZER`] does.
pub fn normalize_keyword(value: &str) -> String {
    value.to_lowercase()
}
