//! Mapbox Vector Tile 2.1 encoding (protobuf written by hand), tile coordinates, clipping and
//! per-zoom simplification that keeps shared edges shared.
//!
//! Geometry goes lon/lat → Web Mercator → integer tile coordinates (extent 4096). Snapping every
//! vertex to the integer grid is the simplification: it depends on the vertex alone, so two grids
//! that share an edge snap it identically; consecutive duplicates and exactly collinear vertices
//! (integer cross product 0) are then dropped, which cannot open a gap either. Polygons that cross
//! the tile plus its buffer are intersected with it exactly (geo's boolean operations, which split
//! a concave polygon into its pieces), lines are clipped with Liang–Barsky.

use crate::geom::floor_i64;
use geo::{BooleanOps, Coord, Geometry, LineString, Polygon};
use serde_json::Value;

/// Tile extent (units per tile side).
pub const EXTENT: i64 = 4096;
/// Buffer around the tile, in tile units.
pub const BUFFER: i64 = 64;

/// Longitude/latitude bounds of tile z/x/y: [west, south, east, north].
#[must_use]
pub fn tile_bounds(z: u8, x: u32, y: u32) -> [f64; 4] {
    let n = f64::from(1u32 << z);
    let lon = |x: f64| x / n * 360.0 - 180.0;
    let lat = |y: f64| {
        let t = std::f64::consts::PI * (1.0 - 2.0 * y / n);
        t.sinh().atan().to_degrees()
    };
    [
        lon(f64::from(x)),
        lat(f64::from(y) + 1.0),
        lon(f64::from(x) + 1.0),
        lat(f64::from(y)),
    ]
}

/// The tile containing a point at zoom z.
#[must_use]
pub fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let (px, py) = merc(lon, lat);
    let max = (1u32 << z) - 1;
    (
        floor_i64(px * n).clamp(0, i64::from(max)) as u32,
        floor_i64(py * n).clamp(0, i64::from(max)) as u32,
    )
}

/// Web Mercator in [0, 1] (x east, y south).
fn merc(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-85.051_128_78, 85.051_128_78).to_radians();
    (
        (lon + 180.0) / 360.0,
        (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0,
    )
}

/// Projects lon/lat to tile coordinates of z/x/y (not rounded).
pub struct TileFrame {
    n: f64,
    x: f64,
    y: f64,
}

impl TileFrame {
    #[must_use]
    pub fn new(z: u8, x: u32, y: u32) -> Self {
        TileFrame {
            n: f64::from(1u32 << z),
            x: f64::from(x),
            y: f64::from(y),
        }
    }
    fn px(&self, c: Coord) -> (f64, f64) {
        let (mx, my) = merc(c.x, c.y);
        (
            (mx * self.n - self.x) * EXTENT as f64,
            (my * self.n - self.y) * EXTENT as f64,
        )
    }
}

type Pt = (i64, i64);

fn snap(p: (f64, f64)) -> Pt {
    (p.0.round() as i64, p.1.round() as i64)
}

/// Drop consecutive duplicates and exactly collinear vertices of a closed ring (first ≠ last).
fn tidy_ring(mut r: Vec<Pt>) -> Vec<Pt> {
    // duplicates first (also across the closing edge), then collinear vertices until none is left
    r.dedup();
    while r.len() > 1 && r.first() == r.last() {
        r.pop();
    }
    loop {
        let n = r.len();
        if n < 3 {
            return Vec::new();
        }
        let mut keep = Vec::with_capacity(n);
        let mut changed = false;
        for i in 0..n {
            let a = r[(i + n - 1) % n];
            let b = r[i];
            let c = r[(i + 1) % n];
            let cross = (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0);
            if cross == 0 {
                changed = true;
                continue;
            }
            keep.push(b);
        }
        r = keep;
        r.dedup();
        if !changed {
            return r;
        }
    }
}

fn ring_area2(r: &[Pt]) -> i64 {
    let n = r.len();
    (0..n)
        .map(|i| {
            let (a, b) = (r[i], r[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum()
}

/// Rings in tile coordinates (exterior first, first ≠ last) snapped and oriented as MVT wants
/// (exterior positive area in tile coordinates, y down; holes negative). None when nothing is left.
fn assemble(ext: &[(f64, f64)], holes: &[Vec<(f64, f64)>]) -> Option<Vec<Vec<Pt>>> {
    let mut ext = tidy_ring(ext.iter().copied().map(snap).collect());
    if ext.len() < 3 || ring_area2(&ext) == 0 {
        return None;
    }
    if ring_area2(&ext) < 0 {
        ext.reverse();
    }
    let mut rings = vec![ext];
    for h in holes {
        let mut r = tidy_ring(h.iter().copied().map(snap).collect());
        if r.len() < 3 || ring_area2(&r) == 0 {
            continue;
        }
        if ring_area2(&r) > 0 {
            r.reverse();
        }
        rings.push(r);
    }
    Some(rings)
}

/// A polygon in tile coordinates, cut to the tile and its buffer: none, one, or — where a
/// concave polygon leaves the window and comes back — several. A polygon inside the window is
/// only snapped; one that crosses it is intersected with the window exactly (geo's boolean
/// operations), which splits it where it must. Sutherland–Hodgman, used before, joined such
/// pieces along the window edge into zero-width runs (invalid polygons in 101 of 3,965 Manhattan
/// grid tiles, issue 18).
fn tile_polygons(p: &Polygon, f: &TileFrame) -> Vec<Vec<Vec<Pt>>> {
    let px = |l: &LineString| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = l.0.iter().map(|c| f.px(*c)).collect();
        if pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        pts
    };
    let ext = px(p.exterior());
    let holes: Vec<Vec<(f64, f64)>> = p.interiors().iter().map(px).collect();
    window_polygons(&ext, &holes)
}

/// A polygon already in tile coordinates (rings without their closing point), cut to the tile
/// and its buffer and assembled (see [`tile_polygons`]).
fn window_polygons(ext: &[(f64, f64)], holes: &[Vec<(f64, f64)>]) -> Vec<Vec<Vec<Pt>>> {
    let lo = -(BUFFER as f64);
    let hi = (EXTENT + BUFFER) as f64;
    let within = |r: &[(f64, f64)]| {
        r.iter()
            .all(|q| q.0 >= lo && q.0 <= hi && q.1 >= lo && q.1 <= hi)
    };
    if within(ext) && holes.iter().all(|h| within(h)) {
        return assemble(ext, holes).map(repaired).unwrap_or_default();
    }
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for q in ext {
        (x0, y0, x1, y1) = (x0.min(q.0), y0.min(q.1), x1.max(q.0), y1.max(q.1));
    }
    if x1 < lo || y1 < lo || x0 > hi || y0 > hi {
        return Vec::new();
    }
    let ring = |r: &[(f64, f64)]| LineString::from(r.to_vec());
    let poly = Polygon::new(ring(ext), holes.iter().map(|h| ring(h)).collect());
    let window = geo::Rect::new((lo, lo), (hi, hi)).to_polygon();
    // geo's boolean operations can panic on a degenerate polygon (found by the mvt_clip fuzz
    // target): such a feature is left out of this tile rather than failing the tile
    let Ok(clipped) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poly.intersection(&window)))
    else {
        return Vec::new();
    };
    clipped
        .0
        .iter()
        .filter_map(|q| {
            let ext = px_ring(q.exterior());
            let holes: Vec<Vec<(f64, f64)>> = q.interiors().iter().map(px_ring).collect();
            assemble(&ext, &holes)
        })
        .flat_map(repaired)
        .collect()
}

fn to_geo(rings: &[Vec<Pt>]) -> Polygon {
    #[expect(
        clippy::cast_precision_loss,
        reason = "tile coordinates are small integers"
    )]
    let ring = |r: &Vec<Pt>| {
        LineString::from(
            r.iter()
                .map(|p| (p.0 as f64, p.1 as f64))
                .collect::<Vec<_>>(),
        )
    };
    Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
}

/// A snapped polygon as valid pieces: snapping to the integer grid can make a thin part cross
/// itself or a ring touch itself; such a polygon is rebuilt from its outline (geo's boolean
/// operations resolve the crossings) and snapped again. Valid polygons — nearly all — pass as
/// they are.
fn repaired(rings: Vec<Vec<Pt>>) -> Vec<Vec<Vec<Pt>>> {
    use geo::Validation;
    let p = to_geo(&rings);
    if p.is_valid() {
        return vec![rings];
    }
    let Ok(fixed) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        geo::MultiPolygon(vec![p]).union(&geo::MultiPolygon::<f64>(vec![]))
    })) else {
        return vec![rings];
    };
    let out: Vec<Vec<Vec<Pt>>> = fixed
        .0
        .iter()
        .filter_map(|q| {
            let holes: Vec<Vec<(f64, f64)>> = q.interiors().iter().map(px_ring).collect();
            assemble(&px_ring(q.exterior()), &holes)
        })
        .collect();
    if out.is_empty() { vec![rings] } else { out }
}

/// The points of a ring already in tile coordinates, without the closing point.
fn px_ring(l: &LineString) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = l.0.iter().map(|c| (c.x, c.y)).collect();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    pts
}

fn tile_lines(l: &LineString, f: &TileFrame) -> Vec<Vec<Pt>> {
    let lo = -(BUFFER as f64);
    let hi = (EXTENT + BUFFER) as f64;
    let pts: Vec<(f64, f64)> = l.0.iter().map(|c| f.px(*c)).collect();
    let mut out: Vec<Vec<Pt>> = Vec::new();
    let mut cur: Vec<Pt> = Vec::new();
    for w in pts.windows(2) {
        match crate::geom::clip_segment(w[0], w[1], [lo, lo, hi, hi]) {
            Some((a, b)) => {
                let (a, b) = (snap(a), snap(b));
                if cur.last() != Some(&a) {
                    if cur.len() >= 2 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur = vec![a];
                }
                if cur.last() != Some(&b) {
                    cur.push(b);
                }
            }
            None => {
                if cur.len() >= 2 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() >= 2 {
        out.push(cur);
    }
    out
}

fn zigzag(v: i64) -> u32 {
    ((v << 1) ^ (v >> 63)) as u32
}

fn command(id: u32, count: usize) -> u32 {
    (id & 7) | ((count as u32) << 3)
}

/// MVT geometry commands and type (1 point, 2 line, 3 polygon) of a geometry in tile z/x/y;
/// None when nothing of it is in the tile.
#[must_use]
pub fn encode_geometry(g: &Geometry, f: &TileFrame) -> Option<(u32, Vec<u32>)> {
    let mut cmds = Vec::new();
    let mut cursor: Pt = (0, 0);
    let move_to = |cmds: &mut Vec<u32>, p: Pt, cursor: &mut Pt| {
        cmds.push(command(1, 1));
        cmds.push(zigzag(p.0 - cursor.0));
        cmds.push(zigzag(p.1 - cursor.1));
        *cursor = p;
    };
    let line_to = |cmds: &mut Vec<u32>, pts: &[Pt], cursor: &mut Pt| {
        cmds.push(command(2, pts.len()));
        for p in pts {
            cmds.push(zigzag(p.0 - cursor.0));
            cmds.push(zigzag(p.1 - cursor.1));
            *cursor = *p;
        }
    };
    let polys: Vec<&Polygon> = match g {
        Geometry::Polygon(p) => vec![p],
        Geometry::MultiPolygon(m) => m.0.iter().collect(),
        Geometry::Point(p) => {
            let (x, y) = snap(f.px(p.0));
            if x < -BUFFER || y < -BUFFER || x > EXTENT + BUFFER || y > EXTENT + BUFFER {
                return None;
            }
            move_to(&mut cmds, (x, y), &mut cursor);
            return Some((1, cmds));
        }
        Geometry::LineString(l) => {
            for part in tile_lines(l, f) {
                move_to(&mut cmds, part[0], &mut cursor);
                line_to(&mut cmds, &part[1..], &mut cursor);
            }
            return (!cmds.is_empty()).then_some((2, cmds));
        }
        _ => return None,
    };
    for rings in polys.into_iter().flat_map(|p| tile_polygons(p, f)) {
        for r in rings {
            move_to(&mut cmds, r[0], &mut cursor);
            line_to(&mut cmds, &r[1..], &mut cursor);
            cmds.push(command(7, 1));
        }
    }
    (!cmds.is_empty()).then_some((3, cmds))
}

// ---- protobuf -----------------------------------------------------------------------------

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn packed(out: &mut Vec<u8>, field: u32, vals: &[u32]) {
    let mut b = Vec::with_capacity(vals.len() * 2);
    for v in vals {
        varint(&mut b, u64::from(*v));
    }
    bytes_field(out, field, &b);
}

/// A feature to encode.
pub struct TileFeature {
    pub id: Option<u64>,
    pub geom_type: u32,
    pub commands: Vec<u32>,
    pub properties: Vec<(String, Value)>,
}

/// One layer of a tile.
pub struct TileLayer {
    pub name: String,
    pub features: Vec<TileFeature>,
}

#[derive(PartialEq, Eq, Hash, Clone)]
enum Val {
    S(String),
    I(i64),
    D(u64),
    B(bool),
}

fn val(v: &Value) -> Option<Val> {
    match v {
        Value::String(s) => Some(Val::S(s.clone())),
        Value::Bool(b) => Some(Val::B(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Val::I)
            .or_else(|| n.as_f64().map(|f| Val::D(f.to_bits()))),
        _ => None,
    }
}

/// Encode layers as one tile (layers without features are left out).
#[must_use]
pub fn encode_tile(layers: &[TileLayer]) -> Vec<u8> {
    let mut tile = Vec::new();
    for l in layers.iter().filter(|l| !l.features.is_empty()) {
        let mut keys: Vec<String> = Vec::new();
        let mut key_ix: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut vals: Vec<Val> = Vec::new();
        let mut val_ix: std::collections::HashMap<Val, u32> = std::collections::HashMap::new();
        let mut body = Vec::new();
        varint_field(&mut body, 15, 2);
        bytes_field(&mut body, 1, l.name.as_bytes());
        for f in &l.features {
            let mut tags = Vec::new();
            for (k, v) in &f.properties {
                let Some(v) = val(v) else { continue };
                let ki = *key_ix.entry(k.clone()).or_insert_with(|| {
                    keys.push(k.clone());
                    keys.len() as u32 - 1
                });
                let vi = *val_ix.entry(v.clone()).or_insert_with(|| {
                    vals.push(v);
                    vals.len() as u32 - 1
                });
                tags.push(ki);
                tags.push(vi);
            }
            let mut fb = Vec::new();
            if let Some(id) = f.id {
                varint_field(&mut fb, 1, id);
            }
            if !tags.is_empty() {
                packed(&mut fb, 2, &tags);
            }
            varint_field(&mut fb, 3, u64::from(f.geom_type));
            packed(&mut fb, 4, &f.commands);
            bytes_field(&mut body, 2, &fb);
        }
        for k in &keys {
            bytes_field(&mut body, 3, k.as_bytes());
        }
        for v in &vals {
            let mut vb = Vec::new();
            match v {
                Val::S(s) => bytes_field(&mut vb, 1, s.as_bytes()),
                Val::D(bits) => {
                    key(&mut vb, 3, 1);
                    vb.extend_from_slice(&f64::from_bits(*bits).to_le_bytes());
                }
                Val::I(i) if *i >= 0 => varint_field(&mut vb, 5, *i as u64),
                Val::I(i) => varint_field(&mut vb, 6, ((*i << 1) ^ (*i >> 63)) as u64),
                Val::B(b) => varint_field(&mut vb, 7, u64::from(*b)),
            }
            bytes_field(&mut body, 4, &vb);
        }
        varint_field(&mut body, 5, EXTENT as u64);
        bytes_field(&mut tile, 3, &body);
    }
    tile
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_tiles_agree() {
        let b = tile_bounds(14, 13443, 6865);
        let (x, y) = tile_of((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, 14);
        assert_eq!((x, y), (13443, 6865));
        assert!(b[0] < b[2] && b[1] < b[3]);
    }

    #[test]
    fn clipping_keeps_the_inside() {
        let sq = vec![
            (-100.0, -100.0),
            (5000.0, -100.0),
            (5000.0, 5000.0),
            (-100.0, 5000.0),
        ];
        let c = window_polygons(&sq, &[]);
        assert_eq!(c.len(), 1);
        let mut r = c[0][0].clone();
        r.sort_unstable();
        assert_eq!(r, vec![(-64, -64), (-64, 4160), (4160, -64), (4160, 4160)]);
        let r = tidy_ring(vec![(0, 0), (5, 0), (10, 0), (10, 10), (10, 10), (0, 10)]);
        assert_eq!(r, vec![(0, 0), (10, 0), (10, 10), (0, 10)]);
        assert!(ring_area2(&r) > 0);
    }

    /// A U whose two arms leave the window on the same side and a comb along the edge: each
    /// piece comes back as its own polygon, with no zero-width run along the window edge.
    #[test]
    fn concave_polygons_split_at_the_window() {
        let u = vec![
            (1000.0, 1000.0),
            (5000.0, 1000.0),
            (5000.0, 1500.0),
            (2000.0, 1500.0),
            (2000.0, 2500.0),
            (5000.0, 2500.0),
            (5000.0, 3000.0),
            (1000.0, 3000.0),
        ];
        let c = window_polygons(&u, &[]);
        assert_eq!(c.len(), 1, "the U's base is inside: one polygon");
        let on_edge: Vec<&Pt> = c[0][0].iter().filter(|p| p.0 == 4160).collect();
        assert_eq!(on_edge.len(), 4, "{:?}", c[0][0]);
        // no edge along x = 4160 between the arms (y 1500..2500)
        let r = &c[0][0];
        for k in 0..r.len() {
            let (a, b) = (r[k], r[(k + 1) % r.len()]);
            assert!(
                !(a.0 == 4160 && b.0 == 4160 && a.1.min(b.1) < 2500 && a.1.max(b.1) > 1500),
                "{r:?}"
            );
        }
        // the base outside (left of the window): two separate arms
        let n: Vec<(f64, f64)> = u.iter().map(|p| (p.0 - 2100.0, p.1)).collect();
        let c = window_polygons(&n, &[]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|p| ring_area2(&p[0]) > 0));
    }

    #[test]
    fn zigzag_and_commands() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(command(1, 1), 9);
        assert_eq!(command(7, 1), 15);
    }
}
