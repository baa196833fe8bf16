//! A batch's ids as one flat array of u32 and the offsets of each text's,
//! for numpy: no Python object per text or per token.
//!
//! The pool's threads hand over each run of texts as it is encoded; the
//! runs are only kept (nothing needs the GIL), then laid end to end once
//! the batch is done, in one copy into the bytes object numpy reads.

use std::borrow::Cow;
use std::sync::Mutex;

use pyo3::exceptions::PyOverflowError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::value_error;
use crate::bpe::Rank;
use crate::core_bpe::{BatchSink, CoreError, FirstFailure, Run};
use crate::id_map::IdMap;

/// Keeps a batch's runs (their ids already external) and its first failure.
pub struct FlatSink<'a> {
    map: Option<&'a IdMap>,
    texts: usize,
    runs: Mutex<Vec<Run>>,
    /// A disallowed special token.
    error: FirstFailure<CoreError>,
}

impl<'a> FlatSink<'a> {
    pub fn new(map: Option<&'a IdMap>, texts: usize) -> Self {
        Self { map, texts, runs: Mutex::new(Vec::new()), error: FirstFailure::default() }
    }

    /// The ids of every text in order as little-endian u32 bytes, and the
    /// `texts + 1` offsets (little-endian i64) of each text's first id and
    /// of the end; or the first failure by text index (ValueError).
    pub fn into_bytes<'py>(self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        if let Some(error) = self.error.into_error() {
            return Err(value_error(error));
        }
        let mut runs = self.runs.into_inner().unwrap_or_else(|e| e.into_inner());
        runs.sort_unstable_by_key(|run| run.start);
        let mut offsets = Vec::with_capacity(self.texts + 1);
        offsets.push(0i64);
        let mut total = 0usize;
        for run in &runs {
            // Every text is delivered once, in runs of consecutive texts.
            assert_eq!(run.start, offsets.len() - 1, "a batch's runs cover its texts in order");
            offsets.extend(run.ends.iter().map(|&end| ((total + end) as i64).to_le()));
            total += run.ids.len();
        }
        assert_eq!(offsets.len(), self.texts + 1, "every text of the batch is delivered");
        let ids = bytes_of_parts(py, total * 4, runs.iter().map(|run| le_bytes(&run.ids)))?;
        // SAFETY: any i64 is eight initialized bytes, and u8 has no alignment;
        // each is little-endian already.
        let offsets = unsafe { std::slice::from_raw_parts(offsets.as_ptr().cast::<u8>(), offsets.len() * 8) };
        let offsets = bytes_of_parts(py, offsets.len(), std::iter::once(Cow::Borrowed(offsets)))?;
        Ok((ids, offsets))
    }
}

/// A bytes object of `parts` end to end (`len` bytes in all), copied into it
/// once: `PyBytes::new_with` zero-fills its buffer first, which took half as
/// long as the copy of a batch's ids.
fn bytes_of_parts<'py, 'a>(
    py: Python<'py>,
    len: usize,
    parts: impl Iterator<Item = Cow<'a, [u8]>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let size = ffi::Py_ssize_t::try_from(len).map_err(|_| PyOverflowError::new_err("batch output too large"))?;
    // SAFETY: with a null source CPython allocates `len` bytes left unset, or
    // returns NULL with an error set.
    let bytes = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), size))? };
    // SAFETY: a bytes object's buffer, `len` bytes long, not yet seen by any other code.
    let buf = unsafe { ffi::PyBytes_AsString(bytes.as_ptr()) }.cast::<u8>();
    let mut at = 0;
    for part in parts {
        assert!(part.len() <= len - at, "the parts fit the bytes object");
        // SAFETY: `at + part.len() <= len`, checked above; the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), buf.add(at), part.len()) };
        at += part.len();
    }
    // Every byte is set before Python sees the object.
    assert_eq!(at, len, "the parts fill the bytes object");
    // SAFETY: PyBytes_FromStringAndSize returns a bytes object.
    Ok(unsafe { bytes.cast_into_unchecked() })
}

/// `ids` as little-endian u32 bytes: a view of them where that is their
/// layout in memory, a copy elsewhere.
pub fn le_bytes(ids: &[Rank]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: any u32 is four initialized bytes, and u8 has no alignment.
        Cow::Borrowed(unsafe { std::slice::from_raw_parts(ids.as_ptr().cast::<u8>(), std::mem::size_of_val(ids)) })
    } else {
        Cow::Owned(ids.iter().flat_map(|id| id.to_le_bytes()).collect())
    }
}

impl BatchSink for FlatSink<'_> {
    /// The batch's texts are read with the GIL held; it is released while
    /// the threads encode (nothing here needs it).
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        Python::attach(|py| py.detach(f))
    }

    fn deliver(&self, mut run: Run) {
        if let Some((index, error)) = run.error.take() {
            self.error.record(index, error);
        }
        // On the pool's thread, beside the encoding of other runs.
        if let Some(map) = self.map {
            map.to_external(&mut run.ids);
        }
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).push(run);
    }

    /// A run is only kept here, so smaller runs cost little and let the
    /// threads finish closer together on short texts.
    fn min_run_bytes(&self) -> usize {
        1 << 13
    }
}
