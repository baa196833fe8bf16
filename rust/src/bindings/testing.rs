//! `fastllm._core.testing`: functions that exist only for the test suite, kept
//! out of the public module.

use pyo3::prelude::*;

use pyo3::types::{PyBytes, PyString};

use super::text_args::Utf8;
use super::value_error;
use crate::pretokenize::Pretokenizer;

/// The UTF-8 the encoder is handed for `text`, and whether it was transcoded
/// here (see `text_args`) rather than lent by the interpreter.
#[pyfunction]
fn utf8_of<'py>(text: &Bound<'py, PyString>) -> PyResult<(Bound<'py, PyBytes>, bool)> {
    let utf8 = Utf8::of(text)?;
    Ok((PyBytes::new(text.py(), utf8.as_bytes()), utf8.transcoded()))
}

/// Whether strs are read where CPython keeps them (see `str_storage`); with
/// `on` given, turns that on or off first (off: every str through the
/// interpreter's calls, as where the layout is unknown).
#[pyfunction]
#[pyo3(signature = (on=None))]
fn strs_read_in_place(on: Option<bool>) -> bool {
    if let Some(on) = on {
        super::str_storage::set_read_in_place(on);
    }
    super::str_storage::read_in_place()
}

/// Whether lists of ids are filled through their item array rather than
/// `PyList_SetItem` (see `id_lists`): true on CPython.
#[pyfunction]
fn lists_filled_directly(py: Python<'_>) -> bool {
    super::id_lists::lists_filled_directly(py)
}

/// Splits `text` with the regex engine (built-in names resolved to their
/// regex): the reference the scanners and compiled patterns are tested against.
#[pyfunction]
fn split_regex(py: Python<'_>, pattern: &str, text: String) -> PyResult<Vec<String>> {
    let pre = Pretokenizer::regex_only(pattern).map_err(value_error)?;
    py.detach(|| pre.pieces(&text).map(|p| p.into_iter().map(str::to_string).collect())).map_err(value_error)
}

/// What splits with `pattern`: `scanner:NAME`, `compiled` (DFAs) or `regex`.
#[pyfunction]
fn split_engine(pattern: &str) -> PyResult<String> {
    Ok(Pretokenizer::new(pattern).map_err(value_error)?.engine_name())
}

/// Which compiled copy of the encoder's hot loops runs: `x86-64-v3` or
/// `portable` (`FASTLLM_PORTABLE=1` asks for the latter).
#[pyfunction]
fn encoder_copy() -> &'static str {
    crate::cpu::encoder_copy()
}

pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let testing = PyModule::new(py, "testing")?;
    testing.add("__name__", "fastllm._core.testing")?;
    testing.add_function(wrap_pyfunction!(split_regex, &testing)?)?;
    testing.add_function(wrap_pyfunction!(split_engine, &testing)?)?;
    testing.add_function(wrap_pyfunction!(utf8_of, &testing)?)?;
    testing.add_function(wrap_pyfunction!(strs_read_in_place, &testing)?)?;
    testing.add_function(wrap_pyfunction!(lists_filled_directly, &testing)?)?;
    testing.add_function(wrap_pyfunction!(encoder_copy, &testing)?)?;
    parent.add_submodule(&testing)?;
    // A submodule of an extension is found by `import fastllm._core.testing`
    // only through sys.modules.
    py.import("sys")?.getattr("modules")?.set_item("fastllm._core.testing", &testing)?;
    Ok(())
}
