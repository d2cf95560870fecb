//! Domain types: communities (社区), buildings (楼栋) with households (户), roads (街巷),
//! grids (网格) and their codes.

mod code;
mod households;
pub mod schema;
mod time;
mod weight;

pub use code::{GridCode, chinese_ordinal, grid_code, grid_name};
pub use households::{EstimateParams, HouseholdSource};
pub use time::{format_time, parse_time, parse_time_in};
pub use weight::Weight;

use geo::{LineString, MultiPolygon};

/// A community boundary (a residents' committee area), in WGS84.
#[derive(Debug, Clone)]
pub struct Community {
    /// Unique code; 12 digits (district 6 + street 3 + community 3) in DB11/T 2157 style, or free.
    pub code: String,
    /// Display name, e.g. 城东社区.
    pub name: Option<String>,
    /// Code or name of the street (街道) it belongs to.
    pub street: Option<String>,
    /// Boundary in WGS84 degrees.
    pub geometry: MultiPolygon,
}

/// A building footprint with its household count, in WGS84.
#[derive(Debug, Clone)]
pub struct Building {
    /// Identifier from the input (`id` property, feature id, or `osm_id`).
    pub id: String,
    /// Households living in it (given, or estimated — see `source`).
    pub households: u32,
    /// Where the household count came from.
    pub source: HouseholdSource,
    /// The balancing weight (households unless a workload formula is given).
    pub weight: f64,
    /// Footprint in WGS84 degrees.
    pub geometry: MultiPolygon,
}

/// A road or lane centreline, in WGS84.
#[derive(Debug, Clone, PartialEq)]
pub struct Road {
    /// OSM `highway` class (e.g. `residential`, `footway`); empty when unknown.
    pub highway: String,
    /// Street name, when known.
    pub name: Option<String>,
    /// Centreline in WGS84 degrees.
    pub line: LineString,
}

/// Road classes that bound blocks by default (街巷定界); footways, steps, cycleways and paths run
/// through blocks and do not split them.
pub const DEFAULT_CUT_CLASSES: &[&str] = &[
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "pedestrian",
    "road",
    "busway",
];
