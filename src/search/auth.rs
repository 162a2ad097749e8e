//! Who may search, and what they may see.
//!
//! - No key configured (`search.api_key` empty and no `search.restricted_keys`): open.
//! - `Authorization: Bearer <search.api_key>`: everything.
//! - `Authorization: Bearer <restricted key>`: only offers matching that key's filter.
//! - `Authorization: Bearer <tenant token>`: a Meilisearch tenant token (a JWT signed
//!   HS256, HS384 or HS512 with `search.api_key`, claims `searchRules`, `apiKeyUid`,
//!   optional `exp`), as the official SDKs' `generateTenantToken` makes them. Its
//!   `searchRules` name index patterns (`offers`, `offers*`, `*`, ...) as Meilisearch
//!   reads them (crates/meilisearch-auth/src/lib.rs, `SearchRules`); the most specific
//!   pattern matching `offers` gives the rule, whose filter is ANDed with every search
//!   and every documents read.
//!
//! Keys are compared in constant time and never logged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use super::INDEX_UID;
use super::error::ApiError;
use super::filter::{self, Filter};
use crate::config::{ConfigError, ConfigErrors, SearchSettings, Secret};

/// What a request may see.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    All,
    /// Only documents matching this filter.
    Filtered(Filter),
}

impl Grant {
    pub fn filter(&self) -> Option<&Filter> {
        match self {
            Grant::All => None,
            Grant::Filtered(filter) => Some(filter),
        }
    }
}

struct RestrictedKey {
    key: Secret,
    filter: Filter,
}

/// The configured keys.
pub struct Access {
    search_key: Secret,
    api_key_uid: String,
    restricted: Vec<RestrictedKey>,
}

impl Access {
    /// From settings. The settings checked that each restricted key has a filter; its
    /// syntax is the search layer's to judge, here, for `serve` and `check-config`
    /// alike (every bad filter named, as the settings name their bad keys).
    pub fn from_settings(settings: &SearchSettings) -> Result<Access, ConfigErrors> {
        let mut restricted = Vec::new();
        let mut problems = Vec::new();
        for (i, key) in settings.restricted_keys.iter().enumerate() {
            let problem = |reason: String| ConfigError {
                key: format!("search.restricted_keys[{i}].filter"),
                reason,
            };
            match filter::parse(&key.filter) {
                Ok(Some(filter)) => restricted.push(RestrictedKey {
                    key: key.key.clone(),
                    filter,
                }),
                Ok(None) => problems.push(problem("must not be empty".into())),
                Err(err) => problems.push(problem(format!("is not a valid filter: {err}"))),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        Ok(Access {
            search_key: settings.api_key.clone(),
            api_key_uid: settings.api_key_uid.clone(),
            restricted,
        })
    }

    /// No keys at all: the API is open.
    pub fn open() -> Access {
        Access {
            search_key: Secret::default(),
            api_key_uid: String::new(),
            restricted: Vec::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.search_key.is_empty() && self.restricted.is_empty()
    }

    /// Checks the `Authorization` header.
    pub fn authorize(&self, header: Option<&str>) -> Result<Grant, ApiError> {
        if self.is_open() {
            return Ok(Grant::All);
        }
        let header = header.ok_or_else(ApiError::missing_authorization)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(ApiError::missing_authorization)?;
        if !self.search_key.is_empty() && equal(token, self.search_key.expose()) {
            return Ok(Grant::All);
        }
        for key in &self.restricted {
            if equal(token, key.key.expose()) {
                return Ok(Grant::Filtered(key.filter.clone()));
            }
        }
        if token.matches('.').count() == 2 && !self.search_key.is_empty() {
            return self.tenant_token(token);
        }
        Err(ApiError::invalid_api_key(None))
    }

    fn tenant_token(&self, token: &str) -> Result<Grant, ApiError> {
        let invalid = |detail: &str| ApiError::invalid_api_key(Some(detail));
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("The tenant token is malformed."));
        };
        let header: Value =
            decode(header).ok_or_else(|| invalid("The tenant token is malformed."))?;
        // Meilisearch accepts the three HMAC algorithms
        // (crates/meilisearch/src/extractors/authentication/mod.rs,
        // `tenant_token_validation`).
        let algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Hs::from_name)
            .ok_or_else(|| invalid("Tenant tokens must be signed with HS256, HS384 or HS512."))?;
        let signature = URL_SAFE_NO_PAD
            .decode(
                signature
                    .trim_end_matches('=')
                    .replace('+', "-")
                    .replace('/', "_"),
            )
            .map_err(|_| invalid("The tenant token is malformed."))?;
        let signed = &token[..token.rfind('.').unwrap_or(0)];
        if !algorithm.verify(self.search_key.expose(), signed.as_bytes(), &signature) {
            return Err(invalid(
                "The tenant token's signature does not match the search key.",
            ));
        }
        let claims: Value =
            decode(claims).ok_or_else(|| invalid("The tenant token is malformed."))?;
        if let Some(exp) = claims.get("exp").filter(|exp| !exp.is_null()) {
            let exp = exp
                .as_i64()
                .ok_or_else(|| invalid("The tenant token's `exp` is not a timestamp."))?;
            if exp <= chrono::Utc::now().timestamp() {
                return Err(invalid("The tenant token has expired."));
            }
        }
        if !self.api_key_uid.is_empty() {
            let uid = claims
                .get("apiKeyUid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !equal(uid, &self.api_key_uid) {
                return Err(invalid(
                    "The tenant token's `apiKeyUid` is not the search key's uid.",
                ));
            }
        }
        let rules = claims
            .get("searchRules")
            .ok_or_else(|| invalid("The tenant token has no `searchRules`."))?;
        rule_for_offers(rules).ok_or_else(|| {
            invalid("The tenant token does not give access to the `offers` index.")
        })?
    }
}

/// The grant a `searchRules` claim gives on `offers`: `None` when it gives none. As
/// Meilisearch's `SearchRules` (crates/meilisearch-auth/src/lib.rs): a list authorizes
/// `offers` when one of its patterns matches it, with no filter; a map takes the rule of
/// the most specific matching pattern (an exact uid before any `prefix*`, a longer
/// prefix before a shorter one, `*` last), and a `null` rule has no filter.
fn rule_for_offers(rules: &Value) -> Option<Result<Grant, ApiError>> {
    match rules {
        Value::Array(patterns) => patterns
            .iter()
            .any(|pattern| pattern.as_str().is_some_and(pattern_matches))
            .then_some(Ok(Grant::All)),
        Value::Object(map) => {
            let (_, rule) = map
                .iter()
                .filter(|(pattern, _)| pattern_matches(pattern))
                .max_by_key(|(pattern, _)| (!pattern.ends_with('*'), pattern.len()))?;
            let filter = match rule {
                Value::Null => return Some(Ok(Grant::All)),
                Value::Object(rule) => rule.get("filter").cloned().unwrap_or(Value::Null),
                _ => {
                    return Some(Err(ApiError::invalid_api_key(Some(
                        "The tenant token's search rule is malformed.",
                    ))));
                }
            };
            Some(match filter::from_json(&filter) {
                Ok(None) => Ok(Grant::All),
                Ok(Some(filter)) => Ok(Grant::Filtered(filter)),
                Err(err) => Err(ApiError::invalid_api_key(Some(&format!(
                    "The tenant token's filter is invalid: {err}"
                )))),
            })
        }
        _ => None,
    }
}

/// Whether an index uid pattern (Meilisearch's `IndexUidPattern`: a uid, or a prefix
/// ending in `*`) matches `offers`.
fn pattern_matches(pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => INDEX_UID.starts_with(prefix),
        None => pattern == INDEX_UID,
    }
}

/// The HMAC algorithms a tenant token may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hs {
    Hs256,
    Hs384,
    Hs512,
}

impl Hs {
    fn from_name(name: &str) -> Option<Hs> {
        match name {
            "HS256" => Some(Hs::Hs256),
            "HS384" => Some(Hs::Hs384),
            "HS512" => Some(Hs::Hs512),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Hs::Hs256 => "HS256",
            Hs::Hs384 => "HS384",
            Hs::Hs512 => "HS512",
        }
    }

    fn sign(self, key: &str, message: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + hmac::digest::KeyInit>(key: &str, message: &[u8]) -> Vec<u8> {
            let mut mac = <M as Mac>::new_from_slice(key.as_bytes()).expect("any key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Hs::Hs256 => mac::<Hmac<Sha256>>(key, message),
            Hs::Hs384 => mac::<Hmac<Sha384>>(key, message),
            Hs::Hs512 => mac::<Hmac<Sha512>>(key, message),
        }
    }

    /// Checks `signature` in constant time.
    fn verify(self, key: &str, message: &[u8], signature: &[u8]) -> bool {
        bool::from(self.sign(key, message).as_slice().ct_eq(signature))
    }
}

/// A JWT part; some SDKs write standard base64 (`+`, `/`) where JWT says URL-safe.
fn decode(part: &str) -> Option<Value> {
    let normalized = part
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let bytes = URL_SAFE_NO_PAD.decode(normalized).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Signs a tenant token with HS256 (tests and tools; the SDKs do the same).
pub fn sign_tenant_token(search_key: &str, claims: &Value) -> String {
    sign_tenant_token_with(Hs::Hs256, search_key, claims)
}

/// Signs a tenant token with `algorithm`.
pub fn sign_tenant_token_with(algorithm: Hs, search_key: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{}","typ":"JWT"}}"#, algorithm.name()));
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signature =
        URL_SAFE_NO_PAD.encode(algorithm.sign(search_key, format!("{header}.{claims}").as_bytes()));
    format!("{header}.{claims}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn access() -> Access {
        Access {
            search_key: Secret::new("search-key"),
            api_key_uid: String::new(),
            restricted: vec![RestrictedKey {
                key: Secret::new("merchant-key"),
                filter: filter::parse("merchant_id = 7").unwrap().unwrap(),
            }],
        }
    }

    #[test]
    fn keys_and_tenant_tokens() {
        let access = access();
        assert_eq!(access.authorize(None).unwrap_err().status, 401);
        assert_eq!(
            access.authorize(Some("Bearer nope")).unwrap_err().status,
            403
        );
        assert_eq!(
            access.authorize(Some("Bearer search-key")).unwrap(),
            Grant::All
        );
        assert!(matches!(
            access.authorize(Some("Bearer merchant-key")).unwrap(),
            Grant::Filtered(_)
        ));

        let token = sign_tenant_token(
            "search-key",
            &json!({"searchRules": {"offers": {"filter": "merchant_id = 3"}}}),
        );
        let grant = access.authorize(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(
            grant.filter().unwrap().to_string(),
            "\"merchant_id\" = \"3\""
        );

        let forged = sign_tenant_token("other-key", &json!({"searchRules": ["*"]}));
        assert_eq!(
            access
                .authorize(Some(&format!("Bearer {forged}")))
                .unwrap_err()
                .status,
            403
        );
        let expired = sign_tenant_token("search-key", &json!({"searchRules": ["*"], "exp": 1}));
        assert_eq!(
            access
                .authorize(Some(&format!("Bearer {expired}")))
                .unwrap_err()
                .status,
            403
        );
        let other_index = sign_tenant_token("search-key", &json!({"searchRules": ["movies"]}));
        assert_eq!(
            access
                .authorize(Some(&format!("Bearer {other_index}")))
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn every_hmac_algorithm_and_index_pattern_is_read_like_meilisearch() {
        let access = access();
        let grant = |token: String| access.authorize(Some(&format!("Bearer {token}")));
        for algorithm in [Hs::Hs256, Hs::Hs384, Hs::Hs512] {
            let token = sign_tenant_token_with(
                algorithm,
                "search-key",
                &json!({"searchRules": ["offers*"]}),
            );
            assert_eq!(grant(token).unwrap(), Grant::All, "{algorithm:?}");
            let forged =
                sign_tenant_token_with(algorithm, "other-key", &json!({"searchRules": ["*"]}));
            assert_eq!(grant(forged).unwrap_err().status, 403, "{algorithm:?}");
        }
        // A token whose header names another algorithm than the one it was signed with.
        let hs512 = sign_tenant_token_with(Hs::Hs512, "search-key", &json!({"searchRules": ["*"]}));
        let relabelled = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            hs512.split_once('.').unwrap().1
        );
        assert_eq!(grant(relabelled).unwrap_err().status, 403);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"searchRules":["*"]}"#)
        );
        assert_eq!(grant(none).unwrap_err().status, 403);

        let filter_of = |rules: Value| {
            grant(sign_tenant_token(
                "search-key",
                &json!({ "searchRules": rules }),
            ))
            .map(|grant| grant.filter().map(ToString::to_string))
        };
        for pattern in ["*", "offers", "offers*", "off*", "o*"] {
            assert_eq!(filter_of(json!([pattern])).unwrap(), None, "{pattern}");
        }
        for pattern in ["movies", "offers_eu*", "offers2", "Offers"] {
            assert_eq!(
                filter_of(json!([pattern])).unwrap_err().status,
                403,
                "{pattern}"
            );
        }
        // The most specific pattern gives the rule: exact, then the longest prefix, `*` last.
        let rules = json!({
            "*": { "filter": "merchant_id = 1" },
            "off*": { "filter": "merchant_id = 2" },
            "offers*": { "filter": "merchant_id = 3" },
        });
        assert_eq!(
            filter_of(rules.clone()).unwrap().as_deref(),
            Some("\"merchant_id\" = \"3\"")
        );
        let mut exact = rules;
        exact["offers"] = json!(null);
        assert_eq!(
            filter_of(exact).unwrap(),
            None,
            "an exact uid with a null rule"
        );
        assert_eq!(
            filter_of(json!({ "*": { "filter": "merchant_id = 1" }, "movies": null }))
                .unwrap()
                .as_deref(),
            Some("\"merchant_id\" = \"1\"")
        );
        assert_eq!(
            filter_of(json!({ "movies*": null })).unwrap_err().status,
            403
        );
    }
}
