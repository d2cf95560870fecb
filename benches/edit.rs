//! Plan edit latency in process (scripts/bench-edit prepares the store and runs it):
//! `cargo bench --bench edit -- DATABASE PLAN COMMUNITY RUNS`. Prints JSON: p50/p95 (ms) per
//! operation on that community — each edit applied and undone, dry runs, a balanced split,
//! a re-solve of 4 neighbouring grids — and the undo of each applied edit; the plan prepared
//! first as the server prepares a draft a planner opens (`plan::warm`), and the first edit
//! without that preparation.

use std::sync::Arc;
use std::time::Instant;
use wangge::plan::{self, EditRequest, FabricCache, Op, State};
use wangge::store::Store;

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Single-building atoms on a grid's edge, each with its grid and a neighbouring grid.
fn edge_buildings(l: &plan::Loaded, st: &State) -> Vec<(String, String, String)> {
    let f = &l.fabric;
    let mut out = Vec::new();
    for at in 0..f.n_atoms() {
        let atom = f.atom(at).unwrap();
        if atom.buildings.len() != 1 {
            continue;
        }
        let g = st.atoms[at];
        if let Some(e) = f
            .neighbours(at)
            .iter()
            .find(|e| st.atoms[e.nbr as usize] != g && e.len > 5.0)
        {
            out.push((
                f.buildings[atom.buildings[0] as usize].id.clone(),
                st.grids[g as usize].code.clone(),
                st.grids[st.atoms[e.nbr as usize] as usize].code.clone(),
            ));
        }
    }
    out
}

/// (n, p50, p95, refused) of the operations, each applied (and undone when `undo`).
async fn time(
    store: &Arc<dyn Store>,
    cache: &FabricCache,
    id: i64,
    ops: Vec<Op>,
    (r, undo): (&EditRequest, bool),
) -> serde_json::Value {
    let mut ms = Vec::new();
    let mut undos = Vec::new();
    let mut refused = 0;
    for op in ops {
        let t = Instant::now();
        let ok = plan::edit(store.as_ref(), Some(cache), id, &op, r)
            .await
            .is_ok();
        let e = t.elapsed().as_secs_f64() * 1e3;
        if ok {
            ms.push(e);
            if undo {
                let t = Instant::now();
                plan::undo_redo(store.as_ref(), Some(cache), id, false, r)
                    .await
                    .unwrap();
                undos.push(t.elapsed().as_secs_f64() * 1e3);
            }
        } else {
            refused += 1;
        }
    }
    if ms.is_empty() {
        return serde_json::json!({ "n": 0, "refused": refused });
    }
    let mut out = serde_json::json!({
        "n": ms.len(), "refused": refused,
        "p50_ms": (pct(ms.clone(), 0.5) * 10.0).round() / 10.0,
        "p95_ms": (pct(ms, 0.95) * 10.0).round() / 10.0,
    });
    if !undos.is_empty() {
        // the undo of each edit (reads the one log entry it reverts, however long the log)
        out["undo_p50_ms"] = ((pct(undos.clone(), 0.5) * 10.0).round() / 10.0).into();
        out["undo_p95_ms"] = ((pct(undos, 0.95) * 10.0).round() / 10.0).into();
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|x| x != "--bench")
        .collect();
    let (db, id, community) = (a[0].clone(), a[1].parse::<i64>().unwrap(), a[2].clone());
    let runs = a.get(3).and_then(|x| x.parse().ok()).unwrap_or(30usize);
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let store = wangge::store::open(Some(&db)).await.unwrap();
    let cache = FabricCache::default();
    let p = store.plan(id).await.unwrap();
    let (l, st) = plan::load(store.as_ref(), Some(&cache), &p, &community)
        .await
        .unwrap();
    let edge = edge_buildings(&l, &st);
    let codes: Vec<String> = st.grids.iter().map(|s| s.code.clone()).collect();
    let moves: Vec<Op> = edge
        .iter()
        .take(runs)
        .map(|(b, _, to)| Op::Move {
            buildings: vec![b.clone()],
            atoms: vec![],
            to: to.clone(),
        })
        .collect();
    let merges: Vec<Op> = edge
        .iter()
        .take(runs)
        .map(|(_, from, to)| Op::Merge {
            grids: vec![from.clone(), to.clone()],
        })
        .collect();
    let take = |f: &dyn Fn(usize) -> Op| -> Vec<Op> { (0..runs.min(codes.len())).map(f).collect() };
    let locks = take(&|i| Op::Lock {
        grids: vec![codes[i].clone()],
    });
    let splits = take(&|i| Op::Split {
        grid: codes[i].clone(),
        line: None,
    });
    let resolves = take(&|i| Op::Resolve {
        grids: codes[i * 4 % codes.len()..(i * 4 % codes.len() + 4).min(codes.len())].to_vec(),
    });
    let req = EditRequest {
        who: "bench".into(),
        ..EditRequest::default()
    };
    let dry = EditRequest {
        dry_run: true,
        ..req.clone()
    };
    // the first edit where nothing was decoded or derived yet (a plan nobody opened) ...
    let cold = FabricCache::default();
    let t = Instant::now();
    let _ = plan::edit(store.as_ref(), Some(&cold), id, &moves[0], &dry).await;
    let unprepared = t.elapsed().as_secs_f64() * 1e3;
    // ... and preparing the plan, as the server does when a planner opens a draft
    let t = Instant::now();
    plan::warm(store.as_ref(), &cache, id, None).await.unwrap();
    let prepare = t.elapsed().as_secs_f64() * 1e3;
    let out = serde_json::json!({
        "first_edit_unprepared_ms": (unprepared * 10.0).round() / 10.0,
        "prepare_plan_ms": (prepare * 10.0).round() / 10.0,
        "move": time(&store, &cache, id, moves.clone(), (&req, true)).await,
        "move_dry_run": time(&store, &cache, id, moves, (&dry, false)).await,
        "lock": time(&store, &cache, id, locks, (&req, true)).await,
        "merge": time(&store, &cache, id, merges, (&req, true)).await,
        "split": time(&store, &cache, id, splits, (&req, true)).await,
        "resolve_4": time(&store, &cache, id, resolves, (&req, true)).await,
    });
    println!("{out}");
}
