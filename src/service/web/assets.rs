//! The map page's embedded assets, served compressed with an ETag.

use super::*;

pub(crate) fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // writing to a Vec cannot fail
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

/// True when the client asks for a page rather than JSON (a browser's Accept header).
#[must_use]
pub fn wants_html(h: &HeaderMap) -> bool {
    let Some(a) = h.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let q_of = |mime: &str| -> f32 {
        a.split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let m = it.next()?.trim();
                (m == mime).then(|| {
                    it.find_map(|p| p.trim().strip_prefix("q=")?.parse().ok())
                        .unwrap_or(1.0)
                })
            })
            .fold(0.0, f32::max)
    };
    let html = q_of("text/html");
    html > 0.0 && html >= q_of("application/json")
}

/// The page itself (index.html), or a page saying how to build it.
pub fn page(h: &HeaderMap) -> Response {
    match assets().iter().find(|a| a.name == "index.html") {
        Some(a) => serve_asset(a, h),
        None => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT,
        )
            .into_response(),
    }
}

pub(crate) async fn asset(Path(file): Path<String>, h: HeaderMap) -> Response {
    match assets().iter().find(|a| a.name == file) {
        Some(a) => serve_asset(a, &h),
        None => {
            super::super::error::ApiError::not_found(format!("no asset {file:?}")).into_response()
        }
    }
}

pub(crate) async fn config(State(s): State<Arc<AppState>>) -> Json<Value> {
    let b = crate::partition::Band::DEFAULT;
    Json(json!({
        "basemap": s.config.basemap,
        "band": { "min": b.min(), "target": b.target(), "max": b.max() },
        "extent": super::super::ogc::extent(&s).await,
        "built": assets().iter().any(|a| a.name == "index.html"),
    }))
}

/// Who the caller is (the page's sign-in checks a token with it): role, scope, name.
pub(crate) async fn session(p: super::super::auth::Principal) -> Json<Value> {
    Json(json!({
        "role": p.role.name(),
        "scope": p.scope,
        "who": p.who,
        "may": {
            "read_plans": p.reads_plans(),
            "edit_plans": p.plans(),
            "households": p.sees_households(),
            "incidents": p.reads_incidents(),
            "reporters": p.sees_reporters(),
            "admin": p.role == super::super::auth::Role::Admin,
        },
    }))
}

/// The page's routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/app/session",
            session,
            "web",
            "public; with a token, its role",
            "The caller's role, scope and rights (401 for an unknown token)",
        ),
        Route::get(
            "/app/config.json",
            config,
            "web",
            "public",
            "What the web map needs to start: basemap, default band, extent",
        ),
        Route::get(
            "/app/{file}",
            asset,
            "web",
            "public",
            "The web map's built assets (index.html, app.js, app.css); gzip, ETag",
        )
        .header(
            "If-None-Match",
            false,
            "The ETag of the copy the client holds",
        )
        .statuses(&[304]),
    ]
}
