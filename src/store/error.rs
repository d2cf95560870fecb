//! Store errors: one enum for callers, with each backend's own error kept as its source
//! (martin's pattern), so a driver error is not flattened into a string.

use std::sync::Arc;

/// Errors of the GeoPackage store's driver.
#[derive(Debug, thiserror::Error)]
pub enum GpkgError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Errors of the PostGIS store's driver.
#[derive(Debug, thiserror::Error)]
pub enum PostgisError {
    #[error("PostgreSQL: {}", pg_message(.0))]
    Db(#[from] tokio_postgres::Error),
}

/// A PostgreSQL error as the server said it (message and detail), else the client's words.
#[must_use]
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}{}",
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

/// Store errors. Each names what was wrong; none leaves a partial write behind.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// A uniqueness or state rule was broken (duplicate code, plan already published, stale version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The data breaks a rule (unknown community, a grid outside its community).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The store was written by a newer wangge.
    #[error("{0}")]
    Schema(String),
    /// The file exists but is not a GeoPackage (or not a wangge one).
    #[error("{0}")]
    NotGeoPackage(String),
    /// The database server cannot be reached, or lacks PostGIS.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's version (ETag) is out of date.
    #[error("stale: {0}")]
    Stale(String),
    /// Something else went wrong in the store (a corrupt blob or archive, a pool that closed).
    #[error("store: {0}")]
    Backend(String),
    /// The GeoPackage driver failed.
    #[error("store: {0}")]
    Gpkg(#[source] Arc<GpkgError>),
    /// The PostgreSQL driver failed.
    #[error("store: {0}")]
    Postgis(#[source] Arc<PostgisError>),
}

impl From<GpkgError> for StoreError {
    fn from(e: GpkgError) -> Self {
        StoreError::Gpkg(Arc::new(e))
    }
}

impl From<PostgisError> for StoreError {
    fn from(e: PostgisError) -> Self {
        StoreError::Postgis(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_error_keeps_its_source() {
        let e: StoreError = GpkgError::from(rusqlite::Error::QueryReturnedNoRows).into();
        let src = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(src.as_deref(), Some("SQLite: Query returned no rows"));
        assert!(matches!(e, StoreError::Gpkg(_)));
    }
}
