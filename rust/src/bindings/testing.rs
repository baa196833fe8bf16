//! `fastllm._core.testing`: functions that exist only for the test suite, kept
//! out of the public module.

use pyo3::prelude::*;

use super::value_error;
use crate::pretokenize::Pretokenizer;

/// Splits `text` with the regex engine (built-in names resolved to their
/// regex): the reference the hand-written scanners are tested against.
#[pyfunction]
fn split_regex(py: Python<'_>, pattern: &str, text: String) -> PyResult<Vec<String>> {
    let pre = Pretokenizer::regex_only(pattern).map_err(value_error)?;
    let pieces = py.detach(|| pre.pieces(&text).map(|p| p.into_iter().map(str::to_string).collect()));
    pieces.map_err(value_error)
}

pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let testing = PyModule::new(py, "testing")?;
    testing.add("__name__", "fastllm._core.testing")?;
    testing.add_function(wrap_pyfunction!(split_regex, &testing)?)?;
    parent.add_submodule(&testing)?;
    // A submodule of an extension is found by `import fastllm._core.testing`
    // only through sys.modules.
    py.import("sys")?.getattr("modules")?.set_item("fastllm._core.testing", &testing)?;
    Ok(())
}
