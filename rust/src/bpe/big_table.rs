//! Zero-initialized arrays for the vocabulary's lookup tables, on huge pages
//! where the OS offers them.
//!
//! The tables are megabytes and read at random, one line per piece; with
//! 4 KiB pages nearly every read also misses the TLB. On Linux a table of at
//! least one huge page is a mapping of its own, 2 MiB-aligned and marked
//! `MADV_HUGEPAGE` before anything touches it, so the kernel backs it with
//! huge pages as it is first read or written (a hint only: without
//! transparent huge pages it is ordinary memory). It is not taken from the
//! allocator: memory the process freed earlier comes back already faulted
//! in as 4 KiB pages, which the hint does not change (in a process that had
//! read a 30 MB file, an 8 MiB piece cache got no huge page), and a fresh
//! mapping is zero already, so nothing writes the table's megabytes up front.

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
    memory: Memory,
}

/// Where a table's memory came from, to give it back the same way.
enum Memory {
    Allocated(Layout),
    /// A mapping of this many bytes (Linux, tables of a huge page or more).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Mapped(usize),
}

// SAFETY: a BigTable owns its elements like a Box<[T]> does.
unsafe impl<T: Zeroable + Send> Send for BigTable<T> {}
unsafe impl<T: Zeroable + Sync> Sync for BigTable<T> {}

impl<T: Zeroable> BigTable<T> {
    pub fn zeroed(len: usize) -> Self {
        let len = len.max(1);
        let bytes = std::mem::size_of::<T>().checked_mul(len).expect("table size overflows");
        #[cfg(target_os = "linux")]
        if bytes >= HUGE_PAGE {
            let size = bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            if let Some(ptr) = map_huge(size) {
                return Self { ptr: ptr.cast(), len, memory: Memory::Mapped(size) };
            }
        }
        let layout = Layout::from_size_align(bytes, std::mem::align_of::<T>().max(64)).expect("table layout");
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else { handle_alloc_error(layout) };
        // SAFETY: `raw` is valid for `bytes` bytes, and zero is a valid `T`.
        unsafe { std::ptr::write_bytes(raw, 0, bytes) };
        Self { ptr: ptr.cast(), len, memory: Memory::Allocated(layout) }
    }
}

/// A fresh, zero-filled, 2 MiB-aligned mapping of `size` bytes (a multiple
/// of 2 MiB) advised to use huge pages; None if the kernel refuses it.
#[cfg(target_os = "linux")]
fn map_huge(size: usize) -> Option<NonNull<u8>> {
    use libc::{
        c_void, madvise, mmap, munmap, MADV_HUGEPAGE, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE,
    };
    // Map one huge page more than needed and trim to the aligned part.
    let span = size + HUGE_PAGE;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
    let raw = unsafe { mmap(std::ptr::null_mut(), span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) };
    if raw == MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (aligned - start, start + span - (aligned + size));
    // SAFETY: both ranges lie in the mapping just made and outside the part kept;
    // the advice only affects how that part is backed.
    unsafe {
        if head > 0 {
            munmap(raw, head);
        }
        if tail > 0 {
            munmap((aligned + size) as *mut c_void, tail);
        }
        madvise(aligned as *mut c_void, size, MADV_HUGEPAGE);
    }
    NonNull::new(aligned as *mut u8)
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
        match self.memory {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            Memory::Allocated(layout) => unsafe { dealloc(self.ptr.as_ptr().cast(), layout) },
            // SAFETY: mapped by `map_huge` with exactly this size.
            #[cfg(target_os = "linux")]
            Memory::Mapped(size) => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), size);
            },
            #[cfg(not(target_os = "linux"))]
            Memory::Mapped(_) => unreachable!("only Linux maps tables"),
        }
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

    /// A huge table is memory nothing has touched yet, aligned to a huge
    /// page and advised to use them: its pages are not resident until used
    /// (zeroing it, or reusing memory the process freed, would fault them in
    /// as small pages before the advice could count).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_huge_table_is_a_fresh_mapping_advised_for_huge_pages() {
        // Memory freed just before, which an allocator would hand out again.
        drop(vec![1u8; 16 << 20]);
        let len = (5 << 20) / 8;
        let mut t = BigTable::<u64>::zeroed(len);
        let ptr = t.as_ptr() as usize;
        assert_eq!(ptr % HUGE_PAGE, 0);
        let size = (len * 8).div_ceil(HUGE_PAGE) * HUGE_PAGE;
        let page = 4096;
        let mut resident = vec![0u8; size / page];
        // SAFETY: the range is the table's mapping; `resident` has a byte per page.
        assert_eq!(unsafe { libc::mincore(ptr as *mut libc::c_void, size, resident.as_mut_ptr()) }, 0);
        assert!(resident.iter().all(|&r| r & 1 == 0), "pages of a new table were already resident");
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The mapping that holds the table (a neighbour with the same flags may share it).
        let holds = |line: &str| {
            let range = line.split_whitespace().next().unwrap_or("");
            let bounds = range
                .split_once('-')
                .and_then(|(a, b)| Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?)));
            bounds.is_some_and(|(a, b)| a <= ptr && ptr + size <= b)
        };
        let flags = smaps
            .lines()
            .skip_while(|l| !holds(l))
            .find(|l| l.starts_with("VmFlags:"))
            .expect("the table's mapping in /proc/self/smaps");
        // A kernel built without transparent huge pages refuses the advice (and has no such file).
        if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            assert!(flags.split_whitespace().any(|f| f == "hg"), "not advised for huge pages: {flags}");
        }
        t[len - 1] = 3;
        assert!(t.iter().take(len - 1).all(|&x| x == 0) && t[len - 1] == 3);
    }
}
