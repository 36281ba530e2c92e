//! How glibc's allocator is set up for Peerbox, once, as early as a program can.
//!
//! The receiving yamux allocates a buffer per data frame (64 KiB from a
//! Peerbox peer), and rustls one per TLS record: thousands a second on a fast
//! transfer, each freed soon after. glibc hands the freed top of a heap back
//! to the kernel once it passes 128 KiB (or twice its adaptive `mmap`
//! threshold), so most of those buffers came in again as fresh pages: 40,000
//! to 100,000 page faults on a 1 GiB link download, against ~6,000 with the
//! thresholds below, and about 7 % of both sides' CPU.
//!
//! Keeping freed memory costs resident memory in every heap that keeps it, and
//! glibc makes up to eight heaps (arenas) per core as threads contend. A
//! daemon indexing 100,000 files peaked at 153 MiB with glibc's defaults and
//! 161 MiB with the thresholds alone; with one arena per core, 99 and 117 MiB
//! (no slower on the 1 GiB link).

/// Allocations from this size on get pages of their own (`mmap`) and return
/// them when freed; below it they come from a heap and are reused. Fixed, it
/// also stops glibc from moving the threshold (and the trim threshold) by what
/// it sees freed. Above every frame and record, and the blocks of files up to
/// ~8 GiB (at most 4 MiB); blocks of 8 and 16 MiB (larger files) are at or past it,
/// so the block paths keep theirs for reuse (`peerbox_net::Buffers`) rather
/// than freeing them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 8 << 20;

/// Free memory at the top of a heap kept for reuse rather than returned to the
/// kernel: more than a transfer's buffers in flight.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Sets the thresholds and caps the arenas at one per core (two at least).
/// Called first thing by the programs (before their threads start, so the cap
/// holds for all of them) and again by [`crate::Node::start`] for other
/// embedders. Other C libraries and systems keep their defaults.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes plain integers and only changes allocator
        // parameters, under glibc's own lock; it has no memory-safety
        // preconditions.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
