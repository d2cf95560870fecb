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
    All,
}

impl TileSet {
    pub const ALL: [TileSet; 6] = [
        TileSet::Communities,
        TileSet::Grids,
        TileSet::Buildings,
        TileSet::Incidents,
        TileSet::Heat,
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
            TileSet::All => "all",
        }
    }
    /// Lowest zoom with content (buildings and single incidents only when zoomed in).
    #[must_use]
    pub fn minzoom(self) -> u8 {
        match self {
            TileSet::Buildings => 14,
            TileSet::Incidents => 12,
            _ => 0,
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
                format!("unknown tile layer {s:?}: expected communities, grids, buildings, incidents, heat or all")
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

async fn vector_layer(
    store: &dyn Store,
    l: Layer,
    z: u8,
    x: u32,
    y: u32,
    plan: Option<i64>,
    a: Access,
) -> Result<TileLayer, StoreError> {
    let bbox = buffered_bounds(z, x, y);
    let plan = if l == Layer::Grids { plan } else { None };
    if let Some(feats) = store.tile_features(l, bbox, plan, &keep(l, a)).await? {
        return Ok(encode_layer(l, feats.iter(), z, x, y, a));
    }
    let page = store
        .features(
            l,
            &FeatureQuery {
                bbox: Some(bbox),
                plan,
                ..FeatureQuery::default()
            },
        )
        .await?;
    Ok(encode_layer(l, page.features.iter(), z, x, y, a))
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
    let frame = TileFrame::new(z, x, y);
    let names = keep(l, a);
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
        name: l.name().to_string(),
        features,
    }
}

async fn heat_layer(store: &dyn Store, z: u8, x: u32, y: u32) -> Result<TileLayer, StoreError> {
    let cases = store.incidents(&IncidentFilter::default()).await?;
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
        TileSet::Heat | TileSet::All => None,
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
                    let boxes = page
                        .features
                        .iter()
                        .enumerate()
                        .filter_map(|(i, f)| {
                            let r = geo::BoundingRect::bounding_rect(f.geometry.as_ref()?)?;
                            Some(Boxed(
                                i,
                                rstar::AABB::from_corners(
                                    [r.min().x, r.min().y],
                                    [r.max().x, r.max().y],
                                ),
                            ))
                        })
                        .collect();
                    layers.push((s, page.features, rstar::RTree::bulk_load(boxes)));
                }
                None => {
                    cases = store.incidents(&IncidentFilter::default()).await?;
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
            match layer_of(*s) {
                Some(l) => {
                    let mut ix: Vec<usize> = tree
                        .locate_in_envelope_intersecting(&env)
                        .map(|b| b.0)
                        .collect();
                    ix.sort_unstable();
                    let sel = ix
                        .into_iter()
                        .map(|i| &feats[i])
                        .filter(|f| f.geometry.as_ref().is_some_and(|g| g.intersects(&rect)));
                    out.push(encode_layer(l, sel, z, x, y, self.access));
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
    // a tile is a sequence of layer fields: layers encoded one by one concatenate, in order
    let mut out = Vec::new();
    for s in expand(set, a) {
        if z < s.minzoom() {
            continue;
        }
        let Some(layer) = layer_of(s) else {
            if s == TileSet::Heat {
                out.extend_from_slice(&mvt::encode_tile(&[heat_layer(store, z, x, y).await?]));
            }
            continue;
        };
        if encoder == Encoder::Database {
            let plan = if layer == Layer::Grids { plan } else { None };
            if let Some(b) = store
                .mvt_layer(layer, (z, x, y), plan, &keep(layer, a))
                .await?
            {
                out.extend_from_slice(&b);
                continue;
            }
        }
        let l = vector_layer(store, layer, z, x, y, plan, a).await?;
        out.extend_from_slice(&mvt::encode_tile(&[l]));
    }
    Ok(out)
}
