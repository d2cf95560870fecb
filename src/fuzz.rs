//! Entry points for the fuzz targets in `fuzz/` (`cargo fuzz`, see `scripts/fuzz`) and for the
//! corpus replay that runs in the test suite (`tests/fuzz_corpus.rs`). Each takes any bytes and
//! must return without panicking; where a round trip is defined, it is checked.

#![allow(
    clippy::expect_used,
    reason = "a fuzz oracle reports a broken round trip by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;

/// The GeoJSON reader: whole-layer parsing and the streaming reader agree on what they accept.
pub fn geojson(data: &[u8]) {
    let p = Path::new("fuzz.geojson");
    let whole = crate::io::geojson::parse_layer(p, data);
    let mut n = 0usize;
    let streamed = crate::io::geojson::stream_features(p, data, &mut |_| {
        n += 1;
        Ok(())
    });
    if let (Ok(layer), Ok(true)) = (&whole, &streamed) {
        assert_eq!(
            layer.features.len(),
            n,
            "streamed and whole readings differ"
        );
    }
    if let Ok(layer) = whole {
        for f in &layer.features {
            if let Some(g) = &f.geometry {
                let _ = crate::io::geojson::parse_geometry(g);
            }
        }
    }
}

/// CSV rows of `wangge locate`: chunking, record reading and row writing.
pub fn csv_rows(data: &[u8]) {
    crate::cli::locate::chunks::fuzz_rows(data);
}

/// A file of this process and thread for readers that take a path.
fn scratch(ext: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "wangge-fuzz-{}-{:?}.{ext}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// The OSM PBF reader (buildings and roads), from a file as users give it.
pub fn osm_pbf(data: &[u8]) {
    let path = scratch("osm.pbf");
    if std::fs::write(&path, data).is_ok() {
        let _ = crate::io::osm::read_osm(&path, &crate::model::EstimateParams::default());
    }
}

/// WKB: what is read writes back to bytes that read the same.
pub fn wkb(data: &[u8]) {
    if let Ok(g) = crate::store::wkb::from_wkb(data) {
        let again = crate::store::wkb::to_wkb(&g);
        let back = crate::store::wkb::from_wkb(&again).expect("our own WKB reads back");
        assert!(
            same(&g, &back),
            "WKB round trip changed the geometry: {g:?} → {back:?}"
        );
    }
}

/// GeoPackage geometry blobs (header, envelope, WKB).
pub fn gpkg_blob(data: &[u8]) {
    let _ = crate::store::wkb::gpkg_envelope(data);
    if let Ok(g) = crate::store::wkb::from_gpkg(data) {
        let again = crate::store::wkb::to_gpkg(&g, 4326);
        let back = crate::store::wkb::from_gpkg(&again).expect("our own blob reads back");
        assert!(same(&g, &back), "blob round trip changed the geometry");
    }
}

/// NaN-aware equality of two geometries (NaN coordinates compare equal to NaN).
fn same(a: &geo::Geometry, b: &geo::Geometry) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The PMTiles reader: opening an archive and reading tiles of its zooms.
pub fn pmtiles(data: &[u8]) {
    let path = scratch("pmtiles");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(a) = crate::tiles::archive::PmTiles::open(&path) {
        for (z, x, y) in [(0, 0, 0), (1, 1, 0), (12, 1205, 1539), (14, 4823, 6160)] {
            let _ = a.get(z, x, y);
        }
    }
}

/// The Open311 report form: form decoding, field checks and the place.
pub fn open311_form(data: &[u8]) {
    let Ok(f) = serde_urlencoded::from_bytes::<BTreeMap<String, String>>(data) else {
        return;
    };
    let _ = crate::service::open311::check_report_fields(&f);
    if let Ok((lat, lon)) = crate::service::open311::report_place(&f) {
        assert!((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon));
    }
}

/// The MVT clipper: a polygon and a line made of the bytes (pairs of i16 around one tile, so
/// that they cross its edges and buffer), clipped and encoded into that tile.
pub fn mvt_clip(data: &[u8]) {
    use crate::tiles::mvt::{TileFrame, encode_geometry, tile_bounds};
    let (z, x, y) = (14, 13_256, 6_722);
    let [w, s, e, n] = tile_bounds(z, x, y);
    let coords: Vec<geo::Coord> = data
        .chunks_exact(4)
        .map(|c| {
            let a = f64::from(i16::from_le_bytes([c[0], c[1]])) / 16_384.0;
            let b = f64::from(i16::from_le_bytes([c[2], c[3]])) / 16_384.0;
            geo::Coord {
                x: w + (e - w) * (0.5 + a),
                y: s + (n - s) * (0.5 + b),
            }
        })
        .collect();
    if coords.len() < 2 {
        return;
    }
    let frame = TileFrame::new(z, x, y);
    let line = geo::Geometry::LineString(geo::LineString(coords.clone()));
    let _ = encode_geometry(&line, &frame);
    if coords.len() >= 3 {
        let poly = geo::Geometry::Polygon(geo::Polygon::new(geo::LineString(coords), vec![]));
        if let Some((kind, cmds)) = encode_geometry(&poly, &frame) {
            assert!(matches!(kind, 1..=3) && !cmds.is_empty());
        }
    }
}
