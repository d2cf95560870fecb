//! Atoms: a planar subdivision of one community part into indivisible pieces, one per building
//! cluster (overlapping footprints merged) plus one per block without buildings.
//!
//! How: a constrained Delaunay triangulation (spade) of the community boundary, the footprints
//! and the block-cutting roads, all densified so that the triangles are small near walls.
//! Triangles inside a footprint belong to its building. Blocks are the triangles connected
//! without crossing a road. Every triangle corner in free space takes the label of the nearest
//! building of its block, by shortest path along triangle edges (Dijkstra), and each triangle is
//! then cut through its edge midpoints and centroid where its corner labels differ (marching
//! triangles). So atoms meet half-way between buildings, along roads where blocks meet, and
//! along the shared wall of buildings that touch — never through a footprint.
//!
//! The same pieces give the atom graph (areas, shared boundary lengths, how much of each
//! shared boundary runs along a road) and, after partitioning, the grid polygons, whose
//! shared edges are identical by construction (no gaps, no overlaps).

//!
//! The phases, each in its own module and each a function over plain arrays:
//! [`noding`] (boundary and roads noded against each other), [`cdt`] and [`mesh`] (the
//! constrained triangulation, refined, as flat arrays; inside/outside), [`membership`]
//! (faces of given polygons and of footprints; thin gaps), [`clusters`] (overlapping
//! footprints as one atom), [`labels`] (blocks, nearest building by Dijkstra), [`fragments`]
//! (atoms made connected) and [`graph`] (the atom graph); [`pieces`] cuts the labelled faces
//! into the segments grids are assembled from.

mod cdt;
mod clusters;
mod fragments;
mod graph;
mod labels;
mod membership;
mod mesh;
mod noding;
mod pieces;
mod prims;

pub use cdt::catching_panics;
pub use pieces::Pt;

use crate::geom::frame::LocalFrame;
use geo::{Coord, Polygon};

/// No face / no label.
pub const NONE: u32 = u32::MAX;

const F_BOUNDARY: u8 = 1;
const F_ROAD: u8 = 2;
const F_CONSTRAINT: u8 = 4;
/// Free triangles narrower than this (inradius, metres) between given polygons and the
/// community edge belong to the given polygon.
const GAP_M: f64 = 0.05;
/// Building-less free land smaller than this (m²), cut off by given polygons, belongs to one.
const GAP_PIECE_M2: f64 = 100.0;
/// A point of a given polygon this close (metres) to a vertex in place is that vertex.
const SNAP_M: f64 = 1e-6;
const SNAP_CELL_M: f64 = 1e-5;
/// An edge of a given polygon this close (metres) to the community edge runs along it.
const ALONG_M: f64 = 1e-3;

/// A building handed to the tessellation (coordinates in the frame's metres).
#[derive(Debug, Clone)]
pub struct BuildingPart {
    /// Index of the building in the caller's list.
    pub building: u32,
    /// Footprint in metres.
    pub polygons: Vec<Polygon>,
    /// Households.
    pub households: u32,
    /// Balancing weight.
    pub weight: f64,
}

/// A grid kept exactly as it is (locked, or untouched by a rebalance): its polygon becomes one
/// atom whose boundary is the polygon's own rings.
#[derive(Debug, Clone)]
pub struct FixedRegion {
    /// The polygon in metres and in WGS84 (the same rings).
    pub metres: Polygon,
    pub wgs84: Polygon,
    /// Buildings (caller's indices) that belong to it.
    pub buildings: Vec<u32>,
    pub households: u64,
    pub weight: f64,
}

/// Settings of the tessellation.
#[derive(Debug, Clone, Copy)]
pub struct TessellationSettings {
    /// Longest edge along walls, boundaries and roads before it is split (metres).
    pub densify_m: f64,
    /// Distance within which a boundary counts as following a road (metres).
    pub road_near_m: f64,
    /// Minimum triangle angle of the Delaunay refinement (0 = no refinement).
    pub refine_angle_deg: f64,
    /// Largest triangle the refinement leaves (m²).
    pub max_triangle_m2: f64,
    /// Overlap (m²) above which two footprints become one atom (smaller ones are slivers of digitising).
    pub merge_overlap_m2: f64,
}

impl Default for TessellationSettings {
    fn default() -> Self {
        TessellationSettings {
            densify_m: 6.0,
            road_near_m: 20.0,
            merge_overlap_m2: 0.05,
            refine_angle_deg: 20.0,
            max_triangle_m2: 400.0,
        }
    }
}

/// An indivisible piece of a community.
#[derive(Debug, Clone, Default)]
pub struct Atom {
    /// Buildings (caller's indices) whose footprint it holds.
    pub buildings: Vec<u32>,
    /// Households in it.
    pub households: u64,
    /// Balancing weight.
    pub weight: f64,
    /// Area in m².
    pub area: f64,
    /// Area centroid (metres).
    pub centroid: Coord,
    /// Length of community boundary it touches (metres).
    pub outer: f64,
    /// Index of the fixed region this atom is, if it is one.
    pub fixed: Option<u32>,
}

/// One adjacency: neighbour, shared boundary length, and the part of it near a road.
#[derive(Debug, Clone, Copy)]
pub struct Adj {
    pub nbr: u32,
    pub len: f64,
    pub road: f64,
}

/// The atoms and their adjacency (CSR).
#[derive(Debug, Clone, Default)]
pub struct AtomGraph {
    pub atoms: Vec<Atom>,
    pub start: Vec<usize>,
    pub adj: Vec<Adj>,
}

impl AtomGraph {
    /// Neighbours of atom `a`.
    #[must_use]
    pub fn nbrs(&self, a: usize) -> &[Adj] {
        &self.adj[self.start[a]..self.start[a + 1]]
    }
    /// Number of atoms.
    #[must_use]
    pub fn len(&self) -> usize {
        self.atoms.len()
    }
    /// True when there are no atoms.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }
}

/// The triangulated, labelled community part.
#[derive(Debug, Clone)]
pub struct Tessellation {
    pub frame: LocalFrame,
    pub verts: Vec<Coord>,
    /// Original WGS84 coordinate of input vertices (output exactly as given).
    pub orig: Vec<Option<Coord>>,
    /// Vertices added only to densify a straight edge (dropped from output rings when collinear).
    pub steiner: Vec<bool>,
    pub faces: Vec<[u32; 3]>,
    pub nbr: Vec<[u32; 3]>,
    pub edge: Vec<[u32; 3]>,
    pub edge_flags: Vec<u8>,
    pub inside: Vec<bool>,
    /// Atom label of each corner of each inside face.
    pub corner: Vec<[u32; 3]>,
    pub n_edges: usize,
    /// How far the build had to fall back on degenerate input.
    pub degradation: Degradation,
}

/// How far a tessellation had to fall back because the triangulation failed on degenerate
/// input (spade asserts on some near-degenerate configurations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Degradation {
    /// Built as asked.
    #[default]
    None,
    /// Built without the Delaunay refinement: atoms along walls are less regular.
    Unrefined,
    /// Built without refinement and without the block-cutting roads: grid boundaries there do
    /// not follow the streets.
    WithoutRoads,
}

impl Degradation {
    /// A note for the community report, or `None` when nothing was given up.
    #[must_use]
    pub fn note(self) -> Option<&'static str> {
        match self {
            Degradation::None => None,
            Degradation::Unrefined => Some(
                "the triangulation failed on degenerate geometry and was built again without refinement",
            ),
            Degradation::WithoutRoads => Some(
                "the triangulation failed on degenerate geometry and was built again without the roads: grid boundaries here do not follow the streets",
            ),
        }
    }
}

/// Why a tessellation could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TessellationError {
    #[error("coordinate ({0:.3}, {1:.3}) m cannot be triangulated")]
    Insert(f64, f64),
    #[error("the triangulation failed on degenerate geometry")]
    Degenerate,
}

/// Build the tessellation and atom graph of one community part.
///
/// `part` and `part_ll` are the same polygon in metres and in WGS84; `cut_roads` are the
/// block-cutting road segments and `near_roads` all road segments (both in metres).
/// spade asserts on some degenerate configurations; input never brings the process down: the
/// build is tried again without refinement, then without the roads, and the result says so
/// ([`Tessellation::degradation`]).
///
/// # Errors
/// When even the plainest triangulation cannot be built (degenerate input).
// The inputs are the distinct layers of one community part; a struct would only rename them.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
pub fn tessellate(
    frame: LocalFrame,
    part: &Polygon,
    part_ll: &Polygon,
    buildings: &[BuildingPart],
    cut_roads: &[(Coord, Coord)],
    near_roads: &[(Coord, Coord)],
    fixed: &[FixedRegion],
    s: &TessellationSettings,
) -> Result<(Tessellation, AtomGraph), TessellationError> {
    let _span = tracing::debug_span!("tessellate", buildings = buildings.len()).entered();
    let input = Input {
        frame,
        part,
        part_ll,
        buildings,
        near_roads,
        fixed,
    };
    if let Some(Ok(r)) = cdt::guarded(|| build(&input, cut_roads, s, Degradation::None)) {
        return Ok(r);
    }
    tracing::debug!("refined attempt failed, retrying without refinement");
    let plain = TessellationSettings {
        refine_angle_deg: 0.0,
        ..*s
    };
    if let Some(Ok(r)) = cdt::guarded(|| build(&input, cut_roads, &plain, Degradation::Unrefined)) {
        return Ok(r);
    }
    match cdt::guarded(|| build(&input, &[], &plain, Degradation::WithoutRoads)) {
        Some(r) => r,
        None => Err(TessellationError::Degenerate),
    }
}

/// What one build reads besides the roads and settings it may be retried without.
struct Input<'a> {
    frame: LocalFrame,
    part: &'a Polygon,
    part_ll: &'a Polygon,
    buildings: &'a [BuildingPart],
    near_roads: &'a [(Coord, Coord)],
    fixed: &'a [FixedRegion],
}

/// The phases, in order.
fn build(
    i: &Input,
    cut_roads: &[(Coord, Coord)],
    s: &TessellationSettings,
    degradation: Degradation,
) -> Result<(Tessellation, AtomGraph), TessellationError> {
    let bnd = noding::Boundary::new(i.part, i.part_ll, i.fixed);
    let mut b = cdt::Builder::new();
    let road_used = {
        let _span = tracing::debug_span!("noding").entered();
        let (road_used, ring_extra) = bnd.node_roads(cut_roads);
        let fixed_rings = bnd.insert_rings(&mut b, ring_extra, s.densify_m)?;
        mesh::constrain(&mut b, i.buildings, &road_used, &fixed_rings, &bnd, s)?;
        road_used
    };
    let m = mesh::Mesh::from_builder(&b, &bnd.tree, &prims::seg_tree(road_used.iter().copied()));
    let inside = mesh::inside(&m, &bnd);
    let (mut face_fixed, mut free) =
        membership::fixed_faces(&m, &inside, &bnd, !i.fixed.is_empty());
    let fp = {
        let _span = tracing::debug_span!("membership").entered();
        membership::footprints(&m, &free, i.buildings, b.skipped == 0)
    };
    if !i.fixed.is_empty() {
        membership::flood_thin_gaps(&m, &mut face_fixed, &mut free, &fp.face_bld);
        membership::absorb_gap_pieces(&m, &mut face_fixed, &mut free, &fp.face_bld);
    }
    let face_bld = fp.face_bld.clone();
    let (mut atoms, face_atom) =
        clusters::building_atoms(i.buildings, i.fixed, fp, s.merge_overlap_m2);
    let mut corner = {
        let _span = tracing::debug_span!("labels").entered();
        let (block, nblocks) = labels::blocks(&m, &free);
        labels::corners(&m, &free, (&block, nblocks), &face_atom, &mut atoms)
    };
    // faces of given polygons are theirs whole
    let mut face_atom = face_atom;
    for f in 1..m.len() {
        if face_fixed[f] != NONE {
            corner[f] = [face_fixed[f]; 3];
            face_atom[f] = face_fixed[f];
        }
    }
    fragments::split_fragments(
        &m,
        &inside,
        &face_atom,
        (&face_bld, i.buildings),
        &mut corner,
        &mut atoms,
    );
    let tess = Tessellation {
        frame: i.frame,
        verts: m.verts,
        orig: m.orig,
        steiner: m.steiner,
        faces: m.faces,
        nbr: m.nbr,
        edge: m.edge,
        edge_flags: m.edge_flags,
        inside,
        corner,
        n_edges: m.n_edges,
        degradation,
    };
    let near_tree = prims::seg_tree(i.near_roads.iter().copied());
    let graph = {
        let _span = tracing::debug_span!("atom_graph").entered();
        graph::atom_graph(&tess, atoms, &near_tree, s.road_near_m)
    };
    Ok((tess, graph))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, polygon};

    fn part(i: u32, p: Polygon, households: u32) -> BuildingPart {
        BuildingPart {
            building: i,
            polygons: vec![p],
            households,
            weight: f64::from(households),
        }
    }

    #[test]
    fn a_sliver_overlapping_a_building_joins_its_atom() {
        // regression (Manhattan w265432772): a footprint of a few cm² lying half inside another
        // was left unmerged (overlap below the absolute threshold) and could be split
        let big = polygon![(x: 10.0, y: 10.0), (x: 40.0, y: 10.0), (x: 40.0, y: 40.0), (x: 10.0, y: 40.0)];
        let sliver = polygon![(x: 39.95, y: 20.0), (x: 40.05, y: 20.0), (x: 40.0, y: 20.1)];
        let other = polygon![(x: 60.0, y: 60.0), (x: 80.0, y: 60.0), (x: 80.0, y: 80.0), (x: 60.0, y: 80.0)];
        let (_, g) = square_tess(
            &[part(0, big, 100), part(1, sliver, 0), part(2, other, 50)],
            &[],
            &[],
        );
        let atom_of = |b: u32| {
            g.atoms
                .iter()
                .position(|a| a.buildings.contains(&b))
                .unwrap()
        };
        assert_eq!(
            atom_of(0),
            atom_of(1),
            "the sliver merges with the building it overlaps"
        );
        assert_ne!(atom_of(0), atom_of(2));
    }

    /// Tessellate the 100 m square with buildings, roads (cutting and near) and given polygons.
    fn square_tess(
        b: &[BuildingPart],
        roads: &[(Coord, Coord)],
        fixed: &[FixedRegion],
    ) -> (Tessellation, AtomGraph) {
        let frame = LocalFrame::new(111.29, 30.70);
        let (c, ll) = square(frame);
        let s = TessellationSettings::default();
        tessellate(frame, &c, &ll, b, roads, roads, fixed, &s).unwrap()
    }

    /// A 100 m square community in a frame near Yichang, in metres and degrees.
    fn square(frame: LocalFrame) -> (Polygon, Polygon) {
        let community = polygon![(x: 0.0, y: 0.0), (x: 100.0, y: 0.0), (x: 100.0, y: 100.0), (x: 0.0, y: 100.0)];
        let ll = Polygon::new(
            LineString(
                community
                    .exterior()
                    .0
                    .iter()
                    .map(|c| frame.inv(*c))
                    .collect(),
            ),
            vec![],
        );
        (community, ll)
    }

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1)]
    }

    #[test]
    fn a_road_bounds_the_atoms_of_its_two_sides() {
        let road = [(Coord { x: -10.0, y: 50.0 }, Coord { x: 110.0, y: 50.0 })];
        let b = [
            part(0, rect(20.0, 10.0, 40.0, 30.0), 10),
            part(1, rect(60.0, 80.0, 70.0, 90.0), 20),
        ];
        let (t, g) = square_tess(&b, &road, &[]);
        assert_eq!(t.degradation, Degradation::None);
        assert_eq!(
            g.len(),
            2,
            "one atom per building, each with its side of the road"
        );
        let total: f64 = g.atoms.iter().map(|a| a.area).sum();
        assert!(
            (total - 10_000.0).abs() < 1e-6,
            "atoms tile the square: {total}"
        );
        for a in &g.atoms {
            assert!(
                (a.area - 5_000.0).abs() < 1e-6,
                "each side of the road: {}",
                a.area
            );
        }
        let e = g.nbrs(0)[0];
        assert!(
            (e.len - 100.0).abs() < 1e-6 && (e.road - e.len).abs() < 1e-9,
            "{e:?}"
        );
        assert!(
            (g.atoms[0].outer - 200.0).abs() < 1e-6,
            "{}",
            g.atoms[0].outer
        );
    }

    #[test]
    fn land_without_buildings_across_a_road_is_shared_not_an_atom() {
        let road = [(Coord { x: -10.0, y: 50.0 }, Coord { x: 110.0, y: 50.0 })];
        let b = [
            part(0, rect(20.0, 10.0, 40.0, 30.0), 10),
            part(1, rect(60.0, 10.0, 80.0, 30.0), 20),
        ];
        let (_, g) = square_tess(&b, &road, &[]);
        assert_eq!(
            g.len(),
            2,
            "the empty north half goes to the buildings' atoms"
        );
        let total: f64 = g.atoms.iter().map(|a| a.area).sum();
        assert!((total - 10_000.0).abs() < 1e-6);
        // about half-way between the two buildings (shortest paths along triangle edges, carried
        // across the road from the south side)
        for a in &g.atoms {
            assert!((4_000.0..6_000.0).contains(&a.area), "{}", a.area);
        }
        // with no road, the same buildings split the square the same way
        let (_, g2) = square_tess(&b, &[], &[]);
        assert_eq!(g2.len(), 2);
    }

    #[test]
    fn a_given_polygon_is_one_atom_and_keeps_its_thin_gap() {
        let frame = LocalFrame::new(111.29, 30.70);
        // a kept grid over the west half that stops 1 cm short of the community edge
        let metres = rect(0.01, 0.01, 50.0, 99.99);
        let wgs84 = Polygon::new(
            LineString(metres.exterior().0.iter().map(|p| frame.inv(*p)).collect()),
            vec![],
        );
        let fixed = [FixedRegion {
            metres,
            wgs84,
            buildings: vec![7],
            households: 300,
            weight: 300.0,
        }];
        let b = [part(0, rect(70.0, 40.0, 80.0, 60.0), 10)];
        let (t, g) = square_tess(&b, &[], &fixed);
        assert_eq!(g.len(), 2);
        assert_eq!(g.atoms[0].fixed, Some(0));
        assert_eq!(g.atoms[0].buildings, vec![7]);
        assert_eq!(g.atoms[1].buildings, vec![0]);
        // the 1 cm strips along the edge stay with the given polygon, not the free atom
        // (the polygon alone is 4,998 m²; with the strips about 5,000)
        assert!(
            (g.atoms[0].area - 5_000.0).abs() < 0.1,
            "{}",
            g.atoms[0].area
        );
        assert!(
            (g.atoms[1].area - 5_000.0).abs() < 0.1,
            "{}",
            g.atoms[1].area
        );
        // every inside face has three corner labels of known atoms
        for f in 1..t.faces.len() {
            if t.inside[f] {
                assert!(t.corner[f].iter().all(|&l| (l as usize) < g.len()));
            }
        }
    }
}
