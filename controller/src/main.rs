//! `ferrolb-controller`: parse flags, build, run.
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use ferrolb_controller::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    // Before any thread exists: see `ferrolb_process::malloc`. One arena, and large
    // transient buffers (list pages) mapped on their own rather than left as holes
    // between the cached Services (a lower threshold saved no memory and cost the burst
    // CPU; BENCHMARKS.md, "Controller").
    let one_arena = ferrolb_process::malloc::one_arena();
    let mmap_threshold = ferrolb_process::malloc::fixed_mmap_threshold(128 * 1024);
    // Usage errors exit with 1 rather than clap's 2, which `convert` uses for
    // "converted, but something was lost".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            std::process::exit(1);
        }
        Err(e) => e.exit(),
    };
    if let Some(Command::CheckConfig { file }) = &cli.command {
        let (out, ok) = ferrolb_controller::check_config::check(file);
        print!("{out}");
        std::process::exit(if ok { 0 } else { 1 });
    }
    if let Some(Command::Convert { files }) = &cli.command {
        let o = ferrolb_controller::convert::run(files);
        print!("{}", o.stdout);
        eprint!("{}", o.stderr);
        std::process::exit(o.code);
    }
    ferrolb_process::logging::init(cli.run.common.log_format, &cli.run.common.log_level)
        .map_err(anyhow::Error::msg)?;
    tracing::debug!(one_arena, mmap_threshold, "glibc malloc settings");
    ferrolb_process::malloc::release_every(Duration::from_secs(5));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.run.common.worker_threads.into())
        .enable_all()
        .build()?;
    runtime.block_on(ferrolb_controller::run::run(cli.run))?;
    Ok(())
}
