//! Large buffers on transparent huge pages.
//!
//! Training reads the data set at random (one shuffled image after another) and walks
//! megabytes of activations per step. With 4 KiB pages each image read is a TLB miss, and in a
//! virtual machine a miss walks two page tables: on this project's 2-core VMs, writing a random
//! CIFAR-10-sized image with 4 MiB touched in between took 14–27 µs on 4 KiB pages against 2–3 µs
//! on 2 MiB pages (`cargo run --release --example bench_pages`; bench/README.md). Linux hands out huge pages only to memory that asks for them where
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` (a common default), so the
//! buffers that matter ask, before their first touch. Elsewhere this is a no-op; results never
//! depend on it.

/// An empty `Vec` with room for `n` elements whose memory asks for huge pages (Linux
/// `MADV_HUGEPAGE` over the 2 MiB-aligned part of it; nothing for buffers under 4 MiB, or where
/// the allocation fails: then an empty `Vec` without room, which grows as usual). The pages are
/// given on first touch, so fill the `Vec` after this.
pub fn huge_page_vec<T>(n: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::new();
    if v.try_reserve_exact(n).is_ok() {
        advise_huge_pages(v.as_mut_ptr() as usize, v.capacity() * std::mem::size_of::<T>());
    }
    v
}

/// Asks for huge pages over the 2 MiB-aligned part of `[start, start + len)`.
pub(crate) fn advise_huge_pages(start: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
        return;
    }
    let first = start.next_multiple_of(HUGE);
    let end = (start + len) & !(HUGE - 1);
    if end > first {
        #[cfg(target_os = "linux")]
        // SAFETY: the range lies inside one live allocation of the caller's; MADV_HUGEPAGE changes
        // how its pages are backed, never their contents, and a failure (an old kernel, THP off)
        // leaves everything as it was.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer has its room and behaves as any `Vec` (the advice changes no value), small and large.
    #[test]
    fn huge_page_vecs_hold_what_is_written() {
        for n in [0, 1, 1000, 3 << 20] {
            let mut v = huge_page_vec::<u32>(n);
            assert!(v.is_empty() && v.capacity() >= n);
            v.extend((0..n as u32).map(|i| i.wrapping_mul(2_654_435_761)));
            assert!(v.iter().enumerate().all(|(i, &x)| x == (i as u32).wrapping_mul(2_654_435_761)));
        }
    }
}
