//! Import of a grid layer edited by hand (in QGIS, say) as a draft plan. Every atom of the
//! communities the layer covers goes to the drawn grid holding most of its area, so no building
//! is ever split; what the drawing did wrong is named: buildings a drawn boundary cuts (with
//! where each went), land no grid covers (gaps, given to the neighbouring grid), land two grids
//! cover (overlaps), grids that came out in pieces, codes that could not be kept.

use super::EditError;
use super::state::{State, seq_of};
use crate::geom::interior_point::interior_point;
use crate::io::geojson::{parse_geometry, value_text};
use crate::locate::{Locator, Zone};
use crate::model::{Building, Community, Road};
use crate::partition::RegridParams;
use crate::partition::fabric::Fabric;
use crate::partition::queue::heaviest_first;
use geo::{Area, BooleanOps, BoundingRect, Coord, MultiPolygon};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One drawn grid of the layer.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub code: Option<String>,
    pub community: Option<String>,
    pub geometry: MultiPolygon,
}

/// What the import found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub grids: usize,
    /// Buildings a drawn boundary cuts: id, the drawn grids' shares (%), the grid it went to.
    pub cut_buildings: Vec<CutBuilding>,
    /// Land in no drawn grid, by community: m², households, the grid it joined.
    pub gaps: Vec<Piece>,
    /// Land in two drawn grids: the codes (or feature numbers) and m².
    pub overlaps: Vec<Overlap>,
    /// Parts of a drawn grid cut off from the rest (joined to a neighbour).
    pub detached: Vec<Piece>,
    pub codes_kept: usize,
    /// Codes given anew: (feature number, old code or none, new code).
    pub codes_new: Vec<(usize, Option<String>, String)>,
    /// Drawn features that got no land at all.
    pub empty: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CutBuilding {
    pub building: String,
    pub shares: Vec<(String, f64)>,
    pub went_to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Piece {
    pub community: String,
    pub area_m2: f64,
    pub households: u64,
    pub joined: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overlap {
    pub a: String,
    pub b: String,
    pub area_m2: f64,
}

/// The drawn grids of a GeoJSON FeatureCollection.
///
/// # Errors
/// A body that is not a FeatureCollection of polygons (the feature and field named).
pub fn read_layer(v: &Value) -> Result<Vec<Drawn>, EditError> {
    if v.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(EditError::Invalid(
            "grid layer: expected a GeoJSON FeatureCollection".into(),
        ));
    }
    let feats = v["features"]
        .as_array()
        .ok_or_else(|| EditError::Invalid("grid layer: `features` must be an array".into()))?;
    let mut out = Vec::with_capacity(feats.len());
    for (i, f) in feats.iter().enumerate() {
        let p = &f["properties"];
        let g = parse_geometry(&f["geometry"])
            .map_err(|e| EditError::Invalid(format!("grid layer: feature {i}: geometry {e}")))?;
        let crate::io::geojson::Geom::Polygons(mp) = g else {
            return Err(EditError::Invalid(format!(
                "grid layer: feature {i}: geometry is not a Polygon or MultiPolygon"
            )));
        };
        out.push(Drawn {
            code: value_text(&p["code"]),
            community: value_text(&p["community"]),
            geometry: mp,
        });
    }
    if out.is_empty() {
        return Err(EditError::Invalid("grid layer: no features".into()));
    }
    Ok(out)
}

fn label(d: &[Drawn], i: usize) -> String {
    d[i].code.clone().unwrap_or_else(|| format!("feature {i}"))
}

/// The community of each drawn grid: its `community` if known, else the one holding its
/// interior point.
fn communities_of(drawn: &[Drawn], cs: &[Community]) -> Vec<Option<usize>> {
    drawn
        .iter()
        .map(|d| {
            if let Some(c) = &d.community
                && let Some(k) = cs.iter().position(|x| &x.code == c)
            {
                return Some(k);
            }
            let p = interior_point(&d.geometry)?;
            cs.iter()
                .position(|c| crate::geom::point_in_polygons(&c.geometry.0, p))
        })
        .collect()
}

/// One community's atoms given to the drawn grids (`mine`: indices into `drawn`).
struct Assigned {
    fabric: Fabric,
    state: State,
}

/// Import a drawn layer over the store's layers: per community a fabric and a state.
///
/// # Errors
/// A layer that covers no community, or a community that cannot be tessellated.
pub fn import(
    drawn: &[Drawn],
    cs: &[Community],
    buildings: &[Building],
    roads: &[Road],
    params: &RegridParams,
) -> Result<(Vec<(Fabric, State)>, ImportReport), EditError> {
    let owner = communities_of(drawn, cs);
    let mut by_comm: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut report = ImportReport::default();
    for (i, o) in owner.iter().enumerate() {
        match o {
            Some(c) => by_comm.entry(*c).or_default().push(i),
            None => report.warnings.push(format!(
                "{} lies in no community; left out",
                label(drawn, i)
            )),
        }
    }
    if by_comm.is_empty() {
        return Err(EditError::Invalid(
            "grid layer: no drawn grid lies in a community of the store".into(),
        ));
    }
    // communities with most drawn grids first, each on the next free core
    let results: Vec<Result<(Assigned, ImportReport), EditError>> = heaviest_first(
        by_comm.iter().collect(),
        |(_, mine)| mine.len(),
        |(&ci, mine)| one_community(&cs[ci], mine, drawn, buildings, roads, params),
    );
    let mut out = Vec::new();
    for r in results {
        let (a, rep) = r?;
        report.cut_buildings.extend(rep.cut_buildings);
        report.gaps.extend(rep.gaps);
        report.overlaps.extend(rep.overlaps);
        report.detached.extend(rep.detached);
        report.codes_kept += rep.codes_kept;
        report.codes_new.extend(rep.codes_new);
        report.empty.extend(rep.empty);
        report.warnings.extend(rep.warnings);
        report.grids += a.state.grids.len();
        out.push((a.fabric, a.state));
    }
    Ok((out, report))
}

/// Per atom: its area in each drawn grid, its whole area; and the area of each overlap.
type Cover = (
    Vec<HashMap<usize, f64>>,
    Vec<f64>,
    BTreeMap<(usize, usize), f64>,
);

/// Area (m²) of each atom in each drawn grid of `mine` (by triangle, a third per corner).
/// Each triangle's centroid is looked up in a cell index of the drawn grids (the locator's),
/// every drawn grid holding it counted (more than one where drawn grids overlap).
fn atom_areas(f: &Fabric, mine: &[usize], drawn: &[Drawn]) -> Cover {
    let zones: Vec<Zone> = mine
        .iter()
        .map(|&i| Zone {
            code: i.to_string(),
            name: None,
            community: None,
            street: None,
            valid_from: None,
            valid_to: None,
            polygon: drawn[i].geometry.clone(),
        })
        .collect();
    let locator = Locator::new(zones).ok();
    let n = f.n_atoms();
    let mut cover: Vec<HashMap<usize, f64>> = vec![HashMap::new(); n];
    let mut total = vec![0.0; n];
    let mut overlaps: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    let offsets = f.offsets();
    let mut hits: Vec<usize> = Vec::new();
    for (pi, part) in f.parts.iter().enumerate() {
        let t = &part.tess;
        for fi in 1..t.faces.len() {
            if !t.inside[fi] {
                continue;
            }
            let [a, b, c] = t.faces[fi].map(|v| t.verts[v as usize]);
            let area = ((b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y)).abs() / 2.0;
            let m = Coord {
                x: (a.x + b.x + c.x) / 3.0,
                y: (a.y + b.y + c.y) / 3.0,
            };
            let p = t.frame.inv(m);
            hits.clear();
            if let Some(l) = &locator {
                hits.extend(l.all_inside(p, None).into_iter().map(|z| mine[z]));
            }
            hits.sort_unstable();
            if hits.len() > 1 {
                *overlaps.entry((hits[0], hits[1])).or_default() += area;
            }
            for &l in &t.corner[fi] {
                if l == crate::partition::tessellation::NONE {
                    continue;
                }
                let atom = offsets[pi] + l as usize;
                total[atom] += area / 3.0;
                for &h in &hits {
                    *cover[atom].entry(h).or_default() += area / 3.0 / hits.len() as f64;
                }
            }
        }
    }
    (cover, total, overlaps)
}

fn one_community(
    c: &Community,
    mine: &[usize],
    drawn: &[Drawn],
    buildings: &[Building],
    roads: &[Road],
    params: &RegridParams,
) -> Result<(Assigned, ImportReport), EditError> {
    let mut rep = ImportReport::default();
    let fabric = Fabric::build(c, buildings, roads, params)
        .map_err(|e| EditError::Refused(e.to_string()))?;
    let (cover, total, overlaps) = {
        let _s = tracing::debug_span!("import.atom_areas").entered();
        atom_areas(&fabric, mine, drawn)
    };
    for ((a, b), area) in overlaps {
        if area >= 1.0 {
            rep.overlaps.push(Overlap {
                a: label(drawn, a),
                b: label(drawn, b),
                area_m2: area.round(),
            });
        }
    }
    // each atom to the drawn grid holding most of it; uncovered atoms wait
    let n = fabric.n_atoms();
    let mut grid_of: Vec<Option<usize>> = vec![None; n];
    let shares = {
        let _s = tracing::debug_span!("import.footprint_shares").entered();
        footprint_shares(&fabric, c, mine, drawn, buildings)
    };
    for a in 0..n {
        // an atom with buildings goes where most of their footprints (by households) are
        if let Some(at) = fabric.atom(a)
            && !at.buildings.is_empty()
        {
            let mut votes: BTreeMap<usize, f64> = BTreeMap::new();
            for &b in &at.buildings {
                let w = f64::from(fabric.buildings[b as usize].households) + 1.0;
                for &(g, sh) in &shares[b as usize].0 {
                    *votes.entry(g).or_default() += w * sh;
                }
            }
            if let Some((&g, _)) = votes
                .iter()
                .max_by(|x, y| x.1.total_cmp(y.1).then(y.0.cmp(x.0)))
            {
                grid_of[a] = Some(g);
                continue;
            }
        }
        // an atom mostly outside every drawn grid is in a gap
        let covered: f64 = cover[a].values().sum();
        if covered < 0.5 * total[a] {
            continue;
        }
        grid_of[a] = cover[a]
            .iter()
            .max_by(|x, y| x.1.total_cmp(y.1).then(y.0.cmp(x.0)))
            .map(|(&g, _)| g);
    }
    let _s = tracing::debug_span!("import.rest").entered();
    let gap_atoms: Vec<usize> = (0..n).filter(|&a| grid_of[a].is_none()).collect();
    fill_from_neighbours(&fabric, &mut grid_of);
    report_gaps(&fabric, &gap_atoms, &grid_of, drawn, &mut rep);
    report_cuts(&fabric, &shares, drawn, &grid_of, &mut rep);
    let state = codes_and_state(&fabric, c, mine, drawn, &grid_of, &mut rep);
    let state = whole_grids(&fabric, state, &mut rep);
    Ok((Assigned { fabric, state }, rep))
}

/// Atoms without a drawn grid take the grid of the neighbour they share most boundary with.
fn fill_from_neighbours(f: &Fabric, grid_of: &mut [Option<usize>]) {
    for _ in 0..grid_of.len() {
        let mut changed = false;
        let mut left = false;
        for a in 0..grid_of.len() {
            if grid_of[a].is_some() {
                continue;
            }
            let best = f
                .neighbours(a)
                .into_iter()
                .filter_map(|e| grid_of[e.nbr as usize].map(|g| (g, e.len, e.nbr)))
                .max_by(|x, y| x.1.total_cmp(&y.1).then(y.2.cmp(&x.2)));
            match best {
                Some((g, _, _)) => {
                    grid_of[a] = Some(g);
                    changed = true;
                }
                None => left = true,
            }
        }
        if !left || !changed {
            break;
        }
    }
}

fn report_gaps(
    f: &Fabric,
    gap: &[usize],
    grid_of: &[Option<usize>],
    drawn: &[Drawn],
    rep: &mut ImportReport,
) {
    let mut by: BTreeMap<usize, (f64, u64)> = BTreeMap::new();
    for &a in gap {
        if let (Some(g), Some(at)) = (grid_of[a], f.atom(a)) {
            let e = by.entry(g).or_default();
            e.0 += at.area;
            e.1 += at.households;
        }
    }
    for (g, (area, hh)) in by {
        if area >= 1.0 || hh > 0 {
            rep.gaps.push(Piece {
                community: f.community.clone(),
                area_m2: area.round(),
                households: hh,
                joined: label(drawn, g),
            });
        }
    }
}

/// Each fabric building's footprint area (m², in the frame) in each drawn grid of `mine`,
/// and whether the community holds it whole.
fn footprint_shares(
    f: &Fabric,
    c: &Community,
    mine: &[usize],
    drawn: &[Drawn],
    buildings: &[Building],
) -> Vec<(Vec<(usize, f64)>, bool)> {
    let index: HashMap<&str, usize> = buildings
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id.as_str(), i))
        .collect();
    let boxes: Vec<(usize, geo::Rect)> = mine
        .iter()
        .filter_map(|&i| drawn[i].geometry.bounding_rect().map(|r| (i, r)))
        .collect();
    f.buildings
        .iter()
        .map(|fb| {
            let Some(&bi) = index.get(fb.id.as_str()) else {
                return (Vec::new(), false);
            };
            let b = &buildings[bi].geometry;
            let area = b.unsigned_area();
            let Some(br) = b.bounding_rect() else {
                return (Vec::new(), false);
            };
            if area <= 0.0 {
                return (Vec::new(), false);
            }
            let mut shares = Vec::new();
            for (i, r) in &boxes {
                if r.max().x < br.min().x
                    || r.min().x > br.max().x
                    || r.max().y < br.min().y
                    || r.min().y > br.max().y
                {
                    continue;
                }
                let s = quick_share(&drawn[*i].geometry, b, &br)
                    .unwrap_or_else(|| drawn[*i].geometry.intersection(b).unsigned_area() / area);
                if s > 0.001 {
                    shares.push((*i, s));
                }
            }
            let whole = quick_share(&c.geometry, b, &br).map_or_else(
                || c.geometry.intersection(b).unsigned_area() >= 0.99 * area,
                |s| s == 1.0,
            );
            (shares, whole)
        })
        .collect()
}

/// The share of footprint `b` (box `br`) inside `poly` when no edge of `poly` meets the box:
/// 1 wholly inside, 0 wholly outside; `None` when one does (the exact intersection decides).
fn quick_share(poly: &MultiPolygon, b: &MultiPolygon, br: &geo::Rect) -> Option<f64> {
    let (lo, hi) = (br.min(), br.max());
    for p in &poly.0 {
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            for l in ring.lines() {
                if l.start.x.max(l.end.x) >= lo.x
                    && l.start.x.min(l.end.x) <= hi.x
                    && l.start.y.max(l.end.y) >= lo.y
                    && l.start.y.min(l.end.y) <= hi.y
                {
                    return None;
                }
            }
        }
    }
    let v = *b.0.first()?.exterior().0.first()?;
    Some(if crate::geom::point_in_polygons(&poly.0, v) {
        1.0
    } else {
        0.0
    })
}

/// Buildings less than 99 % inside one drawn grid, with where each went.
fn report_cuts(
    f: &Fabric,
    shares: &[(Vec<(usize, f64)>, bool)],
    drawn: &[Drawn],
    grid_of: &[Option<usize>],
    rep: &mut ImportReport,
) {
    let of = f.atom_of_building();
    for (k, (sh, whole)) in shares.iter().enumerate() {
        let best = sh.iter().map(|x| x.1).fold(0.0, f64::max);
        if *whole && best < 0.99 && !sh.is_empty() {
            let went = of
                .get(k)
                .and_then(|&a| grid_of.get(a as usize).copied().flatten())
                .map_or_else(String::new, |g| label(drawn, g));
            rep.cut_buildings.push(CutBuilding {
                building: f.buildings[k].id.clone(),
                shares: sh
                    .iter()
                    .map(|(i, s)| (label(drawn, *i), (s * 1000.0).round() / 10.0))
                    .collect(),
                went_to: went,
            });
        }
    }
}

/// Codes kept where valid (the community's, unique), new ones after the highest; the state.
fn codes_and_state(
    f: &Fabric,
    c: &Community,
    mine: &[usize],
    drawn: &[Drawn],
    grid_of: &[Option<usize>],
    rep: &mut ImportReport,
) -> State {
    let used: Vec<usize> = {
        let mut u: Vec<usize> = grid_of.iter().flatten().copied().collect();
        u.sort_unstable();
        u.dedup();
        u
    };
    for &i in mine {
        if !used.contains(&i) {
            rep.empty.push(label(drawn, i));
        }
    }
    let valid = |code: &str| {
        seq_of(code).is_some_and(|n| n > 0)
            && crate::model::grid_code(&c.code, seq_of(code).unwrap_or(0)).as_str() == code
    };
    let mut st = State {
        grids: Vec::new(),
        atoms: vec![0; grid_of.len()],
    };
    let mut slot_of: HashMap<usize, u32> = HashMap::new();
    let mut pending = Vec::new();
    for &i in &used {
        match &drawn[i].code {
            Some(code) if valid(code) && st.index(code).is_none() => {
                slot_of.insert(i, st.push(code.clone()));
                rep.codes_kept += 1;
            }
            _ => pending.push(i),
        }
    }
    for i in pending {
        let code = st.next_code(&c.code);
        rep.codes_new.push((i, drawn[i].code.clone(), code.clone()));
        slot_of.insert(i, st.push(code));
    }
    for (a, g) in grid_of.iter().enumerate() {
        st.atoms[a] = g.and_then(|g| slot_of.get(&g).copied()).unwrap_or(0);
    }
    if st.grids.is_empty() {
        st.push(crate::model::grid_code(&f.community, 1).to_string());
    }
    st.normalize();
    st
}

/// Each grid in one piece: smaller pieces join the neighbouring grid they share most boundary with.
fn whole_grids(f: &Fabric, mut st: State, rep: &mut ImportReport) -> State {
    for _ in 0..8 {
        let members = st.members();
        let mut moved = false;
        for (g, m) in members.iter().enumerate() {
            let comps = components(f, &st, m);
            if comps.len() < 2 {
                continue;
            }
            // keep the piece with most households (then area)
            let key = |c: &Vec<u32>| {
                let hh: u64 = c
                    .iter()
                    .filter_map(|&a| f.atom(a as usize))
                    .map(|x| x.households)
                    .sum();
                let ar: f64 = c
                    .iter()
                    .filter_map(|&a| f.atom(a as usize))
                    .map(|x| x.area)
                    .sum();
                (hh, (ar * 1000.0) as u64)
            };
            let keep = (0..comps.len())
                .max_by_key(|&k| (key(&comps[k]), std::cmp::Reverse(k)))
                .unwrap_or(0);
            for (k, comp) in comps.iter().enumerate() {
                if k == keep {
                    continue;
                }
                let mut shared: BTreeMap<u32, f64> = BTreeMap::new();
                for &a in comp {
                    for e in f.neighbours(a as usize) {
                        let h = st.atoms[e.nbr as usize];
                        if h as usize != g {
                            *shared.entry(h).or_default() += e.len;
                        }
                    }
                }
                let Some((&to, _)) = shared
                    .iter()
                    .max_by(|x, y| x.1.total_cmp(y.1).then(y.0.cmp(x.0)))
                else {
                    continue;
                };
                let (hh, area) = comp
                    .iter()
                    .filter_map(|&a| f.atom(a as usize))
                    .fold((0, 0.0), |acc, x| (acc.0 + x.households, acc.1 + x.area));
                for &a in comp {
                    st.atoms[a as usize] = to;
                }
                rep.detached.push(Piece {
                    community: f.community.clone(),
                    area_m2: f64::round(area),
                    households: hh,
                    joined: st.grids[to as usize].code.clone(),
                });
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    st.normalize();
    st
}

fn components(f: &Fabric, st: &State, m: &[u32]) -> Vec<Vec<u32>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for &s in m {
        if !seen.insert(s) {
            continue;
        }
        let g = st.atoms[s as usize];
        let mut comp = vec![s];
        let mut stack = vec![s];
        while let Some(a) = stack.pop() {
            for e in f.neighbours(a as usize) {
                if e.len > 0.0 && st.atoms[e.nbr as usize] == g && seen.insert(e.nbr) {
                    comp.push(e.nbr);
                    stack.push(e.nbr);
                }
            }
        }
        comp.sort_unstable();
        out.push(comp);
    }
    out
}
