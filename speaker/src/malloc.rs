//! glibc allocator settings for the speaker: one malloc arena, and handing the
//! memory of a full list back to the system.
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
//! A full list of Services or EndpointSlices (at start, and again whenever a watch has
//! to relist) is the speaker's one burst of allocation: pages of JSON and the whole
//! objects built from them, of which only the trimmed copies in the cache stay. glibc
//! keeps the freed pages between the survivors (it returns only the top of the heap),
//! so [`release_free_memory`] runs after each full list: ~0.7 MiB with 1,000 Services.
//!
//! musl (the container image's libc) has no per-thread arenas, no `mallopt` and no
//! `malloc_trim`: there both do nothing. This is the crate's only `unsafe` besides
//! `net::sys`.

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

/// Returns the free pages of the malloc heap to the system (`malloc_trim`); cheap (a
/// walk of the free lists, well under a millisecond for the speaker's few MiB). Call it
/// after a burst of allocation has been freed. Does nothing off glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: `malloc_trim` takes an integer (the heap top to keep) and only releases
    // free memory; it takes the arena locks itself and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the free pages of the malloc heap to the system (`malloc_trim`); cheap (a
/// walk of the free lists, well under a millisecond for the speaker's few MiB). Call it
/// after a burst of allocation has been freed. Does nothing off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_setting() {
        assert!(super::one_arena());
    }

    /// Resident memory of this process in KiB (`/proc/self/statm`, pages of 4 KiB).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rss_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 4
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_pages_between_live_objects_go_back_to_the_system() {
        // 16 MiB of 16 KiB blocks, each followed by a small survivor, so the freed blocks
        // sit between live objects where glibc's automatic trimming never reaches.
        let mut keep = Vec::new();
        let mut blocks = Vec::new();
        for i in 0..1024u32 {
            blocks.push(vec![i as u8; 16 * 1024]);
            keep.push(Box::new(i));
        }
        drop(blocks);
        let before = rss_kib();
        super::release_free_memory();
        let after = rss_kib();
        assert!(
            after + 4096 <= before,
            "RSS {before} KiB -> {after} KiB: the freed 16 MiB were not released"
        );
        assert!(keep.iter().enumerate().all(|(i, b)| **b == i as u32));
    }
}
