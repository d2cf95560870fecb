//! # wangge — community grid management (社区网格化管理)
//!
//! Capabilities, grouped by topic; each module's documentation says more, and `ARCHITECTURE.md`
//! is the code map.
//!
//! - **Domain** ([`model`]): communities, buildings, roads, grid codes (DB11/T 2157 style),
//!   household estimates, workload formulas, and the one layer schema ([`model::schema`]) that
//!   says which field each role may see.
//! - **Geometry** ([`geom`]): CRSs (WGS84, GCJ-02, BD-09, EPSG via PROJ), local metric frames,
//!   validation and repair, GEOS-compatible interior points.
//! - **Partition** ([`partition`]): atoms from a constrained triangulation (a folder of phases),
//!   the balanced partitioner, grid polygons, rebalance with the fewest changes, metrics. Entry
//!   point: [`partition::regrid`] (below).
//! - **Locate** ([`locate`]): point → grid, exact, with validity intervals; distance when outside.
//! - **Incidents** ([`incident`]): the case loop (GB/T 30428 states and actions), catalogue,
//!   working calendar and due times, escalation, statistics.
//! - **I/O** ([`io`]): GeoJSON, CSV, OSM PBF readers with errors naming file, feature and field;
//!   atomic output files.
//! - **Store** ([`store`]): one async trait over an embedded GeoPackage and PostGIS: reference
//!   layers, plans with versions, grid workers, incidents, tokens, the audit log.
//! - **Tiles** ([`tiles`]): MVT encoding, tile sources (store, memory, PMTiles) behind one trait,
//!   PMTiles/MBTiles archives.
//! - **Service** ([`service`]): `wangge serve` — OGC API Features, locate, Open311, the case API,
//!   plans, tiles; routes written once beside their OpenAPI documentation.
//! - **Sample data** ([`sample`]): a deterministic generated Chinese district.
//! - **CLI** ([`cli`]): the `wangge` command.
//!
//! ## Regrid a community
//!
//! ```
//! use geo::{MultiPolygon, polygon};
//! use wangge::model::{Building, Community, HouseholdSource};
//! use wangge::partition::{RegridParams, regrid};
//!
//! // a block of about 110 × 110 m near Yichang with four buildings of 150 households
//! let sq = |x: f64, y: f64, d: f64| {
//!     MultiPolygon(vec![polygon![(x: x, y: y), (x: x + d, y: y), (x: x + d, y: y + d), (x: x, y: y + d)]])
//! };
//! let community = Community {
//!     code: "420502001001".into(),
//!     name: Some("城东社区".into()),
//!     street: None,
//!     geometry: sq(111.290, 30.690, 0.001),
//! };
//! let buildings: Vec<Building> = (0..4)
//!     .map(|i| Building {
//!         id: format!("b{i}"),
//!         households: 150,
//!         source: HouseholdSource::Given,
//!         weight: 150.0,
//!         geometry: sq(111.2902 + 0.0005 * f64::from(i % 2), 30.6902 + 0.0005 * f64::from(i / 2), 0.0002),
//!     })
//!     .collect();
//! let result = regrid(&[community], &buildings, &[], &RegridParams::default(), &|| {})?;
//! assert_eq!(result.grids.len(), 2); // 600 households, band 200–400
//! assert_eq!(result.grids[0].code, "420502001001001");
//! assert!(result.grids.iter().all(|g| g.households == 300));
//! # Ok::<(), wangge::partition::RegridError>(())
//! ```

// Index loops over several parallel arrays (faces, corners, labels) read better than zips.
#![expect(
    clippy::needless_range_loop,
    reason = "index loops over parallel arrays (faces, corners, labels) read better than zips"
)]
// No unwrap or expect in production code: input never panics the process.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
#[doc(hidden)]
pub mod fuzz;
pub mod geom;
pub mod incident;
pub mod io;
pub mod locate;
pub mod model;
pub mod partition;
pub mod plan;
pub mod print;
pub mod sample;
pub mod service;
pub mod store;
#[cfg(any(feature = "proj", feature = "gdal"))]
pub(crate) mod syslib;
pub mod tiles;
