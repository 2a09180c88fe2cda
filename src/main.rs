use std::process::ExitCode;

use clap::Parser;

use headroom::app;
use headroom::cli::Cli;

/// mimalloc instead of glibc's malloc: a poll allocates and frees a few small
/// strings per container, and at 10,000 containers glibc's free-list upkeep was a
/// third of a cycle's CPU (see benches/fleet.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story on stdout; unless asked, its logs keep to warnings.
    let level = match (&cli.command, cli.global.log_level.as_str()) {
        (headroom::cli::Command::Demo(_), "info") => "warn",
        (_, level) => level,
    };
    if let Err(message) = headroom::logging::init(cli.global.log_format, level) {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(app::run(cli, app::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
