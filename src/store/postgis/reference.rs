//! Communities, streets, buildings and roads in PostGIS; household counts recounted after each import.

use super::*;

pub(super) async fn read_communities(c: &impl GenericClient) -> Result<Vec<CommunityRecord>> {
    let rows = c
        .query(
            "SELECT code, name, street, households, buildings, ST_AsBinary(geom) FROM communities ORDER BY code",
            &[],
        )
        .await
        .map_err(pe)?;
    rows.iter()
        .map(|r| {
            Ok(CommunityRecord {
                community: Community {
                    code: r.get(0),
                    name: r.get(1),
                    street: r.get(2),
                    geometry: mp_of(r.get::<_, &[u8]>(5))?,
                },
                households: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                buildings: u64::try_from(r.get::<_, i64>(4)).unwrap_or(0),
            })
        })
        .collect()
}

pub(super) async fn recount(c: &impl GenericClient, reassign: bool) -> Result<()> {
    if reassign {
        let cs: Vec<Community> = read_communities(c)
            .await?
            .into_iter()
            .map(|r| r.community)
            .collect();
        let rows = c
            .query(
                "SELECT building_id, ST_AsBinary(geom), community FROM buildings ORDER BY fid",
                &[],
            )
            .await
            .map_err(pe)?;
        let bs: Vec<Building> = rows
            .iter()
            .map(|r| {
                Ok(Building {
                    id: r.get(0),
                    households: 0,
                    source: crate::model::HouseholdSource::Given,
                    weight: 0.0,
                    geometry: mp_of(r.get::<_, &[u8]>(1))?,
                })
            })
            .collect::<Result<_>>()?;
        let owner = crate::partition::assign_buildings(&cs, &bs);
        for ((r, b), o) in rows.iter().zip(&bs).zip(owner) {
            let new = o.map(|(ci, _)| cs[ci].code.clone());
            if new != r.get::<_, Option<String>>(2) {
                c.execute(
                    "UPDATE buildings SET community = $2 WHERE building_id = $1",
                    &[&b.id, &new],
                )
                .await
                .map_err(pe)?;
            }
        }
    }
    c.batch_execute(
        "UPDATE communities SET
           households = coalesce((SELECT sum(households) FROM buildings b WHERE b.community = communities.code), 0),
           buildings = (SELECT count(*) FROM buildings b WHERE b.community = communities.code);
         DELETE FROM streets;",
    )
    .await
    .map_err(pe)?;
    let comms = read_communities(c).await?;
    for s in streets_of(&comms) {
        let parts: Vec<&MultiPolygon> = comms
            .iter()
            .filter(|r| r.community.street.as_deref() == Some(s.code.as_str()))
            .map(|r| &r.community.geometry)
            .collect();
        let g = crate::store::gpkg::street_geometry(&parts);
        c.execute(
            "INSERT INTO streets (code, communities, households, geom) VALUES ($1, $2, $3, ST_Multi(ST_GeomFromWKB($4, 4326)))",
            &[&s.code, &(i32::try_from(s.communities).unwrap_or(i32::MAX)), &(i64::try_from(s.households).unwrap_or(i64::MAX)), &mp_wkb(&g)],
        )
        .await
        .map_err(pe)?;
    }
    Ok(())
}

#[async_trait]
impl ReferenceData for PostgisStore {
    async fn put_communities(&self, items: Vec<Community>, who: &str) -> Result<Upserted> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        let mut n = Upserted::default();
        for it in &items {
            let inserted: bool = tx
                .query_one(
                    "INSERT INTO communities (code, name, street, updated_at, geom) VALUES ($1, $2, $3, now(), ST_Multi(ST_GeomFromWKB($4, 4326)))
                     ON CONFLICT (code) DO UPDATE SET name = excluded.name, street = excluded.street, updated_at = excluded.updated_at, geom = excluded.geom
                     RETURNING (xmax = 0)",
                    &[&it.code, &it.name, &it.street, &mp_wkb(&it.geometry)],
                )
                .await
                .map_err(pe)?
                .get(0);
            count(&mut n, inserted);
        }
        finish_upsert(tx, true, (who, "communities"), n).await
    }

    async fn put_buildings(&self, items: Vec<Building>, who: &str) -> Result<Upserted> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        let cs: Vec<Community> = read_communities(&tx)
            .await?
            .into_iter()
            .map(|r| r.community)
            .collect();
        let owner = crate::partition::assign_buildings(&cs, &items);
        let mut n = Upserted::default();
        // thousands of rows per statement (arrays unnested), not one round trip per building
        let rows: Vec<(&Building, Option<String>)> = items
            .iter()
            .zip(owner)
            .map(|(b, o)| (b, o.map(|(ci, _)| cs[ci].code.clone())))
            .collect();
        for chunk in rows.chunks(BUILDINGS_PER_STATEMENT) {
            upsert_buildings(&tx, chunk, &mut n).await?;
        }
        finish_upsert(tx, false, (who, "buildings"), n).await
    }

    async fn replace_roads(&self, roads: Vec<Road>, who: &str) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pe)?;
        tx.execute("DELETE FROM roads", &[]).await.map_err(pe)?;
        let st = tx
            .prepare(
                "INSERT INTO roads (highway, name, geom) VALUES ($1, $2, ST_GeomFromWKB($3, 4326))",
            )
            .await
            .map_err(pe)?;
        for r in &roads {
            tx.execute(
                &st,
                &[
                    &r.highway,
                    &r.name,
                    &to_wkb(&Geometry::LineString(r.line.clone())),
                ],
            )
            .await
            .map_err(pe)?;
        }
        audit_in(
            &tx,
            who,
            "replace_roads",
            "roads",
            &format!("{} roads", roads.len()),
        )
        .await?;
        tx.commit().await.map_err(pe)?;
        Ok(roads.len() as u64)
    }

    async fn communities(&self) -> Result<Vec<CommunityRecord>> {
        read_communities(&self.client().await?).await
    }

    async fn streets(&self) -> Result<Vec<Street>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT code, communities, households FROM streets ORDER BY code",
                &[],
            )
            .await
            .map_err(pe)?;
        Ok(rows
            .iter()
            .map(|r| Street {
                code: r.get(0),
                communities: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                households: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect())
    }

    async fn buildings(&self, communities: Option<&[String]>) -> Result<Vec<BuildingRecord>> {
        let client = self.client().await?;
        let rows = match communities {
            Some(cs) => client
                .query(
                    "SELECT building_id, community, households, household_source, ST_AsBinary(geom) FROM buildings WHERE community = ANY($1) ORDER BY fid",
                    &[&cs],
                )
                .await,
            None => client
                .query(
                    "SELECT building_id, community, households, household_source, ST_AsBinary(geom) FROM buildings ORDER BY fid",
                    &[],
                )
                .await,
        }
        .map_err(pe)?;
        rows.iter()
            .map(|r| {
                let hh = u32::try_from(r.get::<_, i32>(2)).unwrap_or(0);
                Ok(BuildingRecord {
                    building: Building {
                        id: r.get(0),
                        households: hh,
                        source: parse_enum(r.get::<_, &str>(3))?,
                        weight: f64::from(hh),
                        geometry: mp_of(r.get::<_, &[u8]>(4))?,
                    },
                    community: r.get(1),
                })
            })
            .collect()
    }

    async fn roads(&self) -> Result<Vec<Road>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT highway, name, ST_AsBinary(geom) FROM roads ORDER BY fid",
                &[],
            )
            .await
            .map_err(pe)?;
        rows.iter()
            .map(|r| {
                let line = match from_wkb(r.get::<_, &[u8]>(2))
                    .map_err(|e| StoreError::Backend(e.to_string()))?
                {
                    Geometry::LineString(l) => l,
                    _ => LineString(vec![]),
                };
                Ok(Road {
                    highway: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    name: r.get(1),
                    line,
                })
            })
            .collect()
    }
}

fn count(n: &mut Upserted, inserted: bool) {
    if inserted {
        n.inserted += 1;
    } else {
        n.updated += 1;
    }
}

/// After an import: recount households (placing buildings again when communities changed),
/// the audit line, commit.
async fn finish_upsert(
    tx: deadpool_postgres::Transaction<'_>,
    reassign: bool,
    (who, layer): (&str, &str),
    n: Upserted,
) -> Result<Upserted> {
    recount(&tx, reassign).await?;
    audit_in(
        &tx,
        who,
        &format!("put_{layer}"),
        layer,
        &format!("{} inserted, {} updated", n.inserted, n.updated),
    )
    .await?;
    tx.commit().await.map_err(pe)?;
    Ok(n)
}

/// Buildings upserted by one statement.
const BUILDINGS_PER_STATEMENT: usize = 2_000;

/// Upsert buildings (with their communities) in one statement; the same id twice in one chunk
/// goes row by row, the later winning, as single upserts would.
async fn upsert_buildings(
    tx: &tokio_postgres::Transaction<'_>,
    chunk: &[(&Building, Option<String>)],
    n: &mut Upserted,
) -> Result<()> {
    const SET: &str = "ON CONFLICT (building_id) DO UPDATE SET community = excluded.community, households = excluded.households,
        household_source = excluded.household_source, updated_at = excluded.updated_at, geom = excluded.geom
        RETURNING (xmax = 0)";
    let mut seen = std::collections::HashSet::new();
    if !chunk.iter().all(|(b, _)| seen.insert(b.id.as_str())) {
        let st = tx
            .prepare(&format!(
                "INSERT INTO buildings (building_id, community, households, household_source, updated_at, geom)
                 VALUES ($1, $2, $3, $4, now(), ST_Multi(ST_GeomFromWKB($5, 4326))) {SET}"
            ))
            .await
            .map_err(pe)?;
        for (b, comm) in chunk {
            let inserted: bool = tx
                .query_one(
                    &st,
                    &[
                        &b.id,
                        comm,
                        &(i32::try_from(b.households).unwrap_or(i32::MAX)),
                        &parse_enum_name(&b.source),
                        &mp_wkb(&b.geometry),
                    ],
                )
                .await
                .map_err(pe)?
                .get(0);
            count(n, inserted);
        }
        return Ok(());
    }
    let ids: Vec<&str> = chunk.iter().map(|(b, _)| b.id.as_str()).collect();
    let comms: Vec<Option<&str>> = chunk.iter().map(|(_, c)| c.as_deref()).collect();
    let hh: Vec<i32> = chunk
        .iter()
        .map(|(b, _)| i32::try_from(b.households).unwrap_or(i32::MAX))
        .collect();
    let src: Vec<String> = chunk
        .iter()
        .map(|(b, _)| parse_enum_name(&b.source))
        .collect();
    let geoms: Vec<Vec<u8>> = chunk.iter().map(|(b, _)| mp_wkb(&b.geometry)).collect();
    let rows = tx
        .query(
            &format!(
                "INSERT INTO buildings (building_id, community, households, household_source, updated_at, geom)
                 SELECT id, comm, hh, src, now(), ST_Multi(ST_GeomFromWKB(g, 4326))
                 FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::bytea[]) AS t(id, comm, hh, src, g)
                 {SET}"
            ),
            &[&ids, &comms, &hh, &src, &geoms],
        )
        .await
        .map_err(pe)?;
    for r in rows {
        count(n, r.get(0));
    }
    Ok(())
}
