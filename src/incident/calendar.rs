//! The working calendar: working hours, weekends, public holidays and make-up working days
//! (调休). Time limits count only working time.

use super::catalogue::Limit;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
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
        Ok(Calendar {
            periods,
            weekend: r.weekend.iter().map(wd).collect::<Result<_, _>>()?,
            holidays: r.holidays.iter().map(d).collect::<Result<_, _>>()?,
            makeup_workdays: r.makeup_workdays.iter().map(d).collect::<Result<_, _>>()?,
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
