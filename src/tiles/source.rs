//! Tile sources behind one trait: the live store (this crate's encoder fed by a bbox read, or
//! PostGIS `ST_AsMVT`), an in-memory source loaded once, and PMTiles archives — each answers
//! `tile(request)` or passes. [`Cached`] wraps a source with a bounded cache that follows the
//! service's change generation; [`Chain`] asks sources in order. The HTTP handler only turns a
//! request into a [`TileRequest`] and a [`Tile`] into a response.

use super::archive::{PmTiles, etag_of, gunzip};
use super::{Access, Encoder, MemorySource, TileSet};
use crate::store::{Store, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What a tile request asks for (also the cache key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileRequest {
    pub set: TileSet,
    pub z: u8,
    pub x: u32,
    pub y: u32,
    /// Grids of this plan instead of those in force.
    pub plan: Option<i64>,
    /// Grids in force at this time (Unix seconds) instead of now.
    pub at: Option<i64>,
    /// Coordinates shifted into GCJ-02 (to lie over an AMap or Tencent basemap).
    pub gcj02: bool,
    pub access: Access,
}

impl TileRequest {
    /// The plain request: live grids in force now, WGS84.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.plan.is_none() && self.at.is_none() && !self.gcj02
    }
}

/// A tile: its plain and gzip bytes (either made from the other on first demand, then kept),
/// a strong ETag of the plain bytes, and where it came from.
#[derive(Clone)]
pub struct Tile {
    raw: Arc<OnceLock<Bytes>>,
    gz: Arc<OnceLock<Bytes>>,
    /// [`etag_of`] the plain bytes (empty for an empty tile).
    pub etag: Arc<str>,
    /// No feature in it (served as 204).
    pub empty: bool,
    /// `live` or `archive` (the `X-Tile-Source` header).
    pub source: &'static str,
}

impl Tile {
    /// A tile from its plain MVT bytes.
    #[must_use]
    pub fn plain(bytes: Vec<u8>, source: &'static str) -> Tile {
        let etag = etag_of(&bytes);
        let empty = bytes.is_empty();
        let raw = Arc::new(OnceLock::new());
        let _ = raw.set(Bytes::from(bytes));
        Tile {
            raw,
            gz: Arc::new(OnceLock::new()),
            etag,
            empty,
            source,
        }
    }

    /// A tile stored gzipped, with its ETag worked out before.
    #[must_use]
    pub fn stored_gzip(stored: &[u8], etag: Arc<str>, source: &'static str) -> Tile {
        let gz = Arc::new(OnceLock::new());
        let _ = gz.set(Bytes::copy_from_slice(stored));
        Tile {
            raw: Arc::new(OnceLock::new()),
            gz,
            etag,
            empty: false,
            source,
        }
    }

    /// No tile there.
    #[must_use]
    pub fn empty(source: &'static str) -> Tile {
        Tile {
            raw: Arc::new(OnceLock::new()),
            gz: Arc::new(OnceLock::new()),
            etag: Arc::from(""),
            empty: true,
            source,
        }
    }

    /// The plain MVT bytes.
    ///
    /// # Errors
    /// A stored tile that is not valid gzip.
    pub fn raw(&self) -> Result<Bytes, StoreError> {
        if let Some(b) = self.raw.get() {
            return Ok(b.clone());
        }
        let stored = self.gz.get().cloned().unwrap_or_default();
        let b = Bytes::from(gunzip(&stored)?);
        let _ = self.raw.set(b.clone());
        Ok(b)
    }

    /// The gzip bytes, compressed at `level` the first time they are asked for.
    ///
    /// # Errors
    /// Compression failed (out of memory).
    pub fn gzip(&self, level: u32) -> Result<Bytes, StoreError> {
        if let Some(b) = self.gz.get() {
            return Ok(b.clone());
        }
        let plain = self.raw()?;
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(plain.len() / 2 + 64),
            flate2::Compression::new(level),
        );
        let io = |e: std::io::Error| StoreError::Backend(format!("gzip: {e}"));
        enc.write_all(&plain).map_err(io)?;
        let b = Bytes::from(enc.finish().map_err(io)?);
        let _ = self.gz.set(b.clone());
        Ok(b)
    }
}

/// Something that renders or holds tiles.
#[async_trait]
pub trait TileSource: Send + Sync {
    /// The tile, or `None` when this source does not answer this request (the next one may).
    ///
    /// # Errors
    /// The store or the archive failed.
    async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError>;
}

/// Tiles rendered from the store on each request.
pub struct StoreSource {
    pub store: Arc<dyn Store>,
    pub encoder: Encoder,
    /// Roads in memory (WGS84, GCJ-02), read again after [`ROADS_TTL`].
    pub roads: Mutex<[Option<Loaded>; 2]>,
}

/// Roads read at a time, indexed in memory.
pub type Loaded = (Instant, Arc<MemorySource>);

/// How long roads read from the store are used before reading them again.
pub const ROADS_TTL: Duration = Duration::from_secs(60);

impl StoreSource {
    #[must_use]
    pub fn new(store: Arc<dyn Store>, encoder: Encoder) -> Self {
        StoreSource {
            store,
            encoder,
            roads: Mutex::new([None, None]),
        }
    }

    async fn roads(&self, gcj02: bool) -> Result<Arc<MemorySource>, StoreError> {
        let i = usize::from(gcj02);
        if let Ok(g) = self.roads.lock()
            && let Some((t, m)) = &g[i]
            && t.elapsed() < ROADS_TTL
        {
            return Ok(m.clone());
        }
        let m = Arc::new(
            MemorySource::load_shifted(
                self.store.as_ref(),
                TileSet::Roads,
                None,
                Access::PUBLIC,
                gcj02,
            )
            .await?,
        );
        if let Ok(mut g) = self.roads.lock() {
            g[i] = Some((Instant::now(), m.clone()));
        }
        Ok(m)
    }
}

#[async_trait]
impl TileSource for StoreSource {
    async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError> {
        if r.set == TileSet::Roads {
            let m = self.roads(r.gcj02).await?;
            return Ok(Some(Tile::plain(m.render(r.z, r.x, r.y), "live")));
        }
        let bytes = super::render_request(self.store.as_ref(), r, self.encoder).await?;
        Ok(Some(Tile::plain(bytes, "live")))
    }
}

/// A PMTiles archive answers public requests for its layer set within its zooms, in its
/// stored gzip.
#[async_trait]
impl TileSource for PmTiles {
    async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError> {
        let covers = self.set.as_deref() == Some(r.set.name())
            && r.is_plain()
            && r.access == Access::PUBLIC
            && (self.minzoom..=self.maxzoom).contains(&r.z);
        if !covers {
            return Ok(None);
        }
        Ok(Some(match self.get_stored(r.z, r.x, r.y)? {
            Some((stored, etag)) => Tile::stored_gzip(stored, etag, "archive"),
            None => Tile::empty("archive"),
        }))
    }
}

/// An in-memory source answers the set, plan and access it was loaded for.
#[async_trait]
impl TileSource for MemorySource {
    async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError> {
        if (r.set, r.plan, r.access) != self.loaded_for() || r.at.is_some() || r.gcj02 {
            return Ok(None);
        }
        Ok(Some(Tile::plain(self.render(r.z, r.x, r.y), "live")))
    }
}

/// Sources asked in order; the first that answers wins.
#[derive(Default)]
pub struct Chain {
    sources: Vec<Arc<dyn TileSource>>,
}

impl Chain {
    /// Ask `s` after the sources already there.
    #[must_use]
    pub fn then(mut self, s: Arc<dyn TileSource>) -> Chain {
        self.sources.push(s);
        self
    }
    /// Ask `s` before the sources already there.
    pub fn put_first(&mut self, s: Arc<dyn TileSource>) {
        self.sources.insert(0, s);
    }
}

#[async_trait]
impl TileSource for Chain {
    async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError> {
        for s in &self.sources {
            if let Some(t) = s.tile(r).await? {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

/// Largest number of tiles a cache keeps unless the settings say otherwise.
pub const CACHE_TILES: usize = 20_000;
/// How long a cached tile is trusted without a change seen by this process (plans published by
/// another process, e.g. the command line).
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// A bounded cache around a source. Entries are valid while the shared change generation has
/// not moved and for at most [`CACHE_TTL`]; a full cache is emptied (tiles are cheap to redo).
pub struct Cached<S> {
    inner: S,
    limit: usize,
    generation: Arc<AtomicU64>,
    /// Moved by incident changes only: the incident and heat layers follow it (and `all`),
    /// so a resident's report does not throw away the grid tiles.
    cases: Arc<AtomicU64>,
    entries: Mutex<HashMap<TileRequest, (u64, Instant, Tile)>>,
}

impl<S: TileSource> Cached<S> {
    /// Cache up to `limit` tiles of `inner` (0: no cache).
    pub fn new(inner: S, limit: usize, generation: Arc<AtomicU64>, cases: Arc<AtomicU64>) -> Self {
        Cached {
            inner,
            limit,
            generation,
            cases,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The generation a layer set's tiles follow.
    fn generation_of(&self, set: TileSet) -> u64 {
        let plans = self.generation.load(Ordering::SeqCst);
        let cases = self.cases.load(Ordering::SeqCst);
        match set {
            TileSet::Incidents | TileSet::Heat => cases,
            // both only grow: their sum moves when either does
            TileSet::All => plans.wrapping_add(cases),
            _ => plans,
        }
    }
}

#[async_trait]
impl<S: TileSource> TileSource for Cached<S> {
    async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError> {
        let generation = self.generation_of(r.set);
        let hit = self.entries.lock().ok().and_then(|c| {
            c.get(r)
                .filter(|(g, built, _)| *g == generation && built.elapsed() < CACHE_TTL)
                .map(|(_, _, t)| t.clone())
        });
        if let Some(t) = hit {
            return Ok(Some(t));
        }
        let Some(t) = self.inner.tile(r).await? else {
            return Ok(None);
        };
        if self.limit > 0
            && let Ok(mut c) = self.entries.lock()
        {
            if c.len() >= self.limit {
                c.clear();
            }
            c.insert(*r, (generation, Instant::now(), t.clone()));
        }
        Ok(Some(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts renders; answers only grids.
    struct Counting(AtomicUsize);

    #[async_trait]
    impl TileSource for Counting {
        async fn tile(&self, r: &TileRequest) -> Result<Option<Tile>, StoreError> {
            if r.set != TileSet::Grids {
                return Ok(None);
            }
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Tile::plain(vec![n as u8 + 1], "live")))
        }
    }

    fn req(set: TileSet, x: u32) -> TileRequest {
        TileRequest {
            set,
            z: 14,
            x,
            y: 1,
            plan: None,
            at: None,
            gcj02: false,
            access: Access::PUBLIC,
        }
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_cache_follows_the_generation_and_its_limit() {
        block_on(async {
            let generation = Arc::new(AtomicU64::new(0));
            let cases = Arc::new(AtomicU64::new(0));
            let c = Cached::new(
                Counting(AtomicUsize::new(0)),
                2,
                generation.clone(),
                cases.clone(),
            );
            let a = c.tile(&req(TileSet::Grids, 1)).await.unwrap().unwrap();
            let again = c.tile(&req(TileSet::Grids, 1)).await.unwrap().unwrap();
            assert_eq!(a.raw().unwrap(), again.raw().unwrap(), "a hit");
            assert_eq!(c.inner.0.load(Ordering::SeqCst), 1);
            // a new incident keeps the grid tiles
            cases.fetch_add(1, Ordering::SeqCst);
            c.tile(&req(TileSet::Grids, 1)).await.unwrap();
            assert_eq!(c.inner.0.load(Ordering::SeqCst), 1, "still a hit");
            generation.fetch_add(1, Ordering::SeqCst);
            let b = c.tile(&req(TileSet::Grids, 1)).await.unwrap().unwrap();
            assert_ne!(a.raw().unwrap(), b.raw().unwrap(), "a change renders again");
            // a full cache is emptied, not grown
            c.tile(&req(TileSet::Grids, 2)).await.unwrap();
            c.tile(&req(TileSet::Grids, 3)).await.unwrap();
            assert!(c.entries.lock().unwrap().len() <= 2);
            // a request the source passes on is not cached
            assert!(c.tile(&req(TileSet::Heat, 1)).await.unwrap().is_none());
        });
    }

    #[test]
    fn a_chain_asks_in_order_and_tiles_convert_both_ways() {
        block_on(async {
            let first: Arc<dyn TileSource> = Arc::new(Counting(AtomicUsize::new(10)));
            let chain = Chain::default().then(first);
            assert!(chain.tile(&req(TileSet::Heat, 1)).await.unwrap().is_none());
            let t = chain.tile(&req(TileSet::Grids, 1)).await.unwrap().unwrap();
            let gz = t.gzip(6).unwrap();
            let back = Tile::stored_gzip(&gz, t.etag.clone(), "archive");
            assert_eq!(back.raw().unwrap(), t.raw().unwrap());
            assert!(Tile::empty("live").empty);
        });
    }
}
