//! The one layer schema: every field of every feature layer with its column, its type and who
//! may see it. Both SQL dialects, the tile attributes, TileJSON, the OGC API responses and the
//! case API's redaction are made from these tables, so that a field's visibility is written
//! once. A field a caller may not see is removed on the server ([`redact`]); it never leaves
//! for that caller.
//!
//! ```
//! use wangge::model::schema::{Access, Layer, visible};
//! let public: Vec<&str> = visible(Layer::Grids, Access::PUBLIC).map(|f| f.name).collect();
//! assert!(public.contains(&"code") && !public.contains(&"households"));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Layers of features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Streets,
    Communities,
    Grids,
    Buildings,
    Incidents,
}

impl Layer {
    pub const ALL: [Layer; 5] = [
        Layer::Streets,
        Layer::Communities,
        Layer::Grids,
        Layer::Buildings,
        Layer::Incidents,
    ];
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Layer::Streets => "streets",
            Layer::Communities => "communities",
            Layer::Grids => "grids",
            Layer::Buildings => "buildings",
            Layer::Incidents => "incidents",
        }
    }
    /// Properties that equality filters may name.
    #[must_use]
    pub fn filterable(self) -> &'static [&'static str] {
        match self {
            Layer::Streets => &["code"],
            Layer::Communities => &["code", "name", "street"],
            Layer::Grids => &["code", "name", "community", "street", "band"],
            Layer::Buildings => &["id", "community"],
            Layer::Incidents => &["id", "category", "state", "grid", "community", "street"],
        }
    }
    /// The database table.
    #[must_use]
    pub fn table(self) -> &'static str {
        self.name()
    }
}

impl std::str::FromStr for Layer {
    type Err = String;
    fn from_str(s: &str) -> Result<Layer, String> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown layer {s:?}: expected streets, communities, grids, buildings or incidents"
                )
            })
    }
}

/// Who may see a field. Each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Visibility {
    /// Everyone, without a token: boundaries, names, codes, grid workers' public contacts.
    Public,
    /// Any token (viewer and above): household counts, weights and their sources.
    Viewer,
    /// Those who read incidents: administrators, dispatchers, grid workers (in their scope).
    Staff,
    /// Personal data: reporters' contact details; administrators and dispatchers.
    Personal,
}

/// What a caller may see, from its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// Household counts and weights.
    pub households: bool,
    /// Incidents (their layer and tiles).
    pub incidents: bool,
    /// Personal data (reporters).
    pub personal: bool,
}

impl Access {
    /// The public: no token.
    pub const PUBLIC: Access = Access {
        households: false,
        incidents: false,
        personal: false,
    };

    /// True when a field of this visibility may be sent to the caller.
    #[must_use]
    pub fn sees(self, v: Visibility) -> bool {
        match v {
            Visibility::Public => true,
            Visibility::Viewer => self.households,
            Visibility::Staff => self.incidents,
            Visibility::Personal => self.personal,
        }
    }
}

/// A field's type, as TileJSON and OpenAPI name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Integer,
    Real,
    /// An instant, written as RFC 3339 text.
    Time,
}

impl FieldType {
    /// TileJSON `vector_layers` type.
    #[must_use]
    pub fn tilejson(self) -> &'static str {
        match self {
            FieldType::Integer | FieldType::Real => "Number",
            FieldType::Text | FieldType::Time => "String",
        }
    }
    /// OpenAPI / JSON Schema type.
    #[must_use]
    pub fn json_schema(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Real => "number",
            FieldType::Text | FieldType::Time => "string",
        }
    }
}

/// One field of a layer.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Property name in every response.
    pub name: &'static str,
    /// SQL expression over the layer's table aliased `t` (the same in both dialects; a
    /// [`FieldType::Time`] is formatted by each backend).
    pub sql: &'static str,
    pub kind: FieldType,
    pub visibility: Visibility,
}

const fn field(
    name: &'static str,
    sql: &'static str,
    kind: FieldType,
    visibility: Visibility,
) -> Field {
    Field {
        name,
        sql,
        kind,
        visibility,
    }
}

use FieldType::{Integer, Real, Text, Time};
use Visibility::{Personal, Public, Staff, Viewer};

const WORKER_NAME: &str = "(SELECT name FROM grid_workers w WHERE w.grid_code = t.code)";
const WORKER_PHONE: &str = "(SELECT phone FROM grid_workers w WHERE w.grid_code = t.code)";

const STREETS: &[Field] = &[
    field("code", "t.code", Text, Public),
    field("communities", "t.communities", Integer, Public),
    field("households", "t.households", Integer, Viewer),
];
const COMMUNITIES: &[Field] = &[
    field("code", "t.code", Text, Public),
    field("name", "t.name", Text, Public),
    field("street", "t.street", Text, Public),
    field("households", "t.households", Integer, Viewer),
    field("buildings", "t.buildings", Integer, Public),
];
const GRIDS: &[Field] = &[
    field("code", "t.code", Text, Public),
    field("name", "t.name", Text, Public),
    field("community", "t.community", Text, Public),
    field("street", "t.street", Text, Public),
    field("households", "t.households", Integer, Viewer),
    field("buildings", "t.buildings", Integer, Public),
    field("weight", "t.weight", Real, Viewer),
    field("band", "t.band", Text, Public),
    field("plan", "t.plan_id", Integer, Public),
    field("valid_from", "t.valid_from", Time, Public),
    field("valid_to", "t.valid_to", Time, Public),
    field("worker_name", WORKER_NAME, Text, Public),
    field("worker_phone", WORKER_PHONE, Text, Public),
];
const BUILDINGS: &[Field] = &[
    field("id", "t.building_id", Text, Public),
    field("community", "t.community", Text, Public),
    field("households", "t.households", Integer, Viewer),
    field("household_source", "t.household_source", Text, Viewer),
];
const INCIDENTS: &[Field] = &[
    field("id", "t.incident_id", Text, Staff),
    field("category", "t.category", Text, Staff),
    field("state", "t.state", Text, Staff),
    field("level", "t.level", Text, Staff),
    field("source", "t.source", Text, Staff),
    field("description", "t.description", Text, Staff),
    field("grid", "t.grid", Text, Staff),
    field("community", "t.community", Text, Staff),
    field("street", "t.street", Text, Staff),
    field("reported_at", "t.reported_at", Time, Staff),
    field("due_at", "t.due_at", Time, Staff),
    field("closed_at", "t.closed_at", Time, Staff),
    field("unit", "t.unit", Text, Staff),
    field("reporter", "t.reporter", Text, Personal),
];

/// Every field of a layer, in response order; the first is the feature id.
#[must_use]
pub fn fields(layer: Layer) -> &'static [Field] {
    match layer {
        Layer::Streets => STREETS,
        Layer::Communities => COMMUNITIES,
        Layer::Grids => GRIDS,
        Layer::Buildings => BUILDINGS,
        Layer::Incidents => INCIDENTS,
    }
}

/// A field of a layer by name.
#[must_use]
pub fn field_of(layer: Layer, name: &str) -> Option<&'static Field> {
    fields(layer).iter().find(|f| f.name == name)
}

/// The fields a caller may see.
pub fn visible(layer: Layer, access: Access) -> impl Iterator<Item = &'static Field> {
    fields(layer)
        .iter()
        .filter(move |f| access.sees(f.visibility))
}

/// Remove from a layer's properties every field the caller may not see, and any property the
/// schema does not know (so a field added to a query but not here never leaks).
pub fn redact(layer: Layer, props: &mut Map<String, Value>, access: Access) {
    props.retain(|k, _| field_of(layer, k).is_some_and(|f| access.sees(f.visibility)));
}

/// The attributes of each layer in vector tiles, in tile order (those a caller may not see are
/// left out by [`tile_fields`]).
const TILE_FIELDS: [(Layer, &[&str]); 4] = [
    (
        Layer::Communities,
        &["code", "name", "street", "households", "buildings"],
    ),
    (
        Layer::Grids,
        &[
            "code",
            "name",
            "community",
            "band",
            "buildings",
            "households",
            "worker_name",
        ],
    ),
    (Layer::Buildings, &["id", "community", "households"]),
    (
        Layer::Incidents,
        &["id", "category", "state", "grid", "due_at"],
    ),
];

/// The tile attributes of a layer the caller may see, in tile order.
#[must_use]
pub fn tile_fields(layer: Layer, access: Access) -> Vec<&'static Field> {
    TILE_FIELDS
        .iter()
        .find(|(l, _)| *l == layer)
        .map(|(_, names)| {
            names
                .iter()
                .filter_map(|n| field_of(layer, n))
                .filter(|f| access.sees(f.visibility))
                .collect()
        })
        .unwrap_or_default()
}

/// Keys of a case (the case API's JSON of [`crate::incident::Case`]) with who may see them.
/// Redaction keeps only the keys listed here that the caller may see.
const CASE_KEYS: &[(&str, Visibility)] = &[
    ("id", Staff),
    ("category", Staff),
    ("description", Staff),
    ("lon", Staff),
    ("lat", Staff),
    ("source", Staff),
    ("reporter", Personal),
    ("media", Staff),
    ("reported_at", Staff),
    ("grid", Staff),
    ("community", Staff),
    ("street", Staff),
    ("state", Staff),
    ("level", Staff),
    ("unit", Staff),
    ("due_at", Staff),
    ("closed_at", Staff),
    ("escalations", Staff),
    ("returns", Staff),
    ("score", Staff),
    ("duplicate_of", Staff),
    ("history", Staff),
];

/// Fields of an Open311 service request with who may see them. Whoever may not see a field
/// gets it as null (the reporter, an extension, is left out); the place, when `lat`/`long` are
/// not seen, is sent coarse (`service::open311`).
const OPEN311_KEYS: &[(&str, Visibility)] = &[
    ("service_request_id", Public),
    ("status", Public),
    ("status_notes", Public),
    ("service_name", Public),
    ("service_code", Public),
    ("description", Staff),
    ("agency_responsible", Public),
    ("service_notice", Public),
    ("requested_datetime", Public),
    ("updated_datetime", Public),
    ("expected_datetime", Public),
    ("address", Public),
    ("address_id", Public),
    ("zipcode", Public),
    ("lat", Staff),
    ("long", Staff),
    ("media_url", Staff),
    ("reporter", Personal),
];

/// Blank in an Open311 request what the caller may not see: fields of GeoReport v2 become
/// null, the reporter and keys the schema does not know are removed.
pub fn redact_open311(request: &mut Map<String, Value>, access: Access) {
    request.retain(|k, _| {
        OPEN311_KEYS
            .iter()
            .any(|(key, v)| key == k && (access.sees(*v) || *k != "reporter"))
    });
    for (k, v) in request.iter_mut() {
        if OPEN311_KEYS
            .iter()
            .any(|(key, vis)| key == k && !access.sees(*vis))
        {
            *v = Value::Null;
        }
    }
}

/// Who may see a key of a case; `None` for a key the schema does not know.
#[must_use]
pub fn case_key(key: &str) -> Option<Visibility> {
    CASE_KEYS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Remove from a case's JSON every key the caller may not see, and every key the schema does
/// not know.
pub fn redact_case(case: &mut Map<String, Value>, access: Access) {
    case.retain(|k, _| case_key(k).is_some_and(|v| access.sees(v)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [(&str, Access); 5] = [
        ("public", Access::PUBLIC),
        (
            "viewer",
            Access {
                households: true,
                incidents: false,
                personal: false,
            },
        ),
        (
            "grid_worker",
            Access {
                households: true,
                incidents: true,
                personal: false,
            },
        ),
        (
            "dispatcher",
            Access {
                households: true,
                incidents: true,
                personal: true,
            },
        ),
        (
            "admin",
            Access {
                households: true,
                incidents: true,
                personal: true,
            },
        ),
    ];

    /// Every field × role: what may be seen, written out as the privacy rule says it.
    #[test]
    fn every_field_for_every_role() {
        for layer in Layer::ALL {
            for f in fields(layer) {
                for (role, a) in ROLES {
                    let want = match f.name {
                        "reporter" => matches!(role, "dispatcher" | "admin"),
                        _ if layer == Layer::Incidents => {
                            matches!(role, "grid_worker" | "dispatcher" | "admin")
                        }
                        "households" | "weight" | "household_source" => role != "public",
                        _ => true,
                    };
                    assert_eq!(
                        a.sees(f.visibility),
                        want,
                        "{}.{} for {role}",
                        layer.name(),
                        f.name
                    );
                }
            }
        }
    }

    #[test]
    fn redaction_drops_hidden_and_unknown_fields() {
        let mut p = Map::new();
        for k in ["code", "households", "weight", "secret"] {
            p.insert(k.into(), Value::Null);
        }
        redact(Layer::Grids, &mut p, Access::PUBLIC);
        assert_eq!(p.keys().collect::<Vec<_>>(), ["code"]);
    }

    #[test]
    fn every_key_of_a_case_is_in_the_schema() {
        let cat = crate::incident::Catalogue::default_catalogue();
        let mut c = crate::incident::Case::report(
            "20261130-1".into(),
            cat.get("01-01").unwrap(),
            "井盖".into(),
            111.3,
            30.7,
            crate::incident::Source::Patrol,
            Some("李雷 13800000000".into()),
            0,
        );
        c.media.push("https://example.org/a.jpg".into());
        let v = serde_json::to_value(&c).unwrap();
        for k in v.as_object().unwrap().keys() {
            assert!(case_key(k).is_some(), "case key {k} has no visibility");
        }
        let mut o = v.as_object().unwrap().clone();
        redact_case(&mut o, ROLES[2].1);
        assert!(!o.contains_key("reporter") && o.contains_key("history"));
    }

    #[test]
    fn tile_fields_follow_visibility() {
        let names = |l, a| tile_fields(l, a).iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(
            names(Layer::Communities, Access::PUBLIC),
            ["code", "name", "street", "buildings"]
        );
        assert!(names(Layer::Grids, ROLES[1].1).contains(&"households"));
        assert!(names(Layer::Incidents, Access::PUBLIC).is_empty());
        assert!(names(Layer::Streets, ROLES[4].1).is_empty());
    }
}
