//! Communities, streets, buildings and roads in the GeoPackage; household counts recounted after each import.

use super::*;

pub(super) fn touch(c: &Connection, table: &str) -> Result<()> {
    // gpkg_contents: last change and extent
    let ext: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) = c
        .query_row(
            &format!("SELECT min(minx), min(miny), max(maxx), max(maxy) FROM rtree_{table}_geom"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(be)?;
    c.execute(
        "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), min_x = ?2, min_y = ?3, max_x = ?4, max_y = ?5 WHERE table_name = ?1",
        params![table, ext.0, ext.1, ext.2, ext.3],
    )
    .map_err(be)?;
    Ok(())
}

pub(super) fn read_communities(c: &Connection) -> Result<Vec<CommunityRecord>> {
    let mut s = c
        .prepare_cached(
            "SELECT code, name, street, households, buildings, geom FROM communities ORDER BY code",
        )
        .map_err(be)?;
    let rows = s
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
            ))
        })
        .map_err(be)?;
    let mut out = Vec::new();
    for row in rows {
        let (code, name, street, hh, nb, g) = row.map_err(be)?;
        out.push(CommunityRecord {
            community: Community {
                code,
                name,
                street,
                geometry: mp_of(&g)?,
            },
            households: hh.max(0) as u64,
            buildings: nb.max(0) as u64,
        });
    }
    Ok(out)
}

/// Place every stored building in its community, recount communities, rebuild streets.
pub(super) fn recount(c: &Connection, reassign: bool) -> Result<()> {
    if reassign {
        let comms = read_communities(c)?;
        let cs: Vec<Community> = comms.into_iter().map(|r| r.community).collect();
        let mut s = c
            .prepare("SELECT fid, geom, community FROM buildings")
            .map_err(be)?;
        let rows: Vec<(i64, Vec<u8>, Option<String>)> = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)?;
        let bs: Vec<Building> = rows
            .iter()
            .map(|(_, g, _)| {
                Ok(Building {
                    id: String::new(),
                    households: 0,
                    source: HouseholdSource::Given,
                    weight: 0.0,
                    geometry: mp_of(g)?,
                })
            })
            .collect::<Result<_>>()?;
        let owner = crate::partition::assign_buildings(&cs, &bs);
        let mut up = c
            .prepare_cached("UPDATE buildings SET community = ?2 WHERE fid = ?1")
            .map_err(be)?;
        for ((fid, _, old), o) in rows.iter().zip(owner) {
            let new = o.map(|(ci, _)| cs[ci].code.clone());
            if &new != old {
                up.execute(params![fid, new]).map_err(be)?;
            }
        }
    }
    c.execute_batch(
        "UPDATE communities SET
           households = coalesce((SELECT sum(households) FROM buildings b WHERE b.community = communities.code), 0),
           buildings = (SELECT count(*) FROM buildings b WHERE b.community = communities.code);",
    )
    .map_err(be)?;
    // streets: the union of their communities
    let comms = read_communities(c)?;
    let streets = streets_of(&comms);
    c.execute("DELETE FROM streets", []).map_err(be)?;
    let mut ins = c
        .prepare_cached(
            "INSERT INTO streets (geom, code, communities, households) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(be)?;
    for s in &streets {
        let parts: Vec<&MultiPolygon> = comms
            .iter()
            .filter(|r| r.community.street.as_deref() == Some(s.code.as_str()))
            .map(|r| &r.community.geometry)
            .collect();
        let g = street_geometry(&parts);
        ins.execute(params![
            to_gpkg(&Geometry::MultiPolygon(g), 4326),
            s.code,
            s.communities,
            s.households as i64
        ])
        .map_err(be)?;
    }
    touch(c, "streets")?;
    touch(c, "communities")?;
    touch(c, "buildings")?;
    Ok(())
}

#[async_trait]
impl ReferenceData for GpkgStore {
    async fn put_communities(&self, items: Vec<Community>, who: &str) -> Result<Upserted> {
        let who = who.to_string();
        self.write(move |c| {
            let mut n = Upserted::default();
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO communities (geom, code, name, street, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(be)?;
            // a plain UPDATE, not an UPSERT: the GeoPackage 1.3 R-tree triggers the file declares
            // (INSERT OR REPLACE into the index) take the outer statement's conflict rule
            let mut upd = c
                .prepare_cached(
                    "UPDATE communities SET geom = ?1, name = ?3, street = ?4, updated_at = ?5 WHERE code = ?2",
                )
                .map_err(be)?;
            let mut exists = c
                .prepare_cached("SELECT 1 FROM communities WHERE code = ?1")
                .map_err(be)?;
            let t = ts_text(now());
            for it in &items {
                let st = if exists.exists([&it.code]).map_err(be)? {
                    n.updated += 1;
                    &mut upd
                } else {
                    n.inserted += 1;
                    &mut ins
                };
                st.execute(params![
                    to_gpkg(&Geometry::MultiPolygon(it.geometry.clone()), 4326),
                    it.code,
                    it.name,
                    it.street,
                    t
                ])
                .map_err(be)?;
            }
            recount(c, true)?;
            audit_in(c, &who, "put_communities", "communities", &format!("{} inserted, {} updated", n.inserted, n.updated))?;
            Ok(n)
        })
        .await
    }

    async fn put_buildings(&self, items: Vec<Building>, who: &str) -> Result<Upserted> {
        let who = who.to_string();
        self.write(move |c| {
            let cs: Vec<Community> = read_communities(c)?.into_iter().map(|r| r.community).collect();
            let owner = crate::partition::assign_buildings(&cs, &items);
            let mut n = Upserted::default();
            let mut ins = c
                .prepare_cached(
                    "INSERT INTO buildings (geom, building_id, community, households, household_source, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(be)?;
            // a plain UPDATE, not an UPSERT (see put_communities)
            let mut upd = c
                .prepare_cached(
                    "UPDATE buildings SET geom = ?1, community = ?3, households = ?4, household_source = ?5, updated_at = ?6 WHERE building_id = ?2",
                )
                .map_err(be)?;
            let mut exists = c
                .prepare_cached("SELECT 1 FROM buildings WHERE building_id = ?1")
                .map_err(be)?;
            let t = ts_text(now());
            for (b, o) in items.iter().zip(owner) {
                let st = if exists.exists([&b.id]).map_err(be)? {
                    n.updated += 1;
                    &mut upd
                } else {
                    n.inserted += 1;
                    &mut ins
                };
                st.execute(params![
                    to_gpkg(&Geometry::MultiPolygon(b.geometry.clone()), 4326),
                    b.id,
                    o.map(|(ci, _)| cs[ci].code.clone()),
                    i64::from(b.households),
                    crate::store::parse_enum_name(&b.source),
                    t
                ])
                .map_err(be)?;
            }
            recount(c, false)?;
            audit_in(c, &who, "put_buildings", "buildings", &format!("{} inserted, {} updated", n.inserted, n.updated))?;
            Ok(n)
        })
        .await
    }

    async fn replace_roads(&self, roads: Vec<Road>, who: &str) -> Result<u64> {
        let who = who.to_string();
        self.write(move |c| {
            c.execute("DELETE FROM roads", []).map_err(be)?;
            let mut ins = c
                .prepare_cached("INSERT INTO roads (geom, highway, name) VALUES (?1, ?2, ?3)")
                .map_err(be)?;
            for r in &roads {
                ins.execute(params![
                    to_gpkg(&Geometry::LineString(r.line.clone()), 4326),
                    r.highway,
                    r.name
                ])
                .map_err(be)?;
            }
            touch(c, "roads")?;
            audit_in(
                c,
                &who,
                "replace_roads",
                "roads",
                &format!("{} roads", roads.len()),
            )?;
            Ok(roads.len() as u64)
        })
        .await
    }

    async fn communities(&self) -> Result<Vec<CommunityRecord>> {
        self.read(read_communities).await
    }

    async fn streets(&self) -> Result<Vec<Street>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT code, communities, households FROM streets ORDER BY code")
                .map_err(be)?;
            s.query_map([], |r| {
                Ok(Street {
                    code: r.get(0)?,
                    communities: r.get::<_, i64>(1)?.max(0) as u32,
                    households: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(be)?
            .collect::<rusqlite::Result<_>>()
            .map_err(be)
        })
        .await
    }

    async fn buildings(&self, communities: Option<&[String]>) -> Result<Vec<BuildingRecord>> {
        let filter: Option<Vec<String>> = communities.map(<[String]>::to_vec);
        self.read(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT building_id, community, households, household_source, geom FROM buildings ORDER BY fid",
                )
                .map_err(be)?;
            let mut rows = s.query([]).map_err(be)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(be)? {
                let community: Option<String> = r.get(1).map_err(be)?;
                if let Some(f) = &filter
                    && !community.as_ref().is_some_and(|c| f.contains(c))
                {
                    continue;
                }
                let hh: i64 = r.get(2).map_err(be)?;
                let src: String = r.get(3).map_err(be)?;
                let g: Vec<u8> = r.get(4).map_err(be)?;
                out.push(BuildingRecord {
                    building: Building {
                        id: r.get(0).map_err(be)?,
                        households: u32::try_from(hh.max(0)).unwrap_or(u32::MAX),
                        source: parse_enum(&src)?,
                        weight: hh.max(0) as f64,
                        geometry: mp_of(&g)?,
                    },
                    community,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn roads(&self) -> Result<Vec<Road>> {
        self.read(|c| {
            let mut s = c
                .prepare_cached("SELECT highway, name, geom FROM roads ORDER BY fid")
                .map_err(be)?;
            let mut rows = s.query([]).map_err(be)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(be)? {
                let g: Vec<u8> = r.get(2).map_err(be)?;
                let line = match from_gpkg(&g).map_err(|e| StoreError::Backend(e.to_string()))? {
                    Geometry::LineString(l) => l,
                    _ => LineString(vec![]),
                };
                out.push(Road {
                    highway: r
                        .get::<_, Option<String>>(0)
                        .map_err(be)?
                        .unwrap_or_default(),
                    name: r.get(1).map_err(be)?,
                    line,
                });
            }
            Ok(out)
        })
        .await
    }
}
