//! The store contract: one set of tests, run against the embedded GeoPackage store and against
//! PostGIS (a real server started by scripts/test).
#![expect(
    clippy::too_many_lines,
    reason = "contract scenarios read top to bottom, one step after another"
)]

mod common;

use geo::{MultiPolygon, Polygon, polygon};
use std::sync::Arc;
use wangge::incident::{Action, Calendar, Case, Catalogue, Source, State};
use wangge::model::{Building, Community, HouseholdSource, Road};
use wangge::store::{
    FeaturePage, FeatureQuery, GridRecord, IncidentFilter, Layer, NewPlan, PlanStatus, Reasons,
    Store, StoreError, Worker,
};

fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon {
    let p: Polygon =
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)];
    MultiPolygon(vec![p])
}

/// Two communities side by side (A west, B east), 0.01° square, in one street.
fn communities() -> Vec<Community> {
    vec![
        Community {
            code: "110101001001".into(),
            name: Some("东园社区".into()),
            street: Some("110101001".into()),
            geometry: rect(116.40, 39.90, 116.41, 39.91),
        },
        Community {
            code: "110101001002".into(),
            name: Some("西园社区".into()),
            street: Some("110101001".into()),
            geometry: rect(116.41, 39.90, 116.42, 39.91),
        },
    ]
}

fn building(id: &str, x: f64, y: f64, hh: u32) -> Building {
    Building {
        id: id.into(),
        households: hh,
        source: HouseholdSource::Given,
        weight: f64::from(hh),
        geometry: rect(x, y, x + 0.0005, y + 0.0005),
    }
}

fn buildings() -> Vec<Building> {
    vec![
        building("b1", 116.401, 39.901, 120),
        building("b2", 116.407, 39.905, 180),
        building("b3", 116.412, 39.902, 250),
        building("b4", 116.418, 39.907, 90),
        building("outside", 116.50, 39.95, 10),
    ]
}

fn grid(code: &str, community: &str, g: MultiPolygon, hh: u64) -> GridRecord {
    GridRecord {
        code: code.into(),
        name: Some(format!("网格 {code}")),
        community: community.into(),
        street: Some("110101001".into()),
        households: hh,
        buildings: 1,
        weight: hh as f64,
        band: "in".into(),
        geometry: g,
        valid_from: None,
        valid_to: None,
    }
}

/// A plan of four grids: each community cut into west and east halves.
fn halves(prefix: &str) -> NewPlan {
    NewPlan {
        communities: vec!["110101001001".into(), "110101001002".into()],
        created_by: "planner-1".into(),
        params: serde_json::json!({ "min": 200, "max": 400 }),
        metrics: serde_json::json!({ "in_band_pct": 100.0 }),
        grids: vec![
            grid(
                &format!("{prefix}1"),
                "110101001001",
                rect(116.40, 39.90, 116.405, 39.91),
                120,
            ),
            grid(
                &format!("{prefix}2"),
                "110101001001",
                rect(116.405, 39.90, 116.41, 39.91),
                180,
            ),
            grid(
                &format!("{prefix}3"),
                "110101001002",
                rect(116.41, 39.90, 116.415, 39.91),
                250,
            ),
            grid(
                &format!("{prefix}4"),
                "110101001002",
                rect(116.415, 39.90, 116.42, 39.91),
                90,
            ),
        ],
        assignment: vec![
            ("b1".into(), format!("{prefix}1")),
            ("b2".into(), format!("{prefix}2")),
            ("b3".into(), format!("{prefix}3")),
            ("b4".into(), format!("{prefix}4")),
        ],
    }
}

async fn loaded(s: &Arc<dyn Store>) {
    s.put_communities(communities(), "importer").await.unwrap();
    s.put_buildings(buildings(), "importer").await.unwrap();
}

const T0: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const DAY: i64 = 86_400;

async fn import_upserts(s: Arc<dyn Store>) {
    let n = s.put_communities(communities(), "importer").await.unwrap();
    assert_eq!((n.inserted, n.updated), (2, 0));
    let n = s.put_communities(communities(), "importer").await.unwrap();
    assert_eq!((n.inserted, n.updated), (0, 2), "re-import updates");
    let n = s.put_buildings(buildings(), "importer").await.unwrap();
    assert_eq!((n.inserted, n.updated), (5, 0));
    let mut bs = buildings();
    bs[0].households = 130;
    let n = s.put_buildings(bs, "importer").await.unwrap();
    assert_eq!((n.inserted, n.updated), (0, 5));
    let cs = s.communities().await.unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].community.code, "110101001001");
    assert_eq!(cs[0].community.name.as_deref(), Some("东园社区"));
    assert_eq!((cs[0].households, cs[0].buildings), (310, 2));
    assert_eq!((cs[1].households, cs[1].buildings), (340, 2));
    let st = s.streets().await.unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!((st[0].communities, st[0].households), (2, 650));
    let all = s.buildings(None).await.unwrap();
    assert_eq!(all.len(), 5);
    let outside = all.iter().find(|b| b.building.id == "outside").unwrap();
    assert_eq!(outside.community, None);
    // the same id twice in one import: the later wins, as two imports would
    let mut twice = vec![buildings()[1].clone(), buildings()[1].clone()];
    twice[0].households = 7;
    twice[1].households = 9;
    s.put_buildings(twice, "importer").await.unwrap();
    let b2 = s.buildings(None).await.unwrap();
    let b2 = b2
        .iter()
        .find(|b| b.building.id == buildings()[1].id)
        .unwrap();
    assert_eq!(b2.building.households, 9);
    s.put_buildings(vec![buildings()[1].clone()], "importer")
        .await
        .unwrap();
    let a = s
        .buildings(Some(&["110101001001".to_string()]))
        .await
        .unwrap();
    let mut ids: Vec<&str> = a.iter().map(|b| b.building.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["b1", "b2"]);
    assert_eq!(a[0].building.geometry, buildings()[0].geometry);
    // roads replace
    let road = Road {
        highway: "residential".into(),
        name: Some("东园路".into()),
        line: geo::LineString::from(vec![(116.405, 39.90), (116.405, 39.91)]),
    };
    assert_eq!(
        s.replace_roads(vec![road.clone(), road.clone()], "importer")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.replace_roads(vec![road.clone()], "importer")
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.roads().await.unwrap(), vec![road]);
    // the street layer has the union of its communities
    let f = s
        .features(Layer::Streets, &FeatureQuery::default())
        .await
        .unwrap();
    assert_eq!(f.matched, 1);
    let g = f.features[0].geometry.clone().unwrap();
    let area = geo::Area::unsigned_area(&g);
    assert!((area - 0.0002).abs() < 1e-9, "street area {area}");
    let log = s.audit_log(100).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "put_buildings" && e.who == "importer")
    );
}

/// A plan with grids out of band is published only with a reason for each (one building above
/// the band needs none); the reasons are kept as the plan's exception register.
async fn exception_register(s: Arc<dyn Store>) {
    loaded(&s).await;
    let mut plan = halves("E");
    plan.grids[0].band = "under".into();
    plan.grids[2].band = "over".into();
    plan.grids[3].band = "oversize".into();
    let (under, over) = (plan.grids[0].code.clone(), plan.grids[2].code.clone());
    let a = s.create_plan(plan).await.unwrap();
    let refused = |r: Result<wangge::store::Plan, StoreError>| match r {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    // none given: both grids named, not the oversize one
    let m = refused(s.publish_plan(a.id, T0, None, "p", &Reasons::new()).await);
    assert!(m.contains("2 grids out of band without a reason"), "{m}");
    assert!(
        m.contains(&format!("{under} (under")) && m.contains(&format!("{over} (over")),
        "{m}"
    );
    assert!(!m.contains("E4"), "{m}");
    // one missing, a blank one, one for a grid in band
    let r = |pairs: &[(&str, &str)]| -> Reasons {
        pairs
            .iter()
            .map(|(c, t)| ((*c).to_string(), (*t).to_string()))
            .collect()
    };
    let m = refused(
        s.publish_plan(a.id, T0, None, "p", &r(&[(&under, "学校用地")]))
            .await,
    );
    assert!(m.contains("1 grid out of band") && m.contains(&over), "{m}");
    let m = refused(
        s.publish_plan(
            a.id,
            T0,
            None,
            "p",
            &r(&[(&under, "学校用地"), (&over, " ")]),
        )
        .await,
    );
    assert!(m.contains("blank"), "{m}");
    let m = refused(
        s.publish_plan(
            a.id,
            T0,
            None,
            "p",
            &r(&[(&under, "x"), (&over, "y"), ("E2", "z")]),
        )
        .await,
    );
    assert!(m.contains("E2, which is not out of band"), "{m}");
    // nothing was published or registered by the refusals
    assert_eq!(s.plan(a.id).await.unwrap().status, PlanStatus::Draft);
    assert!(s.plan_exceptions(a.id).await.unwrap().is_empty());
    // one named, the other by `*`
    let p = s
        .publish_plan(
            a.id,
            T0,
            None,
            "planner-7",
            &r(&[
                (&under, " 学校与商业用地为主 "),
                ("*", "新建高层，入住率低"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(p.status, PlanStatus::Published);
    let reg = s.plan_exceptions(a.id).await.unwrap();
    let got: Vec<(&str, &str, u64, &str, &str)> = reg
        .iter()
        .map(|e| {
            (
                e.grid.as_str(),
                e.band.as_str(),
                e.households,
                e.reason.as_str(),
                e.who.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                under.as_str(),
                "under",
                120,
                "学校与商业用地为主",
                "planner-7"
            ),
            (
                over.as_str(),
                "over",
                250,
                "新建高层，入住率低",
                "planner-7"
            ),
            (
                "E4",
                "oversize",
                90,
                wangge::store::OVERSIZE_REASON,
                "planner-7"
            ),
        ]
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(reg.iter().all(|e| (e.at - now).abs() < 600), "{reg:?}");
    assert!(matches!(
        s.plan_exceptions(99_999).await,
        Err(StoreError::NotFound { .. })
    ));
    let log = s.audit_log(100).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "publish_plan"
                && e.detail.contains("3 grids out of band registered"))
    );
}

async fn plans_publish_and_lookup(s: Arc<dyn Store>) {
    loaded(&s).await;
    let a = s.create_plan(halves("A")).await.unwrap();
    assert_eq!(a.status, PlanStatus::Draft);
    assert_eq!((a.grids, a.households), (4, 640));
    // a draft is not in force
    assert_eq!(s.grid_at(116.401, 39.901, T0 + DAY).await.unwrap(), None);
    let a = s
        .publish_plan(a.id, T0, Some(a.version), "planner-1", &Reasons::new())
        .await
        .unwrap();
    assert_eq!(a.status, PlanStatus::Published);
    assert_eq!(a.valid_from, Some(T0));
    let hit = s.grid_at(116.401, 39.901, T0 + DAY).await.unwrap().unwrap();
    assert_eq!((hit.code.as_str(), hit.plan), ("A1", a.id));
    assert_eq!(hit.community, "110101001001");
    assert_eq!(
        s.grid_at(116.401, 39.901, T0 - 1).await.unwrap(),
        None,
        "before"
    );
    assert_eq!(
        s.grid_at(116.6, 39.901, T0 + DAY).await.unwrap(),
        None,
        "outside"
    );
    // a worker
    s.set_worker(
        "A3",
        Some(Worker {
            name: "王芳".into(),
            phone: Some("010-12345678".into()),
        }),
        "admin",
    )
    .await
    .unwrap();
    let hit = s.grid_at(116.412, 39.902, T0 + DAY).await.unwrap().unwrap();
    assert_eq!(hit.code, "A3");
    assert_eq!(hit.worker.unwrap().name, "王芳");
    // the worker's photo: set, read back byte for byte, removed; none without a worker
    assert_eq!(s.worker_photo("A3").await.unwrap(), None);
    let photo = b"\x89PNG\r\n\x1a\n not really".to_vec();
    s.set_worker_photo("A3", Some(photo.clone()), "admin")
        .await
        .unwrap();
    assert_eq!(s.worker_photo("A3").await.unwrap(), Some(photo));
    assert_eq!(
        s.worker("A3").await.unwrap().unwrap().name,
        "王芳",
        "the photo leaves the worker as it was"
    );
    s.set_worker_photo("A3", None, "admin").await.unwrap();
    assert_eq!(s.worker_photo("A3").await.unwrap(), None);
    let e = s
        .set_worker_photo("A4", Some(vec![1, 2, 3]), "admin")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    assert!(
        s.audit_log(50)
            .await
            .unwrap()
            .iter()
            .any(|a| a.action == "set_worker_photo" && a.target == "grid A3"),
        "the photo change is audited"
    );
    // a second plan retires the first at its valid_from
    let b = s.create_plan(halves("B")).await.unwrap();
    // stale version
    let e = s
        .publish_plan(
            b.id,
            T0 + 10 * DAY,
            Some(b.version + 7),
            "p",
            &Reasons::new(),
        )
        .await;
    assert!(matches!(e, Err(StoreError::Stale(_))), "{e:?}");
    // not before the plan in force
    let e = s
        .publish_plan(b.id, T0 - DAY, None, "p", &Reasons::new())
        .await;
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
    let b = s
        .publish_plan(b.id, T0 + 10 * DAY, None, "p", &Reasons::new())
        .await
        .unwrap();
    assert_eq!(b.status, PlanStatus::Published);
    let a2 = s.plan(a.id).await.unwrap();
    assert_eq!(a2.status, PlanStatus::Retired);
    assert_eq!(a2.valid_to, Some(T0 + 10 * DAY));
    assert_eq!(
        s.grid_at(116.401, 39.901, T0 + DAY)
            .await
            .unwrap()
            .unwrap()
            .code,
        "A1",
        "time-versioned: the old plan at an old time"
    );
    assert_eq!(
        s.grid_at(116.401, 39.901, T0 + 10 * DAY)
            .await
            .unwrap()
            .unwrap()
            .code,
        "B1"
    );
    // publishing twice is refused
    let e = s
        .publish_plan(b.id, T0 + 20 * DAY, None, "p", &Reasons::new())
        .await;
    assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
    let plans = s.plans().await.unwrap();
    assert_eq!(plans.len(), 2);
    let asg = s.plan_assignment(b.id).await.unwrap();
    assert_eq!(asg[0], ("b1".to_string(), "B1".to_string()));
    let grids = s.plan_grids(a.id).await.unwrap();
    assert_eq!(grids.len(), 4);
    assert_eq!(grids[0].valid_to, Some(T0 + 10 * DAY));
    assert!(matches!(
        s.plan(999).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn plan_rules(s: Arc<dyn Store>) {
    loaded(&s).await;
    let mut p = halves("X");
    p.grids[1].code = "X1".into();
    assert!(matches!(
        s.create_plan(p).await,
        Err(StoreError::Conflict(_))
    ));
    let mut p = halves("X");
    p.grids[0].community = "999".into();
    assert!(matches!(
        s.create_plan(p).await,
        Err(StoreError::Invalid(_))
    ));
    let mut p = halves("X");
    p.grids[0].geometry = rect(116.43, 39.90, 116.44, 39.91);
    let e = s.create_plan(p).await;
    assert!(
        matches!(&e, Err(StoreError::Invalid(m)) if m.contains("outside")),
        "{e:?}"
    );
    let mut p = halves("X");
    p.communities.push("nowhere".into());
    assert!(matches!(
        s.create_plan(p).await,
        Err(StoreError::Invalid(_))
    ));
    // nothing half-written
    assert!(s.plans().await.unwrap().is_empty());
    let f = s
        .features(
            Layer::Grids,
            &FeatureQuery {
                plan: Some(1),
                ..FeatureQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.matched, 0);
}

async fn features_query(s: Arc<dyn Store>) {
    loaded(&s).await;
    let a = s.create_plan(halves("A")).await.unwrap();
    s.publish_plan(a.id, T0, None, "p", &Reasons::new())
        .await
        .unwrap();
    let q = |bbox: Option<[f64; 4]>| FeatureQuery {
        bbox,
        ..FeatureQuery::default()
    };
    let f = s.features(Layer::Communities, &q(None)).await.unwrap();
    assert_eq!(f.matched, 2);
    assert_eq!(f.features[0].id, "110101001001");
    assert_eq!(f.features[0].properties["households"], 300);
    let f = s
        .features(
            Layer::Communities,
            &q(Some([116.411, 39.901, 116.412, 39.902])),
        )
        .await
        .unwrap();
    assert_eq!(f.matched, 1);
    assert_eq!(f.features[0].id, "110101001002");
    // grids in force now, filtered by community, paged
    let f = s
        .features(
            Layer::Grids,
            &FeatureQuery {
                equals: vec![("community".into(), "110101001002".into())],
                ..FeatureQuery::default()
            },
        )
        .await
        .unwrap();
    let codes: Vec<&str> = f.features.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(codes, ["A3", "A4"]);
    assert_eq!(
        f.features[0].properties["valid_from"],
        "2025-01-01T00:00:00.000Z"
    );
    let f = s
        .features(
            Layer::Grids,
            &FeatureQuery {
                limit: 3,
                offset: 2,
                ..FeatureQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.matched, 4);
    assert_eq!(f.features.len(), 2);
    assert_eq!(f.features[0].id, "A3");
    // before the plan: nothing in force
    let f = s
        .features(
            Layer::Grids,
            &FeatureQuery {
                at: Some(T0 - 1),
                ..FeatureQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.matched, 0);
    let f = s
        .features(
            Layer::Buildings,
            &q(Some([116.400, 39.900, 116.405, 39.91])),
        )
        .await
        .unwrap();
    assert_eq!(
        f.features.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["b1"]
    );
    let e = s
        .features(
            Layer::Buildings,
            &FeatureQuery {
                equals: vec![("households; DROP TABLE x".into(), "1".into())],
                ..FeatureQuery::default()
            },
        )
        .await;
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
}

/// Grids in force at an instant, through every read path, with past generations and a draft in
/// the store: items with and without a bbox, at an old time and now, pages, and tile features.
async fn features_across_generations(s: Arc<dyn Store>) {
    loaded(&s).await;
    let a = s.create_plan(halves("A")).await.unwrap();
    s.publish_plan(a.id, T0, None, "p", &Reasons::new())
        .await
        .unwrap();
    let b = s.create_plan(halves("B")).await.unwrap();
    s.publish_plan(b.id, T0 + 10 * DAY, None, "p", &Reasons::new())
        .await
        .unwrap();
    s.create_plan(halves("C")).await.unwrap();
    let codes =
        |f: &FeaturePage| -> Vec<String> { f.features.iter().map(|x| x.id.clone()).collect() };
    let at = |at: Option<i64>, bbox: Option<[f64; 4]>, limit: usize, offset: usize| FeatureQuery {
        at,
        bbox,
        limit,
        offset,
        ..FeatureQuery::default()
    };
    let now = s
        .features(Layer::Grids, &at(None, None, 0, 0))
        .await
        .unwrap();
    assert_eq!(
        (codes(&now), now.matched),
        (vec!["B1".into(), "B2".into(), "B3".into(), "B4".into()], 4)
    );
    let then = s
        .features(Layer::Grids, &at(Some(T0 + DAY), None, 0, 0))
        .await
        .unwrap();
    assert_eq!(codes(&then), ["A1", "A2", "A3", "A4"]);
    let page = s
        .features(Layer::Grids, &at(Some(T0 + DAY), None, 2, 1))
        .await
        .unwrap();
    assert_eq!(
        (codes(&page), page.matched),
        (vec!["A2".into(), "A3".into()], 4)
    );
    // the instant a plan takes over belongs to the new plan
    let edge = s
        .features(Layer::Grids, &at(Some(T0 + 10 * DAY), None, 1, 0))
        .await
        .unwrap();
    assert_eq!(codes(&edge), ["B1"]);
    let bbox = Some([116.411, 39.901, 116.412, 39.902]);
    let old = s
        .features(Layer::Grids, &at(Some(T0 + DAY), bbox, 0, 0))
        .await
        .unwrap();
    assert!(
        !old.features.is_empty() && codes(&old).iter().all(|c| c.starts_with('A')),
        "{:?}",
        codes(&old)
    );
    let cur = s
        .features(Layer::Grids, &at(None, bbox, 0, 0))
        .await
        .unwrap();
    assert_eq!(
        codes(&cur)
            .iter()
            .map(|c| c.replace('B', "A"))
            .collect::<Vec<_>>(),
        codes(&old)
    );
    assert_eq!(
        s.features(Layer::Grids, &at(Some(T0 - 1), bbox, 0, 0))
            .await
            .unwrap()
            .matched,
        0,
        "before the first plan"
    );
    // tiles: the grids in force only (neither the retired plan nor the draft), or one plan's
    if let Some(t) = s
        .tile_features(
            Layer::Grids,
            [116.39, 39.89, 116.43, 39.92],
            None,
            &["code"],
        )
        .await
        .unwrap()
    {
        let mut got: Vec<&str> = t
            .iter()
            .filter_map(|f| f.properties["code"].as_str())
            .collect();
        got.sort_unstable();
        assert_eq!(got, ["B1", "B2", "B3", "B4"]);
        let t = s
            .tile_features(
                Layer::Grids,
                [116.39, 39.89, 116.43, 39.92],
                Some(a.id),
                &["code"],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.len(), 4);
        assert!(
            t.iter()
                .all(|f| f.properties["code"].as_str().unwrap().starts_with('A'))
        );
    }
}

fn case(id: &str, at: i64, lon: f64, lat: f64) -> Case {
    let cat = Catalogue::default_catalogue();
    let c = &cat.categories[0];
    let mut k = Case::report(
        id.into(),
        c,
        "井盖缺失".into(),
        lon,
        lat,
        Source::Patrol,
        Some("张三 13800000000".into()),
        at,
    );
    k.grid = Some("A1".into());
    k.community = Some("110101001001".into());
    k
}

async fn incidents_history(s: Arc<dyn Store>) {
    let cat = Catalogue::default_catalogue();
    let cal = Calendar::default_calendar();
    let c0 = cat.categories[0].clone();
    let k = case("E1", T0, 116.401, 39.901);
    s.insert_incident(&k, "hotline").await.unwrap();
    let e = s.insert_incident(&k, "hotline").await;
    assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
    let mut k2 = s.incident("E1").await.unwrap();
    assert_eq!(k2, k, "round trip");
    k2.apply(Action::Accept, "dispatcher", T0 + 60, &c0, &cal)
        .unwrap();
    k2.apply(Action::Open, "dispatcher", T0 + 120, &c0, &cal)
        .unwrap();
    s.update_incident(&k2, 0, "dispatcher").await.unwrap();
    let back = s.incident("E1").await.unwrap();
    assert_eq!(back, k2);
    assert_eq!(back.state, State::Opened);
    assert_eq!(back.history.len(), 2);
    // a stale writer (saw 0 history entries) is refused
    let mut stale = k.clone();
    stale
        .apply(Action::Accept, "other", T0 + 90, &c0, &cal)
        .unwrap();
    let e = s.update_incident(&stale, 0, "other").await;
    assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
    // history cannot be rewritten
    let mut forged = back.clone();
    forged.history[0].who = "someone else".into();
    let e = s.update_incident(&forged, 2, "x").await;
    assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
    assert_eq!(s.incident("E1").await.unwrap(), k2, "nothing changed");
    // list filters
    let mut k3 = case("E2", T0 + DAY, 116.412, 39.902);
    k3.grid = Some("A3".into());
    k3.due_at = Some(T0 + 2 * DAY);
    k3.state = State::Dispatched;
    s.insert_incident(&k3, "patrol").await.unwrap();
    let all = s.incidents(&IncidentFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["E1", "E2"]
    );
    let g = s
        .incidents(&IncidentFilter {
            grid: Some("A3".into()),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(g.len(), 1);
    let od = s
        .incidents(&IncidentFilter {
            overdue_at: Some(T0 + 3 * DAY),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    let e1_overdue = k2.due_at.is_some_and(|d| d < T0 + 3 * DAY);
    let want: Vec<&str> = if e1_overdue {
        vec!["E1", "E2"]
    } else {
        vec!["E2"]
    };
    assert_eq!(od.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), want);
    let od = s
        .incidents(&IncidentFilter {
            overdue_at: Some(T0 + DAY),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert!(od.iter().all(|c| c.id != "E2"), "E2 is due at T0 + 2 days");
    let st = s
        .incidents(&IncidentFilter {
            state: Some(State::Opened),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(st.len(), 1);
    let tr = s
        .incidents(&IncidentFilter {
            from: Some(T0 + 1),
            to: Some(T0 + 2 * DAY),
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(tr.len(), 1);
    assert!(matches!(
        s.incident("nope").await,
        Err(StoreError::NotFound { .. })
    ));
    // incidents as features, with time filter
    let f = s
        .features(
            Layer::Incidents,
            &FeatureQuery {
                from: Some(T0 + 1),
                ..FeatureQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.matched, 1);
    assert_eq!(f.features[0].properties["state"], "dispatched");
    // counts, scopes and lean reads in the store (pages and aggregates never read every case)
    let all = s.incidents(&IncidentFilter::default()).await.unwrap();
    assert_eq!(
        s.count_incidents(&IncidentFilter::default()).await.unwrap(),
        all.len() as u64
    );
    let scoped = IncidentFilter {
        scope: Some("A1".into()),
        ..IncidentFilter::default()
    };
    let in_scope = s.incidents(&scoped).await.unwrap();
    assert!(!in_scope.is_empty());
    assert!(in_scope.iter().all(|c| c.grid.as_deref() == Some("A1")));
    assert_eq!(
        s.count_incidents(&scoped).await.unwrap(),
        in_scope.len() as u64
    );
    let nowhere = IncidentFilter {
        scope: Some("nowhere".into()),
        ..IncidentFilter::default()
    };
    assert_eq!(s.count_incidents(&nowhere).await.unwrap(), 0);
    let lean = s
        .incidents(&IncidentFilter {
            lean: true,
            ..IncidentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(lean.len(), all.len());
    for (l, full) in lean.iter().zip(&all) {
        assert!(l.description.is_empty() && l.reporter.is_none() && l.history.is_empty());
        assert_eq!(
            (&l.id, l.state, l.due_at, l.lon),
            (&full.id, full.state, full.due_at, full.lon)
        );
    }
    // the audit log holds every write
    s.audit("viewer-7", "read_reporter", "incident E1", "")
        .await
        .unwrap();
    let log = s.audit_log(100).await.unwrap();
    assert_eq!(log[0].action, "read_reporter");
    assert!(log.iter().filter(|e| e.action == "insert_incident").count() == 2);
    assert!(
        log.iter()
            .any(|e| e.action == "update_incident" && e.who == "dispatcher")
    );
}

async fn concurrent_inserts(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..40 {
                let id = format!("W{w}-{i}");
                s.insert_incident(&case(&id, T0 + i, 116.401, 39.901), "load")
                    .await
                    .unwrap();
                ok += 1;
                // a duplicate in the same stream fails alone
                if i % 10 == 0 {
                    let e = s
                        .insert_incident(&case(&id, T0 + i, 116.401, 39.901), "load")
                        .await;
                    assert!(matches!(e, Err(StoreError::Conflict(_))), "{e:?}");
                }
            }
            ok
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    assert_eq!(n, 320);
    let all = s.incidents(&IncidentFilter::default()).await.unwrap();
    assert_eq!(all.len(), 320);
}

/// The edit role: a fabric kept once, the state alone, an edit applied with its version and log
/// entry, stale versions and published plans refused, undo and redo by status.
async fn plan_edits(s: Arc<dyn Store>) {
    use wangge::store::{EditLog, FabricRow, PlanEdit};
    loaded(&s).await;
    let a = s.create_plan(halves("A")).await.unwrap();
    let c = a.communities[0].clone();
    assert_eq!(s.plan_fabric(a.id, &c).await.unwrap(), None);
    let row = FabricRow {
        fabric: vec![1, 2, 3],
        state: "s0".into(),
    };
    s.save_plan_fabric(a.id, &c, row.clone()).await.unwrap();
    // an existing fabric is kept
    let other = FabricRow {
        fabric: vec![9],
        state: "x".into(),
    };
    s.save_plan_fabric(a.id, &c, other).await.unwrap();
    assert_eq!(s.plan_fabric(a.id, &c).await.unwrap(), Some(row.clone()));
    assert_eq!(s.plan_state(a.id, &c).await.unwrap().as_deref(), Some("s0"));
    // a fabric copied inside the store to another plan, with that plan's state; an existing one
    // kept; none copied from a plan without it; an unknown target plan refused
    let b = s.create_plan(halves("B")).await.unwrap();
    assert!(s.copy_plan_fabric(a.id, b.id, &c, "t0").await.unwrap());
    let copied = FabricRow {
        fabric: row.fabric.clone(),
        state: "t0".into(),
    };
    assert_eq!(s.plan_fabric(b.id, &c).await.unwrap(), Some(copied.clone()));
    assert!(s.copy_plan_fabric(a.id, b.id, &c, "t9").await.unwrap());
    assert_eq!(s.plan_fabric(b.id, &c).await.unwrap(), Some(copied));
    assert!(
        !s.copy_plan_fabric(b.id, a.id, "no-such", "u")
            .await
            .unwrap()
    );
    assert_eq!(s.plan_fabric(a.id, "no-such").await.unwrap(), None);
    let e = s
        .copy_plan_fabric(a.id, 999_999, &c, "u")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    let mut grids = s.plan_grids(a.id).await.unwrap();
    let mut g = grids.remove(0);
    g.households += 1;
    let edit = |v: i64, log: EditLog, state: &str| PlanEdit {
        expected_version: v,
        who: "planner-1".into(),
        community: c.clone(),
        state: state.into(),
        delete_grids: vec![],
        put_grids: vec![g.clone()],
        assignment: vec![],
        log,
    };
    let append = EditLog::Append {
        op: serde_json::json!({"op": "lock"}),
        reason: Some("why".into()),
        summary: "locked".into(),
        before: "s0".into(),
        after: "s1".into(),
    };
    let (p, seq) = s
        .apply_plan_edit(a.id, edit(a.version, append.clone(), "s1"))
        .await
        .unwrap();
    assert_eq!((p.version, seq), (a.version + 1, 1));
    assert_eq!(s.plan_state(a.id, &c).await.unwrap().as_deref(), Some("s1"));
    // (the copy shares the fabric, not the state)
    assert_eq!(s.plan_state(b.id, &c).await.unwrap().as_deref(), Some("t0"));
    let back = s.plan_grids(a.id).await.unwrap();
    assert_eq!(
        back.iter().find(|x| x.code == g.code).unwrap().households,
        g.households
    );
    // stale version: nothing written
    let e = s
        .apply_plan_edit(a.id, edit(a.version, append.clone(), "s9"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Stale(_)), "{e:?}");
    assert_eq!(s.plan_state(a.id, &c).await.unwrap().as_deref(), Some("s1"));
    // the community's grids alone, the same rows as the plan's
    let mine = s.plan_community_grids(a.id, &c).await.unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|x| x.community == c));
    let all = s.plan_grids(a.id).await.unwrap();
    assert_eq!(
        mine,
        all.iter()
            .filter(|x| x.community == c)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(
        s.plan_community_grids(a.id, "no-such")
            .await
            .unwrap()
            .is_empty()
    );
    // the named buildings' grids, by building id; a building not in the plan is left out
    let asg = s.plan_assignment(a.id).await.unwrap();
    let named: Vec<String> = asg.iter().rev().take(2).map(|x| x.0.clone()).collect();
    let mut want: Vec<(String, String)> = asg.iter().rev().take(2).cloned().collect();
    want.sort();
    assert_eq!(want.len(), 2, "{asg:?}");
    let mut ask = named.clone();
    ask.push("no-such-building".into());
    assert_eq!(s.plan_assignment_of(a.id, &ask).await.unwrap(), want);
    // what an undo reverts and a redo applies, read alone
    assert_eq!(
        s.plan_edit_next(a.id, false).await.unwrap().map(|e| e.seq),
        Some(1)
    );
    assert!(s.plan_edit_next(a.id, true).await.unwrap().is_none());
    // undo, a second undo refused, redo
    let (p, seq) = s
        .apply_plan_edit(a.id, edit(p.version, EditLog::Undo { seq: 1 }, "s0"))
        .await
        .unwrap();
    assert_eq!(seq, 1);
    let e = s
        .apply_plan_edit(a.id, edit(p.version, EditLog::Undo { seq: 1 }, "s0"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert!(s.plan_edit_next(a.id, false).await.unwrap().is_none());
    let next = s.plan_edit_next(a.id, true).await.unwrap().unwrap();
    assert_eq!(
        (next.seq, next.status.as_str(), next.before.as_str()),
        (1, "undone", "s0")
    );
    let (p, _) = s
        .apply_plan_edit(a.id, edit(p.version, EditLog::Redo { seq: 1 }, "s1"))
        .await
        .unwrap();
    let log = s.plan_edits(a.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status.as_str(), log[0].reason.as_deref()),
        ("applied", Some("why"))
    );
    assert_eq!(
        (log[0].before.as_str(), log[0].after.as_str()),
        ("s0", "s1")
    );
    // a published plan is not edited
    let p = s
        .publish_plan(a.id, T0, Some(p.version), "planner-1", &Reasons::new())
        .await
        .unwrap();
    let e = s
        .apply_plan_edit(a.id, edit(p.version, append, "s2"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
}

/// Regrid jobs: ids from the store, progress, outcome, heartbeat; unknown ids are None.
async fn jobs(s: Arc<dyn Store>) {
    let a = s.create_job(10, "planner").await.unwrap();
    let b = s.create_job(4, "planner").await.unwrap();
    assert_eq!(b.id, a.id + 1);
    assert_eq!(
        (a.state.as_str(), a.done, a.total, a.plan),
        ("running", 0, 10, None)
    );
    assert!(a.started > 1_700_000_000 && a.updated >= a.started);
    s.update_job(a.id, 6, "running", None, None).await.unwrap();
    assert_eq!(s.job(a.id).await.unwrap().unwrap().done, 6);
    s.update_job(a.id, 10, "done", Some(7), None).await.unwrap();
    s.update_job(b.id, 1, "failed", None, Some("no buildings"))
        .await
        .unwrap();
    let a = s.job(a.id).await.unwrap().unwrap();
    assert_eq!(
        (a.state.as_str(), a.done, a.plan, a.who.as_str()),
        ("done", 10, Some(7), "planner")
    );
    let b = s.job(b.id).await.unwrap().unwrap();
    assert_eq!(
        (b.state.as_str(), b.error.as_deref()),
        ("failed", Some("no buildings"))
    );
    assert_eq!(s.job(b.id + 100).await.unwrap(), None);
}

/// Every audit line names the client whose request made it (the service sets the address per
/// request); lines written outside a request have none.
async fn audit_names_the_client(s: Arc<dyn Store>) {
    use wangge::store::context::with_client;
    with_client(
        Some("198.51.100.7".into()),
        s.audit("token:1:desk", "read_personal", "incident X", "1 incidents"),
    )
    .await
    .unwrap();
    s.audit("cli", "import", "buildings", "").await.unwrap();
    // the PostGIS store inserts incidents on batcher tasks: the address travels with the job
    let c = case("AUD-1", 1_767_225_600, 116.40, 39.90);
    with_client(Some("203.0.113.5".into()), s.insert_incident(&c, "public"))
        .await
        .unwrap();
    let log = s.audit_log(10).await.unwrap();
    let line = |action: &str| log.iter().find(|e| e.action == action).unwrap();
    assert_eq!(
        line("read_personal").client.as_deref(),
        Some("198.51.100.7")
    );
    assert_eq!(line("import").client, None);
    assert_eq!(
        line("insert_incident").client.as_deref(),
        Some("203.0.113.5")
    );
}

macro_rules! contract {
    ($store:ident, $open:expr) => {
        mod $store {
            use super::*;
            async fn open() -> Arc<dyn Store> {
                $open.await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn import_upserts() {
                super::import_upserts(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plans_publish_and_lookup() {
                super::plans_publish_and_lookup(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exception_register() {
                super::exception_register(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plan_rules() {
                super::plan_rules(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn features_query() {
                super::features_query(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn features_across_generations() {
                super::features_across_generations(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn incidents_history() {
                super::incidents_history(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn plan_edits() {
                super::plan_edits(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn audit_names_the_client() {
                super::audit_names_the_client(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn jobs() {
                super::jobs(open().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_inserts() {
                super::concurrent_inserts(open().await).await;
            }
        }
    };
}

async fn gpkg_store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    wangge::store::open(Some(dir.join("w.gpkg").to_str().unwrap()))
        .await
        .unwrap()
}

async fn pg_store() -> Arc<dyn Store> {
    wangge::store::open(Some(&common::fresh_pg()))
        .await
        .unwrap()
}

contract!(gpkg, gpkg_store());
contract!(postgis, pg_store());

// ---- store-specific errors -----------------------------------------------------------------

#[tokio::test]
async fn gpkg_refuses_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.gpkg");
    std::fs::write(&p, b"this is not a database at all, just text").unwrap();
    let e = wangge::store::open(Some(p.to_str().unwrap()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, StoreError::NotGeoPackage(m) if m.contains("x.gpkg")),
        "{e:?}"
    );
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"this is not a database at all, just text",
        "left untouched"
    );
    // an SQLite file that is not a GeoPackage
    let q = dir.path().join("plain.sqlite");
    let c = rusqlite::Connection::open(&q).unwrap();
    c.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(c);
    let before = std::fs::read(&q).unwrap();
    let e = wangge::store::open(Some(q.to_str().unwrap()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, StoreError::NotGeoPackage(m) if m.contains("application_id")),
        "{e:?}"
    );
    assert_eq!(
        std::fs::read(&q).unwrap(),
        before,
        "another program's SQLite file is left as it was"
    );
    // an empty file (`touch w.gpkg`) holds nothing: it becomes a new store
    let z = dir.path().join("z.gpkg");
    std::fs::write(&z, b"").unwrap();
    let s = wangge::store::open(Some(z.to_str().unwrap()))
        .await
        .unwrap();
    assert!(s.plans().await.unwrap().is_empty());
}

#[tokio::test]
async fn gpkg_refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.gpkg");
    drop(
        wangge::store::open(Some(p.to_str().unwrap()))
            .await
            .unwrap(),
    );
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute("UPDATE wangge_schema SET version = 99", [])
        .unwrap();
    drop(c);
    let e = wangge::store::open(Some(p.to_str().unwrap()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, StoreError::Schema(m) if m.contains("99")),
        "{e:?}"
    );
}

/// A store of schema version 2 (before workers' photos and jobs in the store) is brought up to
/// date on open.
#[tokio::test]
async fn gpkg_migrates_to_worker_photos_and_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.gpkg");
    let path = p.to_str().unwrap();
    drop(wangge::store::open(Some(path)).await.unwrap());
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "ALTER TABLE grid_workers DROP COLUMN photo; DROP TABLE wangge_jobs;
         DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;
         ALTER TABLE audit_log DROP COLUMN client;
         DROP INDEX grids_until; DROP INDEX grids_times;
         DROP TABLE plan_states; DROP TABLE plan_fabrics; DROP TABLE fabric_blobs;
         CREATE TABLE plan_fabrics (plan_id INTEGER NOT NULL REFERENCES plans(id), community TEXT NOT NULL,
           fabric BLOB NOT NULL, state TEXT NOT NULL, PRIMARY KEY (plan_id, community)) WITHOUT ROWID;
         DROP TABLE plan_exceptions;
         DELETE FROM wangge_schema WHERE version >= 3;",
    )
    .unwrap();
    drop(c);
    let s = wangge::store::open(Some(path)).await.unwrap();
    assert_eq!(s.worker_photo("X").await.unwrap(), None);
    let j = s.create_job(3, "t").await.unwrap();
    s.update_job(j.id, 3, "done", Some(1), None).await.unwrap();
    let back = s.job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (back.state.as_str(), back.done, back.plan),
        ("done", 3, Some(1))
    );
    drop(s);
    let c = rusqlite::Connection::open(&p).unwrap();
    let v: i64 = c
        .query_row("SELECT max(version) FROM wangge_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, wangge::store::SCHEMA_VERSION);
    for index in ["grids_until", "grids_times"] {
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
                [index],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{index} made by the migration");
    }
    append_only_gpkg(&c);
}

/// Schema 7 moves each community's state out of its fabric row (an edit rewrote the fabric blob):
/// the states of a version-6 store are kept, and the fabric rows lose the column.
#[tokio::test]
async fn gpkg_migrates_plan_states_out_of_fabrics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.gpkg");
    let path = p.to_str().unwrap();
    drop(wangge::store::open(Some(path)).await.unwrap());
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch(
        "DROP TABLE plan_states; DROP TABLE plan_fabrics; DROP TABLE fabric_blobs; DROP TABLE plan_exceptions;
         CREATE TABLE plan_fabrics (plan_id INTEGER NOT NULL REFERENCES plans(id), community TEXT NOT NULL,
           fabric BLOB NOT NULL, state TEXT NOT NULL, PRIMARY KEY (plan_id, community)) WITHOUT ROWID;
         INSERT INTO plans (id, status, communities, created_by, created_at, params, metrics)
           VALUES (1, 'draft', '[\"101\",\"102\"]', 't', '2026-01-01T00:00:00.000Z', '{}', '{}');
         INSERT INTO plan_fabrics VALUES (1, '101', x'0102', 'state of 101'), (1, '102', x'03', 'state of 102');
         DELETE FROM wangge_schema WHERE version >= 7;",
    )
    .unwrap();
    drop(c);
    let s = wangge::store::open(Some(path)).await.unwrap();
    assert_eq!(
        s.plan_state(1, "101").await.unwrap().as_deref(),
        Some("state of 101")
    );
    assert_eq!(
        s.plan_state(1, "102").await.unwrap().as_deref(),
        Some("state of 102")
    );
    drop(s);
    let c = rusqlite::Connection::open(&p).unwrap();
    let cols: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('plan_fabrics') ORDER BY cid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // (schema 10: the blobs in a table of their own, referenced)
    assert_eq!(cols, ["plan_id", "community", "blob"]);
    let (v, blob): (i64, Vec<u8>) = c
        .query_row(
            "SELECT (SELECT max(version) FROM wangge_schema), b.fabric
             FROM plan_fabrics f JOIN fabric_blobs b ON b.id = f.blob WHERE f.community = '101'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((v, blob), (wangge::store::SCHEMA_VERSION, vec![1, 2]));
    drop(c);
    let s = wangge::store::open(Some(path)).await.unwrap();
    let row = s.plan_fabric(1, "102").await.unwrap().unwrap();
    assert_eq!((row.fabric, row.state.as_str()), (vec![3], "state of 102"));
}

/// The audit log of a GeoPackage refuses updates and deletes, whoever opens the file.
fn append_only_gpkg(c: &rusqlite::Connection) {
    c.execute(
        "INSERT INTO audit_log (at, who, action, target, detail) VALUES ('2026-01-01T00:00:00.000Z', 'a', 'b', 'c', 'd')",
        [],
    )
    .unwrap();
    for sql in [
        "UPDATE audit_log SET who = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let e = c.execute(sql, []).unwrap_err().to_string();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    let n: i64 = c
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 1);
}

/// Schema 10 moves fabric blobs into a table of their own: a version-9 PostGIS store keeps every
/// fabric and state, and fabrics saved afterwards get fresh blob ids.
#[tokio::test]
async fn postgis_migrates_fabrics_to_blobs() {
    use wangge::store::FabricRow;
    let url = common::fresh_pg();
    let s = wangge::store::open(Some(&url)).await.unwrap();
    loaded(&s).await;
    let a = s.create_plan(halves("A")).await.unwrap();
    let rows = [(vec![1u8, 2], "state one"), (vec![3u8], "state two")];
    for (c, (f, st)) in a.communities.iter().zip(&rows) {
        let row = FabricRow {
            fabric: f.clone(),
            state: (*st).into(),
        };
        s.save_plan_fabric(a.id, c, row).await.unwrap();
    }
    drop(s);
    // back to the layout of version 9: the bytes in the fabric row
    let o = std::process::Command::new("psql")
        .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(
            "ALTER TABLE plan_fabrics ADD COLUMN fabric bytea;
             UPDATE plan_fabrics f SET fabric = b.fabric FROM fabric_blobs b WHERE b.id = f.blob;
             ALTER TABLE plan_fabrics DROP COLUMN blob; DROP TABLE fabric_blobs;
             ALTER TABLE plan_fabrics ALTER COLUMN fabric SET NOT NULL;
             DELETE FROM wangge_schema WHERE version >= 10;",
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = wangge::store::open(Some(&url)).await.unwrap();
    for (c, (f, st)) in a.communities.iter().zip(&rows) {
        let row = s.plan_fabric(a.id, c).await.unwrap().unwrap();
        assert_eq!((&row.fabric, row.state.as_str()), (f, *st), "{c}");
    }
    let b = s.create_plan(halves("B")).await.unwrap();
    let row = FabricRow {
        fabric: vec![7, 7, 7],
        state: "new".into(),
    };
    s.save_plan_fabric(b.id, &b.communities[0], row.clone())
        .await
        .unwrap();
    assert_eq!(
        s.plan_fabric(b.id, &b.communities[0]).await.unwrap(),
        Some(row)
    );
}

/// The audit log in PostGIS refuses updates, deletes and truncation, for its owner too.
#[tokio::test]
async fn postgis_audit_log_is_append_only() {
    let url = common::fresh_pg();
    let s = wangge::store::open(Some(&url)).await.unwrap();
    s.audit("t", "read_personal", "incident X", "")
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_log SET who = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let o = std::process::Command::new("psql")
            .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{sql} was allowed");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(s.audit_log(10).await.unwrap()[0].who, "t");
}

#[tokio::test]
async fn postgis_errors() {
    // unreachable
    let e = wangge::store::open(Some("postgres://nobody@127.0.0.1:1/none"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, StoreError::Unavailable(m) if m.contains("cannot reach")),
        "{e:?}"
    );
    // newer schema
    let url = common::fresh_pg();
    drop(wangge::store::open(Some(&url)).await.unwrap());
    let o = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-q",
            "-c",
            "INSERT INTO wangge_schema (version) VALUES (42)",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let e = wangge::store::open(Some(&url)).await.err().unwrap();
    assert!(
        matches!(&e, StoreError::Schema(m) if m.contains("42")),
        "{e:?}"
    );
    // a database without PostGIS, reached by a role that cannot install it
    let url = common::fresh_pg();
    let db = url.rsplit('/').next().unwrap().to_string();
    let role = format!("{db}_ro");
    let o = std::process::Command::new("psql")
        .args([url.as_str(), "-q", "-c"])
        .arg(format!("CREATE ROLE {role} LOGIN NOSUPERUSER"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ro = url.replacen("postgres@", &format!("{role}@"), 1);
    let e = wangge::store::open(Some(&ro)).await.err().unwrap();
    assert!(
        matches!(&e, StoreError::Unavailable(m) if m.contains("lacks PostGIS")),
        "{e:?}"
    );
}

/// The GeoPackage store's change watcher sees what other connections commit (another process,
/// the command line), never its own writes: a server writing reports must keep its caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpkg_watcher_sees_others_not_itself() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.gpkg");
    let path = path.to_str().unwrap();
    let s = wangge::store::open(Some(path)).await.unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    s.watch_changes(Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = seen.load(Ordering::SeqCst);
    for i in 0..20 {
        s.insert_incident(&case(&format!("W{i}"), 1_767_225_600 + i, 116.4, 39.9), "t")
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(seen.load(Ordering::SeqCst), before, "its own writes");
    let other = wangge::store::open(Some(path)).await.unwrap();
    other.audit("cli", "publish", "plan 2", "").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        seen.load(Ordering::SeqCst) > before,
        "another connection's commit"
    );
}
