//! Geometry: CRSs, local frames, validation, interior points.

pub mod crs;
pub mod frame;
pub mod interior_point;
#[cfg(feature = "proj")]
pub mod proj_ffi;
pub mod validate;
