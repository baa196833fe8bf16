//! Bindings for the chunker: `FileChunks` streams a UTF-8 file in chunks and
//! `text_chunks` cuts a string by the same rules; `builtin_patterns` gives the
//! built-in split patterns as data. Reading and cutting release the GIL.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::{os_error, value_error};
use crate::chunking::{self, ChunkError, FileChunks};
use crate::pretokenize::{Pretokenizer, BUILTIN_PATTERNS};
use crate::specials::SpecialMatcher;

fn to_py_err(e: ChunkError) -> PyErr {
    match &e {
        ChunkError::Io { error, .. } => os_error(error, e.to_string()),
        ChunkError::NotUtf8 { .. } => value_error(e),
    }
}

/// The pretokenizer and special tokens the cutting rules need.
fn rules(chunk_bytes: usize, pattern: &str, special_tokens: &[String]) -> PyResult<(Pretokenizer, SpecialMatcher)> {
    if chunk_bytes == 0 {
        return Err(value_error("chunk_bytes must be at least 1"));
    }
    let pretokenizer = Pretokenizer::new(pattern).map_err(value_error)?;
    let specials = SpecialMatcher::new(special_tokens).map_err(value_error)?;
    Ok((pretokenizer, specials))
}

/// `FileChunks(path, chunk_bytes, pattern, special_tokens)`: iterates over
/// `(text, start_offset)` chunks of a UTF-8 file, each about `chunk_bytes` long
/// and cut where no piece of the split pattern crosses the cut.
#[pyclass(module = "fastllm._core", name = "FileChunks")]
pub struct PyFileChunks {
    /// None once the file is used up or has failed.
    reader: Option<FileChunks>,
    specials: SpecialMatcher,
    pretokenizer: Pretokenizer,
    offset: u64,
}

#[pymethods]
impl PyFileChunks {
    #[new]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        chunk_bytes: usize,
        pattern: &str,
        special_tokens: Vec<String>,
    ) -> PyResult<Self> {
        let (pretokenizer, specials) = rules(chunk_bytes, pattern, &special_tokens)?;
        let reader = py.detach(|| FileChunks::open(&path, chunk_bytes)).map_err(to_py_err)?;
        Ok(Self { reader: Some(reader), specials, pretokenizer, offset: 0 })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<(String, u64)>> {
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        let (specials, pretokenizer) = (&self.specials, &self.pretokenizer);
        let start = reader.offset();
        let next = py.detach(|| reader.next_chunk(specials, pretokenizer));
        self.offset = reader.offset();
        match next {
            Ok(Some(chunk)) => Ok(Some((chunk, start))),
            Ok(None) => {
                self.reader = None;
                Ok(None)
            }
            Err(e) => {
                self.reader = None;
                Err(to_py_err(e))
            }
        }
    }

    /// Bytes of the file handed out so far (where the next chunk starts).
    #[getter]
    fn offset(&self) -> u64 {
        self.offset
    }
}

/// Cuts `text` into chunks by the rules of `FileChunks`; they concatenate to `text`.
#[pyfunction]
fn text_chunks<'py>(
    py: Python<'py>,
    text: String,
    chunk_bytes: usize,
    pattern: &str,
    special_tokens: Vec<String>,
) -> PyResult<Vec<Bound<'py, PyString>>> {
    let (pretokenizer, specials) = rules(chunk_bytes, pattern, &special_tokens)?;
    let chunks = py.detach(|| chunking::text_chunks(&text, chunk_bytes, &specials, &pretokenizer));
    Ok(chunks.into_iter().map(|c| PyString::new(py, c)).collect())
}

/// The built-in split patterns: {"gpt2": regex, "cl100k": regex, "o200k": regex}.
#[pyfunction]
fn builtin_patterns(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (name, regex) in BUILTIN_PATTERNS {
        d.set_item(name, regex)?;
    }
    Ok(d)
}

/// Whether `pattern` (a built-in name or a regex) matches at every position of
/// every text, so that skipping unmatched text (tiktoken) and keeping it (HF's
/// `Split`) split alike: true for the patterns that run on a hand-written scanner
/// (the built-in and open-model patterns, in any spelling). ValueError if it does
/// not compile.
#[pyfunction]
fn pattern_matches_all_text(pattern: &str) -> PyResult<bool> {
    Ok(Pretokenizer::new(pattern).map_err(value_error)?.matches_all_text())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pattern_matches_all_text, m)?)?;
    m.add_class::<PyFileChunks>()?;
    m.add_function(wrap_pyfunction!(text_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_patterns, m)?)?;
    Ok(())
}
