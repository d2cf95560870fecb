//! `wangge print`: a grid's signboard (网格公示牌) or a community's atlas (网格图册) as PDF (or
//! a signboard as PNG), from the plans in force or a named plan.

use super::block_on;
use crate::print::{Options, Paper, source::Source};
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Arguments of `wangge print`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["grid", "community"])))]
pub struct PrintArgs {
    /// The grid whose signboard to print (its 15-digit code).
    #[arg(long)]
    pub grid: Option<String>,
    /// The community whose atlas to print (its code), or `all` for one atlas per community into
    /// the folder --out.
    #[arg(long)]
    pub community: Option<String>,
    /// The PDF (or PNG with --png) to write; a folder with `--community all`.
    #[arg(long)]
    pub out: PathBuf,
    /// Paper size: A4 or A3.
    #[arg(long, default_value = "A4")]
    pub size: Paper,
    #[arg(long)]
    pub landscape: bool,
    /// Write the signboard as a PNG image instead of a PDF.
    #[arg(long)]
    pub png: bool,
    /// Resolution of --png.
    #[arg(long, default_value_t = 150.0)]
    pub dpi: f32,
    /// Add households, buildings and the band (for the office; not for the street).
    #[arg(long)]
    pub internal: bool,
    /// Print from this plan (a draft, as a proof); default: the plans in force now.
    #[arg(long)]
    pub plan: Option<i64>,
    /// The service's public address, for the QR code (e.g. https://grid.example.gov.cn);
    /// default: $WANGGE_PUBLIC_URL.
    #[arg(long)]
    pub base_url: Option<String>,
    #[arg(long)]
    pub database: Option<String>,
}

fn base_url(a: &PrintArgs) -> Result<String> {
    let b = a
        .base_url
        .clone()
        .or_else(|| std::env::var("WANGGE_PUBLIC_URL").ok())
        .filter(|s| !s.trim().is_empty());
    let Some(b) = b else {
        bail!(
            "--base-url: the signboard's QR code links to the grid's public page; give the service's public address (e.g. --base-url https://grid.example.gov.cn) or set WANGGE_PUBLIC_URL"
        );
    };
    if !(b.starts_with("http://") || b.starts_with("https://")) || b.contains(char::is_whitespace) {
        bail!("--base-url {b:?}: expected an http:// or https:// address");
    }
    Ok(b.trim_end_matches('/').to_string())
}

/// Run `wangge print`.
///
/// # Errors
/// An unknown grid or community, missing fonts, or a file that cannot be written (nothing is
/// half-written).
pub fn run(a: &PrintArgs) -> Result<()> {
    if !(36.0..=1200.0).contains(&a.dpi) {
        bail!("--dpi {}: expected 36 to 1200", a.dpi);
    }
    let base = base_url(a)?;
    crate::print::render::fonts()?;
    let o = Options {
        paper: a.size,
        landscape: a.landscape,
        internal: a.internal,
    };
    let store_url = a.database.as_deref();
    block_on(async {
        let store = crate::store::open(store_url).await?;
        let src = Source::load(store.as_ref(), a.plan, chrono::Utc::now().timestamp()).await?;
        if let Some(code) = &a.grid {
            let (sheet, area) = src.grid_sheet(store.as_ref(), code, &base).await?;
            let bytes = if a.png {
                crate::print::signboard_png(&sheet, &area, o, a.dpi)?
            } else {
                crate::print::signboard_pdf(&sheet, &area, o)?
            };
            write(&a.out, &bytes)?;
            eprintln!(
                "{}: signboard of {} {}",
                a.out.display(),
                sheet.grid.name,
                sheet.grid.code
            );
            return Ok(());
        }
        if a.png {
            bail!("--png prints one page: use it with --grid (an atlas is a PDF)");
        }
        let community = a.community.as_deref().unwrap_or_default();
        if community == "all" {
            return all_atlases(store.as_ref(), &src, &base, o, &a.out).await;
        }
        let (sheets, area, name) = src
            .community_sheets(store.as_ref(), community, &base)
            .await?;
        let bytes = crate::print::atlas_pdf(community, &name, &sheets, &area, o)?;
        write(&a.out, &bytes)?;
        eprintln!(
            "{}: atlas of {name} ({} grids)",
            a.out.display(),
            sheets.len()
        );
        Ok(())
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::write::write_atomic(path, bytes)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// One atlas per community into `dir/{code}.pdf`, rendered across cores.
async fn all_atlases(
    store: &dyn crate::store::Store,
    src: &Source,
    base: &str,
    o: Options,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let mut codes: Vec<String> = src.grids.iter().map(|g| g.community.clone()).collect();
    codes.dedup();
    codes.sort();
    codes.dedup();
    let bar = super::progress(codes.len() as u64, "atlases");
    let mut jobs = Vec::with_capacity(codes.len());
    for c in &codes {
        jobs.push((c.clone(), src.community_sheets(store, c, base).await?));
    }
    let done: Result<Vec<usize>> = jobs
        .par_iter()
        .map(|(code, (sheets, area, name))| {
            let bytes = crate::print::atlas_pdf(code, name, sheets, area, o)?;
            write(&dir.join(format!("{code}.pdf")), &bytes)?;
            bar.inc(1);
            Ok(sheets.len())
        })
        .collect();
    bar.finish_and_clear();
    let grids: usize = done?.iter().sum();
    eprintln!("{}: {} atlases, {grids} grids", dir.display(), codes.len());
    Ok(())
}
