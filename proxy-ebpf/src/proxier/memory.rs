//! Giving the heap a full sync leaves behind back to the kernel.

/// A full sync allocates tens of MB of transient text and rendering at
/// 10,000 services; glibc keeps freed heap pages mapped, so without this
/// the agent would hold the sync's peak for good.
pub(super) fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
