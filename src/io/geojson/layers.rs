//! Reading the input layers from GeoJSON: communities, buildings (with households), roads,
//! zones to locate in, and a grid layer drawn by hand.

use super::*;

/// Notes from loading a layer that are not errors.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadNotes {
    /// Features whose self-intersecting geometry was repaired.
    pub repaired: Vec<String>,
    /// Buildings whose households were estimated.
    pub estimated_households: usize,
    /// Features skipped, with the reason (roads of other geometry types, empty geometries).
    pub skipped: Vec<String>,
}

/// Read the community layer: polygons with a unique `code`, optional `name` and `street`.
///
/// # Errors
/// Any feature without a usable code or polygon, duplicate codes, or an empty layer.
pub fn read_communities(
    path: &Path,
    tf: &Transformer,
) -> Result<(Vec<Community>, LoadNotes), InputError> {
    let layer = read_layer(path, Role::Communities)?;
    let tf = layer.transformer(path, tf)?;
    communities_from(path, &layer.features, &tf)
}

/// Interpret features as communities (see [`read_communities`]).
///
/// # Errors
/// As [`read_communities`].
pub fn communities_from(
    path: &Path,
    feats: &[RawFeature],
    tf: &Transformer,
) -> Result<(Vec<Community>, LoadNotes), InputError> {
    if feats.is_empty() {
        return Err(InputError::file(
            path,
            "the community layer has no features",
        ));
    }
    let mut notes = LoadNotes::default();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(feats.len());
    for f in feats {
        let label = f.label();
        let code = match f.properties.get("code") {
            None | Some(Value::Null) => {
                return Err(InputError::item(
                    path,
                    &label,
                    Some("code"),
                    "is missing; every community needs a unique code",
                ));
            }
            Some(v) => value_text(v).ok_or_else(|| {
                InputError::item(
                    path,
                    &label,
                    Some("code"),
                    "expected a non-empty string or number",
                )
            })?,
        };
        if !seen.insert(code.clone()) {
            return Err(InputError::item(
                path,
                &label,
                Some("code"),
                format!("duplicate code {code:?}; community codes must be unique"),
            ));
        }
        let geometry = polygons_of(path, f, tf, &mut notes.repaired)?;
        out.push(Community {
            code,
            name: f.properties.get("name").and_then(value_text),
            street: f.properties.get("street").and_then(value_text),
            geometry,
        });
    }
    Ok((out, notes))
}

/// Read the building layer: footprints with an id and households (given or estimated).
///
/// # Errors
/// Missing or duplicate ids, bad geometry, a negative or non-numeric `households`, an empty layer.
pub fn read_buildings(
    path: &Path,
    tf: &Transformer,
    est: &EstimateParams,
) -> Result<(Vec<Building>, LoadNotes), InputError> {
    read_buildings_weighted(path, tf, est, None)
}

/// Read the building layer, with each building's balancing weight from a workload formula.
///
/// # Errors
/// As [`read_buildings`], plus a weight property that is not numeric (named).
pub fn read_buildings_weighted(
    path: &Path,
    tf: &Transformer,
    est: &EstimateParams,
    weight: Option<&crate::model::Weight>,
) -> Result<(Vec<Building>, LoadNotes), InputError> {
    let mut acc = BuildingsAcc::new(path, est, weight);
    crate::io::layer::for_each_feature(path, Role::Buildings, tf, &mut |f, tf| acc.add(&f, tf))?;
    acc.finish()
}

/// Interpret features as buildings (see [`read_buildings`]).
///
/// # Errors
/// As [`read_buildings`].
pub fn buildings_from(
    path: &Path,
    feats: &[RawFeature],
    tf: &Transformer,
    est: &EstimateParams,
) -> Result<(Vec<Building>, LoadNotes), InputError> {
    let mut acc = BuildingsAcc::new(path, est, None);
    for f in feats {
        acc.add(f, tf)?;
    }
    acc.finish()
}

/// Buildings made feature by feature: ids unique, households given or estimated, weights.
struct BuildingsAcc<'a> {
    path: &'a Path,
    est: &'a EstimateParams,
    weight: Option<&'a crate::model::Weight>,
    seen: HashSet<String>,
    notes: LoadNotes,
    out: Vec<Building>,
}

impl<'a> BuildingsAcc<'a> {
    fn new(
        path: &'a Path,
        est: &'a EstimateParams,
        weight: Option<&'a crate::model::Weight>,
    ) -> Self {
        BuildingsAcc {
            path,
            est,
            weight,
            seen: HashSet::new(),
            notes: LoadNotes::default(),
            out: Vec::new(),
        }
    }

    fn finish(self) -> Result<(Vec<Building>, LoadNotes), InputError> {
        if self.out.is_empty() {
            return Err(InputError::file(
                self.path,
                "the building layer has no features",
            ));
        }
        Ok((self.out, self.notes))
    }

    fn add(&mut self, f: &RawFeature, tf: &Transformer) -> Result<(), InputError> {
        let (path, est) = (self.path, self.est);
        let label = f.label();
        let given = f
            .properties
            .get("id")
            .and_then(value_text)
            .or_else(|| f.id.clone())
            .or_else(|| f.properties.get("osm_id").and_then(value_text));
        let id = unique_text(
            path,
            &label,
            "id",
            given,
            "is missing; expected an `id` property, a feature id, or `osm_id`",
            "building id",
            &mut self.seen,
        )?;
        let geometry = polygons_of(path, f, tf, &mut self.notes.repaired)?;
        let (households, source) = match f.properties.get("households") {
            None | Some(Value::Null) => {
                let p = &f.properties;
                let floors = est.floors(
                    p.get("floors").and_then(value_number),
                    p.get("building:levels").and_then(value_number),
                    p.get("height").and_then(value_number),
                );
                let share = est.residential_share(p.get("building").and_then(Value::as_str));
                self.notes.estimated_households += 1;
                (
                    est.estimate(geodesic_area_m2(&geometry), floors, share),
                    HouseholdSource::Estimated,
                )
            }
            Some(v) => {
                let n = value_number(v).ok_or_else(|| {
                    InputError::item(
                        path,
                        &label,
                        Some("households"),
                        format!("expected a non-negative whole number, found {v}"),
                    )
                })?;
                if n < 0.0 || n.fract() != 0.0 || n > f64::from(u32::MAX) {
                    return Err(InputError::item(
                        path,
                        &label,
                        Some("households"),
                        format!("expected a non-negative whole number, found {n}"),
                    ));
                }
                (n as u32, HouseholdSource::Given)
            }
        };
        let weight = match self.weight {
            Some(w) => w
                .eval(&f.properties, households)
                .map_err(|m| InputError::item(path, f.label(), None, m))?,
            None => f64::from(households),
        };
        self.out.push(Building {
            id,
            households,
            source,
            weight,
            geometry,
        });
        Ok(())
    }
}

/// Read the road layer: LineString/MultiLineString features with `highway` and `name`.
///
/// # Errors
/// Unreadable file, bad coordinates, or a polygon/point where a line was expected.
pub fn read_roads(path: &Path, tf: &Transformer) -> Result<(Vec<Road>, LoadNotes), InputError> {
    let layer = read_layer(path, Role::Roads)?;
    let tf = &*layer.transformer(path, tf)?;
    let feats = layer.features;
    let mut notes = LoadNotes::default();
    let mut out = Vec::new();
    for f in &feats {
        let label = f.label();
        let Some(g) = f.geometry.as_ref() else {
            notes.skipped.push(format!("{label}: no geometry"));
            continue;
        };
        let lines = match parse_geometry(g)
            .map_err(|m| InputError::item(path, &label, Some("geometry"), m))?
        {
            Geom::Lines(l) => l,
            _ => {
                return Err(InputError::item(
                    path,
                    &label,
                    Some("geometry"),
                    "expected a LineString or MultiLineString road centreline",
                ));
            }
        };
        for l in lines {
            let mut pts = Vec::with_capacity(l.0.len());
            for c in &l.0 {
                let w = transform_coord(tf, *c)
                    .map_err(|m| InputError::item(path, &label, Some("geometry"), m))?;
                if crate::geom::beyond_lonlat(w) {
                    return Err(InputError::item(
                        path,
                        &label,
                        Some("geometry"),
                        format!(
                            "coordinate ({}, {}) is out of range for longitude/latitude",
                            w.x, w.y
                        ),
                    ));
                }
                if pts.last() != Some(&w) {
                    pts.push(w);
                }
            }
            if pts.len() < 2 {
                notes.skipped.push(format!(
                    "{label}: a line with fewer than two distinct points"
                ));
                continue;
            }
            out.push(Road {
                highway: f
                    .properties
                    .get("highway")
                    .and_then(value_text)
                    .unwrap_or_default(),
                name: f.properties.get("name").and_then(value_text),
                line: LineString(pts),
            });
        }
    }
    Ok((out, notes))
}

/// Area of a WGS84 multipolygon in m², in a local frame at its first vertex (relative error
/// below 1e-4 for anything a building or community can be).
#[must_use]
pub fn geodesic_area_m2(mp: &MultiPolygon) -> f64 {
    let Some(c) = mp.0.first().and_then(|p| p.exterior().0.first()) else {
        return 0.0;
    };
    let f = crate::geom::frame::LocalFrame::new(c.x, c.y);
    let m = MultiPolygon(
        mp.0.iter()
            .map(|p| {
                let r = |l: &LineString| LineString(l.0.iter().map(|c| f.fwd(*c)).collect());
                Polygon::new(r(p.exterior()), p.interiors().iter().map(r).collect())
            })
            .collect(),
    );
    m.unsigned_area()
}

/// A grid layer's features (at least one) and the transform for its coordinates.
fn grid_features<'a>(
    path: &Path,
    tf: &'a Transformer,
) -> Result<(Vec<RawFeature>, crate::io::layer::LayerTransform<'a>), InputError> {
    let layer = read_layer(path, Role::Grids)?;
    let tf = layer.transformer(path, tf)?;
    if layer.features.is_empty() {
        return Err(InputError::file(path, "the grid layer has no features"));
    }
    Ok((layer.features, tf))
}

/// Read a polygon layer as locate zones: `code` (required), `name`, `community`, `street`,
/// `valid_from`/`valid_to` (dates or times).
///
/// # Errors
/// As for communities, plus unreadable validity times (named).
pub fn read_zones(path: &Path, tf: &Transformer) -> Result<Vec<crate::locate::Zone>, InputError> {
    let (feats, tf) = grid_features(path, tf)?;
    let tf = &*tf;
    let mut notes = LoadNotes::default();
    let mut out = Vec::with_capacity(feats.len());
    for f in &feats {
        let label = f.label();
        let code = f
            .properties
            .get("code")
            .and_then(value_text)
            .or_else(|| f.id.clone())
            .ok_or_else(|| {
                InputError::item(
                    path,
                    &label,
                    Some("code"),
                    "is missing; every grid needs a code",
                )
            })?;
        let time = |k: &str| -> Result<Option<i64>, InputError> {
            match f.properties.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    let text = value_text(v).unwrap_or_default();
                    crate::model::parse_time(&text).map(Some).ok_or_else(|| {
                        InputError::item(
                            path,
                            &label,
                            Some(k),
                            format!("expected a date or time, found {v}"),
                        )
                    })
                }
            }
        };
        let polygon = polygons_of(path, f, tf, &mut notes.repaired)?;
        out.push(crate::locate::Zone {
            code,
            name: f.properties.get("name").and_then(value_text),
            community: f.properties.get("community").and_then(value_text),
            street: f.properties.get("street").and_then(value_text),
            valid_from: time("valid_from")?,
            valid_to: time("valid_to")?,
            polygon,
        });
    }
    Ok(out)
}

/// Read a grid layer whose grids may be kept (locked grids, or the grids in force for a
/// rebalance): `code` and `community` required, `name` optional, `locked: true` marks a lock.
///
/// # Errors
/// Missing code or community, bad geometry, a grid of several parts.
pub fn read_grid_layer(
    path: &Path,
    tf: &Transformer,
) -> Result<Vec<(crate::partition::FixedGrid, bool)>, InputError> {
    let (feats, tf) = grid_features(path, tf)?;
    let tf = &*tf;
    let mut notes = LoadNotes::default();
    let mut out = Vec::with_capacity(feats.len());
    let mut seen = HashSet::new();
    for f in &feats {
        let label = f.label();
        let code = unique_text(
            path,
            &label,
            "code",
            f.properties.get("code").and_then(value_text),
            "is missing; every grid needs a code",
            "grid code",
            &mut seen,
        )?;
        let community = f
            .properties
            .get("community")
            .and_then(value_text)
            .ok_or_else(|| {
                InputError::item(
                    path,
                    &label,
                    Some("community"),
                    "is missing; every grid names its community",
                )
            })?;
        let mp = polygons_of(path, f, tf, &mut notes.repaired)?;
        if mp.0.len() != 1 {
            return Err(InputError::item(
                path,
                &label,
                Some("geometry"),
                format!("a grid must be one polygon, found {} parts", mp.0.len()),
            ));
        }
        let locked = f.properties.get("locked").is_some_and(value_true);
        out.push((
            crate::partition::FixedGrid {
                code,
                name: f.properties.get("name").and_then(value_text),
                community,
                polygon: mp.0[0].clone(),
                households: f.properties.get("households").and_then(whole_number),
            },
            locked,
        ));
    }
    Ok(out)
}

/// A non-negative whole number (`392` or `392.0`), else None.
fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 1e15)
            .map(|x| x as u64)
    })
}
