//! Reading a `tokenizer.json` fast: the file split in Rust ([`crate::hf_json`]),
//! its model's vocab and merges kept here as an `HfModel` (which answers the
//! added tokens' checks as a dict would), and the common case's vocabulary read
//! from it or from the Python objects of a parsed file ([`crate::hf_vocab`]).

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString};

use super::text_args::Utf8;
use crate::hf_json::{self, Model};
use crate::hf_vocab::{Added, ByteLevel, Merges};

/// A tokenizer.json model's `vocab` and `merges`, parsed in Rust; to Python
/// it is the vocab, a read-only mapping of text to id (`len`, `in`, `[]`,
/// `get`), which is all the reader's checks ask of it.
#[pyclass(frozen, name = "HfModel", module = "fastllm._core")]
pub struct PyHfModel(Model);

#[pymethods]
impl PyHfModel {
    fn __len__(&self) -> usize {
        self.0.ids.len()
    }

    fn __contains__(&self, text: &Bound<'_, PyAny>) -> bool {
        self.id(text).is_some()
    }

    fn __getitem__(&self, text: &Bound<'_, PyAny>) -> PyResult<i64> {
        self.id(text).ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(text.clone().unbind()))
    }

    #[pyo3(signature = (text, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.id(text) {
            Some(id) => Ok(id.into_pyobject(py)?.into_any()),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    fn __repr__(&self) -> String {
        format!("<HfModel: {} tokens, {} merges>", self.0.ids.len(), self.0.merges.len())
    }
}

impl PyHfModel {
    fn id(&self, text: &Bound<'_, PyAny>) -> Option<i64> {
        let text = text.cast::<PyString>().ok()?;
        let text = Utf8::of(text).ok()?;
        self.0.ids.get(&*text).copied()
    }
}

/// The parts of the `tokenizer.json` bytes `data`: the top-level members
/// other than `model` and `model`'s other than `vocab` and `merges`, each as
/// (name, JSON text), and the model's vocab and merges as an `HfModel`; None
/// where anything is unusual (the Python reader then parses the whole file).
#[pyfunction]
fn split_hf_json(py: Python<'_>, data: &[u8]) -> Option<(Vec<(String, String)>, Vec<(String, String)>, PyHfModel)> {
    let document = py.detach(|| std::str::from_utf8(data).ok().and_then(hf_json::split))?;
    Some((document.members, document.model_members, PyHfModel(document.model)))
}

/// The mergeable tokens by rank, and the merge list where they merge by it.
type PlainVocab<'py> = (Vec<Bound<'py, PyBytes>>, Option<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>>);

/// [`read_hf_vocab_plain`] of an `HfModel`.
#[pyfunction]
fn read_hf_model_plain<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyHfModel>,
    added: &Bound<'py, PyAny>,
    every_token_merged: bool,
) -> PyResult<Option<PlainVocab<'py>>> {
    let model = &model.get().0;
    plain_vocab(py, &model.entries, &model.merges, added, every_token_merged)
}

/// A tokenizer.json's byte-level vocabulary when nothing in `vocab` (text ->
/// id), `merges` ("A B" or [A, B]) and `added` ((content, id, special) each)
/// is unusual: the mergeable tokens by rank, and None, or the merges as
/// (left, right) token bytes where rank-based BPE would not give tokenizers'
/// ids (the parts are the token list's own bytes objects). None otherwise
/// (see `hf_vocab::read`: the Python reader then reads it and says what is wrong).
#[pyfunction]
fn read_hf_vocab_plain<'py>(
    py: Python<'py>,
    vocab: &Bound<'py, PyDict>,
    merges: &Bound<'py, PyAny>,
    added: &Bound<'py, PyAny>,
    every_token_merged: bool,
) -> PyResult<Option<PlainVocab<'py>>> {
    let byte_level = ByteLevel::default();
    let mut entries = Vec::with_capacity(vocab.len());
    for (text, id) in vocab.iter() {
        let Ok(text) = text.cast::<PyString>() else { return Ok(None) };
        // Exactly an int (not a bool), and one that fits.
        let Some(id) = id.is_exact_instance_of::<PyInt>().then(|| id.extract::<i64>().ok()).flatten() else {
            return Ok(None);
        };
        // Lone surrogates (not UTF-8) are the Python reader's to explain.
        let Ok(text) = Utf8::of(text) else { return Ok(None) };
        entries.push((byte_level.bytes(&text), id));
    }
    let Ok(merges) = merges.cast::<PyList>() else { return Ok(None) };
    let mut pairs = Merges::default();
    for merge in merges.iter() {
        let pushed = if let Ok(text) = merge.cast::<PyString>() {
            match Utf8::of(text).ok().as_deref().and_then(|t| t.split_once(' ')) {
                Some((left, right)) if !right.contains(' ') => pairs.push(&byte_level, left, right),
                _ => false,
            }
        } else if let Ok(list) = merge.cast::<PyList>() {
            match (list.len(), list.get_item(0).ok(), list.get_item(1).ok()) {
                (2, Some(left), Some(right)) => match (left.cast::<PyString>(), right.cast::<PyString>()) {
                    (Ok(left), Ok(right)) => match (Utf8::of(left), Utf8::of(right)) {
                        (Ok(left), Ok(right)) => pairs.push(&byte_level, &left, &right),
                        _ => false,
                    },
                    _ => false,
                },
                _ => false,
            }
        } else {
            false
        };
        if !pushed {
            return Ok(None);
        }
    }
    plain_vocab(py, &entries, &pairs, added, every_token_merged)
}

/// [`crate::hf_vocab::read`] of the entries and merges with the added tokens
/// `added`, as Python objects.
fn plain_vocab<'py>(
    py: Python<'py>,
    entries: &[(Option<Vec<u8>>, i64)],
    pairs: &Merges,
    added: &Bound<'py, PyAny>,
    every_token_merged: bool,
) -> PyResult<Option<PlainVocab<'py>>> {
    // Anything but (str, int that fits, bool) items: not the common case.
    let Ok(added) = added.extract::<Vec<(String, i64, bool)>>() else { return Ok(None) };
    let added: Vec<Added<'_>> =
        added.iter().map(|(content, id, special)| Added { content, id: *id, special: *special }).collect();
    let byte_level = ByteLevel::default();
    let read = py.detach(|| crate::hf_vocab::read(entries, pairs, &added, &byte_level, every_token_merged));
    Ok(read.map(|vocab| {
        let tokens: Vec<_> = vocab.tokens.iter().map(|t| PyBytes::new(py, t)).collect();
        let listed =
            vocab.listed.map(|pairs| pairs.iter().map(|&(l, r)| (tokens[l].clone(), tokens[r].clone())).collect());
        (tokens, listed)
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHfModel>()?;
    m.add_function(wrap_pyfunction!(split_hf_json, m)?)?;
    m.add_function(wrap_pyfunction!(read_hf_model_plain, m)?)?;
    m.add_function(wrap_pyfunction!(read_hf_vocab_plain, m)?)?;
    Ok(())
}
