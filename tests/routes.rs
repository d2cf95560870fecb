//! Every route in process (`tower::ServiceExt::oneshot`, no port): each documented route is
//! routed, answers the public or refuses it as its documentation says, and answers a token of
//! a role it names; a few rules per family (redaction, ETags, errors as JSON). The real binary on
//! a real port is exercised by tests/service.rs.

mod common;

use axum::http::StatusCode;
use common::app::{Fixture, call, call_with, fixture, raw, send};
use common::token;
use serde_json::Value;
use wangge::service::{Config, all_routes};

/// A concrete address for a documented path.
fn concrete(path: &str, grid: &str) -> String {
    path.replace("{collectionId}", "grids")
        .replace("{featureId}", grid)
        .replace("{serviceCode}", "01-01.json")
        .replace("{requestId}", "19990101-1.json")
        .replace("{id}", "1")
        .replace("{a}", "1")
        .replace("{b}", "1")
        .replace("{layer}/{z}/{x}/{y}", "grids/14/13256/6722.mvt")
        .replace("{name}", "grids.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_documented() {
    let fx = fixture().await;
    let routes = all_routes();
    assert!(routes.len() >= 28);
    for r in &routes {
        let uri = concrete(r.path, &fx.grid);
        let method = r.method.to_uppercase();
        let (anon, body) = call(&fx.app, &method, &uri, None).await;
        let what = format!("{method} {uri} ({})", r.access);
        // routed: never the fallback
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("no such route"), "{what} is not routed");
        if r.is_public() {
            assert!(
                anon != StatusCode::UNAUTHORIZED && anon != StatusCode::FORBIDDEN,
                "{what}: public, but {anon} for the public"
            );
        } else {
            assert_eq!(
                anon,
                StatusCode::UNAUTHORIZED,
                "{what}: restricted, answered {anon}"
            );
            let tok = if r.access == "admin" {
                &fx.admin
            } else if r.access.contains("planner") && !r.access.contains("viewer") {
                &fx.planner
            } else if r.access.contains("viewer") {
                &fx.viewer
            } else {
                &fx.dispatcher
            };
            let (st, body) = call(&fx.app, &method, &uri, Some(tok)).await;
            assert!(
                st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                "{what}: refused a role it names: {st} {}",
                String::from_utf8_lossy(&body)
            );
        }
        // every error is JSON with a code and a message
        let (st, body) = call(&fx.app, &method, &uri, Some(&fx.admin)).await;
        if st.is_client_error() || st.is_server_error() {
            if uri.ends_with(".xml") {
                let x = String::from_utf8_lossy(&body);
                assert!(x.contains("<errors><error><code>"), "{what}: {x}");
                continue;
            }
            let v: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{what}: {st} is not JSON"));
            if uri.starts_with("/open311/") {
                // GeoReport v2's own error list
                assert!(
                    v[0]["code"].as_u64() == Some(u64::from(st.as_u16()))
                        && v[0]["description"].is_string(),
                    "{what}: {v}"
                );
                continue;
            }
            assert!(
                v["error"].is_string() && v["message"].is_string(),
                "{what}: {v}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_per_family() {
    let fx = fixture().await;
    // features: the public sees no household count; a viewer does
    let items = "/collections/grids/items?limit=5";
    let (_, body) = call(&fx.app, "GET", items, None).await;
    assert!(!String::from_utf8_lossy(&body).contains("households"));
    let (_, body) = call(&fx.app, "GET", items, Some(&fx.viewer)).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["features"][0]["properties"]["households"].is_number());
    // incidents: the public and a viewer are refused; a dispatcher reads them
    assert_eq!(
        call(&fx.app, "GET", "/incidents", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&fx.app, "GET", "/incidents", Some(&fx.viewer)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&fx.app, "GET", "/incidents", Some(&fx.dispatcher))
            .await
            .0,
        StatusCode::OK
    );
    // plans: publishing needs If-Match (428), a current one (412 when stale)
    let publish = |h: &'static [(&'static str, &'static str)]| {
        call_with(
            &fx.app,
            "POST",
            "/plans/1/publish",
            Some(&fx.planner),
            h,
            r#"{"valid_from": "2026-01-01"}"#,
        )
    };
    assert_eq!(publish(&[]).await.0, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(
        publish(&[("If-Match", "\"plan-1-v999\"")]).await.0,
        StatusCode::PRECONDITION_FAILED
    );
    // a list none of which is current; a weak tag never matches (RFC 9110 strong comparison)
    assert_eq!(
        publish(&[("If-Match", "\"plan-1-v998\", W/\"plan-1-v1\"")])
            .await
            .0,
        StatusCode::PRECONDITION_FAILED
    );
    // tiles: bad addresses are 400, unknown layers 404, a grid tile has an ETag-bearing body
    assert_eq!(
        call(&fx.app, "GET", "/tiles/grids/3/9/0.mvt", None).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&fx.app, "GET", "/tiles/rivers/14/1/1.mvt", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // unknown routes: JSON 404
    let (st, body) = call(&fx.app, "GET", "/nowhere", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(serde_json::from_slice::<Value>(&body).is_ok());
    // the OpenAPI document lists exactly the routed paths
    let (_, body) = call(&fx.app, "GET", "/openapi.json", None).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let n: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(n, all_routes().len());
}

/// Plan edits over HTTP: a draft copy, If-Match (428 without, 412 stale), dry runs without it,
/// 404/422 named, undo, the log and the check; roles and scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_edits_over_http() {
    let fx = fixture().await;
    let app = &fx.app;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    // the published plan is refused, a copy is a draft
    let lock = format!(r#"{{"op":"lock","grids":["{}"]}}"#, fx.grid);
    let (st, _) = call_with(
        app,
        "POST",
        "/plans/1/edits",
        Some(&fx.planner),
        &[("If-Match", "*")],
        &lock,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, body) = call(app, "POST", "/plans/1/copy", Some(&fx.planner)).await;
    assert_eq!(st, StatusCode::CREATED);
    let id = j(&body)["plan"]["id"].as_i64().unwrap();
    let uri = format!("/plans/{id}/edits");
    let (st, _) = call_with(app, "POST", &uri, Some(&fx.planner), &[], &lock).await;
    assert_eq!(st, StatusCode::PRECONDITION_REQUIRED);
    let stale = format!("\"plan-{id}-v99\"");
    let (st, _) = call_with(
        app,
        "POST",
        &uri,
        Some(&fx.planner),
        &[("If-Match", &stale)],
        &lock,
    )
    .await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED);
    let (st, body) = call_with(
        app,
        "POST",
        &format!("{uri}?dry_run=true"),
        Some(&fx.planner),
        &[],
        &lock,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(j(&body)["dry_run"], true);
    // If-Match with a list that holds the current version (RFC 9110: any one matching will do)
    let v1 = format!("\"plan-{id}-v7\", \"plan-{id}-v1\"");
    let (st, body) = call_with(
        app,
        "POST",
        &uri,
        Some(&fx.planner),
        &[("If-Match", &v1)],
        &lock,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let etag = j(&body)["etag"].as_str().unwrap().to_string();
    assert_eq!(etag, format!("\"plan-{id}-v2\""));
    refusals_roles_undo(&fx, id, &uri, (&lock, &etag)).await;
}

/// Refused edits (422, 404), roles and scope (403, 401), undo, the log and the check.
async fn refusals_roles_undo(fx: &Fixture, id: i64, uri: &str, (lock, etag): (&str, &str)) {
    let app = &fx.app;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    // a locked grid cannot be merged (422, named); an unknown grid is 404; a bad op is 422
    let merge = format!(
        r#"{{"op":"merge","grids":["{}","{}"],"reason":"test"}}"#,
        fx.grid,
        fx.grid.replace("001001001", "001001002")
    );
    let (st, body) = call_with(
        app,
        "POST",
        uri,
        Some(&fx.planner),
        &[("If-Match", etag)],
        &merge,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(j(&body)["message"].as_str().unwrap().contains("locked"));
    let (st, _) = call_with(
        app,
        "POST",
        uri,
        Some(&fx.planner),
        &[("If-Match", etag)],
        r#"{"op":"split","grid":"nope-001"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call_with(
        app,
        "POST",
        uri,
        Some(&fx.planner),
        &[("If-Match", etag)],
        r#"{"op":"teleport"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // roles and scope
    let (st, _) = call_with(
        app,
        "POST",
        uri,
        Some(&fx.viewer),
        &[("If-Match", etag)],
        lock,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call_with(app, "POST", uri, None, &[("If-Match", etag)], lock).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let db = fx.dir.path().join("w.gpkg");
    let elsewhere = token(db.to_str().unwrap(), "planner", Some("999999999"));
    let (st, body) = call_with(
        app,
        "POST",
        uri,
        Some(&elsewhere),
        &[("If-Match", etag)],
        lock,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let street = &fx.grid[..9];
    let here = token(db.to_str().unwrap(), "planner", Some(street));
    let (st, body) = call_with(
        app,
        "POST",
        &format!("{uri}?dry_run=true"),
        Some(&here),
        &[],
        lock,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    undo_log_check(fx, id, etag).await;
}

/// Undo (If-Match), the edit log, the check, a bad import body.
async fn undo_log_check(fx: &Fixture, id: i64, etag: &str) {
    let app = &fx.app;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    // undo, the log, the check
    let (st, body) = call_with(
        app,
        "POST",
        &format!("/plans/{id}/undo"),
        Some(&fx.planner),
        &[("If-Match", etag)],
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (st, body) = call(app, "GET", &format!("/plans/{id}/edits"), Some(&fx.viewer)).await;
    assert_eq!(st, StatusCode::OK);
    let log = j(&body)["edits"].as_array().unwrap().clone();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "undone");
    let (st, body) = call(app, "GET", &format!("/plans/{id}/check"), Some(&fx.viewer)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(j(&body)["ok"], true, "{}", String::from_utf8_lossy(&body));
    let (st, _) = call_with(
        app,
        "POST",
        "/plans/import",
        Some(&fx.planner),
        &[],
        r#"{"type":"Feature"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// The headers of one request.
async fn headers_of(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap) {
    let (st, hs, _) = raw(app, method, uri, headers, None).await;
    (st, hs)
}

/// A map page on another origin may read tiles, TileJSON and items, and send a token and
/// If-Match: preflights are answered; a configured list of origins limits who may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_for_pages_on_other_origins() {
    let fx = fixture().await;
    let h = |v: &axum::http::HeaderMap, k: &str| {
        v.get(k)
            .and_then(|x| x.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let origin = ("Origin", "https://map.example.org");
    for uri in ["/tiles/grids.json", "/collections/grids/items?limit=1"] {
        let (st, hs) = headers_of(&fx.app, "GET", uri, &[origin]).await;
        assert_eq!(st, StatusCode::OK, "{uri}");
        assert_eq!(h(&hs, "access-control-allow-origin"), "*", "{uri}");
    }
    let pre = [
        origin,
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "authorization, if-match, content-type",
        ),
    ];
    let (st, hs) = headers_of(&fx.app, "OPTIONS", "/plans/1/edits", &pre).await;
    assert!(st.is_success(), "preflight: {st}");
    assert_eq!(h(&hs, "access-control-allow-origin"), "*");
    let allowed = h(&hs, "access-control-allow-headers");
    for k in ["authorization", "if-match", "content-type"] {
        assert!(allowed.contains(k), "{k} not in {allowed}");
    }
    assert!(h(&hs, "access-control-allow-methods").contains("post"));
    let (_, hs) = headers_of(&fx.app, "GET", "/plans/1", &[origin]).await;
    assert!(h(&hs, "access-control-expose-headers").contains("etag"));

    // only the configured origins
    let app = fx
        .with_config(Config {
            cors_origins: vec!["https://map.example.org".into()],
            ..Config::default()
        })
        .await;
    let (_, hs) = headers_of(&app, "GET", "/tiles/grids.json", &[origin]).await;
    assert_eq!(
        h(&hs, "access-control-allow-origin"),
        "https://map.example.org"
    );
    let (_, hs) = headers_of(
        &app,
        "GET",
        "/tiles/grids.json",
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(
        h(&hs, "access-control-allow-origin"),
        "",
        "another origin is not allowed"
    );
}

/// Findings of the outside audit, each at its cause: the Bearer scheme in any case; an
/// extension to year 10000 refused (it used to poison every later read); a grid worker cannot
/// dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_findings_on_tokens_cases_and_workers() {
    let fx = fixture().await;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {}", fx.viewer);
        let (st, _) = call_with(
            &fx.app,
            "GET",
            "/plans",
            None,
            &[("Authorization", &auth)],
            "",
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{scheme}");
    }
    // a resident's report, then a case to act on
    let (_, svcs) = call(&fx.app, "GET", "/open311/v2/services.json", None).await;
    let code = j(&svcs)[0]["service_code"].as_str().unwrap().to_string();
    let grid = call(
        &fx.app,
        "GET",
        &format!("/collections/grids/items/{}", fx.grid),
        None,
    )
    .await
    .1;
    let ring = &j(&grid)["geometry"]["coordinates"][0][0];
    let (x, y) = (ring[0][0].as_f64().unwrap(), ring[0][1].as_f64().unwrap());
    let form = format!("service_code={code}&lat={y}&long={x}&description=lamp");
    let (st, created) = send(
        &fx.app,
        "POST",
        "/open311/v2/requests.json",
        &[],
        ("application/x-www-form-urlencoded", form),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let act = |tok: String, body: Value| {
        let uri = format!("/incidents/{id}/transitions");
        let app = fx.app.clone();
        async move {
            send(
                &app,
                "POST",
                &uri,
                &[("Authorization", &format!("Bearer {tok}"))],
                ("application/json", body.to_string()),
            )
            .await
        }
    };
    let d = fx.dispatcher.clone();
    for a in ["accept", "open"] {
        let (st, b) = act(d.clone(), serde_json::json!({ "action": a })).await;
        assert_eq!(st, StatusCode::OK, "{a}: {b}");
    }
    // a grid worker may not dispatch
    let gw = token(
        fx.dir.path().join("w.gpkg").to_str().unwrap(),
        "grid_worker",
        None,
    );
    let (st, b) = act(gw, serde_json::json!({ "action": "dispatch", "unit": "x" })).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    let (st, b) = act(
        d.clone(),
        serde_json::json!({ "action": "dispatch", "unit": "网格员" }),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    // an extension to the year 10000 is refused with the allowed range; reads still work
    let (st, b) = act(
        d.clone(),
        serde_json::json!({ "action": "extend", "until": 253_402_300_800_i64, "reason": "x" }),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["message"].as_str().unwrap().contains("366 days"), "{b}");
    let (st, _) = call(&fx.app, "GET", "/incidents", Some(&fx.dispatcher)).await;
    assert_eq!(st, StatusCode::OK);
}

/// A worker cannot be assigned to a grid that does not exist (audit finding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_needs_an_existing_grid() {
    let fx = fixture().await;
    let (st, b) = send(
        &fx.app,
        "POST",
        "/grids/999999999999999/worker",
        &[("Authorization", &format!("Bearer {}", fx.admin))],
        ("application/json", r#"{"name": "张三"}"#.into()),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    let (st, b) = send(
        &fx.app,
        "POST",
        &format!("/grids/{}/worker", fx.grid),
        &[("Authorization", &format!("Bearer {}", fx.admin))],
        (
            "application/json",
            r#"{"name": "张三", "phone": "12345"}"#.into(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
}

/// More audit findings: a viewer's H3 statistics are as coarse as the public heat layer; a huge
/// offset is refused instead of wrapping to the first page; safety headers on every answer and
/// no caching of cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_findings_on_statistics_paging_and_headers() {
    let fx = fixture().await;
    let (st, _) = call(
        &fx.app,
        "GET",
        "/stats/h3?resolution=15&min_count=1",
        Some(&fx.viewer),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a viewer gets no exact places");
    let (st, body) = call(
        &fx.app,
        "GET",
        "/stats/h3?resolution=10&min_count=1",
        Some(&fx.viewer),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["count"].as_u64().unwrap() >= 3)
    );
    let (st, _) = call(
        &fx.app,
        "GET",
        "/stats/h3?resolution=15&min_count=1",
        Some(&fx.dispatcher),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "a dispatcher reads cases anyway");
    let (st, _) = call(
        &fx.app,
        "GET",
        "/collections/grids/items?offset=18446744073709551615",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (_, hs) = headers_of(&fx.app, "GET", "/collections", &[]).await;
    assert_eq!(hs["x-content-type-options"], "nosniff");
    assert_eq!(hs["x-frame-options"], "SAMEORIGIN");
    let bearer = format!("Bearer {}", fx.dispatcher);
    let (_, hs, _) = raw(
        &fx.app,
        "GET",
        "/incidents",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(hs["cache-control"], "no-store");
}

/// Audit findings on residents' reports: field limits, control characters and media URL
/// schemes are refused with the field named (422); a good report still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_checked_field_by_field() {
    let fx = fixture().await;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    let (_, svcs) = call(&fx.app, "GET", "/open311/v2/services.json", None).await;
    let code = j(&svcs)[0]["service_code"].as_str().unwrap().to_string();
    let grid = call(
        &fx.app,
        "GET",
        &format!("/collections/grids/items/{}", fx.grid),
        None,
    )
    .await
    .1;
    let ring = &j(&grid)["geometry"]["coordinates"][0][0];
    let (x, y) = (ring[0][0].as_f64().unwrap(), ring[0][1].as_f64().unwrap());
    let post = |extra: String| {
        let app = fx.app.clone();
        let form = format!("service_code={code}&lat={y}&long={x}{extra}");
        async move {
            send(
                &app,
                "POST",
                "/open311/v2/requests.json",
                &[],
                ("application/x-www-form-urlencoded", form),
            )
            .await
        }
    };
    let long = "a".repeat(4001);
    for (extra, field) in [
        (format!("&description={long}"), "description"),
        ("&media_url=javascript:alert(1)".to_string(), "media_url"),
        ("&first_name=%07bell".to_string(), "first_name"),
    ] {
        let (st, b) = post(extra).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {b}");
        assert!(b.to_string().contains(field), "{b}");
    }
    let (st, b) = post("&description=line%0Anext&media_url=https://x.example/p.jpg".into()).await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
}

/// TileJSON says how deep the tiles add detail (16; heat 13) so clients over-zoom, with a
/// description and the configured attribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tilejson_advertises_the_real_zooms_and_attribution() {
    let fx = fixture().await;
    let (st, body) = call(&fx.app, "GET", "/tiles/all.json", None).await;
    assert_eq!(st, StatusCode::OK);
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["maxzoom"], 16, "{j}");
    for l in j["vector_layers"].as_array().unwrap() {
        let want = if l["id"] == "heat" { 13 } else { 16 };
        assert_eq!(l["maxzoom"], want, "{l}");
        assert!(l["description"].is_string(), "{l}");
    }
    assert_eq!(j["attribution"], "wangge 社区网格");
    assert!(j["description"].as_str().unwrap().contains("grids"));
    let (_, body) = call(&fx.app, "GET", "/tiles/heat.json", Some(&fx.dispatcher)).await;
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["maxzoom"], 13, "{j}");
    let app = fx
        .with_config(Config {
            tile_attribution: "© OpenStreetMap contributors".into(),
            ..Config::default()
        })
        .await;
    let (_, body) = call(&app, "GET", "/tiles/grids.json", None).await;
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["attribution"], "© OpenStreetMap contributors");
}

/// The collections list names only what the caller may read: an anonymous client (GDAL's OAPIF
/// driver lists, then opens each) never meets a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_list_only_what_the_caller_reads() {
    let fx = fixture().await;
    let ids = |b: &[u8]| -> Vec<String> {
        let j: Value = serde_json::from_slice(b).unwrap();
        j["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, public) = call(&fx.app, "GET", "/collections", None).await;
    assert_eq!(
        ids(&public),
        ["streets", "communities", "grids", "buildings"]
    );
    let (_, staff) = call(&fx.app, "GET", "/collections", Some(&fx.dispatcher)).await;
    assert!(ids(&staff).contains(&"incidents".to_string()));
    let (_, viewer) = call(&fx.app, "GET", "/collections", Some(&fx.viewer)).await;
    assert!(!ids(&viewer).contains(&"incidents".to_string()));
    let (st, _) = call(&fx.app, "GET", "/collections/incidents", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = call(
        &fx.app,
        "GET",
        "/collections/incidents",
        Some(&fx.dispatcher),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

/// `limit` is documented with its maximum on the items path, where clients that page (GDAL's
/// OAPIF driver in its newer versions) look for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_page_size() {
    let fx = fixture().await;
    let (_, body) = call(&fx.app, "GET", "/openapi.json", None).await;
    let j: Value = serde_json::from_slice(&body).unwrap();
    let params = j["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["schema"]["maximum"], 1000);
    assert_eq!(limit["schema"]["default"], 100);
    assert!(params.iter().any(|p| p["name"] == "bbox"));
}

/// Behind a proxy or on its public name, every link is written with `public_base_url`: OGC
/// links, TileJSON tile URLs (and the QR codes of signboards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_use_the_public_base_url() {
    let fx = fixture().await;
    let app = fx
        .with_config(Config {
            public_base_url: Some("https://grid.example.gov.cn/".into()),
            ..Config::default()
        })
        .await;
    let (_, body) = call(&app, "GET", "/tiles/grids.json", None).await;
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        j["tiles"][0]
            .as_str()
            .unwrap()
            .starts_with("https://grid.example.gov.cn/tiles/grids/"),
        "{j}"
    );
    let (_, body) = call(&app, "GET", "/collections/grids/items?limit=1", None).await;
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        j["links"].as_array().unwrap().iter().all(|l| l["href"]
            .as_str()
            .unwrap()
            .starts_with("https://grid.example.gov.cn/")),
        "{j}"
    );
    // without it, the request's host
    let (_, body) = call(&fx.app, "GET", "/tiles/grids.json", None).await;
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        j["tiles"][0].as_str().unwrap().starts_with("http://"),
        "{j}"
    );
}

/// Behind a reverse proxy: `X-Forwarded-Proto`/`-Host` write the links only when the proxy's
/// address is trusted; from anyone else they are ignored (a client cannot point links elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_only_from_trusted_proxies() {
    use axum::extract::ConnectInfo;
    let fx = fixture().await;
    let app_from = |peer: &str| {
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        let fx = &fx;
        async move {
            fx.with_config(Config {
                trusted_proxies: vec!["10.0.0.0/8".into()],
                ..Config::default()
            })
            .await
            // what `into_make_service_with_connect_info` puts on each request
            .layer(axum::Extension(ConnectInfo(peer)))
        }
    };
    let fwd = [
        ("Host", "127.0.0.1:8080"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "grid.example.gov.cn"),
        ("X-Forwarded-For", "203.0.113.9"),
    ];
    let self_link = |b: &[u8]| -> String {
        let j: Value = serde_json::from_slice(b).unwrap();
        j["links"][0]["href"].as_str().unwrap().to_string()
    };
    let trusted = app_from("10.1.2.3:40000").await;
    let (_, body) = call_with(&trusted, "GET", "/collections", None, &fwd, "").await;
    assert_eq!(self_link(&body), "https://grid.example.gov.cn/collections");
    let stranger = app_from("198.51.100.7:40000").await;
    let (_, body) = call_with(&stranger, "GET", "/collections", None, &fwd, "").await;
    assert_eq!(self_link(&body), "http://127.0.0.1:8080/collections");
    // A client cannot claim the scheme through the internal header either.
    let (_, body) = call_with(
        &stranger,
        "GET",
        "/collections",
        None,
        &[("Host", "127.0.0.1:8080"), ("x-wangge-proto", "https")],
        "",
    )
    .await;
    assert_eq!(self_link(&body), "http://127.0.0.1:8080/collections");
}

/// 网格员考核: `/stats?by=worker` groups cases by the worker of their grid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_by_grid_worker() {
    let fx = fixture().await;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    let (_, svcs) = call(&fx.app, "GET", "/open311/v2/services.json", None).await;
    let code = j(&svcs)[0]["service_code"].as_str().unwrap().to_string();
    let grid = call(
        &fx.app,
        "GET",
        &format!("/collections/grids/items/{}", fx.grid),
        None,
    )
    .await
    .1;
    let ring = &j(&grid)["geometry"]["coordinates"][0][0];
    let (x, y) = (ring[0][0].as_f64().unwrap(), ring[0][1].as_f64().unwrap());
    let form = format!("service_code={code}&lat={y}&long={x}&description=lamp");
    let (st, created) = send(
        &fx.app,
        "POST",
        "/open311/v2/requests.json",
        &[],
        ("application/x-www-form-urlencoded", form),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created[0]["service_request_id"].as_str().unwrap();
    let (_, case) = call(
        &fx.app,
        "GET",
        &format!("/incidents/{id}"),
        Some(&fx.dispatcher),
    )
    .await;
    let g = j(&case)["grid"].as_str().unwrap().to_string();
    let (st, b) = send(
        &fx.app,
        "POST",
        &format!("/grids/{g}/worker"),
        &[("Authorization", &format!("Bearer {}", fx.admin))],
        (
            "application/json",
            r#"{"name": "张三", "phone": "12345"}"#.into(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let (st, body) = call(&fx.app, "GET", "/stats?by=worker", Some(&fx.viewer)).await;
    assert_eq!(st, StatusCode::OK);
    let v = j(&body);
    let zs = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "张三")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(zs["received"].as_u64().unwrap() >= 1, "{zs}");
    assert_eq!(zs["grids"], serde_json::json!([g]));
    let (st, _) = call(&fx.app, "GET", "/stats?by=nobody", Some(&fx.viewer)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

/// Reports without a token are limited per client (429 with Retry-After, in Open311's error
/// format); a token's reports are not. Failed authentications are audited with the client's
/// address and limited too, without locking out valid tokens from the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_failed_authentication() {
    use axum::extract::ConnectInfo;
    let fx = fixture().await;
    let peer: std::net::SocketAddr = "192.0.2.44:40000".parse().unwrap();
    let app = fx
        .with_config(Config {
            rate_limits: wangge::service::RateLimitConfig {
                public_writes_per_minute: 2,
                public_writes_burst: 2,
                failed_auth_per_minute: 3,
            },
            ..Config::default()
        })
        .await
        .layer(axum::Extension(ConnectInfo(peer)));
    let (_, svcs) = call(&app, "GET", "/open311/v2/services.json", None).await;
    let code = serde_json::from_slice::<Value>(&svcs).unwrap()[0]["service_code"]
        .as_str()
        .unwrap()
        .to_string();
    let form = format!("service_code={code}&lat=40.75&long=-73.98");
    let post = |headers: Vec<(&'static str, String)>| {
        let (app, form) = (app.clone(), form.clone());
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw(
                &app,
                "POST",
                "/open311/v2/requests.json",
                &h,
                Some(("application/x-www-form-urlencoded", form)),
            )
            .await
        }
    };
    for _ in 0..2 {
        assert_eq!(post(vec![]).await.0, StatusCode::CREATED);
    }
    let (st, hs, body) = post(vec![]).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = hs["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    let e: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(e[0]["code"], 429, "{e}");
    let bearer = format!("Bearer {}", fx.dispatcher);
    assert_eq!(
        post(vec![("Authorization", bearer.clone())]).await.0,
        StatusCode::CREATED,
        "the hotline's token is not limited"
    );

    // failed authentications: audited with the address, then limited
    for _ in 0..3 {
        let (st, _) = call(&app, "GET", "/incidents", Some("wg_guess")).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (_, hs, _) = raw(
        &app,
        "GET",
        "/incidents",
        &[("Authorization", "Bearer wg_guess")],
        None,
    )
    .await;
    assert!(hs.contains_key("retry-after"));
    let (st, _) = call(&app, "GET", "/incidents", Some("wg_guess")).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    let (st, _) = call(&app, "GET", "/incidents", Some(&fx.dispatcher)).await;
    assert_eq!(st, StatusCode::OK, "a valid token from the same address");
    let store = wangge::store::open(Some(fx.dir.path().join("w.gpkg").to_str().unwrap()))
        .await
        .unwrap();
    let log = store.audit_log(100).await.unwrap();
    let failed: Vec<_> = log.iter().filter(|e| e.action == "auth_failed").collect();
    assert_eq!(failed.len(), 3, "the limited ones are not written");
    assert!(
        failed
            .iter()
            .all(|e| e.client.as_deref() == Some("192.0.2.44")
                && e.target.starts_with("token sha256:")
                && !e.target.contains("wg_guess"))
    );
    assert!(
        log.iter()
            .any(|e| e.action == "insert_incident" && e.client.as_deref() == Some("192.0.2.44")),
        "reports carry the address too"
    );
}

/// A token scoped to one community reads household counts of that community only: the
/// others' come without them (a viewer scoped to 104 read 105–108's), and it cannot filter or
/// sort on them (that would compare other communities' counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_reads_households_in_its_scope_only() {
    let fx = fixture().await;
    let (_, body) = call(
        &fx.app,
        "GET",
        "/collections/communities/items?limit=100",
        Some(&fx.viewer),
    )
    .await;
    let all: Value = serde_json::from_slice(&body).unwrap();
    let codes: Vec<String> = all["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["code"].as_str().unwrap().to_string())
        .collect();
    assert!(codes.len() >= 2);
    let here = &codes[0];
    let scoped = token(
        fx.dir.path().join("w.gpkg").to_str().unwrap(),
        "viewer",
        Some(here),
    );
    for layer in ["communities", "grids", "buildings"] {
        let (st, body) = call(
            &fx.app,
            "GET",
            &format!("/collections/{layer}/items?limit=1000"),
            Some(&scoped),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let (mut inside, mut outside) = (0, 0);
        for f in v["features"].as_array().unwrap() {
            let p = &f["properties"];
            let mine = [&p["code"], &p["community"]]
                .iter()
                .any(|x| x.as_str() == Some(here));
            if mine {
                inside += 1;
                assert!(p["households"].is_number(), "{layer} in scope: {p}");
            } else {
                outside += 1;
                assert!(
                    p.get("households").is_none(),
                    "{layer} outside the scope: {p}"
                );
            }
        }
        assert!(
            inside > 0 && outside > 0,
            "{layer}: {inside} in, {outside} out"
        );
    }
    for q in ["sortby=-households", "filter=households%3E100"] {
        let (st, _) = call(
            &fx.app,
            "GET",
            &format!("/collections/communities/items?{q}"),
            Some(&scoped),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}");
    }
    // an unscoped viewer still reads every count and sorts on them
    let (st, _) = call(
        &fx.app,
        "GET",
        "/collections/communities/items?sortby=-households",
        Some(&fx.viewer),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

/// The OpenAPI document says what the service enforces (schemathesis checks the rest against the
/// running service): typed path parameters, required query parameters, If-Match routes with
/// 412/428, bodies documented; and the service refuses what the schema excludes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_states_what_the_service_enforces() {
    let fx = fixture().await;
    let (_, body) = call(&fx.app, "GET", "/openapi.json", None).await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    let param = |o: &Value, name: &str| -> Value {
        o["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not documented in {o}"))
    };
    let locate = op("/locate", "get");
    assert_eq!(param(&locate, "lon")["required"], true);
    assert_eq!(param(&locate, "lat")["schema"]["maximum"], 90);
    for (path, method) in [
        ("/plans/{id}", "get"),
        ("/jobs/{id}", "get"),
        ("/plans/{id}/undo", "post"),
    ] {
        let id = param(&op(path, method), "id");
        assert_eq!(id["schema"]["type"], "integer", "{path}");
        assert_eq!(id["schema"]["minimum"], 1, "{path}");
    }
    for path in [
        "/plans/{id}/publish",
        "/plans/{id}/undo",
        "/plans/{id}/redo",
    ] {
        let o = op(path, "post");
        assert_eq!(param(&o, "If-Match")["required"], true, "{path}");
        assert!(o["responses"]["412"].is_object() && o["responses"]["428"].is_object());
    }
    let tr = op("/incidents/{id}/transitions", "post");
    assert!(tr["requestBody"]["content"]["application/json"]["schema"]["oneOf"].is_array());
    assert!(tr["responses"]["409"].is_object() && tr["responses"]["422"].is_object());
    // each collection's own filters: plan for grids, not for streets
    let grids = op("/collections/grids/items", "get");
    param(&grids, "plan");
    param(&grids, "band");
    let streets = op("/collections/streets/items", "get");
    assert!(
        streets["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "plan" && p["name"] != "band")
    );
}

/// What the OpenAPI document excludes, the service refuses (400), and a plan that is not there
/// is 404 before its If-Match is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_refuses_what_its_schema_excludes() {
    let fx = fixture().await;
    let long = "j".repeat(201);
    for (uri, token, want) in [
        ("/locate?lon=1&lat=1&at=0", None, StatusCode::BAD_REQUEST),
        ("/locate?lat=1", None, StatusCode::BAD_REQUEST),
        (
            "/tiles/grids/1/0/0.mvt?plan=0",
            Some(&fx.viewer),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/incidents?overdue=maybe",
            Some(&fx.dispatcher),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/incidents?limit=0",
            Some(&fx.dispatcher),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/incidents?to=",
            Some(&fx.dispatcher),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/incidents?offset=99999999999999",
            Some(&fx.dispatcher),
            StatusCode::BAD_REQUEST,
        ),
        (
            &format!("/open311/v2/services.json?jurisdiction_id={long}"),
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "/open311/v2/requests.json?start_date=",
            None,
            StatusCode::BAD_REQUEST,
        ),
        ("/open311/v2/requests.json?status=", None, StatusCode::OK),
    ] {
        let (st, body) = call(&fx.app, "GET", uri, token.map(String::as_str)).await;
        assert_eq!(st, want, "{uri}: {}", String::from_utf8_lossy(&body));
    }
    let (st, _) = call_with(
        &fx.app,
        "POST",
        "/plans/999/undo",
        Some(&fx.planner),
        &[("If-Match", "\"x\"")],
        "",
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// `/locate` holds only the grids in force and scheduled: after a new publication, now is
/// answered by the new plan and an earlier instant by the superseded one (from the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locate_answers_the_past_from_the_store() {
    let fx = fixture().await;
    let j = |b: &[u8]| -> Value { serde_json::from_slice(b).unwrap() };
    let (_, body) = call(&fx.app, "GET", "/plans/1/grids", Some(&fx.viewer)).await;
    let label = j(&body)["grids"][0]["label"].clone();
    let (lon, lat) = (label[0].as_f64().unwrap(), label[1].as_f64().unwrap());
    let here = format!("/locate?lon={lon}&lat={lat}");
    let (st, body) = call(&fx.app, "GET", &here, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(j(&body)["plan"], 1);
    let (st, body) = call(&fx.app, "POST", "/plans/1/copy", Some(&fx.planner)).await;
    assert_eq!(st, StatusCode::CREATED);
    let id = j(&body)["plan"]["id"].as_i64().unwrap();
    let tag = format!("\"plan-{id}-v{}\"", j(&body)["plan"]["version"]);
    // the sample has a grid under the band: refused without a reason (422 naming it), or with
    // a blank one; published with one, which the exception register then holds
    let publish = |body: &'static str| {
        let (app, planner, tag) = (fx.app.clone(), fx.planner.clone(), tag.clone());
        async move {
            call_with(
                &app,
                "POST",
                &format!("/plans/{id}/publish"),
                Some(&planner),
                &[("If-Match", &tag)],
                body,
            )
            .await
        }
    };
    let (st, body) = publish(r#"{"valid_from": "2026-01-01T00:00:00+08:00"}"#).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let e = String::from_utf8_lossy(&body).to_string();
    assert!(
        e.contains("1 grid out of band without a reason") && e.contains("(under, "),
        "{e}"
    );
    let (st, body) =
        publish(r#"{"valid_from": "2026-01-01T00:00:00+08:00", "exceptions": {"*": " "}}"#).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&body).contains("blank"));
    let (st, body) = publish(
        r#"{"valid_from": "2026-01-01T00:00:00+08:00", "exceptions": {"*": "学校与商业用地为主，户数少"}}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let register = j(&body)["exceptions"].clone();
    let bands: Vec<&str> = register
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["band"].as_str().unwrap())
        .collect();
    assert_eq!(
        bands.iter().filter(|b| **b == "under").count(),
        1,
        "{register}"
    );
    let (st, body) = call(
        &fx.app,
        "GET",
        &format!("/plans/{id}/exceptions"),
        Some(&fx.planner),
    )
    .await;
    assert_eq!(
        (st, j(&body)["exceptions"].clone()),
        (StatusCode::OK, register)
    );
    let (_, body) = call(&fx.app, "GET", &here, None).await;
    let now = j(&body);
    assert_eq!(now["plan"], id, "now: the new plan");
    let (st, body) = call(
        &fx.app,
        "GET",
        &format!("{here}&at=2025-06-01T12:00:00%2B08:00"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let old = j(&body);
    assert_eq!(old["plan"], 1, "mid-2025: the superseded plan {old}");
    assert_eq!(
        old["grid"]["code"], now["grid"]["code"],
        "a copy: the same grid"
    );
    let (st, _) = call(&fx.app, "GET", &format!("{here}&at=2024-06-01"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "before any plan");
}
