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
    /// Query parameters that must be given.
    pub required: Vec<(&'static str, Value, &'static str)>,
    /// Path parameters' schemas (a string when not listed).
    pub path_params: Vec<(&'static str, Value)>,
    /// Request headers (name, required, description).
    pub headers: Vec<(&'static str, bool, &'static str)>,
    /// Statuses beyond success and the common errors (202, 304, 409, 412, 428, 503, …).
    pub statuses: Vec<u16>,
    /// The request body may be left out.
    pub body_optional: bool,
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
            required: Vec::new(),
            path_params: Vec::new(),
            headers: Vec::new(),
            statuses: Vec::new(),
            body_optional: false,
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

    /// Document query parameters that must be given.
    #[must_use]
    pub fn required(mut self, q: Vec<(&'static str, Value, &'static str)>) -> Route {
        self.required = q;
        self
    }

    /// A path parameter's schema (an integer id, a code's pattern, …).
    #[must_use]
    pub fn path(mut self, name: &'static str, schema: Value) -> Route {
        self.path_params.push((name, schema));
        self
    }

    /// A request header the route reads (`If-Match`, `If-None-Match`).
    #[must_use]
    pub fn header(
        mut self,
        name: &'static str,
        required: bool,
        description: &'static str,
    ) -> Route {
        self.headers.push((name, required, description));
        self
    }

    /// Statuses it may answer beyond success and the errors of every route.
    #[must_use]
    pub fn statuses(mut self, codes: &[u16]) -> Route {
        self.statuses.extend_from_slice(codes);
        self
    }

    /// The body is a form (`application/x-www-form-urlencoded`) of this schema.
    #[must_use]
    pub fn form(mut self, schema: Value) -> Route {
        self.request = Some(schema);
        self.request_type = "application/x-www-form-urlencoded";
        self
    }

    /// The body may be left out (its fields all have defaults).
    #[must_use]
    pub fn body_optional(mut self) -> Route {
        self.body_optional = true;
        self
    }

    /// Success is 202 Accepted (a job was started).
    #[must_use]
    pub fn accepted(mut self) -> Route {
        self.success = 202;
        self
    }

    /// The body is an image (`image/jpeg` or `image/png`).
    #[must_use]
    pub fn binary(mut self, schema: Value) -> Route {
        self.request = Some(schema);
        self.request_type = "image/*";
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
            .map(|n| {
                let schema = rt.path_params.iter().find(|(p, _)| *p == n).map_or_else(
                    || json!({ "type": "string", "minLength": 1 }),
                    |(_, s)| s.clone(),
                );
                json!({ "name": n, "in": "path", "required": true, "schema": schema })
            })
            .collect();
        let query = |(n, schema, d): &(&str, Value, &str), required: bool| json!({ "name": n, "in": "query", "required": required, "schema": schema, "description": d, "style": "form", "explode": false });
        params.extend(rt.required.iter().map(|q| query(q, true)));
        params.extend(rt.query.iter().map(|q| query(q, false)));
        params.extend(rt.headers.iter().map(|(n, required, d)| {
            json!({ "name": n, "in": "header", "required": required, "schema": { "type": "string" }, "description": d })
        }));
        let op = operation(rt, params);
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

/// Why a status is answered, for the documentation of each response.
fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: a job was started (its status URL is in the answer)",
        304 => "Not modified (If-None-Match matched the ETag)",
        400 => "Bad request: a parameter or the body is not what the route expects",
        401 => "The token is unknown, revoked or missing where one is required",
        403 => "The token's role or scope does not allow this",
        404 => "Not found",
        409 => "Conflict with the resource's state (the allowed actions are named)",
        412 => "Precondition failed: If-Match does not match the current ETag",
        413 => "The body is larger than the service accepts",
        414 => "The request target is longer than 8 KiB",
        415 => "The body's media type is not the one documented",
        422 => "The body is well-formed but its content is refused (the field is named)",
        428 => "If-Match is required",
        429 => "Too many requests from this client (Retry-After says when to retry)",
        431 => "More than 100 header fields or 32 KiB of headers",
        503 => {
            "The service cannot answer now (the working calendar does not cover the due time, or the store is unavailable)"
        }
        _ => "See the message",
    }
}

/// One operation of the OpenAPI document.
fn operation(rt: &Route, params: Vec<Value>) -> Value {
    // Open311 writes its errors its own way: [{"code", "description"}]
    let error = if rt.path.starts_with("/open311/") {
        "#/components/responses/Open311Error"
    } else {
        "#/components/responses/Error"
    };
    let mut codes: Vec<u16> = vec![400, 401, 403, 404, 414, 429, 431];
    if rt.request.is_some() {
        codes.extend([413, 415, 422]);
    }
    codes.extend(rt.statuses.iter().copied());
    codes.sort_unstable();
    codes.dedup();
    let mut responses = serde_json::Map::new();
    let ok = rt.success.to_string();
    responses.insert(
        ok.clone(),
        json!({ "description": status_text(rt.success) }),
    );
    for c in codes {
        let r = if c >= 400 {
            json!({ "$ref": error })
        } else {
            json!({ "description": status_text(c) })
        };
        responses.insert(c.to_string(), r);
    }
    let mut op = json!({
        "summary": rt.summary,
        "tags": [rt.tag],
        "operationId": format!("{}{}", rt.method, rt.path.replace(['/', '{', '}', '.'], "_")),
        "description": format!("Access: {}.", rt.access),
        "parameters": params,
        "responses": responses,
    });
    if !rt.is_public() {
        op["security"] = json!([{ "bearer": [] }]);
    } else if rt.access != "public" {
        // public, and more for a token
        op["security"] = json!([{}, { "bearer": [] }]);
    }
    if let Some(r) = &rt.request {
        op["requestBody"] = json!({ "required": !rt.body_optional, "content": { rt.request_type: { "schema": r } } });
    }
    if rt.path.ends_with(".xml") {
        op["responses"][&ok]["content"] = json!({ "text/xml": { "schema": { "type": "string" } } });
    } else if let Some(r) = &rt.response {
        op["responses"][&ok]["content"] = json!({ "application/json": { "schema": r } });
    }
    op
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

/// Schemas of parameters used by many routes.
pub mod schema {
    use serde_json::{Value, json};

    /// A store id (plans, jobs): a positive 64-bit integer.
    #[must_use]
    pub fn id() -> Value {
        json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX })
    }

    /// An instant with its offset (RFC 3339); a date alone is also read (its day's start).
    #[must_use]
    pub fn datetime() -> Value {
        json!({ "anyOf": [
            { "type": "string", "format": "date-time" },
            { "type": "string", "format": "date" },
        ] })
    }

    /// An integer within `min..=max`.
    #[must_use]
    pub fn int(min: i64, max: i64) -> Value {
        json!({ "type": "integer", "minimum": min, "maximum": max })
    }

    /// One of these words.
    #[must_use]
    pub fn one_of(words: &[&str]) -> Value {
        json!({ "type": "string", "enum": words })
    }

    /// A text that is not blank: at least one character Rust's `char::is_whitespace` is not
    /// (what the service checks with `trim().is_empty()`).
    #[must_use]
    pub fn said() -> Value {
        json!({ "type": "string",
            "pattern": "[^\\t\\n\\u000b\\u000c\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]" })
    }

    /// A code of the administrative hierarchy (street, community or grid); one that is not
    /// there finds nothing.
    #[must_use]
    pub fn code() -> Value {
        json!({ "type": "string" })
    }
}
