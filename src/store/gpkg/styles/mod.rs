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

mod layers;
pub use layers::*;

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
