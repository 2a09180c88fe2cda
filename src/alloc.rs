//! The allocator's settings, and handing back what a poll freed.
//!
//! `headroom run` allocates with mimalloc (src/main.rs). A poll parses its answers,
//! builds what it needs and frees it again. mimalloc gives freed pages back to the OS
//! only once a purge delay (1 s) has passed *and* the thread that freed them next
//! calls it, and between polls the daemon hardly allocates: what one poll used stayed
//! resident until the next. With its arenas committed up front (mimalloc's default
//! where the kernel overcommits), a purge did not lower the RSS either. Measured at
//! 100,000 containers against the fleet bench's synthetic API: 514 MiB between polls
//! before, 355 MiB with both changes (docs/reading-memory.md). Purging at once
//! instead (a purge delay of 0) read 373 MiB but cost the backfill a quarter more
//! CPU, its memory given back and faulted in again piece after piece.
//!
//! Under another global allocator (the tests') these only touch mimalloc's own,
//! unused, state.

/// mimalloc's `mi_option_arena_eager_commit` (mimalloc.h, the same in v2 and v3).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commits arena memory as it is used, not up front, so that purged pages leave the
/// RSS. mimalloc reserves its first arena at the process' first allocation, which
/// the Rust runtime makes before `main`, so on Linux this runs from `.init_array`,
/// before the runtime; elsewhere the option is left as it is.
#[allow(unsafe_code)]
extern "C" fn configure() {
    // SAFETY: mi_option_set takes no pointers and only stores the option's value; it
    // may be called before mimalloc's own initialization, which keeps a set option.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static CONFIGURE: extern "C" fn() = configure;

/// Returns to the OS the pages freed on this thread and what the arenas hold for a
/// delayed purge.
#[allow(unsafe_code)]
pub fn hand_back() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any
    // time; it only walks mimalloc's own structures.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
