//! A deterministic, realistic sample district (示例城区): superblocks bounded by an irregular
//! arterial network form communities (社区) of roughly 1,500–6,000 households; local streets
//! split each into compounds (小区) of 6-storey slabs, 18–33-storey towers, 4–5-storey walk-ups,
//! dense 2–3-storey village housing (城中村), or schools and shops with no households.
//!
//! Everything derives from the seed: the same seed and size give byte-identical files.

use crate::geom::frame::LocalFrame;
use geo::Coord;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// The generated layers as GeoJSON values (WGS84).
pub struct SampleCity {
    pub communities: Value,
    pub buildings: Value,
    pub roads: Value,
    /// Total households.
    pub households: u64,
}

const NAME_A: [&str; 24] = [
    "城东", "城西", "滨江", "桃花", "东山", "西陵", "学院", "夷陵", "樵湖", "云集", "南湖", "北门",
    "福绥", "珍珠", "白龙", "青松", "石榴", "金桂", "望江", "古塔", "杨岔", "峡州", "铁路", "胜利",
];
const NAME_B: [&str; 12] = [
    "", "岭", "湾", "坪", "路", "苑", "坡", "街", "园", "桥", "里", "台",
];

/// District code (宜昌市西陵区, GB/T 2260) used for the sample's 12-digit community codes.
pub const DISTRICT: &str = "420502";

fn lerp(a: Coord, b: Coord, t: f64) -> Coord {
    Coord {
        x: a.x + (b.x - a.x) * t,
        y: a.y + (b.y - a.y) * t,
    }
}

/// Bilinear point of a quad (p00, p10, p11, p01) at (u, v).
fn quad_pt(q: &[Coord; 4], u: f64, v: f64) -> Coord {
    lerp(lerp(q[0], q[1], u), lerp(q[3], q[2], u), v)
}

fn pip(poly: &[Coord], p: Coord) -> bool {
    let mut inside = false;
    let n = poly.len();
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (poly[i], poly[j]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// The chord of the line through `a` and `b` across a closed ring (first and last crossing).
fn clip_to_ring(ring: &[Coord], a: Coord, b: Coord) -> (Coord, Coord) {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let mut ts = Vec::new();
    let n = ring.len();
    for i in 0..n {
        let (p, q) = (ring[i], ring[(i + 1) % n]);
        let (ex, ey) = (q.x - p.x, q.y - p.y);
        let den = dx * ey - dy * ex;
        if den.abs() < 1e-12 {
            continue;
        }
        let t = ((p.x - a.x) * ey - (p.y - a.y) * ex) / den;
        let u = ((p.x - a.x) * dy - (p.y - a.y) * dx) / den;
        if (0.0..=1.0).contains(&u) {
            ts.push(t);
        }
    }
    if ts.len() < 2 {
        return (a, b);
    }
    let lo = ts.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lerp(a, b, lo), lerp(a, b, hi))
}

fn poly_dist(poly: &[Coord], p: Coord) -> f64 {
    let n = poly.len();
    (0..n)
        .map(|i| crate::geom::seg_point_dist(poly[i], poly[(i + 1) % n], p))
        .fold(f64::INFINITY, f64::min)
}

#[derive(Clone, Copy)]
enum Kind {
    Slabs,
    Towers,
    WalkUps,
    Village,
    Civic,
}

struct Ctx {
    frame: LocalFrame,
    rng: ChaCha8Rng,
    buildings: Vec<Value>,
    roads: Vec<Value>,
    households: u64,
    next_id: u64,
}

impl Ctx {
    fn ll(&self, c: Coord) -> Value {
        let w = self.frame.inv(c);
        json!([(w.x * 1e7).round() / 1e7, (w.y * 1e7).round() / 1e7])
    }
    fn road(&mut self, pts: &[Coord], highway: &str, name: &str) {
        let coords: Vec<Value> = pts.iter().map(|c| self.ll(*c)).collect();
        let mut props = json!({ "highway": highway });
        if !name.is_empty() {
            props["name"] = json!(name);
        }
        self.roads.push(json!({ "type": "Feature", "properties": props, "geometry": { "type": "LineString", "coordinates": coords } }));
    }
    #[expect(
        clippy::too_many_arguments,
        reason = "the inputs are distinct layers and settings; a struct would only rename them"
    )]
    /// A rectangle `w`×`d` centred at `c`, rotated by `ang`, if it keeps `setback` from the block edge.
    fn building(
        &mut self,
        block: &[Coord],
        c: Coord,
        w: f64,
        d: f64,
        ang: f64,
        setback: f64,
        kind: &str,
        floors: u32,
        share: f64,
    ) -> bool {
        let (ca, sa) = (ang.cos(), ang.sin());
        let corners: Vec<Coord> = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
            .iter()
            .map(|(u, v)| Coord {
                x: c.x + u * w * ca - v * d * sa,
                y: c.y + u * w * sa + v * d * ca,
            })
            .collect();
        if !corners
            .iter()
            .all(|p| pip(block, *p) && poly_dist(block, *p) >= setback)
        {
            return false;
        }
        let footprint = w * d;
        let hh = (footprint * f64::from(floors) * share / 100.0).round() as u64;
        self.households += hh;
        self.next_id += 1;
        let mut ring: Vec<Value> = corners.iter().map(|p| self.ll(*p)).collect();
        ring.push(ring[0].clone());
        self.buildings.push(json!({
            "type": "Feature",
            "properties": { "id": format!("B{:06}", self.next_id), "building": kind, "building:levels": floors, "households": hh },
            "geometry": { "type": "Polygon", "coordinates": [ring] }
        }));
        true
    }

    fn fill_block(&mut self, q: &[Coord; 4], kind: Kind) {
        let block: Vec<Coord> = q.to_vec();
        let ang = (q[1].y - q[0].y).atan2(q[1].x - q[0].x);
        let wlen = ((q[1].x - q[0].x).powi(2) + (q[1].y - q[0].y).powi(2)).sqrt();
        let hlen = ((q[3].x - q[0].x).powi(2) + (q[3].y - q[0].y).powi(2)).sqrt();
        let (dx, dy, bw, bd, setback) = match kind {
            Kind::Slabs => (70.0, 32.0, 60.0, 12.0, 10.0),
            Kind::Towers => (55.0, 55.0, 26.0, 24.0, 12.0),
            Kind::WalkUps => (42.0, 26.0, 34.0, 11.0, 9.0),
            Kind::Village => (14.0, 15.0, 10.0, 11.0, 6.0),
            Kind::Civic => (80.0, 60.0, 50.0, 30.0, 12.0),
        };
        let nu = ((wlen - 2.0 * setback) / dx).floor().max(1.0) as usize;
        let nv = ((hlen - 2.0 * setback) / dy).floor().max(1.0) as usize;
        for i in 0..nu {
            for j in 0..nv {
                let u = (i as f64 + 0.5) / nu as f64;
                let v = (j as f64 + 0.5) / nv as f64;
                let mut c = quad_pt(q, u, v);
                let r: f64 = self.rng.random();
                let (kind_s, floors, share, w, d) = match kind {
                    Kind::Slabs => (
                        "apartments",
                        6,
                        1.0,
                        bw * (0.8 + 0.3 * self.rng.random::<f64>()),
                        bd,
                    ),
                    Kind::Towers => {
                        if r < 0.03 {
                            ("apartments", 33, 1.0, 42.0, 30.0) // a super tower above 400 households
                        } else {
                            ("apartments", self.rng.random_range(18..=33), 1.0, bw, bd)
                        }
                    }
                    Kind::WalkUps => ("residential", self.rng.random_range(4..=5), 1.0, bw, bd),
                    Kind::Village => {
                        if r < 0.12 {
                            continue; // lanes and yards
                        }
                        c.x += self.rng.random_range(-1.5..1.5);
                        c.y += self.rng.random_range(-1.5..1.5);
                        (
                            "house",
                            self.rng.random_range(2..=4),
                            1.0,
                            bw * (0.8 + 0.4 * self.rng.random::<f64>()),
                            bd,
                        )
                    }
                    Kind::Civic => {
                        if r < 0.5 {
                            ("school", 4, 0.0, bw, bd)
                        } else {
                            ("retail", 2, 0.0, bw * 0.8, bd * 0.8)
                        }
                    }
                };
                let ang_j = ang + self.rng.random_range(-0.03..0.03);
                self.building(&block, c, w, d, ang_j, setback - 3.0, kind_s, floors, share);
            }
        }
        // shops along the street edge of residential compounds (0 households)
        if matches!(kind, Kind::Slabs | Kind::WalkUps) && self.rng.random::<f64>() < 0.5 {
            let c = quad_pt(q, 0.5, 0.08);
            self.building(&block, c, 30.0, 8.0, ang, 3.0, "retail", 1, 0.0);
        }
    }
}

/// The arterial network: jittered nodes, and bent midpoints of the edges between them (shared
/// by both neighbouring superblocks).
struct Arterials {
    node: Vec<Vec<Coord>>,
    hmid: Vec<Vec<Coord>>,
    vmid: Vec<Vec<Coord>>,
}

const ROAD_NAMES: [&str; 12] = [
    "东山大道",
    "夷陵大道",
    "沿江大道",
    "西陵一路",
    "西陵二路",
    "发展大道",
    "城东大道",
    "港窑路",
    "樵湖路",
    "珍珠路",
    "峡州路",
    "桃花岭路",
];

impl Arterials {
    fn new(ctx: &mut Ctx, rows: usize, cols: usize, span: f64) -> Arterials {
        let mut node = vec![vec![Coord { x: 0.0, y: 0.0 }; cols + 1]; rows + 1];
        for (r, row) in node.iter_mut().enumerate() {
            for (c, p) in row.iter_mut().enumerate() {
                let jx = if c == 0 || c == cols {
                    0.0
                } else {
                    ctx.rng.random_range(-60.0..60.0)
                };
                let jy = if r == 0 || r == rows {
                    0.0
                } else {
                    ctx.rng.random_range(-60.0..60.0)
                };
                *p = Coord {
                    x: c as f64 * span + jx + r as f64 * 25.0,
                    y: -(r as f64) * span + jy,
                };
            }
        }
        let mut hmid = vec![vec![Coord { x: 0.0, y: 0.0 }; cols]; rows + 1];
        for r in 0..=rows {
            for c in 0..cols {
                let m = lerp(node[r][c], node[r][c + 1], 0.5);
                hmid[r][c] = Coord {
                    x: m.x,
                    y: m.y + ctx.rng.random_range(-25.0..25.0),
                };
            }
        }
        let mut vmid = vec![vec![Coord { x: 0.0, y: 0.0 }; cols + 1]; rows];
        for r in 0..rows {
            for c in 0..=cols {
                let m = lerp(node[r][c], node[r + 1][c], 0.5);
                vmid[r][c] = Coord {
                    x: m.x + ctx.rng.random_range(-25.0..25.0),
                    y: m.y,
                };
            }
        }
        Arterials { node, hmid, vmid }
    }

    /// The arterial roads: one per row and one per column of nodes, primary and secondary in turn.
    fn roads(&self, ctx: &mut Ctx, rows: usize, cols: usize) {
        let (node, hmid, vmid) = (&self.node, &self.hmid, &self.vmid);
        for r in 0..=rows {
            let mut pts = Vec::new();
            for c in 0..cols {
                pts.push(node[r][c]);
                pts.push(hmid[r][c]);
            }
            pts.push(node[r][cols]);
            let hw = if r % 2 == 0 { "primary" } else { "secondary" };
            ctx.road(&pts, hw, ROAD_NAMES[r % ROAD_NAMES.len()]);
        }
        for c in 0..=cols {
            let mut pts = Vec::new();
            for r in 0..rows {
                pts.push(node[r][c]);
                pts.push(vmid[r][c]);
            }
            pts.push(node[rows][c]);
            let hw = if c % 2 == 0 { "primary" } else { "secondary" };
            ctx.road(&pts, hw, ROAD_NAMES[(c + 5) % ROAD_NAMES.len()]);
        }
    }
}

/// A community name not used yet: random two-part names while fresh ones are likely, then
/// numbered (第二…) variants.
fn community_name(ctx: &mut Ctx, used: &mut std::collections::HashSet<String>, k: usize) -> String {
    for attempt in 0..64 {
        let a = NAME_A[ctx.rng.random_range(0..NAME_A.len())];
        let b = NAME_B[ctx.rng.random_range(0..NAME_B.len())];
        let base = format!("{a}{b}");
        let candidate = if attempt < 16 {
            format!("{base}社区")
        } else {
            format!(
                "{base}第{}社区",
                crate::model::chinese_ordinal(attempt / 16 + 1)
            )
        };
        if used.insert(candidate.clone()) {
            return candidate;
        }
    }
    let name = format!("第{}社区", k + 1);
    used.insert(name.clone());
    name
}

/// Split a superblock (`q`: sw, se, ne, nw) into 2×2 or 3×2 compounds by local streets that end
/// on the arterials, and fill them; tried again (up to 12 times) until the community holds
/// 1,600–5,800 households.
fn fill_superblock(ctx: &mut Ctx, q: &[Coord; 4], ring: &[Coord], dist_c: f64) {
    let (b0, r0, h0, id0) = (
        ctx.buildings.len(),
        ctx.roads.len(),
        ctx.households,
        ctx.next_id,
    );
    for attempt in 0..12 {
        ctx.buildings.truncate(b0);
        ctx.roads.truncate(r0);
        ctx.households = h0;
        ctx.next_id = id0;
        let nu = ctx.rng.random_range(2..=3usize);
        let nv = 2usize;
        let cuts = |n: usize, ctx: &mut Ctx| -> Vec<f64> {
            (0..=n)
                .map(|i| {
                    if i == 0 || i == n {
                        i as f64 / n as f64
                    } else {
                        i as f64 / n as f64 + ctx.rng.random_range(-0.06..0.06)
                    }
                })
                .collect()
        };
        let us = cuts(nu, ctx);
        let vs = cuts(nv, ctx);
        for i in 1..nu {
            let (a, b) = clip_to_ring(ring, quad_pt(q, us[i], 0.0), quad_pt(q, us[i], 1.0));
            ctx.road(&[a, b], "residential", "");
        }
        for j in 1..nv {
            let (a, b) = clip_to_ring(ring, quad_pt(q, 0.0, vs[j]), quad_pt(q, 1.0, vs[j]));
            ctx.road(&[a, b], "residential", "");
        }
        fill_compounds(ctx, q, (&us, &vs), attempt, dist_c);
        let hh = ctx.households - h0;
        if (1_600..=5_800).contains(&hh) {
            break;
        }
    }
}

/// Fill each compound of a superblock with a kind of housing (civic, village, slabs, towers,
/// walk-ups; villages more likely towards the edge of the district).
fn fill_compounds(
    ctx: &mut Ctx,
    q: &[Coord; 4],
    (us, vs): (&[f64], &[f64]),
    attempt: usize,
    dist_c: f64,
) {
    let inset = |u: f64, v: f64| quad_pt(q, 0.04 + 0.92 * u, 0.04 + 0.92 * v);
    for i in 0..us.len() - 1 {
        for j in 0..vs.len() - 1 {
            let bq = [
                inset(us[i], vs[j]),
                inset(us[i + 1], vs[j]),
                inset(us[i + 1], vs[j + 1]),
                inset(us[i], vs[j + 1]),
            ];
            let x: f64 = ctx.rng.random();
            let kind = if x < 0.12 && attempt < 6 {
                Kind::Civic
            } else if dist_c > 0.7 && x < 0.45 {
                Kind::Village
            } else if x < 0.5 {
                Kind::Slabs
            } else if x < 0.72 {
                Kind::Towers
            } else if x < 0.9 {
                Kind::WalkUps
            } else {
                Kind::Village
            };
            ctx.fill_block(&bq, kind);
            // a footpath through larger compounds
            if matches!(kind, Kind::Slabs | Kind::Towers) {
                let a = quad_pt(&bq, 0.5, 0.0);
                let b = quad_pt(&bq, 0.5, 1.0);
                ctx.road(&[a, b], "footway", "");
            }
        }
    }
}

/// Generate a district with `n` communities.
#[must_use]
pub fn generate(seed: u64, n: usize) -> SampleCity {
    let n = n.max(1);
    let mut ctx = Ctx {
        frame: LocalFrame::new(111.29, 30.70),
        rng: ChaCha8Rng::seed_from_u64(seed),
        buildings: Vec::new(),
        roads: Vec::new(),
        households: 0,
        next_id: 0,
    };
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let span = 520.0;
    let art = Arterials::new(&mut ctx, rows, cols, span);
    art.roads(&mut ctx, rows, cols);
    let (node, hmid, vmid) = (&art.node, &art.hmid, &art.vmid);
    let mut communities = Vec::new();
    let centre = Coord {
        x: cols as f64 * span / 2.0,
        y: -(rows as f64) * span / 2.0,
    };
    let radius = (cols.max(rows) as f64 * span / 2.0).max(1.0);
    let mut used_names = std::collections::HashSet::new();
    for k in 0..n {
        let (r, c) = (k / cols, k % cols);
        // ring: nw, n-mid, ne, e-mid, se, s-mid, sw, w-mid (clockwise in the north-up frame), reversed later
        let ring = [
            node[r][c],
            hmid[r][c],
            node[r][c + 1],
            vmid[r][c + 1],
            node[r + 1][c + 1],
            hmid[r + 1][c],
            node[r + 1][c],
            vmid[r][c],
        ];
        let name = community_name(&mut ctx, &mut used_names, k);
        let street = k / 8 + 1;
        let code = format!("{DISTRICT}{street:03}{:03}", k % 8 + 1);
        let mut coords: Vec<Value> = ring.iter().rev().map(|p| ctx.ll(*p)).collect();
        coords.push(coords[0].clone());
        communities.push(json!({
            "type": "Feature",
            "properties": { "code": code, "name": name, "street": format!("{DISTRICT}{street:03}") },
            "geometry": { "type": "Polygon", "coordinates": [coords] }
        }));
        let q = [
            node[r + 1][c],
            node[r + 1][c + 1],
            node[r][c + 1],
            node[r][c],
        ]; // sw, se, ne, nw
        let cc = quad_pt(&q, 0.5, 0.5);
        let dist_c = ((cc.x - centre.x).powi(2) + (cc.y - centre.y).powi(2)).sqrt() / radius;
        fill_superblock(&mut ctx, &q, &ring, dist_c);
    }
    SampleCity {
        communities: json!({ "type": "FeatureCollection", "features": communities }),
        buildings: json!({ "type": "FeatureCollection", "features": ctx.buildings }),
        roads: json!({ "type": "FeatureCollection", "features": ctx.roads }),
        households: ctx.households,
    }
}
