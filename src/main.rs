//! The `wangge` binary: parse, dispatch, report errors with a non-zero exit.

use clap::Parser;

// The partitioner allocates many small maps and vectors per community on several threads;
// mimalloc measured about 10 % less CPU than the system allocator on the Manhattan run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Exit quietly when the reader of stdout goes away (`wangge … | head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SQLite and GDAL allocate through the C library's malloc, whose default of up to eight
    // arenas per core each keep what they freed: a server's memory then grows with every reader
    // thread that has touched a large page set. Two arenas measured flat (scripts/soak: RssAnon
    // 51–62 MB against 66–92 MB over six publications on an 800 MB store).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt before any thread starts, with a valid parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // spade asserts on some near-degenerate geometry; the tessellation catches those panics
    // where they happen and falls back, so they are not worth a message.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !wangge::partition::tessellation::catching_panics() {
            report(info);
        }
    }));
    let cli = wangge::cli::Cli::parse();
    if let Err(e) = wangge::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
