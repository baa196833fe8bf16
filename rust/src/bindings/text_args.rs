//! `str` arguments as UTF-8, without a copy where the interpreter allows.
//!
//! The limited API of Python 3.9 can only hand out a str's UTF-8 as a new
//! bytes object (a copy of the text, one allocation per text of a batch).
//! CPython keeps an ASCII str in UTF-8 already, and caches the UTF-8 of any
//! other str once asked; `PyUnicode_AsUTF8AndSize`, which every CPython 3
//! exports (and the stable ABI lists from 3.10), lends that buffer. Where
//! the symbol cannot be linked from an abi3 wheel (Windows, whose python3.dll
//! of 3.9 lacks it) the copy is made as before.

use std::ops::Deref;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

#[cfg(not(windows))]
unsafe extern "C" {
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const std::ffi::c_char;
}

/// The UTF-8 bytes of a str, kept valid by a reference to their owner.
pub struct Utf8<'py> {
    _owner: Bound<'py, PyAny>,
    ptr: *const u8,
    len: usize,
}

impl<'py> Utf8<'py> {
    /// The UTF-8 of `s`; a str with lone surrogates raises UnicodeEncodeError.
    pub fn of(s: &Bound<'py, PyString>) -> PyResult<Self> {
        let py = s.py();
        #[cfg(not(windows))]
        {
            let mut len: ffi::Py_ssize_t = 0;
            // SAFETY: `s` is a live str; the buffer returned belongs to it and
            // lives as long as it does, which `_owner` ensures.
            let ptr = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
            if ptr.is_null() {
                return Err(PyErr::fetch(py));
            }
            Ok(Self { _owner: s.clone().into_any(), ptr: ptr.cast(), len: len as usize })
        }
        #[cfg(windows)]
        {
            // SAFETY: `s` is a live str; the result is a new reference or NULL.
            let bytes = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_AsUTF8String(s.as_ptr()))? };
            let bytes = bytes.cast_into::<pyo3::types::PyBytes>()?;
            let data = bytes.as_bytes();
            let (ptr, len) = (data.as_ptr(), data.len());
            Ok(Self { _owner: bytes.into_any(), ptr, len })
        }
    }

    /// The UTF-8 of `obj`, which must be a str (TypeError naming `what` otherwise).
    pub fn extract(obj: &Bound<'py, PyAny>, what: impl FnOnce() -> String) -> PyResult<Self> {
        match obj.cast::<PyString>() {
            Ok(s) => Self::of(s),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{} must be str, not {}",
                what(),
                obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
            ))),
        }
    }
}

impl Deref for Utf8<'_> {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        // SAFETY: the interpreter produced valid UTF-8 of `len` bytes at
        // `ptr`, alive while `_owner` is, and never changed (str is immutable).
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
}

/// The texts of a batch: any iterable of str.
pub fn texts_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Vec<Utf8<'py>>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("texts must be a list of strings, not a single string"));
    }
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for (index, item) in obj.try_iter()?.enumerate() {
        out.push(Utf8::extract(&item?, || format!("texts[{index}]"))?);
    }
    Ok(out)
}
