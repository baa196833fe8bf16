//! Zero-initialized arrays for the vocabulary's lookup tables, on huge pages
//! where the OS offers them.
//!
//! The tables are megabytes and read at random, one line per piece; with
//! 4 KiB pages nearly every read also misses the TLB. On Linux the memory is
//! 2 MiB-aligned and marked `MADV_HUGEPAGE` before it is first touched, so a
//! table sits in a handful of TLB entries (a hint only: without transparent
//! huge pages it is ordinary memory).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for plain integer aggregates (no references, no niches).
pub unsafe trait Zeroable: Copy {}

unsafe impl Zeroable for u32 {}
unsafe impl Zeroable for u64 {}

const HUGE_PAGE: usize = 2 << 20;

/// A fixed-length, zero-initialized array.
pub struct BigTable<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: a BigTable owns its elements like a Box<[T]> does.
unsafe impl<T: Zeroable + Send> Send for BigTable<T> {}
unsafe impl<T: Zeroable + Sync> Sync for BigTable<T> {}

impl<T: Zeroable> BigTable<T> {
    pub fn zeroed(len: usize) -> Self {
        let len = len.max(1);
        let bytes = std::mem::size_of::<T>().checked_mul(len).expect("table size overflows");
        let huge = bytes >= HUGE_PAGE;
        let (size, align) = if huge {
            (bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE, HUGE_PAGE)
        } else {
            (bytes, std::mem::align_of::<T>().max(64))
        };
        let layout = Layout::from_size_align(size, align).expect("table layout");
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else { handle_alloc_error(layout) };
        #[cfg(target_os = "linux")]
        if huge {
            // SAFETY: the range is this allocation's, 2 MiB-aligned; the call
            // only advises the kernel and cannot affect memory safety.
            unsafe { libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `raw` is valid for `size` bytes, and zero is a valid `T`.
        unsafe { std::ptr::write_bytes(raw, 0, size) };
        Self { ptr: ptr.cast(), len, layout }
    }
}

impl<T: Zeroable> Deref for BigTable<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialized elements for the table's life.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for BigTable<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for BigTable<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_small_and_huge() {
        for len in [1, 1000, (3 << 20) / 8] {
            let mut t = BigTable::<u64>::zeroed(len);
            assert_eq!(t.len(), len);
            assert!(t.iter().all(|&x| x == 0));
            t[len - 1] = 7;
            assert_eq!(t[len - 1], 7);
        }
    }
}
