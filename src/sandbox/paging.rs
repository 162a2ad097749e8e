//! Request parameters of the catalog endpoints and the Spring page they answer with.
//!
//! Violet pages are 1-based on the way in (`page`, `size` default 20, at most 100)
//! and Spring-shaped, snake_case, 0-based `number` on the way out. Bad parameters
//! are a JSON 400 rather than axum's plain-text rejection.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::catalog::DateRange;
use super::error::SandboxError;

/// Violet's page size default and (assumed) maximum.
pub const DEFAULT_SIZE: u64 = 20;
pub const MAX_SIZE: u64 = 100;

pub fn parse_id(raw: &str, what: &str) -> Result<u64, SandboxError> {
    raw.parse::<u64>().map_err(|_| {
        SandboxError::bad_request(format!("{what} must be a positive integer, got {raw:?}"))
    })
}

/// `page` (1-based, default 1) and `size` (default 20, clamped to 1..=100).
pub fn paging(q: &HashMap<String, String>) -> Result<(u64, u64), SandboxError> {
    let page = match q.get("page") {
        None => 1,
        Some(p) => match p.trim().parse::<u64>() {
            Ok(p) if p >= 1 => p,
            _ => {
                return Err(SandboxError::bad_request(format!(
                    "page must be an integer >= 1, got {p:?}"
                )));
            }
        },
    };
    let size = match q.get("size") {
        None => DEFAULT_SIZE,
        Some(s) => match s.trim().parse::<u64>() {
            Ok(s) => s.clamp(1, MAX_SIZE),
            Err(_) => {
                return Err(SandboxError::bad_request(format!(
                    "size must be an integer, got {s:?}"
                )));
            }
        },
    };
    Ok((page, size))
}

pub fn include_collections(q: &HashMap<String, String>) -> bool {
    q.get("include").is_some_and(|v| {
        v.split(',')
            .any(|part| part.trim().eq_ignore_ascii_case("collections"))
    })
}

/// `date_last_modified:min` / `:max`, both spellings of Violet dates and RFC 3339.
pub fn date_filter(q: &HashMap<String, String>) -> Result<Option<DateRange>, SandboxError> {
    let parse = |key: &str| -> Result<Option<i64>, SandboxError> {
        let Some(raw) = q.get(key) else {
            return Ok(None);
        };
        chrono::DateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S%z")
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(raw.trim()))
            .map(|d| Some(d.timestamp()))
            .map_err(|_| {
                SandboxError::bad_request(format!("{key} must be an ISO 8601 date, got {raw:?}"))
            })
    };
    let (min, max) = (
        parse("date_last_modified:min")?,
        parse("date_last_modified:max")?,
    );
    Ok((min.is_some() || max.is_some()).then_some((min, max)))
}

/// A Spring page in snake_case. `total`: `None` answers 0/0 like the offers endpoint.
pub fn spring_page(
    content: Vec<Value>,
    page: u64,
    size: u64,
    last: bool,
    total: Option<u64>,
) -> Value {
    let (total_elements, total_pages) = match total {
        Some(t) => (t, t.div_ceil(size)),
        None => (0, 0),
    };
    let sort = json!({"sorted": false, "unsorted": true, "empty": true});
    json!({
        "number_of_elements": content.len(),
        "empty": content.is_empty(),
        "content": content,
        "last": last,
        "first": page == 1,
        "number": page - 1,
        "size": size,
        "total_elements": total_elements,
        "total_pages": total_pages,
        "sort": sort,
        "pageable": {
            "page_number": page - 1,
            "page_size": size,
            "offset": (page - 1) * size,
            "paged": true,
            "unpaged": false,
            "sort": sort,
        },
    })
}
