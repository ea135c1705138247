//! glibc malloc for a long-lived controller: the settings of [`tune`], and giving
//! freed heap memory back to the operating system.
//!
//! glibc keeps memory that the program frees for its own reuse and returns to the
//! kernel only what lies at the very top of the heap. The controller's peaks are
//! short and large: the initial list of every Service, and reconciling all of them
//! when it becomes the leader or the pool configuration changes. Afterwards most of
//! that memory is free but stays resident, scattered between live objects, so the
//! resident size would keep the peak rather than what the controller holds
//! (BENCHMARKS.md, "Controller": 11 MiB of a 47 MiB figure with 10,000 Services).
//! `malloc_trim` hands every whole free page back (`madvise(MADV_DONTNEED)`); it
//! walks the free lists once, a fraction of a millisecond for a heap of tens of
//! MiB, so running it a few times a minute costs nothing measurable.
//!
//! musl (the container image's libc) has neither arenas nor `mallopt` nor
//! `malloc_trim` and returns freed memory by itself: there this does nothing. This
//! is the crate's only `unsafe`.
#![allow(unsafe_code)]

use std::time::Duration;

/// Blocks at least this large are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Sets glibc malloc up for a long-lived process with large, short peaks; call first
/// thing in `main`, before any thread exists. Returns whether glibc took both settings.
///
/// - One arena: glibc gives threads that meet contention arenas of their own and never
///   moves free memory between them, so each runtime worker kept its own partly empty
///   heap. The controller's allocations are not contended enough for one arena to cost
///   anything measurable.
/// - A fixed mmap threshold: by default glibc raises the threshold to the size of every
///   mapped block it frees, so after the first large response body (a list page is
///   ~150 KiB) such buffers come from the heap and leave holes between the cached
///   Services that `malloc_trim` cannot give back. Fixed at 128 KiB, large transient
///   buffers are mapped and unmapped every time. (64 KiB saved no more memory and
///   cost the burst a third more CPU in mmap/munmap.)
///
/// Together: 33-34 → 29.6-29.8 MiB with 10,000 Services (BENCHMARKS.md, "Controller").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() -> bool {
    // SAFETY: `mallopt` takes two integers and only sets a malloc parameter; glibc
    // documents it as safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    }
}

/// Sets glibc malloc up (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() -> bool {
    false
}

/// Returns free heap pages to the kernel; true when any memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: `malloc_trim` takes an integer (the bytes to keep at the top of the
    // heap) and only releases free memory; glibc documents it as thread-safe.
    unsafe { libc::malloc_trim(0) == 1 }
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

/// Returns free heap pages to the kernel (nothing to do off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

/// Trims the heap every `period` on a thread of its own, for the life of the process.
pub fn trim_every(period: Duration) {
    let spawned = std::thread::Builder::new()
        .name("heap-trim".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                let released = trim();
                if let Some((in_use, free)) = usage() {
                    tracing::debug!(in_use, free, released, "heap trimmed");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the heap trimming thread; memory freed after peaks stays resident");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert!(super::tune());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_goes_back_to_the_kernel() {
        // Many small blocks, then free every other one's neighbour pages: only a trim
        // can return the free pages in the middle of the heap.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 1000]).collect();
        let keep: Vec<Vec<u8>> = blocks.iter().step_by(64).cloned().collect();
        blocks.clear();
        blocks.shrink_to_fit();
        assert!(super::trim(), "free pages were released");
        drop(keep);
    }
}
