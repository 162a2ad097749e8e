//! Strict parsing of the admin API's path ids and query strings, so every bad input is
//! a 400 that names the parameter and says what is expected (axum's own rejections
//! answer in plain text).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::AdminError;

/// A query string checked against the parameters a route accepts.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parses `raw`; an unknown or repeated parameter is an error.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, AdminError> {
        let mut values = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                return Err(AdminError::bad_request(format!(
                    "unknown parameter {name:?}; this route accepts: {}",
                    allowed.join(", ")
                )));
            }
            if values
                .insert(name.to_string(), value.trim().to_string())
                .is_some()
            {
                return Err(AdminError::bad_request(format!(
                    "parameter {name:?} is given twice"
                )));
            }
        }
        Ok(Params { values })
    }

    /// The value, `None` when absent or empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// A value that must be one of `choices` (case-insensitive), returned lowercased.
    pub fn choice(&self, name: &str, choices: &[&str]) -> Result<Option<String>, AdminError> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        let value = value.to_ascii_lowercase();
        if choices.contains(&value.as_str()) {
            Ok(Some(value))
        } else {
            Err(AdminError::bad_request(format!(
                "{name} must be one of {}, not {value:?}",
                choices.join(", ")
            )))
        }
    }

    /// A positive id.
    pub fn id(&self, name: &str) -> Result<Option<i64>, AdminError> {
        self.text(name)
            .map(|value| parse_id(value, name))
            .transpose()
    }

    /// `limit`: `default` when absent, else 1..=`max`.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, AdminError> {
        let Some(value) = self.text("limit") else {
            return Ok(default);
        };
        match value.parse::<i64>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(AdminError::bad_request(format!(
                "limit must be a whole number from 1 to {max}, not {value:?}"
            ))),
        }
    }

    /// A point in time: RFC 3339 (`2025-01-31T12:00:00Z`) or an age (`90s`, `15m`, `2h`, `7d`).
    pub fn since(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AdminError> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        parse_since(value, now).map(Some).ok_or_else(|| {
            AdminError::bad_request(format!(
                "{name} must be an RFC 3339 time (2025-01-31T12:00:00Z) or an age such as 90s, 15m, 2h or 7d, not {value:?}"
            ))
        })
    }
}

/// A positive integer id from a path segment or parameter.
pub fn parse_id(text: &str, what: &str) -> Result<i64, AdminError> {
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AdminError::bad_request(format!(
            "{what} must be a positive whole number, not {text:?}"
        ))),
    }
}

fn parse_since(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Some(time.with_timezone(&Utc));
    }
    let split = value.len().checked_sub(1)?;
    let (number, unit) = value.split_at(split);
    let number: i64 = number.parse().ok().filter(|n| *n >= 0 && *n <= 100_000)?;
    let age = match unit {
        "s" => Duration::seconds(number),
        "m" => Duration::minutes(number),
        "h" => Duration::hours(number),
        "d" => Duration::days(number),
        _ => return None,
    };
    Some(now - age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(Params::parse(Some("limit=5"), &["limit"]).is_ok());
        assert!(Params::parse(Some("lmit=5"), &["limit"]).is_err());
        assert!(Params::parse(Some("limit=5&limit=6"), &["limit"]).is_err());
    }

    #[test]
    fn limits_stay_in_range() {
        let params = |raw: &str| Params::parse(Some(raw), &["limit"]).unwrap();
        assert_eq!(params("").limit(50, 500).unwrap(), 50);
        assert_eq!(params("limit=500").limit(50, 500).unwrap(), 500);
        assert!(params("limit=0").limit(50, 500).is_err());
        assert!(params("limit=501").limit(50, 500).is_err());
        assert!(params("limit=ten").limit(50, 500).is_err());
    }

    #[test]
    fn since_takes_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2025-01-31T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_since("2h", now), Some(now - Duration::hours(2)));
        assert_eq!(
            parse_since("2025-01-30T12:00:00Z", now),
            Some(now - Duration::days(1))
        );
        assert_eq!(parse_since("2w", now), None);
        assert_eq!(parse_since("yesterday", now), None);
        assert_eq!(parse_since("", now), None);
    }

    #[test]
    fn ids_are_positive() {
        assert_eq!(parse_id("42", "id").unwrap(), 42);
        assert!(parse_id("0", "id").is_err());
        assert!(parse_id("-3", "id").is_err());
        assert!(parse_id("abc", "id").is_err());
    }
}
