//! `str` arguments as UTF-8, without a copy where the interpreter allows.
//!
//! Where CPython's layout of a str is known (`str_storage`), an ASCII str's
//! characters are its UTF-8 and are lent as they are; any other str's are
//! transcoded with simdutf into a buffer each thread keeps (two of at most
//! 16 MiB each per calling thread), or for a batch into one buffer of the
//! batch's.
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

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use super::str_storage::{self, Chars};

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

/// The texts of a batch (any iterable of str) as UTF-8, for the encoder's threads.
///
/// A batch of short texts spent about 30 ns a text here and in passes over its
/// `Utf8`s, all before any thread starts: an iterator step, a reference
/// taken and later dropped, and the type checks, each a call into the
/// interpreter. The texts are now first taken into a list of the batch's
/// own (one loop in C), which keeps every str alive while its UTF-8 is
/// lent; a text is then read in place (`str_storage`), or where that cannot
/// be, costs a type check and two calls.
pub struct TextBatch<'py> {
    /// The batch's texts in a list no other code can reach: none of its strs
    /// is dropped, whatever Python threads do while the batch is encoded.
    _held: Bound<'py, PyList>,
    /// The UTF-8 of the texts read in place that are not ASCII, end to end.
    _transcoded: Vec<u8>,
    /// The texts transcoded through the interpreter's calls (see [`Utf8::of`]), kept with their buffers.
    _long: Vec<Utf8<'py>>,
    /// Each text's UTF-8, lent by a str in `_held` or a buffer in `_transcoded` or `_long`.
    texts: Vec<&'static str>,
}

impl<'py> TextBatch<'py> {
    /// The texts of `obj`; an item that is not a str is a TypeError naming
    /// its index, a str with lone surrogates a UnicodeEncodeError.
    pub fn of(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err("texts must be a list of strings, not a single string"));
        }
        let py = obj.py();
        // SAFETY: `obj` is live; the result is a new list or NULL with an error set.
        let held = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_List(obj.as_ptr()))? };
        let held = held.cast_into::<PyList>()?;
        let n = held.len();
        let mut texts: Vec<&'static str> = Vec::with_capacity(n);
        let mut long = Vec::new();
        // The texts transcoded into `transcoded`: (index, start, end), made
        // into `&str`s once it has stopped growing.
        let mut transcoded = Vec::new();
        let mut spans = Vec::new();
        for index in 0..n {
            // SAFETY: `index` is within the list, which nothing else can change;
            // the reference is borrowed from it and lives as long as it does.
            let item = unsafe { ffi::PyList_GetItem(held.as_ptr(), index as ffi::Py_ssize_t) };
            // SAFETY: a live object that `held` keeps alive as long as `texts`.
            match unsafe { str_storage::chars(item) } {
                Some(Chars::Ascii(bytes)) => {
                    // SAFETY: ASCII is UTF-8; lent by a str that `held` keeps alive and unchanged.
                    texts.push(unsafe { std::str::from_utf8_unchecked(bytes) });
                    continue;
                }
                Some(chars) => {
                    let start = transcoded.len();
                    if chars.push_utf8(&mut transcoded) {
                        spans.push((index, start, transcoded.len()));
                        texts.push("");
                        continue;
                    }
                    // A surrogate: the calls below raise CPython's error.
                }
                None => {}
            }
            // SAFETY: a live object; an exact str needs no call to find its flags.
            let is_str = unsafe {
                ffi::Py_TYPE(item) == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) || ffi::PyUnicode_Check(item) != 0
            };
            if !is_str {
                // SAFETY: a live object borrowed from `held`.
                let item = unsafe { Bound::from_borrowed_ptr(py, item) };
                return Err(not_a_str(&item, &format!("texts[{index}]")));
            }
            let text: &str = match lend_short(py, item) {
                Some(lent) => lent?,
                None => {
                    // SAFETY: a live str borrowed from `held`.
                    let item = unsafe { Bound::from_borrowed_ptr(py, item) };
                    let utf8 = Utf8::of(item.cast::<PyString>()?)?;
                    // SAFETY: the bytes live as long as `utf8`, which `_long` keeps
                    // as long as `texts` (a buffer moved with its Vec keeps its heap).
                    let text = unsafe { std::mem::transmute::<&str, &'static str>(&*utf8) };
                    long.push(utf8);
                    text
                }
            };
            // SAFETY: lent by a str that `held` keeps alive and unchanged, or as above.
            texts.push(unsafe { std::mem::transmute::<&str, &'static str>(text) });
        }
        for (index, start, end) in spans {
            // SAFETY: simdutf's UTF-8 from valid characters; `transcoded` is
            // moved into the batch, whose heap then never moves or changes.
            texts[index] = unsafe {
                std::mem::transmute::<&str, &'static str>(std::str::from_utf8_unchecked(&transcoded[start..end]))
            };
        }
        Ok(Self { _held: held, _transcoded: transcoded, _long: long, texts })
    }

    /// The texts' UTF-8, in order.
    pub fn texts(&self) -> &[&str] {
        &self.texts
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
