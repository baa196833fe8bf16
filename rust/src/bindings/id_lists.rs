//! Token ids as Python lists, fast.
//!
//! Creating a Python int per token (an allocation each, for ids above 256)
//! costs about as much as encoding the text. Ints are immutable, so each
//! tokenizer makes the int of an id once, the first time it is returned, and
//! every list after that holds a new reference to the same object: a
//! reference count per token instead of an allocation.

use std::ops::Range;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::incref;
use crate::bpe::Rank;

/// The shared int objects of ids `0..len` (made on first use).
pub struct IdObjects {
    slots: Box<[AtomicPtr<ffi::PyObject>]>,
    /// The int each id stands for, where ids are not the tokens' own (see
    /// [`crate::id_map`]): the list of a text then costs what it costs without.
    values: Option<Box<[Rank]>>,
}

/// How far ahead of the id being set [`IdObjects::list`] asks for an id's
/// slot, and its int. Far: setting an item takes a few nanoseconds, a miss
/// to memory a hundred or more (in-process A/B, o200k: +11-15% at 128/64,
/// +3% at 16/8). On Zen 3 with the tables evicted, 256/128 over 128/64:
/// o200k code x1.016-1.045 (its ints spread over 200K ids), the rest
/// x0.96-1.02, median x0.996; 64/32 x0.97-0.99.
const SLOT_AHEAD: usize = 256;
const INT_AHEAD: usize = 128;

/// Lists of this many ids or more get an item array of fastllm's making,
/// which is not zeroed first: `PyList_New` zeroes the array it makes, which
/// for a long text's list wrote as many bytes as filling it (8 of the 229
/// instructions a token of English, cl100k, by callgrind). In-process A/B
/// without the zeroing: en x1.00-1.03, code x1.01-1.08, latin x1.00.
/// Short lists keep CPython's array: their zeroing costs little.
const OWN_ARRAY_FROM: usize = 1024;

impl IdObjects {
    pub fn new(len: usize) -> Self {
        Self { slots: (0..len).map(|_| AtomicPtr::new(null_mut())).collect(), values: None }
    }

    /// Ids `0..values.len()` whose ints are `values[id]`.
    pub fn with_values(values: &[Rank]) -> Self {
        let slots = (0..values.len()).map(|_| AtomicPtr::new(null_mut())).collect();
        Self { slots, values: Some(values.into()) }
    }

    /// The int value of `id`.
    #[inline]
    fn value(&self, id: Rank) -> Rank {
        self.values.as_ref().and_then(|v| v.get(id as usize).copied()).unwrap_or(id)
    }

    /// A new reference to the int `id`.
    #[inline]
    fn get(&self, py: Python<'_>, id: Rank) -> PyResult<*mut ffi::PyObject> {
        let Some(slot) = self.slots.get(id as usize) else {
            return new_int(py, self.value(id));
        };
        let mut obj = slot.load(Ordering::Acquire);
        if obj.is_null() {
            let made = new_int(py, self.value(id))?;
            // The GIL serializes callers, so the exchange cannot fail on GIL
            // builds; should it ever, keep the winner's object.
            obj = match slot.compare_exchange(null_mut(), made, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => made,
                Err(winner) => {
                    // SAFETY: `made` is our own new reference, attached to the interpreter.
                    unsafe { ffi::Py_DecRef(made) };
                    winner
                }
            };
        }
        // SAFETY: `obj` is a live int owned by `slots`; the caller gets a new reference.
        unsafe { incref(obj) };
        Ok(obj)
    }

    /// Starts loading what ids further on than `i` will touch: the slot
    /// of the one [`SLOT_AHEAD`] on, and the int of the one [`INT_AHEAD`] on
    /// (whose slot was asked for earlier). Both are scattered over megabytes,
    /// and each id's int is found only through its slot: without the hints,
    /// the two misses of one id wait on each other, and the list's ids one by one.
    #[inline(always)]
    fn prefetch_ahead(&self, ids: &[Rank], i: usize) {
        self.prefetch_for(ids.get(i + SLOT_AHEAD).copied(), ids.get(i + INT_AHEAD).copied());
    }

    /// [`IdObjects::prefetch_ahead`] by the two ids ahead (None past the ids).
    #[inline(always)]
    fn prefetch_for(&self, slot_of: Option<Rank>, int_of: Option<Rank>) {
        let slots: &[AtomicPtr<ffi::PyObject>] = &self.slots;
        // Neither hint checks its address: a hint never faults, and one at
        // address 0 (an int not made yet) or past the slots does nothing.
        if let Some(id) = slot_of {
            crate::bpe::vocab::prefetch_ptr(slots.as_ptr().wrapping_add(id as usize).cast());
        }
        if let Some(slot) = int_of.and_then(|id| slots.get(id as usize)) {
            crate::bpe::vocab::prefetch_ptr(slot.load(Ordering::Relaxed).cast());
        }
    }

    /// Sets `items[i]` to a new reference to the int of `all[range][i]`,
    /// from the first on, while that int is made; returns how many were set.
    /// The loop of [`IdObjects::list_in`] for ids met before: without the
    /// call that makes an int, the tables and the list stay in registers
    /// (with that call in the loop, a list of C code's ids took 44
    /// instructions a piece, counted by callgrind; then 30).
    ///
    /// # Safety
    /// `items` has room for `range.len()` pointers, and the caller holds the GIL.
    #[inline(always)]
    unsafe fn set_made(&self, all: &[Rank], range: Range<usize>, items: *mut *mut ffi::PyObject) -> usize {
        let slots: &[AtomicPtr<ffi::PyObject>] = &self.slots;
        let ids = &all[range.clone()];
        let set = |i: usize| {
            let Some(slot) = slots.get(ids[i] as usize) else { return false };
            let obj = slot.load(Ordering::Acquire);
            if obj.is_null() {
                return false;
            }
            // SAFETY: a live int owned by `slots`; the list takes the new
            // reference, into room the caller guarantees.
            unsafe {
                incref(obj);
                *items.add(i) = obj;
            }
            true
        };
        // Before `sure`, both ids ahead are in `all`: read without checking
        // (the checks were 8 of the 25 instructions an id took).
        let sure = all.len().saturating_sub(range.start + SLOT_AHEAD).min(ids.len());
        let mut i = 0;
        while i < sure {
            let at = range.start + i;
            // SAFETY: `at + INT_AHEAD < at + SLOT_AHEAD < all.len()`, as `i < sure`.
            let ahead = unsafe { (*all.get_unchecked(at + SLOT_AHEAD), *all.get_unchecked(at + INT_AHEAD)) };
            self.prefetch_for(Some(ahead.0), Some(ahead.1));
            if !set(i) {
                return i;
            }
            i += 1;
        }
        while i < ids.len() {
            self.prefetch_ahead(all, range.start + i);
            if !set(i) {
                return i;
            }
            i += 1;
        }
        i
    }

    /// Sets `items[i]` to a new reference to the int of `all[range][i]`, in
    /// order; returns how many were set, all of them unless making an int
    /// failed (the error).
    ///
    /// # Safety
    /// `items` has room for `range.len()` pointers, and the caller holds the GIL.
    unsafe fn set_items(
        &self,
        py: Python<'_>,
        all: &[Rank],
        range: Range<usize>,
        items: *mut *mut ffi::PyObject,
    ) -> (usize, PyResult<()>) {
        let start = range.start;
        let mut i = 0;
        while i < range.len() {
            // SAFETY: room for the range's items, as the caller guarantees.
            i += unsafe { self.set_made(all, start + i..range.end, items.add(i)) };
            if i < range.len() {
                match self.get(py, all[start + i]) {
                    // SAFETY: as above.
                    Ok(obj) => unsafe { *items.add(i) = obj },
                    Err(err) => return (i, Err(err)),
                }
                i += 1;
            }
        }
        (i, Ok(()))
    }

    /// `ids` as a Python list of ints, not tracked by the cyclic garbage collector.
    pub fn list<'py>(&self, py: Python<'py>, ids: &[Rank]) -> PyResult<Bound<'py, PyList>> {
        self.list_in(py, ids, 0..ids.len())
    }

    /// `all[range]` as a list, as [`IdObjects::list`] makes it; what it
    /// prefetches ahead runs on past the range into `all` (a batch's short
    /// texts, one after another: each too short to hide its own misses).
    pub fn list_in<'py>(&self, py: Python<'py>, all: &[Rank], range: Range<usize>) -> PyResult<Bound<'py, PyList>> {
        // SAFETY: PyList_New returns a new reference (or NULL with an exception
        // set); each item is set exactly once with a new reference, which the
        // list takes over (as PyList_SetItem steals it). Should `get` fail
        // midway, the list is dropped with some NULL items, which list
        // deallocation allows, or, with an item array of its own, as long as
        // the items set.
        unsafe {
            let n = range.len();
            let own_array = n >= OWN_ARRAY_FROM && lists_filled_directly(py);
            let list = ffi::PyList_New(if own_array { 0 } else { n as ffi::Py_ssize_t });
            if list.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = Bound::from_owned_ptr(py, list);
            if own_array {
                let items = ffi::PyMem_Malloc(n * size_of::<*mut ffi::PyObject>()).cast::<*mut ffi::PyObject>();
                if items.is_null() {
                    return Err(pyo3::exceptions::PyMemoryError::new_err(format!("no memory for a list of {n} ids")));
                }
                // The array is the list's from here (freed with it by PyMem_Free,
                // as CPython frees its own), holding no item until the length
                // says so. Words as `lists_are_standard` found them: the length,
                // then after the header the array and its allocated length.
                let words = list.as_ptr().cast::<usize>();
                *words.add(HEADER_WORDS) = items as usize;
                *words.add(HEADER_WORDS + 1) = n;
                let (set, done) = self.set_items(py, all, range, items);
                *words.add(LENGTH_WORD) = set;
                done?;
            } else if let Some(items) = item_array(py, list.as_ptr()) {
                // SAFETY: a new list of `n` items, each NULL until set here.
                self.set_items(py, all, range, items).1?;
            } else {
                let start = range.start;
                for (i, &id) in all[range].iter().enumerate() {
                    self.prefetch_ahead(all, start + i);
                    ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, self.get(py, id)?);
                }
            }
            // Out of the cyclic collector, as CPython leaves tuples of ints:
            // ints cannot make a cycle, and every collection that finds a
            // list of ids alive would walk all of its items (a fifth of a
            // batch of short lines went to that). Only a cycle the caller
            // builds through the list itself (`ids.append(ids)`) goes
            // uncollected. A list being dropped untracks itself again, which
            // CPython allows.
            ffi::PyObject_GC_UnTrack(list.as_ptr().cast());
            Ok(list.cast_into_unchecked())
        }
    }
}

/// Whether lists are laid out as CPython's `PyListObject`: the header of a
/// variable-size object (reference count, type, length), then the pointer to
/// the item array, then its allocated length. Checked once on a list made
/// for it before any other list's items are written through it.
static STANDARD_LISTS: OnceLock<bool> = OnceLock::new();

/// The item array of `list`, a list just made by `PyList_New`, where lists
/// have CPython's layout (None elsewhere: items are then set through
/// `PyList_SetItem`). The stable ABI has no `PyList_SET_ITEM`, and a call to
/// `PyList_SetItem`, with a type and bounds check, per token was a tenth of
/// the time to a list (hot 256 KB, cl100k: en 4-11%, C code 7-15% sooner without it).
///
/// # Safety
/// `list` is a live list made by `PyList_New`.
#[inline]
unsafe fn item_array(py: Python<'_>, list: *mut ffi::PyObject) -> Option<*mut *mut ffi::PyObject> {
    // SAFETY: where the layout is CPython's, the word after the header is the item array.
    lists_filled_directly(py).then(|| unsafe { *list.cast::<*mut *mut ffi::PyObject>().add(HEADER_WORDS) })
}

/// Words of a variable-size object's header: reference count, type, length.
const HEADER_WORDS: usize = 3;
/// The header's word that holds the length.
const LENGTH_WORD: usize = 2;

/// Makes a list of three known objects and checks that its words after the
/// header are what CPython keeps there: the length, an aligned pointer to an
/// array holding those objects in order, and an allocated length of at least
/// three. The pointer is followed only once the words around it fit.
///
/// # Safety
/// The caller holds the GIL.
unsafe fn lists_are_standard() -> bool {
    unsafe {
        let list = ffi::PyList_New(3);
        if list.is_null() {
            ffi::PyErr_Clear();
            return false;
        }
        let objects = [ffi::Py_None(), ffi::Py_True(), ffi::Py_False()];
        for (k, &obj) in objects.iter().enumerate() {
            ffi::Py_IncRef(obj);
            ffi::PyList_SetItem(list, k as ffi::Py_ssize_t, obj);
        }
        // A list object is at least these five words in every CPython.
        let words = list.cast::<usize>();
        let (len, items, allocated) = (*words.add(LENGTH_WORD), *words.add(HEADER_WORDS), *words.add(HEADER_WORDS + 1));
        let standard = len == 3
            && (3..64).contains(&allocated)
            && items != 0
            && items % align_of::<*mut ffi::PyObject>() == 0
            && objects.iter().enumerate().all(|(k, &obj)| *(items as *const *mut ffi::PyObject).add(k) == obj);
        ffi::Py_DecRef(list);
        standard
    }
}

/// Whether lists of ids are filled through their item array (see [`item_array`]).
pub fn lists_filled_directly(_py: Python<'_>) -> bool {
    // SAFETY: `_py` shows the GIL is held.
    *STANDARD_LISTS.get_or_init(|| unsafe { lists_are_standard() })
}

/// Calls `each(position, value)` on the ints of `list`, in order. Where lists
/// have CPython's layout, items that are exactly ints are read in place: no
/// reference, type-flag or bounds call per item, which was most of the time
/// to decode a list. Any other item goes through PyO3's extraction, which may
/// run Python code (`__index__`) that changes the list, so from there on
/// items are fetched one at a time. `each` must not run Python code.
pub fn each_int(list: &Bound<'_, PyList>, mut each: impl FnMut(usize, i64) -> PyResult<()>) -> PyResult<()> {
    let py = list.py();
    let mut k = 0;
    if lists_filled_directly(py) {
        let len = list.len();
        // SAFETY: we hold the GIL and lists have CPython's layout (probed), so
        // the word after the header is the array of the list's `len` items;
        // nothing below runs Python code, so the list stays as it is.
        let items = unsafe { *list.as_ptr().cast::<*mut *mut ffi::PyObject>().add(HEADER_WORDS) };
        let int_type = std::ptr::addr_of_mut!(ffi::PyLong_Type);
        while k < len {
            // SAFETY: `k < len`; the list holds a reference to its item.
            let item = unsafe { *items.add(k) };
            // SAFETY: `item` is a live object.
            if unsafe { ffi::Py_TYPE(item) } != int_type {
                break;
            }
            // SAFETY: an exact int: no Python code runs; an error is set only on overflow.
            let value = unsafe { ffi::PyLong_AsLongLong(item) };
            if value == -1 {
                if let Some(err) = PyErr::take(py) {
                    return Err(err);
                }
            }
            each(k, value)?;
            k += 1;
        }
    }
    while k < list.len() {
        each(k, list.get_item(k)?.extract()?)?;
        k += 1;
    }
    Ok(())
}

fn new_int(py: Python<'_>, id: Rank) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: called while attached to the interpreter (we hold `py`).
    let obj = unsafe { ffi::PyLong_FromUnsignedLong(id as std::os::raw::c_ulong) };
    if obj.is_null() {
        Err(PyErr::fetch(py))
    } else {
        Ok(obj)
    }
}

impl Drop for IdObjects {
    fn drop(&mut self) {
        // Owners are dropped by the interpreter with the GIL held; should one
        // ever be dropped where Python cannot be attached (at shutdown), the
        // ints are left to the interpreter rather than freed unsafely.
        let slots = std::mem::take(&mut self.slots);
        Python::try_attach(|_py| {
            for slot in slots.iter() {
                let obj = slot.load(Ordering::Acquire);
                if !obj.is_null() {
                    // SAFETY: attached; `obj` is the reference `slots` owns.
                    unsafe { ffi::Py_DecRef(obj) };
                }
            }
        });
    }
}
