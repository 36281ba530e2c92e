//! How glibc's allocator treats transfer-sized buffers, set once at start.
//!
//! The receiving yamux allocates a buffer per data frame (64 KiB from a
//! Peerbox peer), and rustls one per TLS record: thousands a second on a fast
//! transfer, each freed soon after. glibc hands the freed top of a heap back
//! to the kernel once it passes 128 KiB (or twice its adaptive `mmap`
//! threshold), so most of those buffers came in again as fresh pages: 40,000
//! to 100,000 page faults on a 1 GiB link download, against ~6,000 with the
//! thresholds below, and about 7 % of both sides' CPU. The cost is that up to
//! `TRIM_THRESHOLD` of freed memory stays with the process.

/// Allocations from this size on get pages of their own (`mmap`) and return
/// them when freed; below it they come from the heap and are reused. Fixed,
/// it also stops glibc from moving the threshold (and the trim threshold) by
/// what it sees freed. Above the largest block (1 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 8 << 20;

/// Free memory at the top of a heap kept for reuse rather than returned to the
/// kernel: more than a transfer's buffers in flight.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 << 20;

/// Sets both thresholds. Other C libraries and systems keep their defaults.
#[allow(unsafe_code)]
pub(crate) fn reuse_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes plain integers and only changes allocator
    // parameters, under glibc's own lock; it has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
