//! `wangge calendar check`: what a working calendar covers — its time zone, the years whose
//! holidays and make-up days are listed, each year's counts — and what is wrong or missing
//! (a make-up day that is not a weekend day, a holiday outside the listed years, next year
//! missing from 1 December on). Exit 1 when today's year is not covered.

use crate::incident::Calendar;
use anyhow::{Context, Result};
use chrono::Datelike;
use std::path::PathBuf;

/// Arguments of `wangge calendar`.
#[derive(Debug, clap::Subcommand)]
pub enum CalendarCmd {
    /// Show the calendar's coverage and problems (exit 1 when this year is not covered).
    Check {
        /// A calendar TOML file (default: the shipped data/calendar.toml).
        #[arg(long)]
        calendar: Option<PathBuf>,
        /// Check as of this date (YYYY-MM-DD; default: today, Beijing time).
        #[arg(long)]
        today: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// The calendar file given, or the built-in one.
fn read_calendar(calendar: Option<&std::path::Path>) -> Result<Calendar> {
    Ok(match calendar {
        Some(p) => Calendar::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Calendar::default_calendar(),
    })
}

/// Noon of `--today` (YYYY-MM-DD) in the calendar's time zone, or now.
fn noon_of(today: Option<&str>, cal: &Calendar) -> Result<i64> {
    Ok(match today {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .with_context(|| format!("--today {d:?}: expected YYYY-MM-DD"))?
            .and_hms_opt(12, 0, 0)
            .and_then(|t| t.and_local_timezone(cal.offset).single())
            .map(|t| t.timestamp())
            .with_context(|| format!("--today {d:?}"))?,
        None => chrono::Utc::now().timestamp(),
    })
}

/// What is wrong in a calendar: make-up working days that are not weekend days, dates listed
/// in years the calendar does not declare.
fn problems_of(cal: &Calendar) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    for d in &cal.makeup_workdays {
        if !cal.weekend.contains(&d.weekday()) {
            problems.push(format!("make-up working day {d} is not a weekend day"));
        }
    }
    let mut listed: Vec<_> = cal.holidays.iter().chain(&cal.makeup_workdays).collect();
    listed.sort();
    for d in listed {
        if !cal.years.contains(&d.year()) {
            problems.push(format!("{d} is listed but {} is not in years", d.year()));
        }
    }
    problems.sort();
    problems
}

/// Run `wangge calendar …`.
///
/// # Errors
/// The file cannot be read or parsed, or the date is bad; exit 1 when this year is uncovered.
pub fn run(c: &CalendarCmd) -> Result<()> {
    let CalendarCmd::Check {
        calendar,
        today,
        json,
    } = c;
    let cal = read_calendar(calendar.as_deref())?;
    let now = noon_of(today.as_deref(), &cal)?;
    let problems = problems_of(&cal);
    let warning = cal.coverage_warning(now);
    let this_year = chrono::DateTime::from_timestamp(now, 0)
        .map(|t| t.with_timezone(&cal.offset).year())
        .unwrap_or_default();
    let years: Vec<serde_json::Value> = cal
        .years
        .iter()
        .map(|y| {
            serde_json::json!({
                "year": y,
                "holidays": cal.holidays.iter().filter(|d| d.year() == *y).count(),
                "makeup_workdays": cal.makeup_workdays.iter().filter(|d| d.year() == *y).count(),
            })
        })
        .collect();
    if *json {
        println!(
            "{}",
            serde_json::json!({
                "time_zone": cal.time_zone,
                "utc_offset": cal.offset.to_string(),
                "years": years,
                "covered": cal.covered_text(),
                "allow_uncovered": cal.allow_uncovered,
                "warning": warning,
                "problems": problems,
            })
        );
    } else {
        println!("time zone: {} (UTC{})", cal.time_zone, cal.offset);
        for y in &years {
            println!(
                "{}: {} holidays, {} make-up working days",
                y["year"], y["holidays"], y["makeup_workdays"]
            );
        }
        println!("covered: {}", cal.covered_text());
        if let Some(w) = &warning {
            println!("warning: {w}");
        }
        for p in &problems {
            println!("problem: {p}");
        }
    }
    if !cal.allow_uncovered && !cal.years.contains(&this_year) {
        anyhow::bail!(
            "the working calendar does not cover {this_year} (it covers {})",
            cal.covered_text()
        );
    }
    Ok(())
}
