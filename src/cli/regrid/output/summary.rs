//! The regrid's report, atoms and plan written out, and its summary printed.

use super::*;

/// The JSON report: parameters, inputs, levels, locks, changes, figures.
pub(crate) fn report_json(r: &Run) -> Value {
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
pub(crate) fn atoms_json(result: &RegridResult) -> Result<Vec<u8>> {
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
pub(crate) fn save_plan(
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
pub(crate) fn print_summary(r: &Run, out: Option<&Path>, plan: Option<i64>) {
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
