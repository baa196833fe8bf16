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

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::bpe::Rank;

/// The shared int objects of ids `0..len` (made on first use).
pub struct IdObjects {
    slots: Box<[AtomicPtr<ffi::PyObject>]>,
}

/// How far ahead of the id being set [`IdObjects::list`] asks for an id's
/// slot, and its int. Far: setting an item takes a few nanoseconds, a miss
/// to memory a hundred or more (in-process A/B, o200k: +11-15% at 128/64,
/// +3% at 16/8).
const SLOT_AHEAD: usize = 128;
const INT_AHEAD: usize = 64;

impl IdObjects {
    pub fn new(len: usize) -> Self {
        Self { slots: (0..len).map(|_| AtomicPtr::new(null_mut())).collect() }
    }

    /// A new reference to the int `id`.
    #[inline]
    fn get(&self, py: Python<'_>, id: Rank) -> PyResult<*mut ffi::PyObject> {
        let Some(slot) = self.slots.get(id as usize) else {
            return new_int(py, id);
        };
        let mut obj = slot.load(Ordering::Acquire);
        if obj.is_null() {
            let made = new_int(py, id)?;
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
        if let Some(&id) = ids.get(i + SLOT_AHEAD) {
            if let Some(slot) = self.slots.get(id as usize) {
                crate::bpe::vocab::prefetch(slot);
            }
        }
        if let Some(&id) = ids.get(i + INT_AHEAD) {
            if let Some(slot) = self.slots.get(id as usize) {
                let obj = slot.load(Ordering::Relaxed);
                if !obj.is_null() {
                    // SAFETY: a live int that `slots` owns (freed only on drop);
                    // only its address is used, for a hint.
                    crate::bpe::vocab::prefetch(unsafe { &*obj });
                }
            }
        }
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
        // set); each item is set exactly once with a new reference, which
        // PyList_SetItem steals. Should `get` fail midway, the list is dropped
        // with some NULL items, which list deallocation allows.
        unsafe {
            let list = ffi::PyList_New(range.len() as ffi::Py_ssize_t);
            if list.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = Bound::from_owned_ptr(py, list);
            let start = range.start;
            for (i, &id) in all[range].iter().enumerate() {
                self.prefetch_ahead(all, start + i);
                let obj = self.get(py, id)?;
                ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, obj);
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

/// `Py_INCREF` as the stable ABI's C headers for Python 3.9 write it: one
/// add to the count in the object's first word, where the limited API of
/// pyo3 calls the interpreter's `Py_IncRef` (a call per token). CPython keeps
/// this form valid for stable-ABI extensions on later versions, immortal
/// objects included; the GIL (which the caller holds) makes it race-free.
///
/// # Safety
/// `obj` is a live object and the caller holds the GIL.
#[inline(always)]
unsafe fn incref(obj: *mut ffi::PyObject) {
    let count = obj.cast::<ffi::Py_ssize_t>();
    *count += 1;
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
