//! Open311 GeoReport v2 conformance: every endpoint in both formats, field by field as the
//! specification lists them; the XML document says exactly what the JSON says; errors as the
//! specification writes them; the public reads requests without personal fields; `api_key` in
//! the body; `jurisdiction_id` checked when configured.

mod common;

use axum::http::StatusCode;
use common::app::{Fixture, call, fixture, raw};
use serde_json::{Value, json};
use wangge::service::{Config, Open311Config};

/// The fields GeoReport v2 lists for each answer.
const SERVICE: &[&str] = &[
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
];
const REQUEST: &[&str] = &[
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];
const CREATED: &[&str] = &["service_request_id", "service_notice", "account_id"];
const DISCOVERY: &[&str] = &["changeset", "contact", "key_service", "endpoints"];
const ENDPOINT: &[&str] = &["specification", "url", "changeset", "type", "formats"];

/// Elements whose children are a list.
const LISTS: &[&str] = &[
    "services",
    "service_requests",
    "errors",
    "endpoints",
    "formats",
    "attributes",
    "values",
];

/// An XML element as the JSON it should mirror, every leaf as text.
fn from_xml(n: roxmltree::Node) -> Value {
    let kids: Vec<_> = n.children().filter(roxmltree::Node::is_element).collect();
    if LISTS.contains(&n.tag_name().name()) {
        return Value::Array(kids.into_iter().map(from_xml).collect());
    }
    if kids.is_empty() {
        return Value::String(n.text().unwrap_or("").to_string());
    }
    Value::Object(
        kids.into_iter()
            .map(|k| (k.tag_name().name().to_string(), from_xml(k)))
            .collect(),
    )
}

/// A JSON value with every leaf as text (numbers and booleans printed, null empty).
fn leaves_as_text(v: &Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(leaves_as_text).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), leaves_as_text(v)))
                .collect(),
        ),
        Value::Null => Value::String(String::new()),
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// GET an address in both formats; (status, the JSON). Asserts the XML says the same under
/// `root`, with the right content types.
async fn both(
    fx: &Fixture,
    base: &str,
    query: &str,
    token: Option<&str>,
    root: &str,
) -> (StatusCode, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (st, h, body) = raw(
        &fx.app,
        "GET",
        &format!("{base}.json{query}"),
        &headers,
        None,
    )
    .await;
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{base}.json: {h:?}"
    );
    let json: Value = serde_json::from_slice(&body).unwrap();
    let (st_x, h, body) = raw(
        &fx.app,
        "GET",
        &format!("{base}.xml{query}"),
        &headers,
        None,
    )
    .await;
    assert_eq!(st, st_x, "{base}: the formats answer alike");
    assert_eq!(h["content-type"], "text/xml; charset=utf-8", "{base}.xml");
    let text = String::from_utf8(body).unwrap();
    let doc =
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{base}.xml: {e}\n{text}"));
    let want_root = if st.is_success() { root } else { "errors" };
    assert_eq!(doc.root_element().tag_name().name(), want_root, "{text}");
    assert_eq!(
        from_xml(doc.root_element()),
        leaves_as_text(&json),
        "{base}.xml says what {base}.json says"
    );
    (st, json)
}

fn has_fields(v: &Value, fields: &[&str], what: &str) {
    for f in fields {
        assert!(v.get(*f).is_some(), "{what}: no {f}: {v}");
    }
}

/// POST a report (form) to requests.json or .xml; (status, body text).
async fn report(fx: &Fixture, ext: &str, form: &str) -> (StatusCode, String) {
    let (st, _, body) = raw(
        &fx.app,
        "POST",
        &format!("/open311/v2/requests.{ext}"),
        &[],
        Some(("application/x-www-form-urlencoded", form.to_string())),
    )
    .await;
    (st, String::from_utf8(body).unwrap())
}

/// A point inside the fixture's grid.
async fn inside(fx: &Fixture) -> (f64, f64) {
    let (_, body) = call(
        &fx.app,
        "GET",
        &format!("/collections/grids/items/{}", fx.grid),
        None,
    )
    .await;
    let g: Value = serde_json::from_slice(&body).unwrap();
    let ring = &g["geometry"]["coordinates"][0][0];
    let (a, b) = (&ring[0], &ring[ring.as_array().unwrap().len() / 2]);
    (
        (a[0].as_f64().unwrap() + b[0].as_f64().unwrap()) / 2.0,
        (a[1].as_f64().unwrap() + b[1].as_f64().unwrap()) / 2.0,
    )
}

/// The first service's code.
async fn a_service(fx: &Fixture) -> String {
    let (_, _, svcs) = raw(&fx.app, "GET", "/open311/v2/services.json", &[], None).await;
    serde_json::from_slice::<Value>(&svcs).unwrap()[0]["service_code"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Two reports with a reporter, a description and a photo, one through each format; their ids,
/// the service code and the place.
async fn two_reports(fx: &Fixture) -> (String, String, String, (f64, f64)) {
    let code = a_service(fx).await;
    // a report in each format
    let (x, y) = inside(fx).await;
    let form = format!(
        "service_code={code}&lat={y}&long={x}&description=%E8%B7%AF%E7%81%AF%E4%B8%8D%E4%BA%AE\
         &first_name=%E5%BC%A0&phone=13800000000&media_url=https://photos.example/1.jpg"
    );
    let (st, body) = report(fx, "json", &form).await;
    assert_eq!(st, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    has_fields(&created[0], CREATED, "created");
    let id = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = report(fx, "xml", &form).await;
    assert_eq!(st, 201, "{body}");
    let doc = roxmltree::Document::parse(&body).unwrap();
    let made = from_xml(doc.root_element());
    assert_eq!(doc.root_element().tag_name().name(), "service_requests");
    for f in CREATED {
        assert!(made[0].get(*f).is_some(), "{body}");
    }
    let id_xml = made[0]["service_request_id"].as_str().unwrap().to_string();

    (id, id_xml, code, (x, y))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_services_in_both_formats() {
    let fx = fixture().await;
    // discovery
    let (st, d) = both(&fx, "/open311/v2/discovery", "", None, "discovery").await;
    assert_eq!(st, 200);
    has_fields(&d, DISCOVERY, "discovery");
    has_fields(&d["endpoints"][0], ENDPOINT, "discovery endpoint");
    assert_eq!(
        d["endpoints"][0]["specification"],
        "http://wiki.open311.org/GeoReport_v2"
    );
    assert_eq!(
        d["endpoints"][0]["formats"],
        json!(["text/xml", "application/json"])
    );
    assert!(
        d["endpoints"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/open311/v2")
    );

    // services and a definition
    let (st, svcs) = both(&fx, "/open311/v2/services", "", None, "services").await;
    assert_eq!(st, 200);
    assert!(svcs.as_array().unwrap().len() > 10);
    for s in svcs.as_array().unwrap() {
        has_fields(s, SERVICE, "service");
    }
    let code = svcs[0]["service_code"].as_str().unwrap().to_string();
    let (st, def) = both(
        &fx,
        &format!("/open311/v2/services/{code}"),
        "",
        None,
        "service_definition",
    )
    .await;
    assert_eq!(st, 200);
    has_fields(&def, &["service_code", "attributes"], "service definition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_both_formats_as_each_caller_may_see_them() {
    let fx = fixture().await;
    let (id, id_xml, code, (x, y)) = two_reports(&fx).await;
    // the list and one request, for a dispatcher: everything, the reporter too
    let (st, list) = both(
        &fx,
        "/open311/v2/requests",
        "?status=open",
        Some(&fx.dispatcher),
        "service_requests",
    )
    .await;
    assert_eq!(st, 200);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service_request_id"] == id.as_str())
        .unwrap();
    has_fields(mine, REQUEST, "request");
    assert_eq!(mine["description"], "路灯不亮");
    assert_eq!(mine["media_url"], "https://photos.example/1.jpg");
    assert_eq!(mine["reporter"], "张 13800000000");
    assert_eq!(
        (mine["lat"].as_f64(), mine["long"].as_f64()),
        (Some(y), Some(x))
    );
    let (st, one) = both(
        &fx,
        &format!("/open311/v2/requests/{id_xml}"),
        "",
        Some(&fx.dispatcher),
        "service_requests",
    )
    .await;
    assert_eq!(st, 200);
    has_fields(&one[0], REQUEST, "one request");

    // the public: the same requests without description, photo or reporter, the place coarse
    let (st, list) = both(&fx, "/open311/v2/requests", "", None, "service_requests").await;
    assert_eq!(st, 200);
    let public = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service_request_id"] == id.as_str())
        .unwrap();
    has_fields(public, REQUEST, "public request");
    for personal in ["description", "media_url"] {
        assert!(public[personal].is_null(), "{personal} public: {public}");
    }
    assert!(public.get("reporter").is_none(), "{public}");
    let (lat, lon) = (
        public["lat"].as_f64().unwrap(),
        public["long"].as_f64().unwrap(),
    );
    assert!(
        (lat - y).abs() < 0.003 && (lon - x).abs() < 0.004,
        "near the report"
    );
    assert!((lat, lon) != (y, x), "but not the door");
    assert_eq!(public["service_code"], code.as_str());
    assert_eq!(public["address_id"], mine["address_id"]);
    let text = String::from_utf8(
        raw(&fx.app, "GET", "/open311/v2/requests.xml", &[], None)
            .await
            .2,
    )
    .unwrap();
    for leak in ["路灯不亮", "13800000000", "photos.example"] {
        assert!(!text.contains(leak), "the public XML carries {leak}");
    }
    // a grid worker elsewhere reads this request as the public does
    let elsewhere = common::token(
        fx.dir.path().join("w.gpkg").to_str().unwrap(),
        "grid_worker",
        Some("nowhere"),
    );
    let (_, one) = both(
        &fx,
        &format!("/open311/v2/requests/{id}"),
        "",
        Some(&elsewhere),
        "service_requests",
    )
    .await;
    assert!(
        one[0]["description"].is_null() && one[0].get("reporter").is_none(),
        "{one}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_as_specified() {
    let fx = fixture().await;
    let (id, id_xml, code, _) = two_reports(&fx).await;
    // searches: ids ignore the rest; status and codes comma-delimited; 90 days at most
    let (_, l) = both(
        &fx,
        "/open311/v2/requests",
        &format!("?service_request_id={id},{id_xml},nope&status=closed"),
        Some(&fx.dispatcher),
        "service_requests",
    )
    .await;
    assert_eq!(l.as_array().unwrap().len(), 2, "{l}");
    let (_, l) = both(
        &fx,
        "/open311/v2/requests",
        "?status=closed",
        Some(&fx.dispatcher),
        "service_requests",
    )
    .await;
    assert!(l.as_array().unwrap().is_empty());
    let (_, l) = both(
        &fx,
        "/open311/v2/requests",
        &format!("?status=open,closed&service_code={code},zz"),
        None,
        "service_requests",
    )
    .await;
    assert_eq!(l.as_array().unwrap().len(), 2);
    let (st, e) = both(
        &fx,
        "/open311/v2/requests",
        "?start_date=2026-01-01T00:00:00%2B08:00&end_date=2026-06-01T00:00:00%2B08:00",
        None,
        "errors",
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        e[0]["description"].as_str().unwrap().contains("90 days"),
        "{e}"
    );
    let (_, l) = both(
        &fx,
        "/open311/v2/requests",
        "?start_date=2020-01-01T00:00:00Z",
        None,
        "service_requests",
    )
    .await;
    assert!(l.as_array().unwrap().is_empty(), "long before today");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_as_specified() {
    let fx = fixture().await;

    let (x, y) = inside(&fx).await;
    // errors: [{"code", "description"}] and <errors><error>…
    // GeoReport v2: "404 - service_code provided was not found"
    let (st, body) = report(&fx, "json", &format!("service_code=nope&lat={y}&long={x}")).await;
    assert_eq!(st, 404);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e[0]["code"], 404);
    assert!(
        e[0]["description"].as_str().unwrap().contains("nope"),
        "{e}"
    );
    let (st, body) = report(&fx, "xml", "service_code=01-01&lat=1").await;
    assert_eq!(st, 400, "long is missing");
    assert!(
        body.contains("<errors><error><code>400</code><description>"),
        "{body}"
    );
    let (st, e) = both(&fx, "/open311/v2/services/nope", "", None, "errors").await;
    assert_eq!((st, &e[0]["code"]), (StatusCode::NOT_FOUND, &json!(404)));
    let (st, _, body) = raw(&fx.app, "GET", "/open311/v2/services/01-01", &[], None).await;
    assert_eq!(st, 404);
    assert!(
        String::from_utf8_lossy(&body).contains(".xml"),
        "names the formats"
    );
    let (st, e) = both(
        &fx,
        "/open311/v2/requests/19990101-1",
        "",
        Some("wg_unknown"),
        "errors",
    )
    .await;
    assert_eq!((st, &e[0]["code"]), (StatusCode::UNAUTHORIZED, &json!(401)));

    // an address alone: no geocoder here, and the answer says so
    let (st, body) = report(
        &fx,
        "json",
        "service_code=01-01&address_string=1%20Main%20St",
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.contains("geocoder") && body.contains("lat"), "{body}");
    // a body that is not a form
    let (st, _, body) = raw(
        &fx.app,
        "POST",
        "/open311/v2/requests.json",
        &[],
        Some(("application/json", "{}".into())),
    )
    .await;
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_in_the_body() {
    let fx = fixture().await;
    let (x, y) = inside(&fx).await;
    let code = a_service(&fx).await;
    // api_key in the body, as GeoReport clients send it: a dispatcher's report is the hotline's
    let (st, body) = report(
        &fx,
        "json",
        &format!(
            "service_code={code}&lat={y}&long={x}&api_key={}",
            fx.dispatcher
        ),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, c) = call(
        &fx.app,
        "GET",
        &format!("/incidents/{id}"),
        Some(&fx.dispatcher),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&c).unwrap()["source"],
        "hotline"
    );
    let (st, body) = report(
        &fx,
        "json",
        &format!("service_code={code}&lat={y}&long={x}&api_key=wg_forged"),
    )
    .await;
    assert_eq!(st, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_jurisdiction() {
    let fx = fixture().await;
    let (x, y) = inside(&fx).await;
    let code = a_service(&fx).await;
    // a configured jurisdiction: another is refused, ours and none are served
    let app = fx
        .with_config(Config {
            open311: Open311Config {
                jurisdiction_id: Some("manhattan.example".into()),
                contact: "12345 热线".into(),
                key_service: "https://grid.example/keys".into(),
            },
            ..Config::default()
        })
        .await;
    let get = |uri: &'static str| {
        let app = app.clone();
        async move {
            let (st, _, b) = raw(&app, "GET", uri, &[], None).await;
            (st, serde_json::from_slice::<Value>(&b).unwrap())
        }
    };
    let (st, e) = get("/open311/v2/services.json?jurisdiction_id=brooklyn.example").await;
    assert_eq!(st, 404);
    assert!(
        e[0]["description"]
            .as_str()
            .unwrap()
            .contains("manhattan.example")
    );
    assert_eq!(
        get("/open311/v2/services.json?jurisdiction_id=manhattan.example")
            .await
            .0,
        200
    );
    assert_eq!(get("/open311/v2/services.json").await.0, 200);
    assert_eq!(
        get("/open311/v2/requests.json?jurisdiction_id=brooklyn.example")
            .await
            .0,
        404
    );
    let (_, d) = get("/open311/v2/discovery.json").await;
    assert_eq!(
        (d["contact"].as_str(), d["key_service"].as_str()),
        (Some("12345 热线"), Some("https://grid.example/keys"))
    );
    let (st, _, _) = raw(
        &app,
        "POST",
        "/open311/v2/requests.json",
        &[],
        Some((
            "application/x-www-form-urlencoded",
            format!("jurisdiction_id=brooklyn.example&service_code={code}&lat={y}&long={x}"),
        )),
    )
    .await;
    assert_eq!(st, 404);
}
