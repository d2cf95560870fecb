//! `wangge regrid`.

use crate::geom::crs::{Crs, Transformer};
use crate::io::geojson::{LoadNotes, read_communities, read_roads};
use crate::io::write::{assignments_csv, grids_geojson, write_atomic};
use crate::model::{Building, Community, EstimateParams, Road, Weight};
use crate::partition::{Band, RegridParams, regrid};
use anyhow::{Context, Result, bail};
use geo::{Coord, LineString, Polygon};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Arguments of `wangge regrid`.
#[derive(Debug, clap::Args)]
pub struct RegridArgs {
    /// Community boundaries (GeoJSON polygons with `code`, optional `name`, `street`). Without
    /// it, communities, buildings and roads are read from the store and the result is saved
    /// there as a draft plan.
    #[arg(long)]
    pub communities: Option<PathBuf>,
    /// Building footprints (GeoJSON polygons with an id and optional `households`).
    #[arg(long)]
    pub buildings: Option<PathBuf>,
    /// Road centrelines (GeoJSON lines with `highway`, `name`); boundaries follow them.
    #[arg(long)]
    pub roads: Option<PathBuf>,
    /// Take buildings and roads from an OpenStreetMap PBF extract.
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Target households per grid.
    #[arg(long, default_value_t = 300.0)]
    pub target: f64,
    /// Minimum households per grid.
    #[arg(long, default_value_t = 200.0)]
    pub min: f64,
    /// Maximum households per grid.
    #[arg(long, default_value_t = 400.0)]
    pub max: f64,
    /// Seed of the local search (same inputs and seed give the same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CRS of the inputs: wgs84 (default), gcj02, bd09, or EPSG:<code>.
    #[arg(long, default_value = "wgs84")]
    pub crs: String,
    /// CRS of the output grids.
    #[arg(long, default_value = "wgs84")]
    pub out_crs: String,
    /// Output grid layer (GeoJSON). Required with file inputs; optional with the store.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The store to read from and save the draft plan to: a GeoPackage path or postgres://…
    /// (default: $WANGGE_DATABASE_URL, else data/wangge.gpkg). Used when --communities is not given.
    #[arg(long)]
    pub database: Option<String>,
    /// With the store: regrid only these communities (comma-separated codes; default all).
    #[arg(long, value_delimiter = ',')]
    pub community: Option<Vec<String>>,
    /// With the store: who makes the plan (recorded with it and in the audit log).
    #[arg(long, default_value = "cli")]
    pub by: String,
    /// Also write `building_id,grid_code` for every building.
    #[arg(long)]
    pub assignments: Option<PathBuf>,
    /// Also write a JSON report per community and in total.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Road classes that bound blocks (comma-separated OSM highway values).
    #[arg(long, value_delimiter = ',')]
    pub road_classes: Option<Vec<String>>,
    /// Storey height (m) for estimating households from `height`.
    #[arg(long, default_value_t = 3.0)]
    pub storey_height: f64,
    /// Gross floor area per household (m²) for estimates.
    #[arg(long, default_value_t = 100.0)]
    pub dwelling_m2: f64,
    /// Grids in force (GeoJSON with `code`, `community`; `locked: true` keeps a grid exactly).
    /// Required by `rebalance`; with `regrid`, only the locked ones are used.
    #[arg(long)]
    pub grids: Option<PathBuf>,
    /// For `rebalance`: the assignments CSV of the plan in force (`building_id,grid_code`), so
    /// that new buildings are told from moved ones.
    #[arg(long)]
    pub previous_assignments: Option<PathBuf>,
    /// A file of grid codes (one per line) to keep exactly; the rest is partitioned around them.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Balance on a workload formula over numeric building properties (任务相当), e.g.
    /// "households + 3*special + 0.5*shops"; --min/--max/--target are then in its units.
    #[arg(long)]
    pub weight: Option<String>,
    /// Also write the atoms (the indivisible units the grids are made of) as GeoJSON, for
    /// comparisons with other partitioners on the same units (scripts/bench-partition).
    #[arg(long, hide = true)]
    pub atoms_out: Option<PathBuf>,
    /// Upper levels partitioned first, outermost first, comma-separated, each `MIN-MAX[:TARGET]`
    /// in households (or --weight units). E.g. `--levels 1500-6000:3000` with streets as
    /// --communities partitions each street into communities of 1,500–6,000 households and those
    /// into grids of --min..--max, from the same atoms: every level nests in the one above.
    #[arg(long)]
    pub levels: Option<String>,
    /// With --levels: a folder for the upper levels' layers (`level-1.geojson`, …; the fields of
    /// the grid layer, `community` naming the polygon above).
    #[arg(long)]
    pub levels_out: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Parse `--levels`: `MIN-MAX[:TARGET],…` (target defaults to the middle of the band).
///
/// # Errors
/// A level that is not two ordered non-negative numbers with a target between them.
pub fn parse_levels(text: &str) -> Result<Vec<Band>> {
    let mut out = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let part = part.trim();
        let bad = || {
            anyhow::anyhow!(
                "--levels: level {} {part:?}: expected MIN-MAX or MIN-MAX:TARGET (e.g. 1500-6000:3000)",
                i + 1
            )
        };
        let (range, target) = match part.split_once(':') {
            Some((r, t)) => (r, Some(t.trim().parse::<f64>().map_err(|_| bad())?)),
            None => (part, None),
        };
        let (lo, hi) = range.split_once('-').ok_or_else(bad)?;
        let min: f64 = lo.trim().parse().map_err(|_| bad())?;
        let max: f64 = hi.trim().parse().map_err(|_| bad())?;
        let target = target.unwrap_or((min + max) / 2.0);
        if !(min.is_finite() && max.is_finite() && target.is_finite())
            || min < 0.0
            || min > max
            || target < min
            || target > max
        {
            return Err(bad());
        }
        out.push(Band { min, max, target });
    }
    Ok(out)
}

/// Grid polygons in the output CRS.
fn out_geometries(
    grids: &[crate::partition::Grid],
    from_wgs: &Transformer,
) -> Result<Vec<Polygon>> {
    let tf_ring = |l: &LineString| -> Result<LineString> {
        l.0.iter()
            .map(|c| from_wgs.apply(*c).map_err(anyhow::Error::from))
            .collect::<Result<Vec<Coord>>>()
            .map(LineString)
    };
    grids
        .iter()
        .map(|g| {
            Ok(Polygon::new(
                tf_ring(g.geometry.exterior())?,
                g.geometry
                    .interiors()
                    .iter()
                    .map(tf_ring)
                    .collect::<Result<_>>()?,
            ))
        })
        .collect()
}

fn merge(into: &mut LoadNotes, n: LoadNotes) {
    into.repaired.extend(n.repaired);
    into.estimated_households += n.estimated_households;
    into.skipped.extend(n.skipped);
}

/// Run `wangge regrid`.
///
/// # Errors
/// Bad arguments or input, named; nothing is written then.
#[allow(clippy::too_many_lines)]
pub fn run(a: &RegridArgs, rebalance: bool) -> Result<()> {
    let t0 = std::time::Instant::now();
    if !(a.min.is_finite() && a.max.is_finite() && a.target.is_finite()) || a.min < 0.0 {
        bail!("--min, --max and --target must be non-negative numbers");
    }
    if a.min > a.max {
        bail!(
            "--min {} is above --max {}: the band is empty",
            a.min,
            a.max
        );
    }
    if a.target < a.min || a.target > a.max {
        bail!(
            "--target {} must lie between --min {} and --max {}",
            a.target,
            a.min,
            a.max
        );
    }
    if a.storey_height <= 0.0 || a.dwelling_m2 <= 0.0 {
        bail!("--storey-height and --dwelling-m2 must be positive");
    }
    let in_crs: Crs = a.crs.parse().context("--crs")?;
    let out_crs: Crs = a.out_crs.parse().context("--out-crs")?;
    let to_wgs = Transformer::new(in_crs, Crs::Wgs84)?;
    let from_wgs = Transformer::new(Crs::Wgs84, out_crs)?;
    let est = EstimateParams {
        storey_height_m: a.storey_height,
        dwelling_m2: a.dwelling_m2,
        ..EstimateParams::default()
    };
    let weight = a
        .weight
        .as_deref()
        .map(crate::model::Weight::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--weight: {e}"))?;
    let mut notes = LoadNotes::default();
    let store_mode = a.communities.is_none();
    let (communities, buildings, roads): (Vec<Community>, Vec<Building>, Vec<Road>) = if let Some(
        cpath,
    ) =
        &a.communities
    {
        if a.database.is_some() || a.community.is_some() {
            bail!("--database and --community read the store; give them without --communities");
        }
        if a.out.is_none() {
            bail!("give --out for the grid layer (GeoJSON)");
        }
        let (communities, n) = read_communities(cpath, &to_wgs)?;
        merge(&mut notes, n);
        let (buildings, roads) = load_files(a, &to_wgs, &est, weight.as_ref(), &mut notes)?;
        (communities, buildings, roads)
    } else {
        if a.buildings.is_some()
            || a.osm.is_some()
            || a.roads.is_some()
            || a.grids.is_some()
            || a.lock.is_some()
            || a.previous_assignments.is_some()
        {
            bail!(
                "without --communities, regrid reads the store: --buildings, --osm, --roads, --grids, --lock and --previous-assignments need --communities (or `wangge import` the layers first)"
            );
        }
        if rebalance {
            bail!("rebalance reads files: give --communities, --buildings and --grids");
        }
        if weight.is_some() {
            bail!(
                "--weight needs --buildings (GeoJSON properties); the store keeps households only"
            );
        }
        load_store(a)?
    };
    if buildings.is_empty() {
        bail!("no buildings were read: the building layer is empty");
    }
    let debug = std::env::var_os("WANGGE_DEBUG").is_some();
    if debug {
        eprintln!("  inputs read: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    }
    // grids in force and locks
    let mut old: Vec<crate::partition::FixedGrid> = Vec::new();
    let mut locked: std::collections::HashSet<String> = std::collections::HashSet::new();
    if let Some(g) = &a.grids {
        for (grid, lock) in crate::io::geojson::read_grid_layer(g, &to_wgs)? {
            if lock {
                locked.insert(grid.code.clone());
            }
            old.push(grid);
        }
        let known: std::collections::HashSet<&str> =
            communities.iter().map(|c| c.code.as_str()).collect();
        if let Some(bad) = old.iter().find(|g| !known.contains(g.community.as_str())) {
            bail!(
                "{}: grid {}: community {:?} is not in {}",
                g.display(),
                bad.code,
                bad.community,
                a.communities
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            );
        }
    } else if rebalance {
        bail!("rebalance needs --grids (the grids in force)");
    }
    if let Some(l) = &a.lock {
        let text =
            std::fs::read_to_string(l).with_context(|| format!("{}: cannot read", l.display()))?;
        for (i, line) in text.lines().enumerate() {
            let code = line.trim();
            if code.is_empty() || code.starts_with('#') {
                continue;
            }
            if !old.iter().any(|g| g.code == code) {
                bail!(
                    "{}: line {}: grid {code:?} is not in --grids",
                    l.display(),
                    i + 1
                );
            }
            locked.insert(code.to_string());
        }
    }
    let mut params = RegridParams {
        band: Band {
            min: a.min,
            max: a.max,
            target: a.target,
        },
        seed: a.seed,
        ..RegridParams::default()
    };
    params.levels = a
        .levels
        .as_deref()
        .map(parse_levels)
        .transpose()?
        .unwrap_or_default();
    if !params.levels.is_empty() && (rebalance || !old.is_empty()) {
        bail!(
            "--levels partitions the given polygons from scratch: it cannot be combined with rebalance, --grids or --lock"
        );
    }
    if a.levels_out.is_some() && params.levels.is_empty() {
        bail!("--levels-out needs --levels");
    }
    if store_mode && !params.levels.is_empty() {
        bail!("--levels needs --communities (the store's communities are kept as they are)");
    }
    if let Some(c) = &a.road_classes {
        params.cut_classes = c
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    let bar = ProgressBar::new(communities.len() as u64);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} regrid {bar:30} {pos}/{len} communities {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let tick = || bar.inc(1);
    params.collect_atoms = a.atoms_out.is_some();
    let mut changes = None;
    let result = if rebalance {
        let previous = match &a.previous_assignments {
            Some(p) => {
                let mut m = std::collections::HashMap::new();
                let mut rd = csv::Reader::from_path(p)
                    .with_context(|| format!("{}: cannot read", p.display()))?;
                for (i, rec) in rd.records().enumerate() {
                    let rec = rec.with_context(|| format!("{}: row {}", p.display(), i + 2))?;
                    m.insert(
                        rec.get(0).unwrap_or("").to_string(),
                        rec.get(1).unwrap_or("").to_string(),
                    );
                }
                Some(m)
            }
            None => None,
        };
        let (r, c) = crate::partition::rebalance::rebalance(
            &communities,
            &buildings,
            &roads,
            &old,
            &locked,
            previous.as_ref(),
            &params,
            &tick,
        )?;
        changes = Some(c);
        r
    } else {
        params.fixed = old
            .iter()
            .filter(|g| locked.contains(&g.code))
            .cloned()
            .collect();
        let r = regrid(&communities, &buildings, &roads, &params, &tick)?;
        if debug {
            eprintln!("  partitioned: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
        }
        r
    };
    bar.finish_and_clear();

    let geoms = out_geometries(&result.grids, &from_wgs)?;
    let mut fc = grids_geojson(&result.grids, &geoms, weight.is_some());
    if out_crs != Crs::Wgs84 {
        fc["crs"] = json!({ "type": "name", "properties": { "name": out_crs.to_string() } });
    }
    let grids_bytes = serde_json::to_vec(&fc)?;
    let ids: Vec<String> = buildings.iter().map(|b| b.id.clone()).collect();
    let assign_bytes = a
        .assignments
        .as_ref()
        .map(|_| assignments_csv(&result, &ids));
    let seconds = t0.elapsed().as_secs_f64();
    let mut locked_list: Vec<&String> = locked.iter().collect();
    locked_list.sort();
    let report = json!({
        "params": {
            "min": a.min, "max": a.max, "target": a.target, "seed": a.seed,
            "crs": in_crs.to_string(), "out_crs": out_crs.to_string(),
            "road_classes": params.cut_classes,
            "weight": weight.as_ref().map(|w| w.text().to_string()),
            "estimate": est,
        },
        "inputs": {
            "communities": communities.len(),
            "buildings": buildings.len(),
            "roads": roads.len(),
            "buildings_outside_communities": result.outside_buildings,
            "households_estimated_buildings": notes.estimated_households,
            "households_note": if notes.estimated_households > 0 {
                format!("{} buildings had no `households`; their counts are estimates (floors × footprint × residential share ÷ {} m²)", notes.estimated_households, a.dwelling_m2)
            } else { "all household counts were given".to_string() },
            "repaired": notes.repaired,
            "skipped": notes.skipped,
        },
        "levels": result.levels.iter().enumerate().map(|(i, l)| json!({
            "level": i + 1, "min": l.band.min, "max": l.band.max, "target": l.band.target,
            "total": l.total,
        })).collect::<Vec<_>>(),
        "locked": locked_list,
        "changes": changes,
        "total": result.total,
        "communities": result.communities,
        "seconds": seconds,
    });
    let report_bytes = serde_json::to_vec_pretty(&report)?;
    let plan = if store_mode {
        Some(save_plan(a, &communities, &buildings, &result, &report)?)
    } else {
        None
    };
    let mut level_layers = Vec::new();
    for l in &result.levels {
        let geoms = out_geometries(&l.grids, &from_wgs)?;
        level_layers.push(serde_json::to_vec(&grids_geojson(
            &l.grids,
            &geoms,
            weight.is_some(),
        ))?);
    }
    if let Some(dir) = &a.levels_out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
        for (i, bytes) in level_layers.iter().enumerate() {
            write_atomic(&dir.join(format!("level-{}.geojson", i + 1)), bytes)?;
        }
    }
    if debug {
        eprintln!("  output made: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    }
    if let Some(out) = &a.out {
        write_atomic(out, &grids_bytes)?;
    }
    if let Some(p) = &a.atoms_out {
        let feats: Vec<serde_json::Value> = result
            .atoms
            .iter()
            .enumerate()
            .map(|(i, at)| json!({ "type": "Feature", "properties": { "id": i, "community": at.community, "households": at.households, "buildings": at.buildings }, "geometry": crate::io::write::polygon_json(&at.geometry) }))
            .collect();
        write_atomic(
            p,
            &serde_json::to_vec(&json!({ "type": "FeatureCollection", "features": feats }))?,
        )?;
    }
    if let (Some(p), Some(b)) = (&a.assignments, &assign_bytes) {
        write_atomic(p, b)?;
    }
    if let Some(p) = &a.report {
        write_atomic(p, &report_bytes)?;
    }
    let t = &result.total;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(
                &json!({ "out": a.out, "plan": plan.as_ref().map(|p| p.id), "total": t, "seconds": seconds })
            )?
        );
    } else {
        println!(
            "{} grids in {} communities → {}{}\n  households {} (grid min {}, max {}), in band {:.1}% ({} oversize single-building grids)\n  Polsby-Popper mean {:.3} min {:.3}{}\n  {:.2} s{}",
            t.grids,
            communities.len(),
            a.out
                .as_ref()
                .map(|o| o.display().to_string())
                .unwrap_or_default(),
            plan.as_ref()
                .map(|p| format!(
                    "{}draft plan {} in the store",
                    if a.out.is_some() { " and " } else { "" },
                    p.id
                ))
                .unwrap_or_default(),
            t.households,
            t.households_min,
            t.households_max,
            t.in_band_pct,
            t.oversize_grids,
            t.polsby_popper_mean,
            t.polsby_popper_min,
            t.road_following_pct
                .map(|r| format!(", boundary along roads {r:.1}%"))
                .unwrap_or_default(),
            seconds,
            if result.outside_buildings > 0 {
                format!(
                    "; {} buildings lie outside every community",
                    result.outside_buildings
                )
            } else {
                String::new()
            },
        );
        if let Some(c) = &changes {
            println!(
                "  rebalance: {} grids kept, {} redrawn, {} new, {} retired; {} buildings and {} households changed grid ({:.1}% of the communities concerned)",
                c.kept_grids.len(),
                c.redrawn_grids.len(),
                c.new_grids.len(),
                c.retired_grids.len(),
                c.moved_buildings,
                c.moved_households,
                c.moved_households_pct
            );
            for (code, why) in &c.kept_communities {
                println!("  rebalance: community {code} kept as it was ({why})");
            }
        }
        if notes.estimated_households > 0 {
            println!(
                "  note: households of {} buildings are estimates",
                notes.estimated_households
            );
        }
    }
    Ok(())
}

/// Buildings and roads from files (GeoJSON or an OSM extract).
fn load_files(
    a: &RegridArgs,
    to_wgs: &Transformer,
    est: &EstimateParams,
    weight: Option<&Weight>,
    notes: &mut LoadNotes,
) -> Result<(Vec<Building>, Vec<Road>)> {
    let (buildings, mut roads): (Vec<_>, Vec<Road>) = match (&a.buildings, &a.osm) {
        (Some(b), _) => {
            let (bs, n) = crate::io::geojson::read_buildings_weighted(b, to_wgs, est, weight)?;
            merge(notes, n);
            let roads = match &a.osm {
                Some(o) => {
                    let (_, r, n) = crate::io::osm::read_osm(o, est)?;
                    merge(notes, n);
                    r
                }
                None => Vec::new(),
            };
            (bs, roads)
        }
        (None, Some(o)) => {
            if weight.is_some() {
                bail!(
                    "--weight needs --buildings (GeoJSON properties); OSM extracts carry no workload fields"
                );
            }
            let (bs, r, n) = crate::io::osm::read_osm(o, est)?;
            merge(notes, n);
            (bs, r)
        }
        (None, None) => bail!("give --buildings or --osm"),
    };
    if let Some(r) = &a.roads {
        let (rs, n) = read_roads(r, to_wgs)?;
        merge(notes, n);
        roads.extend(rs);
    }
    Ok((buildings, roads))
}

/// Communities (all, or those of --community), their buildings and the roads, from the store.
fn load_store(a: &RegridArgs) -> Result<(Vec<Community>, Vec<Building>, Vec<Road>)> {
    super::block_on(async {
        let store = crate::store::open(a.database.as_deref()).await?;
        Ok(crate::store::regrid::load(store.as_ref(), a.community.as_deref()).await?)
    })
}

/// Save the result as a draft plan.
fn save_plan(
    a: &RegridArgs,
    communities: &[Community],
    buildings: &[Building],
    result: &crate::partition::RegridResult,
    report: &serde_json::Value,
) -> Result<crate::store::Plan> {
    let plan = crate::store::regrid::new_plan(
        result,
        communities,
        buildings,
        Band {
            min: a.min,
            max: a.max,
            target: a.target,
        },
        &a.by,
        report["params"].clone(),
        json!({ "total": report["total"], "communities": report["communities"] }),
    );
    super::block_on(async {
        let store = crate::store::open(a.database.as_deref()).await?;
        Ok(store.create_plan(plan).await?)
    })
}
