//! Plan editing commands: `wangge plans edit|undo|redo|log|copy|check|handover|import`.

use super::block_on;
use crate::plan::{EditRequest, Op, Outcome};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Arguments of `wangge plans edit`: exactly one operation.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("op").required(true).multiple(false)
    .args(["move_ids", "move_atoms", "merge", "split", "lock", "unlock", "resolve", "new_grid", "new_grid_atoms"])))]
pub struct EditArgs {
    /// The draft plan.
    pub id: i64,
    /// Move these buildings (comma-separated ids; their atoms go whole) to the grid --to.
    #[arg(long = "move", value_name = "ID[,ID…]", requires = "to")]
    pub move_ids: Option<String>,
    /// Move these atoms (comma-separated atom ids of the community of --to) to the grid --to.
    #[arg(long = "move-atoms", value_name = "N[,N…]", requires = "to")]
    pub move_atoms: Option<String>,
    /// The grid to move into.
    #[arg(long)]
    pub to: Option<String>,
    /// Merge these adjacent grids into the first one's code.
    #[arg(long, value_name = "CODE,CODE[,…]")]
    pub merge: Option<String>,
    /// Split this grid in two (balanced, or along --line).
    #[arg(long, value_name = "CODE")]
    pub split: Option<String>,
    /// With --split: a GeoJSON LineString (file) to split along (snapped to atom boundaries).
    #[arg(long, requires = "split")]
    pub line: Option<PathBuf>,
    /// Lock these grids (no automatic step and no edit changes them).
    #[arg(long, value_name = "CODES")]
    pub lock: Option<String>,
    /// Unlock these grids.
    #[arg(long, value_name = "CODES")]
    pub unlock: Option<String>,
    /// Redraw these grids so all are in band, moving the fewest households.
    #[arg(long, value_name = "CODE[,CODE…]")]
    pub resolve: Option<String>,
    /// A new grid of these buildings (comma-separated ids).
    #[arg(long = "new-grid", value_name = "ID[,ID…]")]
    pub new_grid: Option<String>,
    /// A new grid of these atoms of --community.
    #[arg(long = "new-grid-atoms", value_name = "N[,N…]", requires = "community")]
    pub new_grid_atoms: Option<String>,
    /// The community of --new-grid-atoms.
    #[arg(long)]
    pub community: Option<String>,
    /// Why (kept in the edit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Show what the edit would do without making it.
    #[arg(long)]
    pub dry_run: bool,
    /// Who edits (edit log and audit log).
    #[arg(long, default_value = "cli")]
    pub by: String,
    #[command(flatten)]
    pub common: super::store::PlansArgs,
}

fn atom_ids(s: &str) -> Result<Vec<u32>> {
    list(s)
        .iter()
        .map(|x| {
            x.parse::<u32>()
                .with_context(|| format!("atom id {x:?}: expected a whole number"))
        })
        .collect()
}

impl EditArgs {
    /// The operation the arguments name.
    fn op(&self) -> Result<Op> {
        let to = || self.to.clone().unwrap_or_default();
        Ok(if let Some(m) = &self.move_ids {
            Op::Move {
                buildings: list(m),
                atoms: Vec::new(),
                to: to(),
            }
        } else if let Some(m) = &self.move_atoms {
            Op::Move {
                buildings: Vec::new(),
                atoms: atom_ids(m)?,
                to: to(),
            }
        } else if let Some(m) = &self.merge {
            Op::Merge { grids: list(m) }
        } else if let Some(g) = &self.split {
            let line = match &self.line {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("--line {}: cannot read", p.display()))?;
                    let v: Value = serde_json::from_str(&text)
                        .with_context(|| format!("--line {}: not valid JSON", p.display()))?;
                    let v = match v.get("type").and_then(Value::as_str) {
                        Some("FeatureCollection") => v["features"]
                            .get(0)
                            .cloned()
                            .with_context(|| format!("--line {}: no features", p.display()))?,
                        _ => v,
                    };
                    Some(v)
                }
                None => None,
            };
            Op::Split {
                grid: g.clone(),
                line,
            }
        } else if let Some(g) = &self.lock {
            Op::Lock { grids: list(g) }
        } else if let Some(g) = &self.unlock {
            Op::Unlock { grids: list(g) }
        } else if let Some(g) = &self.resolve {
            Op::Resolve { grids: list(g) }
        } else if let Some(b) = &self.new_grid {
            Op::NewGrid {
                buildings: list(b),
                atoms: Vec::new(),
                community: None,
            }
        } else if let Some(a) = &self.new_grid_atoms {
            Op::NewGrid {
                buildings: Vec::new(),
                atoms: atom_ids(a)?,
                community: self.community.clone(),
            }
        } else {
            bail!(
                "name one operation: --move, --merge, --split, --lock, --unlock, --resolve or --new-grid"
            )
        })
    }
}

/// Undo, redo, log, copy: a plan id and the common options.
#[derive(Debug, clap::Args)]
pub struct PlanIdArgs {
    pub id: i64,
    /// Who (edit log and audit log).
    #[arg(long, default_value = "cli")]
    pub by: String,
    #[command(flatten)]
    pub common: super::store::PlansArgs,
}

async fn open(db: Option<&str>) -> Result<Arc<dyn Store>> {
    Ok(crate::store::open(db).await?)
}

fn print_outcome(o: &Outcome, json_out: bool) {
    if json_out {
        println!("{}", o.json());
        return;
    }
    let what = if o.dry_run { "would be" } else { "now" };
    println!(
        "{}{}",
        o.summary,
        o.seq.map_or(String::new(), |s| format!(" (edit {s})"))
    );
    for f in &o.changed {
        let p = &f["properties"];
        println!(
            "  {:<16} {:>6} households {:>4} buildings  {:<8} Polsby-Popper {:.3}",
            p["code"].as_str().unwrap_or(""),
            p["households"],
            p["buildings"],
            p["band"].as_str().unwrap_or(""),
            p["polsby_popper"].as_f64().unwrap_or(0.0)
        );
    }
    for r in &o.removed {
        println!("  {r:<16} removed");
    }
    println!(
        "  {} buildings ({} households) change grid; plan {} {what} at version {}",
        o.moved.len(),
        o.moved.iter().map(|m| u64::from(m.3)).sum::<u64>(),
        o.plan.id,
        o.plan.version
    );
    for w in &o.warnings {
        println!("  warning: {w}");
    }
}

/// Run `wangge plans edit`.
///
/// # Errors
/// A refused edit (exit 1 with the grid named), a store error.
pub fn edit(a: &EditArgs) -> Result<()> {
    let op = a.op()?;
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let req = EditRequest {
            who: a.by.clone(),
            reason: a.reason.clone(),
            dry_run: a.dry_run,
            expected_version: None,
            scope: None,
        };
        let o = crate::plan::edit(store.as_ref(), None, a.id, &op, &req).await?;
        print_outcome(&o, a.common.json);
        Ok(())
    })
}

/// Run `wangge plans undo` / `redo`.
///
/// # Errors
/// Nothing to undo or redo, a store error.
pub fn undo_redo(a: &PlanIdArgs, redo: bool) -> Result<()> {
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let req = EditRequest {
            who: a.by.clone(),
            ..EditRequest::default()
        };
        let o = crate::plan::undo_redo(store.as_ref(), None, a.id, redo, &req).await?;
        print_outcome(&o, a.common.json);
        Ok(())
    })
}

/// Run `wangge plans log`.
///
/// # Errors
/// A store error.
pub fn log(a: &PlanIdArgs) -> Result<()> {
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let edits = store.plan_edits(a.id).await?;
        if a.common.json {
            println!("{}", serde_json::to_string(&edits)?);
        } else if edits.is_empty() {
            println!("plan {}: no edits", a.id);
        } else {
            for e in &edits {
                println!(
                    "{:>4} {} {:<10} {:<9} {}{}",
                    e.seq,
                    crate::store::ts_text(e.at),
                    e.who,
                    e.status,
                    e.summary,
                    e.reason
                        .as_ref()
                        .map_or(String::new(), |r| format!(" — {r}"))
                );
            }
        }
        Ok(())
    })
}

/// Run `wangge plans copy`.
///
/// # Errors
/// A store error.
pub fn copy(a: &PlanIdArgs) -> Result<()> {
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let p = crate::plan::copy_plan(store.as_ref(), a.id, &a.by).await?;
        if a.common.json {
            println!(
                "{}",
                json!({"plan": p.id, "copied_from": a.id, "version": p.version})
            );
        } else {
            println!("plan {} copied to draft plan {}", a.id, p.id);
        }
        Ok(())
    })
}

/// Arguments of `wangge plans check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    pub id: i64,
    #[command(flatten)]
    pub common: super::store::PlansArgs,
}

/// Run `wangge plans check`: exit 1 when a hard rule fails.
///
/// # Errors
/// A hard rule broken, or a store error.
pub fn check(a: &CheckArgs) -> Result<()> {
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let r = crate::plan::check_plan(store.as_ref(), a.id).await?;
        if a.common.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            for p in &r.problems {
                println!("PROBLEM: {p}");
            }
            println!(
                "{} plan {}: {} grids, {:.2}% in band ({} oversize single-building grids), households {}–{}, Polsby-Popper mean {:.3} min {:.3}, road following {}, largest gap {:.4}%, overlap {:.4}%",
                if r.ok { "OK" } else { "FAIL" },
                a.id,
                r.grids,
                r.in_band_pct,
                r.oversize_single,
                r.households_min,
                r.households_max,
                r.polsby_popper_mean,
                r.polsby_popper_min,
                r.road_following_pct
                    .map_or("-".into(), |x| format!("{x:.2}%")),
                r.max_gap_pct,
                r.max_overlap_pct
            );
            for (c, h) in &r.out_of_band {
                println!("  out of band: {c} ({h} households)");
            }
        }
        if r.ok {
            Ok(())
        } else {
            bail!(
                "plan {}: {} hard rules broken (first: {})",
                a.id,
                r.problems.len(),
                r.problems[0]
            )
        }
    })
}

/// Arguments of `wangge plans handover`.
#[derive(Debug, clap::Args)]
pub struct HandoverArgs {
    /// The plan in force.
    pub a: i64,
    /// The new plan.
    pub b: i64,
    /// CSV: building_id, community, from_grid, to_grid, households.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub database: Option<String>,
}

/// Run `wangge plans handover`.
///
/// # Errors
/// A store error or an unwritable output.
pub fn handover(a: &HandoverArgs) -> Result<()> {
    block_on(async {
        let store = open(a.database.as_deref()).await?;
        let text = crate::plan::handover_csv(store.as_ref(), a.a, a.b).await?;
        crate::io::write::write_atomic(&a.out, text.as_bytes())
            .with_context(|| format!("--out {}", a.out.display()))?;
        println!(
            "{} buildings change grid from plan {} to plan {} → {}",
            text.lines().count().saturating_sub(1),
            a.a,
            a.b,
            a.out.display()
        );
        Ok(())
    })
}

/// Arguments of `wangge plans import`.
#[derive(Debug, clap::Args)]
pub struct ImportPlanArgs {
    /// The grid layer drawn or edited by hand (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; polygons; `code` and `community` kept where valid).
    #[arg(long)]
    pub grids: PathBuf,
    /// A name for the plan (kept in its parameters).
    #[arg(long)]
    pub name: Option<String>,
    /// Who imports (plan and audit log).
    #[arg(long, default_value = "cli")]
    pub by: String,
    #[command(flatten)]
    pub common: super::store::PlansArgs,
}

/// Run `wangge plans import`.
///
/// # Errors
/// An unreadable or invalid layer (named), or a store error.
pub fn import(a: &ImportPlanArgs) -> Result<()> {
    let layer = crate::io::layer::read_as_geojson(&a.grids, crate::io::layer::Role::Grids)
        .with_context(|| format!("--grids {}", a.grids.display()))?;
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let name = a
            .name
            .clone()
            .unwrap_or_else(|| a.grids.display().to_string());
        let (p, r) = crate::plan::import_plan(store.as_ref(), &layer, Some(&name), &a.by)
            .await
            .map_err(|e| anyhow::anyhow!("--grids {}: {e}", a.grids.display()))?;
        if a.common.json {
            let mut v = serde_json::to_value(&r)?;
            v["plan"] = json!(p.id);
            v["version"] = json!(p.version);
            println!("{v}");
        } else {
            println!(
                "draft plan {}: {} grids ({} codes kept, {} new)",
                p.id,
                r.grids,
                r.codes_kept,
                r.codes_new.len()
            );
            for c in &r.cut_buildings {
                let shares: Vec<String> =
                    c.shares.iter().map(|(g, s)| format!("{g} {s}%")).collect();
                println!(
                    "  building {} was cut ({}); it is whole in {}",
                    c.building,
                    shares.join(", "),
                    c.went_to
                );
            }
            for g in &r.gaps {
                println!(
                    "  gap in {}: {} m², {} households → {}",
                    g.community, g.area_m2, g.households, g.joined
                );
            }
            for o in &r.overlaps {
                println!("  overlap: {} and {} on {} m²", o.a, o.b, o.area_m2);
            }
            for d in &r.detached {
                println!(
                    "  a detached piece in {} ({} m², {} households) joined {}",
                    d.community, d.area_m2, d.households, d.joined
                );
            }
            for (i, old, new) in &r.codes_new {
                println!(
                    "  feature {i}: code {} → {new}",
                    old.as_deref().unwrap_or("(none)")
                );
            }
            for e in &r.empty {
                println!("  {e}: no land left in it; dropped");
            }
            for w in &r.warnings {
                println!("  warning: {w}");
            }
        }
        Ok(())
    })
}

/// Run `wangge plans rebalance`.
///
/// # Errors
/// A store error or a community that cannot be drawn.
pub fn rebalance(a: &PlanIdArgs) -> Result<()> {
    block_on(async {
        let store = open(a.common.database.as_deref()).await?;
        let (p, r) = crate::plan::rebalance_plan(store.as_ref(), a.id, &a.by).await?;
        if a.common.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "plan {} rebalanced as draft plan {}: {} grids changed ({} buildings, {} households moved), {} polygons redrawn",
                a.id,
                p.id,
                r.grids_changed.len(),
                r.buildings_moved,
                r.households_moved,
                r.geometry_changed
            );
            for c in &r.communities {
                if c.unchanged {
                    continue;
                }
                println!(
                    "  {}: redrawn {:?}, new grids {:?}, still out of band {:?}",
                    c.community, c.redrawn, c.new_grids, c.still_out
                );
            }
        }
        Ok(())
    })
}
