//! Who may search, and what they may see.
//!
//! - No key configured (`search.api_key` empty and no `search.restricted_keys`): open.
//! - `Authorization: Bearer <search.api_key>`: everything.
//! - `Authorization: Bearer <restricted key>`: only offers matching that key's filter.
//! - `Authorization: Bearer <tenant token>`: a Meilisearch tenant token (a JWT, HS256,
//!   signed with `search.api_key`, claims `searchRules`, `apiKeyUid`, optional `exp`),
//!   as the official SDKs' `generateTenantToken` makes them; its rule for `offers` (or
//!   `*`) may carry a filter that is ANDed with every search.
//!
//! Keys are compared in constant time and never logged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::INDEX_UID;
use super::error::ApiError;
use super::filter::{self, Filter};
use crate::config::{SearchSettings, Secret};

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
    /// From settings; filters were checked when the settings were validated.
    pub fn from_settings(settings: &SearchSettings) -> anyhow::Result<Access> {
        let mut restricted = Vec::new();
        for (i, key) in settings.restricted_keys.iter().enumerate() {
            let filter = filter::parse(&key.filter)
                .map_err(|err| anyhow::anyhow!("search.restricted_keys[{i}].filter: {err}"))?
                .ok_or_else(|| {
                    anyhow::anyhow!("search.restricted_keys[{i}].filter must not be empty")
                })?;
            restricted.push(RestrictedKey {
                key: key.key.clone(),
                filter,
            });
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
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(invalid("Tenant tokens must be signed with HS256."));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(
                signature
                    .trim_end_matches('=')
                    .replace('+', "-")
                    .replace('/', "_"),
            )
            .map_err(|_| invalid("The tenant token is malformed."))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.search_key.expose().as_bytes())
            .expect("any key length");
        mac.update(
            format!(
                "{}.{}",
                token.split('.').next().unwrap_or(""),
                token.split('.').nth(1).unwrap_or("")
            )
            .as_bytes(),
        );
        mac.verify_slice(&signature)
            .map_err(|_| invalid("The tenant token's signature does not match the search key."))?;
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

/// The grant a `searchRules` claim gives on `offers`: `None` when it gives none.
fn rule_for_offers(rules: &Value) -> Option<Result<Grant, ApiError>> {
    match rules {
        Value::Array(indexes) => indexes
            .iter()
            .any(|uid| {
                uid.as_str()
                    .is_some_and(|uid| uid == INDEX_UID || uid == "*")
            })
            .then_some(Ok(Grant::All)),
        Value::Object(map) => {
            let rule = map.get(INDEX_UID).or_else(|| map.get("*"))?;
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

/// Signs a tenant token (tests and tools; the SDKs do the same).
pub fn sign_tenant_token(search_key: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mut mac = Hmac::<Sha256>::new_from_slice(search_key.as_bytes()).expect("any key length");
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
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
}
