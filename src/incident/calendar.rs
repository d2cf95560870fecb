//! The working calendar: working hours, weekends, public holidays and make-up working days
//! (调休), in the calendar's time zone (Beijing time by default). Time limits count only working
//! time, on the local clock; instants in and out are Unix seconds (UTC), so a report's offset
//! never changes its due time. Holiday lists cover named years; a due time past them is refused
//! unless `allow_uncovered` is set.

use super::catalogue::Limit;
use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Weekday,
};
use serde::Deserialize;
use std::collections::HashSet;

/// A working calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Working periods of a working day, in order (e.g. 08:30–12:00, 13:30–17:30).
    pub periods: Vec<(NaiveTime, NaiveTime)>,
    pub weekend: Vec<Weekday>,
    pub holidays: HashSet<NaiveDate>,
    pub makeup_workdays: HashSet<NaiveDate>,
    /// The calendar's clock: working hours and days are local to it.
    pub offset: FixedOffset,
    /// Its name as configured (`Asia/Shanghai`, `+08:00`).
    pub time_zone: String,
    /// Years whose holidays and make-up days are listed (from the State Council notice).
    pub years: Vec<i32>,
    /// Compute due times past the covered years anyway (weekends only there).
    pub allow_uncovered: bool,
}

/// A due time the calendar cannot give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "the due time falls in {year}, past the working calendar's years ({covered}): add {year}'s holidays \
         from the State Council notice to the calendar (or set allow_uncovered = true)"
    )]
    Uncovered { year: i32, covered: String },
    #[error("time {0} is out of range")]
    OutOfRange(i64),
}

#[derive(Deserialize)]
struct Raw {
    morning: [String; 2],
    afternoon: [String; 2],
    #[serde(default)]
    weekend: Vec<String>,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    makeup_workdays: Vec<String>,
    #[serde(default = "default_zone")]
    time_zone: String,
    /// Years covered; default: the years of the holiday list.
    #[serde(default)]
    years: Vec<i32>,
    #[serde(default)]
    allow_uncovered: bool,
}

fn default_zone() -> String {
    "Asia/Shanghai".into()
}

/// Time zones with one offset all year (China has no daylight saving time), or `±HH:MM`.
fn offset_of(zone: &str) -> Result<FixedOffset, String> {
    let hours = match zone {
        "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Harbin" | "Asia/Hong_Kong" | "Asia/Macau"
        | "Asia/Taipei" | "PRC" => Some(8),
        "Asia/Urumqi" | "Asia/Kashgar" => Some(6),
        "UTC" | "Etc/UTC" => Some(0),
        _ => None,
    };
    if let Some(h) = hours {
        return FixedOffset::east_opt(h * 3600).ok_or_else(|| zone.to_string());
    }
    let parsed = (|| {
        let (sign, rest) = match zone.as_bytes().first()? {
            b'+' => (1, &zone[1..]),
            b'-' => (-1, &zone[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':')?;
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 14 && m < 60).then(|| FixedOffset::east_opt(sign * (h * 3600 + m * 60)))?
    })();
    parsed.ok_or_else(|| {
        format!(
            "calendar: time_zone {zone:?}: expected Asia/Shanghai (the default), another zone \
             without daylight saving time, or an offset such as +08:00"
        )
    })
}

/// The default calendar text.
pub const DEFAULT_CALENDAR: &str = include_str!("../../data/calendar.toml");

impl Calendar {
    /// Parse from TOML.
    ///
    /// # Errors
    /// A message naming the field that is wrong.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let r: Raw = toml::from_str(text).map_err(|e| format!("calendar: {e}"))?;
        let t = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .map_err(|_| format!("calendar: time {s:?}: expected HH:MM"))
        };
        let d = |s: &String| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format!("calendar: date {s:?}: expected YYYY-MM-DD"))
        };
        let wd = |s: &String| -> Result<Weekday, String> {
            s.parse::<Weekday>()
                .map_err(|_| format!("calendar: weekday {s:?}"))
        };
        let periods = vec![
            (t(&r.morning[0])?, t(&r.morning[1])?),
            (t(&r.afternoon[0])?, t(&r.afternoon[1])?),
        ];
        if periods[0].0 >= periods[0].1
            || periods[0].1 > periods[1].0
            || periods[1].0 >= periods[1].1
        {
            return Err("calendar: periods must be increasing (morning before afternoon)".into());
        }
        let holidays: HashSet<NaiveDate> = r.holidays.iter().map(d).collect::<Result<_, _>>()?;
        let mut years = r.years.clone();
        if years.is_empty() {
            years = holidays.iter().map(Datelike::year).collect();
        }
        years.sort_unstable();
        years.dedup();
        Ok(Calendar {
            periods,
            weekend: r.weekend.iter().map(wd).collect::<Result<_, _>>()?,
            holidays,
            makeup_workdays: r.makeup_workdays.iter().map(d).collect::<Result<_, _>>()?,
            offset: offset_of(&r.time_zone)?,
            time_zone: r.time_zone,
            years,
            allow_uncovered: r.allow_uncovered,
        })
    }

    /// The default calendar.
    ///
    /// # Panics
    /// Never: the shipped calendar is checked by a test.
    #[must_use]
    pub fn default_calendar() -> Self {
        Self::from_toml(DEFAULT_CALENDAR)
            .unwrap_or_else(|e| unreachable!("shipped calendar is valid: {e}"))
    }

    /// The due time of a case that starts at `start` (Unix seconds): `limit` of working time
    /// on the calendar's local clock.
    ///
    /// # Errors
    /// The due time falls past the covered years (unless `allow_uncovered`), or the time is out
    /// of range.
    pub fn due_at(&self, start: i64, limit: Limit) -> Result<i64, CalendarError> {
        let local = DateTime::from_timestamp(start, 0)
            .ok_or(CalendarError::OutOfRange(start))?
            .with_timezone(&self.offset)
            .naive_local();
        let due = self.due(local, limit);
        self.check_covered(due.year())?;
        due.and_local_timezone(self.offset)
            .single()
            .map(|t| t.timestamp())
            .ok_or(CalendarError::OutOfRange(start))
    }

    /// Refuse a year past the calendar's last (unless `allow_uncovered`). Years before its
    /// first are allowed, with weekends only, so that historical reports can still be imported
    /// (their due times are then only as right as the weekends).
    ///
    /// # Errors
    /// [`CalendarError::Uncovered`].
    pub fn check_covered(&self, year: i32) -> Result<(), CalendarError> {
        let past_last = self.years.last().is_none_or(|last| year > *last);
        if self.allow_uncovered || self.years.contains(&year) || !past_last {
            return Ok(());
        }
        Err(CalendarError::Uncovered {
            year,
            covered: self.covered_text(),
        })
    }

    /// The covered years as text (`2025–2026`).
    #[must_use]
    pub fn covered_text(&self) -> String {
        match (self.years.first(), self.years.last()) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a}–{b}"),
            _ => "none".into(),
        }
    }

    /// The warning to log from 1 December on when next year is not covered (`None` otherwise).
    #[must_use]
    pub fn coverage_warning(&self, now: i64) -> Option<String> {
        let today = DateTime::from_timestamp(now, 0)?
            .with_timezone(&self.offset)
            .date_naive();
        let next = today.year() + 1;
        let late = today.month() == 12;
        let missing = !self.years.contains(&today.year());
        ((late && !self.years.contains(&next)) || missing).then(|| {
            format!(
                "the working calendar covers {}: add {} from the State Council notice before \
                 due times reach it",
                self.covered_text(),
                if missing { today.year() } else { next }
            )
        })
    }

    /// True on a working day.
    #[must_use]
    pub fn is_workday(&self, d: NaiveDate) -> bool {
        if self.makeup_workdays.contains(&d) {
            return true;
        }
        !self.holidays.contains(&d) && !self.weekend.contains(&d.weekday())
    }

    /// The due time: `limit` of working time after `start`.
    #[must_use]
    pub fn due(&self, start: NaiveDateTime, limit: Limit) -> NaiveDateTime {
        match limit {
            Limit::WorkingHours(h) => self.add_working(start, Duration::hours(i64::from(h))),
            Limit::WorkingDays(n) => {
                // the end of the n-th working day after the start day (the start day counts if
                // the case arrives before its working time ends)
                let mut day = start.date();
                let mut left = n;
                let end_of_day = self.periods.last().map_or(NaiveTime::MIN, |p| p.1);
                if !(self.is_workday(day) && start.time() < end_of_day) {
                    day = self.next_workday(day);
                }
                loop {
                    left -= 1;
                    if left == 0 {
                        return day.and_time(end_of_day);
                    }
                    day = self.next_workday(day);
                }
            }
        }
    }

    fn next_workday(&self, mut d: NaiveDate) -> NaiveDate {
        for _ in 0..400 {
            d = d.succ_opt().unwrap_or(d);
            if self.is_workday(d) {
                return d;
            }
        }
        d
    }

    /// The working time between two local instants (zero when `b` is not after `a`).
    #[must_use]
    pub fn working_between(&self, a: NaiveDateTime, b: NaiveDateTime) -> Duration {
        let mut total = Duration::zero();
        let mut day = a.date();
        for _ in 0..5000 {
            if day > b.date() {
                break;
            }
            if self.is_workday(day) {
                for &(p, q) in &self.periods {
                    let from = day.and_time(p).max(a);
                    let to = day.and_time(q).min(b);
                    if to > from {
                        total += to - from;
                    }
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
        total
    }

    /// The due time of a case suspended (挂账) at `suspended` and resumed at `resumed` (Unix
    /// seconds): the working time it had left when suspended, counted from the resumption — the
    /// clock stops while a case is suspended. A case already overdue when suspended keeps its
    /// due time.
    ///
    /// # Errors
    /// The new due time falls past the covered years, or a time is out of range.
    pub fn resumed_due(
        &self,
        due: i64,
        suspended: i64,
        resumed: i64,
    ) -> Result<i64, CalendarError> {
        let local = |t: i64| {
            DateTime::from_timestamp(t, 0)
                .map(|d| d.with_timezone(&self.offset).naive_local())
                .ok_or(CalendarError::OutOfRange(t))
        };
        if due <= suspended {
            return Ok(due);
        }
        let left = self.working_between(local(suspended)?, local(due)?);
        let new = self.add_working(local(resumed)?, left);
        self.check_covered(new.year())?;
        new.and_local_timezone(self.offset)
            .single()
            .map(|t| t.timestamp())
            .ok_or(CalendarError::OutOfRange(resumed))
    }

    /// Add working time to an instant.
    #[must_use]
    pub fn add_working(&self, start: NaiveDateTime, mut left: Duration) -> NaiveDateTime {
        let mut day = start.date();
        let mut now = start.time();
        for _ in 0..5000 {
            if self.is_workday(day) {
                for &(a, b) in &self.periods {
                    if now >= b {
                        continue;
                    }
                    let from = now.max(a);
                    let avail = b - from;
                    if left <= avail {
                        return day.and_time(from) + left;
                    }
                    left -= avail;
                    now = b;
                }
            }
            day = day.succ_opt().unwrap_or(day);
            now = NaiveTime::MIN;
        }
        day.and_time(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn working_time_between_two_instants() {
        let c = Calendar::default_calendar();
        // Friday 16:30 → Monday 11:30: 1 h on Friday, 3 h on Monday
        assert_eq!(
            c.working_between(at("2025-03-07 16:30"), at("2025-03-10 11:30")),
            Duration::hours(4)
        );
        assert_eq!(
            c.working_between(at("2025-03-10 11:30"), at("2025-03-07 16:30")),
            Duration::zero()
        );
        // National Day week 2026 (10-01..07) holds no working time; 10-10 (Saturday) is a workday
        assert_eq!(
            c.working_between(at("2026-10-01 00:00"), at("2026-10-08 00:00")),
            Duration::zero()
        );
    }

    #[test]
    fn working_hours_skip_lunch_nights_and_weekends() {
        let c = Calendar::default_calendar();
        // Friday 2025-03-07 16:30 + 4 working hours: 1 h Friday, then Monday 08:30 + 3 h = 11:30
        assert_eq!(
            c.due(at("2025-03-07 16:30"), Limit::WorkingHours(4)),
            at("2025-03-10 11:30")
        );
        // across lunch: 11:00 + 2 h = 14:30
        assert_eq!(
            c.due(at("2025-03-10 11:00"), Limit::WorkingHours(2)),
            at("2025-03-10 14:30")
        );
    }

    /// Unix seconds of an RFC 3339 time.
    fn unix(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn working_time_is_beijing_time_whatever_the_offset() {
        let c = Calendar::default_calendar();
        // the audit's case: 16:00 Beijing on 30 September 2025, 4 working hours → 1.5 h that
        // day, National Day, then 2.5 h on 9 October: 11:00 Beijing
        let want = unix("2025-10-09T11:00:00+08:00");
        for start in [
            "2025-09-30T16:00:00+08:00",
            "2025-09-30T08:00:00Z",
            "2025-09-30T04:00:00-04:00",
        ] {
            assert_eq!(
                c.due_at(unix(start), Limit::WorkingHours(4)).unwrap(),
                want,
                "{start}"
            );
        }
    }

    #[test]
    fn the_2026_calendar() {
        let c = Calendar::default_calendar();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for (d, work) in [
            (day(2026, 1, 2), false),
            (day(2026, 1, 4), true),
            (day(2026, 2, 14), true),
            (day(2026, 2, 23), false),
            (day(2026, 2, 28), true),
            (day(2026, 5, 5), false),
            (day(2026, 5, 9), true),
            (day(2026, 6, 19), false),
            (day(2026, 9, 20), true),
            (day(2026, 9, 25), false),
            (day(2026, 10, 7), false),
            (day(2026, 10, 8), true),
            (day(2026, 10, 10), true),
        ] {
            assert_eq!(c.is_workday(d), work, "{d}");
        }
        // opened on the evening of 30 September 2026, 1 working day: National Day is 1–7
        // October, so the end of Thursday 8 October
        assert_eq!(
            c.due_at(unix("2026-09-30T19:00:00+08:00"), Limit::WorkingDays(1))
                .unwrap(),
            unix("2026-10-08T17:30:00+08:00")
        );
    }

    #[test]
    fn a_due_time_past_the_covered_years_is_refused() {
        let mut c = Calendar::default_calendar();
        assert_eq!(c.covered_text(), "2025–2026");
        let e = c
            .due_at(unix("2026-12-31T17:00:00+08:00"), Limit::WorkingDays(3))
            .unwrap_err();
        assert!(
            matches!(e, CalendarError::Uncovered { year: 2027, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("2027"), "{e}");
        c.allow_uncovered = true;
        // with the setting: weekends only (31 December counts, then Friday 1 January 2027,
        // then Monday 4 January)
        assert_eq!(
            c.due_at(unix("2026-12-31T17:00:00+08:00"), Limit::WorkingDays(3))
                .unwrap(),
            unix("2027-01-04T17:30:00+08:00")
        );
        // the service's warning from 1 December
        let c = Calendar::default_calendar();
        assert!(
            c.coverage_warning(unix("2026-11-30T12:00:00+08:00"))
                .is_none()
        );
        let w = c
            .coverage_warning(unix("2026-12-01T09:00:00+08:00"))
            .unwrap();
        assert!(w.contains("2027"), "{w}");
    }

    #[test]
    fn time_zones_are_named_or_offsets() {
        let cal = |z: &str| {
            Calendar::from_toml(&format!(
                "time_zone = {z:?}\nmorning = [\"08:30\", \"12:00\"]\nafternoon = [\"13:30\", \"17:30\"]"
            ))
        };
        assert_eq!(cal("+08:00").unwrap().offset.local_minus_utc(), 8 * 3600);
        assert_eq!(cal("UTC").unwrap().offset.local_minus_utc(), 0);
        let e = cal("Europe/Berlin").unwrap_err();
        assert!(
            e.contains("time_zone") && e.contains("Europe/Berlin"),
            "{e}"
        );
    }

    #[test]
    fn holidays_and_makeup_days() {
        let c = Calendar::default_calendar();
        // National Day 2025: 1–8 October off; Saturday 11 October is a make-up working day
        assert!(!c.is_workday(NaiveDate::from_ymd_opt(2025, 10, 3).unwrap()));
        assert!(c.is_workday(NaiveDate::from_ymd_opt(2025, 10, 11).unwrap()));
        // reported on 30 September evening, 1 working day → end of 9 October
        assert_eq!(
            c.due(at("2025-09-30 20:00"), Limit::WorkingDays(1)),
            at("2025-10-09 17:30")
        );
    }
}
