//! The one thin PyO3 module, `fastllm._core`: converts between Python and the
//! plain-Rust core and releases the GIL around heavy work. Its Python-side
//! description is `python/fastllm/_core.pyi`; keep the two in step.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

mod chunking;
mod flat_batch;
mod hf_json;
mod id_lists;
mod str_storage;
mod testing;
mod text_args;
mod tokenizer;
mod trainer;

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// FileNotFoundError for a missing file, OSError for any other I/O error.
fn os_error(error: &std::io::Error, message: String) -> PyErr {
    match error.kind() {
        std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}

/// `Py_INCREF` as the stable ABI's C headers for Python 3.9 write it: one
/// add to the count in the object's first word, where the limited API of
/// pyo3 calls the interpreter's `Py_IncRef` (a call per token or text). CPython keeps
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

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    str_storage::decide(m.py());
    tokenizer::register(m)?;
    hf_json::register(m)?;
    trainer::register(m)?;
    chunking::register(m)?;
    testing::register(m)?;
    Ok(())
}
