//! The QGIS style of each wangge layer.

use super::*;

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
pub(crate) const GRID_COLOURS: [&str; 10] = [
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
