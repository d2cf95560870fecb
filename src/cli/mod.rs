//! The `wangge` command line. `main.rs` only parses and dispatches here.

mod calendar;
mod convert;
mod edit;
mod incidents;
pub(crate) mod locate;
mod print;
mod regrid;
mod serve;
mod store;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// wangge (网格): community grid management — balanced, street-bounded grids from community
/// boundaries and building footprints.
#[derive(Debug, Parser)]
#[command(name = "wangge", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Text encoding of Shapefile attribute tables (e.g. GBK, GB18030, UTF-8), overriding the
    /// `.cpg` file and the DBF's language byte; also the code page of DXF drawings.
    #[arg(long, global = true, value_name = "ENCODING")]
    pub encoding: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Partition communities into grids of about --target households.
    Regrid(regrid::RegridArgs),
    /// Adjust the grids in force to updated buildings, changing as little as possible (动态调整).
    Rebalance(regrid::RebalanceArgs),
    /// Convert CSV (lon/lat columns) or GeoJSON files between coordinate systems.
    Convert(convert::ConvertArgs),
    /// Add the grid (and community) of every point of a CSV or GeoJSON file.
    Locate(locate::LocateArgs),
    /// The case loop on a case file: import reports, apply transitions, escalate.
    #[command(subcommand)]
    Incidents(incidents::IncidentCmd),
    /// The working calendar: `check` shows its time zone, covered years and problems.
    #[command(subcommand)]
    Calendar(calendar::CalendarCmd),
    /// Assessment figures per grid, community, street or category, and H3 heat-map counts.
    Stats(incidents::StatsArgs),
    /// Generate the deterministic sample district.
    SampleCity(SampleArgs),
    /// Load communities, buildings and roads into the store (re-import updates by id).
    Import(store::ImportArgs),
    /// Grid plans in the store: list, show, publish, diff.
    #[command(subcommand)]
    Plans(store::PlansCmd),
    /// Write a stored layer as GeoJSON or GeoPackage.
    Export(store::ExportArgs),
    /// Grid workers' public contacts.
    #[command(subcommand)]
    Worker(store::WorkerCmd),
    /// Print a grid's signboard (网格公示牌) or a community's atlas (网格图册) as PDF.
    Print(print::PrintArgs),
    /// Serve the store over HTTP: OGC API – Features, locate, Open311, incidents, plans.
    Serve(serve::ServeArgs),
    /// Pre-generate a PMTiles v3 (or MBTiles) archive of the published plan.
    Tiles(serve::TilesArgs),
    /// API tokens for the service.
    #[command(subcommand)]
    Token(serve::TokenCmd),
    /// Load driver for scripts/bench-store and the crash test.
    #[command(hide = true)]
    StoreLoad(store::LoadArgs),
}

/// Arguments of `wangge sample-city`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of communities.
    #[arg(long, default_value_t = 12)]
    pub communities: usize,
    /// Output folder (communities.geojson, buildings.geojson, roads.geojson).
    #[arg(long)]
    pub out: PathBuf,
}

/// Run a parsed command.
///
/// # Errors
/// Whatever the command reports; the message names the input at fault.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(e) = &cli.encoding {
        crate::io::layer::set_encoding(e);
    }
    if !matches!(cli.command, Command::Serve(_)) {
        developer_log();
    }
    match cli.command {
        Command::Regrid(a) => regrid::run(&a),
        Command::Rebalance(a) => regrid::run_rebalance(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Locate(a) => locate::run(&a),
        Command::Incidents(c) => incidents::run(&c),
        Command::Stats(a) => incidents::stats(&a),
        Command::Calendar(c) => calendar::run(&c),
        Command::SampleCity(a) => sample_city(&a),
        Command::Import(a) => store::import(&a),
        Command::Plans(c) => store::plans(&c),
        Command::Export(a) => store::export(&a),
        Command::Worker(c) => store::worker(&c),
        Command::Print(a) => print::run(&a),
        Command::StoreLoad(a) => store::load(&a),
        Command::Serve(a) => serve::serve(&a),
        Command::Token(c) => serve::token(&c),
        Command::Tiles(a) => serve::tiles(&a),
    }
}

/// With `RUST_LOG` set (e.g. `RUST_LOG=wangge=debug`), the library's spans and events go to
/// stderr, each span with its run time when it closes: the phases of the tessellation,
/// straightening, solving. Quiet otherwise. (`serve` sets up its own request log.)
fn developer_log() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .try_init();
}

fn sample_city(a: &SampleArgs) -> Result<()> {
    use anyhow::Context;
    if a.communities == 0 {
        anyhow::bail!("--communities must be at least 1");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let city = crate::sample::generate(a.seed, a.communities);
    for (name, v) in [
        ("communities", &city.communities),
        ("buildings", &city.buildings),
        ("roads", &city.roads),
    ] {
        let path = a.out.join(format!("{name}.geojson"));
        crate::io::write::write_atomic(&path, serde_json::to_string(v)?.as_bytes())?;
    }
    let nb = city.buildings["features"].as_array().map_or(0, Vec::len);
    println!(
        "sample city: {} communities, {nb} buildings, {} households → {}",
        a.communities,
        city.households,
        a.out.display()
    );
    Ok(())
}

/// Run async store work from a command (a small runtime per command).
/// A progress bar of `n` things, drawn only on a terminal.
pub(crate) fn progress(n: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = indicatif::ProgressBar::new(n);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {{bar:30}} {{pos}}/{{len}} {what} {{elapsed}}"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(f)
}

/// Positions of the longitude and latitude columns of a CSV header, with errors that name the
/// file and the option to use.
pub(crate) fn coord_columns(
    name: &str,
    headers: &csv::StringRecord,
    lon: &str,
    lat: &str,
) -> Result<(usize, usize)> {
    let find = |f: &str| headers.iter().position(|h| h.trim() == f);
    let xi =
        find(lon).ok_or_else(|| anyhow::anyhow!("{name}: no column `{lon}` (use --lon-field)"))?;
    let yi =
        find(lat).ok_or_else(|| anyhow::anyhow!("{name}: no column `{lat}` (use --lat-field)"))?;
    Ok((xi, yi))
}
