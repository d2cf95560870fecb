//! `wangge incidents import|transition|escalate` and `wangge stats`: the case loop on a
//! JSON-lines case file (one case per line, history included), until a store holds them.

use crate::geom::crs::{Crs, Transformer};
use crate::incident::stats::{By, figures, h3_counts};
use crate::incident::workflow::duplicate_hint;
use crate::incident::{Action, Calendar, Case, Catalogue, Source};
use crate::io::geojson::read_zones;
use crate::io::write::write_atomic;
use crate::locate::{Located, Locator};
use crate::model::parse_time_in;
use anyhow::{Context, Result, anyhow, bail};
use geo::Coord;
use std::path::{Path, PathBuf};

/// Catalogue and calendar options shared by the incident commands.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// Event catalogue (TOML); default: the GB/T 30428-based catalogue in data/catalogue.toml.
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// Working calendar (TOML); default: data/calendar.toml.
    #[arg(long)]
    pub calendar: Option<PathBuf>,
}

impl Config {
    fn load(&self) -> Result<(Catalogue, Calendar)> {
        let cat = match &self.catalogue {
            Some(p) => Catalogue::from_toml(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?,
            )
            .with_context(|| p.display().to_string())?,
            None => Catalogue::default_catalogue(),
        };
        let cal = match &self.calendar {
            Some(p) => Calendar::from_toml(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?,
            )
            .map_err(|e| anyhow!("{}: {e}", p.display()))?,
            None => Calendar::default_calendar(),
        };
        Ok((cat, cal))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum IncidentCmd {
    /// Turn reports (CSV rows) into located cases.
    Import(ImportArgs),
    /// Apply one action to one case.
    Transition(TransitionArgs),
    /// Escalate every case still open past its due time.
    Escalate(EscalateArgs),
}

/// Arguments of `wangge incidents import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub grids: PathBuf,
    /// Reports (CSV).
    #[arg(long)]
    pub points: PathBuf,
    #[arg(long, default_value = "id")]
    pub id_field: String,
    #[arg(long, default_value = "type")]
    pub category_field: String,
    #[arg(long, default_value = "created")]
    pub time_field: String,
    #[arg(long, default_value = "lon")]
    pub lon_field: String,
    #[arg(long, default_value = "lat")]
    pub lat_field: String,
    /// Column with a description (optional).
    #[arg(long, default_value = "descriptor")]
    pub description_field: String,
    /// Source of every report.
    #[arg(long, default_value = "hotline")]
    pub source: String,
    /// CRS of the coordinates.
    #[arg(long, default_value = "wgs84")]
    pub crs: String,
    /// Accept and open (立案) each report on arrival, starting its clock.
    #[arg(long)]
    pub open: bool,
    /// Duplicate hint: an open case of the same category within this many metres …
    #[arg(long, default_value_t = 50.0)]
    pub duplicate_m: f64,
    /// … and this many hours.
    #[arg(long, default_value_t = 24.0)]
    pub duplicate_hours: f64,
    #[command(flatten)]
    pub config: Config,
    /// Make a bad row fatal.
    #[arg(long)]
    pub strict: bool,
    /// Output case file (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `wangge incidents transition`.
#[derive(Debug, clap::Args)]
pub struct TransitionArgs {
    #[arg(long)]
    pub cases: PathBuf,
    #[arg(long)]
    pub id: String,
    /// accept, reject, open, dispatch, handle, verify, close, evaluate, return, extend, suspend, resume, void
    #[arg(long)]
    pub action: String,
    #[arg(long)]
    pub who: String,
    /// When (default: now).
    #[arg(long)]
    pub at: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub unit: Option<String>,
    /// New due time for `extend`.
    #[arg(long)]
    pub until: Option<String>,
    /// Verification result for `verify` (default true).
    #[arg(long)]
    pub passed: Option<bool>,
    /// Satisfaction 1–5 for `evaluate`.
    #[arg(long)]
    pub score: Option<u8>,
    #[command(flatten)]
    pub config: Config,
}

/// Arguments of `wangge incidents escalate`.
#[derive(Debug, clap::Args)]
pub struct EscalateArgs {
    #[arg(long)]
    pub cases: PathBuf,
    /// The time to judge by (default: now).
    #[arg(long)]
    pub now: Option<String>,
    #[command(flatten)]
    pub config: Config,
}

/// Grid code → the grid worker's name, from the `worker_name` (or `worker`) property of a grid
/// layer (as `export --layer grids` writes it).
///
/// # Errors
/// An unreadable layer, or one that names no worker at all.
fn workers_of(grids: &std::path::Path) -> Result<std::collections::BTreeMap<String, String>> {
    let feats = crate::io::geojson::read_features(grids)?;
    let m: std::collections::BTreeMap<String, String> = feats
        .iter()
        .filter_map(|f| {
            let code = f
                .properties
                .get("code")
                .and_then(crate::io::geojson::value_text)?;
            let w = ["worker_name", "worker"].iter().find_map(|k| {
                f.properties
                    .get(*k)
                    .and_then(crate::io::geojson::value_text)
            })?;
            Some((code, w))
        })
        .collect();
    if m.is_empty() {
        bail!(
            "{}: --by worker needs the grids' workers: no feature has a `worker_name` \
             (export the grids from the store with `wangge export --layer grids`)",
            grids.display()
        );
    }
    Ok(m)
}

/// Arguments of `wangge stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Grid layer (to fill grid/community of cases that lack them).
    #[arg(long)]
    pub grids: PathBuf,
    /// Cases: a case file (.jsonl) or a CSV of reports.
    #[arg(long)]
    pub incidents: PathBuf,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, default_value = "grid")]
    pub by: String,
    /// H3 resolution of the heat-map counts.
    #[arg(long, default_value_t = 9)]
    pub h3_resolution: u8,
    /// Smallest count per H3 cell that is shown.
    #[arg(long, default_value_t = 1)]
    pub h3_min_count: u64,
    /// The time "overdue now" is judged at (default: now).
    #[arg(long)]
    pub now: Option<String>,
    #[command(flatten)]
    pub config: Config,
    #[arg(long)]
    pub json: bool,
}

/// A time argument; without an offset it is on the calendar's clock (Beijing time by default).
fn time_arg(s: Option<&String>, what: &str, cal: &Calendar) -> Result<Option<i64>> {
    s.map(|t| {
        parse_time_in(t, cal.offset).ok_or_else(|| {
            anyhow!(
                "{what} {t:?}: expected a date or time (without an offset: {} time)",
                cal.time_zone
            )
        })
    })
    .transpose()
}

fn now_or(s: Option<&String>, cal: &Calendar) -> Result<i64> {
    Ok(time_arg(s, "--now", cal)?.unwrap_or_else(|| chrono::Utc::now().timestamp()))
}

/// Read a case file.
///
/// # Errors
/// Unreadable file or a line that is not a case (named by line number).
pub fn read_cases(p: &Path) -> Result<Vec<Case>> {
    let text =
        std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}: line {}: not a case", p.display(), i + 1))
        })
        .collect()
}

fn write_cases(p: &Path, cases: &[Case]) -> Result<()> {
    let mut out = Vec::new();
    for c in cases {
        serde_json::to_writer(&mut out, c)?;
        out.push(b'\n');
    }
    write_atomic(p, &out)?;
    Ok(())
}

fn place(c: &mut Case, loc: &Locator, at: Option<i64>) {
    if let Located::Inside(i) = loc.locate(c.lon, c.lat, at) {
        let z = &loc.zones()[i];
        c.grid = Some(z.code.clone());
        c.community = z.community.clone();
        c.street = z.street.clone();
    }
}

/// `wangge incidents …`.
///
/// # Errors
/// Bad input (named), illegal transitions (with what is allowed).
pub fn run(cmd: &IncidentCmd) -> Result<()> {
    match cmd {
        IncidentCmd::Import(a) => import(a),
        IncidentCmd::Transition(a) => transition(a),
        IncidentCmd::Escalate(a) => escalate(a),
    }
}

fn import(a: &ImportArgs) -> Result<()> {
    let (cat, cal) = a.config.load()?;
    let source: Source = a
        .source
        .parse()
        .map_err(|e: String| anyhow!("--source: {e}"))?;
    let tf = Transformer::new(a.crs.parse::<Crs>()?, Crs::Wgs84)?;
    let loc = Locator::new(read_zones(
        &a.grids,
        &Transformer::new(Crs::Wgs84, Crs::Wgs84)?,
    )?)
    .map_err(|e| anyhow!("{}: {e}", a.grids.display()))?;
    let name = a.points.display().to_string();
    let mut rd =
        csv::Reader::from_path(&a.points).with_context(|| format!("{name}: cannot read"))?;
    let h = rd
        .headers()
        .with_context(|| format!("{name}: no header row"))?
        .clone();
    let col = |f: &str| {
        h.iter()
            .position(|x| x.trim() == f)
            .ok_or_else(|| anyhow!("{name}: no column `{f}`"))
    };
    let (ii, ci, ti, xi, yi) = (
        col(&a.id_field)?,
        col(&a.category_field)?,
        col(&a.time_field)?,
        col(&a.lon_field)?,
        col(&a.lat_field)?,
    );
    let rows = Rows {
        a,
        cat: &cat,
        cal: &cal,
        tf: &tf,
        loc: &loc,
        source,
        cols: (ii, ci, ti, xi, yi),
        di: h.iter().position(|x| x.trim() == a.description_field),
    };
    let mut cases: Vec<Case> = Vec::new();
    let mut bad: Vec<(usize, String)> = Vec::new();
    let mut dups = 0usize;
    for (k, rec) in rd.records().enumerate() {
        let row = k + 2;
        let rec = rec.with_context(|| format!("{name}: row {row}: not valid CSV"))?;
        let r = rows.case(&rec);
        match r {
            Ok(mut c) => {
                let secs = (a.duplicate_hours * 3600.0) as i64;
                if let Some(d) =
                    duplicate_hint(&c, cases.iter().rev().take(5000), a.duplicate_m, secs)
                {
                    c.duplicate_of = Some(d.id.clone());
                    dups += 1;
                }
                cases.push(c);
            }
            Err(m) => {
                if a.strict {
                    bail!("{name}: row {row}: {m}");
                }
                bad.push((row, m));
            }
        }
    }
    write_cases(&a.out, &cases)?;
    let located = cases.iter().filter(|c| c.grid.is_some()).count();
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "cases": cases.len(), "located": located, "possible_duplicates": dups, "bad_rows": bad.len(), "bad": bad.iter().take(100).collect::<Vec<_>>() })
        );
    } else {
        println!(
            "{} cases → {} ({located} in a grid, {dups} possible duplicates), {} bad rows",
            cases.len(),
            a.out.display(),
            bad.len()
        );
        for (row, m) in bad.iter().take(10) {
            eprintln!("  row {row}: {m}");
        }
    }
    Ok(())
}
/// What turns a CSV row of reports into a case.
struct Rows<'a> {
    a: &'a ImportArgs,
    cat: &'a Catalogue,
    cal: &'a Calendar,
    tf: &'a Transformer,
    loc: &'a Locator,
    source: Source,
    /// Columns of id, category, time, lon, lat.
    cols: (usize, usize, usize, usize, usize),
    /// Column of the description.
    di: Option<usize>,
}

impl Rows<'_> {
    /// The case of one row: categorised, located, accepted and opened with `--open`; or why not.
    fn case(&self, rec: &csv::StringRecord) -> Result<Case, String> {
        let (a, (ii, ci, ti, xi, yi)) = (self.a, self.cols);
        let get = |i: usize| rec.get(i).unwrap_or("").trim();
        let category = self.cat.get(get(ci)).ok_or_else(|| {
            format!(
                "field `{}`: unknown category {:?}",
                a.category_field,
                get(ci)
            )
        })?;
        let num = |i: usize, f: &str| {
            get(i)
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("field `{f}`: expected a number, found {:?}", get(i)))
        };
        let (x, y) = (num(xi, &a.lon_field)?, num(yi, &a.lat_field)?);
        let w = self.tf.apply(Coord { x, y }).map_err(|e| e.to_string())?;
        if crate::geom::beyond_lonlat(w) {
            return Err(format!("coordinate ({x}, {y}) is out of range"));
        }
        let at = parse_time_in(get(ti), self.cal.offset).ok_or_else(|| {
            format!(
                "field `{}`: expected a date or time, found {:?}",
                a.time_field,
                get(ti)
            )
        })?;
        let id = get(ii);
        if id.is_empty() {
            return Err(format!("field `{}` is empty", a.id_field));
        }
        let mut c = Case::report(
            id.to_string(),
            category,
            self.di.map(|i| get(i).to_string()).unwrap_or_default(),
            w.x,
            w.y,
            self.source,
            None,
            at,
        );
        place(&mut c, self.loc, Some(at));
        if a.open {
            c.apply(Action::Accept, "import", at, category, self.cal)
                .map_err(|e| e.to_string())?;
            c.apply(Action::Open, "import", at, category, self.cal)
                .map_err(|e| e.to_string())?;
        }
        Ok(c)
    }
}

fn transition(a: &TransitionArgs) -> Result<()> {
    let (cat, cal) = a.config.load()?;
    let mut cases = read_cases(&a.cases)?;
    let at =
        time_arg(a.at.as_ref(), "--at", &cal)?.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let reason = || a.reason.clone().unwrap_or_default();
    let action = match a.action.as_str() {
        "accept" => Action::Accept,
        "reject" => Action::Reject { reason: reason() },
        "open" => Action::Open,
        "dispatch" => Action::Dispatch {
            unit: a
                .unit
                .clone()
                .ok_or_else(|| anyhow!("dispatch needs --unit"))?,
        },
        "handle" => Action::Handle,
        "verify" => Action::Verify {
            passed: a.passed.unwrap_or(true),
        },
        "close" => Action::Close,
        "evaluate" => Action::Evaluate {
            score: a
                .score
                .ok_or_else(|| anyhow!("evaluate needs --score 1..5"))?,
        },
        "return" => Action::Return { reason: reason() },
        "extend" => Action::Extend {
            until: time_arg(a.until.as_ref(), "--until", &cal)?
                .ok_or_else(|| anyhow!("extend needs --until"))?,
            reason: reason(),
        },
        "suspend" => Action::Suspend { reason: reason() },
        "resume" => Action::Resume,
        "void" => Action::Void { reason: reason() },
        o => bail!(
            "unknown action {o:?}: expected accept, reject, open, dispatch, handle, verify, close, evaluate, return, extend, suspend, resume or void"
        ),
    };
    let c = cases
        .iter_mut()
        .find(|c| c.id == a.id)
        .ok_or_else(|| anyhow!("{}: no case {:?}", a.cases.display(), a.id))?;
    let category = cat
        .get(&c.category)
        .ok_or_else(|| {
            anyhow!(
                "case {}: category {} is not in the catalogue",
                c.id,
                c.category
            )
        })?
        .clone();
    c.apply(action, &a.who, at, &category, &cal)?;
    println!("case {}: {:?}", c.id, c.state);
    write_cases(&a.cases, &cases)
}
fn escalate(a: &EscalateArgs) -> Result<()> {
    let (cat, cal) = a.config.load()?;
    let now = now_or(a.now.as_ref(), &cal)?;
    let mut cases = read_cases(&a.cases)?;
    let mut n = 0;
    for c in &mut cases {
        if let Some(category) = cat.get(&c.category).cloned() {
            while c.escalate_if_due(now, &category, &cal) {
                n += 1;
            }
        }
    }
    write_cases(&a.cases, &cases)?;
    println!("{n} escalations");
    Ok(())
}

/// A CSV of reports, each row a received case; rows with an unknown category or a bad time or
/// coordinates are not counted (the first ten named on stderr). The cases and how many rows were
/// left out.
fn read_report_csv(path: &Path, cat: &Catalogue, cal: &Calendar) -> Result<(Vec<Case>, usize)> {
    let mut bad = 0usize;
    let name = path.display().to_string();
    let mut rd = csv::Reader::from_path(path).with_context(|| format!("{name}: cannot read"))?;
    let h = rd.headers()?.clone();
    let col = |f: &[&str]| h.iter().position(|x| f.contains(&x.trim()));
    let (ii, ci, ti, xi, yi) = (
        col(&["id"]),
        col(&["category", "type"]),
        col(&["reported_at", "created"]),
        col(&["lon"]),
        col(&["lat"]),
    );
    let (Some(ci), Some(ti), Some(xi), Some(yi)) = (ci, ti, xi, yi) else {
        bail!("{name}: needs columns category (or type), reported_at (or created), lon, lat");
    };
    let mut out = Vec::new();
    for (k, rec) in rd.records().enumerate() {
        let rec = rec.with_context(|| format!("{name}: row {}", k + 2))?;
        let g = |i: usize| rec.get(i).unwrap_or("").trim();
        let (Some(category), Some(at), Ok(x), Ok(y)) = (
            cat.get(g(ci)),
            parse_time_in(g(ti), cal.offset),
            g(xi).parse::<f64>(),
            g(yi).parse::<f64>(),
        ) else {
            bad += 1;
            if bad <= 10 {
                eprintln!(
                    "  row {}: not counted (unknown category {:?}, or bad time or coordinates)",
                    k + 2,
                    g(ci)
                );
            }
            continue;
        };
        let id = ii.map_or_else(|| (k + 2).to_string(), |i| g(i).to_string());
        out.push(Case::report(
            id,
            category,
            String::new(),
            x,
            y,
            Source::Hotline,
            None,
            at,
        ));
    }
    Ok((out, bad))
}

/// The figures as a table, one row per group.
fn print_table(by: &str, figs: &[crate::incident::stats::Figures]) {
    println!(
        "{:<20} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}",
        by,
        "received",
        "accepted",
        "closed",
        "on time%",
        "overdue",
        "med h",
        "p90 h",
        "escal.",
        "returns"
    );
    let f1 = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    for f in figs {
        println!(
            "{:<20} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7}",
            if f.key.is_empty() {
                "(outside)"
            } else {
                &f.key
            },
            f.received,
            f.accepted,
            f.closed,
            f1(f.on_time_rate_pct),
            f.overdue_now,
            f1(f.median_hours_to_close),
            f1(f.p90_hours_to_close),
            f.escalations,
            f.returns
        );
    }
}

/// `wangge stats`.
///
/// # Errors
/// Bad arguments or input.
pub fn stats(a: &StatsArgs) -> Result<()> {
    let by: By = a.by.parse().map_err(|e: String| anyhow!(e))?;
    let (cat, cal) = a.config.load()?;
    let loc = Locator::new(read_zones(
        &a.grids,
        &Transformer::new(Crs::Wgs84, Crs::Wgs84)?,
    )?)
    .map_err(|e| anyhow!("{}: {e}", a.grids.display()))?;
    let is_jsonl = a
        .incidents
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "ndjson");
    let (mut cases, bad) = if is_jsonl {
        (read_cases(&a.incidents)?, 0)
    } else {
        read_report_csv(&a.incidents, &cat, &cal)?
    };
    for c in &mut cases {
        if c.grid.is_none() {
            place(c, &loc, Some(c.reported_at));
        }
    }
    let now = now_or(a.now.as_ref(), &cal)?;
    let from = time_arg(a.from.as_ref(), "--from", &cal)?;
    let to = time_arg(a.to.as_ref(), "--to", &cal)?;
    let workers = if by == By::Worker {
        workers_of(&a.grids)?
    } else {
        std::collections::BTreeMap::new()
    };
    let figs = figures(&cases, by, from, to, now, &workers);
    let in_window: Vec<Case> = cases
        .iter()
        .filter(|c| from.is_none_or(|f| c.reported_at >= f) && to.is_none_or(|t| c.reported_at < t))
        .cloned()
        .collect();
    let h3 = h3_counts(&in_window, a.h3_resolution, a.h3_min_count);
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "by": a.by, "groups": figs, "h3_resolution": a.h3_resolution, "h3": h3, "rows_not_counted": bad })
        );
    } else {
        print_table(&a.by, &figs);
        println!(
            "H3 resolution {}: {} cells with cases",
            a.h3_resolution,
            h3.len()
        );
        if bad > 0 {
            println!("{bad} rows not counted (see the messages above)");
        }
    }
    Ok(())
}
