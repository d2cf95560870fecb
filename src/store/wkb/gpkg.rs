//! WKB reading, and GeoPackage geometry blobs (header, envelope, WKB).

use super::*;

/// Read ISO WKB (2D, Z and M ordinates are dropped).
///
/// # Errors
/// A truncated or unknown blob.
pub fn from_wkb(b: &[u8]) -> Result<Geometry, WkbError> {
    Reader { b, i: 0 }.geometry(0)
}

/// The GeoPackage blob of a geometry in `srs_id` (envelope [minx, maxx, miny, maxy] except for points).
#[must_use]
pub fn to_gpkg(g: &Geometry, srs_id: i32) -> Vec<u8> {
    let env = if matches!(g, Geometry::Point(_)) {
        None
    } else {
        g.bounding_rect()
    };
    let mut out = Vec::with_capacity(40 + wkb::writer::geometry_wkb_size(g));
    out.extend_from_slice(b"GP");
    out.push(0);
    let empty = env.is_none() && !matches!(g, Geometry::Point(_));
    let flags = 1u8 | if env.is_some() { 1 << 1 } else { 0 } | if empty { 1 << 4 } else { 0 };
    out.push(flags);
    out.extend_from_slice(&srs_id.to_le_bytes());
    if let Some(r) = env {
        put_f64(&mut out, r.min().x);
        put_f64(&mut out, r.max().x);
        put_f64(&mut out, r.min().y);
        put_f64(&mut out, r.max().y);
    }
    write_geometry(&mut out, g);
    out
}

/// The header of a GeoPackage blob: (envelope if stored, empty flag, offset of the WKB).
pub(crate) fn gpkg_header(b: &[u8]) -> Result<(Option<[f64; 4]>, bool, usize), WkbError> {
    if b.len() < 8 || &b[0..2] != b"GP" {
        return Err(WkbError("not a GeoPackage geometry (no GP magic)".into()));
    }
    let flags = b[3];
    if flags & (1 << 5) != 0 {
        return Err(WkbError(
            "extended GeoPackage geometry types are not read".into(),
        ));
    }
    let le = flags & 1 == 1;
    let n = match (flags >> 1) & 7 {
        0 => 0,
        1 => 4,
        2 | 3 => 6,
        4 => 8,
        o => return Err(WkbError(format!("envelope indicator {o}"))),
    };
    let start = 8 + n * 8;
    if b.len() < start {
        return Err(WkbError("truncated GeoPackage header".into()));
    }
    let env = if n >= 4 {
        let mut r = Reader { b, i: 8 };
        Some([r.f64(le)?, r.f64(le)?, r.f64(le)?, r.f64(le)?])
    } else {
        None
    };
    Ok((env, flags & (1 << 4) != 0, start))
}

/// Read a GeoPackage blob.
///
/// # Errors
/// Not a GeoPackage blob, or bad WKB inside.
pub fn from_gpkg(b: &[u8]) -> Result<Geometry, WkbError> {
    let (_, _, start) = gpkg_header(b)?;
    from_wkb(&b[start..])
}

/// The envelope [minx, maxx, miny, maxy] of a GeoPackage blob (from the header, or computed),
/// None when empty.
///
/// # Errors
/// Not a GeoPackage blob.
pub fn gpkg_envelope(b: &[u8]) -> Result<Option<[f64; 4]>, WkbError> {
    let (env, empty, start) = gpkg_header(b)?;
    if empty {
        return Ok(None);
    }
    if env.is_some() {
        return Ok(env);
    }
    let g = from_wkb(&b[start..])?;
    Ok(g.bounding_rect()
        .map(|r| [r.min().x, r.max().x, r.min().y, r.max().y]))
}
