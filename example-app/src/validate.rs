//! Checks on request values shared by several routes: text fields, time zones, dates and
//! numeric ranges. Each failure is a 422 naming the field and what it accepts.

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::error::ApiError;

/// Trimmed text of `min..=max` characters without control characters.
///
/// ```
/// use calories_app::validate::text;
/// assert_eq!(text("name", "  Oats ", 1, 10).unwrap(), "Oats");
/// assert!(text("name", "", 1, 10).is_err());
/// assert!(text("name", "a\u{0}b", 1, 10).is_err());
/// ```
///
/// # Errors
/// 422 naming `field`.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ApiError::validation(format!(
            "{field} must be {min} to {max} characters long (got {len})"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

/// An IANA time zone name such as `Europe/Berlin`.
///
/// ```
/// assert!(calories_app::validate::time_zone("Europe/Berlin").is_ok());
/// assert!(calories_app::validate::time_zone("Mars/Olympus").is_err());
/// ```
///
/// # Errors
/// 422 for a name the time zone database does not know.
pub fn time_zone(name: &str) -> Result<Tz, ApiError> {
    name.trim().parse::<Tz>().map_err(|_| {
        ApiError::validation(format!(
            "time_zone {:?} is not a known IANA time zone name such as \"Europe/Berlin\" or \"UTC\"",
            truncate(name, 64)
        ))
    })
}

/// A `YYYY-MM-DD` date between 2000 and 2100.
///
/// # Errors
/// 422 for anything else.
pub fn date(field: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (MIN_YEAR..=MAX_YEAR).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{field} {:?} must be a date as YYYY-MM-DD between {MIN_YEAR} and {MAX_YEAR}",
                truncate(value, 32)
            ))
        })
}

/// An integer in `range`.
///
/// # Errors
/// 422 naming `field` and the range.
pub fn int_in(
    field: &str,
    value: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::validation(format!(
            "{field} must be between {} and {} (got {value})",
            range.start(),
            range.end()
        )))
    }
}

/// A finite number in `range`.
///
/// # Errors
/// 422 naming `field` and the range.
pub fn number_in(
    field: &str,
    value: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, ApiError> {
    if value.is_finite() && range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::validation(format!(
            "{field} must be a number between {} and {} (got {value})",
            range.start(),
            range.end()
        )))
    }
}

/// The earliest year a date or meal time may have.
pub const MIN_YEAR: i32 = 2000;
/// The latest year a date may have.
pub const MAX_YEAR: i32 = 2100;

/// At most `max` characters of `s`, for echoing user input in messages.
#[must_use]
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
