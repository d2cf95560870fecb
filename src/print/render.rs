//! From SVG pages to PDF (krilla through krilla-svg: text kept as text in subset, embedded Noto
//! Sans CJK; deterministic bytes) and to PNG (resvg).

use super::PrintError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where Debian (`fonts-noto-cjk`) and other systems keep Noto Sans CJK; `WANGGE_CJK_FONT_DIR`
/// is looked in first.
const FONT_DIRS: [&str; 4] = [
    "/usr/share/fonts/opentype/noto",
    "/usr/share/fonts/noto-cjk",
    "/usr/share/fonts/google-noto-cjk",
    "/usr/local/share/fonts",
];
const FONT_FILES: [&str; 2] = ["NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc"];

static FONTS: OnceLock<Result<Arc<usvg::fontdb::Database>, String>> = OnceLock::new();

fn font_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("WANGGE_CJK_FONT_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    v.extend(FONT_DIRS.iter().map(PathBuf::from));
    v
}

/// The CJK fonts, loaded once per process.
///
/// # Errors
/// [`PrintError::Font`] when Noto Sans CJK (regular and bold) is not installed.
pub fn fonts() -> Result<Arc<usvg::fontdb::Database>, PrintError> {
    FONTS
        .get_or_init(|| {
            let dirs = font_dirs();
            let mut db = usvg::fontdb::Database::new();
            for file in FONT_FILES {
                let found = dirs.iter().map(|d| d.join(file)).find(|p| p.is_file());
                let Some(p) = found else {
                    return Err(format!(
                        "{file} not found in {}: install Debian's fonts-noto-cjk (scripts/setup does) or set WANGGE_CJK_FONT_DIR",
                        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
                    ));
                };
                // read once into memory: a font file is otherwise mapped and unmapped at each use
                let data = std::fs::read(&p)
                    .map_err(|e| format!("{}: cannot read the font: {e}", p.display()))?;
                db.load_font_data(data);
            }
            db.set_sans_serif_family(super::svg::FONT);
            Ok(Arc::new(db))
        })
        .clone()
        .map_err(PrintError::Font)
}

fn tree(svg: &str) -> Result<usvg::Tree, PrintError> {
    let opt = usvg::Options {
        fontdb: fonts()?,
        font_family: super::svg::FONT.into(),
        ..usvg::Options::default()
    };
    usvg::Tree::from_str(svg, &opt).map_err(|e| PrintError::Render(format!("the drawing: {e}")))
}

/// A PDF of the pages (SVG, sizes in points), with a title.
///
/// # Errors
/// Fonts missing, or a page that does not render.
pub fn pdf(pages: &[String], title: &str) -> Result<Vec<u8>, PrintError> {
    use krilla::geom::Size;
    use krilla_svg::{SurfaceExt, SvgSettings};
    let mut doc = krilla::Document::new();
    doc.set_metadata(
        krilla::metadata::Metadata::new()
            .title(title.to_string())
            .creator("wangge".to_string())
            .language("zh-CN".to_string()),
    );
    for svg in pages {
        let t = tree(svg)?;
        let (w, h) = (t.size().width(), t.size().height());
        let settings = krilla::page::PageSettings::from_wh(w, h)
            .ok_or_else(|| PrintError::Render(format!("a page of {w} × {h} pt")))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        let size = Size::from_wh(w, h).ok_or_else(|| PrintError::Render("page size".into()))?;
        surface
            .draw_svg(&t, size, SvgSettings::default())
            .ok_or_else(|| PrintError::Render("the page does not convert to PDF".into()))?;
        surface.finish();
        page.finish();
    }
    doc.finish()
        .map_err(|e| PrintError::Render(format!("writing the PDF: {e:?}")))
}

/// A PNG of one page at `dpi`.
///
/// # Errors
/// Fonts missing, or a page that does not render.
pub fn png(svg: &str, dpi: f32) -> Result<Vec<u8>, PrintError> {
    let t = tree(svg)?;
    let k = dpi / 72.0;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "page sizes in pixels, small and positive"
    )]
    let (w, h) = (
        (t.size().width() * k).ceil() as u32,
        (t.size().height() * k).ceil() as u32,
    );
    let mut pm = resvg::tiny_skia::Pixmap::new(w, h)
        .ok_or_else(|| PrintError::Render(format!("a {w} × {h} px image")))?;
    pm.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &t,
        resvg::tiny_skia::Transform::from_scale(k, k),
        &mut pm.as_mut(),
    );
    pm.encode_png()
        .map_err(|e| PrintError::Render(format!("encoding the PNG: {e}")))
}

/// The image type of a photo (JPEG or PNG), from its first bytes.
#[must_use]
pub fn image_mime(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

/// Check a worker's photo: JPEG or PNG, at most `max` bytes, with a readable size.
///
/// # Errors
/// What is wrong with it, for the user.
pub fn check_photo(b: &[u8], max: usize, source: &Path) -> Result<(), PrintError> {
    let what = source.display();
    if b.len() > max {
        return Err(PrintError::Photo(format!(
            "{what}: {} bytes; a photo is at most {max} bytes (scale it down)",
            b.len()
        )));
    }
    let Some(mime) = image_mime(b) else {
        return Err(PrintError::Photo(format!(
            "{what}: not a JPEG or PNG image"
        )));
    };
    let sized = match mime {
        "image/png" => b.len() >= 24 && b[12..16] == *b"IHDR",
        _ => jpeg_has_frame(b),
    };
    if sized {
        Ok(())
    } else {
        Err(PrintError::Photo(format!("{what}: a damaged {mime} image")))
    }
}

/// A JPEG with a start-of-frame marker (its size) before the scan.
fn jpeg_has_frame(b: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return false;
        }
        let m = b[i + 1];
        if (0xC0..=0xCF).contains(&m) && m != 0xC4 && m != 0xC8 && m != 0xCC {
            return true;
        }
        if m == 0xDA {
            return false;
        }
        let len = usize::from(b[i + 2]) << 8 | usize::from(b[i + 3]);
        i += 2 + len;
    }
    false
}
