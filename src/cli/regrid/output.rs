//! What a regrid or rebalance writes: the grid layer in the output CRS, assignments, the report,
//! upper levels, atoms, a draft plan in the store; and the summary on stdout.

use super::{CommonArgs, Layers, Settings};
use crate::geom::crs::{Crs, Transformer};
use crate::io::write::{assignments_csv, grids_geojson, write_atomic};
use crate::partition::rebalance::Changes;
use crate::partition::{Grid, RegridParams, RegridResult};
use anyhow::{Context, Result};
use geo::{Coord, LineString, Polygon};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;

/// One finished run.
pub(super) struct Run<'a> {
    pub settings: &'a Settings,
    pub common: &'a CommonArgs,
    pub layers: &'a Layers,
    pub result: &'a RegridResult,
    pub params: &'a RegridParams,
    pub locked: &'a HashSet<String>,
    pub changes: Option<&'a Changes>,
    pub seconds: f64,
}

/// Where the run's outputs go (besides --assignments and --report).
pub(super) struct Outputs<'a> {
    pub out: Option<&'a Path>,
    pub levels_out: Option<&'a Path>,
    pub atoms_out: Option<&'a Path>,
    /// Save a draft plan: (database, made by).
    pub store: Option<(Option<&'a str>, &'a str)>,
}

impl Outputs<'_> {
    /// Everything is made in memory first, then written (each file atomically), then the
    /// summary printed.
    pub fn write(&self, r: &Run) -> Result<()> {
        let s = r.settings;
        let weighted = s.weight.is_some();
        let mut fc = grids_geojson(
            &r.result.grids,
            &out_geometries(&r.result.grids, &s.from_wgs)?,
            weighted,
        );
        if s.out_crs != Crs::Wgs84 {
            fc["crs"] = json!({ "type": "name", "properties": { "name": s.out_crs.to_string() } });
        }
        let grids_bytes = serde_json::to_vec(&fc)?;
        let ids: Vec<String> = r.layers.buildings.iter().map(|b| b.id.clone()).collect();
        let assign_bytes = r
            .common
            .assignments
            .as_ref()
            .map(|_| assignments_csv(r.result, &ids));
        let report = report_json(r);
        let report_bytes = serde_json::to_vec_pretty(&report)?;
        let plan = match self.store {
            Some((database, by)) => Some(save_plan(r, &report, database, by)?),
            None => None,
        };
        let mut level_layers = Vec::new();
        for l in &r.result.levels {
            let geoms = out_geometries(&l.grids, &s.from_wgs)?;
            level_layers.push(serde_json::to_vec(&grids_geojson(
                &l.grids, &geoms, weighted,
            ))?);
        }
        if let Some(dir) = self.levels_out {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
            for (i, bytes) in level_layers.iter().enumerate() {
                write_atomic(&dir.join(format!("level-{}.geojson", i + 1)), bytes)?;
            }
        }
        if let Some(out) = self.out {
            write_atomic(out, &grids_bytes)?;
        }
        if let Some(p) = self.atoms_out {
            write_atomic(p, &atoms_json(r.result)?)?;
        }
        if let (Some(p), Some(b)) = (&r.common.assignments, &assign_bytes) {
            write_atomic(p, b)?;
        }
        if let Some(p) = &r.common.report {
            write_atomic(p, &report_bytes)?;
        }
        if r.common.json {
            let summary = json!({ "out": self.out, "plan": plan.as_ref().map(|p| p.id), "total": r.result.total, "seconds": r.seconds });
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            print_summary(r, self.out, plan.as_ref().map(|p| p.id));
        }
        Ok(())
    }
}

/// Grid polygons in the output CRS.
fn out_geometries(grids: &[Grid], from_wgs: &Transformer) -> Result<Vec<Polygon>> {
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

/// The JSON report: parameters, inputs, levels, locks, changes, figures.
fn report_json(r: &Run) -> Value {
    let (s, c, l) = (r.settings, r.common, r.layers);
    let mut locked_list: Vec<&String> = r.locked.iter().collect();
    locked_list.sort();
    let estimated = l.notes.estimated_households;
    json!({
        "params": {
            "min": s.band.min(), "max": s.band.max(), "target": s.band.target(), "seed": c.seed,
            "crs": s.in_crs.to_string(), "out_crs": s.out_crs.to_string(),
            "road_classes": r.params.cut_classes,
            "weight": s.weight.as_ref().map(|w| w.text().to_string()),
            "estimate": s.est,
        },
        "inputs": {
            "communities": l.communities.len(),
            "buildings": l.buildings.len(),
            "roads": l.roads.len(),
            "buildings_outside_communities": r.result.outside_buildings,
            "households_estimated_buildings": estimated,
            "households_note": if estimated > 0 {
                format!("{estimated} buildings had no `households`; their counts are estimates (floors × footprint × residential share ÷ {} m²)", c.dwelling_m2)
            } else { "all household counts were given".to_string() },
            "repaired": l.notes.repaired,
            "skipped": l.notes.skipped,
        },
        "levels": r.result.levels.iter().enumerate().map(|(i, l)| json!({
            "level": i + 1, "min": l.band.min(), "max": l.band.max(), "target": l.band.target(),
            "total": l.total,
        })).collect::<Vec<_>>(),
        "locked": locked_list,
        "changes": r.changes,
        "total": r.result.total,
        "communities": r.result.communities,
        "seconds": r.seconds,
    })
}

/// The atoms as a GeoJSON FeatureCollection.
fn atoms_json(result: &RegridResult) -> Result<Vec<u8>> {
    let feats: Vec<Value> = result
        .atoms
        .iter()
        .enumerate()
        .map(|(i, at)| json!({ "type": "Feature", "properties": { "id": i, "community": at.community, "households": at.households, "buildings": at.buildings }, "geometry": crate::io::write::polygon_json(&at.geometry) }))
        .collect();
    Ok(serde_json::to_vec(
        &json!({ "type": "FeatureCollection", "features": feats }),
    )?)
}

/// Save the result as a draft plan.
fn save_plan(
    r: &Run,
    report: &Value,
    database: Option<&str>,
    by: &str,
) -> Result<crate::store::Plan> {
    let plan = crate::store::regrid::new_plan(
        r.result,
        &r.layers.communities,
        &r.layers.buildings,
        r.settings.band,
        by,
        report["params"].clone(),
        json!({ "total": report["total"], "communities": report["communities"] }),
    );
    crate::cli::block_on(async {
        let store = crate::store::open(database).await?;
        let p = store.create_plan(plan).await?;
        crate::plan::save_fabrics(store.as_ref(), p.id, &r.result.fabrics).await?;
        Ok(p)
    })
}

/// The summary for a person.
fn print_summary(r: &Run, out: Option<&Path>, plan: Option<i64>) {
    let t = &r.result.total;
    println!(
        "{} grids in {} communities → {}{}\n  households {} (grid min {}, max {}), in band {:.1}% ({} oversize single-building grids)\n  Polsby-Popper mean {:.3} min {:.3}{}\n  {:.2} s{}",
        t.grids,
        r.layers.communities.len(),
        out.map(|o| o.display().to_string()).unwrap_or_default(),
        plan.map(|p| format!(
            "{}draft plan {p} in the store",
            if out.is_some() { " and " } else { "" }
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
            .map(|x| format!(", boundary along roads {x:.1}%"))
            .unwrap_or_default(),
        r.seconds,
        if r.result.outside_buildings > 0 {
            format!(
                "; {} buildings lie outside every community",
                r.result.outside_buildings
            )
        } else {
            String::new()
        },
    );
    if let Some(c) = r.changes {
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
    if r.layers.notes.estimated_households > 0 {
        println!(
            "  note: households of {} buildings are estimates",
            r.layers.notes.estimated_households
        );
    }
}
