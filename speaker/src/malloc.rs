//! glibc allocator setting for the speaker binary: one malloc arena.
//!
//! glibc gives a thread that meets contention on the main heap an arena of its own (up
//! to 8 per core) and never moves memory between arenas: what one thread frees is only
//! reused by threads of the same arena. The speaker's runtime threads take turns
//! building and dropping the watch caches' objects, so with the default two workers
//! each kept a partly empty heap of its own beside the main one — about 1.1 MiB of the
//! resident memory with 1,000 Services (BENCHMARKS.md, "Speaker election"). The speaker
//! allocates little and never on the packet path (an ARP/NDP answer is built in a stack
//! buffer), so sharing one arena costs no contention worth measuring.
//!
//! musl (the container image's libc) has no per-thread arenas and no `mallopt`: there
//! this does nothing. This is the crate's only `unsafe` besides `net::sys`.

/// Limits glibc malloc to one arena; call first thing in `main`, before any thread is
/// started. Returns whether the setting took effect (always `false` off glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_arena() -> bool {
    // SAFETY: `mallopt` takes two integers and only sets a malloc parameter; glibc
    // documents it as safe to call at any time (arenas that exist already stay).
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 }
}

/// Limits glibc malloc to one arena; call first thing in `main`, before any thread is
/// started. Returns whether the setting took effect (always `false` off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_arena() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_setting() {
        assert!(super::one_arena());
    }
}
