//! QGIS layer styles written into our GeoPackages (the `layer_styles` table QGIS reads and
//! applies when a layer is opened): grids coloured by band with name and code labels,
//! communities and streets outlined, buildings filled, roads with their names along them. A
//! planner opens the store or an export in QGIS and sees a map.

use rusqlite::{Connection, params};

const HEAD: &str = r#"<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"#;

/// A fill symbol (`style` solid or no) with its outline; colours as "r,g,b,a".
fn fill(
    name: &str,
    color: &str,
    alpha: f64,
    outline: &str,
    width: f64,
    style: &str,
    dash: &str,
) -> String {
    format!(
        r#"<symbol name="{name}" type="fill" alpha="{alpha}" clip_to_extent="1" force_rhr="0"><layer class="SimpleFill" pass="0" locked="0" enabled="1"><Option type="Map"><Option name="color" type="QString" value="{color}"/><Option name="style" type="QString" value="{style}"/><Option name="outline_color" type="QString" value="{outline}"/><Option name="outline_style" type="QString" value="{dash}"/><Option name="outline_width" type="QString" value="{width}"/><Option name="outline_width_unit" type="QString" value="MM"/><Option name="joinstyle" type="QString" value="round"/></Option></layer></symbol>"#
    )
}

fn line(name: &str, color: &str, width: f64) -> String {
    format!(
        r#"<symbol name="{name}" type="line" alpha="1" clip_to_extent="1" force_rhr="0"><layer class="SimpleLine" pass="0" locked="0" enabled="1"><Option type="Map"><Option name="line_color" type="QString" value="{color}"/><Option name="line_width" type="QString" value="{width}"/><Option name="line_width_unit" type="QString" value="MM"/><Option name="line_style" type="QString" value="solid"/><Option name="capstyle" type="QString" value="round"/><Option name="joinstyle" type="QString" value="round"/></Option></layer></symbol>"#
    )
}

fn marker(name: &str, color: &str) -> String {
    format!(
        r#"<symbol name="{name}" type="marker" alpha="1" clip_to_extent="1" force_rhr="0"><layer class="SimpleMarker" pass="0" locked="0" enabled="1"><Option type="Map"><Option name="name" type="QString" value="circle"/><Option name="color" type="QString" value="{color}"/><Option name="outline_color" type="QString" value="255,255,255,255"/><Option name="size" type="QString" value="2.6"/><Option name="size_unit" type="QString" value="MM"/></Option></layer></symbol>"#
    )
}

fn single(symbol: &str) -> String {
    format!(
        r#"<renderer-v2 type="singleSymbol" forceraster="0" symbollevels="0" enableorderby="0"><symbols>{symbol}</symbols></renderer-v2>"#
    )
}

/// Labels from a field or an expression; `placement` as QGIS numbers it (1 over the centroid of
/// a polygon, 2 along a line).
fn labels(expr: &str, is_expr: bool, size: f64, color: &str, placement: u8) -> String {
    let e = crate::print::svg::esc(expr);
    let ie = u8::from(is_expr);
    let layer = if placement == 2 {
        "LineGeometry"
    } else {
        "PolygonGeometry"
    };
    format!(
        r#"<labeling type="simple"><settings calloutType="simple"><text-style fieldName="{e}" isExpression="{ie}" fontFamily="Noto Sans CJK SC" fontSize="{size}" fontSizeUnit="Point" textColor="{color}" textOpacity="1" multilineAlign="1"><text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" bufferColor="255,255,255,255" bufferOpacity="1"/></text-style><placement placement="{placement}" placementFlags="10" polygonPlacementFlags="2" priority="5" dist="0" centroidInside="1" centroidWhole="0" fitInPolygonOnly="0" repeatDistance="0" layerType="{layer}"/><rendering drawLabels="1" obstacle="1" obstacleFactor="1" obstacleType="1" scaleVisibility="0" scaleMin="0" scaleMax="0" fontLimitPixelSize="0" fontMinPixelSize="0" fontMaxPixelSize="10000" limitNumLabels="0" maxNumLabels="2000" upsidedownLabels="0" displayAll="0" labelPerPart="0" mergeLines="0" minFeatureSize="0" zIndex="0"/></settings></labeling>"#
    )
}

fn qml(geometry: u8, renderer: &str, labeling: Option<String>) -> String {
    let enabled = u8::from(labeling.is_some());
    format!(
        r#"{HEAD}<qgis version="3.22.16" styleCategories="Symbology|Labeling" labelsEnabled="{enabled}">{renderer}{}<layerGeometryType>{geometry}</layerGeometryType></qgis>"#,
        labeling.unwrap_or_default()
    )
}

/// Band colours (the web map's) and their labels.
const BANDS: [(&str, &str, &str); 4] = [
    ("in", "127,191,123,255", "在区间内"),
    ("under", "242,193,78,255", "低于区间"),
    ("over", "228,87,46,255", "高于区间"),
    ("oversize", "158,111,184,255", "单栋超标"),
];

/// The QGIS style (QML) of a layer of ours, by table name; None for a table we do not style.
#[must_use]
pub fn qml_for(table: &str) -> Option<String> {
    let s = match table {
        "grids" => {
            let cats: String = BANDS
                .iter()
                .enumerate()
                .map(|(i, (v, _, l))| {
                    format!(r#"<category render="true" symbol="{i}" value="{v}" label="{l}"/>"#)
                })
                .collect();
            let syms: String = BANDS
                .iter()
                .enumerate()
                .map(|(i, (_, c, _))| {
                    fill(
                        &i.to_string(),
                        c,
                        0.55,
                        "55,71,79,255",
                        0.5,
                        "solid",
                        "solid",
                    )
                })
                .collect();
            qml(
                2,
                &format!(
                    r#"<renderer-v2 type="categorizedSymbol" attr="band" forceraster="0" symbollevels="0" enableorderby="0"><categories>{cats}</categories><symbols>{syms}</symbols></renderer-v2>"#
                ),
                Some(labels(
                    r#""name" || '\n' || "code""#,
                    true,
                    8.0,
                    "33,33,33,255",
                    1,
                )),
            )
        }
        "communities" => qml(
            2,
            &single(&fill(
                "0",
                "0,0,0,0",
                1.0,
                "183,28,28,255",
                0.9,
                "no",
                "solid",
            )),
            Some(labels("name", false, 11.0, "183,28,28,255", 1)),
        ),
        "streets" => qml(
            2,
            &single(&fill(
                "0",
                "0,0,0,0",
                1.0,
                "74,20,140,255",
                1.4,
                "no",
                "dash",
            )),
            None,
        ),
        "buildings" => qml(
            2,
            &single(&fill(
                "0",
                "214,208,196,255",
                1.0,
                "150,140,125,255",
                0.15,
                "solid",
                "solid",
            )),
            None,
        ),
        "roads" => qml(
            1,
            &single(&line("0", "168,159,140,255", 0.6)),
            Some(labels("name", false, 7.0, "78,70,54,255", 2)),
        ),
        "incidents" => qml(0, &single(&marker("0", "255,112,67,255")), None),
        _ => return None,
    };
    Some(s)
}

/// Create `layer_styles` (as QGIS does, registered as an attribute table) with the default style
/// of each of `tables` that has one.
///
/// # Errors
/// An SQLite error.
pub fn write_styles(c: &Connection, tables: &[&str]) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT,
           f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256),
           f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
           useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
           update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));
         INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description)
           VALUES ('layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles');",
    )?;
    for t in tables {
        let Some(q) = qml_for(t) else { continue };
        write_style(c, t, &q)?;
    }
    Ok(())
}

/// Write `qml` as the default style of table `t` (replacing ours; `layer_styles` must exist).
///
/// # Errors
/// An SQLite error.
pub fn write_style(c: &Connection, t: &str, q: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM layer_styles WHERE f_table_name = ?1 AND styleName = ?2",
        params![t, format!("wangge {t}")],
    )?;
    c.execute(
        "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,
           styleName, styleQML, styleSLD, useAsDefault, description, owner, ui)
         VALUES ('', '', ?1, 'geom', ?2, ?3, '', 1, ?4, 'wangge', '')",
        params![t, format!("wangge {t}"), q, format!("wangge: {t}")],
    )?;
    Ok(())
}

/// Colours of buildings by grid, cycled by the grid's place in code order.
const GRID_COLOURS: [&str; 10] = [
    "141,211,199,255",
    "253,216,155,255",
    "190,186,218,255",
    "251,128,114,255",
    "128,177,211,255",
    "253,180,98,255",
    "179,222,105,255",
    "252,205,229,255",
    "188,128,189,255",
    "204,235,197,255",
];

/// The style of an exported building layer that carries each building's `grid`: one colour per
/// grid (in code order), grey for buildings in no grid.
#[must_use]
pub fn buildings_by_grid(codes: &[&str]) -> String {
    let mut cats = String::new();
    let mut syms = String::new();
    for (i, code) in codes.iter().enumerate() {
        let v = crate::print::svg::esc(code);
        cats.push_str(&format!(
            r#"<category render="true" symbol="{i}" value="{v}" label="{v}"/>"#
        ));
        syms.push_str(&fill(
            &i.to_string(),
            GRID_COLOURS[i % GRID_COLOURS.len()],
            1.0,
            "110,110,110,255",
            0.15,
            "solid",
            "solid",
        ));
    }
    let k = codes.len();
    cats.push_str(&format!(
        r#"<category render="true" symbol="{k}" value="" label="（无网格）"/>"#
    ));
    syms.push_str(&fill(
        &k.to_string(),
        "214,208,196,255",
        1.0,
        "150,140,125,255",
        0.15,
        "solid",
        "solid",
    ));
    qml(
        2,
        &format!(
            r#"<renderer-v2 type="categorizedSymbol" attr="grid" forceraster="0" symbollevels="0" enableorderby="0"><categories>{cats}</categories><symbols>{syms}</symbols></renderer-v2>"#
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_has_a_well_formed_style() {
        for t in [
            "grids",
            "communities",
            "streets",
            "buildings",
            "roads",
            "incidents",
        ] {
            let q = qml_for(t).unwrap();
            assert!(q.starts_with("<!DOCTYPE qgis"), "{t}");
            // balanced tags (a cheap well-formedness check; the QGIS test parses them for real)
            let opens = q.matches("<symbol ").count();
            assert_eq!(opens, q.matches("</symbol>").count(), "{t}");
        }
        assert!(qml_for("grids").unwrap().contains(r#"attr="band""#));
        assert_eq!(qml_for("plans"), None);
    }
}
