//! Pre-generated tile archives: PMTiles v3 (one file: header, gzip-compressed directories in
//! Hilbert tile-id order, gzip-compressed MVT tiles, identical tiles stored once) and MBTiles 1.3
//! (SQLite, TMS rows). Children of empty tiles are skipped.

use super::{Access, MemorySource, TileSet, fields};
use crate::store::{Result, Store, StoreError};
use rayon::prelude::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// The PMTiles tile id of z/x/y: tiles of lower zooms first, then the Hilbert index.
#[must_use]
pub fn tile_id(z: u8, x: u32, y: u32) -> u64 {
    if z == 0 {
        return 0;
    }
    let mut acc: u64 = ((1u64 << (2 * u32::from(z))) - 1) / 3;
    let (mut x, mut y) = (u64::from(x), u64::from(y));
    let mut s: u64 = 1 << (z - 1);
    while s > 0 {
        let (rx, ry) = (s & x, s & y);
        acc += ((3 * rx) ^ ry) * s;
        if ry == 0 {
            if rx != 0 {
                x = s.wrapping_sub(1).wrapping_sub(x);
                y = s.wrapping_sub(1).wrapping_sub(y);
            }
            std::mem::swap(&mut x, &mut y);
        }
        s >>= 1;
    }
    acc
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn gzip(b: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(b)
        .and_then(|()| e.finish())
        .map_err(|e| StoreError::Backend(format!("gzip: {e}")))
}

/// (tile id, offset, length) entries → a gzip-compressed PMTiles directory of tiles.
fn directory(entries: &[(u64, u64, u64)]) -> Result<Vec<u8>> {
    directory_with_runs(entries, 1)
}

/// A gzip-compressed PMTiles directory whose entries all have run length `run` (1: one tile
/// each; 0: in a root directory, a leaf directory).
fn directory_with_runs(entries: &[(u64, u64, u64)], run: u64) -> Result<Vec<u8>> {
    let mut b = Vec::new();
    varint(&mut b, entries.len() as u64);
    let mut last = 0;
    for e in entries {
        varint(&mut b, e.0 - last);
        last = e.0;
    }
    for _ in entries {
        varint(&mut b, run);
    }
    for e in entries {
        varint(&mut b, e.2);
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 && e.1 == entries[i - 1].1 + entries[i - 1].2 {
            varint(&mut b, 0);
        } else {
            varint(&mut b, e.1 + 1);
        }
    }
    gzip(&b)
}

/// What `write` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchiveReport {
    pub tiles: u64,
    pub unique: u64,
    pub empty_skipped: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Tiles of z covering a lon/lat box.
fn tiles_over(b: [f64; 4], z: u8) -> Vec<(u32, u32)> {
    let (x0, y0) = super::mvt::tile_of(b[0], b[3], z);
    let (x1, y1) = super::mvt::tile_of(b[2], b[1], z);
    let mut v = Vec::new();
    for x in x0..=x1 {
        for y in y0..=y1 {
            v.push((x, y));
        }
    }
    v
}

/// Every non-empty tile of `set` in the zooms over `bbox` (children of empty tiles skipped),
/// each level rendered in parallel and walked in order; and how many empty tiles were skipped.
fn render_pyramid(
    src: &MemorySource,
    set: TileSet,
    (minzoom, maxzoom): (u8, u8),
    bbox: [f64; 4],
    progress: &(dyn Fn(u64) + Sync),
) -> (Vec<Tile>, u64) {
    let mut tiles: Vec<Tile> = Vec::new();
    let mut empty = 0u64;
    let mut frontier: Vec<(u32, u32)> = tiles_over(bbox, minzoom);
    for z in minzoom..=maxzoom {
        let mut next = Vec::new();
        // render a zoom level in parallel, then walk it in order
        let rendered: Vec<Vec<u8>> = frontier
            .par_iter()
            .map(|&(x, y)| src.render(z, x, y))
            .collect();
        progress(rendered.len() as u64);
        for ((x, y), t) in frontier.into_iter().zip(rendered) {
            if t.is_empty() && z >= set.minzoom() {
                empty += 1;
                continue;
            }
            if !t.is_empty() {
                tiles.push((z, x, y, t));
            }
            if z < maxzoom {
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    next.push((2 * x + dx, 2 * y + dy));
                }
            }
        }
        frontier = next;
    }
    (tiles, empty)
}

/// Render every non-empty tile of `set` in zooms [minzoom, maxzoom] over `bbox` (children of
/// empty tiles skipped) and write a PMTiles v3 or MBTiles archive atomically.
///
/// # Errors
/// A store error or an unwritable output.
#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
pub async fn write(
    store: &dyn Store,
    set: TileSet,
    minzoom: u8,
    maxzoom: u8,
    bbox: [f64; 4],
    out: &Path,
    mbtiles: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ArchiveReport> {
    let t0 = std::time::Instant::now();
    let access = Access::PUBLIC;
    let src = MemorySource::load(store, set, None, access).await?;
    let (mut tiles, empty) = render_pyramid(&src, set, (minzoom, maxzoom), bbox, progress);
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let name = out
        .file_stem()
        .map_or("wangge".into(), |s| s.to_string_lossy().into_owned());
    let sets = super::expand(set, access);
    let vector_layers: Vec<serde_json::Value> = sets
        .iter()
        .map(|t| json!({ "id": t.name(), "fields": fields(*t, access), "minzoom": t.minzoom().max(minzoom), "maxzoom": maxzoom }))
        .collect();
    let center = [(bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0];
    let result = if mbtiles {
        write_mbtiles(
            &tmp,
            &name,
            &tiles,
            minzoom,
            maxzoom,
            bbox,
            center,
            &vector_layers,
        )
    } else {
        write_pmtiles(
            &tmp,
            &name,
            set.name(),
            &mut tiles,
            minzoom,
            maxzoom,
            bbox,
            center,
            &vector_layers,
        )
    };
    let unique = match result {
        Ok(u) => u,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out)
        .map_err(|e| StoreError::Backend(format!("{}: cannot write: {e}", out.display())))?;
    Ok(ArchiveReport {
        tiles: tiles.len() as u64,
        unique,
        empty_skipped: empty,
        bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// A rendered tile: zoom, column, row, MVT bytes.
type Tile = (u8, u32, u32, Vec<u8>);

/// A directory entry: tile id, offset, length.
type Entry = (u64, u64, u64);

/// The archive's tile data (gzipped, identical tiles once), its entries (tile id, offset,
/// length) in tile-id order, and how many distinct tiles it holds.
fn tile_data(tiles: &[Tile]) -> Result<(Vec<u8>, Vec<Entry>, u64)> {
    let mut data: Vec<u8> = Vec::new();
    let mut seen: std::collections::HashMap<Vec<u8>, (u64, u64)> = std::collections::HashMap::new();
    let mut entries: Vec<(u64, u64, u64)> = Vec::with_capacity(tiles.len());
    for (z, x, y, t) in tiles.iter() {
        let gz = gzip(t)?;
        let (off, len) = match seen.get(&gz) {
            Some(v) => *v,
            None => {
                let v = (data.len() as u64, gz.len() as u64);
                data.extend_from_slice(&gz);
                seen.insert(gz, v);
                v
            }
        };
        entries.push((tile_id(*z, *x, *y), off, len));
    }
    Ok((data, entries, seen.len() as u64))
}

/// The root directory, with leaf directories when it would not fit in the first 16 KiB.
fn directories(entries: &[(u64, u64, u64)]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut root = directory(entries)?;
    let mut leaves: Vec<u8> = Vec::new();
    let mut chunk = 4096usize;
    while 127 + root.len() > 16_384 {
        leaves.clear();
        let mut root_entries = Vec::new();
        for part in entries.chunks(chunk) {
            let d = directory(part)?;
            root_entries.push((part[0].0, leaves.len() as u64, d.len() as u64));
            leaves.extend_from_slice(&d);
        }
        // in a root directory a run length of 0 marks a leaf
        root = directory_with_runs(&root_entries, 0)?;
        chunk *= 2;
    }
    Ok((root, leaves))
}

#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
fn write_pmtiles(
    path: &Path,
    name: &str,
    name_of_set: &str,
    tiles: &mut [Tile],
    minzoom: u8,
    maxzoom: u8,
    bbox: [f64; 4],
    center: [f64; 2],
    vector_layers: &[serde_json::Value],
) -> Result<u64> {
    tiles.sort_by_key(|t| tile_id(t.0, t.1, t.2));
    let (data, entries, unique) = tile_data(tiles)?;
    let (root, leaves) = directories(&entries)?;
    let meta = gzip(
        serde_json::to_vec(&json!({
            "name": name,
            "format": "pbf",
            "type": "overlay",
            "description": "wangge grids and layers (published plan)",
            "vector_layers": vector_layers,
            "generator": format!("wangge {}", env!("CARGO_PKG_VERSION")),
            "wangge_layers": name_of_set,
        }))
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .as_slice(),
    )?;
    let root_off = 127u64;
    let meta_off = root_off + root.len() as u64;
    let leaf_off = meta_off + meta.len() as u64;
    let data_off = leaf_off + leaves.len() as u64;
    let mut h = Vec::with_capacity(127);
    h.extend_from_slice(b"PMTiles");
    h.push(3);
    for v in [
        root_off,
        root.len() as u64,
        meta_off,
        meta.len() as u64,
        leaf_off,
        leaves.len() as u64,
        data_off,
        data.len() as u64,
        entries.len() as u64,
        entries.len() as u64,
        unique,
    ] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.push(1); // clustered
    h.push(2); // internal compression: gzip
    h.push(2); // tile compression: gzip
    h.push(1); // tile type: mvt
    h.push(minzoom);
    h.push(maxzoom);
    let e7 = |v: f64| ((v * 1e7).round() as i32).to_le_bytes();
    for v in [bbox[0], bbox[1], bbox[2], bbox[3]] {
        h.extend_from_slice(&e7(v));
    }
    h.push(minzoom.max(maxzoom.saturating_sub(2)));
    h.extend_from_slice(&e7(center[0]));
    h.extend_from_slice(&e7(center[1]));
    debug_assert_eq!(h.len(), 127);
    let mut f = std::fs::File::create(path)
        .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
    for part in [&h, &root, &meta, &leaves, &data] {
        f.write_all(part)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
    }
    f.sync_all()
        .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
    Ok(unique)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the inputs are distinct layers and settings; a struct would only rename them"
)]
fn write_mbtiles(
    path: &Path,
    name: &str,
    tiles: &[Tile],
    minzoom: u8,
    maxzoom: u8,
    bbox: [f64; 4],
    center: [f64; 2],
    vector_layers: &[serde_json::Value],
) -> Result<u64> {
    let be = |e: rusqlite::Error| StoreError::Backend(format!("{}: {e}", path.display()));
    let c = rusqlite::Connection::open(path).map_err(be)?;
    c.execute_batch(
        "BEGIN;
         CREATE TABLE metadata (name TEXT, value TEXT);
         CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
         CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);",
    )
    .map_err(be)?;
    let json_meta = json!({ "vector_layers": vector_layers }).to_string();
    for (k, v) in [
        ("name", name.to_string()),
        ("format", "pbf".into()),
        ("type", "overlay".into()),
        ("version", "1.3".into()),
        (
            "description",
            "wangge grids and layers (published plan)".into(),
        ),
        ("minzoom", minzoom.to_string()),
        ("maxzoom", maxzoom.to_string()),
        (
            "bounds",
            format!("{},{},{},{}", bbox[0], bbox[1], bbox[2], bbox[3]),
        ),
        (
            "center",
            format!(
                "{},{},{}",
                center[0],
                center[1],
                maxzoom.saturating_sub(2).max(minzoom)
            ),
        ),
        ("json", json_meta),
    ] {
        c.execute("INSERT INTO metadata VALUES (?1, ?2)", [k, v.as_str()])
            .map_err(be)?;
    }
    let mut st = c
        .prepare("INSERT INTO tiles VALUES (?1, ?2, ?3, ?4)")
        .map_err(be)?;
    for (z, x, y, t) in tiles {
        let tms_y = (1u32 << z) - 1 - y;
        st.execute(rusqlite::params![z, x, tms_y, gzip(t)?])
            .map_err(be)?;
    }
    drop(st);
    c.execute_batch("COMMIT").map_err(be)?;
    Ok(tiles.len() as u64)
}

/// A PMTiles v3 archive opened for serving (held in memory).
pub struct PmTiles {
    bytes: Vec<u8>,
    root: Vec<(u64, u64, u64, u64)>,
    /// ETags of tiles already served, by data offset (the archive never changes under us).
    etags: std::sync::Mutex<std::collections::HashMap<u64, std::sync::Arc<str>>>,
    /// Leaf directories already read, by offset.
    leaves: std::sync::Mutex<std::collections::HashMap<u64, std::sync::Arc<Directory>>>,
    leaf_off: u64,
    data_off: u64,
    pub minzoom: u8,
    pub maxzoom: u8,
    /// The layer set it holds (`wangge_layers` in its metadata).
    pub set: Option<String>,
}

fn read_varint(b: &[u8], i: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b
            .get(*i)
            .ok_or_else(|| StoreError::Backend("PMTiles directory is truncated".into()))?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(StoreError::Backend("PMTiles varint too long".into()));
        }
    }
}

/// The strong ETag of a tile: the first 12 bytes of the SHA-256 of its uncompressed bytes, in hex.
#[must_use]
pub fn etag_of(tile: &[u8]) -> std::sync::Arc<str> {
    use sha2::Digest;
    let d = sha2::Sha256::digest(tile);
    d.iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into()
}

/// Decompress a gzip member (tiles and directories of an archive).
///
/// # Errors
/// Corrupt data.
pub fn gunzip(b: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .map_err(|e| StoreError::Backend(format!("PMTiles: gzip: {e}")))?;
    Ok(out)
}

/// (tile id, offset, length, run length) entries of a gzip-compressed directory.
/// Directory entries: (tile id, offset, length, run length; 0 = a leaf directory).
type Directory = Vec<(u64, u64, u64, u64)>;

fn read_directory(b: &[u8]) -> Result<Directory> {
    let d = gunzip(b)?;
    let mut i = 0;
    let n = read_varint(&d, &mut i)? as usize;
    if n > d.len() {
        return Err(StoreError::Backend(
            "PMTiles directory count is too large".into(),
        ));
    }
    let mut ids = Vec::with_capacity(n);
    let mut last = 0u64;
    for _ in 0..n {
        last += read_varint(&d, &mut i)?;
        ids.push(last);
    }
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        runs.push(read_varint(&d, &mut i)?);
    }
    let mut lens = Vec::with_capacity(n);
    for _ in 0..n {
        lens.push(read_varint(&d, &mut i)?);
    }
    let mut out: Vec<(u64, u64, u64, u64)> = Vec::with_capacity(n);
    for k in 0..n {
        let v = read_varint(&d, &mut i)?;
        let off = if v == 0 && k > 0 {
            out[k - 1].1 + out[k - 1].2
        } else {
            v.saturating_sub(1)
        };
        out.push((ids[k], off, lens[k], runs[k]));
    }
    Ok(out)
}

impl PmTiles {
    /// Open an archive written by `wangge tiles` (gzip directories and tiles).
    ///
    /// # Errors
    /// Not a PMTiles v3 file, or compressions other than gzip.
    pub fn open(path: &Path) -> Result<PmTiles> {
        let bytes = std::fs::read(path)
            .map_err(|e| StoreError::Backend(format!("{}: cannot read: {e}", path.display())))?;
        let bad = |m: &str| StoreError::Backend(format!("{}: {m}", path.display()));
        if bytes.len() < 127 || &bytes[..7] != b"PMTiles" || bytes[7] != 3 {
            return Err(bad("not a PMTiles v3 archive"));
        }
        let u = |k: usize| {
            u64::from_le_bytes(bytes[8 + 8 * k..16 + 8 * k].try_into().unwrap_or([0; 8]))
        };
        let (root_off, root_len, meta_off, meta_len, leaf_off, data_off) =
            (u(0), u(1), u(2), u(3), u(4), u(6));
        if bytes[97] != 2 || bytes[98] != 2 || bytes[99] != 1 {
            return Err(bad("expected gzip directories and gzip MVT tiles"));
        }
        let slice = |o: u64, l: u64| -> Result<&[u8]> {
            bytes
                .get(o as usize..(o + l) as usize)
                .ok_or_else(|| bad("a section lies beyond the end of the file"))
        };
        let root = read_directory(slice(root_off, root_len)?)?;
        let meta: serde_json::Value =
            serde_json::from_slice(&gunzip(slice(meta_off, meta_len)?)?).unwrap_or_default();
        let (minzoom, maxzoom) = (bytes[100], bytes[101]);
        Ok(PmTiles {
            set: meta["wangge_layers"].as_str().map(str::to_string),
            root,
            leaves: std::sync::Mutex::new(std::collections::HashMap::new()),
            etags: std::sync::Mutex::new(std::collections::HashMap::new()),
            leaf_off,
            data_off,
            minzoom,
            maxzoom,
            bytes,
        })
    }

    /// The tile z/x/y, decompressed; None when the archive has no such tile.
    ///
    /// # Errors
    /// A corrupt archive.
    pub fn get(&self, z: u8, x: u32, y: u32) -> Result<Option<Vec<u8>>> {
        self.get_stored(z, x, y)?
            .map(|(b, _)| gunzip(b))
            .transpose()
    }

    /// The tile z/x/y as stored (gzip) with its ETag ([`etag_of`] the decompressed tile, worked
    /// out once per tile); None when the archive has no such tile.
    ///
    /// # Errors
    /// A corrupt archive.
    pub fn get_stored(
        &self,
        z: u8,
        x: u32,
        y: u32,
    ) -> Result<Option<(&[u8], std::sync::Arc<str>)>> {
        let id = tile_id(z, x, y);
        let mut leaf: Option<std::sync::Arc<Directory>> = None;
        for _ in 0..4 {
            let dir: &Directory = leaf.as_deref().unwrap_or(&self.root);
            let k = dir.partition_point(|e| e.0 <= id);
            if k == 0 {
                return Ok(None);
            }
            let e = dir[k - 1];
            if e.3 == 0 {
                let cached = self.leaves.lock().ok().and_then(|m| m.get(&e.1).cloned());
                let d = match cached {
                    Some(d) => d,
                    None => {
                        let o = (self.leaf_off + e.1) as usize;
                        let b = self.bytes.get(o..o + e.2 as usize).ok_or_else(|| {
                            StoreError::Backend("PMTiles leaf beyond the end".into())
                        })?;
                        let d = std::sync::Arc::new(read_directory(b)?);
                        if let Ok(mut m) = self.leaves.lock() {
                            m.insert(e.1, d.clone());
                        }
                        d
                    }
                };
                leaf = Some(d);
                continue;
            }
            if id >= e.0 + e.3 {
                return Ok(None);
            }
            let o = (self.data_off + e.1) as usize;
            let b = self
                .bytes
                .get(o..o + e.2 as usize)
                .ok_or_else(|| StoreError::Backend("PMTiles tile beyond the end".into()))?;
            let known = self.etags.lock().ok().and_then(|m| m.get(&e.1).cloned());
            let etag = match known {
                Some(t) => t,
                None => {
                    let t = etag_of(&gunzip(b)?);
                    if let Ok(mut m) = self.etags.lock() {
                        m.insert(e.1, t.clone());
                    }
                    t
                }
            };
            return Ok(Some((b, etag)));
        }
        Err(StoreError::Backend(
            "PMTiles directories nest too deep".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::tile_id;

    #[test]
    fn tile_ids_follow_the_spec() {
        // values from the PMTiles v3 specification's examples
        assert_eq!(tile_id(0, 0, 0), 0);
        assert_eq!(tile_id(1, 0, 0), 1);
        assert_eq!(tile_id(1, 0, 1), 2);
        assert_eq!(tile_id(1, 1, 1), 3);
        assert_eq!(tile_id(1, 1, 0), 4);
        assert_eq!(tile_id(2, 0, 0), 5);
    }
}
