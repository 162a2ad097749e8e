//! A string that must never reach a log line, an error message or `check-config` output.
//!
//! `Debug`, `Display` and `Serialize` all print `[redacted]`; the value is read only
//! through [`Secret::expose`], which makes every use of a secret easy to find.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { "[redacted]" }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

/// Only strings are secrets. Anything else is refused with an error that does not show
/// the value: serde's own "invalid type: found unsigned int `1234`" would print an
/// all-digit token or password into the configuration error (and the journal). Numbers
/// are not converted either, since `007` would silently become `7`.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `any`, not `string`: some deserializers (serde_json) reject a number for a
        // string themselves, with the value in the message, before the visitor sees it.
        deserializer.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn refuse<E: serde::de::Error>(found: &str) -> E {
        E::custom(format!(
            "expected a string, found {found} (not shown: secret values are never printed); \
             quote it, e.g. token = \"...\" in TOML or VAR='\"...\"' in the environment"
        ))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
        Ok(Secret(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Secret, E> {
        Ok(Secret(value))
    }

    fn visit_char<E: serde::de::Error>(self, value: char) -> Result<Secret, E> {
        Ok(Secret(value.to_string()))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
        Err(Self::refuse("a boolean"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Secret, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Secret, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
        Err(Self::refuse("a number"))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Secret, E> {
        Err(Self::refuse("bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_redact() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "\"[redacted]\"");
        assert_eq!(secret.to_string(), "[redacted]");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn a_value_of_another_type_is_refused_without_being_shown() {
        for value in ["918273645546", "-918273645546", "9182736455.46", "true"] {
            let err = serde_json::from_str::<Secret>(value)
                .unwrap_err()
                .to_string();
            assert!(err.contains("expected a string"), "{err}");
            assert!(!err.contains(value), "{err}");
        }
        let secret: Secret = serde_json::from_str("\"918273645546\"").unwrap();
        assert_eq!(secret.expose(), "918273645546");
    }

    #[test]
    // Jail's closure must return figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    fn a_numeric_secret_in_the_environment_is_not_echoed() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CM_TEST_TOKEN", "918273645546");
            let err = figment::Figment::new()
                .merge(figment::providers::Env::prefixed("CM_TEST_"))
                .extract::<std::collections::BTreeMap<String, Secret>>()
                .unwrap_err()
                .to_string();
            assert!(!err.contains("918273645546"), "{err}");
            jail.set_env("CM_TEST_TOKEN", "\"918273645546\"");
            let quoted = figment::Figment::new()
                .merge(figment::providers::Env::prefixed("CM_TEST_"))
                .extract::<std::collections::BTreeMap<String, Secret>>()?;
            assert_eq!(quoted["token"].expose(), "918273645546");
            Ok(())
        });
    }

    #[test]
    fn empty_secret_shows_as_empty() {
        assert_eq!(Secret::default().to_string(), "");
    }
}
