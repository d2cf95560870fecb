//! How far a grid's side reaches across to a road or a neighbour: the named line or area it faces.

use super::*;

/// The four boundaries of `grid` among `roads` and `neighbours` (all WGS84).
#[must_use]
pub fn sizhi(grid: &MultiPolygon, roads: &[NamedLine], neighbours: &[NamedArea]) -> Sizhi {
    let Some(r) = grid.bounding_rect() else {
        return Default::default();
    };
    let f = LocalFrame::new(r.center().x, r.center().y);
    let lo = f.fwd(r.min());
    let hi = f.fwd(r.max());
    let m = ROAD_REACH + 10.0;
    // a segment whose box meets the grid's box grown by the reach
    let reach = |a: Coord, b: Coord| {
        a.x.max(b.x) >= lo.x - m
            && a.x.min(b.x) <= hi.x + m
            && a.y.max(b.y) >= lo.y - m
            && a.y.min(b.y) <= hi.y + m
    };
    let mut names: Vec<&str> = Vec::new();
    let mut segs: Vec<Seg> = Vec::new();
    for rd in roads {
        let pts: Vec<Coord> = rd.line.0.iter().map(|c| f.fwd(*c)).collect();
        for w in pts.windows(2) {
            if reach(w[0], w[1]) {
                let k = names.iter().position(|n| *n == rd.name).unwrap_or_else(|| {
                    names.push(rd.name);
                    names.len() - 1
                });
                segs.push(Seg {
                    a: w[0],
                    b: w[1],
                    name: k,
                });
            }
        }
    }
    // neighbours with their bounding boxes, computed once
    let boxed: Vec<(Option<geo::Rect>, &NamedArea)> = neighbours
        .iter()
        .map(|n| (n.area.bounding_rect(), n))
        .collect();
    // each side: label → metres
    let mut sides: [BTreeMap<String, f64>; 4] = Default::default();
    for poly in &grid.0 {
        let ring: Vec<Coord> = poly.exterior().0.iter().map(|c| f.fwd(*c)).collect();
        let area2: f64 = ring
            .windows(2)
            .map(|w| w[0].x * w[1].y - w[1].x * w[0].y)
            .sum();
        let ccw = area2 > 0.0;
        for w in ring.windows(2) {
            let (a, b) = if ccw { (w[0], w[1]) } else { (w[1], w[0]) };
            let d = b - a;
            let len = d.x.hypot(d.y);
            if len < 1e-6 {
                continue;
            }
            let dir = d / len;
            let normal = Coord {
                x: dir.y,
                y: -dir.x,
            };
            let side = side_of(normal);
            let steps = (len / STEP).ceil().max(1.0);
            let piece = len / steps;
            #[expect(clippy::cast_possible_truncation, reason = "a step count")]
            for i in 0..steps as usize {
                #[expect(clippy::cast_precision_loss, reason = "a step index")]
                let p = a + dir * (piece * (i as f64 + 0.5));
                if let Some(label) = across(p, dir, normal, &segs, &names, &boxed, &f) {
                    *sides[side].entry(label).or_default() += piece;
                }
            }
        }
    }
    sides.map(|m| {
        let total: f64 = m.values().sum();
        let mut v: Vec<(String, f64)> = m
            .into_iter()
            .filter(|(_, l)| *l >= MIN_SHARE * total)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.into_iter().take(3).map(|(n, _)| n).collect()
    })
}

/// What lies across the boundary at `p` (metres), going out along `normal`.
pub(crate) fn across(
    p: Coord,
    dir: Coord,
    normal: Coord,
    segs: &[Seg],
    names: &[&str],
    neighbours: &[(Option<geo::Rect>, &NamedArea)],
    f: &LocalFrame,
) -> Option<String> {
    let mut best: Option<(f64, usize)> = None;
    for s in segs {
        let d = s.b - s.a;
        let l = d.x.hypot(d.y);
        if l < 1e-6 {
            continue;
        }
        let cos = ((d.x * dir.x + d.y * dir.y) / l).abs();
        if cos < ROAD_PARALLEL {
            continue;
        }
        let Some(q) = foot_on(s.a, s.b, p) else {
            continue;
        };
        let v = q - p;
        let dist = v.x.hypot(v.y);
        // the road lies on the boundary or outside it, not deep inside the grid
        if dist > ROAD_REACH || (v.x * normal.x + v.y * normal.y) < -5.0 {
            continue;
        }
        if best.is_none_or(|(bd, _)| dist < bd) {
            best = Some((dist, s.name));
        }
    }
    if let Some((_, k)) = best {
        return Some(names[k].to_string());
    }
    let out = Point::from(f.inv(p + normal * PROBE));
    neighbours
        .iter()
        .find(|(bx, n)| {
            bx.is_some_and(|r| geo::Intersects::intersects(&r, &out)) && n.area.contains(&out)
        })
        .map(|(_, n)| n.label.to_string())
}
