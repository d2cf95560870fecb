//! Timestamps as written in the inputs: RFC 3339, ISO dates and date-times, epoch seconds, and
//! the US form of NYC Open Data (`05/01/2022 12:00:03 AM`). Times without an offset are taken as
//! given (naive, compared as if UTC), the same for grid validity and for points, so that
//! comparisons between them are consistent.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Seconds since the epoch, or None when the text is not a time this tool reads.
///
/// ```
/// use wangge::model::parse_time;
/// assert_eq!(parse_time("1970-01-02"), Some(86_400));
/// assert_eq!(parse_time("01/02/1970 12:00:00 AM"), Some(86_400));
/// assert_eq!(parse_time("1970-01-02T00:00:00+08:00"), Some(86_400 - 8 * 3600));
/// assert_eq!(parse_time("soon"), None);
/// ```
#[must_use]
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    const FORMATS: [&str; 6] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
    ];
    for f in FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp());
        }
    }
    for f in ["%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
        }
    }
    None
}

/// RFC 3339 text of epoch seconds (UTC).
#[must_use]
pub fn format_time(t: i64) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}
