//! `wangge serve` and `wangge token …`.

use super::block_on;
use crate::service::auth::{Role, hash, new_secret};
use crate::service::{AppState, Config};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `wangge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// GeoPackage path or postgres://… (default: $WANGGE_DATABASE_URL, else data/wangge.gpkg).
    #[arg(long)]
    pub database: Option<String>,
    /// A read-only PostgreSQL streaming replica for the map reads (feature pages and tiles of
    /// the plans in force); writes and the reads they depend on stay on --database (default:
    /// $WANGGE_READ_DATABASE_URL).
    #[arg(long)]
    pub read_database: Option<String>,
    /// Address to listen on (default 127.0.0.1:8080, or the config's `bind`).
    #[arg(long)]
    pub bind: Option<String>,
    /// Settings (TOML): bind, body_limit_bytes, timeout_seconds, page_default, page_max,
    /// catalogue, calendar, cache_control, archive.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A PMTiles archive made by `wangge tiles`, served at the same tile URLs.
    #[arg(long)]
    pub archive: Option<PathBuf>,
}

/// `wangge token …`: API tokens (only a hash is stored; the secret is shown once).
#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Make a token: admin, planner, dispatcher, grid_worker or viewer.
    Create {
        #[arg(long)]
        role: String,
        /// Limit it to a community, street or grid code.
        #[arg(long)]
        scope: Option<String>,
        /// A label for the audit log.
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        database: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The tokens (never their secrets).
    List {
        #[arg(long)]
        database: Option<String>,
    },
    /// Revoke a token by id; it stops working at once.
    Revoke {
        id: i64,
        #[arg(long)]
        database: Option<String>,
    },
}

/// The settings file (or the defaults) with the command line's overrides, checked.
fn settings(a: &ServeArgs) -> Result<Config> {
    let mut cfg: Config = match &a.config {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?,
        )
        .with_context(|| format!("{}: bad settings", p.display()))?,
        None => Config::default(),
    };
    if let Some(b) = &a.bind {
        cfg.bind.clone_from(b);
    }
    if let Some(b) = &cfg.basemap {
        b.check().map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}",
                a.config
                    .as_ref()
                    .map_or_else(|| "settings".into(), |p| p.display().to_string())
            )
        })?;
    }
    if let Some(u) = &cfg.public_base_url
        && (!(u.starts_with("http://") || u.starts_with("https://"))
            || u.contains(char::is_whitespace))
    {
        bail!(
            "{}: public_base_url {u:?}: expected an http:// or https:// address such as https://grid.example.gov.cn",
            a.config
                .as_ref()
                .map_or_else(|| "settings".into(), |p| p.display().to_string())
        );
    }
    for b in &cfg.trusted_proxies {
        if let Err(m) = b.parse::<crate::service::ProxyBlock>() {
            bail!(
                "{}: trusted_proxies: {m}",
                a.config
                    .as_ref()
                    .map_or_else(|| "settings".into(), |p| p.display().to_string())
            );
        }
    }
    if let Some(p) = &a.archive {
        cfg.archive = Some(p.display().to_string());
    }
    Ok(cfg)
}

/// The event catalogue and working calendar the settings name, or the built-in ones.
fn catalogue_and_calendar(
    cfg: &Config,
) -> Result<(crate::incident::Catalogue, crate::incident::Calendar)> {
    let cat = match &cfg.catalogue {
        Some(p) => crate::incident::Catalogue::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("{p}: cannot read"))?,
        )
        .with_context(|| p.clone())?,
        None => crate::incident::Catalogue::default_catalogue(),
    };
    let cal = match &cfg.calendar {
        Some(p) => crate::incident::Calendar::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("{p}: cannot read"))?,
        )
        .map_err(|e| anyhow::anyhow!("{p}: {e}"))?,
        None => crate::incident::Calendar::default_calendar(),
    };
    Ok((cat, cal))
}

/// Run `wangge serve`.
///
/// # Errors
/// Bad settings, an unreachable store, or an address in use.
pub fn serve(a: &ServeArgs) -> Result<()> {
    let cfg = settings(a)?;
    let archive = cfg
        .archive
        .as_ref()
        .map(|p| crate::tiles::archive::PmTiles::open(std::path::Path::new(p)))
        .transpose()?;
    let (cat, cal) = catalogue_and_calendar(&cfg)?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "wangge=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // from 1 December on, every day: next year's holidays are missing from the calendar
        let watch = cal.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
            loop {
                every.tick().await;
                if let Some(w) = watch.coverage_warning(chrono::Utc::now().timestamp()) {
                    tracing::warn!("{w}");
                }
            }
        });
        let store =
            crate::store::open_with_reads(a.database.as_deref(), a.read_database.as_deref())
                .await?;
        let bind = cfg.bind.clone();
        let mut state = AppState::new(store, cat, cal, cfg);
        if let Some(a) = archive {
            state.tiles.put_first(Arc::new(a));
        }
        let state = Arc::new(state);
        state.follow_other_processes();
        crate::service::serve(state, &bind).await
    })
}

/// Run `wangge token …`.
///
/// # Errors
/// An unknown role or token, or a store error.
pub fn token(c: &TokenCmd) -> Result<()> {
    block_on(async {
        match c {
            TokenCmd::Create {
                role,
                scope,
                label,
                database,
                json,
            } => {
                let r: Role = role
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
                if scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
                    bail!("--scope must not be empty");
                }
                let store = crate::store::open(database.as_deref()).await?;
                let secret = new_secret();
                let t = store
                    .create_token(&hash(&secret), r.name(), scope.as_deref(), label, "cli")
                    .await?;
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({ "id": t.id, "role": t.role, "scope": t.scope, "token": secret })
                    );
                } else {
                    println!(
                        "token {} ({}{}): {secret}",
                        t.id,
                        t.role,
                        t.scope
                            .as_ref()
                            .map(|s| format!(", scope {s}"))
                            .unwrap_or_default()
                    );
                    eprintln!("keep it now: only its hash is stored");
                }
            }
            TokenCmd::List { database } => {
                let store = crate::store::open(database.as_deref()).await?;
                for t in store.tokens().await? {
                    println!(
                        "{:>4}  {:<12} {:<16} {:<20} created {}{}",
                        t.id,
                        t.role,
                        t.scope.as_deref().unwrap_or("-"),
                        t.label,
                        crate::model::format_time(t.created_at),
                        t.revoked_at
                            .map(|r| format!(", revoked {}", crate::model::format_time(r)))
                            .unwrap_or_default()
                    );
                }
            }
            TokenCmd::Revoke { id, database } => {
                let store = crate::store::open(database.as_deref()).await?;
                store.revoke_token(*id, "cli").await?;
                println!("token {id} revoked");
            }
        }
        Ok(())
    })
}

/// Arguments of `wangge tiles`.
#[derive(Debug, clap::Args)]
pub struct TilesArgs {
    /// The archive to write (e.g. tiles/city.pmtiles).
    #[arg(long)]
    pub out: PathBuf,
    /// Layer set: communities, grids, buildings, heat or all.
    #[arg(long, default_value = "all")]
    pub layers: String,
    #[arg(long, default_value_t = 10)]
    pub minzoom: u8,
    #[arg(long, default_value_t = 16)]
    pub maxzoom: u8,
    /// west,south,east,north (default: the communities' extent).
    #[arg(long, value_delimiter = ',')]
    pub bbox: Option<Vec<f64>>,
    /// pmtiles (v3) or mbtiles (1.3).
    #[arg(long, default_value = "pmtiles")]
    pub format: String,
    #[arg(long)]
    pub database: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `wangge tiles`.
///
/// # Errors
/// Bad arguments, a store error or an unwritable output.
pub fn tiles(a: &TilesArgs) -> Result<()> {
    let set: crate::tiles::TileSet = a
        .layers
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--layers: {e}"))?;
    if set == crate::tiles::TileSet::Incidents {
        bail!("--layers incidents: archives are public; incidents are served to tokens only");
    }
    if a.minzoom > a.maxzoom || a.maxzoom > 20 {
        bail!(
            "--minzoom {} --maxzoom {}: expected minzoom ≤ maxzoom ≤ 20",
            a.minzoom,
            a.maxzoom
        );
    }
    let mbtiles = match a.format.as_str() {
        "pmtiles" => false,
        "mbtiles" => true,
        o => bail!("--format {o:?}: expected pmtiles or mbtiles"),
    };
    if let Some(d) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create", d.display()))?;
    }
    block_on(async {
        let store = crate::store::open(a.database.as_deref()).await?;
        let bbox = match &a.bbox {
            Some(b) if b.len() == 4 && b[0] < b[2] && b[1] < b[3] => [b[0], b[1], b[2], b[3]],
            Some(_) => bail!("--bbox: expected west,south,east,north"),
            None => match crate::tiles::communities_extent(store.as_ref()).await? {
                Some(e) => e,
                None => bail!("{} holds no communities: nothing to tile", store.describe()),
            },
        };
        let bar = indicatif::ProgressBar::new_spinner();
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} tiles {pos} rendered {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let tick = |n: u64| bar.inc(n);
        let r = crate::tiles::archive::write(
            store.as_ref(),
            set,
            a.minzoom,
            a.maxzoom,
            bbox,
            &a.out,
            mbtiles,
            &tick,
        )
        .await?;
        bar.finish_and_clear();
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "{} tiles ({} distinct, {} empty skipped), {} bytes → {} in {:.2} s ({:.0} tiles/s)",
                r.tiles,
                r.unique,
                r.empty_skipped,
                r.bytes,
                a.out.display(),
                r.seconds,
                r.tiles as f64 / r.seconds.max(1e-9)
            );
        }
        Ok(())
    })
}
