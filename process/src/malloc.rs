//! glibc malloc for a long-lived process with short allocation peaks: the settings
//! ([`one_arena`], [`fixed_mmap_threshold`]) and handing freed memory back to the
//! system ([`release_free_memory`], [`release_every`]).
//!
//! Both binaries hold a cache of watched objects for their whole life and allocate
//! most in bursts: a full list of Services or EndpointSlices (at start, and whenever a
//! watch has to relist), and for the controller a burst of reconciles. glibc's
//! defaults suit short programs, not this:
//! - glibc gives a thread that meets contention on the main heap an arena of its own
//!   (up to 8 per core) and never moves memory between arenas, so each runtime worker
//!   kept a partly empty heap of its own (BENCHMARKS.md, "Speaker memory"). Neither binary allocates on a hot path contended enough for one
//!   arena to cost anything measurable (the speaker builds ARP/NDP answers in stack
//!   buffers).
//! - glibc returns to the kernel only what lies at the very top of the heap; a peak's
//!   freed pages between the objects that survive it stay resident until a
//!   `malloc_trim`, which walks the free lists once.
//! - By default glibc raises its mmap threshold to the size of every mapped block it
//!   frees, so after the first large response body (a list page) such
//!   buffers come from the heap and leave holes between the cached objects.
//!
//! The figures are in BENCHMARKS.md ("Controller", "Speaker election").
//!
//! The container image is built with glibc (see the Dockerfile). musl has no
//! per-thread arenas, no `mallopt` and no `malloc_trim`, and returns freed memory by
//! itself: built for musl, every function here does nothing and says so. This module is the crate's only `unsafe`.
#![allow(unsafe_code)]

use std::time::Duration;

/// Limits glibc malloc to one arena; call first thing in `main`, before any thread is
/// started. Returns whether the setting took effect (always `false` off glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_arena() -> bool {
    // SAFETY: `mallopt` takes two integers and only sets a malloc parameter; glibc
    // documents it as safe to call at any time (arenas that exist already stay).
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 }
}

/// Limits glibc malloc to one arena (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_arena() -> bool {
    false
}

/// Maps every block of at least `bytes` on its own and unmaps it when freed, instead
/// of letting glibc raise that threshold as large blocks come and go; call first thing
/// in `main`. Returns whether the setting took effect (always `false` off glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn fixed_mmap_threshold(bytes: i32) -> bool {
    // SAFETY: as in `one_arena`: two integers, a malloc parameter set.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
}

/// Fixes glibc's mmap threshold (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn fixed_mmap_threshold(_bytes: i32) -> bool {
    false
}

/// Returns the free pages of the malloc heap to the system (`malloc_trim`); true when
/// any memory was released. Call it after a burst of allocation has been freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes an integer (the bytes to keep at the top of the
    // heap) and only releases free memory; it takes the arena locks itself and is safe
    // to call from any thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Returns free heap pages to the system (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

/// Bytes of heap in use and free (glibc's `mallinfo2`), for the debug log.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn usage() -> Option<(usize, usize)> {
    // SAFETY: `mallinfo2` takes no arguments and returns a plain struct of counters.
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd, m.fordblks))
}

/// Bytes of heap in use and free (unknown off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn usage() -> Option<(usize, usize)> {
    None
}

/// Runs [`release_free_memory`] every `period` on a small thread of its own, for the
/// life of the process: peaks that no code path marks (a relist, a burst of
/// reconciles) are given back within `period`.
pub fn release_every(period: Duration) {
    let spawned = std::thread::Builder::new()
        .name("heap-release".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                let released = release_free_memory();
                if let Some((in_use, free)) = usage() {
                    tracing::debug!(in_use, free, released, "free heap memory released");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the heap release thread; memory freed after peaks stays resident");
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::sync::Mutex;

    /// The tests measure the whole process's heap: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn glibc_accepts_the_settings() {
        assert!(super::one_arena());
        assert!(super::fixed_mmap_threshold(128 * 1024));
    }

    /// Resident memory of this process in KiB (`/proc/self/statm`, pages of 4 KiB).
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
    fn freed_pages_between_live_objects_go_back_to_the_system() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
        assert!(super::release_free_memory(), "glibc released nothing");
        let after = rss_kib();
        assert!(
            after + 4096 <= before,
            "RSS {before} KiB -> {after} KiB: the freed 16 MiB were not released"
        );
        assert!(keep.iter().enumerate().all(|(i, b)| **b == i as u32));
    }

    #[test]
    fn usage_counts_what_is_allocated() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (before, _) = super::usage().unwrap();
        let block = std::hint::black_box(vec![1u8; 4 << 20]);
        let (during, _) = super::usage().unwrap();
        // Other test threads allocate and free a little meanwhile: a margin, not equality.
        assert!(during >= before + (3 << 20), "{before} -> {during}");
        drop(block);
    }
}
