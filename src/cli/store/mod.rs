//! Store commands: `wangge import`, `wangge plans …`, `wangge export`, `wangge worker …`, and
//! the hidden load driver used by scripts/bench-store and the crash test.

use super::block_on;
use crate::geom::crs::{Crs, Transformer};
use crate::io::geojson::{LoadNotes, read_communities, read_roads};
use crate::model::{EstimateParams, format_time, parse_time};
use crate::store::{FeatureQuery, Layer, Plan, Store, Worker};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `wangge import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Community boundaries (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; polygons with `code`, optional `name`, `street`).
    #[arg(long)]
    pub communities: Option<PathBuf>,
    /// Building footprints (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; polygons with an id and optional `households`).
    #[arg(long)]
    pub buildings: Option<PathBuf>,
    /// Road centrelines (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; lines); replaces the stored road layer.
    #[arg(long)]
    pub roads: Option<PathBuf>,
    /// Buildings and roads from an OpenStreetMap PBF extract.
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// CRS of the inputs: wgs84 (default), gcj02, bd09, or EPSG:<code>.
    #[arg(long, default_value = "wgs84")]
    pub crs: String,
    /// Storey height (m) for estimating households from `height`.
    #[arg(long, default_value_t = 3.0)]
    pub storey_height: f64,
    /// Gross floor area per household (m²) for estimates.
    #[arg(long, default_value_t = 100.0)]
    pub dwelling_m2: f64,
    /// GeoPackage path or postgres://… (default: $WANGGE_DATABASE_URL, else data/wangge.gpkg).
    #[arg(long)]
    pub database: Option<String>,
    /// Who imports (recorded in the audit log).
    #[arg(long, default_value = "cli")]
    pub by: String,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `wangge plans …`.
#[derive(Debug, clap::Subcommand)]
pub enum PlansCmd {
    /// Every plan with its status, validity and figures.
    List(PlansArgs),
    /// One plan: parameters, figures and grids.
    Show {
        id: i64,
        #[command(flatten)]
        common: PlansArgs,
    },
    /// Publish a draft from a date; the grids in force for its communities retire then.
    Publish {
        id: i64,
        /// When it takes effect: YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS][Z|+08:00].
        #[arg(long)]
        valid_from: String,
        /// Who publishes (audit log).
        #[arg(long, default_value = "cli")]
        by: String,
        /// Why a grid out of band may stay so: CODE=REASON, once per grid (`*=REASON` for every
        /// grid not named). Publishing is refused while a grid out of band has none; a grid of
        /// one building above the band needs none.
        #[arg(long = "exception", value_name = "CODE=REASON")]
        exceptions: Vec<String>,
        #[command(flatten)]
        common: PlansArgs,
    },
    /// The exception register of a published plan: grids out of band, each with its reason.
    Exceptions {
        id: i64,
        #[command(flatten)]
        common: PlansArgs,
    },
    /// Buildings and households that change grid from plan A to plan B.
    Diff {
        a: i64,
        b: i64,
        #[command(flatten)]
        common: PlansArgs,
    },
    /// Edit a draft plan: move buildings, merge, split, lock, re-solve, new grid.
    Edit(Box<super::edit::EditArgs>),
    /// Undo the latest edit of a draft plan.
    Undo(super::edit::PlanIdArgs),
    /// Redo the latest undone edit.
    Redo(super::edit::PlanIdArgs),
    /// The edit log of a plan.
    Log(super::edit::PlanIdArgs),
    /// Copy a plan (published or not) to a new draft, to edit it.
    Copy(super::edit::PlanIdArgs),
    /// Check a plan: hard rules (exit 1 when one fails), band, compactness, road following.
    Check(super::edit::CheckArgs),
    /// The handover list from plan A to plan B: per building, from grid, to grid, households (CSV).
    Handover(super::edit::HandoverArgs),
    /// Import a grid layer drawn or edited by hand as a draft plan (buildings never split).
    Import(super::edit::ImportPlanArgs),
    /// 动态调整 on the store's current layers: a new draft where only grids out of band change.
    Rebalance(super::edit::PlanIdArgs),
}

/// Options shared by the plans commands.
#[derive(Debug, clap::Args)]
pub struct PlansArgs {
    /// GeoPackage path or postgres://… (default: $WANGGE_DATABASE_URL, else data/wangge.gpkg).
    #[arg(long)]
    pub database: Option<String>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `wangge export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// streets, communities, grids, buildings or incidents.
    #[arg(long)]
    pub layer: String,
    /// Grids of this plan (default: the grids in force now).
    #[arg(long)]
    pub plan: Option<i64>,
    /// geojson or gpkg.
    #[arg(long, default_value = "geojson")]
    pub format: String,
    /// Output file (written whole or not at all).
    #[arg(long)]
    pub out: PathBuf,
    /// Incidents: include reporters' contact details (personal data; the export is audited).
    #[arg(long)]
    pub include_personal: bool,
    /// GeoPackage path or postgres://… (default: $WANGGE_DATABASE_URL, else data/wangge.gpkg).
    #[arg(long)]
    pub database: Option<String>,
    /// Who exports (audit log).
    #[arg(long, default_value = "cli")]
    pub by: String,
}

/// `wangge worker …`: the grid worker's public contact per grid code.
#[derive(Debug, clap::Subcommand)]
pub enum WorkerCmd {
    /// Set the worker of a grid.
    Set {
        grid: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
        /// A photo for the signboard (JPEG or PNG, at most 1 MiB).
        #[arg(long)]
        photo: Option<PathBuf>,
        #[arg(long)]
        database: Option<String>,
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Remove the worker of a grid.
    Remove {
        grid: String,
        #[arg(long)]
        database: Option<String>,
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

/// Arguments of the hidden `wangge store-load` (benchmarks and the crash test).
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[arg(long)]
    pub database: Option<String>,
    /// inserts (durable incident inserts) or queries (bbox pages of grids and point lookups).
    #[arg(long, default_value = "inserts")]
    pub mode: String,
    /// Concurrent writers or readers.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Operations in all.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Print `ack ID` for each acknowledged insert, as soon as it is acknowledged.
    #[arg(long)]
    pub print_acks: bool,
    /// Prefix of the incident ids.
    #[arg(long, default_value = "L")]
    pub prefix: String,
}

async fn open(db: Option<&str>) -> Result<Arc<dyn Store>> {
    Ok(crate::store::open(db).await?)
}

/// Layers read from files for import.
type Layers = (
    Option<Vec<crate::model::Community>>,
    Option<Vec<crate::model::Building>>,
    Option<Vec<crate::model::Road>>,
    LoadNotes,
);

/// Every layer `wangge import` was given, read and checked (nothing written yet).
fn read_layers(a: &ImportArgs) -> Result<Layers> {
    let tf = Transformer::new(a.crs.parse::<Crs>().context("--crs")?, Crs::Wgs84)?;
    let est = EstimateParams {
        storey_height_m: a.storey_height,
        dwelling_m2: a.dwelling_m2,
        ..EstimateParams::default()
    };
    let mut notes = LoadNotes::default();
    let communities = match &a.communities {
        Some(p) => Some(read_communities(p, &tf)?.0),
        None => None,
    };
    let mut buildings = match &a.buildings {
        Some(p) => {
            let (b, n) = crate::io::geojson::read_buildings_weighted(p, &tf, &est, None)?;
            notes.estimated_households += n.estimated_households;
            Some(b)
        }
        None => None,
    };
    let mut roads = match &a.roads {
        Some(p) => Some(read_roads(p, &tf)?.0),
        None => None,
    };
    if let Some(o) = &a.osm {
        let (bs, rs, n) = crate::io::osm::read_osm(o, &est)?;
        notes.estimated_households += n.estimated_households;
        buildings.get_or_insert_with(Vec::new).extend(bs);
        roads.get_or_insert_with(Vec::new).extend(rs);
    }
    Ok((communities, buildings, roads, notes))
}

/// Run `wangge import`.
///
/// # Errors
/// Bad input (named, nothing written) or a store error.
pub fn import(a: &ImportArgs) -> Result<()> {
    if a.communities.is_none() && a.buildings.is_none() && a.roads.is_none() && a.osm.is_none() {
        bail!("nothing to import: give --communities, --buildings, --roads or --osm");
    }
    // read and check everything before writing anything
    let (communities, buildings, roads, notes) = read_layers(a)?;
    block_on(async {
        let store = open(a.database.as_deref()).await?;
        let mut out = json!({ "store": store.describe() });
        if let Some(c) = communities {
            let n = store.put_communities(c, &a.by).await?;
            out["communities"] = json!(n);
        }
        if let Some(b) = buildings {
            let n = store.put_buildings(b, &a.by).await?;
            out["buildings"] = json!(n);
            out["households_estimated_buildings"] = json!(notes.estimated_households);
        }
        if let Some(r) = roads {
            out["roads"] = json!(store.replace_roads(r, &a.by).await?);
        }
        let cs = store.communities().await?;
        let outside = store
            .buildings(None)
            .await?
            .iter()
            .filter(|b| b.community.is_none())
            .count();
        out["buildings_outside_communities"] = json!(outside);
        if a.json {
            println!("{out}");
        } else {
            let n = |k: &str| {
                out.get(k).map_or(String::new(), |v| {
                    format!(
                        "{k}: {} new, {} updated; ",
                        v["inserted"].as_u64().unwrap_or(0),
                        v["updated"].as_u64().unwrap_or(0)
                    )
                })
            };
            println!(
                "{}{}{}→ {} ({} communities, {} households{})",
                n("communities"),
                n("buildings"),
                out.get("roads")
                    .map_or(String::new(), |r| format!("roads: {r}; ")),
                store.describe(),
                cs.len(),
                cs.iter().map(|c| c.households).sum::<u64>(),
                if outside > 0 {
                    format!("; {outside} buildings lie outside every community")
                } else {
                    String::new()
                }
            );
        }
        Ok(())
    })
}

fn plan_line(p: &Plan) -> String {
    format!(
        "{:>4}  {:<9}  {:>5} grids  {:>8} households  from {:<20} to {:<20} by {}  communities {}",
        p.id,
        p.status.as_str(),
        p.grids,
        p.households,
        p.valid_from.map(format_time).unwrap_or_else(|| "-".into()),
        p.valid_to.map(format_time).unwrap_or_else(|| "-".into()),
        p.created_by,
        p.communities.join(",")
    )
}

/// Run `wangge plans …`.
///
/// # Errors
/// Unknown plan, an illegal publication, or a store error.
pub fn plans(c: &PlansCmd) -> Result<()> {
    match c {
        PlansCmd::Edit(e) => return super::edit::edit(e),
        PlansCmd::Undo(e) => return super::edit::undo_redo(e, false),
        PlansCmd::Redo(e) => return super::edit::undo_redo(e, true),
        PlansCmd::Log(e) => return super::edit::log(e),
        PlansCmd::Copy(e) => return super::edit::copy(e),
        PlansCmd::Check(e) => return super::edit::check(e),
        PlansCmd::Handover(e) => return super::edit::handover(e),
        PlansCmd::Import(e) => return super::edit::import(e),
        PlansCmd::Rebalance(e) => return super::edit::rebalance(e),
        _ => {}
    }
    block_on(async {
        match c {
            PlansCmd::List(o) => {
                let store = open(o.database.as_deref()).await?;
                let ps = store.plans().await?;
                if o.json {
                    println!("{}", serde_json::to_string(&ps)?);
                } else if ps.is_empty() {
                    println!("no plans in {}", store.describe());
                } else {
                    for p in &ps {
                        println!("{}", plan_line(p));
                    }
                }
            }
            PlansCmd::Show { id, common } => {
                let store = open(common.database.as_deref()).await?;
                let p = store.plan(*id).await?;
                let grids = store.plan_grids(*id).await?;
                if common.json {
                    let gs: Vec<Value> = grids
                        .iter()
                        .map(|g| json!({ "code": g.code, "name": g.name, "community": g.community, "households": g.households, "buildings": g.buildings, "band": g.band }))
                        .collect();
                    println!("{}", json!({ "plan": p, "grids": gs }));
                } else {
                    println!("{}", plan_line(&p));
                    println!("  params  {}", p.params);
                    println!("  figures {}", p.metrics["total"]);
                    for g in &grids {
                        println!(
                            "  {:<16} {:<10} {:>6} households {:>4} buildings  {}",
                            g.code,
                            g.name.as_deref().unwrap_or(""),
                            g.households,
                            g.buildings,
                            g.band
                        );
                    }
                }
            }
            PlansCmd::Publish {
                id,
                valid_from,
                by,
                exceptions,
                common,
            } => publish(*id, valid_from, by, exceptions, common).await?,
            PlansCmd::Exceptions { id, common } => {
                let store = open(common.database.as_deref()).await?;
                let register = store.plan_exceptions(*id).await?;
                if common.json {
                    println!("{}", serde_json::to_string(&register)?);
                } else {
                    print_register(&register);
                }
            }
            PlansCmd::Edit(_)
            | PlansCmd::Undo(_)
            | PlansCmd::Redo(_)
            | PlansCmd::Log(_)
            | PlansCmd::Copy(_)
            | PlansCmd::Check(_)
            | PlansCmd::Handover(_)
            | PlansCmd::Import(_)
            | PlansCmd::Rebalance(_) => {}
            PlansCmd::Diff { a, b, common } => print_diff(*a, *b, common).await?,
        }
        Ok(())
    })
}

/// `wangge plans diff`.
async fn print_diff(a: i64, b: i64, common: &PlansArgs) -> Result<()> {
    let store = open(common.database.as_deref()).await?;
    let d = crate::store::plan_diff(store.as_ref(), a, b).await?;
    if common.json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        println!(
            "plan {a} → plan {b}: {} buildings and {} households change grid; grids only in {a}: {}; only in {b}: {}",
            d.moved.len(),
            d.moved_households,
            d.grids_only_in_a.len(),
            d.grids_only_in_b.len()
        );
        for (id, x, y) in &d.moved {
            println!(
                "  {id}: {} → {}",
                x.as_deref().unwrap_or("-"),
                y.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// A layer's features as a GeoJSON FeatureCollection named after the layer, written atomically.
fn write_geojson(out: &Path, layer: Layer, features: &[crate::store::Feature]) -> Result<()> {
    let feats: Vec<Value> = features
        .iter()
        .map(|f| {
            json!({
                "type": "Feature",
                "id": f.id,
                "properties": f.properties,
                "geometry": f.geometry.as_ref().map(crate::io::write::geometry_json),
            })
        })
        .collect();
    let fc = json!({ "type": "FeatureCollection", "name": layer.name(), "features": feats });
    crate::io::write::write_atomic(out, &serde_json::to_vec(&fc)?)
        .with_context(|| format!("{}: cannot write", out.display()))
}

/// GeoPackage column types from the values: INTEGER when every value is an integer, REAL when
/// some are not, TEXT for anything else or a column with no value.
fn column_types(features: &[crate::store::Feature]) -> Vec<(String, &'static str)> {
    let mut cols: Vec<(String, &'static str)> = Vec::new();
    if let Some(f) = features.first() {
        for k in f.properties.keys() {
            let vals = features.iter().filter_map(|f| f.properties.get(k));
            let mut ty = "INTEGER";
            let mut any = false;
            for v in vals {
                match v {
                    Value::Null => {}
                    Value::Number(n) if n.is_i64() => any = true,
                    Value::Number(_) => {
                        any = true;
                        if ty == "INTEGER" {
                            ty = "REAL";
                        }
                    }
                    _ => {
                        any = true;
                        ty = "TEXT";
                    }
                }
            }
            cols.push((k.clone(), if any { ty } else { "TEXT" }));
        }
    }
    cols
}

/// Run `wangge export`.
///
/// # Errors
/// Unknown layer or format, a store error, or an unwritable output.
pub fn export(a: &ExportArgs) -> Result<()> {
    let layer: Layer = a
        .layer
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--layer: {e}"))?;
    if a.plan.is_some() && layer != Layer::Grids && layer != Layer::Buildings {
        bail!("--plan applies to --layer grids and buildings only");
    }
    let fmt = a.format.to_ascii_lowercase();
    if fmt != "geojson" && fmt != "gpkg" {
        bail!("--format {:?}: expected geojson or gpkg", a.format);
    }
    block_on(async {
        let store = open(a.database.as_deref()).await?;
        if let Some(p) = a.plan {
            store.plan(p).await?;
        }
        let mut page = store
            .features(
                layer,
                &FeatureQuery {
                    plan: a.plan,
                    ..FeatureQuery::default()
                },
            )
            .await?;
        if layer == Layer::Buildings {
            add_grids(store.as_ref(), a.plan, &mut page.features).await?;
        }
        if layer == Layer::Incidents {
            if a.include_personal {
                store
                    .audit(
                        &a.by,
                        "export_personal",
                        "incidents",
                        &format!(
                            "{} incidents with reporters to {}",
                            page.matched,
                            a.out.display()
                        ),
                    )
                    .await?;
            } else {
                for f in &mut page.features {
                    f.properties.shift_remove("reporter");
                }
            }
        }
        if fmt == "geojson" {
            write_geojson(&a.out, layer, &page.features)?;
        } else {
            let cols = column_types(&page.features);
            let gtype = if layer == Layer::Incidents {
                "POINT"
            } else {
                "MULTIPOLYGON"
            };
            if a.out.exists() {
                std::fs::remove_file(&a.out)
                    .with_context(|| format!("{}: cannot replace", a.out.display()))?;
            }
            crate::store::gpkg::write_layer(&a.out, layer.name(), gtype, &cols, &page.features)?;
        }
        eprintln!(
            "{} {} features → {}",
            page.features.len(),
            layer.name(),
            a.out.display()
        );
        Ok(())
    })
}

/// Give each building its `grid` in `plan`, or in the plans in force now (null when in none), so
/// that an exported building layer can be coloured by grid.
async fn add_grids(
    store: &dyn Store,
    plan: Option<i64>,
    features: &mut [crate::store::Feature],
) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    let plans: Vec<i64> = match plan {
        Some(p) => vec![p],
        None => store
            .plans()
            .await?
            .into_iter()
            .filter(|p| {
                p.status != crate::store::PlanStatus::Draft
                    && p.valid_from.is_some_and(|f| f <= now)
                    && p.valid_to.is_none_or(|t| now < t)
            })
            .map(|p| p.id)
            .collect(),
    };
    let mut grid: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for p in plans {
        grid.extend(store.plan_assignment(p).await?);
    }
    for f in features {
        let g = grid.get(&f.id).map_or(Value::Null, |c| json!(c));
        f.properties.insert("grid".into(), g);
    }
    Ok(())
}

/// Run `wangge worker …`.
///
/// # Errors
/// A store error.
pub fn worker(c: &WorkerCmd) -> Result<()> {
    block_on(async {
        match c {
            WorkerCmd::Set {
                grid,
                name,
                phone,
                photo,
                database,
                by,
            } => {
                if name.trim().is_empty() {
                    bail!("--name must not be empty");
                }
                let photo = match photo {
                    Some(p) => {
                        let b = std::fs::read(p)
                            .with_context(|| format!("--photo {}: cannot read", p.display()))?;
                        crate::print::render::check_photo(&b, crate::print::PHOTO_MAX, p)?;
                        Some(b)
                    }
                    None => None,
                };
                let store = open(database.as_deref()).await?;
                if !crate::store::grid_exists(store.as_ref(), grid).await? {
                    bail!(
                        "grid {grid:?} is in no plan of the store: a worker is assigned to an existing grid"
                    );
                }
                store
                    .set_worker(
                        grid,
                        Some(Worker {
                            name: name.clone(),
                            phone: phone.clone(),
                        }),
                        by,
                    )
                    .await?;
                if let Some(b) = photo {
                    store.set_worker_photo(grid, Some(b), by).await?;
                }
                store.announce_change().await?;
            }
            WorkerCmd::Remove { grid, database, by } => {
                let store = open(database.as_deref()).await?;
                store.set_worker(grid, None, by).await?;
                store.announce_change().await?;
            }
        }
        Ok(())
    })
}

mod load;
pub use load::*;
