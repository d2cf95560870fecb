//! Feature reads for OGC pages and tiles: SQL from the layer schema, R-tree candidates, exact tests, pages.

use super::*;

/// Grids in force at an instant (bound twice), tested on the columns: for a filter without a
/// bbox, which the `grids_until` index answers as one range (an open end is 9999-12-31).
const GRIDS_IN_FORCE: &str = "coalesce(t.valid_to, '9999-12-31') > ? AND t.valid_from <= ?";

/// The same test for an R-tree candidate `r.id`, from the `grids_times` index (fid, valid_from,
/// valid_to): every plan ever published stays in `grids` as history and a row's times sit after
/// its geometry, so testing them on the row would read every past generation's geometry.
const CANDIDATE_IN_FORCE: &str = "EXISTS (SELECT 1 FROM grids g INDEXED BY grids_times \
     WHERE g.fid = r.id AND g.valid_from IS NOT NULL AND g.valid_from <= ? \
     AND (g.valid_to IS NULL OR g.valid_to > ?))";

/// The select list of a layer's fields (after `t.fid, t.geom`), from the schema.
pub(super) fn select_list(layer: Layer) -> String {
    let cols: Vec<&str> = schema::fields(layer).iter().map(|f| f.sql).collect();
    cols.join(", ")
}

pub(super) fn sql_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => Value::Null,
    }
}

/// Features for a vector tile: R-tree candidates only, the listed properties only.
pub(super) fn tile_features_in(
    c: &Connection,
    layer: Layer,
    bbox: [f64; 4],
    plan: Option<i64>,
    fields: &[String],
) -> Result<Vec<Feature>> {
    let table = layer.table();
    let chosen: Vec<(&String, &str)> = fields
        .iter()
        .filter_map(|f| schema::field_of(layer, f).map(|s| (f, s.sql)))
        .collect();
    let cols: String = chosen.iter().map(|(_, e)| format!(", {e}")).collect();
    let mut sql = format!(
        "SELECT t.geom{cols} FROM {table} t JOIN rtree_{table}_geom r ON r.id = t.fid \
         WHERE r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?"
    );
    let mut args: Vec<rusqlite::types::Value> = [bbox[0], bbox[2], bbox[1], bbox[3]]
        .into_iter()
        .map(rusqlite::types::Value::Real)
        .collect();
    if layer == Layer::Grids {
        if let Some(p) = plan {
            sql.push_str(" AND t.plan_id = ?");
            args.push(rusqlite::types::Value::Integer(p));
        } else {
            sql.push_str(" AND ");
            sql.push_str(CANDIDATE_IN_FORCE);
            let at = ts_text(now());
            args.push(rusqlite::types::Value::Text(at.clone()));
            args.push(rusqlite::types::Value::Text(at));
        }
    }
    sql.push_str(" ORDER BY t.fid");
    let mut s = c.prepare_cached(&sql).map_err(be)?;
    let mut rows = s.query(params_from_iter(args)).map_err(be)?;
    let mut feats = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        let geometry = match r.get_ref(0).map_err(be)? {
            ValueRef::Blob(b) => {
                Some(from_gpkg(b).map_err(|e| StoreError::Backend(e.to_string()))?)
            }
            _ => None,
        };
        let mut props = Map::new();
        for (i, (n, _)) in chosen.iter().enumerate() {
            props.insert((*n).clone(), sql_value(r.get_ref(1 + i).map_err(be)?));
        }
        feats.push(Feature {
            id: String::new(),
            geometry,
            properties: props,
        });
    }
    Ok(feats)
}

/// Bind values and SQL conditions of a feature query (the R-tree join named `r` when there is a
/// bbox): bbox, the plan or the grids in force at a time, an incident time window, equality
/// filters on the layer's properties.
fn conditions(
    layer: Layer,
    q: &FeatureQuery,
) -> Result<(Vec<rusqlite::types::Value>, Vec<String>)> {
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if let Some(b) = q.bbox {
        conds.push("r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?".into());
        for v in [b[0], b[2], b[1], b[3]] {
            args.push(rusqlite::types::Value::Real(v));
        }
    }
    if layer == Layer::Grids {
        if let Some(p) = q.plan {
            conds.push("t.plan_id = ?".into());
            args.push(rusqlite::types::Value::Integer(p));
        } else {
            let at = ts_text(q.at.unwrap_or_else(now));
            conds.push(
                if q.bbox.is_some() {
                    CANDIDATE_IN_FORCE
                } else {
                    GRIDS_IN_FORCE
                }
                .into(),
            );
            args.push(rusqlite::types::Value::Text(at.clone()));
            args.push(rusqlite::types::Value::Text(at));
        }
    }
    if layer == Layer::Incidents {
        if let Some(f) = q.from {
            conds.push("t.reported_at >= ?".into());
            args.push(rusqlite::types::Value::Text(ts_text(f)));
        }
        if let Some(t) = q.to {
            conds.push("t.reported_at < ?".into());
            args.push(rusqlite::types::Value::Text(ts_text(t)));
        }
    }
    for (k, v) in &q.equals {
        let Some(f) = schema::field_of(layer, k) else {
            return Err(StoreError::Invalid(format!(
                "{k}: not a property of {}",
                layer.name()
            )));
        };
        conds.push(format!("{} = ?", f.sql));
        args.push(rusqlite::types::Value::Text(v.clone()));
    }
    Ok((args, conds))
}

/// One feature of a page from a row (fid, GeoPackage geometry, then the layer's fields in order).
fn feature_of_row(r: &rusqlite::Row<'_>, names: &[&str]) -> Result<Feature> {
    let geometry = match r.get_ref(1).map_err(be)? {
        ValueRef::Blob(b) => Some(from_gpkg(b).map_err(|e| StoreError::Backend(e.to_string()))?),
        _ => None,
    };
    let mut props = Map::new();
    for (i, n) in names.iter().enumerate() {
        props.insert((*n).to_string(), sql_value(r.get_ref(2 + i).map_err(be)?));
    }
    Ok(Feature::keyed(geometry, props))
}

pub(super) fn features_in(c: &Connection, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
    let (table, cols) = (layer.table(), select_list(layer));
    let mut sql = format!("SELECT t.fid, t.geom, {cols} FROM {table} t");
    if q.bbox.is_some() {
        sql.push_str(&format!(" JOIN rtree_{table}_geom r ON r.id = t.fid"));
    }
    let (mut args, conds) = conditions(layer, q)?;
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    sql.push_str(&where_);
    // without a bbox the page can be cut in SQL (with a bbox, candidates from the R-tree are
    // tested exactly first)
    let mut matched = None;
    if q.bbox.is_none() {
        let n: i64 = c
            .prepare_cached(&format!("SELECT count(*) FROM {table} t{where_}"))
            .map_err(be)?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))
            .map_err(be)?;
        matched = Some(n.max(0) as u64);
        // the page's ids first (from the indexes, no row decoded), then only those rows: a
        // filtered page does not read every row it skips (`+t.fid` lets the filter choose the
        // index instead of walking the table in id order)
        let order = if conds.is_empty() { "t.fid" } else { "+t.fid" };
        sql = format!(
            "SELECT t.fid, t.geom, {cols} FROM {table} t WHERE t.fid IN \
             (SELECT t.fid FROM {table} t{where_} ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY t.fid"
        );
        args.push(rusqlite::types::Value::Integer(if q.limit == 0 {
            -1
        } else {
            q.limit as i64
        }));
        args.push(rusqlite::types::Value::Integer(q.offset as i64));
    } else {
        sql.push_str(" ORDER BY t.fid");
    }
    let names: Vec<&str> = schema::fields(layer).iter().map(|f| f.name).collect();
    let mut s = c.prepare_cached(&sql).map_err(be)?;
    let mut rows = s.query(params_from_iter(args)).map_err(be)?;
    let mut feats = Vec::new();
    while let Some(r) = rows.next().map_err(be)? {
        feats.push(feature_of_row(r, &names)?);
    }
    Ok(match matched {
        Some(matched) => FeaturePage {
            features: feats,
            matched,
        },
        None => page(feats, q),
    })
}

#[async_trait]
impl FeatureSource for GpkgStore {
    async fn tile_features(
        &self,
        layer: Layer,
        bbox: [f64; 4],
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<Feature>>> {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_string()).collect();
        self.read(move |c| tile_features_in(c, layer, bbox, plan, &fields).map(Some))
            .await
    }

    async fn features(&self, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
        check_filters(layer, q)?;
        let q = q.clone();
        self.read(move |c| features_in(c, layer, &q)).await
    }

    async fn grid_at(&self, lon: f64, lat: f64, at: i64) -> Result<Option<GridHit>> {
        self.read(move |c| {
            let t = ts_text(at);
            let mut s = c
                .prepare_cached(
                    "SELECT g.geom, g.code, g.name, g.community, g.street, g.plan_id, w.name, w.phone
                     FROM rtree_grids_geom r JOIN grids g ON g.fid = r.id LEFT JOIN grid_workers w ON w.grid_code = g.code
                     WHERE r.minx <= ?1 AND r.maxx >= ?1 AND r.miny <= ?2 AND r.maxy >= ?2
                       AND EXISTS (SELECT 1 FROM grids h INDEXED BY grids_times WHERE h.fid = r.id
                         AND h.valid_from IS NOT NULL AND h.valid_from <= ?3 AND (h.valid_to IS NULL OR h.valid_to > ?3))
                     ORDER BY g.code",
                )
                .map_err(be)?;
            let rows: Vec<(MultiPolygon, GridHit)> = s
                .query_map(params![lon, lat, t], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        GridHit {
                            code: r.get(1)?,
                            name: r.get(2)?,
                            community: r.get(3)?,
                            street: r.get(4)?,
                            plan: r.get(5)?,
                            worker: r.get::<_, Option<String>>(6)?.map(|name| Worker {
                                name,
                                phone: r.get(7).ok().flatten(),
                            }),
                        },
                    ))
                })
                .map_err(be)?
                .map(|x| {
                    let (g, h) = x.map_err(be)?;
                    Ok((mp_of(&g)?, h))
                })
                .collect::<Result<_>>()?;
            let i = pick_grid(rows.iter().enumerate().map(|(i, (g, _))| (g, i)), lon, lat);
            Ok(i.map(|i| rows[i].1.clone()))
        })
        .await
    }
}
