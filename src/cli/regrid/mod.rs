//! `wangge regrid` and `wangge rebalance`: read the layers (files or the store), partition,
//! write the grid layer, assignments and report (or a draft plan in the store), print a summary.

mod args;
mod output;

use args::{CommonArgs, LayerFiles, parse_levels};
pub use args::{RebalanceArgs, RegridArgs};

use crate::geom::crs::{Crs, Transformer};
use crate::io::geojson::{LoadNotes, read_communities, read_roads};
use crate::model::{Building, Community, EstimateParams, Road, Weight};
use crate::partition::{Band, FixedGrid, RegridParams, regrid};
use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use output::{Outputs, Run};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Where the layers come from.
enum Source<'a> {
    /// GeoJSON (or OSM PBF) files.
    Files {
        communities: &'a Path,
        layers: &'a LayerFiles,
    },
    /// The store (all communities, or those named).
    Store {
        database: Option<&'a str>,
        communities: Option<&'a [String]>,
    },
}

/// What the common arguments resolve to.
struct Settings {
    band: Band,
    in_crs: Crs,
    out_crs: Crs,
    to_wgs: Transformer,
    from_wgs: Transformer,
    est: EstimateParams,
    weight: Option<Weight>,
}

impl Settings {
    fn of(c: &CommonArgs) -> Result<Settings> {
        let band = c.band.band()?;
        if c.storey_height <= 0.0 || c.dwelling_m2 <= 0.0 {
            bail!("--storey-height and --dwelling-m2 must be positive");
        }
        let in_crs: Crs = c.crs.parse().context("--crs")?;
        let out_crs: Crs = c.out_crs.parse().context("--out-crs")?;
        Ok(Settings {
            band,
            in_crs,
            out_crs,
            to_wgs: Transformer::new(in_crs, Crs::Wgs84)?,
            from_wgs: Transformer::new(Crs::Wgs84, out_crs)?,
            est: EstimateParams {
                storey_height_m: c.storey_height,
                dwelling_m2: c.dwelling_m2,
                ..EstimateParams::default()
            },
            weight: c
                .weight
                .as_deref()
                .map(Weight::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--weight: {e}"))?,
        })
    }

    /// Partitioning parameters.
    fn params(&self, c: &CommonArgs) -> RegridParams {
        let mut params = RegridParams {
            band: self.band,
            seed: c.seed,
            ..RegridParams::default()
        };
        if let Some(classes) = &c.road_classes {
            params.cut_classes = classes
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        params
    }
}

/// The layers read.
struct Layers {
    communities: Vec<Community>,
    buildings: Vec<Building>,
    roads: Vec<Road>,
    notes: LoadNotes,
}

/// Run `wangge regrid`.
///
/// # Errors
/// Bad arguments or input, named; nothing is written then.
pub fn run(a: &RegridArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let s = Settings::of(&a.common)?;
    let source = match &a.communities {
        Some(communities) => Source::Files {
            communities,
            layers: &a.layers,
        },
        None => Source::Store {
            database: a.database.as_deref(),
            communities: a.community.as_deref(),
        },
    };
    let layers = load(&source, &s)?;
    let (old, locked) = grids_in_force(
        (a.grids.as_deref(), a.lock.as_deref()),
        (&layers, a.communities.as_deref()),
        &s,
    )?;
    let mut params = s.params(&a.common);
    params.levels = a
        .levels
        .as_deref()
        .map(parse_levels)
        .transpose()?
        .unwrap_or_default();
    params.collect_atoms = a.atoms_out.is_some();
    // a plan saved in the store keeps its fabric, so that it can be edited at once
    params.collect_fabric = a.communities.is_none() && params.levels.is_empty();
    params.fixed = old
        .iter()
        .filter(|g| locked.contains(&g.code))
        .cloned()
        .collect();
    let bar = progress(layers.communities.len());
    let result = regrid(
        &layers.communities,
        &layers.buildings,
        &layers.roads,
        &params,
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    let run = Run {
        settings: &s,
        common: &a.common,
        layers: &layers,
        result: &result,
        params: &params,
        locked: &locked,
        changes: None,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let store = match source {
        Source::Store { database, .. } => Some((database, a.by.as_str())),
        Source::Files { .. } => None,
    };
    let outputs = Outputs {
        out: a.out.as_deref(),
        levels_out: a.levels_out.as_deref(),
        atoms_out: a.atoms_out.as_deref(),
        store,
    };
    outputs.write(&run)
}

/// Run `wangge rebalance`.
///
/// # Errors
/// Bad arguments or input, named; nothing is written then.
pub fn run_rebalance(a: &RebalanceArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let s = Settings::of(&a.common)?;
    let source = Source::Files {
        communities: &a.communities,
        layers: &a.layers,
    };
    let layers = load(&source, &s)?;
    let (old, locked) = grids_in_force(
        (Some(&a.grids), a.lock.as_deref()),
        (&layers, Some(&a.communities)),
        &s,
    )?;
    let params = s.params(&a.common);
    let previous = a
        .previous_assignments
        .as_deref()
        .map(read_assignments)
        .transpose()?;
    let bar = progress(layers.communities.len());
    let (result, changes) = crate::partition::rebalance::rebalance(
        &layers.communities,
        &layers.buildings,
        &layers.roads,
        &old,
        &locked,
        previous.as_ref(),
        &params,
        &|| bar.inc(1),
    )?;
    bar.finish_and_clear();
    let run = Run {
        settings: &s,
        common: &a.common,
        layers: &layers,
        result: &result,
        params: &params,
        locked: &locked,
        changes: Some(&changes),
        seconds: t0.elapsed().as_secs_f64(),
    };
    let outputs = Outputs {
        out: Some(&a.out),
        levels_out: None,
        atoms_out: None,
        store: None,
    };
    outputs.write(&run)
}

/// A progress bar of communities, drawn only on a terminal.
fn progress(n: usize) -> ProgressBar {
    super::progress(n as u64, "communities")
}

fn merge(into: &mut LoadNotes, n: LoadNotes) {
    into.repaired.extend(n.repaired);
    into.estimated_households += n.estimated_households;
    into.skipped.extend(n.skipped);
}

/// Communities, buildings and roads from the source.
fn load(source: &Source, s: &Settings) -> Result<Layers> {
    let _span = tracing::debug_span!("read inputs").entered();
    let mut notes = LoadNotes::default();
    let (communities, buildings, roads) = match source {
        Source::Files {
            communities,
            layers,
        } => {
            let (communities, n) = read_communities(communities, &s.to_wgs)?;
            merge(&mut notes, n);
            let (buildings, roads) = load_files(layers, s, &mut notes)?;
            (communities, buildings, roads)
        }
        Source::Store {
            database,
            communities,
        } => {
            if s.weight.is_some() {
                bail!(
                    "--weight needs --buildings (GeoJSON properties); the store keeps households only"
                );
            }
            super::block_on(async {
                let store = crate::store::open(*database).await?;
                Ok::<_, anyhow::Error>(
                    crate::store::regrid::load(store.as_ref(), *communities).await?,
                )
            })?
        }
    };
    if buildings.is_empty() {
        bail!("no buildings were read: the building layer is empty");
    }
    Ok(Layers {
        communities,
        buildings,
        roads,
        notes,
    })
}

/// Buildings and roads from files (GeoJSON or an OSM extract).
fn load_files(
    a: &LayerFiles,
    s: &Settings,
    notes: &mut LoadNotes,
) -> Result<(Vec<Building>, Vec<Road>)> {
    // the road file is read on its own thread while the buildings are read here, with its own
    // transformer (a PROJ pipeline belongs to one thread); notes keep the order of the files
    let (from, to) = (s.to_wgs.from(), s.to_wgs.to());
    let (main, extra) = std::thread::scope(|scope| {
        let extra = a.roads.as_deref().map(|r| {
            scope.spawn(move || -> Result<(Vec<Road>, LoadNotes)> {
                Ok(read_roads(r, &Transformer::new(from, to)?)?)
            })
        });
        let main = read_buildings_and_osm(a, s);
        let extra = extra.map(|h| {
            h.join()
                .unwrap_or_else(|_| bail!("the road file's reader stopped unexpectedly"))
        });
        (main, extra)
    });
    let (buildings, mut roads, main_notes) = main?;
    for n in main_notes {
        merge(notes, n);
    }
    if let Some(extra) = extra {
        let (rs, n) = extra?;
        merge(notes, n);
        roads.extend(rs);
    }
    Ok((buildings, roads))
}

/// Buildings (from `--buildings` or the OSM extract) and the extract's roads, with the notes of
/// each file read in order.
fn read_buildings_and_osm(
    a: &LayerFiles,
    s: &Settings,
) -> Result<(Vec<Building>, Vec<Road>, Vec<LoadNotes>)> {
    let weight = s.weight.as_ref();
    match (&a.buildings, &a.osm) {
        (Some(b), _) => {
            let (bs, n) =
                crate::io::geojson::read_buildings_weighted(b, &s.to_wgs, &s.est, weight)?;
            let mut notes = vec![n];
            let roads = match &a.osm {
                Some(o) => {
                    let (_, r, n) = crate::io::osm::read_osm(o, &s.est)?;
                    notes.push(n);
                    r
                }
                None => Vec::new(),
            };
            Ok((bs, roads, notes))
        }
        (None, Some(o)) => {
            if weight.is_some() {
                bail!(
                    "--weight needs --buildings (GeoJSON properties); OSM extracts carry no workload fields"
                );
            }
            let (bs, r, n) = crate::io::osm::read_osm(o, &s.est)?;
            Ok((bs, r, vec![n]))
        }
        (None, None) => bail!("give --buildings or --osm"),
    }
}

/// The grids in force (`--grids`) and the codes kept exactly (`locked: true` in the layer, and
/// the codes listed in `--lock`).
fn grids_in_force(
    (grids, lock): (Option<&Path>, Option<&Path>),
    (layers, communities): (&Layers, Option<&Path>),
    s: &Settings,
) -> Result<(Vec<FixedGrid>, HashSet<String>)> {
    let mut old: Vec<FixedGrid> = Vec::new();
    let mut locked: HashSet<String> = HashSet::new();
    if let Some(g) = grids {
        for (grid, lock) in crate::io::geojson::read_grid_layer(g, &s.to_wgs)? {
            if lock {
                locked.insert(grid.code.clone());
            }
            old.push(grid);
        }
        let known: HashSet<&str> = layers.communities.iter().map(|c| c.code.as_str()).collect();
        if let Some(bad) = old.iter().find(|g| !known.contains(g.community.as_str())) {
            bail!(
                "{}: grid {}: community {:?} is not in {}",
                g.display(),
                bad.code,
                bad.community,
                communities.unwrap_or(Path::new("")).display()
            );
        }
    }
    if let Some(l) = lock {
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
    Ok((old, locked))
}

/// `building_id,grid_code` rows of a plan's assignments CSV.
fn read_assignments(p: &Path) -> Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    let mut rd =
        csv::Reader::from_path(p).with_context(|| format!("{}: cannot read", p.display()))?;
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", p.display(), i + 2))?;
        m.insert(
            rec.get(0).unwrap_or("").to_string(),
            rec.get(1).unwrap_or("").to_string(),
        );
    }
    Ok(m)
}
