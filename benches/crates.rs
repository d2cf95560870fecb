//! Hand-written parts against the crates that now do the same job (issue 18): WKB (`wkb`),
//! polygon validation (`geo`'s `Validation`) and PMTiles reads (`pmtiles`), on real data.
//!
//! cargo bench --bench crates -- BUILDINGS.geojson ARCHIVE.pmtiles
//!
//! Prints one JSON line per comparison: the time per item of each, best of 5 rounds.

use geo::{Geometry, Validation};
use geo_traits::to_geo::ToGeoGeometry;
use std::hint::black_box;
use std::time::Instant;
use wangge::geom::crs::{Crs, Transformer};

/// Best of 5 rounds of `f`, in nanoseconds per item.
fn best(items: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e9 / items as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn report(what: &str, items: usize, ours: f64, crate_: f64, crate_name: &str) {
    println!(
        "{}",
        serde_json::json!({
            "what": what, "items": items,
            "wangge_ns": (ours * 10.0).round() / 10.0,
            "crate": crate_name, "crate_ns": (crate_ * 10.0).round() / 10.0,
            "ratio_crate_over_wangge": (crate_ / ours * 100.0).round() / 100.0,
        })
    );
}

fn wkb(geoms: &[Geometry]) {
    let n = geoms.len();
    // wangge writes through the wkb crate since this comparison (2.3× faster than its own
    // writer was); the line shows the time as used, into a Vec of the exact size.
    let used = best(n, || {
        for g in geoms {
            black_box(wangge::store::wkb::to_wkb(g));
        }
    });
    println!(
        "{}",
        serde_json::json!({ "what": "wkb write (the wkb crate, as wangge uses it)", "items": n,
            "ns": (used * 10.0).round() / 10.0 })
    );
    let opts = wkb::writer::WriteOptions {
        endianness: wkb::Endianness::LittleEndian,
    };
    let blobs: Vec<Vec<u8>> = geoms.iter().map(wangge::store::wkb::to_wkb).collect();
    for (g, b) in geoms.iter().zip(&blobs) {
        let mut out = Vec::new();
        wkb::writer::write_geometry(&mut out, g, &opts).expect("write");
        assert_eq!(&out, b, "both write the same bytes");
    }
    let ours_r = best(n, || {
        for b in &blobs {
            black_box(wangge::store::wkb::from_wkb(b).expect("read"));
        }
    });
    let crate_r = best(n, || {
        for b in &blobs {
            black_box(wkb::reader::read_wkb(b).expect("read").to_geometry());
        }
    });
    report(
        "wkb read to geo",
        n,
        ours_r,
        crate_r,
        "wkb 0.9 + geo-traits",
    );
}

fn validation(geoms: &[Geometry]) {
    let polys: Vec<geo::Polygon> = geoms
        .iter()
        .flat_map(|g| match g {
            Geometry::MultiPolygon(m) => m.0.clone(),
            Geometry::Polygon(p) => vec![p.clone()],
            _ => vec![],
        })
        .collect();
    let n = polys.len();
    let ours = best(n, || {
        for p in &polys {
            black_box(wangge::geom::validate::check_polygon(p, true).is_ok());
        }
    });
    let crate_ = best(n, || {
        for p in &polys {
            black_box(p.is_valid());
        }
    });
    report("polygon validity", n, ours, crate_, "geo 0.33 Validation");
}

fn pmtiles(path: &str) {
    let ours = wangge::tiles::archive::PmTiles::open(std::path::Path::new(path)).expect("open");
    let mut coords = Vec::new();
    for z in ours.minzoom..=ours.maxzoom {
        let n = 1u32 << z;
        // The tiles over the archive's data: every tile of a window around Midtown.
        let (x0, y0) = (
            ((-73.99_f64 + 180.0) / 360.0 * f64::from(n)) as u32,
            ((1.0
                - (40.755_f64.to_radians().tan() + 1.0 / 40.755_f64.to_radians().cos()).ln()
                    / std::f64::consts::PI)
                / 2.0
                * f64::from(n)) as u32,
        );
        let r = (n >> 12).clamp(1, 24);
        for x in x0.saturating_sub(r)..=x0 + r {
            for y in y0.saturating_sub(r)..=y0 + r {
                coords.push((z, x, y));
            }
        }
    }
    let n = coords.len();
    let found = coords
        .iter()
        .filter(|(z, x, y)| ours.get_stored(*z, *x, *y).expect("read").is_some())
        .count();
    assert!(found > 0, "no tiles of the archive in the window");
    let ours_t = best(n, || {
        for (z, x, y) in &coords {
            black_box(ours.get_stored(*z, *x, *y).expect("read"));
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reader = rt
        .block_on(pmtiles::AsyncPmTilesReader::new_with_cached_path(
            pmtiles::HashMapCache::default(),
            path,
        ))
        .expect("pmtiles open");
    let mut theirs_found = 0;
    for (z, x, y) in &coords {
        let id = pmtiles::TileCoord::new(*z, *x, *y).expect("coord");
        let a = rt.block_on(reader.get_tile(id)).expect("read");
        let b = ours.get_stored(*z, *x, *y).expect("read");
        assert_eq!(a.as_deref(), b.map(|(t, _)| t), "same tile {z}/{x}/{y}");
        theirs_found += usize::from(a.is_some());
    }
    assert_eq!(theirs_found, found);
    let crate_t = best(n, || {
        rt.block_on(async {
            for (z, x, y) in &coords {
                let id = pmtiles::TileCoord::new(*z, *x, *y).expect("coord");
                black_box(reader.get_tile(id).await.expect("read"));
            }
        });
    });
    report(
        &format!("pmtiles tile lookup ({found} of {n} present)"),
        n,
        ours_t,
        crate_t,
        "pmtiles 0.26 (mmap, HashMapCache)",
    );
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 3 {
        eprintln!("usage: crates BUILDINGS.geojson ARCHIVE.pmtiles");
        std::process::exit(2);
    }
    let tf = Transformer::new(Crs::Wgs84, Crs::Wgs84).expect("identity");
    let est = wangge::model::EstimateParams::default();
    let (bs, _) = wangge::io::geojson::read_buildings(std::path::Path::new(&args[1]), &tf, &est)
        .expect("buildings");
    let geoms: Vec<Geometry> = bs
        .into_iter()
        .map(|b| Geometry::MultiPolygon(b.geometry))
        .collect();
    wkb(&geoms);
    validation(&geoms);
    pmtiles(&args[2]);
}
