//! Routes, each written once beside its documentation: every module of the service lists its
//! own (`ogc::routes()`, `cases::routes()`, …); the router merges them and `/openapi.json` is
//! made from the same lists, so a route cannot be served undocumented or documented unserved.

use super::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use serde_json::{Value, json};
use std::sync::Arc;

/// One route: method, path, handler, and what OpenAPI says of it.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    /// OpenAPI tag (the module's topic).
    pub tag: &'static str,
    /// Who may call it (`public`, or the roles).
    pub access: &'static str,
    pub summary: &'static str,
    /// JSON schemas of the request body and of the 200 answer, when documented.
    pub request: Option<Value>,
    pub response: Option<Value>,
    /// Query parameters documented in OpenAPI (name, JSON schema, description).
    pub query: Vec<(&'static str, Value, &'static str)>,
    /// The media type of the request body (`application/json` unless a form).
    pub request_type: &'static str,
    /// The status of success (200, or 201 for a creation).
    pub success: u16,
    handler: MethodRouter<Arc<AppState>>,
}

impl Route {
    /// A GET route.
    pub fn get<H, T>(
        path: &'static str,
        h: H,
        tag: &'static str,
        access: &'static str,
        summary: &'static str,
    ) -> Route
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        Route::with("get", axum::routing::get(h), [path, tag, access, summary])
    }

    /// A POST route.
    pub fn post<H, T>(
        path: &'static str,
        h: H,
        tag: &'static str,
        access: &'static str,
        summary: &'static str,
    ) -> Route
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        Route::with("post", axum::routing::post(h), [path, tag, access, summary])
    }

    fn with(
        method: &'static str,
        handler: MethodRouter<Arc<AppState>>,
        [path, tag, access, summary]: [&'static str; 4],
    ) -> Route {
        Route {
            method,
            path,
            tag,
            access,
            summary,
            request: None,
            response: None,
            query: Vec::new(),
            request_type: "application/json",
            success: 200,
            handler,
        }
    }

    /// Document the request body's and the answer's JSON schemas.
    #[must_use]
    pub fn schemas(mut self, request: Option<Value>, response: Value) -> Route {
        self.request = request;
        self.response = Some(response);
        self
    }

    /// Document query parameters (clients such as GDAL read `limit`'s maximum to page).
    #[must_use]
    pub fn query(mut self, q: Vec<(&'static str, Value, &'static str)>) -> Route {
        self.query = q;
        self
    }

    /// The body is a form (`application/x-www-form-urlencoded`) of this schema.
    #[must_use]
    pub fn form(mut self, schema: Value) -> Route {
        self.request = Some(schema);
        self.request_type = "application/x-www-form-urlencoded";
        self
    }

    /// Success is 201 Created.
    #[must_use]
    pub fn created(mut self) -> Route {
        self.success = 201;
        self
    }

    /// True when anyone may call it without a token.
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.access.starts_with("public")
    }
}

/// A module's routes as a router (methods of one path merged).
pub fn router_of(routes: Vec<Route>) -> Router<Arc<AppState>> {
    let mut paths: Vec<(&'static str, MethodRouter<Arc<AppState>>)> = Vec::new();
    for r in routes {
        match paths.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, m)) => *m = std::mem::take(m).merge(r.handler),
            None => paths.push((r.path, r.handler)),
        }
    }
    paths
        .into_iter()
        .fold(Router::new(), |router, (p, m)| router.route(p, m))
}

/// The OpenAPI 3 document of the routes.
#[must_use]
pub fn openapi_doc(routes: &[Route]) -> Value {
    let mut paths = serde_json::Map::new();
    for rt in routes {
        let mut params: Vec<Value> = rt
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        params.extend(rt.query.iter().map(|(n, schema, d)| {
            json!({ "name": n, "in": "query", "required": false, "schema": schema, "description": d, "style": "form", "explode": false })
        }));
        // Open311 writes its errors its own way: [{"code", "description"}]
        let error = if rt.path.starts_with("/open311/") {
            json!({ "$ref": "#/components/responses/Open311Error" })
        } else {
            json!({ "$ref": "#/components/responses/Error" })
        };
        let ok = rt.success.to_string();
        let mut op = json!({
            "summary": rt.summary,
            "tags": [rt.tag],
            "operationId": format!("{}{}", rt.method, rt.path.replace(['/', '{', '}', '.'], "_")),
            "description": format!("Access: {}.", rt.access),
            "parameters": params,
            "responses": {
                ok.clone(): { "description": "OK" },
                "400": error, "401": error, "403": error, "404": error
            }
        });
        if !rt.is_public() {
            op["security"] = json!([{ "bearer": [] }]);
        } else if rt.access != "public" {
            // public, and more for a token
            op["security"] = json!([{}, { "bearer": [] }]);
        }
        if let Some(r) = &rt.request {
            op["requestBody"] =
                json!({ "required": true, "content": { rt.request_type: { "schema": r } } });
        }
        if rt.path.ends_with(".xml") {
            op["responses"][&ok]["content"] =
                json!({ "text/xml": { "schema": { "type": "string" } } });
        } else if let Some(r) = &rt.response {
            op["responses"][&ok]["content"] = json!({ "application/json": { "schema": r } });
        }
        let entry = paths
            .entry(rt.path.to_string())
            .or_insert_with(|| json!({}));
        entry[rt.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "wangge 网格", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Community grid management: OGC API – Features, locate, Open311 GeoReport v2, incidents, plans." },
        "paths": paths,
        "components": {
            "schemas": layer_schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "wangge token create --role …" } },
            "responses": { "Error": { "description": "An error", "content": { "application/json": { "schema": {
                "type": "object", "required": ["error", "message"],
                "properties": { "error": { "type": "string" }, "message": { "type": "string" } } } } } },
                "Open311Error": { "description": "An error (GeoReport v2)", "content": {
                    "application/json": { "schema": { "type": "array", "items": {
                        "type": "object", "required": ["code", "description"],
                        "properties": { "code": { "type": "integer" }, "description": { "type": "string" } } } } },
                    "text/xml": { "schema": { "type": "string" } } } } }
        }
    })
}

/// One JSON schema per layer's feature properties, from the layer schema; `x-visibility` says
/// who receives each field (public, viewer, staff, personal): others never get it.
fn layer_schemas() -> Value {
    use crate::model::schema::{self, Layer};
    let mut out = serde_json::Map::new();
    for l in Layer::ALL {
        let props: serde_json::Map<String, Value> = schema::fields(l)
            .iter()
            .map(|f| {
                let mut p = json!({
                    "type": f.kind.json_schema(),
                    "nullable": true,
                    "x-visibility": format!("{:?}", f.visibility).to_lowercase(),
                });
                if f.kind == schema::FieldType::Time {
                    p["format"] = json!("date-time");
                }
                (f.name.to_string(), p)
            })
            .collect();
        out.insert(
            format!("{}_properties", l.name()),
            json!({ "type": "object", "properties": props }),
        );
    }
    Value::Object(out)
}
