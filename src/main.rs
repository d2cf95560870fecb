//! The `wangge` binary: parse, dispatch, report errors with a non-zero exit.

use clap::Parser;

fn main() {
    let cli = wangge::cli::Cli::parse();
    if let Err(e) = wangge::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
