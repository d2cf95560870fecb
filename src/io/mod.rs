//! Reading and writing files: vector layers (GeoJSON natively, other formats through GDAL), CSV, OpenStreetMap PBF, atomic outputs.

pub mod error;
#[cfg(feature = "gdal")]
mod gdal;
pub mod geojson;
pub mod layer;
pub mod osm;
pub mod write;

pub use error::InputError;
