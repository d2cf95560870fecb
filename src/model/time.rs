//! Timestamps as written in the inputs: RFC 3339, ISO dates and date-times, epoch seconds, and
//! the US form of NYC Open Data (`05/01/2022 12:00:03 AM`). [`parse_time`] takes times without an
//! offset as given (naive, compared as if UTC), the same for grid validity and for points, so that
//! comparisons between them are consistent; [`parse_time_in`] reads them on a local clock (the
//! working calendar's: Beijing time by default), as the case loop does.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};

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
    parse_time_at(s, 0)
}

/// [`parse_time`], with times and dates that carry no offset read on the clock of `zone`
/// (a time with an offset, or epoch seconds, is the same instant whatever the zone).
///
/// ```
/// use chrono::FixedOffset;
/// use wangge::model::parse_time_in;
/// let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
/// assert_eq!(parse_time_in("2025-09-30 16:00", beijing), parse_time_in("2025-09-30T16:00:00+08:00", beijing));
/// ```
#[must_use]
pub fn parse_time_in(s: &str, zone: FixedOffset) -> Option<i64> {
    parse_time_at(s, i64::from(zone.local_minus_utc()))
}

fn parse_time_at(s: &str, offset_seconds: i64) -> Option<i64> {
    let local = |t: i64| t - offset_seconds;
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
            return Some(local(t.and_utc().timestamp()));
        }
    }
    for f in ["%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| local(t.and_utc().timestamp()));
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
