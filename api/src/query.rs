//! Numeric query parameters, read the same way on every route: a value that is not a
//! whole number is refused (400 `BAD_REQUEST`, naming the parameter), and a number out
//! of range is clamped rather than refused, so `limit=99999999999` means "as many as
//! allowed" everywhere.

use axum::http::StatusCode;

use crate::error::{ApiError, ErrorCode};

/// `value` as a whole number; digits beyond `u64` saturate to `u64::MAX` (they are still a
/// number, only a large one).
///
/// # Errors
/// 400 `BAD_REQUEST` naming `name` when `value` is empty or not all ASCII digits (signs,
/// spaces, fractions and exponents included).
pub fn whole_number(name: &str, value: &str) -> Result<u64, ApiError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("query parameter {name} must be a whole number, got {value:?}"),
        )
        .with_detail("parameter", serde_json::Value::String(name.to_owned())));
    }
    Ok(value.parse::<u64>().unwrap_or(u64::MAX))
}

/// A page size: `default` when absent, else [`whole_number`] clamped to `[1, max]`.
///
/// # Errors
/// 400 `BAD_REQUEST` naming `name` for a value that is not a whole number.
pub fn clamped_limit(
    name: &str,
    value: Option<&str>,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match value {
        None => Ok(default.clamp(1, max.max(1))),
        Some(v) => Ok(whole_number(name, v)?.clamp(1, max.max(1))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// Huge values clamp to the maximum, zero to one, absence is the default; anything
    /// that is not digits is a 400 that names the parameter.
    #[test]
    fn limits_clamp_or_refuse() {
        assert_eq!(clamped_limit("limit", Some("99999999999"), 100, 1000).unwrap(), 1000);
        assert_eq!(
            clamped_limit("limit", Some("999999999999999999999999"), 100, 1000).unwrap(),
            1000
        );
        assert_eq!(clamped_limit("limit", Some("0"), 100, 1000).unwrap(), 1);
        assert_eq!(clamped_limit("limit", Some("25"), 100, 1000).unwrap(), 25);
        assert_eq!(clamped_limit("limit", None, 100, 1000).unwrap(), 100);
        for bad in ["", "-1", "+1", "1.5", "1e3", " 1", "ten"] {
            let e = clamped_limit("limit", Some(bad), 100, 1000).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert_eq!(e.code.as_str(), "BAD_REQUEST");
            assert!(e.message.contains("limit"), "{}", e.message);
            assert_eq!(e.details["parameter"], "limit");
        }
        assert_eq!(whole_number("offset", "18446744073709551616").unwrap(), u64::MAX);
    }
}
