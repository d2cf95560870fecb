//! The hidden store-load benchmark, and publishing a plan from the command line with its exception register.

use super::*;

/// Run the hidden `wangge store-load`.
///
/// # Errors
/// A store error.
pub fn load(a: &LoadArgs) -> Result<()> {
    let conc = a.concurrency.max(1);
    block_on(async {
        let store = open(a.database.as_deref()).await?;
        match a.mode.as_str() {
            "inserts" => load_inserts(store, a, conc).await,
            "queries" => load_queries(store, a, conc).await,
            o => bail!("--mode {o:?}: expected inserts or queries"),
        }
    })
}

/// Durable incident inserts by `conc` writers: rate and latencies (or one `ack` line per
/// acknowledged insert, for the crash test).
pub(crate) async fn load_inserts(
    store: Arc<dyn crate::store::Store>,
    a: &LoadArgs,
    conc: usize,
) -> Result<()> {
    let cat = crate::incident::Catalogue::default_catalogue();
    let cat0 = cat
        .categories
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("empty catalogue"))?;
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (store, out, cat0) = (store.clone(), out.clone(), cat0.clone());
        let n = a.count / conc + usize::from(w < a.count % conc);
        let (prefix, print) = (a.prefix.clone(), a.print_acks);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for i in 0..n {
                let id = format!("{prefix}-{w}-{i}");
                let k = crate::incident::Case::report(
                    id.clone(),
                    &cat0,
                    "load test".into(),
                    116.40 + (i % 100) as f64 * 1e-4,
                    39.90 + (w % 100) as f64 * 1e-4,
                    crate::incident::Source::Patrol,
                    None,
                    1_735_689_600 + i as i64,
                );
                let t = std::time::Instant::now();
                store.insert_incident(&k, "load").await?;
                lat.push(t.elapsed().as_secs_f64());
                if print && let Ok(mut o) = out.lock() {
                    let _ = writeln!(o, "ack {id}");
                    let _ = o.flush();
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let s = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
            * 1000.0
    };
    if !a.print_acks {
        println!(
            "{}",
            json!({ "store": store.describe(), "mode": "inserts", "writers": conc, "inserts": lat.len(), "seconds": s,
                        "per_s": lat.len() as f64 / s, "p50_ms": q(0.5), "p99_ms": q(0.99) })
        );
    }
    Ok(())
}

/// The extent of the grids in force, and a point inside each.
pub(crate) fn extent_and_points(features: &[crate::store::Feature]) -> ([f64; 4], Vec<(f64, f64)>) {
    let mut ext = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    let mut pts = Vec::new();
    for f in features {
        if let Some(g) = &f.geometry
            && let Some(r) = geo::BoundingRect::bounding_rect(g)
        {
            ext = [
                ext[0].min(r.min().x),
                ext[1].min(r.min().y),
                ext[2].max(r.max().x),
                ext[3].max(r.max().y),
            ];
            if let Some(p) = crate::geom::interior_point::interior_point(&match g {
                geo::Geometry::MultiPolygon(m) => m.clone(),
                _ => continue,
            }) {
                pts.push((p.x, p.y));
            }
        }
    }
    (ext, pts)
}

/// Bbox pages of 1,000 grids and point lookups by `conc` readers.
pub(crate) async fn load_queries(
    store: Arc<dyn crate::store::Store>,
    a: &LoadArgs,
    conc: usize,
) -> Result<()> {
    let grids = store
        .features(Layer::Grids, &FeatureQuery::default())
        .await?;
    if grids.features.is_empty() {
        bail!(
            "no grids in force in {}: publish a plan first",
            store.describe()
        );
    }
    let (ext, pts) = extent_and_points(&grids.features);
    let pts = Arc::new(pts);
    let mut out = json!({ "store": store.describe(), "mode": "queries", "concurrency": conc, "grids_in_force": grids.matched });
    // bbox pages of 1,000 grids
    let n_bbox = (a.count / 100).max(conc);
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let store = store.clone();
        let n = n_bbox / conc;
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..n {
                let p = store
                    .features(
                        Layer::Grids,
                        &FeatureQuery {
                            bbox: Some(ext),
                            limit: 1000,
                            offset: w,
                            ..FeatureQuery::default()
                        },
                    )
                    .await?;
                got += p.features.len();
            }
            anyhow::Ok((n, got))
        }));
    }
    let (mut q, mut got) = (0, 0);
    for t in tasks {
        let (n, g) = t.await??;
        q += n;
        got += g;
    }
    let s = t0.elapsed().as_secs_f64();
    out["bbox_queries"] = json!(q);
    out["bbox_grids_per_query"] = json!(got / q.max(1));
    out["bbox_queries_per_s"] = json!(q as f64 / s);
    lookups(&store, pts, a.count, conc, &mut out).await?;
    println!("{out}");
    Ok(())
}

/// `count` point lookups by `conc` readers at the points `pts`; figures into `out`.
pub(crate) async fn lookups(
    store: &Arc<dyn crate::store::Store>,
    pts: Arc<Vec<(f64, f64)>>,
    count: usize,
    conc: usize,
    out: &mut Value,
) -> Result<()> {
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    let now = chrono::Utc::now().timestamp();
    for w in 0..conc {
        let (store, pts) = (store.clone(), pts.clone());
        let n = count / conc;
        tasks.push(tokio::spawn(async move {
            let mut found = 0;
            for i in 0..n {
                let (x, y) = pts[(i * 7919 + w * 104_729) % pts.len()];
                if store.grid_at(x, y, now).await?.is_some() {
                    found += 1;
                }
            }
            anyhow::Ok((n, found))
        }));
    }
    let (mut q, mut found) = (0, 0);
    for t in tasks {
        let (n, f) = t.await??;
        q += n;
        found += f;
    }
    let s = t0.elapsed().as_secs_f64();
    out["lookups"] = json!(q);
    out["lookups_found"] = json!(found);
    out["lookups_per_s"] = json!(q as f64 / s);
    Ok(())
}

/// `wangge plans publish`: the reasons given as CODE=REASON, the register printed after.
pub(crate) async fn publish(
    id: i64,
    valid_from: &str,
    by: &str,
    exceptions: &[String],
    common: &PlansArgs,
) -> Result<()> {
    let mut reasons = crate::store::Reasons::new();
    for e in exceptions {
        let Some((code, reason)) = e.split_once('=') else {
            anyhow::bail!("--exception {e:?}: expected CODE=REASON");
        };
        if reasons
            .insert(code.trim().to_string(), reason.to_string())
            .is_some()
        {
            anyhow::bail!("--exception: grid {} is named twice", code.trim());
        }
    }
    let t = parse_time(valid_from).ok_or_else(|| {
        anyhow::anyhow!(
            "--valid-from {valid_from:?}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]"
        )
    })?;
    let store = open(common.database.as_deref()).await?;
    let p = store.publish_plan(id, t, None, by, &reasons).await?;
    // running servers on the same database follow at once
    store.announce_change().await?;
    let register = store.plan_exceptions(id).await?;
    if common.json {
        println!("{}", serde_json::to_string(&p)?);
    } else {
        println!("published: {}", plan_line(&p));
        print_register(&register);
    }
    Ok(())
}

/// The exception register, one grid a line.
pub(crate) fn print_register(register: &[crate::store::ExceptionRecord]) {
    if register.is_empty() {
        println!("exception register: every grid in band");
        return;
    }
    println!("exception register ({} grids out of band):", register.len());
    for e in register {
        println!(
            "  {:<16} {:<8} {:>6} households  {}",
            e.grid, e.band, e.households, e.reason
        );
    }
}
