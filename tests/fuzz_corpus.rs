//! The fuzz corpus (`fuzz/corpus/<target>/`, grown by `scripts/fuzz` with `cargo fuzz`) replayed
//! through the same entry points on the stable toolchain: every file, and 2,000 seeded mutations
//! per target spread over its files (bit flips, cuts, inserted and repeated bytes, splices with
//! another file) — the CI's short smoke run of every fuzz target. A panic here is a crash the
//! fuzzer found or would find.

use rand::{Rng, SeedableRng};
use std::path::Path;

type Target = fn(&[u8]);

/// Mutated inputs per target.
const MUTATIONS: usize = 2000;

const TARGETS: [(&str, Target); 8] = [
    ("geojson", wangge::fuzz::geojson),
    ("csv_rows", wangge::fuzz::csv_rows),
    ("osm_pbf", wangge::fuzz::osm_pbf),
    ("wkb", wangge::fuzz::wkb),
    ("gpkg_blob", wangge::fuzz::gpkg_blob),
    ("pmtiles", wangge::fuzz::pmtiles),
    ("open311_form", wangge::fuzz::open311_form),
    ("mvt_clip", wangge::fuzz::mvt_clip),
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn mutate(rng: &mut rand_chacha::ChaCha8Rng, a: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !v.is_empty() => {
                let n = rng.random_range(0..v.len());
                v.truncate(n);
            }
            2 => {
                let i = rng.random_range(0..=v.len());
                let b: u8 = [0, 0xff, b'"', b',', b'\n', b'{', b']', 0x80][rng.random_range(0..8)];
                v.insert(i, b);
            }
            3 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                let j = (i + rng.random_range(1..16)).min(v.len());
                let piece = v[i..j].to_vec();
                v.splice(i..i, piece);
            }
            _ => {
                let cut = rng.random_range(0..=v.len());
                let from = rng.random_range(0..=other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    for (name, run) in TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "{name}: no corpus");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for f in &files {
            run(f);
        }
        for k in 0..MUTATIONS {
            let (f, other) = (&files[k % files.len()], &files[(k * 7 + 1) % files.len()]);
            run(&mutate(&mut rng, f, other));
        }
    }
}
