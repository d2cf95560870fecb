//! OGC API – Features Part 2 (coordinate reference systems by reference): the CRSs offered,
//! `crs` and `bbox-crs`, axis order as the EPSG definition says, and the `Content-Crs` header.

use super::error::ApiError;
use crate::geom::crs::{Crs, Transformer};
use crate::store::Feature;
use geo::{Coord, MapCoords};

/// OGC CRS84: longitude, latitude on WGS84 — the default and the storage CRS.
pub const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

const EPSG_URI: &str = "http://www.opengis.net/def/crs/EPSG/0/";

/// The EPSG codes offered besides CRS84: WGS84 and CGCS2000 geographic, Web Mercator, and
/// the CGCS2000 Gauss-Krüger zones (6° zones 13–23 with and without zone prefix, 3° zones
/// 25–45 with and without).
fn offered(code: u32) -> bool {
    matches!(code, 4326 | 4490 | 3857 | 4491..=4554)
}

/// An output or input CRS of the features API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCrs {
    /// CRS84 (lon, lat).
    Crs84,
    /// An EPSG CRS from the offered list.
    Epsg(u32),
}

impl ApiCrs {
    /// Its URI, as in `Content-Crs` and the collections' `crs` lists.
    #[must_use]
    pub fn uri(self) -> String {
        match self {
            ApiCrs::Crs84 => CRS84.to_string(),
            ApiCrs::Epsg(c) => format!("{EPSG_URI}{c}"),
        }
    }

    /// True when the first axis is northing or latitude (EPSG:4326, 4490 and the Gauss-Krüger
    /// zones, whose EPSG definitions put X north), so coordinates are written (y, x).
    #[must_use]
    pub fn north_first(self) -> bool {
        matches!(self, ApiCrs::Epsg(c) if c != 3857)
    }

    fn crs(self) -> Crs {
        match self {
            ApiCrs::Crs84 | ApiCrs::Epsg(4326) => Crs::Wgs84,
            ApiCrs::Epsg(c) => Crs::Epsg(c),
        }
    }
}

/// Every CRS offered, CRS84 first (for the collections' `crs` lists).
#[must_use]
pub fn all_uris() -> Vec<String> {
    let mut v = vec![CRS84.to_string()];
    v.extend(
        [4326, 4490, 3857]
            .into_iter()
            .chain(4491..=4554)
            .map(|c| ApiCrs::Epsg(c).uri()),
    );
    v
}

/// Parse a CRS URI (`http://www.opengis.net/def/crs/EPSG/0/4490`, a `[EPSG:4490]` safe CURIE or
/// `EPSG:4490`) of the offered list; `param` names the query parameter in errors.
///
/// # Errors
/// 400 naming the parameter and what is offered.
pub fn parse(param: &str, v: &str) -> Result<ApiCrs, ApiError> {
    let t = v.trim().trim_start_matches('[').trim_end_matches(']');
    let lower = t.to_ascii_lowercase();
    if lower == CRS84.to_ascii_lowercase() || lower == "ogc:crs84" || lower == "crs84" {
        return Ok(ApiCrs::Crs84);
    }
    let code = lower
        .strip_prefix(&EPSG_URI.to_ascii_lowercase())
        .or_else(|| lower.strip_prefix("epsg:"))
        .and_then(|c| c.parse::<u32>().ok());
    match code {
        Some(c) if offered(c) => Ok(ApiCrs::Epsg(c)),
        _ => Err(ApiError::bad_request(format!(
            "{param}={v:?}: expected {CRS84} or {EPSG_URI}<code> with code 4326, 4490 (CGCS2000), \
             3857 or a CGCS2000 Gauss-Krüger zone 4491–4554"
        ))),
    }
}

fn transformer(to: ApiCrs) -> Result<Transformer, ApiError> {
    Transformer::new(Crs::Wgs84, to.crs())
        .map_err(|e| ApiError::internal(format!("CRS {}: {e}", to.uri())))
}

/// Write the features' geometries in `to` (from WGS84), in the CRS's axis order.
///
/// # Errors
/// A coordinate PROJ cannot transform (far outside a Gauss-Krüger zone): 400 naming it.
pub fn transform_features(features: &mut [Feature], to: ApiCrs) -> Result<(), ApiError> {
    if to == ApiCrs::Crs84 {
        return Ok(());
    }
    let tf = transformer(to)?;
    let north_first = to.north_first();
    for f in features {
        if let Some(g) = f.geometry.take() {
            let out = g.try_map_coords(|c| {
                let w = tf.apply(c)?;
                Ok::<_, crate::geom::crs::CrsError>(if north_first {
                    Coord { x: w.y, y: w.x }
                } else {
                    w
                })
            });
            f.geometry = Some(out.map_err(|e| {
                ApiError::bad_request(format!(
                    "crs={}: feature {} cannot be written in it: {e}",
                    to.uri(),
                    f.id
                ))
            })?);
        }
    }
    Ok(())
}

/// A `bbox` given in `from` as CRS84 bounds: the corners and 16 points along each edge
/// transformed, so a projected box's curved edges are enclosed.
///
/// # Errors
/// A box PROJ cannot transform: 400 naming `bbox-crs`.
pub fn bbox_to_crs84(b: [f64; 4], from: ApiCrs) -> Result<[f64; 4], ApiError> {
    if from == ApiCrs::Crs84 {
        return Ok(b);
    }
    // In the CRS's axis order: (minA, minB, maxA, maxB).
    let (x0, y0, x1, y1) = if from.north_first() {
        (b[1], b[0], b[3], b[2])
    } else {
        (b[0], b[1], b[2], b[3])
    };
    let tf = Transformer::new(from.crs(), Crs::Wgs84)
        .map_err(|e| ApiError::internal(format!("CRS {}: {e}", from.uri())))?;
    let mut out = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for i in 0..=16 {
        let t = f64::from(i) / 16.0;
        for c in [
            Coord {
                x: x0 + (x1 - x0) * t,
                y: y0,
            },
            Coord {
                x: x0 + (x1 - x0) * t,
                y: y1,
            },
            Coord {
                x: x0,
                y: y0 + (y1 - y0) * t,
            },
            Coord {
                x: x1,
                y: y0 + (y1 - y0) * t,
            },
        ] {
            let w = tf.apply(c).map_err(|e| {
                ApiError::bad_request(format!(
                    "bbox-crs={}: the bbox cannot be transformed: {e}",
                    from.uri()
                ))
            })?;
            out = [
                out[0].min(w.x),
                out[1].min(w.y),
                out[2].max(w.x),
                out[3].max(w.y),
            ];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse() {
        assert_eq!(parse("crs", CRS84).unwrap(), ApiCrs::Crs84);
        assert_eq!(
            parse("crs", "http://www.opengis.net/def/crs/EPSG/0/4490").unwrap(),
            ApiCrs::Epsg(4490)
        );
        assert_eq!(parse("crs", "[EPSG:3857]").unwrap(), ApiCrs::Epsg(3857));
        assert!(parse("crs", "EPSG:2000").is_err());
        assert_eq!(all_uris().len(), 1 + 3 + 64);
        assert!(ApiCrs::Epsg(4546).north_first() && !ApiCrs::Epsg(3857).north_first());
    }
}
