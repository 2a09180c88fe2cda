use std::process::ExitCode;

use clap::Parser;

use headroom::app;
use headroom::cli::Cli;

/// mimalloc instead of glibc's malloc: a poll allocates and frees a few small
/// strings per container, and at 10,000 containers glibc's free-list upkeep was a
/// third of a cycle's CPU (see benches/fleet.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Handing back what a poll freed. A poll parses its answers, builds what it needs and
// frees it again; mimalloc (v3, the crate's default) gives freed pages back to the OS
// only once a purge delay (1 s) has passed *and* the thread that freed them next calls it, and between polls
// the daemon hardly allocates: what one poll used stayed resident until the next.
// With its arenas committed up front (mimalloc's default where the kernel
// overcommits), a purge did not lower the RSS either. Measured at 100,000 containers
// against the fleet bench's synthetic API (docs/reading-memory.md): 514 MiB between
// polls before; 396 MiB with a forced collection after each poll, 371 MiB with the
// arenas committed as used besides. Purging at once instead (a purge delay of 0) read
// 373 MiB but cost the backfill a quarter more CPU, its memory given back and faulted
// in again piece after piece. These two calls and the `.init_array` entry are
// headroom's only unsafe code; the library forbids it.

/// mimalloc's `mi_option_arena_eager_commit` (mimalloc.h, the same in v2 and v3).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits arena memory as it is used, not up front, so that purged pages leave the
/// RSS. mimalloc reserves its first arena at the process' first allocation, which
/// the Rust runtime makes before `main`, so on Linux this runs from `.init_array`,
/// before the runtime; elsewhere the option is left as it is. Being set here, it no
/// longer reads `MIMALLOC_ARENA_EAGER_COMMIT` from the environment.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
extern "C" fn commit_as_used() {
    // SAFETY: mi_option_set takes no pointers and only stores the option's value in a
    // static table; whether mimalloc's own constructor ran before or not, it keeps a
    // set option, and it reserves no arena itself.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static COMMIT_AS_USED: extern "C" fn() = commit_as_used;

/// Returns to the OS the pages freed on this thread and what the arenas hold for a
/// delayed purge: the daemon calls it once each poll is done, on the thread that runs
/// the poll loop (the main thread, under `block_on`), where the poll's memory was
/// freed. Its cost is inside the daemon's CPU figures, not in `poll_duration`.
fn hand_back() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any
    // time; it only walks mimalloc's own structures.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

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
    match runtime.block_on(app::run(cli, hand_back, app::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
