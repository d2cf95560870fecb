//! Arguments of `wangge regrid` and `wangge rebalance`: each its own struct, flattening the
//! band, the layer files and the settings both take; clap says which combinations make sense.

use crate::partition::{Band, BandError};
use anyhow::{Result, anyhow};
use std::path::PathBuf;

/// The band of households (or `--weight` units) per grid.
#[derive(Debug, clap::Args)]
pub struct BandArgs {
    /// Target households per grid.
    #[arg(long, default_value_t = Band::DEFAULT.target())]
    pub target: f64,
    /// Minimum households per grid.
    #[arg(long, default_value_t = Band::DEFAULT.min())]
    pub min: f64,
    /// Maximum households per grid.
    #[arg(long, default_value_t = Band::DEFAULT.max())]
    pub max: f64,
}

impl BandArgs {
    /// The band, with errors that name the options.
    ///
    /// # Errors
    /// Numbers that do not make a band.
    pub fn band(&self) -> Result<Band> {
        Band::new(self.min, self.target, self.max).map_err(|e| match e {
            BandError::NotNumbers => {
                anyhow!("--min, --max and --target must be non-negative numbers")
            }
            BandError::Empty { min, max } => {
                anyhow!("--min {min} is above --max {max}: the band is empty")
            }
            BandError::TargetOutside { min, target, max } => {
                anyhow!("--target {target} must lie between --min {min} and --max {max}")
            }
        })
    }
}

/// Building and road layers from files.
#[derive(Debug, clap::Args)]
pub struct LayerFiles {
    /// Building footprints (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; polygons with an id and optional `households`).
    #[arg(long, requires = "communities")]
    pub buildings: Option<PathBuf>,
    /// Road centrelines (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; lines with `highway`, `name`); boundaries follow them.
    #[arg(long, requires = "communities")]
    pub roads: Option<PathBuf>,
    /// Take buildings and roads from an OpenStreetMap PBF extract.
    #[arg(long, requires = "communities")]
    pub osm: Option<PathBuf>,
}

/// Settings and outputs both commands take.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub band: BandArgs,
    /// Seed of the local search (same inputs and seed give the same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CRS of the inputs: wgs84 (default), gcj02, bd09, or EPSG:<code>.
    #[arg(long, default_value = "wgs84")]
    pub crs: String,
    /// CRS of the output grids.
    #[arg(long, default_value = "wgs84")]
    pub out_crs: String,
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
    /// Balance on a workload formula over numeric building properties (任务相当), e.g.
    /// "households + 3*special + 0.5*shops"; --min/--max/--target are then in its units.
    #[arg(long)]
    pub weight: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `wangge regrid`: layers from files (`--communities` …) or from the store.
#[derive(Debug, clap::Args)]
pub struct RegridArgs {
    /// Community boundaries (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; polygons with `code`, optional `name`, `street`). Without
    /// it, communities, buildings and roads are read from the store and the result is saved
    /// there as a draft plan.
    #[arg(long, requires = "out", conflicts_with_all = ["database", "community"])]
    pub communities: Option<PathBuf>,
    #[command(flatten)]
    pub layers: LayerFiles,
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
    /// Grids in force (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; with `code`, `community`); those with `locked: true`, and those
    /// named by --lock, are kept exactly.
    #[arg(long, requires = "communities")]
    pub grids: Option<PathBuf>,
    /// A file of grid codes (one per line) to keep exactly; the rest is partitioned around them.
    #[arg(long, requires = "grids")]
    pub lock: Option<PathBuf>,
    /// Upper levels partitioned first, outermost first, comma-separated, each `MIN-MAX[:TARGET]`
    /// in households (or --weight units). E.g. `--levels 1500-6000:3000` with streets as
    /// --communities partitions each street into communities of 1,500–6,000 households and those
    /// into grids of --min..--max, from the same atoms: every level nests in the one above.
    #[arg(long, requires = "communities", conflicts_with = "grids")]
    pub levels: Option<String>,
    /// With --levels: a folder for the upper levels' layers (`level-1.geojson`, …; the fields of
    /// the grid layer, `community` naming the polygon above).
    #[arg(long, requires = "levels")]
    pub levels_out: Option<PathBuf>,
    /// Also write the atoms (the indivisible units the grids are made of) as GeoJSON, for
    /// comparisons with other partitioners on the same units (scripts/bench-partition).
    #[arg(long, hide = true)]
    pub atoms_out: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Arguments of `wangge rebalance` (动态调整): the grids in force and the updated layers.
#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    /// Community boundaries (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; polygons with `code`).
    #[arg(long)]
    pub communities: PathBuf,
    #[command(flatten)]
    pub layers: LayerFiles,
    /// The grids in force (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, KML, FileGDB, DXF, CSV-WKT — FILE#LAYER names a layer; with `code`, `community`; `locked: true` keeps a grid exactly).
    #[arg(long)]
    pub grids: PathBuf,
    /// The assignments CSV of the plan in force (`building_id,grid_code`), so that new
    /// buildings are told from moved ones.
    #[arg(long)]
    pub previous_assignments: Option<PathBuf>,
    /// A file of grid codes (one per line) to keep exactly.
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Output grid layer (GeoJSON).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
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
            anyhow!(
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
        out.push(Band::new(min, target, max).map_err(|_| bad())?);
    }
    Ok(out)
}
