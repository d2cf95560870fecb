//! Incidents and their append-only history in the GeoPackage.

use super::*;

pub(super) const CASE_COLS: &str = "incident_id, category, description, source, reporter, media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, geom";

pub(super) fn case_params(k: &Case) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    let t = |s: &Option<String>| s.clone().map_or(V::Null, V::Text);
    let tt = |x: Option<i64>| x.map_or(V::Null, |x| V::Text(ts_text(x)));
    vec![
        V::Text(k.id.clone()),
        V::Text(k.category.clone()),
        V::Text(k.description.clone()),
        V::Text(crate::store::parse_enum_name(&k.source)),
        t(&k.reporter),
        V::Text(serde_json::to_string(&k.media).unwrap_or_else(|_| "[]".into())),
        V::Text(ts_text(k.reported_at)),
        t(&k.grid),
        t(&k.community),
        t(&k.street),
        V::Text(state_name(k.state)),
        V::Text(crate::store::parse_enum_name(&k.level)),
        t(&k.unit),
        tt(k.due_at),
        tt(k.closed_at),
        V::Integer(i64::from(k.escalations)),
        V::Integer(i64::from(k.returns)),
        k.score.map_or(V::Null, |s| V::Integer(i64::from(s))),
        t(&k.duplicate_of),
        V::Blob(to_gpkg(
            &Geometry::Point(geo::Point::new(k.lon, k.lat)),
            4326,
        )),
    ]
}

pub(super) type CaseRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Vec<u8>,
);

pub(super) fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
        r.get(15)?,
        r.get(16)?,
        r.get(17)?,
        r.get(18)?,
        r.get(19)?,
    ))
}

pub(super) fn case_of(c: &Connection, row: CaseRow) -> Result<Case> {
    let mut hs = c
        .prepare_cached(
            "SELECT at, who, action, from_state, to_state, note FROM incident_history WHERE incident_id = ?1 ORDER BY seq",
        )
        .map_err(be)?;
    let history = hs
        .query_map([&row.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(be)?
        .map(|h| {
            let h = h.map_err(be)?;
            Ok(HistoryEntry {
                at: text_ts(&h.0)?,
                who: h.1,
                action: h.2,
                from: parse_enum(&h.3)?,
                to: parse_enum(&h.4)?,
                note: h.5,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    case_from(row, history)
}

/// A case of an aggregate read: no history (and the lean columns hold no personal text).
fn case_of_lean(row: CaseRow) -> Result<Case> {
    case_from(row, Vec::new())
}

fn case_from(row: CaseRow, history: Vec<HistoryEntry>) -> Result<Case> {
    let opt = |s: Option<String>| s.as_deref().map(text_ts).transpose();
    let (lon, lat) = match from_gpkg(&row.19).map_err(|e| StoreError::Backend(e.to_string()))? {
        Geometry::Point(p) => (p.x(), p.y()),
        _ => {
            return Err(StoreError::Backend(
                "incident geometry is not a point".into(),
            ));
        }
    };
    Ok(Case {
        id: row.0,
        category: row.1,
        description: row.2,
        source: parse_enum(&row.3)?,
        reporter: row.4,
        media: serde_json::from_str(&row.5).unwrap_or_default(),
        reported_at: text_ts(&row.6)?,
        grid: row.7,
        community: row.8,
        street: row.9,
        state: parse_enum(&row.10)?,
        level: parse_enum(&row.11)?,
        unit: row.12,
        due_at: opt(row.13)?,
        closed_at: opt(row.14)?,
        escalations: row.15.max(0) as u32,
        returns: row.16.max(0) as u32,
        score: row.17.and_then(|s| u8::try_from(s).ok()),
        duplicate_of: row.18,
        lon,
        lat,
        history,
    })
}

pub(super) fn get_case(c: &Connection, id: &str) -> Result<Case> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {CASE_COLS} FROM incidents WHERE incident_id = ?1"
        ))
        .map_err(be)?
        .query_row([id], case_row)
        .optional()
        .map_err(be)?
        .ok_or_else(|| StoreError::NotFound {
            what: "incident",
            id: id.to_string(),
        })?;
    case_of(c, row)
}

pub(super) fn insert_history(
    c: &Connection,
    id: &str,
    from: usize,
    h: &[HistoryEntry],
) -> Result<()> {
    let mut s = c
        .prepare_cached(
            "INSERT INTO incident_history (incident_id, seq, at, who, action, from_state, to_state, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(be)?;
    for (i, e) in h.iter().enumerate().skip(from) {
        s.execute(params![
            id,
            i as i64,
            ts_text(e.at),
            e.who,
            e.action,
            state_name(e.from),
            state_name(e.to),
            e.note
        ])
        .map_err(be)?;
    }
    Ok(())
}

#[async_trait]
impl Cases for GpkgStore {
    async fn insert_incident(&self, case: &Case, who: &str) -> Result<()> {
        let (case, who) = (case.clone(), who.to_string());
        self.write(move |c| {
            let exists = c
                .prepare_cached("SELECT 1 FROM incidents WHERE incident_id = ?1")
                .map_err(be)?
                .exists([&case.id])
                .map_err(be)?;
            if exists {
                return Err(StoreError::Conflict(format!(
                    "incident {} already exists",
                    case.id
                )));
            }
            c.prepare_cached(&format!(
                "INSERT INTO incidents ({CASE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
            ))
            .map_err(be)?
            .execute(params_from_iter(case_params(&case)))
            .map_err(be)?;
            insert_history(c, &case.id, 0, &case.history)?;
            audit_in(c, &who, "insert_incident", &format!("incident {}", case.id), &case.category)
        })
        .await
    }

    async fn update_incident(&self, case: &Case, expected_history: usize, who: &str) -> Result<()> {
        let (case, who) = (case.clone(), who.to_string());
        self.write(move |c| {
            let old = get_case(c, &case.id)?;
            check_history(&old, &case, expected_history)?;
            let sets: Vec<String> = CASE_COLS
                .split(", ")
                .enumerate()
                .skip(1)
                .map(|(i, col)| format!("{col} = ?{}", i + 1))
                .collect();
            c.prepare_cached(&format!(
                "UPDATE incidents SET {} WHERE incident_id = ?1",
                sets.join(", ")
            ))
            .map_err(be)?
            .execute(params_from_iter(case_params(&case)))
            .map_err(be)?;
            insert_history(c, &case.id, old.history.len(), &case.history)?;
            audit_in(
                c,
                &who,
                "update_incident",
                &format!("incident {}", case.id),
                &state_name(case.state),
            )
        })
        .await
    }

    async fn incident(&self, id: &str) -> Result<Case> {
        let id = id.to_string();
        self.read(move |c| get_case(c, &id)).await
    }

    async fn incidents(&self, f: &IncidentFilter) -> Result<Vec<Case>> {
        let f = f.clone();
        self.read(move |c| {
            let (cond, mut args) = where_of(&f);
            let cols = if f.lean { LEAN_COLS } else { CASE_COLS };
            let mut sql = format!("SELECT {cols} FROM incidents{cond}");
            sql.push_str(" ORDER BY reported_at, incident_id LIMIT ? OFFSET ?");
            args.push(rusqlite::types::Value::Integer(if f.limit == 0 {
                -1
            } else {
                f.limit as i64
            }));
            args.push(rusqlite::types::Value::Integer(f.offset as i64));
            let rows: Vec<CaseRow> = c
                .prepare_cached(&sql)
                .map_err(be)?
                .query_map(params_from_iter(args), case_row)
                .map_err(be)?
                .collect::<rusqlite::Result<_>>()
                .map_err(be)?;
            rows.into_iter()
                .map(|r| {
                    if f.lean {
                        case_of_lean(r)
                    } else {
                        case_of(c, r)
                    }
                })
                .collect()
        })
        .await
    }

    async fn count_incidents(&self, f: &IncidentFilter) -> Result<u64> {
        let f = f.clone();
        self.read(move |c| {
            let (cond, args) = where_of(&f);
            let n: i64 = c
                .prepare_cached(&format!("SELECT count(*) FROM incidents{cond}"))
                .and_then(|mut s| s.query_row(params_from_iter(args), |r| r.get(0)))
                .map_err(be)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

/// The columns of a case for aggregates: no description, reporter or photos.
const LEAN_COLS: &str = "incident_id, category, '' AS description, source, NULL AS reporter, '[]' AS media, reported_at, grid, community, street, state, level, unit, due_at, closed_at, escalations, returns, score, duplicate_of, geom";

/// ` WHERE …` of a filter (empty for none) and its arguments.
fn where_of(f: &IncidentFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let text = rusqlite::types::Value::Text;
    if let Some(g) = &f.grid {
        conds.push("grid = ?");
        args.push(text(g.clone()));
    }
    if let Some(g) = &f.community {
        conds.push("community = ?");
        args.push(text(g.clone()));
    }
    if let Some(s) = &f.scope {
        conds.push("(grid = ? OR community = ? OR street = ?)");
        args.extend([text(s.clone()), text(s.clone()), text(s.clone())]);
    }
    if let Some(s) = f.state {
        conds.push("state = ?");
        args.push(text(state_name(s)));
    }
    if let Some(s) = &f.category {
        conds.push("category = ?");
        args.push(text(s.clone()));
    }
    if let Some(t) = f.overdue_at {
        conds.push("due_at IS NOT NULL AND due_at < ? AND state NOT IN ('closed', 'rejected', 'voided', 'suspended')");
        args.push(text(ts_text(t)));
    }
    if let Some(t) = f.from {
        conds.push("reported_at >= ?");
        args.push(text(ts_text(t)));
    }
    if let Some(t) = f.to {
        conds.push("reported_at < ?");
        args.push(text(ts_text(t)));
    }
    if conds.is_empty() {
        (String::new(), args)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), args)
    }
}
