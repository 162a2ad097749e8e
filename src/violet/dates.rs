//! Violet's timestamps: parsing the shapes the API sends and formatting the one it
//! accepts in query parameters.
//!
//! Violet documents `2017-06-15T01:01:01+0000` and `...Z`; we also accept `+00:00`,
//! fractional seconds, a space instead of `T`, and a bare timestamp (read as UTC), so
//! a harmless format drift does not fail a whole sync. `null`, an absent field and an
//! empty string mean "no date". Anything else is a decode error that quotes the
//! value: a date we cannot read is never turned into `None` silently.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Parses one Violet timestamp into UTC.
pub fn parse(input: &str) -> Result<DateTime<Utc>, String> {
    let text = input.trim();
    let text = if text.len() > 10 && text.as_bytes()[10] == b' ' {
        // `2017-06-15 01:01:01+0000`: same as with a `T`.
        format!("{}T{}", &text[..10], &text[11..])
    } else {
        text.to_string()
    };
    if let Ok(parsed) = DateTime::parse_from_rfc3339(&text) {
        return Ok(parsed.with_timezone(&Utc));
    }
    // `%z` accepts `+0000` and `+00:00`; `%.f` accepts no or any fractional digits.
    if let Ok(parsed) = DateTime::<FixedOffset>::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(parsed.with_timezone(&Utc));
    }
    if let Ok(parsed) = NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(parsed.and_utc());
    }
    Err(format!(
        "invalid date {input:?}: expected ISO 8601 like 2017-06-15T01:01:01+0000 or 2017-06-15T01:01:01Z"
    ))
}

/// The form Violet's `date_last_modified:min`/`:max` query parameters take.
pub fn format_query(date: &DateTime<Utc>) -> String {
    date.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// `deserialize_with` for `Option<DateTime<Utc>>` fields; pair it with `#[serde(default)]`
/// so an absent field is `None` too.
pub fn optional<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2017, 6, 15, h, m, s).unwrap()
    }

    #[test]
    fn accepts_every_documented_and_tolerated_shape() {
        let expected = utc(1, 1, 1);
        for text in [
            "2017-06-15T01:01:01+0000",
            "2017-06-15T01:01:01Z",
            "2017-06-15T01:01:01+00:00",
            "2017-06-15 01:01:01+0000",
            "2017-06-15T01:01:01",
            " 2017-06-15T01:01:01Z ",
        ] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn keeps_fractional_seconds_and_converts_offsets() {
        let with_millis = parse("2017-06-15T01:01:01.250+0000").unwrap();
        assert_eq!(with_millis.timestamp_subsec_millis(), 250);
        assert_eq!(
            parse("2017-06-15T01:01:01.5Z")
                .unwrap()
                .timestamp_subsec_millis(),
            500
        );
        assert_eq!(parse("2017-06-15T03:01:01+0200"), Ok(utc(1, 1, 1)));
        assert_eq!(parse("2017-06-15T03:01:01.000+02:00"), Ok(utc(1, 1, 1)));
    }

    #[test]
    fn rejects_garbage_with_the_value_quoted() {
        for text in [
            "yesterday",
            "2017-13-45T01:01:01Z",
            "2017-06-15",
            "1497488461",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(text), "{err}");
        }
    }

    #[test]
    fn formats_for_queries() {
        assert_eq!(format_query(&utc(1, 1, 1)), "2017-06-15T01:01:01+0000");
    }

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "optional")]
        at: Option<DateTime<Utc>>,
    }

    #[test]
    fn null_absent_and_empty_are_none_but_bad_values_fail() {
        for json in [r#"{}"#, r#"{"at":null}"#, r#"{"at":""}"#] {
            let holder: Holder = serde_json::from_str(json).unwrap();
            assert_eq!(holder.at, None, "{json}");
        }
        let holder: Holder = serde_json::from_str(r#"{"at":"2017-06-15T01:01:01Z"}"#).unwrap();
        assert_eq!(holder.at, Some(utc(1, 1, 1)));
        assert!(serde_json::from_str::<Holder>(r#"{"at":"soon"}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"at":12}"#).is_err());
    }
}
