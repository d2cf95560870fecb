//! Printed grid maps: a signboard (网格公示牌) per grid and an atlas (网格图册) per community, as
//! PDF with the CJK font embedded (subset), or PNG.
//!
//! A page is drawn as SVG by this module ([`layout`], [`map`]), laid out by `usvg` with Noto
//! Sans CJK, written to PDF by `krilla` (through `krilla-svg`; text stays text, fonts are subset
//! and embedded, the bytes are the same for the same input) and rendered to PNG by `resvg`. The
//! QR code comes from the `qrcode` crate. What goes on a page is gathered from the store by
//! [`source`]; the four boundaries (四至) are derived from the geometry by [`sizhi`].
//!
//! The public signboard carries no household counts; `internal` adds them for the office.

pub mod layout;
pub mod map;
pub mod render;
pub mod sizhi;
pub mod source;
pub mod svg;

use crate::model::Road;
use crate::store::Worker;
use geo::MultiPolygon;

/// Errors of printing, each naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// A grid or community that is not in the plans printed from.
    #[error("{0}")]
    NotFound(String),
    /// Noto Sans CJK is missing.
    #[error("font: {0}")]
    Font(String),
    /// A worker's photo that is not a usable image.
    #[error("photo: {0}")]
    Photo(String),
    /// The drawing could not be rendered.
    #[error("render: {0}")]
    Render(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Largest worker photo (bytes).
pub const PHOTO_MAX: usize = 1 << 20;

/// Paper sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paper {
    #[default]
    A4,
    A3,
}

impl std::str::FromStr for Paper {
    type Err = String;
    fn from_str(s: &str) -> Result<Paper, String> {
        match s.to_ascii_uppercase().as_str() {
            "A4" => Ok(Paper::A4),
            "A3" => Ok(Paper::A3),
            _ => Err(format!("paper size {s:?}: expected A4 or A3")),
        }
    }
}

impl Paper {
    /// Width and height in points, portrait.
    #[must_use]
    pub fn points(self) -> (f64, f64) {
        let mm = |v: f64| v / 25.4 * 72.0;
        match self {
            Paper::A4 => (mm(210.0), mm(297.0)),
            Paper::A3 => (mm(297.0), mm(420.0)),
        }
    }
}

/// How to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub paper: Paper,
    pub landscape: bool,
    /// Add households, buildings and the band (for the office; never on a public signboard).
    pub internal: bool,
}

/// A grid as printed.
#[derive(Debug, Clone)]
pub struct PrintGrid {
    pub code: String,
    /// Display name (e.g. 城东社区第三网格).
    pub name: String,
    pub community: String,
    pub community_name: String,
    pub street: Option<String>,
    /// Its number in the community (the code's last digits), for colours and 第N网格.
    pub seq: usize,
    pub households: u64,
    pub buildings: u64,
    pub band: String,
    /// WGS84.
    pub geometry: MultiPolygon,
}

/// A building footprint and its grid.
#[derive(Debug, Clone)]
pub struct PrintBuilding {
    pub geometry: MultiPolygon,
    pub grid: Option<String>,
}

/// What surrounds the printed grids: every grid, building and road that may show on a map.
#[derive(Debug, Clone, Default)]
pub struct PrintArea {
    pub grids: Vec<PrintGrid>,
    pub buildings: Vec<PrintBuilding>,
    pub roads: Vec<Road>,
}

/// One grid's sheet: the grid, its worker, its four boundaries and the link of its public page.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub grid: PrintGrid,
    pub worker: Option<Worker>,
    pub photo: Option<Vec<u8>>,
    pub sizhi: sizhi::Sizhi,
    /// The grid's public page (the QR code's target).
    pub url: String,
    /// The plan the grid belongs to and the day it came in force (YYYY-MM-DD, local).
    pub plan: i64,
    pub in_force_from: Option<String>,
}

/// The grid's name without its community's (城东社区第三网格 → 第三网格).
#[must_use]
pub fn short_name(g: &PrintGrid) -> String {
    g.name
        .strip_prefix(g.community_name.as_str())
        .filter(|s| !s.is_empty())
        .map_or_else(|| g.name.clone(), str::to_string)
}

/// The URL of a grid's public page under `base` (the web map opened on the grid).
#[must_use]
pub fn grid_url(base: &str, code: &str) -> String {
    format!(
        "{}/?grid={}",
        base.trim_end_matches('/'),
        crate::service::urlencode(code)
    )
}

/// A signboard as PDF.
///
/// # Errors
/// Fonts missing or a drawing that does not render.
pub fn signboard_pdf(sheet: &Sheet, area: &PrintArea, o: Options) -> Result<Vec<u8>, PrintError> {
    let page = layout::signboard(sheet, area, o);
    render::pdf(&[page], &format!("{} {}", sheet.grid.name, sheet.grid.code))
}

/// A signboard as PNG at `dpi`.
///
/// # Errors
/// Fonts missing or a drawing that does not render.
pub fn signboard_png(
    sheet: &Sheet,
    area: &PrintArea,
    o: Options,
    dpi: f32,
) -> Result<Vec<u8>, PrintError> {
    render::png(&layout::signboard(sheet, area, o), dpi)
}

/// A community's atlas as PDF: the overview, the table of grids, one page per grid.
///
/// # Errors
/// Fonts missing or a drawing that does not render.
pub fn atlas_pdf(
    community: &str,
    community_name: &str,
    sheets: &[Sheet],
    area: &PrintArea,
    o: Options,
) -> Result<Vec<u8>, PrintError> {
    let pages = layout::atlas(community, community_name, sheets, area, o);
    render::pdf(&pages, &format!("{community_name} 网格图册"))
}
