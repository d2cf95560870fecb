//! A local metric frame: an affine map between WGS84 degrees and metres around a centre.
//!
//! Because the map is affine, every linear construction (midpoints, centroids, segment
//! intersections) made in metres maps back to exactly the same construction in degrees, so
//! topology computed in the frame survives the round trip. Scale is exact at the centre and
//! off by about `tan(lat) * Δlat` (≈ 1.5e-4 for 1 km north or south of it at 40°), which is why
//! one frame is used per community, never for a whole city.
//!
//! # Units
//! Input in degrees (lon, lat), output in metres (east, north).

use geo::Coord;

/// WGS84 semi-major axis in metres.
pub const WGS84_A: f64 = 6_378_137.0;
/// WGS84 first eccentricity squared.
pub const WGS84_E2: f64 = 6.694_379_990_141_317e-3;

/// An affine lon/lat ↔ metre frame centred on `(lon0, lat0)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalFrame {
    lon0: f64,
    lat0: f64,
    /// metres per degree of longitude at `lat0`
    kx: f64,
    /// metres per degree of latitude at `lat0`
    ky: f64,
}

impl LocalFrame {
    /// A frame centred on `(lon0, lat0)` with the ellipsoid's scales there.
    #[must_use]
    pub fn new(lon0: f64, lat0: f64) -> Self {
        let phi = lat0.to_radians();
        let s = phi.sin();
        let w = (1.0 - WGS84_E2 * s * s).sqrt();
        let n = WGS84_A / w; // prime vertical radius
        let m = WGS84_A * (1.0 - WGS84_E2) / (w * w * w); // meridional radius
        let deg = std::f64::consts::PI / 180.0;
        LocalFrame {
            lon0,
            lat0,
            kx: n * phi.cos() * deg,
            ky: m * deg,
        }
    }

    /// Degrees → metres.
    #[inline]
    #[must_use]
    pub fn fwd(&self, c: Coord) -> Coord {
        Coord {
            x: (c.x - self.lon0) * self.kx,
            y: (c.y - self.lat0) * self.ky,
        }
    }

    /// Metres → degrees.
    #[inline]
    #[must_use]
    pub fn inv(&self, c: Coord) -> Coord {
        Coord {
            x: c.x / self.kx + self.lon0,
            y: c.y / self.ky + self.lat0,
        }
    }

    /// The centre of the frame (lon, lat).
    #[must_use]
    pub fn centre(&self) -> Coord {
        Coord {
            x: self.lon0,
            y: self.lat0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let f = LocalFrame::new(116.4, 39.9);
        let p = f.fwd(Coord { x: 116.4, y: 40.9 });
        assert!((p.y - 111_050.0).abs() < 200.0, "{}", p.y);
        let q = f.inv(p);
        assert!((q.y - 40.9).abs() < 1e-12);
    }

    #[test]
    fn longitude_scale_shrinks_with_cos_lat() {
        let f = LocalFrame::new(0.0, 60.0);
        let p = f.fwd(Coord { x: 0.001, y: 60.0 });
        assert!((p.x - 55.8).abs() < 0.2, "{}", p.x);
    }
}
