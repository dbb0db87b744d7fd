//! Gives freed heap back to the kernel once a stream has ended.
//!
//! glibc keeps what a thread freed in that thread's arena: after a ladder ran
//! behind real time (its rung queues full of decoded pictures) and then ended,
//! RSS stayed up by the size of those queues although nothing held them. An
//! operator reads that as a leak. `malloc_trim` returns the free pages; it is
//! called when a stream ends, which is rare enough for its cost (a walk over
//! every arena, well under a millisecond at our heap sizes) not to matter.

/// Returns free heap pages to the kernel (glibc only; elsewhere a no-op).
/// Returns whether glibc said it released anything.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a padding and touches only the allocator's
        // own free lists; it is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_heap_goes_back_to_the_kernel() {
        // 6.4 MB in 100 kB blocks, under glibc's mmap threshold (128 kB), so
        // they come from the arena; freed, then trimmed: on glibc the trim
        // finds free pages to give back.
        let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 100_000]).collect();
        let sum: usize = blocks.iter().map(|b| b[0] as usize).sum();
        assert_eq!(sum, (0..64).sum::<usize>());
        drop(blocks);
        let released = release_free_heap();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(released, "6.4 MB of freed arena blocks and nothing to trim");
        let _ = released;
    }
}
