//! Locate throughput: build the locator over a grid layer, then locate N random points (the
//! same points written to a file for the GEOS and PostGIS runs of scripts/bench-locate).
//!
//! cargo bench --bench locate -- GRIDS.geojson N SEED POINTS_OUT.f64

use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::io::Write;
use std::time::Instant;
use wangge::geom::crs::{Crs, Transformer};
use wangge::locate::Locator;

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 4 {
        eprintln!("usage: locate GRIDS.geojson N SEED [POINTS_OUT.f64]");
        std::process::exit(2);
    }
    let n: usize = args[2].parse().expect("N");
    let seed: u64 = args[3].parse().expect("SEED");
    let tf = Transformer::new(Crs::Wgs84, Crs::Wgs84).expect("identity");
    let zones =
        wangge::io::geojson::read_zones(std::path::Path::new(&args[1]), &tf).expect("grids");
    let nz = zones.len();
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for z in &zones {
        for p in &z.polygon.0 {
            for c in &p.exterior().0 {
                lo = [lo[0].min(c.x), lo[1].min(c.y)];
                hi = [hi[0].max(c.x), hi[1].max(c.y)];
            }
        }
    }
    let t = Instant::now();
    let loc = Locator::new(zones).expect("locator");
    let build_s = t.elapsed().as_secs_f64();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pts: Vec<[f64; 2]> = (0..n)
        .map(|_| {
            [
                rng.random_range(lo[0]..hi[0]),
                rng.random_range(lo[1]..hi[1]),
            ]
        })
        .collect();
    if let Some(out) = args.get(4) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("points file"));
        for p in &pts {
            f.write_all(&p[0].to_le_bytes()).unwrap();
            f.write_all(&p[1].to_le_bytes()).unwrap();
        }
    }
    let run1 = || {
        let t = Instant::now();
        let inside = pts
            .iter()
            .filter(|p| {
                loc.find_inside(geo::Coord { x: p[0], y: p[1] }, None)
                    .is_some()
            })
            .count();
        (inside, t.elapsed().as_secs_f64())
    };
    let run2 = || {
        let t = Instant::now();
        let inside = pts
            .par_iter()
            .with_min_len(65_536)
            .filter(|p| {
                loc.find_inside(geo::Coord { x: p[0], y: p[1] }, None)
                    .is_some()
            })
            .count();
        (inside, t.elapsed().as_secs_f64())
    };
    let _ = run1();
    let (i1, s1) = run1();
    let (i2, s2) = run2();
    let (i3, s3) = run2();
    let s2 = s2.min(s3);
    assert_eq!(i1, i2);
    assert_eq!(i2, i3);
    println!(
        "{}",
        serde_json::json!({
            "grids": nz, "points": n, "inside": i1, "build_s": build_s,
            "one_core_points_per_s": n as f64 / s1, "all_cores_points_per_s": n as f64 / s2,
            "threads": rayon::current_num_threads(),
        })
    );
}
