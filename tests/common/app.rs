//! The service in process (`tower::ServiceExt::oneshot`, no port) over the sample district.

use super::{load_sample, token};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;
use wangge::service::{AppState, Config, router};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub app: axum::Router,
    pub admin: String,
    pub viewer: String,
    pub dispatcher: String,
    pub planner: String,
    pub grid: String,
}

/// The sample district in a GeoPackage, regridded and published, served in process.
pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.gpkg").to_str().unwrap().to_string();
    load_sample(&db);
    let (admin, viewer, dispatcher, planner) = (
        token(&db, "admin", None),
        token(&db, "viewer", None),
        token(&db, "dispatcher", None),
        token(&db, "planner", None),
    );
    let store = wangge::store::open(Some(&db)).await.unwrap();
    let grids = store
        .features(
            wangge::store::Layer::Grids,
            &wangge::store::FeatureQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let grid = grids.features[0].id.clone();
    let state = AppState::new(
        store,
        wangge::incident::Catalogue::default_catalogue(),
        wangge::incident::Calendar::default_calendar(),
        Config::default(),
    );
    Fixture {
        dir,
        app: router(Arc::new(state)),
        admin,
        viewer,
        dispatcher,
        planner,
        grid,
    }
}

impl Fixture {
    /// Another router over the same store, with this configuration.
    pub async fn with_config(&self, config: Config) -> axum::Router {
        let db = self.dir.path().join("w.gpkg");
        let store = wangge::store::open(Some(db.to_str().unwrap()))
            .await
            .unwrap();
        router(Arc::new(AppState::new(
            store,
            wangge::incident::Catalogue::default_catalogue(),
            wangge::incident::Calendar::default_calendar(),
            config,
        )))
    }
}

/// (status, body) of one request.
pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, Vec<u8>) {
    call_with(app, method, uri, token, &[], "{}").await
}

/// (status, body) of one request with headers and a body.
pub async fn call_with(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if method == "POST" {
        req = req.header("Content-Type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, body.to_vec())
}

/// One request with a body and its content type; (status, JSON body).
pub async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    (ctype, body): (&str, String),
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", ctype);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let st = resp.status();
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// (status, headers, raw body) of one request with headers and an optional body and its type.
pub async fn raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some((ctype, b)) => {
            req = req.header("Content-Type", ctype);
            Body::from(b)
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (parts, b) = resp.into_parts();
    let b = axum::body::to_bytes(b, 1 << 24).await.unwrap();
    (parts.status, parts.headers, b.to_vec())
}
