//! Well-known binary (ISO WKB, 2D) and the GeoPackage geometry blob around it (GeoPackage 1.3,
//! clause 2.1.3: "GP", version, flags, srs_id, envelope, WKB).

use geo::{
    BoundingRect, Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point,
    Polygon,
};

/// A WKB or GeoPackage blob that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad geometry blob: {0}")]
pub struct WkbError(pub String);

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

const LITTLE: wkb::writer::WriteOptions = wkb::writer::WriteOptions {
    endianness: wkb::Endianness::LittleEndian,
};

/// ISO WKB, little endian, 2D, written by the `wkb` crate (measured 2.3× faster than the
/// writer it replaced, same bytes: `benches/crates.rs`).
#[must_use]
pub fn to_wkb(g: &Geometry) -> Vec<u8> {
    let mut out = Vec::with_capacity(wkb::writer::geometry_wkb_size(g));
    write_geometry(&mut out, g);
    out
}

fn write_geometry(out: &mut Vec<u8>, g: &Geometry) {
    // Writing 2D coordinates into a Vec cannot fail.
    if wkb::writer::write_geometry(out, g, &LITTLE).is_err() {
        out.clear();
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WkbError> {
        if self.i + n > self.b.len() {
            return Err(WkbError(format!(
                "truncated at byte {} (needs {n} more of {})",
                self.i,
                self.b.len()
            )));
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }
    fn u32(&mut self, le: bool) -> Result<u32, WkbError> {
        let s: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| WkbError("u32".into()))?;
        Ok(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }
    fn f64(&mut self, le: bool) -> Result<f64, WkbError> {
        let s: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| WkbError("f64".into()))?;
        Ok(if le {
            f64::from_le_bytes(s)
        } else {
            f64::from_be_bytes(s)
        })
    }
    fn count(&mut self, le: bool, each: usize) -> Result<usize, WkbError> {
        let n = self.u32(le)? as usize;
        if n.saturating_mul(each) > self.b.len() - self.i {
            return Err(WkbError(format!("count {n} exceeds the blob")));
        }
        Ok(n)
    }
    fn coords(&mut self, le: bool, dims: usize) -> Result<LineString, WkbError> {
        let n = self.count(le, 8 * dims)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let x = self.f64(le)?;
            let y = self.f64(le)?;
            for _ in 2..dims {
                self.f64(le)?;
            }
            // NaN or infinite vertices have no place in a line or ring (and a ring that does
            // not close on itself, NaN ≠ NaN, would grow a point on every round trip)
            if !(x.is_finite() && y.is_finite()) {
                return Err(WkbError(format!(
                    "vertex {} of a line or ring is not finite",
                    v.len() + 1
                )));
            }
            v.push(Coord { x, y });
        }
        Ok(LineString(v))
    }
    fn polygon_body(&mut self, le: bool, dims: usize) -> Result<Polygon, WkbError> {
        let n = self.count(le, 4)?;
        let mut rings = Vec::with_capacity(n);
        for _ in 0..n {
            rings.push(self.coords(le, dims)?);
        }
        let mut it = rings.into_iter();
        let ext = it.next().unwrap_or_else(|| LineString(vec![]));
        // a hole without points holds nothing, nor does anything without an exterior (and no
        // writer writes either back)
        if ext.0.is_empty() {
            return Ok(Polygon::new(ext, vec![]));
        }
        Ok(Polygon::new(ext, it.filter(|r| !r.0.is_empty()).collect()))
    }
    fn geometry(&mut self, depth: usize) -> Result<Geometry, WkbError> {
        if depth > 4 {
            return Err(WkbError("nested too deep".into()));
        }
        let le = match self.take(1)?[0] {
            0 => false,
            1 => true,
            o => return Err(WkbError(format!("byte order {o}"))),
        };
        let t = self.u32(le)?;
        // ISO Z/M (1000s) and EWKB flags
        let (base, dims) = if t & 0x8000_0000 != 0 || t & 0x4000_0000 != 0 {
            let z = t & 0x8000_0000 != 0;
            let m = t & 0x4000_0000 != 0;
            (t & 0xff, 2 + usize::from(z) + usize::from(m))
        } else {
            let base = t % 1000;
            let dims = match t / 1000 {
                0 => 2,
                1 | 2 => 3,
                3 => 4,
                o => return Err(WkbError(format!("geometry type {}", o * 1000 + base))),
            };
            (base, dims)
        };
        Ok(match base {
            1 => {
                let x = self.f64(le)?;
                let y = self.f64(le)?;
                for _ in 2..dims {
                    self.f64(le)?;
                }
                Geometry::Point(Point::new(x, y))
            }
            2 => Geometry::LineString(self.coords(le, dims)?),
            3 => Geometry::Polygon(self.polygon_body(le, dims)?),
            4..=6 => {
                let n = self.count(le, 5)?;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(self.geometry(depth + 1)?);
                }
                match base {
                    4 => Geometry::MultiPoint(MultiPoint(
                        parts
                            .into_iter()
                            .filter_map(|g| Point::try_from(g).ok())
                            .collect(),
                    )),
                    5 => Geometry::MultiLineString(MultiLineString(
                        parts
                            .into_iter()
                            .filter_map(|g| LineString::try_from(g).ok())
                            .collect(),
                    )),
                    _ => Geometry::MultiPolygon(MultiPolygon(
                        parts
                            .into_iter()
                            .filter_map(|g| Polygon::try_from(g).ok())
                            .collect(),
                    )),
                }
            }
            o => return Err(WkbError(format!("unsupported geometry type {o}"))),
        })
    }
}

mod gpkg;
pub use gpkg::*;

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn round_trips() {
        let p: Polygon =
            polygon![(x: 1.0, y: 2.0), (x: 3.0, y: 2.0), (x: 3.0, y: 4.0), (x: 1.0, y: 2.0)];
        for g in [
            Geometry::Point(Point::new(116.4, 39.9)),
            Geometry::Polygon(p.clone()),
            Geometry::MultiPolygon(MultiPolygon(vec![p.clone(), p])),
            Geometry::LineString(LineString::from(vec![(0.0, 0.0), (1.0, 1.0)])),
        ] {
            assert_eq!(from_wkb(&to_wkb(&g)).unwrap(), g);
            let b = to_gpkg(&g, 4326);
            assert_eq!(from_gpkg(&b).unwrap(), g);
            let e = gpkg_envelope(&b).unwrap().unwrap();
            let r = g.bounding_rect().unwrap();
            assert_eq!(e, [r.min().x, r.max().x, r.min().y, r.max().y]);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(from_wkb(&[1, 3, 0, 0, 0, 255, 255, 255, 255]).is_err());
        assert!(from_gpkg(b"XX").is_err());
        assert!(from_wkb(&[]).is_err());
    }
}
