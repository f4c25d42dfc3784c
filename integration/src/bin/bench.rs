//! `make bench`: see [`elector_integration::bench`] for what it measures and writes.

use clap::Parser;
use elector_integration::bench::{Args, run_cli};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run_cli(Args::parse()).await {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}
