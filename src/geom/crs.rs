//! Coordinate reference systems: WGS84, the Chinese web-map offset systems GCJ-02 and BD-09
//! (which PROJ does not cover), and any EPSG code through PROJ (feature `proj`).
//!
//! Everything converts through WGS84 longitude/latitude in degrees.
//!
//! # Accuracy
//! GCJ-02 and BD-09 forward transforms are the published formulas; inverses are solved by
//! fixed-point iteration to 1e-10° (≈ 0.01 mm), far inside the 0.5 m the spec asks for.
//! GCJ-02 applies only inside mainland China's bounding box, as the map services do.

use geo::Coord;
use std::fmt;

/// Errors from parsing or applying a CRS.
#[derive(Debug, thiserror::Error)]
pub enum CrsError {
    #[error(
        "unknown CRS {0:?}: expected wgs84, gcj02, bd09, or EPSG:<code> (e.g. EPSG:4490, EPSG:4547, EPSG:32650)"
    )]
    Unknown(String),
    #[error("CRS {0} needs PROJ, but this build has no `proj` feature")]
    NoProj(String),
    #[error("PROJ cannot use {crs}: {message}")]
    Proj { crs: String, message: String },
    #[error("coordinate ({x}, {y}) cannot be transformed from {from} to {to}")]
    Transform {
        x: f64,
        y: f64,
        from: String,
        to: String,
    },
}

/// A coordinate reference system the tool understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Crs {
    /// WGS84 longitude/latitude (EPSG:4326).
    Wgs84,
    /// GCJ-02, the offset system of AMap/Tencent/Google China maps.
    Gcj02,
    /// BD-09, Baidu's offset of GCJ-02.
    Bd09,
    /// Any other EPSG code, through PROJ. EPSG:4490 (CGCS2000 geographic) and projected
    /// CGCS2000 Gauss-Krüger zones (EPSG:4491–4554) and UTM zones are typical.
    Epsg(u32),
}

impl fmt::Display for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crs::Wgs84 => f.write_str("EPSG:4326"),
            Crs::Gcj02 => f.write_str("GCJ-02"),
            Crs::Bd09 => f.write_str("BD-09"),
            Crs::Epsg(c) => write!(f, "EPSG:{c}"),
        }
    }
}

impl std::str::FromStr for Crs {
    type Err = CrsError;
    fn from_str(s: &str) -> Result<Self, CrsError> {
        let t = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        match t.as_str() {
            "wgs84" | "epsg:4326" | "4326" | "crs84" | "ogc:crs84" => return Ok(Crs::Wgs84),
            "gcj02" | "gcj" | "mars" => return Ok(Crs::Gcj02),
            "bd09" | "bd09ll" | "baidu" => return Ok(Crs::Bd09),
            _ => {}
        }
        let code = t.strip_prefix("epsg:").unwrap_or(&t);
        match code.parse::<u32>() {
            Ok(4326) => Ok(Crs::Wgs84),
            Ok(c) if (1024..=999_999).contains(&c) => Ok(Crs::Epsg(c)),
            _ => Err(CrsError::Unknown(s.to_string())),
        }
    }
}

impl Crs {
    /// True for CRSs whose coordinates are degrees of longitude and latitude.
    #[must_use]
    pub fn is_geographic(self) -> bool {
        match self {
            Crs::Wgs84 | Crs::Gcj02 | Crs::Bd09 => true,
            Crs::Epsg(c) => c == 4490 || c == 4326 || c == 4214 || c == 4610,
        }
    }
}

/// A prepared transform between two CRSs (PROJ objects are created once).
pub struct Transformer {
    from: Crs,
    to: Crs,
    to_wgs: Option<ProjStep>,
    from_wgs: Option<ProjStep>,
}

#[cfg(feature = "proj")]
type ProjStep = crate::geom::proj_ffi::Pipeline;
#[cfg(not(feature = "proj"))]
type ProjStep = std::convert::Infallible;

fn proj_step(crs: Crs, to_wgs: bool) -> Result<Option<ProjStep>, CrsError> {
    match crs {
        Crs::Epsg(c) => {
            #[cfg(feature = "proj")]
            {
                let (a, b) = if to_wgs {
                    (format!("EPSG:{c}"), "EPSG:4326".to_string())
                } else {
                    ("EPSG:4326".to_string(), format!("EPSG:{c}"))
                };
                crate::geom::proj_ffi::Pipeline::new(&a, &b)
                    .map(Some)
                    .map_err(|message| CrsError::Proj {
                        crs: format!("EPSG:{c}"),
                        message,
                    })
            }
            #[cfg(not(feature = "proj"))]
            {
                let _ = to_wgs;
                Err(CrsError::NoProj(format!("EPSG:{c}")))
            }
        }
        _ => Ok(None),
    }
}

impl Transformer {
    /// Prepare a transform from `from` to `to`.
    ///
    /// # Errors
    /// When an EPSG code is unknown to PROJ or PROJ is not built in.
    pub fn new(from: Crs, to: Crs) -> Result<Self, CrsError> {
        let to_wgs = if from == to {
            None
        } else {
            proj_step(from, true)?
        };
        let from_wgs = if from == to {
            None
        } else {
            proj_step(to, false)?
        };
        Ok(Transformer {
            from,
            to,
            to_wgs,
            from_wgs,
        })
    }

    /// The CRS coordinates are transformed from.
    #[must_use]
    pub fn from(&self) -> Crs {
        self.from
    }

    /// The CRS coordinates are transformed to.
    #[must_use]
    pub fn to(&self) -> Crs {
        self.to
    }

    /// True when the transform does nothing.
    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.from == self.to
    }

    /// Transform one coordinate.
    ///
    /// # Errors
    /// When PROJ cannot transform it (outside the CRS's area of use, NaN …).
    pub fn apply(&self, c: Coord) -> Result<Coord, CrsError> {
        if self.from == self.to {
            return Ok(c);
        }
        let err = || CrsError::Transform {
            x: c.x,
            y: c.y,
            from: self.from.to_string(),
            to: self.to.to_string(),
        };
        let w = match self.from {
            Crs::Wgs84 => c,
            Crs::Gcj02 => gcj02_to_wgs84(c),
            Crs::Bd09 => gcj02_to_wgs84(bd09_to_gcj02(c)),
            Crs::Epsg(_) => apply_step(self.to_wgs.as_ref(), c).ok_or_else(err)?,
        };
        let out = match self.to {
            Crs::Wgs84 => w,
            Crs::Gcj02 => wgs84_to_gcj02(w),
            Crs::Bd09 => gcj02_to_bd09(wgs84_to_gcj02(w)),
            Crs::Epsg(_) => apply_step(self.from_wgs.as_ref(), w).ok_or_else(err)?,
        };
        if out.x.is_finite() && out.y.is_finite() {
            Ok(out)
        } else {
            Err(err())
        }
    }
}

#[cfg(feature = "proj")]
fn apply_step(step: Option<&ProjStep>, c: Coord) -> Option<Coord> {
    step?.apply(c)
}
#[cfg(not(feature = "proj"))]
fn apply_step(step: Option<&ProjStep>, _c: Coord) -> Option<Coord> {
    match step {
        Some(never) => match *never {},
        None => None,
    }
}

const GCJ_A: f64 = 6_378_245.0;
const GCJ_EE: f64 = 0.006_693_421_622_965_943;
const PI: f64 = std::f64::consts::PI;
const X_PI: f64 = PI * 3000.0 / 180.0;

/// True inside the rough bounding box of mainland China where GCJ-02 offsets apply.
#[must_use]
pub fn in_china(c: Coord) -> bool {
    (72.004..=137.8347).contains(&c.x) && (0.8293..=55.8271).contains(&c.y)
}

fn d_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn d_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS84 → GCJ-02 (identity outside China).
#[must_use]
pub fn wgs84_to_gcj02(c: Coord) -> Coord {
    if !in_china(c) {
        return c;
    }
    let (lon, lat) = (c.x, c.y);
    let mut dlat = d_lat(lon - 105.0, lat - 35.0);
    let mut dlon = d_lon(lon - 105.0, lat - 35.0);
    let rad = lat / 180.0 * PI;
    let magic = 1.0 - GCJ_EE * rad.sin() * rad.sin();
    let sq = magic.sqrt();
    dlat = (dlat * 180.0) / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sq) * PI);
    dlon = (dlon * 180.0) / (GCJ_A / sq * rad.cos() * PI);
    Coord {
        x: lon + dlon,
        y: lat + dlat,
    }
}

/// GCJ-02 → WGS84 by fixed-point iteration of the forward transform.
#[must_use]
pub fn gcj02_to_wgs84(g: Coord) -> Coord {
    if !in_china(g) {
        return g;
    }
    let mut w = g;
    for _ in 0..30 {
        let f = wgs84_to_gcj02(w);
        let (dx, dy) = (f.x - g.x, f.y - g.y);
        w = Coord {
            x: w.x - dx,
            y: w.y - dy,
        };
        if dx.abs() < 1e-11 && dy.abs() < 1e-11 {
            break;
        }
    }
    w
}

/// GCJ-02 → BD-09.
#[must_use]
pub fn gcj02_to_bd09(g: Coord) -> Coord {
    let (x, y) = (g.x, g.y);
    let z = (x * x + y * y).sqrt() + 0.000_02 * (y * X_PI).sin();
    let t = y.atan2(x) + 0.000_003 * (x * X_PI).cos();
    Coord {
        x: z * t.cos() + 0.0065,
        y: z * t.sin() + 0.006,
    }
}

/// BD-09 → GCJ-02: closed-form estimate refined by iterating the forward transform.
#[must_use]
pub fn bd09_to_gcj02(b: Coord) -> Coord {
    let (x, y) = (b.x - 0.0065, b.y - 0.006);
    let z = (x * x + y * y).sqrt() - 0.000_02 * (y * X_PI).sin();
    let t = y.atan2(x) - 0.000_003 * (x * X_PI).cos();
    let mut g = Coord {
        x: z * t.cos(),
        y: z * t.sin(),
    };
    for _ in 0..20 {
        let f = gcj02_to_bd09(g);
        let (dx, dy) = (f.x - b.x, f.y - b.y);
        g = Coord {
            x: g.x - dx,
            y: g.y - dy,
        };
        if dx.abs() < 1e-11 && dy.abs() < 1e-11 {
            break;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metres(a: Coord, b: Coord) -> f64 {
        let f = crate::geom::frame::LocalFrame::new(a.x, a.y);
        let (p, q) = (f.fwd(a), f.fwd(b));
        ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt()
    }

    #[test]
    fn gcj_offset_in_beijing_is_a_few_hundred_metres_and_inverts() {
        let w = Coord {
            x: 116.391_349,
            y: 39.907_375,
        };
        let g = wgs84_to_gcj02(w);
        let d = metres(w, g);
        assert!((100.0..800.0).contains(&d), "offset {d} m");
        assert!(metres(gcj02_to_wgs84(g), w) < 0.001);
    }

    #[test]
    fn bd09_round_trip_is_sub_millimetre() {
        for &(x, y) in &[
            (116.4, 39.9),
            (121.47, 31.23),
            (113.26, 23.13),
            (87.6, 43.8),
        ] {
            let w = Coord { x, y };
            let b = gcj02_to_bd09(wgs84_to_gcj02(w));
            assert!(metres(w, b) > 100.0);
            let back = gcj02_to_wgs84(bd09_to_gcj02(b));
            assert!(metres(back, w) < 0.001, "{x},{y}");
        }
    }

    #[test]
    fn outside_china_gcj_is_identity() {
        let w = Coord {
            x: -73.98,
            y: 40.75,
        };
        assert_eq!(wgs84_to_gcj02(w), w);
    }

    #[test]
    fn parse_names() {
        assert_eq!("GCJ-02".parse::<Crs>().unwrap(), Crs::Gcj02);
        assert_eq!("bd09".parse::<Crs>().unwrap(), Crs::Bd09);
        assert_eq!("EPSG:4490".parse::<Crs>().unwrap(), Crs::Epsg(4490));
        assert_eq!("epsg:4326".parse::<Crs>().unwrap(), Crs::Wgs84);
        assert!("mercator-ish".parse::<Crs>().is_err());
    }
}
