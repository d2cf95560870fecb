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

pub(crate) mod chunks;
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
    /// The points' CRS (each worker makes its own transformer from it).
    crs: Crs,
}

/// The three columns a located point gains.
struct Answer<'a> {
    grid: &'a str,
    community: &'a str,
    note: Note<'a>,
}

/// The `locate_note` column, written without allocating for the common cases.
enum Note<'a> {
    None,
    Outside {
        metres: f64,
        nearest: &'a str,
    },
    NoGridInForce,
    /// Overlapping grids, or a bad row's error.
    Text(String),
}

impl Note<'_> {
    fn write_to(&self, s: &mut String) {
        use std::fmt::Write as _;
        s.clear();
        let _ = match self {
            Note::None => Ok(()),
            Note::Outside { metres, nearest } => write!(s, "outside: {metres:.0} m from {nearest}"),
            Note::NoGridInForce => write!(s, "no grid in force at that time"),
            Note::Text(t) => write!(s, "{t}"),
        };
    }
}

impl Summary {
    /// Add a later chunk's counts; its bad rows are numbered from `base` + 1.
    fn merge(&mut self, o: Summary, base: u64) {
        self.points += o.points;
        self.inside += o.inside;
        self.outside += o.outside;
        self.no_grid_in_force += o.no_grid_in_force;
        self.overlaps += o.overlaps;
        self.bad_rows += o.bad_rows;
        for (row, msg) in o.bad {
            if self.bad.len() >= 100 {
                break;
            }
            self.bad.push((base + row, msg));
        }
    }
}

/// A CSV reader's error, without the reader's positions (they count from the chunk).
fn not_valid_csv(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("not valid CSV: field {} is not UTF-8", err.field() + 1)
        }
        _ => "not valid CSV".to_string(),
    }
}

impl Ctx {
    /// The community: from the community layer when given, else the grid's own.
    fn community_of<'s>(&'s self, w: Coord, t: Option<i64>, grid_comm: Option<&'s str>) -> &'s str {
        match &self.comms {
            Some(c) => c
                .find_inside(w, t)
                .map_or("", |i| c.zones()[i].code.as_str()),
            None => grid_comm.unwrap_or(""),
        }
    }

    /// Grid, community and note of one point; `all` is scratch for the overlapping grids.
    fn answer(
        &self,
        tf: &Transformer,
        (lon, lat, t): (f64, f64, Option<i64>),
        sum: &mut Summary,
        all: &mut Vec<usize>,
    ) -> Result<Answer<'_>, String> {
        let w = tf
            .apply(Coord { x: lon, y: lat })
            .map_err(|e| e.to_string())?;
        if crate::geom::beyond_lonlat(w) {
            return Err(format!(
                "coordinate ({lon}, {lat}) is out of range for longitude/latitude"
            ));
        }
        let community_of = |grid_comm| self.community_of(w, t, grid_comm);
        let zones = self.grids.zones();
        Ok(match self.grids.locate_all(w.x, w.y, t, all) {
            Located::Inside(i) => {
                sum.inside += 1;
                let z = &zones[i];
                let note = if all.len() > 1 {
                    sum.overlaps += 1;
                    let others: Vec<&str> = all
                        .iter()
                        .filter(|&&j| j != i)
                        .map(|&j| zones[j].code.as_str())
                        .collect();
                    Note::Text(format!("overlapping grids: also in {}", others.join(", ")))
                } else {
                    Note::None
                };
                Answer {
                    grid: &z.code,
                    community: community_of(z.community.as_deref()),
                    note,
                }
            }
            Located::Outside {
                nearest,
                distance_m,
            } => {
                sum.outside += 1;
                Answer {
                    grid: "",
                    community: community_of(None),
                    note: Note::Outside {
                        metres: distance_m,
                        nearest: &zones[nearest].code,
                    },
                }
            }
            Located::NoZone => {
                sum.no_grid_in_force += 1;
                Answer {
                    grid: "",
                    community: community_of(None),
                    note: Note::NoGridInForce,
                }
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

/// The option naming column `i` of a row (longitude, latitude or time).
fn headers_name(a: &LocateArgs, i: usize, (xi, yi): (usize, usize)) -> &str {
    if i == xi {
        &a.lon_field
    } else if i == yi {
        &a.lat_field
    } else {
        a.time_field.as_deref().unwrap_or("")
    }
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

/// One chunk's rows located and formatted: the bytes, rows read, the counts (bad rows numbered
/// from the chunk's first row), and the first error that stops the run.
struct ChunkOut {
    bytes: Vec<u8>,
    rows: u64,
    sum: Summary,
    fatal: Option<(u64, String)>,
}

/// The columns of a CSV job: longitude, latitude, time and the header's width.
#[derive(Clone, Copy)]
struct Cols {
    x: usize,
    y: usize,
    t: Option<usize>,
    width: usize,
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

    /// The header row: the byte-order mark it began with (written back), the row without it,
    /// its fields, and the coordinate and time columns.
    fn header<'h>(
        &self,
        head: &'h [u8],
    ) -> Result<(&'static [u8], &'h [u8], csv::ByteRecord, Cols)> {
        let (a, name) = (self.a, self.name);
        // a UTF-8 byte-order mark (Excel's "CSV UTF-8") is not part of the first name; it is
        // written back so the output opens the same way
        let (bom, head) = match head.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (&b"\xEF\xBB\xBF"[..], rest),
            None => (&b""[..], head),
        };
        let head_rec = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(head)
            .byte_records()
            .next()
            .transpose()
            .with_context(|| format!("{name}: row 1: not a valid header row"))?
            .unwrap_or_default();
        // names in another encoding cannot match the options; they are written back as read
        let headers: csv::StringRecord = head_rec
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let (x, y) = super::coord_columns(name, &headers, &a.lon_field, &a.lat_field)?;
        let t = match &a.time_field {
            Some(f) => Some(
                headers
                    .iter()
                    .position(|h| h.trim() == f)
                    .ok_or_else(|| anyhow!("{name}: no column `{f}` (--time-field)"))?,
            ),
            None => None,
        };
        let cols = Cols {
            x,
            y,
            t,
            width: headers.len(),
        };
        Ok((bom, head, head_rec, cols))
    }

    /// A CSV in, streamed in chunks across the cores: every row written with its grid,
    /// community and note, in input order.
    fn csv(&self, sum: &mut Summary, bar: &ProgressBar) -> Result<()> {
        let (a, name) = (self.a, self.name);
        let file =
            std::fs::File::open(&a.points).with_context(|| format!("{name}: cannot read"))?;
        let pool = chunks::Pool::default();
        let mut chunker = chunks::Chunker::new(file, pool.clone());
        let head = chunker
            .first_record()
            .with_context(|| format!("{name}: cannot read"))?;
        let (bom, head, head_rec, cols) = self.header(&head)?;
        let file = std::fs::File::create(self.tmp)
            .with_context(|| format!("{}: cannot create", a.out.display()))?;
        let mut out = chunks::OutFile::new(file);
        let mut first = bom.to_vec();
        chunks::write_row(
            &mut first,
            head,
            head_rec.iter(),
            0,
            [b"grid", b"community", b"locate_note"],
        );
        out.write_all(&first)?;
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut rows_before: u64 = 0;
        chunks::ordered_map(
            threads,
            || {
                chunker
                    .next_chunk()
                    .with_context(|| format!("{name}: cannot read"))
            },
            || Transformer::new(self.ctx.crs, Crs::Wgs84).map_err(|e| e.to_string()),
            |tf, bytes: Vec<u8>| {
                let c = self.chunk(tf.as_ref(), &bytes, cols, pool.get());
                pool.put(bytes);
                c
            },
            |c: ChunkOut| {
                // rows are numbered from the header's 1
                let base = rows_before + 1;
                if let Some((row, msg)) = c.fatal {
                    bail!("{name}: row {}: {msg}", base + row);
                }
                out.write_all(&c.bytes)?;
                pool.put(c.bytes);
                sum.merge(c.sum, base);
                rows_before += c.rows;
                bar.inc(c.rows);
                Ok(())
            },
        )?;
        out.finish()?;
        Ok(())
    }

    /// Locate and format one chunk of whole CSV records.
    fn chunk(
        &self,
        tf: Result<&Transformer, &String>,
        bytes: &[u8],
        cols: Cols,
        out: Vec<u8>,
    ) -> ChunkOut {
        let mut c = ChunkOut {
            bytes: out,
            rows: 0,
            sum: Summary::default(),
            fatal: None,
        };
        c.bytes.reserve(bytes.len() + bytes.len() / 2 + 64);
        let tf = match tf {
            Ok(tf) => tf,
            Err(e) => {
                c.fatal = Some((1, e.clone()));
                return c;
            }
        };
        let mut records = chunks::Records::new(bytes);
        let mut rec = csv::ByteRecord::new();
        let mut all = Vec::new();
        let mut note = String::new();
        loop {
            let raw = match records.next(&mut rec) {
                Ok(Some(raw)) => raw,
                Ok(None) => break,
                Err(e) => {
                    c.fatal = Some((c.rows + 1, not_valid_csv(&e)));
                    break;
                }
            };
            c.rows += 1;
            c.sum.points += 1;
            let answer = if rec.len() > cols.width {
                let extra: Vec<String> = rec
                    .iter()
                    .skip(cols.width)
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                Err(format!(
                    "{} fields where the header has {}; the extra fields: {}",
                    rec.len(),
                    cols.width,
                    extra.join(",")
                ))
            } else {
                self.parse_row(&rec, (cols.x, cols.y, cols.t))
                    .and_then(|p| self.ctx.answer(tf, p, &mut c.sum, &mut all))
            };
            let answer = match answer {
                Ok(v) => v,
                Err(msg) if self.a.strict => {
                    c.fatal = Some((c.rows, msg));
                    break;
                }
                Err(msg) => {
                    c.sum.bad_rows += 1;
                    let text = format!("error: {msg}");
                    if c.sum.bad.len() < 100 {
                        c.sum.bad.push((c.rows, msg));
                    }
                    Answer {
                        grid: "",
                        community: "",
                        note: Note::Text(text),
                    }
                }
            };
            answer.note.write_to(&mut note);
            let n = rec.len().min(cols.width);
            chunks::write_row(
                &mut c.bytes,
                if rec.len() > cols.width { &[] } else { raw },
                rec.iter().take(n),
                cols.width - n,
                [
                    answer.grid.as_bytes(),
                    answer.community.as_bytes(),
                    note.as_bytes(),
                ],
            );
        }
        c
    }

    /// Longitude, latitude and time of a CSV row.
    fn parse_row(
        &self,
        rec: &csv::ByteRecord,
        (xi, yi, ti): (usize, usize, Option<usize>),
    ) -> Result<(f64, f64, Option<i64>), String> {
        let a = self.a;
        let text = |i: usize| -> Result<&str, String> {
            let f = rec.get(i).unwrap_or_default();
            std::str::from_utf8(f).map_err(|_| {
                let name = headers_name(a, i, (xi, yi));
                format!("field `{name}`: expected a number, found bytes that are not UTF-8 text")
            })
        };
        let x = num(text(xi)?, &a.lon_field)?;
        let y = num(text(yi)?, &a.lat_field)?;
        let t = match ti {
            Some(i) => {
                let s = text(i)?;
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
        let given = Transformer::new(self.ctx.crs, Crs::Wgs84)?;
        let tf = layer.transformer(&a.points, &given)?;
        let feats = layer.features;
        let mut all = Vec::new();
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
            let res = coord
                .and_then(|c| t.and_then(|t| self.ctx.answer(&tf, (c.x, c.y, t), sum, &mut all)));
            let mut note = String::new();
            let (g, c) = match res {
                Ok(v) => {
                    v.note.write_to(&mut note);
                    (v.grid, v.community)
                }
                Err(msg) => {
                    note = self.bad(row, msg, sum)?;
                    ("", "")
                }
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
    let ctx = Ctx { grids, comms, crs };
    Transformer::new(crs, Crs::Wgs84)?;
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
    // the command ends here: the process gives the locators' memory back faster than their
    // destructors would (tens of milliseconds for a large layer)
    std::mem::forget(ctx);
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
