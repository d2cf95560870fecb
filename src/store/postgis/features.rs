//! Feature reads for OGC pages and tiles in PostGIS: SQL from the layer schema, GiST candidates, ST_AsMVT layers.

use super::*;

/// (table, [(property, SQL expression)]) of a layer, from the schema; times as RFC 3339 text.
pub(super) fn layer_sql(layer: Layer) -> (&'static str, Vec<(&'static str, String)>) {
    let props = schema::fields(layer)
        .iter()
        .map(|f| {
            let expr = if f.kind == schema::FieldType::Time {
                iso(f.sql)
            } else {
                f.sql.to_string()
            };
            (f.name, expr)
        })
        .collect();
    (layer.table(), props)
}

/// Bind values of a feature query, in order.
type Args = Vec<Box<dyn ToSql + Sync + Send>>;

/// Bind values and SQL conditions of a feature query: bbox, the plan or the grids in force at a
/// time, an incident time window, equality filters on the layer's properties.
fn feature_conditions(
    layer: Layer,
    props: &[(&'static str, String)],
    q: &FeatureQuery,
) -> (Args, Vec<String>) {
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let arg = |v: Box<dyn ToSql + Sync + Send>, args: &mut Vec<_>| {
        args.push(v);
        format!("${}", args.len())
    };
    if let Some(b) = q.bbox {
        let a = arg(Box::new(b[0]), &mut args);
        let bb = arg(Box::new(b[1]), &mut args);
        let c = arg(Box::new(b[2]), &mut args);
        let d = arg(Box::new(b[3]), &mut args);
        conds.push(format!(
            "t.geom && ST_MakeEnvelope({a}, {bb}, {c}, {d}, 4326) AND ST_Intersects(t.geom, ST_MakeEnvelope({a}, {bb}, {c}, {d}, 4326))"
        ));
    }
    if layer == Layer::Grids {
        if let Some(p) = q.plan {
            let a = arg(Box::new(p), &mut args);
            conds.push(format!("t.plan_id = {a}"));
        } else {
            let a = arg(Box::new(dt(q.at.unwrap_or_else(now))), &mut args);
            conds.push(format!(
                "t.valid_from IS NOT NULL AND t.valid_from <= {a} AND (t.valid_to IS NULL OR t.valid_to > {a})"
            ));
        }
    }
    if layer == Layer::Incidents {
        if let Some(f) = q.from {
            let a = arg(Box::new(dt(f)), &mut args);
            conds.push(format!("t.reported_at >= {a}"));
        }
        if let Some(t) = q.to {
            let a = arg(Box::new(dt(t)), &mut args);
            conds.push(format!("t.reported_at < {a}"));
        }
    }
    for (k, v) in &q.equals {
        let expr = props
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, e)| e.clone())
            .unwrap_or_default();
        let a = arg(Box::new(v.clone()), &mut args);
        conds.push(format!("({expr})::text = {a}"));
    }
    (args, conds)
}

/// One feature from a row (WKB geometry, the properties as JSON), in the layer's property order.
fn feature_of_row(r: &tokio_postgres::Row, props: &[(&'static str, String)]) -> Result<Feature> {
    let geometry = r
        .get::<_, Option<&[u8]>>(0)
        .map(|b| from_wkb(b).map_err(|e| StoreError::Backend(e.to_string())))
        .transpose()?;
    let properties: Map<String, Value> = match r.get::<_, Value>(1) {
        Value::Object(m) => {
            // keep the layer's property order
            let mut o = Map::new();
            for (n, _) in props {
                o.insert((*n).to_string(), m.get(*n).cloned().unwrap_or(Value::Null));
            }
            o
        }
        _ => Map::new(),
    };
    Ok(Feature::keyed(geometry, properties))
}

#[async_trait]
impl FeatureSource for PostgisStore {
    async fn tile_features(
        &self,
        layer: Layer,
        bbox: [f64; 4],
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<Feature>>> {
        let (table, props) = layer_sql(layer);
        let chosen: Vec<&(&str, String)> = fields
            .iter()
            .filter_map(|f| props.iter().find(|(n, _)| n == f))
            .collect();
        let exprs: Vec<&str> = chosen.iter().map(|(_, e)| e.as_str()).collect();
        let cond = match (layer, plan) {
            (Layer::Grids, Some(_)) => " AND t.plan_id = $5",
            (Layer::Grids, None) => {
                " AND t.valid_from IS NOT NULL AND t.valid_from <= $5 AND (t.valid_to IS NULL OR t.valid_to > $5)"
            }
            _ => "",
        };
        let sql = format!(
            "SELECT ST_AsBinary(t.geom), jsonb_build_array({}) FROM {table} t \
             WHERE t.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326){cond} ORDER BY t.fid",
            exprs.join(", ")
        );
        let client = self.client().await?;
        let st = client.prepare_cached(&sql).await.map_err(pe)?;
        let (a, b, c, d) = (bbox[0], bbox[1], bbox[2], bbox[3]);
        let rows = match (layer, plan) {
            (Layer::Grids, Some(p)) => client.query(&st, &[&a, &b, &c, &d, &p]).await,
            (Layer::Grids, None) => client.query(&st, &[&a, &b, &c, &d, &dt(now())]).await,
            _ => client.query(&st, &[&a, &b, &c, &d]).await,
        }
        .map_err(pe)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let geometry = r
                .get::<_, Option<&[u8]>>(0)
                .map(|b| from_wkb(b).map_err(|e| StoreError::Backend(e.to_string())))
                .transpose()?;
            let vals = match r.get::<_, Value>(1) {
                Value::Array(v) => v,
                _ => Vec::new(),
            };
            let properties: Map<String, Value> = chosen
                .iter()
                .zip(vals)
                .map(|((n, _), v)| ((*n).to_string(), v))
                .collect();
            out.push(Feature {
                id: String::new(),
                geometry,
                properties,
            });
        }
        Ok(Some(out))
    }

    async fn mvt_layer(
        &self,
        layer: Layer,
        (z, x, y): (u8, u32, u32),
        plan: Option<i64>,
        fields: &[&str],
    ) -> Result<Option<Vec<u8>>> {
        let (table, props) = layer_sql(layer);
        let cols: String = fields
            .iter()
            .filter_map(|f| props.iter().find(|(n, _)| n == f))
            .map(|(n, e)| format!(", {e} AS \"{n}\""))
            .collect();
        let (zi, xi, yi) = (
            i32::from(z),
            i32::try_from(x).map_err(|e| StoreError::Invalid(e.to_string()))?,
            i32::try_from(y).map_err(|e| StoreError::Invalid(e.to_string()))?,
        );
        let cond = match (layer, plan) {
            (Layer::Grids, Some(_)) => " AND t.plan_id = $4",
            (Layer::Grids, None) => {
                " AND t.valid_from IS NOT NULL AND t.valid_from <= $4 AND (t.valid_to IS NULL OR t.valid_to > $4)"
            }
            _ => "",
        };
        let sql = format!(
            "SELECT ST_AsMVT(m, '{name}', 4096, 'geom') FROM (\
               SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom{cols} \
               FROM {table} t \
               WHERE t.geom && ST_Transform(ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096), 4326){cond} \
               ORDER BY t.fid) m WHERE m.geom IS NOT NULL",
            name = layer.name()
        );
        let client = self.client().await?;
        let st = client.prepare_cached(&sql).await.map_err(pe)?;
        let row = match (layer, plan) {
            (Layer::Grids, Some(p)) => client.query_one(&st, &[&zi, &xi, &yi, &p]).await,
            (Layer::Grids, None) => client.query_one(&st, &[&zi, &xi, &yi, &dt(now())]).await,
            _ => client.query_one(&st, &[&zi, &xi, &yi]).await,
        }
        .map_err(pe)?;
        Ok(Some(row.get::<_, Option<Vec<u8>>>(0).unwrap_or_default()))
    }

    async fn features(&self, layer: Layer, q: &FeatureQuery) -> Result<FeaturePage> {
        check_filters(layer, q)?;
        let (table, props) = layer_sql(layer);
        let (mut args, conds) = feature_conditions(layer, &props, q);
        let arg = |v: Box<dyn ToSql + Sync + Send>, args: &mut Vec<_>| {
            args.push(v);
            format!("${}", args.len())
        };
        let obj: Vec<String> = props.iter().map(|(n, e)| format!("'{n}', {e}")).collect();
        let mut sql = format!(
            "SELECT ST_AsBinary(t.geom), jsonb_build_object({}), count(*) OVER () FROM {table} t",
            obj.join(", ")
        );
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        let la = arg(
            Box::new(if q.limit == 0 {
                i64::MAX
            } else {
                i64::try_from(q.limit).unwrap_or(i64::MAX)
            }),
            &mut args,
        );
        let oa = arg(
            Box::new(i64::try_from(q.offset).unwrap_or(i64::MAX)),
            &mut args,
        );
        sql.push_str(&format!(" ORDER BY t.fid LIMIT {la} OFFSET {oa}"));
        let client = self.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await.map_err(pe)?;
        let mut matched = 0u64;
        let mut features = Vec::with_capacity(rows.len());
        for r in &rows {
            matched = u64::try_from(r.get::<_, i64>(2)).unwrap_or(0);
            features.push(feature_of_row(r, &props)?);
        }
        if rows.is_empty() && q.offset > 0 {
            // count without the page
            let count_sql = format!(
                "SELECT count(*) FROM {table} t{}",
                if conds.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conds.join(" AND "))
                }
            );
            let n = refs.len() - 2;
            matched = u64::try_from(
                client
                    .query_one(&count_sql, &refs[..n])
                    .await
                    .map_err(pe)?
                    .get::<_, i64>(0),
            )
            .unwrap_or(0);
        }
        Ok(FeaturePage { features, matched })
    }

    async fn grid_at(&self, lon: f64, lat: f64, at: i64) -> Result<Option<GridHit>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT ST_AsBinary(g.geom), g.code, g.name, g.community, g.street, g.plan_id, w.name, w.phone
                 FROM grids g LEFT JOIN grid_workers w ON w.grid_code = g.code
                 WHERE g.geom && ST_SetSRID(ST_MakePoint($1, $2), 4326)
                   AND g.valid_from IS NOT NULL AND g.valid_from <= $3 AND (g.valid_to IS NULL OR g.valid_to > $3)
                 ORDER BY g.code COLLATE \"C\"",
                &[&lon, &lat, &dt(at)],
            )
            .await
            .map_err(pe)?;
        let cands: Vec<(MultiPolygon, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| Ok((mp_of(r.get::<_, &[u8]>(0))?, i)))
            .collect::<Result<_>>()?;
        let i = pick_grid(cands.iter().map(|(g, i)| (g, *i)), lon, lat);
        Ok(i.map(|i| {
            let r = &rows[i];
            GridHit {
                code: r.get(1),
                name: r.get(2),
                community: r.get(3),
                street: r.get(4),
                plan: r.get(5),
                worker: r.get::<_, Option<String>>(6).map(|name| Worker {
                    name,
                    phone: r.get(7),
                }),
            }
        }))
    }
}
