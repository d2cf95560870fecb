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

mod summary;
use summary::*;
