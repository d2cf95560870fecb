//! A minimal, safe wrapper over the PROJ C API (libproj ≥ 6): create a CRS-to-CRS pipeline with
//! traditional GIS axis order (longitude/easting first) and transform points.
//!
//! Written against the stable C API instead of the `proj` crate because the crate tracks the
//! newest PROJ release while Debian 12 ships PROJ 9.1; the handful of calls used here have been
//! stable since PROJ 6. The library is opened at the first pipeline, not linked (see
//! [`crate::syslib`]).

use geo::Coord;
use std::ffi::{CStr, CString, c_char, c_int, c_void};

#[repr(C)]
#[derive(Clone, Copy)]
struct PjCoord {
    v: [f64; 4],
}

crate::syslib::c_functions! {
    /// The PROJ functions used, from the library opened at the first pipeline.
    struct Proj {
        proj_context_create: fn() -> *mut c_void;
        proj_context_destroy: fn(*mut c_void) -> *mut c_void;
        proj_create_crs_to_crs: fn(*mut c_void, *const c_char, *const c_char, *mut c_void) -> *mut c_void;
        proj_normalize_for_visualization: fn(*mut c_void, *const c_void) -> *mut c_void;
        proj_destroy: fn(*mut c_void) -> *mut c_void;
        proj_trans: fn(*mut c_void, c_int, PjCoord) -> PjCoord;
        proj_context_errno: fn(*mut c_void) -> c_int;
        proj_context_errno_string: fn(*mut c_void, c_int) -> *const c_char;
    }
}

/// PROJ, opened once (`libproj.so`, or the runtime names of PROJ 6 to 9: sonames 15 to 25;
/// `WANGGE_PROJ_LIBRARY` names another).
fn proj() -> Result<&'static Proj, String> {
    static PROJ: std::sync::OnceLock<Result<Proj, String>> = std::sync::OnceLock::new();
    PROJ.get_or_init(|| {
        let lib = crate::syslib::Library::open(
            "WANGGE_PROJ_LIBRARY",
            &crate::syslib::candidates("libproj", 15..=30),
        )
        .map_err(|e| {
            format!("the PROJ library is needed for this coordinate system and was not found: {e}; install it (Debian: apt-get install libproj25)")
        })?;
        Proj::load(&lib)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A PROJ transformation from one CRS to another, axis order lon/lat (x/y).
/// Not `Sync`: PROJ objects are used by one thread at a time.
pub struct Pipeline {
    api: &'static Proj,
    ctx: *mut c_void,
    pj: *mut c_void,
}

// SAFETY: the context and PJ are owned exclusively by this value and PROJ allows moving them
// between threads as long as they are not used concurrently (no `Sync`).
unsafe impl Send for Pipeline {}

fn last_error(api: &Proj, ctx: *mut c_void) -> String {
    // SAFETY: ctx is a live context; PROJ returns a static or context-owned C string.
    unsafe {
        let e = (api.proj_context_errno)(ctx);
        let s = (api.proj_context_errno_string)(ctx, e);
        if s.is_null() {
            format!("PROJ error {e}")
        } else {
            CStr::from_ptr(s).to_string_lossy().into_owned()
        }
    }
}

impl Pipeline {
    /// Build a pipeline, e.g. `Pipeline::new("EPSG:4547", "EPSG:4326")`.
    ///
    /// # Errors
    /// PROJ's message when either CRS is unknown or no transformation exists.
    pub fn new(from: &str, to: &str) -> Result<Self, String> {
        let a = CString::new(from).map_err(|e| e.to_string())?;
        let b = CString::new(to).map_err(|e| e.to_string())?;
        let api = proj()?;
        // SAFETY: plain C calls with valid NUL-terminated strings; every pointer is checked
        // for null and owned objects are destroyed exactly once (here or in Drop).
        unsafe {
            let ctx = (api.proj_context_create)();
            if ctx.is_null() {
                return Err("cannot create a PROJ context".into());
            }
            let raw =
                (api.proj_create_crs_to_crs)(ctx, a.as_ptr(), b.as_ptr(), std::ptr::null_mut());
            if raw.is_null() {
                let m = last_error(api, ctx);
                (api.proj_context_destroy)(ctx);
                return Err(m);
            }
            let pj = (api.proj_normalize_for_visualization)(ctx, raw);
            (api.proj_destroy)(raw);
            if pj.is_null() {
                let m = last_error(api, ctx);
                (api.proj_context_destroy)(ctx);
                return Err(m);
            }
            Ok(Pipeline { api, ctx, pj })
        }
    }

    /// Transform one coordinate; `None` when PROJ cannot.
    #[must_use]
    pub fn apply(&self, c: Coord) -> Option<Coord> {
        // SAFETY: self.pj is live; PJ_FWD = 1.
        let out = unsafe {
            (self.api.proj_trans)(
                self.pj,
                1,
                PjCoord {
                    v: [c.x, c.y, 0.0, f64::INFINITY],
                },
            )
        };
        let (x, y) = (out.v[0], out.v[1]);
        (x.is_finite() && y.is_finite()).then_some(Coord { x, y })
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // SAFETY: both pointers were created in `new` and are destroyed once.
        unsafe {
            (self.api.proj_destroy)(self.pj);
            (self.api.proj_context_destroy)(self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_50n_round_trip() {
        let f = Pipeline::new("EPSG:4326", "EPSG:32650").unwrap();
        let p = f.apply(Coord { x: 116.4, y: 39.9 }).unwrap();
        assert!(
            (p.x - 449_000.0).abs() < 2_000.0 && (p.y - 4_417_000.0).abs() < 5_000.0,
            "{p:?}"
        );
        let b = Pipeline::new("EPSG:32650", "EPSG:4326").unwrap();
        let q = b.apply(p).unwrap();
        assert!((q.x - 116.4).abs() < 1e-9 && (q.y - 39.9).abs() < 1e-9);
    }

    #[test]
    fn unknown_code_is_an_error() {
        assert!(Pipeline::new("EPSG:4326", "EPSG:999999").is_err());
    }
}
