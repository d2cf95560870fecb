//! # wangge — community grid management (社区网格化管理)
//!
//! Capabilities, grouped by topic:
//!
//! - **Domain** ([`model`]): communities, buildings, roads, grid codes (DB11/T 2157 style) and
//!   household estimates.
//! - **Geometry** ([`geom`]): CRSs (WGS84, GCJ-02, BD-09, EPSG via PROJ), local metric frames,
//!   validation and repair, GEOS-compatible interior points.
//! - **Partition** ([`partition`]): atoms from a constrained triangulation, the balanced
//!   partitioner, grid polygons, metrics.
//! - **I/O** ([`io`]): GeoJSON, CSV, OSM PBF, atomic output files.
//! - **Sample data** ([`sample`]): a deterministic generated Chinese district.
//! - **CLI** ([`cli`]): the `wangge` command.

// Index loops over several parallel arrays (faces, corners, labels) read better than zips.
#![allow(clippy::needless_range_loop)]

pub mod cli;
pub mod geom;
pub mod incident;
pub mod io;
pub mod locate;
pub mod model;
pub mod partition;
pub mod sample;
pub mod service;
pub mod store;
pub mod tiles;
