//! `str` arguments as UTF-8, without a copy where the interpreter allows.
//!
//! Where CPython's layout of a str is known (`str_storage`), an ASCII str's
//! characters are its UTF-8 and are lent as they are; any other str's are
//! transcoded with simdutf into a buffer each thread keeps (two of at most
//! 16 MiB each per calling thread), or for a batch into a buffer of the
//! batch's for each stretch of texts it reads.
//!
//! Elsewhere the calls of the stable ABI are used. The limited API of Python
//! 3.9 can only hand out a str's UTF-8 as a new bytes object (a copy of the
//! text, one allocation per text of a batch). CPython keeps an ASCII str in
//! UTF-8 already, and caches the UTF-8 of any other str once asked;
//! `PyUnicode_AsUTF8AndSize`, which every CPython 3 exports (and the stable
//! ABI lists from 3.10), lends that buffer. Where the symbol cannot be linked
//! from an abi3 wheel (Windows, whose python3.dll of 3.9 lacks it) the copy
//! is made as before. CPython makes that UTF-8 one character at a time, a
//! branch each: for a long text that is not ASCII it took 5-14% of encoding
//! it (o200k, one thread, text not seen before). Such a text is copied out as
//! UTF-32 instead (`PyUnicode_AsUCS4`, a plain widening copy) and transcoded
//! with simdutf.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use super::incref;
use super::str_storage::{self, Chars};
use crate::core_bpe::TextFeed;

#[cfg(not(windows))]
unsafe extern "C" {
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const std::ffi::c_char;
}

/// Through the stable ABI's calls, texts of at least this many characters
/// that are not ASCII are transcoded here: below it, the `isascii` call and
/// the copy cost more than they save.
const TRANSCODE_FROM_CHARS: usize = 1024;

/// Through the calls, texts of more characters than this are left to
/// CPython, so that the UTF-32 copy (4 bytes a character) never holds much
/// memory.
const TRANSCODE_UP_TO_CHARS: usize = 1 << 24;

/// Scratch buffers a thread keeps between calls up to this many bytes each,
/// so that a text of up to 4M characters does not fault its pages in afresh
/// each call (a longer one allocates; its encoding costs far more).
const KEEP_BYTES: usize = 16 << 20;

thread_local! {
    /// The UTF-32 copy of the text being transcoded.
    static WIDE: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
    /// A UTF-8 buffer from an earlier call, for the next to reuse.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// The UTF-8 of a long str that is not ASCII, transcoded from its UTF-32;
/// None where the str holds a lone surrogate (CPython then raises its error).
fn transcode(s: &Bound<'_, PyString>, chars: usize) -> PyResult<Option<Vec<u8>>> {
    let mut wide = WIDE.take();
    wide.clear();
    wide.reserve(chars);
    // SAFETY: `wide` has room for the str's `chars` code points; no NUL is added.
    let copied = unsafe { ffi::PyUnicode_AsUCS4(s.as_ptr(), wide.as_mut_ptr(), chars as ffi::Py_ssize_t, 0) };
    if copied.is_null() {
        WIDE.set(wide);
        return Err(PyErr::fetch(s.py()));
    }
    // SAFETY: PyUnicode_AsUCS4 wrote `chars` code points.
    unsafe { wide.set_len(chars) };
    let mut out = SPARE.take();
    out.clear();
    out.reserve(4 * chars);
    // SAFETY: `out` has room for 4 bytes per code point, UTF-8's most;
    // simdutf returns 0 for input that is not valid UTF-32 (a surrogate).
    let written = unsafe { simdutf::convert_utf32_to_utf8(wide.as_ptr(), chars, out.as_mut_ptr()) };
    if wide.capacity() * 4 <= KEEP_BYTES {
        WIDE.set(wide);
    }
    if written == 0 {
        SPARE.set(out);
        return Ok(None);
    }
    // SAFETY: simdutf wrote `written` bytes of UTF-8.
    unsafe { out.set_len(written) };
    Ok(Some(out))
}

/// The UTF-8 bytes of a str: lent by the str (kept alive here) or transcoded.
pub struct Utf8<'py> {
    owner: Owner<'py>,
    ptr: *const u8,
    len: usize,
}

enum Owner<'py> {
    Str(#[allow(dead_code)] Bound<'py, PyAny>),
    /// Transcoded here; handed back to the thread's spare on drop.
    Buffer(Vec<u8>, PhantomData<Bound<'py, PyAny>>),
}

impl Drop for Utf8<'_> {
    fn drop(&mut self) {
        if let Owner::Buffer(buf, _) = &mut self.owner {
            let buf = std::mem::take(buf);
            if buf.capacity() <= KEEP_BYTES {
                let spare = SPARE.take();
                SPARE.set(if spare.capacity() >= buf.capacity() { spare } else { buf });
            }
        }
    }
}

impl<'py> Utf8<'py> {
    /// The UTF-8 of `s`; a str with lone surrogates raises UnicodeEncodeError.
    pub fn of(s: &Bound<'py, PyString>) -> PyResult<Self> {
        // SAFETY: `s` is a live str, which `owner` keeps alive as long as the slice is used.
        match unsafe { str_storage::chars(s.as_ptr()) } {
            Some(Chars::Ascii(bytes)) => {
                let (ptr, len) = (bytes.as_ptr(), bytes.len());
                return Ok(Self { owner: Owner::Str(s.clone().into_any()), ptr, len });
            }
            Some(chars) => {
                let mut out = SPARE.take();
                out.clear();
                if chars.push_utf8(&mut out) {
                    let (ptr, len) = (out.as_ptr(), out.len());
                    return Ok(Self { owner: Owner::Buffer(out, PhantomData), ptr, len });
                }
                // A surrogate: CPython's call below raises its error.
                SPARE.set(out);
            }
            None => {}
        }
        Self::through_calls(s)
    }

    /// The UTF-8 of `s` through the stable ABI's calls only.
    fn through_calls(s: &Bound<'py, PyString>) -> PyResult<Self> {
        let py = s.py();
        // SAFETY: `s` is a live str.
        let chars = unsafe { ffi::PyUnicode_GetLength(s.as_ptr()) } as usize;
        // Only an exact str: a subclass could answer `isascii` its own way.
        if (TRANSCODE_FROM_CHARS..=TRANSCODE_UP_TO_CHARS).contains(&chars)
            && s.is_exact_instance_of::<PyString>()
            && !s.call_method0(intern!(py, "isascii"))?.is_truthy()?
        {
            if let Some(buf) = transcode(s, chars)? {
                let (ptr, len) = (buf.as_ptr(), buf.len());
                return Ok(Self { owner: Owner::Buffer(buf, PhantomData), ptr, len });
            }
        }
        #[cfg(not(windows))]
        {
            let mut len: ffi::Py_ssize_t = 0;
            // SAFETY: `s` is a live str; the buffer returned belongs to it and
            // lives as long as it does, which `owner` ensures.
            let ptr = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
            if ptr.is_null() {
                return Err(PyErr::fetch(py));
            }
            Ok(Self { owner: Owner::Str(s.clone().into_any()), ptr: ptr.cast(), len: len as usize })
        }
        #[cfg(windows)]
        {
            // SAFETY: `s` is a live str; the result is a new reference or NULL.
            let bytes = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_AsUTF8String(s.as_ptr()))? };
            let bytes = bytes.cast_into::<pyo3::types::PyBytes>()?;
            let data = bytes.as_bytes();
            let (ptr, len) = (data.as_ptr(), data.len());
            Ok(Self { owner: Owner::Str(bytes.into_any()), ptr, len })
        }
    }

    /// Whether the bytes were transcoded here rather than lent by the str.
    pub fn transcoded(&self) -> bool {
        matches!(self.owner, Owner::Buffer(..))
    }
}

impl Deref for Utf8<'_> {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        // SAFETY: `ptr` holds `len` bytes of valid UTF-8 (the interpreter's,
        // or simdutf's from valid UTF-32), alive and unchanged while `owner`
        // is: a str is immutable, and a buffer moved with its Vec keeps its heap.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

/// The texts of a batch (any iterable of str) as UTF-8, read for the
/// encoder's threads a stretch at a time (see [`TextFeed`]).
///
/// A batch of short texts spent about 30 ns a text here, all before any
/// thread started: an iterator step, a reference taken and later dropped,
/// and the type checks, each a call into the interpreter. Now an exact list
/// or tuple is read item by item (a reference to each str from the list
/// taken as it is read, into a list of the batch's own), anything else is
/// first made into a list of the batch's own (one loop in C); a text is
/// then read in place (`str_storage`), or where that cannot be, costs a type
/// check and two calls. Reading a stretch touches each of its strs first
/// (a cache miss each), while the threads encode the stretches before it.
pub struct TextBatch<'py> {
    source: Source<'py>,
    len: usize,
    /// How many texts have been read.
    next: usize,
    /// Each text's length is checked by this as it is read.
    check: fn(&str) -> PyResult<()>,
    /// The UTF-8 of the texts read in place that are not ASCII, a buffer a
    /// stretch (a buffer moved with its Vec keeps its heap).
    transcoded: Vec<Vec<u8>>,
    /// The texts transcoded through the interpreter's calls (see [`Utf8::of`]), kept with their buffers.
    long: Vec<Utf8<'py>>,
    /// Why the batch stopped: an item that is not a str, a str with lone
    /// surrogates, a text too long.
    error: Option<PyErr>,
}

/// Where a batch's strs are read from, and what keeps them alive while
/// they are encoded (whatever Python threads do meanwhile).
enum Source<'py> {
    /// The caller's list, with a list of the batch's own (no other code can
    /// reach it) that takes a reference to each text as it is read.
    List { list: Bound<'py, PyList>, held: Bound<'py, PyList> },
    /// The caller's tuple, which holds its items as long as it lives.
    Tuple(Bound<'py, PyTuple>),
    /// A list the batch made of any other iterable.
    Own(Bound<'py, PyList>),
}

impl<'py> TextBatch<'py> {
    /// The texts of `obj`, each checked by `check` once read; an item that
    /// is not a str is a TypeError naming its index, a str with lone
    /// surrogates a UnicodeEncodeError (see [`TextBatch::stopped`]).
    pub fn of(obj: &Bound<'py, PyAny>, check: fn(&str) -> PyResult<()>) -> PyResult<Self> {
        if obj.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err("texts must be a list of strings, not a single string"));
        }
        let py = obj.py();
        let source = if obj.is_exact_instance_of::<PyList>() {
            let list = obj.cast::<PyList>()?.clone();
            // SAFETY: a new list of `len` empty slots (NULL, which the
            // interpreter's list code allows) or NULL with an error set.
            let held = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(list.len() as ffi::Py_ssize_t))? };
            Source::List { list, held: held.cast_into::<PyList>()? }
        } else if obj.is_exact_instance_of::<PyTuple>() {
            Source::Tuple(obj.cast::<PyTuple>()?.clone())
        } else {
            // SAFETY: `obj` is live; the result is a new list or NULL with an error set.
            let own = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_List(obj.as_ptr()))? };
            Source::Own(own.cast_into::<PyList>()?)
        };
        let len = match &source {
            Source::List { held, .. } => held.len(),
            Source::Tuple(tuple) => tuple.len(),
            Source::Own(own) => own.len(),
        };
        Ok(Self { source, len, next: 0, check, transcoded: Vec::new(), long: Vec::new(), error: None })
    }

    /// Why the batch stopped, if it did: the encoder's results are then incomplete.
    pub fn stopped(&mut self) -> Option<PyErr> {
        self.error.take()
    }

    /// Text `index` (borrowed), kept alive by the batch as long as it lives.
    fn item(&self, index: usize) -> PyResult<*mut ffi::PyObject> {
        let i = index as ffi::Py_ssize_t;
        // SAFETY: each call is bounds-checked and returns a borrowed reference
        // or NULL with an error set; the GIL is held.
        let item = unsafe {
            match &self.source {
                Source::List { list, held } => {
                    let item = ffi::PyList_GetItem(list.as_ptr(), i);
                    if !item.is_null() {
                        // A reference of the batch's own, from the list no other code reaches
                        // (PyList_SetItem takes it over; the slot is empty, so nothing is dropped).
                        incref(item);
                        if ffi::PyList_SetItem(held.as_ptr(), i, item) != 0 {
                            return Err(PyErr::fetch(self.source_py()));
                        }
                    }
                    item
                }
                Source::Tuple(tuple) => ffi::PyTuple_GetItem(tuple.as_ptr(), i),
                Source::Own(own) => ffi::PyList_GetItem(own.as_ptr(), i),
            }
        };
        if item.is_null() {
            // Only Python code run meanwhile (a finalizer) could have shortened the list.
            return Err(PyRuntimeError::new_err(format!("texts changed size while they were read (at index {index})")));
        }
        Ok(item)
    }

    fn source_py(&self) -> Python<'py> {
        match &self.source {
            Source::List { list, .. } => list.py(),
            Source::Tuple(tuple) => tuple.py(),
            Source::Own(own) => own.py(),
        }
    }

    /// Reads texts into `slots` as [`TextFeed::read`] asks (one at least);
    /// the first error stops.
    fn read_into(&mut self, slots: &mut [&'static str], bytes: usize) -> PyResult<usize> {
        let py = self.source_py();
        let mut transcoded = Vec::new();
        // The texts transcoded into `transcoded`: (slot, start, end), made
        // into `&str`s once it has stopped growing.
        let mut spans = Vec::new();
        let (mut read, mut size) = (0, 0);
        while read < slots.len() && (read == 0 || size < bytes) {
            let index = self.next + read;
            let item = self.item(index)?;
            // SAFETY: a live object that the batch keeps alive as long as it lives.
            let text: &str = match unsafe { str_storage::chars(item) } {
                // SAFETY: ASCII is UTF-8; lent by a str the batch keeps alive and unchanged.
                Some(Chars::Ascii(bytes)) => unsafe { std::str::from_utf8_unchecked(bytes) },
                Some(chars) if chars.push_utf8(&mut transcoded) => {
                    // A failed push leaves `transcoded` as it was: each text starts where the last ended.
                    let start = spans.last().map_or(0, |&(_, _, end)| end);
                    spans.push((read, start, transcoded.len()));
                    size += transcoded.len() - start + 16;
                    read += 1;
                    continue;
                }
                // A surrogate (the calls below raise CPython's error), or not read in place.
                _ => self.read_through_calls(py, item, index)?,
            };
            (self.check)(text)?;
            // SAFETY: lent by a str that the batch keeps alive and unchanged, or
            // by a buffer in `long`, which the batch keeps as long as it lives.
            slots[read] = unsafe { std::mem::transmute::<&str, &'static str>(text) };
            size += text.len() + 16;
            read += 1;
        }
        for (slot, start, end) in spans {
            // SAFETY: simdutf's UTF-8 from valid characters; `transcoded` is
            // moved into the batch below, whose heap then never moves or changes.
            let text = unsafe { std::str::from_utf8_unchecked(&transcoded[start..end]) };
            (self.check)(text)?;
            // SAFETY: as above.
            slots[slot] = unsafe { std::mem::transmute::<&str, &'static str>(text) };
        }
        if !transcoded.is_empty() {
            self.transcoded.push(transcoded);
        }
        self.next += read;
        Ok(read)
    }

    /// The UTF-8 of `item` (text `index`) through the interpreter's calls.
    fn read_through_calls(&mut self, py: Python<'py>, item: *mut ffi::PyObject, index: usize) -> PyResult<&'py str> {
        // SAFETY: a live object; an exact str needs no call to find its flags.
        let is_str = unsafe {
            ffi::Py_TYPE(item) == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) || ffi::PyUnicode_Check(item) != 0
        };
        if !is_str {
            // SAFETY: a live object the batch keeps alive.
            let item = unsafe { Bound::from_borrowed_ptr(py, item) };
            return Err(not_a_str(&item, &format!("texts[{index}]")));
        }
        if let Some(lent) = lend_short(py, item) {
            return lent;
        }
        // SAFETY: a live str the batch keeps alive.
        let item = unsafe { Bound::from_borrowed_ptr(py, item) };
        let utf8 = Utf8::of(item.cast::<PyString>()?)?;
        // SAFETY: the bytes live as long as `utf8`, which `long` keeps as long
        // as the batch (a buffer moved with its Vec keeps its heap).
        let text = unsafe { std::mem::transmute::<&str, &'py str>(&*utf8) };
        self.long.push(utf8);
        Ok(text)
    }
}

impl TextFeed<'static> for TextBatch<'_> {
    fn count(&self) -> usize {
        self.len
    }

    fn read(&mut self, slots: &mut [&'static str], bytes: usize) -> Option<usize> {
        if self.error.is_some() {
            return None;
        }
        match self.read_into(slots, bytes) {
            Ok(read) => Some(read),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// The UTF-8 that the str `s` lends, where it is shorter than
/// [`TRANSCODE_FROM_CHARS`] characters (None: longer, or not lent here).
fn lend_short<'a>(py: Python<'_>, s: *mut ffi::PyObject) -> Option<PyResult<&'a str>> {
    #[cfg(not(windows))]
    {
        // SAFETY: `s` is a live str.
        let chars = unsafe { ffi::PyUnicode_GetLength(s) };
        if chars < 0 || chars as usize >= TRANSCODE_FROM_CHARS {
            return None;
        }
        let mut len: ffi::Py_ssize_t = 0;
        // SAFETY: as in `Utf8::of`: the buffer belongs to the str and lives as long as it does.
        let ptr = unsafe { PyUnicode_AsUTF8AndSize(s, &mut len) };
        if ptr.is_null() {
            return Some(Err(PyErr::fetch(py)));
        }
        // SAFETY: CPython's UTF-8 of a str is `len` bytes of valid UTF-8.
        Some(Ok(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr.cast(), len as usize)) }))
    }
    #[cfg(windows)]
    {
        let _ = (py, s);
        None
    }
}

/// The TypeError for `obj` where `what` must be a str.
fn not_a_str(obj: &Bound<'_, PyAny>, what: &str) -> PyErr {
    let name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{what} must be str, not {name}"))
}
