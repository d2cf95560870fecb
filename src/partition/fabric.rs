//! A community's **fabric**: its tessellation (the atoms, their adjacency, the labelled
//! triangles grids are assembled from) kept with a plan, so that grids can be redrawn by
//! reassigning atoms. Grid polygons are derived from the fabric and an assignment (see
//! `crate::plan`), never edited directly.
//!
//! The fabric is made once per plan and community (by the regrid that drew the plan, or on the
//! first edit of an older plan) and stored as a compact, deterministic binary blob
//! ([`Fabric::encode`], deflated); it never changes afterwards — only the assignment does.

use super::community::{self, Ctx};
use super::tessellation::{Adj, Atom, AtomGraph, Degradation, Tessellation};
use super::{RegridError, RegridParams, RoadIndex};
use crate::geom::frame::LocalFrame;
use crate::model::{Building, Community, Road};
use geo::{Coord, LineString, Polygon};
use std::io::{Read, Write};

/// A building as the fabric knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FabricBuilding {
    pub id: String,
    pub households: u32,
    pub weight: f64,
}

/// One part (polygon) of a community.
#[derive(Debug, Clone)]
pub struct FabricPart {
    pub tess: Tessellation,
    /// The atoms; `Atom::buildings` index [`Fabric::buildings`].
    pub graph: AtomGraph,
    /// Polygons (WGS84) kept exactly when the fabric was made (locked or kept grids): an atom
    /// with `fixed: Some(k)` alone in a grid is drawn as `fixed[k]`.
    pub fixed: Vec<Polygon>,
    /// What assembling this part's grids needs whichever grid holds which atom, gathered on
    /// first use.
    pub cache: PartCache,
}

/// The state-independent inputs of assembling a part's grids (see [`FabricPart::assembly`]).
#[derive(Clone, Default)]
pub struct PartCache(std::sync::OnceLock<std::sync::Arc<Assembly>>);

/// A part's edges between atoms and its straightening constraints.
pub struct Assembly {
    pub edges: super::assemble::AtomEdges,
    pub constraints: super::straighten::Constraints,
}

impl std::fmt::Debug for PartCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "PartCache(gathered)"
        } else {
            "PartCache(empty)"
        })
    }
}

impl FabricPart {
    /// The part's [`Assembly`], gathered once.
    #[must_use]
    pub fn assembly(&self) -> &Assembly {
        self.cache.0.get_or_init(|| {
            std::sync::Arc::new(Assembly {
                edges: super::assemble::atom_edges(&self.tess),
                constraints: super::straighten::constraints(&self.tess),
            })
        })
    }
}

/// The fabric of one community.
#[derive(Debug, Clone)]
pub struct Fabric {
    pub community: String,
    pub name: Option<String>,
    pub street: Option<String>,
    pub buildings: Vec<FabricBuilding>,
    pub parts: Vec<FabricPart>,
    /// SHA-256 of everything the tessellation read (see [`inputs_digest`]): a rebalance whose
    /// layers give the same digest keeps this fabric without tessellating again. `None` for
    /// fabrics stored before the digest was kept.
    pub inputs: Option<[u8; 32]>,
    /// What the last derivation of this fabric's grids kept, so that the next one (after an
    /// edit) redraws only what changed. Not stored; empty in a copy.
    pub follow: super::follow::FabricFollow,
}

/// A fabric that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("fabric blob: {0}")]
pub struct FabricError(String);

const MAGIC: &[u8; 8] = b"WGFAB\x00\x00\x01";
/// The stored form since the inputs' digest is kept: this magic, a flag byte, the digest when
/// the flag is 1, then the body of [`Fabric::raw`] after its magic.
const MAGIC2: &[u8; 8] = b"WGFAB\x00\x00\x02";

impl Fabric {
    /// Tessellate one community (as a regrid does, with `params`' roads classes, tessellation
    /// settings and fixed grids).
    ///
    /// # Errors
    /// A community whose geometry cannot be triangulated.
    pub fn build(
        c: &Community,
        buildings: &[Building],
        roads: &[Road],
        params: &RegridParams,
    ) -> Result<Fabric, RegridError> {
        let inp = Inputs::new(c, buildings, roads, params);
        let Some(cx) = Ctx::new(c, params) else {
            return Err(RegridError::Community {
                code: c.code.clone(),
                message: "empty geometry".into(),
            });
        };
        let mut parts = Vec::new();
        for (pi, part_ll) in c.geometry.0.iter().enumerate() {
            let Some(p) = community::tessellate_part(
                &cx,
                (pi, part_ll),
                buildings,
                &inp.mine,
                (&inp.idx.segs, &inp.idx.tree),
                &inp.fixed_here,
            )?
            else {
                continue;
            };
            if p.graph.is_empty() {
                continue;
            }
            let fixed = p.fixed.iter().map(|f| f.polygon.clone()).collect();
            parts.push((p.tess, p.graph, fixed));
        }
        let digest = inp.digest(c, buildings, params);
        Ok(Fabric::from_parts(c, buildings, parts, Some(digest)))
    }

    /// The digest of what [`Fabric::build`] would read for community `c` from these layers:
    /// equal to a stored fabric's [`Fabric::inputs`] exactly when building again would read
    /// the same inputs (and so make the same fabric).
    #[must_use]
    pub fn inputs_of(
        c: &Community,
        buildings: &[Building],
        roads: &[Road],
        params: &RegridParams,
    ) -> [u8; 32] {
        Inputs::new(c, buildings, roads, params).digest(c, buildings, params)
    }

    /// The inputs' digest kept in stored bytes (inflating only their head), if any.
    #[must_use]
    pub fn stored_inputs(bytes: &[u8]) -> Option<[u8; 32]> {
        let mut head = [0u8; 41];
        flate2::read::DeflateDecoder::new(bytes)
            .read_exact(&mut head)
            .ok()?;
        if &head[..8] != MAGIC2 || head[8] != 1 {
            return None;
        }
        head[9..].try_into().ok()
    }

    /// A fabric from tessellated parts whose atoms index `buildings` (the caller's list).
    pub(super) fn from_parts(
        c: &Community,
        buildings: &[Building],
        parts: Vec<(Tessellation, AtomGraph, Vec<Polygon>)>,
        inputs: Option<[u8; 32]>,
    ) -> Fabric {
        let mut local: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        for (_, g, _) in &parts {
            for a in &g.atoms {
                for &b in &a.buildings {
                    local.insert(b, 0);
                }
            }
        }
        let mut list = Vec::with_capacity(local.len());
        for (k, (b, v)) in local.iter_mut().enumerate() {
            *v = k as u32;
            let bd = &buildings[*b as usize];
            list.push(FabricBuilding {
                id: bd.id.clone(),
                households: bd.households,
                weight: bd.weight,
            });
        }
        let parts = parts
            .into_iter()
            .map(|(tess, mut graph, fixed)| {
                for a in &mut graph.atoms {
                    for b in &mut a.buildings {
                        *b = local[b];
                    }
                    a.buildings.sort_unstable();
                }
                FabricPart {
                    tess,
                    graph,
                    fixed,
                    cache: PartCache::default(),
                }
            })
            .collect();
        Fabric {
            community: c.code.clone(),
            name: c.name.clone(),
            street: c.street.clone(),
            buildings: list,
            parts,
            inputs,
            follow: super::follow::FabricFollow::default(),
        }
    }

    /// Number of atoms over all parts (atom ids run part after part).
    #[must_use]
    pub fn n_atoms(&self) -> usize {
        self.parts.iter().map(|p| p.graph.len()).sum()
    }

    /// The first atom id of each part, and the total.
    #[must_use]
    pub fn offsets(&self) -> Vec<usize> {
        let mut o = Vec::with_capacity(self.parts.len() + 1);
        let mut n = 0;
        for p in &self.parts {
            o.push(n);
            n += p.graph.len();
        }
        o.push(n);
        o
    }

    /// The atom with id `a`.
    #[must_use]
    pub fn atom(&self, a: usize) -> Option<&Atom> {
        let mut a = a;
        for p in &self.parts {
            if a < p.graph.len() {
                return p.graph.atoms.get(a);
            }
            a -= p.graph.len();
        }
        None
    }

    /// Neighbours (atom ids, shared length, length near a road) of atom `a`.
    #[must_use]
    pub fn neighbours(&self, a: usize) -> Vec<Adj> {
        let mut base = 0;
        for p in &self.parts {
            if a < base + p.graph.len() {
                return p
                    .graph
                    .nbrs(a - base)
                    .iter()
                    .map(|e| Adj {
                        nbr: e.nbr + base as u32,
                        ..*e
                    })
                    .collect();
            }
            base += p.graph.len();
        }
        Vec::new()
    }

    /// The atom id holding each building (by index in [`Fabric::buildings`]).
    #[must_use]
    pub fn atom_of_building(&self) -> Vec<u32> {
        let mut out = vec![u32::MAX; self.buildings.len()];
        let mut base = 0u32;
        for p in &self.parts {
            for (i, a) in p.graph.atoms.iter().enumerate() {
                for &b in &a.buildings {
                    out[b as usize] = base + i as u32;
                }
            }
            base += p.graph.len() as u32;
        }
        out
    }

    /// The frame of the community (that of its first part).
    #[must_use]
    pub fn frame(&self) -> Option<LocalFrame> {
        self.parts.first().map(|p| p.tess.frame)
    }

    /// The fabric as bytes (deflated; the same fabric gives the same bytes).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let raw = self.raw();
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        // writing to a Vec cannot fail
        let _ = z.write_all(MAGIC2);
        match &self.inputs {
            Some(d) => {
                let _ = z.write_all(&[1]);
                let _ = z.write_all(d);
            }
            None => {
                let _ = z.write_all(&[0]);
            }
        }
        let _ = z.write_all(&raw[MAGIC.len()..]);
        z.finish().unwrap_or_default()
    }

    /// The fabric's bytes before deflating, without the inputs' digest: equal for equal
    /// fabrics, and cheaper than [`Fabric::encode`] to compare two fabrics by.
    #[must_use]
    pub fn raw(&self) -> Vec<u8> {
        let mut e = Enc(Vec::new());
        e.bytes(MAGIC);
        e.str(&self.community);
        e.opt_str(self.name.as_deref());
        e.opt_str(self.street.as_deref());
        e.u32(self.buildings.len() as u32);
        for b in &self.buildings {
            e.str(&b.id);
            e.u32(b.households);
            e.f64(b.weight);
        }
        e.u32(self.parts.len() as u32);
        for p in &self.parts {
            e.part(p);
        }
        e.0
    }

    /// Read a fabric written by [`Fabric::encode`].
    ///
    /// # Errors
    /// Bytes that are not such a fabric.
    pub fn decode(bytes: &[u8]) -> Result<Fabric, FabricError> {
        let mut raw = Vec::new();
        flate2::read::DeflateDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| FabricError(e.to_string()))?;
        let mut d = Dec { b: &raw, at: 0 };
        let magic = d.take(MAGIC.len())?;
        let inputs = if magic == MAGIC2 {
            match d.u8()? {
                0 => None,
                1 => Some(
                    d.take(32)?
                        .try_into()
                        .map_err(|_| FabricError("short digest".into()))?,
                ),
                x => return Err(FabricError(format!("digest flag {x}"))),
            }
        } else if magic == MAGIC {
            None
        } else {
            return Err(FabricError("not a wangge fabric of this version".into()));
        };
        let community = d.str()?;
        let name = d.opt_str()?;
        let street = d.opt_str()?;
        let nb = d.len()?;
        let mut buildings = Vec::with_capacity(nb);
        for _ in 0..nb {
            buildings.push(FabricBuilding {
                id: d.str()?,
                households: d.u32()?,
                weight: d.f64()?,
            });
        }
        let np = d.len()?;
        let mut parts = Vec::with_capacity(np);
        for _ in 0..np {
            parts.push(d.part()?);
        }
        if d.at != d.b.len() {
            return Err(FabricError("trailing bytes".into()));
        }
        Ok(Fabric {
            community,
            name,
            street,
            buildings,
            parts,
            inputs,
            follow: super::follow::FabricFollow::default(),
        })
    }
}

/// What a community's tessellation reads from the layers: its buildings (index, part), the
/// road index, the kept grids in it.
pub(super) struct Inputs<'a> {
    pub mine: Vec<(usize, usize)>,
    pub idx: RoadIndex,
    pub fixed_here: Vec<&'a super::FixedGrid>,
}

impl<'a> Inputs<'a> {
    fn new(
        c: &Community,
        buildings: &[Building],
        roads: &[Road],
        params: &'a RegridParams,
    ) -> Inputs<'a> {
        // (only the road pieces a part's query can meet: its box grown as `near_road_ids` grows
        // it, with room to spare)
        let area = geo::BoundingRect::bounding_rect(&c.geometry).map(|r| {
            let pad = 0.001;
            rstar::AABB::from_corners(
                [r.min().x - pad, r.min().y - pad],
                [r.max().x + pad, r.max().y + pad],
            )
        });
        Inputs {
            mine: super::buildings_of(c, buildings),
            idx: RoadIndex::within(roads, &params.cut_classes, area),
            fixed_here: params
                .fixed
                .iter()
                .filter(|f| f.community == c.code)
                .collect(),
        }
    }

    fn digest(&self, c: &Community, buildings: &[Building], params: &RegridParams) -> [u8; 32] {
        inputs_digest(
            c,
            buildings,
            &self.mine,
            (&self.idx.segs, &self.idx.tree),
            &self.fixed_here,
            params,
        )
    }
}

/// SHA-256 of everything one community's tessellation reads, in the order it reads it: the
/// community (code, name, street, rings), its buildings (id, part, households, weight,
/// footprint), per part the road pieces near it (ends, whether they cut blocks), the kept grids
/// in it, and the tessellation settings.
pub(super) fn inputs_digest(
    c: &Community,
    buildings: &[Building],
    mine: &[(usize, usize)],
    (segs, tree): (&[(Coord, Coord, bool)], &rstar::RTree<super::Boxed>),
    fixed_here: &[&super::FixedGrid],
    params: &RegridParams,
) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let s = |h: &mut sha2::Sha256, t: &str| {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    };
    let ring = |h: &mut sha2::Sha256, l: &LineString| {
        h.update((l.0.len() as u64).to_le_bytes());
        for p in &l.0 {
            h.update(p.x.to_le_bytes());
            h.update(p.y.to_le_bytes());
        }
    };
    let poly = |h: &mut sha2::Sha256, p: &Polygon| {
        ring(h, p.exterior());
        h.update((p.interiors().len() as u64).to_le_bytes());
        for r in p.interiors() {
            ring(h, r);
        }
    };
    s(&mut h, "wangge fabric inputs 1");
    s(&mut h, &c.code);
    s(&mut h, c.name.as_deref().unwrap_or("\u{0}"));
    s(&mut h, c.street.as_deref().unwrap_or("\u{0}"));
    h.update((c.geometry.0.len() as u64).to_le_bytes());
    for p in &c.geometry.0 {
        poly(&mut h, p);
    }
    h.update((mine.len() as u64).to_le_bytes());
    for &(bi, pi) in mine {
        let b = &buildings[bi];
        s(&mut h, &b.id);
        h.update((pi as u64).to_le_bytes());
        h.update(b.households.to_le_bytes());
        h.update(b.weight.to_le_bytes());
        h.update((b.geometry.0.len() as u64).to_le_bytes());
        for p in &b.geometry.0 {
            poly(&mut h, p);
        }
    }
    for part in &c.geometry.0 {
        let ids = community::near_road_ids(part, tree).unwrap_or_default();
        h.update((ids.len() as u64).to_le_bytes());
        for i in ids {
            let (a, b, cut) = segs[i];
            for v in [a.x, a.y, b.x, b.y] {
                h.update(v.to_le_bytes());
            }
            h.update([u8::from(cut)]);
        }
    }
    h.update((fixed_here.len() as u64).to_le_bytes());
    for f in fixed_here {
        s(&mut h, &f.code);
        s(&mut h, f.name.as_deref().unwrap_or("\u{0}"));
        poly(&mut h, &f.polygon);
    }
    s(&mut h, &format!("{:?}", params.tessellation));
    h.finalize().into()
}

/// Little-endian writer.
struct Enc(Vec<u8>);

impl Enc {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.bytes(&v.to_le_bytes());
    }
    fn coord(&mut self, c: Coord) {
        self.f64(c.x);
        self.f64(c.y);
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    fn tri(&mut self, v: &[[u32; 3]]) {
        self.u32(v.len() as u32);
        for t in v {
            for &x in t {
                self.u32(x);
            }
        }
    }
    fn ring(&mut self, l: &LineString) {
        self.u32(l.0.len() as u32);
        for &c in &l.0 {
            self.coord(c);
        }
    }
    fn part(&mut self, p: &FabricPart) {
        let t = &p.tess;
        self.coord(t.frame.centre());
        self.u32(t.verts.len() as u32);
        for (i, &v) in t.verts.iter().enumerate() {
            self.coord(v);
            match t.orig[i] {
                Some(o) => {
                    self.u8(1);
                    self.coord(o);
                }
                None => self.u8(0),
            }
            self.u8(u8::from(t.steiner[i]));
        }
        self.tri(&t.faces);
        self.tri(&t.nbr);
        self.tri(&t.edge);
        self.u32(t.edge_flags.len() as u32);
        self.bytes(&t.edge_flags);
        self.u32(t.inside.len() as u32);
        for &b in &t.inside {
            self.u8(u8::from(b));
        }
        self.tri(&t.corner);
        self.u32(t.n_edges as u32);
        self.u8(match t.degradation {
            Degradation::None => 0,
            Degradation::Unrefined => 1,
            Degradation::WithoutRoads => 2,
        });
        let g = &p.graph;
        self.u32(g.atoms.len() as u32);
        for a in &g.atoms {
            self.u32(a.buildings.len() as u32);
            for &b in &a.buildings {
                self.u32(b);
            }
            self.f64(a.households as f64);
            self.f64(a.weight);
            self.f64(a.area);
            self.coord(a.centroid);
            self.f64(a.outer);
            self.u32(a.fixed.unwrap_or(u32::MAX));
        }
        self.u32(g.start.len() as u32);
        for &s in &g.start {
            self.u32(s as u32);
        }
        self.u32(g.adj.len() as u32);
        for e in &g.adj {
            self.u32(e.nbr);
            self.f64(e.len);
            self.f64(e.road);
        }
        self.u32(p.fixed.len() as u32);
        for poly in &p.fixed {
            self.ring(poly.exterior());
            self.u32(poly.interiors().len() as u32);
            for r in poly.interiors() {
                self.ring(r);
            }
        }
    }
}

/// Little-endian reader.
struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FabricError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| FabricError(format!("truncated at byte {}", self.at)))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, FabricError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, FabricError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// A count, checked against what is left (each item takes at least one byte).
    fn len(&mut self) -> Result<usize, FabricError> {
        let n = self.u32()? as usize;
        if n > self.b.len() - self.at {
            return Err(FabricError(format!("count {n} past the end")));
        }
        Ok(n)
    }
    fn f64(&mut self) -> Result<f64, FabricError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(f64::from_le_bytes(a))
    }
    fn coord(&mut self) -> Result<Coord, FabricError> {
        Ok(Coord {
            x: self.f64()?,
            y: self.f64()?,
        })
    }
    fn str(&mut self) -> Result<String, FabricError> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|e| FabricError(e.to_string()))
    }
    fn opt_str(&mut self) -> Result<Option<String>, FabricError> {
        Ok(if self.u8()? == 1 {
            Some(self.str()?)
        } else {
            None
        })
    }
    fn tri(&mut self) -> Result<Vec<[u32; 3]>, FabricError> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push([self.u32()?, self.u32()?, self.u32()?]);
        }
        Ok(v)
    }
    fn ring(&mut self) -> Result<LineString, FabricError> {
        let n = self.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.coord()?);
        }
        Ok(LineString(v))
    }
    fn part(&mut self) -> Result<FabricPart, FabricError> {
        let tess = self.tess()?;
        let graph = self.graph()?;
        if tess
            .corner
            .iter()
            .flatten()
            .any(|&x| x != super::tessellation::NONE && x as usize >= graph.atoms.len())
        {
            return Err(FabricError("atom index out of range".into()));
        }
        let fixed = self.fixed()?;
        Ok(FabricPart {
            tess,
            graph,
            fixed,
            cache: PartCache::default(),
        })
    }

    fn tess(&mut self) -> Result<Tessellation, FabricError> {
        let c = self.coord()?;
        let frame = LocalFrame::new(c.x, c.y);
        let nv = self.len()?;
        let (mut verts, mut orig, mut steiner) = (
            Vec::with_capacity(nv),
            Vec::with_capacity(nv),
            Vec::with_capacity(nv),
        );
        for _ in 0..nv {
            verts.push(self.coord()?);
            orig.push(if self.u8()? == 1 {
                Some(self.coord()?)
            } else {
                None
            });
            steiner.push(self.u8()? == 1);
        }
        let faces = self.tri()?;
        let nbr = self.tri()?;
        let edge = self.tri()?;
        let ne = self.len()?;
        let edge_flags = self.take(ne)?.to_vec();
        let ni = self.len()?;
        let inside: Vec<bool> = self.take(ni)?.iter().map(|&b| b == 1).collect();
        let corner = self.tri()?;
        let n_edges = self.u32()? as usize;
        let degradation = match self.u8()? {
            0 => Degradation::None,
            1 => Degradation::Unrefined,
            _ => Degradation::WithoutRoads,
        };
        let check = |v: &[[u32; 3]], bound: usize, what: &str| {
            if v.iter()
                .flatten()
                .any(|&x| x != super::tessellation::NONE && x as usize >= bound)
            {
                Err(FabricError(format!("{what} index out of range")))
            } else {
                Ok(())
            }
        };
        check(&faces, nv, "vertex")?;
        check(&nbr, faces.len(), "face")?;
        check(&edge, edge_flags.len(), "edge")?;
        if faces.len() != nbr.len()
            || faces.len() != edge.len()
            || faces.len() != corner.len()
            || faces.len() != inside.len()
        {
            return Err(FabricError("face arrays of different lengths".into()));
        }
        Ok(Tessellation {
            frame,
            verts,
            orig,
            steiner,
            faces,
            nbr,
            edge,
            edge_flags,
            inside,
            corner,
            n_edges,
            degradation,
        })
    }

    fn graph(&mut self) -> Result<AtomGraph, FabricError> {
        let na = self.len()?;
        let mut atoms = Vec::with_capacity(na);
        for _ in 0..na {
            let nb = self.len()?;
            let mut buildings = Vec::with_capacity(nb);
            for _ in 0..nb {
                buildings.push(self.u32()?);
            }
            let households = self.f64()? as u64;
            let weight = self.f64()?;
            let area = self.f64()?;
            let centroid = self.coord()?;
            let outer = self.f64()?;
            let fixed = Some(self.u32()?).filter(|&f| f != u32::MAX);
            atoms.push(Atom {
                buildings,
                households,
                weight,
                area,
                centroid,
                outer,
                fixed,
            });
        }
        let ns = self.len()?;
        let mut start = Vec::with_capacity(ns);
        for _ in 0..ns {
            start.push(self.u32()? as usize);
        }
        let nadj = self.len()?;
        let mut adj = Vec::with_capacity(nadj);
        for _ in 0..nadj {
            adj.push(Adj {
                nbr: self.u32()?,
                len: self.f64()?,
                road: self.f64()?,
            });
        }
        if start.len() != na + 1
            || start.windows(2).any(|w| w[0] > w[1])
            || start.last() != Some(&adj.len())
            || adj.iter().any(|e| e.nbr as usize >= na)
        {
            return Err(FabricError("atom graph out of range".into()));
        }
        Ok(AtomGraph { atoms, start, adj })
    }

    fn fixed(&mut self) -> Result<Vec<Polygon>, FabricError> {
        let nfix = self.len()?;
        let mut fixed = Vec::with_capacity(nfix);
        for _ in 0..nfix {
            let ext = self.ring()?;
            let nh = self.len()?;
            let mut holes = Vec::with_capacity(nh);
            for _ in 0..nh {
                holes.push(self.ring()?);
            }
            fixed.push(Polygon::new(ext, holes));
        }
        Ok(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HouseholdSource;
    use geo::MultiPolygon;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
        Polygon::new(
            LineString::from(vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]),
            vec![],
        )
    }

    fn layers() -> (Community, Vec<Building>, Vec<Road>) {
        let c = Community {
            code: "101".into(),
            name: Some("东社区".into()),
            street: None,
            geometry: MultiPolygon(vec![rect(116.0, 39.0, 116.002, 39.001)]),
        };
        let b = |id: &str, x: f64, hh: u32| Building {
            id: id.into(),
            households: hh,
            source: HouseholdSource::Given,
            weight: f64::from(hh),
            geometry: MultiPolygon(vec![rect(x, 39.0003, x + 0.0002, 39.0006)]),
        };
        let bs = vec![
            b("a", 116.0002, 120),
            b("b", 116.0008, 150),
            b("c", 116.0014, 90),
            // outside the community: not an input of its fabric
            b("far", 116.01, 40),
        ];
        let road = |x: f64| Road {
            highway: "residential".into(),
            name: None,
            line: LineString::from(vec![(x, 38.999), (x, 39.002)]),
        };
        // (the second far away: not in the community's index)
        let roads = vec![road(116.05), road(116.0011)];
        (c, bs, roads)
    }

    /// The digest a fabric keeps is that of the inputs it was built from; it survives encoding,
    /// is read from the stored bytes' head alone, and changes with any input the community reads
    /// (not with a building elsewhere).
    #[test]
    fn inputs_digest_follows_what_the_tessellation_reads() {
        let (c, mut bs, mut roads) = layers();
        let p = RegridParams::default();
        let f = Fabric::build(&c, &bs, &roads, &p).unwrap();
        let d = Fabric::inputs_of(&c, &bs, &roads, &p);
        assert_eq!(f.inputs, Some(d));
        let bytes = f.encode();
        assert_eq!(Fabric::stored_inputs(&bytes), Some(d));
        let back = Fabric::decode(&bytes).unwrap();
        assert_eq!(back.inputs, Some(d));
        assert_eq!(back.raw(), f.raw());
        // the same as read from the whole layers (as a regrid reads them): every building's
        // interior point tested, every road piece indexed
        let owner = crate::partition::assign_buildings(std::slice::from_ref(&c), &bs);
        let mine: Vec<(usize, usize)> = owner
            .iter()
            .enumerate()
            .filter_map(|(bi, o)| o.map(|(_, pi)| (bi, pi)))
            .collect();
        assert_eq!(mine, crate::partition::buildings_of(&c, &bs));
        let whole = RoadIndex::new(&roads, &p.cut_classes);
        let d_whole = inputs_digest(&c, &bs, &mine, (&whole.segs, &whole.tree), &[], &p);
        assert_eq!(d_whole, d);
        // a building or a road elsewhere: the same inputs
        bs[3].households += 500;
        roads[0].line.0[0].x += 1e-6;
        assert_eq!(Fabric::inputs_of(&c, &bs, &roads, &p), d);
        bs[1].households += 500;
        let d2 = Fabric::inputs_of(&c, &bs, &roads, &p);
        assert_ne!(d2, d);
        roads[1].line.0[0].x += 1e-6;
        assert_ne!(Fabric::inputs_of(&c, &bs, &roads, &p), d2);
    }

    /// Fabrics stored before the digest (the first format) still decode, without one; bytes
    /// that are no fabric are refused.
    #[test]
    fn first_format_fabrics_decode_without_a_digest() {
        let (c, bs, roads) = layers();
        let f = Fabric::build(&c, &bs, &roads, &RegridParams::default()).unwrap();
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&f.raw()).unwrap();
        let old = z.finish().unwrap();
        assert_eq!(Fabric::stored_inputs(&old), None);
        let back = Fabric::decode(&old).unwrap();
        assert_eq!(back.inputs, None);
        assert_eq!(back.raw(), f.raw());
        let mut none = f.clone();
        none.inputs = None;
        assert_eq!(Fabric::stored_inputs(&none.encode()), None);
        assert!(Fabric::decode(b"not a fabric").is_err());
        assert_eq!(Fabric::stored_inputs(b"not a fabric"), None);
    }
}
