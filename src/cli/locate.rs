//! `wangge locate`: add the grid (and community) of every point of a CSV or GeoJSON file.

use crate::geom::crs::{Crs, Transformer};
use crate::io::geojson::{Geom, parse_geometry, read_zones};
use crate::io::layer::{Role, read_layer};
use crate::locate::{Located, Locator};
use anyhow::{Context, Result, anyhow, bail};
use geo::Coord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Arguments of `wangge locate`.
#[derive(Debug, clap::Args)]
pub struct LocateArgs {
    /// Grid layer (polygons with `code`; optional `name`, `community`, `street`, `valid_from`, `valid_to`).
    #[arg(long)]
    pub grids: PathBuf,
    /// Community layer, to fill `community` independently of the grids.
    #[arg(long)]
    pub communities: Option<PathBuf>,
    /// Points: CSV with coordinate columns, GeoJSON points, or any layer GDAL reads (FILE#LAYER names a layer).
    #[arg(long)]
    pub points: PathBuf,
    /// Longitude column of a CSV.
    #[arg(long, default_value = "lon")]
    pub lon_field: String,
    /// Latitude column of a CSV.
    #[arg(long, default_value = "lat")]
    pub lat_field: String,
    /// Column (or property) with the time of each point: located among the grids in force then.
    #[arg(long)]
    pub time_field: Option<String>,
    /// CRS of the points: wgs84 (default), gcj02, bd09, or EPSG:<code>.
    #[arg(long, default_value = "wgs84")]
    pub crs: String,
    /// Output: .csv or .geojson.
    #[arg(long)]
    pub out: PathBuf,
    /// Make a bad row fatal instead of reporting it.
    #[arg(long)]
    pub strict: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Default, serde::Serialize)]
struct Summary {
    points: u64,
    inside: u64,
    outside: u64,
    no_grid_in_force: u64,
    /// Points inside more than one grid (the layer overlaps itself there).
    overlaps: u64,
    bad_rows: u64,
    /// The first bad rows: (row number, reason).
    bad: Vec<(u64, String)>,
}

struct Ctx {
    grids: Locator,
    comms: Option<Locator>,
    tf: Transformer,
}

impl Ctx {
    /// (grid, community, note)
    fn answer(
        &self,
        tf: &Transformer,
        lon: f64,
        lat: f64,
        t: Option<i64>,
        sum: &mut Summary,
    ) -> Result<(String, String, String), String> {
        let w = tf
            .apply(Coord { x: lon, y: lat })
            .map_err(|e| e.to_string())?;
        if w.x.abs() > 180.0 || w.y.abs() > 90.0 {
            return Err(format!(
                "coordinate ({lon}, {lat}) is out of range for longitude/latitude"
            ));
        }
        let community_of = |grid_comm: Option<&String>| -> String {
            match &self.comms {
                Some(c) => match c.find_inside(w, t) {
                    Some(i) => c.zones()[i].code.clone(),
                    None => String::new(),
                },
                None => grid_comm.cloned().unwrap_or_default(),
            }
        };
        Ok(match self.grids.locate(w.x, w.y, t) {
            Located::Inside(i) => {
                sum.inside += 1;
                let z = &self.grids.zones()[i];
                let all = self.grids.all_inside(w, t);
                let note = if all.len() > 1 {
                    sum.overlaps += 1;
                    let others: Vec<&str> = all
                        .iter()
                        .filter(|&&j| j != i)
                        .map(|&j| self.grids.zones()[j].code.as_str())
                        .collect();
                    format!("overlapping grids: also in {}", others.join(", "))
                } else {
                    String::new()
                };
                (z.code.clone(), community_of(z.community.as_ref()), note)
            }
            Located::Outside {
                nearest,
                distance_m,
            } => {
                sum.outside += 1;
                let z = &self.grids.zones()[nearest];
                (
                    String::new(),
                    community_of(None),
                    format!("outside: {distance_m:.0} m from {}", z.code),
                )
            }
            Located::NoZone => {
                sum.no_grid_in_force += 1;
                (
                    String::new(),
                    community_of(None),
                    "no grid in force at that time".to_string(),
                )
            }
        })
    }
}

fn num(s: &str, field: &str) -> Result<f64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("field `{field}` is empty"));
    }
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("field `{field}`: expected a number, found {t:?}"))
}

fn tmp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// One locate run: the arguments, the locators, the input's name and the temporary output.
struct Job<'a> {
    a: &'a LocateArgs,
    ctx: &'a Ctx,
    name: &'a str,
    tmp: &'a Path,
}

impl Job<'_> {
    /// A bad row: fatal with `--strict`, else counted, kept and noted.
    fn bad(&self, row: u64, msg: String, sum: &mut Summary) -> Result<String> {
        if self.a.strict {
            bail!("{}: row {row}: {msg}", self.name);
        }
        sum.bad_rows += 1;
        if sum.bad.len() < 100 {
            sum.bad.push((row, msg.clone()));
        }
        Ok(format!("error: {msg}"))
    }

    /// A CSV in, streamed: every row written with its grid, community and note.
    fn csv(&self, sum: &mut Summary, bar: &ProgressBar) -> Result<()> {
        let (a, name) = (self.a, self.name);
        let mut rd = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&a.points)
            .with_context(|| format!("{name}: cannot read"))?;
        let headers = rd
            .headers()
            .with_context(|| format!("{name}: no header row"))?
            .clone();
        let (xi, yi) = super::coord_columns(name, &headers, &a.lon_field, &a.lat_field)?;
        let ti = match &a.time_field {
            Some(f) => Some(
                headers
                    .iter()
                    .position(|h| h.trim() == f)
                    .ok_or_else(|| anyhow!("{name}: no column `{f}` (--time-field)"))?,
            ),
            None => None,
        };
        let file = std::fs::File::create(self.tmp)
            .with_context(|| format!("{}: cannot create", a.out.display()))?;
        let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
        let mut h: Vec<String> = headers.iter().map(str::to_string).collect();
        h.extend(["grid".into(), "community".into(), "locate_note".into()]);
        w.write_record(&h)?;
        let mut rec = csv::StringRecord::new();
        let mut row: u64 = 1;
        while rd
            .read_record(&mut rec)
            .with_context(|| format!("{name}: row {}: not valid CSV", row + 1))?
        {
            row += 1;
            sum.points += 1;
            bar.inc(1);
            let parsed = self.parse_row(&rec, (xi, yi, ti));
            let (g, c, note) =
                match parsed.and_then(|(x, y, t)| self.ctx.answer(&self.ctx.tf, x, y, t, sum)) {
                    Ok(v) => v,
                    Err(msg) => (String::new(), String::new(), self.bad(row, msg, sum)?),
                };
            let mut out: Vec<&str> = rec.iter().collect();
            while out.len() < headers.len() {
                out.push("");
            }
            out.push(&g);
            out.push(&c);
            out.push(&note);
            w.write_record(&out)?;
        }
        let mut inner = w.into_inner().map_err(|e| anyhow!("{e}"))?;
        inner.flush()?;
        inner.get_ref().sync_all()?;
        Ok(())
    }

    /// Longitude, latitude and time of a CSV row.
    fn parse_row(
        &self,
        rec: &csv::StringRecord,
        (xi, yi, ti): (usize, usize, Option<usize>),
    ) -> Result<(f64, f64, Option<i64>), String> {
        let a = self.a;
        let x = num(rec.get(xi).unwrap_or(""), &a.lon_field)?;
        let y = num(rec.get(yi).unwrap_or(""), &a.lat_field)?;
        let t = match ti {
            Some(i) => {
                let s = rec.get(i).unwrap_or("");
                Some(crate::model::parse_time(s).ok_or_else(|| {
                    format!(
                        "field `{}`: expected a date or time, found {s:?}",
                        a.time_field.as_deref().unwrap_or("")
                    )
                })?)
            }
            None => None,
        };
        Ok((x, y, t))
    }

    /// A GeoJSON file in: every feature written with its grid, community and note.
    fn geojson(&self, sum: &mut Summary) -> Result<()> {
        let a = self.a;
        let layer = read_layer(&a.points, Role::Points)?;
        let tf = layer.transformer(&a.points, &self.ctx.tf)?;
        let feats = layer.features;
        let mut outf = Vec::with_capacity(feats.len());
        for f in feats {
            let row = f.index as u64 + 1;
            sum.points += 1;
            let label = f.label();
            let coord = match f.geometry.as_ref().map(parse_geometry) {
                Some(Ok(Geom::Point(c))) => Ok(c),
                Some(Ok(_)) => Err(format!("{label}: expected a Point geometry")),
                Some(Err(e)) => Err(format!("{label}: {e}")),
                None => Err(format!("{label}: no geometry")),
            };
            let t = match &a.time_field {
                Some(k) => match f.properties.get(k).and_then(crate::io::geojson::value_text) {
                    Some(s) => crate::model::parse_time(&s)
                        .ok_or_else(|| format!("{label}: property `{k}`: expected a date or time")),
                    None => Err(format!("{label}: property `{k}` is missing")),
                }
                .map(Some),
                None => Ok(None),
            };
            let res = coord.and_then(|c| t.and_then(|t| self.ctx.answer(&tf, c.x, c.y, t, sum)));
            let (g, c, note) = match res {
                Ok(v) => v,
                Err(msg) => (String::new(), String::new(), self.bad(row, msg, sum)?),
            };
            let mut props = f.properties.clone();
            props.insert("grid".into(), json!(g));
            props.insert("community".into(), json!(c));
            props.insert("locate_note".into(), json!(note));
            let mut feat = json!({ "type": "Feature", "properties": props, "geometry": f.geometry.clone().unwrap_or(Value::Null) });
            if let Some(id) = &f.id {
                feat["id"] = json!(id);
            }
            outf.push(feat);
        }
        let bytes = serde_json::to_vec(&json!({ "type": "FeatureCollection", "features": outf }))?;
        let mut file = std::fs::File::create(self.tmp)
            .with_context(|| format!("{}: cannot create", a.out.display()))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        Ok(())
    }
}

/// Run `wangge locate`.
///
/// # Errors
/// Unreadable layers, a bad row with `--strict`, or I/O errors.
pub fn run(a: &LocateArgs) -> Result<()> {
    let crs: Crs = a.crs.parse()?;
    let wgs = Transformer::new(Crs::Wgs84, Crs::Wgs84)?;
    let grids = Locator::new(read_zones(&a.grids, &wgs)?)
        .map_err(|e| anyhow!("{}: {e}", a.grids.display()))?;
    let comms = match &a.communities {
        Some(p) => {
            Some(Locator::new(read_zones(p, &wgs)?).map_err(|e| anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let ctx = Ctx {
        grids,
        comms,
        tf: Transformer::new(crs, Crs::Wgs84)?,
    };
    let mut sum = Summary::default();
    let name = a.points.display().to_string();
    let ext = a
        .points
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let out_ext = a
        .out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bar = ProgressBar::new_spinner();
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template("{spinner} locate {pos} points {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let tmp = tmp_path(&a.out);
    let job = Job {
        a,
        ctx: &ctx,
        name: &name,
        tmp: &tmp,
    };
    let result = if ext == "csv" {
        if out_ext == "csv" {
            job.csv(&mut sum, &bar)
        } else {
            Err(anyhow!(
                "{}: a CSV input is written as CSV; give --out with .csv",
                a.out.display()
            ))
        }
    } else {
        job.geojson(&mut sum)
    }
    .and_then(|()| {
        std::fs::rename(&tmp, &a.out).with_context(|| format!("{}: cannot write", a.out.display()))
    });
    bar.finish_and_clear();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if a.json {
        println!("{}", serde_json::to_string(&sum)?);
    } else {
        println!(
            "{} points → {}: {} in a grid, {} outside every grid, {} with no grid in force, {} bad rows",
            sum.points,
            a.out.display(),
            sum.inside,
            sum.outside,
            sum.no_grid_in_force,
            sum.bad_rows
        );
        for (row, msg) in sum.bad.iter().take(10) {
            eprintln!("  row {row}: {msg}");
        }
    }
    Ok(())
}
