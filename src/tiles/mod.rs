//! Vector tiles: Mapbox Vector Tile 2.1 for communities, grids, buildings, incidents and incident
//! heat (H3 hexagon counts), rendered from the store's spatial index, plus TileJSON 3.0.

pub mod archive;
pub mod mvt;
pub mod source;

pub use source::{Cached, Chain, StoreSource, Tile, TileRequest, TileSource};

use crate::model::schema::{self, Visibility};
use crate::store::{FeatureQuery, IncidentFilter, Layer, Store, StoreError};
use mvt::{BUFFER, EXTENT, TileFeature, TileFrame, TileLayer, encode_geometry, tile_bounds};
use serde_json::{Value, json};

/// Tile layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileSet {
    Communities,
    Grids,
    Buildings,
    Incidents,
    Heat,
    /// Our own road centrelines (class, name): the offline basemap's streets.
    Roads,
    All,
}

impl TileSet {
    pub const ALL: [TileSet; 7] = [
        TileSet::Communities,
        TileSet::Grids,
        TileSet::Buildings,
        TileSet::Incidents,
        TileSet::Heat,
        TileSet::Roads,
        TileSet::All,
    ];
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            TileSet::Communities => "communities",
            TileSet::Grids => "grids",
            TileSet::Buildings => "buildings",
            TileSet::Incidents => "incidents",
            TileSet::Heat => "heat",
            TileSet::Roads => "roads",
            TileSet::All => "all",
        }
    }
    /// Lowest zoom with content (buildings and single incidents only when zoomed in).
    #[must_use]
    pub fn minzoom(self) -> u8 {
        match self {
            TileSet::Buildings => 14,
            TileSet::Incidents | TileSet::Roads => 12,
            _ => 0,
        }
    }

    /// What the layer holds, for TileJSON.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            TileSet::Communities => "Communities (社区) with their names and codes",
            TileSet::Grids => "Grids (网格) of the plan: code, name, band, worker's public contact",
            TileSet::Buildings => "Building footprints",
            TileSet::Incidents => "Incidents (restricted)",
            TileSet::Heat => "H3 counts of incidents (cells with at least 3)",
            TileSet::Roads => "Roads with class and name",
            TileSet::All => "Communities, grids, buildings",
        }
    }

    /// The deepest zoom whose tiles add detail: at z16 a tile unit is about half a metre, finer
    /// than any footprint or boundary we hold, so clients over-zoom the z16 tiles beyond it (as
    /// the archives stop there); H3 heat cells are fixed by z13.
    #[must_use]
    pub fn maxzoom(self) -> u8 {
        match self {
            TileSet::Heat => 13,
            _ => 16,
        }
    }
}

impl std::str::FromStr for TileSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TileSet::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!("unknown tile layer {s:?}: expected communities, grids, buildings, incidents, heat, roads or all")
            })
    }
}

/// What the caller may see in tiles (the schema's access).
pub use crate::model::schema::Access;

/// Heat cells: only hexagons with at least this many incidents are shown.
pub const HEAT_MIN_COUNT: u64 = 3;

/// H3 resolution of the heat layer at zoom z.
#[must_use]
pub fn heat_resolution(z: u8) -> u8 {
    (i32::from(z) - 6).clamp(4, 10) as u8
}

/// Fields of each layer (for TileJSON `vector_layers`): the public ones in tile order, then
/// those the caller's access adds.
#[must_use]
pub fn fields(l: TileSet, a: Access) -> Value {
    let layer = match l {
        TileSet::Communities => Layer::Communities,
        TileSet::Grids => Layer::Grids,
        TileSet::Buildings => Layer::Buildings,
        TileSet::Incidents => Layer::Incidents,
        TileSet::Heat => return json!({ "h3": "String", "count": "Number" }),
        TileSet::Roads => return json!({ "class": "String", "name": "String" }),
        TileSet::All => return json!({}),
    };
    let all = schema::tile_fields(layer, a);
    let public = all.iter().filter(|f| f.visibility == Visibility::Public);
    let added = all.iter().filter(|f| f.visibility != Visibility::Public);
    let mut m = serde_json::Map::new();
    for f in public.chain(added) {
        m.insert(f.name.to_string(), json!(f.kind.tilejson()));
    }
    Value::Object(m)
}

/// The attribute names of a layer's tiles for this caller, in tile order.
fn keep(l: Layer, a: Access) -> Vec<&'static str> {
    schema::tile_fields(l, a).iter().map(|f| f.name).collect()
}

/// The extent [west, south, east, north] of the store's communities; `None` when it has none.
///
/// # Errors
/// A store error.
pub async fn communities_extent(store: &dyn Store) -> Result<Option<[f64; 4]>, StoreError> {
    let mut e = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for c in store.communities().await? {
        if let Some(r) = geo::BoundingRect::bounding_rect(&c.community.geometry) {
            e = [
                e[0].min(r.min().x),
                e[1].min(r.min().y),
                e[2].max(r.max().x),
                e[3].max(r.max().y),
            ];
        }
    }
    Ok((e[0] <= e[2]).then_some(e))
}

/// The bbox of tile z/x/y with its buffer, lon/lat.
#[must_use]
pub fn buffered_bounds(z: u8, x: u32, y: u32) -> [f64; 4] {
    let b = tile_bounds(z, x, y);
    let fx = (b[2] - b[0]) * BUFFER as f64 / EXTENT as f64;
    let fy = (b[3] - b[1]) * BUFFER as f64 / EXTENT as f64;
    [b[0] - fx, b[1] - fy, b[2] + fx, b[3] + fy]
}

/// What one layer of a tile shows: grids of a plan or at a time, coordinates shifted or not.
#[derive(Debug, Clone, Copy)]
struct LayerQuery {
    plan: Option<i64>,
    at: Option<i64>,
    gcj02: bool,
    access: Access,
}

/// The WGS84 bbox whose features, shifted into GCJ-02, can fall in `b` (a GCJ-02 bbox): its
/// corners shifted back, with a margin for the offset's variation across the box.
pub fn gcj02_query_bounds(b: [f64; 4]) -> [f64; 4] {
    use crate::geom::crs::gcj02_to_wgs84;
    let corners = [
        gcj02_to_wgs84(geo::coord! { x: b[0], y: b[1] }),
        gcj02_to_wgs84(geo::coord! { x: b[2], y: b[1] }),
        gcj02_to_wgs84(geo::coord! { x: b[0], y: b[3] }),
        gcj02_to_wgs84(geo::coord! { x: b[2], y: b[3] }),
    ];
    let m = 1e-4;
    [
        corners.iter().map(|c| c.x).fold(f64::MAX, f64::min) - m,
        corners.iter().map(|c| c.y).fold(f64::MAX, f64::min) - m,
        corners.iter().map(|c| c.x).fold(f64::MIN, f64::max) + m,
        corners.iter().map(|c| c.y).fold(f64::MIN, f64::max) + m,
    ]
}

/// A feature's geometry shifted from WGS84 into GCJ-02 (identity outside China).
pub fn shift_to_gcj02(f: &mut crate::store::Feature) {
    if let Some(g) = f.geometry.as_mut() {
        geo::MapCoordsInPlace::map_coords_in_place(g, crate::geom::crs::wgs84_to_gcj02);
    }
}

async fn vector_layer(
    store: &dyn Store,
    l: Layer,
    (z, x, y): (u8, u32, u32),
    q: LayerQuery,
) -> Result<TileLayer, StoreError> {
    let a = q.access;
    let bbox = if q.gcj02 {
        gcj02_query_bounds(buffered_bounds(z, x, y))
    } else {
        buffered_bounds(z, x, y)
    };
    let plan = if l == Layer::Grids { q.plan } else { None };
    let at = if l == Layer::Grids { q.at } else { None };
    let mut feats = match store.tile_features(l, bbox, plan, &keep(l, a)).await? {
        Some(f) if at.is_none() => f,
        _ => {
            store
                .features(
                    l,
                    &FeatureQuery {
                        bbox: Some(bbox),
                        plan,
                        at,
                        limit: 0,
                        ..FeatureQuery::default()
                    },
                )
                .await?
                .features
        }
    };
    if q.gcj02 {
        feats.iter_mut().for_each(shift_to_gcj02);
    }
    Ok(encode_layer(l, feats.iter(), z, x, y, a))
}

/// Encode features (already selected for the tile) as one layer.
fn encode_layer<'a>(
    l: Layer,
    feats: impl Iterator<Item = &'a crate::store::Feature>,
    z: u8,
    x: u32,
    y: u32,
    a: Access,
) -> TileLayer {
    encode_named(l.name(), &keep(l, a), feats, (z, x, y))
}

/// Road attributes in tiles.
const ROAD_FIELDS: [&str; 2] = ["class", "name"];

/// Roads as tile features (class = OSM highway, name), shifted into GCJ-02 when asked.
fn road_features(roads: Vec<crate::model::Road>, gcj02: bool) -> Vec<crate::store::Feature> {
    roads
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut props = serde_json::Map::new();
            props.insert("class".into(), json!(r.highway));
            if let Some(n) = r.name {
                props.insert("name".into(), json!(n));
            }
            let mut f = crate::store::Feature {
                id: i.to_string(),
                geometry: Some(geo::Geometry::LineString(r.line)),
                properties: props,
            };
            if gcj02 {
                shift_to_gcj02(&mut f);
            }
            f
        })
        .collect()
}

/// Encode features as a layer named `name` with the attributes `names`.
fn encode_named<'a>(
    name: &str,
    names: &[&str],
    feats: impl Iterator<Item = &'a crate::store::Feature>,
    (z, x, y): (u8, u32, u32),
) -> TileLayer {
    let frame = TileFrame::new(z, x, y);
    let mut features = Vec::new();
    for f in feats {
        let Some(g) = &f.geometry else { continue };
        let Some((t, cmds)) = encode_geometry(g, &frame) else {
            continue;
        };
        let properties = names
            .iter()
            .filter_map(|k| {
                f.properties
                    .get(*k)
                    .filter(|v| !v.is_null())
                    .map(|v| ((*k).to_string(), v.clone()))
            })
            .collect();
        features.push(TileFeature {
            id: None,
            geom_type: t,
            commands: cmds,
            properties,
        });
    }
    TileLayer {
        name: name.to_string(),
        features,
    }
}

async fn heat_layer(
    store: &dyn Store,
    (z, x, y): (u8, u32, u32),
    gcj02: bool,
) -> Result<TileLayer, StoreError> {
    let cases = store
        .incidents(&IncidentFilter {
            lean: true,
            ..IncidentFilter::default()
        })
        .await?;
    if gcj02 {
        let shifted: Vec<crate::incident::Case> = cases
            .into_iter()
            .map(|mut c| {
                let g = crate::geom::crs::wgs84_to_gcj02(geo::coord! { x: c.lon, y: c.lat });
                (c.lon, c.lat) = (g.x, g.y);
                c
            })
            .collect();
        return Ok(heat_of(&shifted, z, x, y));
    }
    Ok(heat_of(&cases, z, x, y))
}

fn heat_of(cases: &[crate::incident::Case], z: u8, x: u32, y: u32) -> TileLayer {
    let bb = buffered_bounds(z, x, y);
    let res = heat_resolution(z);
    let frame = TileFrame::new(z, x, y);
    let mut features = Vec::new();
    for (cell, n) in crate::incident::stats::h3_counts(cases, res, HEAT_MIN_COUNT) {
        let Ok(ci) = cell.parse::<h3o::CellIndex>() else {
            continue;
        };
        let ring: Vec<geo::Coord> = ci
            .boundary()
            .iter()
            .map(|ll| geo::coord! { x: ll.lng(), y: ll.lat() })
            .collect();
        if !ring
            .iter()
            .any(|c| c.x >= bb[0] && c.x <= bb[2] && c.y >= bb[1] && c.y <= bb[3])
        {
            continue;
        }
        let poly = geo::Polygon::new(geo::LineString(ring), vec![]);
        if let Some((t, cmds)) = encode_geometry(&geo::Geometry::Polygon(poly), &frame) {
            features.push(TileFeature {
                id: None,
                geom_type: t,
                commands: cmds,
                properties: vec![("h3".into(), json!(cell)), ("count".into(), json!(n))],
            });
        }
    }
    TileLayer {
        name: "heat".into(),
        features,
    }
}

/// The layer sets a set stands for (incidents in `all` only with access).
#[must_use]
pub fn expand(set: TileSet, a: Access) -> Vec<TileSet> {
    match set {
        TileSet::All => {
            let mut v = vec![
                TileSet::Communities,
                TileSet::Grids,
                TileSet::Buildings,
                TileSet::Heat,
            ];
            if a.incidents {
                v.push(TileSet::Incidents);
            }
            v
        }
        s => vec![s],
    }
}

fn layer_of(s: TileSet) -> Option<Layer> {
    match s {
        TileSet::Communities => Some(Layer::Communities),
        TileSet::Grids => Some(Layer::Grids),
        TileSet::Buildings => Some(Layer::Buildings),
        TileSet::Incidents => Some(Layer::Incidents),
        TileSet::Heat | TileSet::Roads | TileSet::All => None,
    }
}

#[derive(Clone)]
struct Boxed(usize, rstar::AABB<[f64; 2]>);
impl rstar::RTreeObject for Boxed {
    type Envelope = rstar::AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.1
    }
}

fn boxes_of(feats: &[crate::store::Feature]) -> Vec<Boxed> {
    feats
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let r = geo::BoundingRect::bounding_rect(f.geometry.as_ref()?)?;
            Some(Boxed(
                i,
                rstar::AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
            ))
        })
        .collect()
}

/// Everything a batch of tiles needs, read from the store once and indexed in memory; renders
/// the same bytes as `render` (same features, same order).
pub struct MemorySource {
    layers: Vec<(TileSet, Vec<crate::store::Feature>, rstar::RTree<Boxed>)>,
    cases: Vec<crate::incident::Case>,
    set: TileSet,
    plan: Option<i64>,
    access: Access,
}

impl MemorySource {
    /// Load the layers of `set` (grids of `plan`, or in force now).
    ///
    /// # Errors
    /// A store error.
    pub async fn load(
        store: &dyn Store,
        set: TileSet,
        plan: Option<i64>,
        a: Access,
    ) -> Result<Self, StoreError> {
        Self::load_shifted(store, set, plan, a, false).await
    }

    /// [`MemorySource::load`], with coordinates shifted into GCJ-02 when `gcj02` (roads only:
    /// the live source keeps roads in memory; other layers are read per tile).
    ///
    /// # Errors
    /// A store error.
    pub async fn load_shifted(
        store: &dyn Store,
        set: TileSet,
        plan: Option<i64>,
        a: Access,
        gcj02: bool,
    ) -> Result<Self, StoreError> {
        let mut layers = Vec::new();
        let mut cases = Vec::new();
        for s in expand(set, a) {
            match layer_of(s) {
                Some(l) => {
                    let page = store
                        .features(
                            l,
                            &FeatureQuery {
                                plan: if l == Layer::Grids { plan } else { None },
                                ..FeatureQuery::default()
                            },
                        )
                        .await?;
                    let boxes = boxes_of(&page.features);
                    layers.push((s, page.features, rstar::RTree::bulk_load(boxes)));
                }
                None if s == TileSet::Roads => {
                    let feats = road_features(store.roads().await?, gcj02);
                    let tree = rstar::RTree::bulk_load(boxes_of(&feats));
                    layers.push((s, feats, tree));
                }
                None => {
                    cases = store
                        .incidents(&IncidentFilter {
                            lean: true,
                            ..IncidentFilter::default()
                        })
                        .await?;
                    layers.push((s, Vec::new(), rstar::RTree::new()));
                }
            }
        }
        Ok(MemorySource {
            layers,
            cases,
            set,
            plan,
            access: a,
        })
    }

    /// The set, plan and access it was loaded for.
    #[must_use]
    pub fn loaded_for(&self) -> (TileSet, Option<i64>, Access) {
        (self.set, self.plan, self.access)
    }

    /// One tile (empty when nothing is in it).
    #[must_use]
    pub fn render(&self, z: u8, x: u32, y: u32) -> Vec<u8> {
        use geo::Intersects;
        let bb = buffered_bounds(z, x, y);
        let rect = geo::Rect::new(
            geo::coord! { x: bb[0], y: bb[1] },
            geo::coord! { x: bb[2], y: bb[3] },
        );
        let env = rstar::AABB::from_corners([bb[0], bb[1]], [bb[2], bb[3]]);
        let mut out = Vec::new();
        for (s, feats, tree) in &self.layers {
            if z < s.minzoom() {
                continue;
            }
            let select = || {
                let mut ix: Vec<usize> = tree
                    .locate_in_envelope_intersecting(&env)
                    .map(|b| b.0)
                    .collect();
                ix.sort_unstable();
                ix.into_iter()
                    .map(|i| &feats[i])
                    .filter(|f| f.geometry.as_ref().is_some_and(|g| g.intersects(&rect)))
            };
            match layer_of(*s) {
                Some(l) => out.push(encode_layer(l, select(), z, x, y, self.access)),
                None if *s == TileSet::Roads => {
                    out.push(encode_named("roads", &ROAD_FIELDS, select(), (z, x, y)));
                }
                None => out.push(heat_of(&self.cases, z, x, y)),
            }
        }
        mvt::encode_tile(&out)
    }
}

/// Render tile z/x/y of a layer set; an empty vector when nothing is in it.
///
/// # Errors
/// A store error.
pub async fn render(
    store: &dyn Store,
    set: TileSet,
    z: u8,
    x: u32,
    y: u32,
    plan: Option<i64>,
    a: Access,
) -> Result<Vec<u8>, StoreError> {
    render_with(store, set, (z, x, y), plan, a, Encoder::InProcess).await
}

/// Who encodes the vector layers of a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoder {
    /// This crate's encoder, fed by a bbox query of the store.
    InProcess,
    /// The database (PostGIS `ST_AsMVT`) where the store has one; in process otherwise.
    Database,
}

/// [`render`] with a choice of encoder for the vector layers (heat is always made here).
///
/// # Errors
/// A store error.
pub async fn render_with(
    store: &dyn Store,
    set: TileSet,
    (z, x, y): (u8, u32, u32),
    plan: Option<i64>,
    a: Access,
    encoder: Encoder,
) -> Result<Vec<u8>, StoreError> {
    let r = TileRequest {
        set,
        z,
        x,
        y,
        plan,
        at: None,
        gcj02: false,
        access: a,
    };
    render_request(store, &r, encoder).await
}

/// Render a tile request: grids of a plan or at a time, in WGS84 or shifted into GCJ-02 (the
/// database encoder is used only for plain WGS84 layers of grids in force or of a plan).
///
/// # Errors
/// A store error.
pub async fn render_request(
    store: &dyn Store,
    r: &TileRequest,
    encoder: Encoder,
) -> Result<Vec<u8>, StoreError> {
    let (z, x, y, a) = (r.z, r.x, r.y, r.access);
    // a tile is a sequence of layer fields: layers encoded one by one concatenate, in order
    let mut out = Vec::new();
    for s in expand(r.set, a) {
        if z < s.minzoom() {
            continue;
        }
        let Some(layer) = layer_of(s) else {
            if s == TileSet::Roads {
                let m = MemorySource::load_shifted(store, s, None, a, r.gcj02).await?;
                out.extend_from_slice(&m.render(z, x, y));
            }
            if s == TileSet::Heat {
                let h = heat_layer(store, (z, x, y), r.gcj02).await?;
                out.extend_from_slice(&mvt::encode_tile(&[h]));
            }
            continue;
        };
        if encoder == Encoder::Database && r.at.is_none() && !r.gcj02 {
            let plan = if layer == Layer::Grids { r.plan } else { None };
            if let Some(b) = store
                .mvt_layer(layer, (z, x, y), plan, &keep(layer, a))
                .await?
            {
                out.extend_from_slice(&b);
                continue;
            }
        }
        let q = LayerQuery {
            plan: r.plan,
            at: r.at,
            gcj02: r.gcj02,
            access: a,
        };
        let l = vector_layer(store, layer, (z, x, y), q).await?;
        out.extend_from_slice(&mvt::encode_tile(&[l]));
    }
    Ok(out)
}
