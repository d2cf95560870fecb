//! System C libraries opened when first needed (`dlopen`), not linked.
//!
//! Linking GDAL made every process load it and its ~110 dependencies before `main`: ~50 ms of
//! dynamic linking on this kind of machine (PROJ ~10 ms more), paid by `wangge --version`, a
//! one-point `locate`, each `regrid` of GeoJSON files and every server start — none of which
//! calls either library. Now a library is opened by the first call that needs it, and a machine
//! without it fails that call with a message saying what to install, not at start.

use std::ffi::{CStr, CString, c_void};

/// An opened library; never closed, so the function pointers taken from it stay valid for the
/// life of the process.
pub(crate) struct Library {
    handle: *mut c_void,
    /// The name it was opened by (for messages).
    pub name: String,
}

// SAFETY: the handle is only passed to `dlsym`, which is thread-safe, and never closed.
unsafe impl Send for Library {}
// SAFETY: as above.
unsafe impl Sync for Library {}

impl Library {
    /// Open the library named by the environment variable `env` if it is set, else the first of
    /// `names` the dynamic loader finds.
    ///
    /// # Errors
    /// None opened: the names tried and the loader's last message.
    pub(crate) fn open(env: &str, names: &[String]) -> Result<Library, String> {
        let chosen: Vec<String> = match std::env::var(env) {
            Ok(p) if !p.trim().is_empty() => vec![p],
            _ => names.to_vec(),
        };
        let mut last = String::new();
        for n in &chosen {
            let Ok(c) = CString::new(n.as_str()) else {
                continue;
            };
            // SAFETY: a NUL-terminated name; the library's initialisers run as when linked.
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if !handle.is_null() {
                return Ok(Library {
                    handle,
                    name: n.clone(),
                });
            }
            // SAFETY: dlerror returns null or a message valid until the next dl* call here.
            let e = unsafe { libc::dlerror() };
            if !e.is_null() {
                // SAFETY: non-null, NUL-terminated.
                last = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
            }
        }
        Err(format!(
            "tried {} ({env} names another){}",
            chosen.join(", "),
            if last.is_empty() {
                String::new()
            } else {
                format!("; the loader said: {last}")
            }
        ))
    }

    /// The address of the C symbol `name`.
    ///
    /// # Errors
    /// The library has no such symbol (an older version).
    pub(crate) fn symbol(&self, name: &str) -> Result<*mut c_void, String> {
        let c = CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: a live handle and a NUL-terminated name.
        let p = unsafe { libc::dlsym(self.handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("{} has no function {name} (too old?)", self.name))
        } else {
            Ok(p)
        }
    }
}

/// `names` for the library `stem` (`libgdal`): the unversioned development link first, then the
/// runtime names of `versions`, newest first.
pub(crate) fn candidates(stem: &str, versions: std::ops::RangeInclusive<u32>) -> Vec<String> {
    let mut v = vec![format!("{stem}.so")];
    v.extend(versions.rev().map(|n| format!("{stem}.so.{n}")));
    v.push(format!("{stem}.dylib"));
    v
}

/// A table of C functions loaded from one [`Library`]: each field is named as its C function
/// and typed as in the library's header.
macro_rules! c_functions {
    ($(#[$m:meta])* $vis:vis struct $name:ident {
        $($field:ident : fn($($arg:ty),* $(,)?) $(-> $ret:ty)?;)*
    }) => {
        $(#[$m])*
        $vis struct $name {
            $(pub $field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }
        impl $name {
            /// Every function of the table from `lib`.
            fn load(lib: &$crate::syslib::Library) -> Result<Self, String> {
                Ok($name {
                    $($field: {
                        let p = lib.symbol(stringify!($field))?;
                        // SAFETY: `p` is the library's function of that name, whose C
                        // signature is the one declared in this table.
                        unsafe {
                            std::mem::transmute::<
                                *mut std::ffi::c_void,
                                unsafe extern "C" fn($($arg),*) $(-> $ret)?,
                            >(p)
                        }
                    },)*
                })
            }
        }
    };
}
pub(crate) use c_functions;

#[cfg(test)]
mod tests {
    use super::*;

    c_functions! {
        struct LibM {
            cos: fn(f64) -> f64;
        }
    }

    #[test]
    fn a_function_is_found_and_called() {
        let lib = Library::open("WANGGE_TEST_NO_SUCH_VARIABLE", &candidates("libm", 6..=6))
            .expect("libm opens");
        let m = LibM::load(&lib).expect("cos is there");
        // SAFETY: cos(double) -> double.
        assert!((unsafe { (m.cos)(0.0) } - 1.0).abs() < 1e-15);
        let missing = lib.symbol("wangge_no_such_function").unwrap_err();
        assert!(missing.contains("wangge_no_such_function"), "{missing}");
    }

    #[test]
    fn a_missing_library_names_what_was_tried() {
        let e = Library::open(
            "WANGGE_TEST_NO_SUCH_VARIABLE",
            &candidates("libwanggenone", 1..=2),
        )
        .err()
        .expect("no such library");
        assert!(
            e.contains("libwanggenone.so.2") && e.contains("WANGGE_TEST_NO_SUCH_VARIABLE"),
            "{e}"
        );
    }
}
