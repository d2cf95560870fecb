//! Snap rounding of polygons that share edges: every vertex is put on a fixed grid (1e-7°, about
//! 1 cm) and every edge passes through the grid cells ("hot pixels") of all vertices it comes
//! within half a cell of, as in Hobby's snap rounding. Two polygons that shared an edge — even
//! one drawn with an extra collinear vertex on one side — come out with the same vertices on
//! it, so they still share it exactly; no two vertices of the output are closer than the grid
//! step, so projected polygons stay valid. Spikes and repeated points left by the rounding are
//! removed.

use geo::{Coord, LineString, Polygon};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// The grid step of written coordinates (degrees).
pub const GRID_DEG: f64 = 1e-7;

fn cell(c: Coord, step: f64) -> (i64, i64) {
    ((c.x / step).round() as i64, (c.y / step).round() as i64)
}

/// Hot pixels in a hash of square buckets (`b` cells a side, about 2 m), for segment queries.
struct Hot {
    step: f64,
    b: i64,
    buckets: HashMap<(i64, i64), Vec<(i64, i64)>>,
}

/// A bucket's side in degrees.
const BUCKET_DEG: f64 = 2e-5;

impl Hot {
    fn new(pixels: &HashSet<(i64, i64)>, step: f64) -> Hot {
        let b = ((BUCKET_DEG / step).round() as i64).max(1);
        let mut buckets: HashMap<(i64, i64), Vec<(i64, i64)>> = HashMap::default();
        for &p in pixels {
            buckets
                .entry((p.0.div_euclid(b), p.1.div_euclid(b)))
                .or_default()
                .push(p);
        }
        Hot { step, b, buckets }
    }

    fn bucket(&self, p: (i64, i64)) -> (i64, i64) {
        (p.0.div_euclid(self.b), p.1.div_euclid(self.b))
    }

    fn add(&mut self, p: (i64, i64)) {
        let k = self.bucket(p);
        self.buckets.entry(k).or_default().push(p);
    }

    fn remove(&mut self, p: (i64, i64)) {
        let k = self.bucket(p);
        if let Some(v) = self.buckets.get_mut(&k) {
            v.retain(|&q| q != p);
        }
    }

    /// Hot pixels (other than the ends' own) whose cell the segment a→b touches, in order along it.
    fn along(&self, a: Coord, b: Coord) -> Vec<(i64, i64)> {
        let s = self.step;
        let (ca, cb) = (cell(a, s), cell(b, s));
        let (x0, x1) = (ca.0.min(cb.0) - 1, ca.0.max(cb.0) + 1);
        let (y0, y1) = (ca.1.min(cb.1) - 1, ca.1.max(cb.1) + 1);
        let mut out: Vec<(f64, (i64, i64))> = Vec::new();
        let n = self.b;
        for bx in x0.div_euclid(n)..=x1.div_euclid(n) {
            for by in y0.div_euclid(n)..=y1.div_euclid(n) {
                let Some(v) = self.buckets.get(&(bx, by)) else {
                    continue;
                };
                for &p in v {
                    if p == ca || p == cb || p.0 < x0 || p.0 > x1 || p.1 < y0 || p.1 > y1 {
                        continue;
                    }
                    if let Some(t) = touches(a, b, p, s) {
                        out.push((t, p));
                    }
                }
            }
        }
        out.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        out.into_iter().map(|x| x.1).collect()
    }
}

/// Whether segment a→b meets the closed cell of pixel `p` (half a step around its centre); the
/// parameter along the segment of the cell centre's projection.
fn touches(a: Coord, b: Coord, p: (i64, i64), s: f64) -> Option<f64> {
    let (cx, cy) = (p.0 as f64 * s, p.1 as f64 * s);
    // a hair over half a step: a vertex half-way between two on-grid points (a midpoint) lies on
    // the corner of its cell, and must count as touched whatever the rounding of the test
    let h = s * 0.5005;
    let (lo_x, hi_x, lo_y, hi_y) = (cx - h, cx + h, cy - h, cy + h);
    // Liang–Barsky clip of the segment to the cell
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let mut t0 = 0.0f64;
    let mut t1 = 1.0f64;
    for (pp, q) in [
        (-dx, a.x - lo_x),
        (dx, hi_x - a.x),
        (-dy, a.y - lo_y),
        (dy, hi_y - a.y),
    ] {
        if pp == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / pp;
            if pp < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    let len2 = dx * dx + dy * dy;
    Some(if len2 > 0.0 {
        ((cx - a.x) * dx + (cy - a.y) * dy) / len2
    } else {
        0.0
    })
}

/// Twice the signed area of a cycle of pixels (pixel² units).
fn area2(v: &[(i64, i64)]) -> i128 {
    let n = v.len();
    (0..n)
        .map(|k| {
            let (a, b) = (v[k], v[(k + 1) % n]);
            i128::from(a.0) * i128::from(b.1) - i128::from(b.0) * i128::from(a.1)
        })
        .sum()
}

/// Repeats and spikes (x, y, x) away, around the closing point too.
fn drop_repeats(px: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(px.len());
    for p in px {
        if out.last() == Some(&p) {
            continue;
        }
        if out.len() >= 2 && out[out.len() - 2] == p {
            out.pop();
            continue;
        }
        out.push(p);
    }
    loop {
        let n = out.len();
        if n >= 2 && out[0] == out[n - 1] {
            out.pop();
        } else if n >= 3 && out[n - 2] == out[0] {
            out.pop();
            out.pop();
        } else if n >= 3 && out[1] == out[n - 1] {
            out.remove(0);
            out.pop();
        } else {
            break;
        }
    }
    out
}

/// Where the rounded ring visits a pixel twice: a loop of (almost) no area between the visits
/// — a collapsed spike, or a sliver under 2 cm wide on average — goes; on an outer ring, a loop turning the other way is a pocket
/// pinched off at one point and becomes a hole. Anything else is left for the caller to refuse.
fn untangle(v: &mut Vec<(i64, i64)>, holes: &mut Vec<Vec<(i64, i64)>>, outer: bool) {
    for _ in 0..v.len() {
        let mut first: HashMap<(i64, i64), usize> = HashMap::default();
        let mut found = None;
        for (k, p) in v.iter().enumerate() {
            if let Some(&i) = first.get(p) {
                found = Some((i, k));
                break;
            }
            first.insert(*p, k);
        }
        let Some((i, j)) = found else { return };
        let lp: Vec<(i64, i64)> = v[i..j].to_vec();
        let a = area2(&lp);
        let n = lp.len();
        let len: f64 = (0..n)
            .map(|k| {
                let (p, q) = (lp[k], lp[(k + 1) % n]);
                ((q.0 - p.0) as f64).hypot((q.1 - p.1) as f64)
            })
            .sum();
        // a sliver: mean width (area over half the length) under two pixels
        if a.abs() <= 2 || (a.abs() as f64) <= 2.0 * len {
            v.drain(i..j);
        } else if outer && (a > 0) != (area2(v) > 0) {
            v.drain(i..j);
            holes.push(lp);
        } else {
            return;
        }
        *v = drop_repeats(std::mem::take(v));
    }
}

fn to_ring(v: &[(i64, i64)], s: f64) -> LineString {
    // division by the exact 1/step writes the shortest decimal (…4567, not …4567000001)
    let inv = (1.0 / s).round();
    let mut ring: Vec<Coord> = v
        .iter()
        .map(|p| Coord {
            x: p.0 as f64 / inv,
            y: p.1 as f64 / inv,
        })
        .collect();
    ring.push(ring[0]);
    LineString(ring)
}

/// A ring through hot pixels, without repeats, spikes or collapsed loops (pockets pinched off
/// an outer ring go to `holes`); `None` when it collapses.
fn snap_ring(
    r: &LineString,
    hot: &Hot,
    outer: bool,
    holes: &mut Vec<LineString>,
) -> Option<LineString> {
    let s = hot.step;
    let mut px: Vec<(i64, i64)> = Vec::with_capacity(r.0.len() * 2);
    for w in r.0.windows(2) {
        px.push(cell(w[0], s));
        px.extend(hot.along(w[0], w[1]));
    }
    let mut out = drop_repeats(px);
    let mut pockets = Vec::new();
    untangle(&mut out, &mut pockets, outer);
    if out.len() < 3 {
        return None;
    }
    holes.extend(
        pockets
            .iter()
            .filter(|p| p.len() >= 3)
            .map(|p| to_ring(p, s)),
    );
    Some(to_ring(&out, s))
}

/// Snap-round polygons that tile an area together (one community's grids) on the same grid.
/// A polygon whose outer ring collapses is left as it was.
pub fn snap_round(polys: &mut [Polygon], step: f64) -> bool {
    snap_round_keeping(polys, &[], step)
}

/// [`snap_round`], leaving the polygons marked in `keep` exactly as they are (grids kept or
/// locked: their vertices still guide the others, which snap to them). Where rounding would make
/// a ring touch or cross itself, every polygon is left as it was (and `false` returned), so the
/// result is never less valid than the input.
pub fn snap_round_keeping(polys: &mut [Polygon], keep: &[bool], step: f64) -> bool {
    let mut pixels = HashSet::default();
    for p in polys.iter() {
        for c in vertices(p) {
            pixels.insert(cell(*c, step));
        }
    }
    let hot = Hot::new(&pixels, step);
    let mut out: Vec<Polygon> = Vec::with_capacity(polys.len());
    for (i, p) in polys.iter().enumerate() {
        if keep.get(i).copied().unwrap_or(false) {
            out.push(p.clone());
            continue;
        }
        match snap_one(p, &hot, i) {
            Some(q) => out.push(q),
            None => return false,
        }
    }
    for (p, q) in polys.iter_mut().zip(out) {
        *p = q;
    }
    true
}

fn vertices(p: &Polygon) -> impl Iterator<Item = &Coord> {
    std::iter::once(p.exterior())
        .chain(p.interiors())
        .flat_map(|r| r.0.iter())
}

/// One polygon snapped through the hot pixels; `None` where rounding would make a valid
/// polygon touch or cross itself.
fn snap_one(p: &Polygon, hot: &Hot, i: usize) -> Option<Polygon> {
    let step = hot.step;
    let mut holes = Vec::new();
    let Some(ext) = snap_ring(p.exterior(), hot, true, &mut holes) else {
        return Some(p.clone());
    };
    for r in p.interiors() {
        let mut none = Vec::new();
        if let Some(h) = snap_ring(r, hot, false, &mut none) {
            holes.push(h);
        }
    }
    let mut q = Polygon::new(ext, holes);
    if !simple(&q)
        && let Some(r) = repair_lobes(&q)
    {
        q = r;
    }
    // rounding must not make a valid polygon invalid (one drawn invalid stays no worse)
    if !simple(&q) {
        if simple(p) {
            tracing::debug!(polygon = i, step, "snapped ring touches itself");
            return None;
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let at = crate::geom::validate::find_self_intersection(p);
            let ring: Vec<(f64, f64)> = p.exterior().0.iter().map(|c| (c.x, c.y)).collect();
            tracing::debug!(
                polygon = i,
                step,
                ?at,
                ?ring,
                "drawn not simple, and snapped not simple either"
            );
        }
    }
    Some(q)
}

/// What the last [`snap_round_following`] kept: each polygon (by name) as given and as
/// snapped, and how many given vertices lie in each grid cell.
#[derive(Default)]
pub struct SnapFollow {
    hot: Option<Hot>,
    count: HashMap<(i64, i64), u32>,
    polys: HashMap<String, SnapEntry>,
}

struct SnapEntry {
    given: Polygon,
    snapped: Option<Polygon>,
    /// The given polygon's cells, grown by two: hot pixels outside do not touch it.
    cells: [i64; 4],
}

fn cells_of(p: &Polygon, step: f64) -> [i64; 4] {
    let mut b = [i64::MAX, i64::MAX, i64::MIN, i64::MIN];
    for c in vertices(p) {
        let (x, y) = cell(*c, step);
        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
    }
    [b[0] - 2, b[1] - 2, b[2] + 2, b[3] + 2]
}

impl SnapFollow {
    /// Take the polygons as given: the vertex counts follow the polygons that came, went or
    /// changed; which polygons changed, and the cells whose count came to or from zero.
    fn given(
        &mut self,
        names: &[&str],
        polys: &[Polygon],
        step: f64,
    ) -> (Vec<bool>, Vec<(i64, i64)>) {
        let f = self;
        let mut flipped: Vec<(i64, i64)> = Vec::new();
        let mut count = |p: &Polygon, d: i32, flipped: &mut Vec<(i64, i64)>| {
            for c in vertices(p) {
                let k = cell(*c, step);
                let n = f.count.entry(k).or_insert(0);
                let was = *n;
                *n = n.saturating_add_signed(d);
                if (was == 0) != (*n == 0) {
                    flipped.push(k);
                }
                if *n == 0 {
                    f.count.remove(&k);
                }
            }
        };
        let here: HashSet<&str> = names.iter().copied().collect();
        let gone: Vec<String> = f
            .polys
            .keys()
            .filter(|k| !here.contains(k.as_str()))
            .cloned()
            .collect();
        for k in gone {
            if let Some(e) = f.polys.remove(&k) {
                count(&e.given, -1, &mut flipped);
            }
        }
        let mut redo = vec![false; names.len()];
        for (i, name) in names.iter().enumerate() {
            match f.polys.get(*name) {
                Some(e) if e.given == polys[i] => {}
                old => {
                    if let Some(e) = old {
                        let g = e.given.clone();
                        count(&g, -1, &mut flipped);
                    }
                    count(&polys[i], 1, &mut flipped);
                    redo[i] = true;
                }
            }
        }
        flipped.sort_unstable();
        flipped.dedup();
        (redo, flipped)
    }
}

/// [`snap_round`] of polygons named `names`, snapping again only the polygons that changed
/// since the last call with `f` or that a hot pixel which came or went may touch: the same
/// answer as [`snap_round`].
pub fn snap_round_following(
    f: &mut SnapFollow,
    names: &[&str],
    polys: &mut [Polygon],
    step: f64,
) -> bool {
    let hot = f
        .hot
        .get_or_insert_with(|| Hot::new(&HashSet::default(), step));
    if (hot.step - step).abs() > 0.0 {
        *f = SnapFollow::default();
        return snap_round_following(f, names, polys, step);
    }
    let (redo, flipped) = f.given(names, polys, step);
    let Some(hot) = f.hot.as_mut() else {
        return false;
    };
    for &k in &flipped {
        if f.count.contains_key(&k) {
            hot.add(k);
        } else {
            hot.remove(k);
        }
    }
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        let touched = |c: &[i64; 4]| {
            flipped
                .iter()
                .any(|&(x, y)| x >= c[0] && x <= c[2] && y >= c[1] && y <= c[3])
        };
        let again = redo[i] || f.polys.get(*name).is_none_or(|e| touched(&e.cells));
        if again {
            let e = SnapEntry {
                snapped: snap_one(&polys[i], hot, i),
                cells: cells_of(&polys[i], step),
                given: polys[i].clone(),
            };
            f.polys.insert((*name).to_string(), e);
        }
        ok &= f.polys.get(*name).is_some_and(|e| e.snapped.is_some());
    }
    if !ok {
        return false;
    }
    for (i, name) in names.iter().enumerate() {
        if let Some(q) = f.polys.get(*name).and_then(|e| e.snapped.clone()) {
            polys[i] = q;
        }
    }
    true
}

/// A ring that crosses itself split at its first crossing into two loops, the smaller dropped
/// when it is a lobe of under 50 m² and under 1 % of the other (a knot left where boundaries
/// meet at a shallow angle); repeated while that helps. `None` when a larger lobe would go.
fn cut_lobes(r: &LineString) -> Option<LineString> {
    let mut v: Vec<Coord> = r.0[..r.0.len().saturating_sub(1)].to_vec();
    let m2_per_deg2 = {
        let lat = v.first().map_or(0.0, |c| c.y).to_radians();
        111_320.0 * 111_320.0 * lat.cos()
    };
    for _ in 0..16 {
        let n = v.len();
        let mut hit = None;
        'find: for i in 0..n {
            let (a, b) = (v[i], v[(i + 1) % n]);
            for j in i + 2..n {
                if (j + 1) % n == i {
                    continue;
                }
                let (c, d) = (v[j], v[(j + 1) % n]);
                if let Some(x) = crossing(a, b, c, d) {
                    hit = Some((i, j, x));
                    break 'find;
                }
            }
        }
        let Some((i, j, x)) = hit else {
            let mut out = v;
            out.push(out[0]);
            return Some(LineString(out));
        };
        // loop A: x, v[i+1..=j]; loop B: x, v[j+1..], v[..=i]
        let mut la = vec![x];
        la.extend_from_slice(&v[i + 1..=j]);
        let mut lb = vec![x];
        lb.extend_from_slice(&v[j + 1..]);
        lb.extend_from_slice(&v[..=i]);
        let area = |l: &[Coord]| {
            let k = l.len();
            (0..k)
                .map(|q| l[q].x * l[(q + 1) % k].y - l[(q + 1) % k].x * l[q].y)
                .sum::<f64>()
                .abs()
                / 2.0
        };
        let (aa, ab) = (area(&la), area(&lb));
        let (keep, small, big) = if aa >= ab { (la, ab, aa) } else { (lb, aa, ab) };
        if small * m2_per_deg2 > 50.0 || small > 0.01 * big || keep.len() < 3 {
            return None;
        }
        v = keep;
    }
    None
}

/// Where segments a–b and c–d meet (properly or at a point of one), if they do.
fn crossing(a: Coord, b: Coord, c: Coord, d: Coord) -> Option<Coord> {
    let r = Coord {
        x: b.x - a.x,
        y: b.y - a.y,
    };
    let q = Coord {
        x: d.x - c.x,
        y: d.y - c.y,
    };
    let den = r.x * q.y - r.y * q.x;
    if den == 0.0 {
        return None;
    }
    let t = ((c.x - a.x) * q.y - (c.y - a.y) * q.x) / den;
    let u = ((c.x - a.x) * r.y - (c.y - a.y) * r.x) / den;
    if (0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u) {
        // meeting at shared ends of neighbouring segments is no crossing
        if (t == 0.0 || t == 1.0) && (u == 0.0 || u == 1.0) {
            return None;
        }
        Some(Coord {
            x: a.x + t * r.x,
            y: a.y + t * r.y,
        })
    } else {
        None
    }
}

/// A polygon whose rings cross themselves with small lobes cut off (see `cut_lobes`); `None`
/// when that does not make it simple.
#[must_use]
pub fn repair_lobes(p: &Polygon) -> Option<Polygon> {
    let ext = cut_lobes(p.exterior())?;
    let holes = p
        .interiors()
        .iter()
        .map(cut_lobes)
        .collect::<Option<Vec<_>>>()?;
    let q = Polygon::new(ext, holes);
    simple(&q).then_some(q)
}

/// No ring visits a point twice and none crosses itself.
fn simple(p: &Polygon) -> bool {
    for r in std::iter::once(p.exterior()).chain(p.interiors()) {
        let n = r.0.len().saturating_sub(1);
        let mut seen: HashSet<(u64, u64)> = HashSet::default();
        if !r.0[..n]
            .iter()
            .all(|c| seen.insert((c.x.to_bits(), c.y.to_bits())))
        {
            return false;
        }
    }
    crate::geom::validate::find_self_intersection(p).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(pts: &[(f64, f64)]) -> Polygon {
        Polygon::new(
            LineString(pts.iter().map(|&(x, y)| Coord { x, y }).collect()),
            vec![],
        )
    }

    #[test]
    fn shared_edge_with_an_extra_vertex_becomes_identical() {
        // left square's right edge goes straight; the right one has a vertex almost on it
        let s = 1e-7;
        let mut v = vec![
            sq(&[
                (0.0, 0.0),
                (1e-5, 0.0),
                (1e-5, 1e-5),
                (0.0, 1e-5),
                (0.0, 0.0),
            ]),
            sq(&[
                (1e-5, 0.0),
                (2e-5, 0.0),
                (2e-5, 1e-5),
                (1e-5, 1e-5),
                (1e-5 + 1e-9, 0.5e-5),
                (1e-5, 0.0),
            ]),
        ];
        snap_round(&mut v, s);
        let on = |p: &Polygon| {
            p.exterior()
                .0
                .iter()
                .filter(|c| (c.x - 1e-5).abs() < 1e-12)
                .count()
        };
        // both now pass through the middle vertex
        assert!(
            v[0].exterior()
                .0
                .iter()
                .any(|c| (c.y - 0.5e-5).abs() < 1e-12)
        );
        assert_eq!(on(&v[0]), 3);
        assert!(on(&v[1]) >= 3);
        for p in &v {
            assert!(crate::geom::validate::find_self_intersection(p).is_none());
        }
    }

    #[test]
    fn close_vertices_merge_and_spikes_go() {
        let mut v = vec![sq(&[
            (0.0, 0.0),
            (1e-5, 0.0),
            (1e-5 + 1e-9, 1e-9),
            (1e-5, 1e-5),
            (0.0, 1e-5),
            (0.0, 0.0),
        ])];
        snap_round(&mut v, 1e-7);
        assert_eq!(v[0].exterior().0.len(), 5);
    }
}
