//! Reading and writing files: GeoJSON layers, CSV, OpenStreetMap PBF, atomic outputs.

pub mod error;
pub mod geojson;
pub mod osm;
pub mod write;

pub use error::InputError;
