//! Bindings for the tokenizer core: `CoreBPE` and `IncrementalDecoder`.
//! Heavy calls run with the GIL released.

use std::collections::HashSet;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::value_error;
use crate::added_tokens::AddedToken;
use crate::bpe::Rank;
use crate::core_bpe::{CoreBpe, SpecialPolicy};
use crate::pretokenize::pipeline::{Behavior, Normalizer, PipelineSpec, Split, Step};
use crate::utf8_stream::Utf8Stream;

/// Token ids from Python ints; a negative id is a ValueError.
fn to_ids(ids: &[i64]) -> PyResult<Vec<u64>> {
    ids.iter()
        .enumerate()
        .map(|(position, &id)| {
            u64::try_from(id)
                .map_err(|_| value_error(format!("invalid token id {id} at position {position}: ids are non-negative")))
        })
        .collect()
}

/// Texts are indexed with u32 inside the merge: refuse 4 GiB and more.
fn check_len(text: &str) -> PyResult<()> {
    if text.len() >= u32::MAX as usize {
        return Err(value_error(format!(
            "text of {} bytes is too long to encode in one call (limit 4 GiB); split it",
            text.len()
        )));
    }
    Ok(())
}

/// A set of strings from any iterable of str; "all" means every special token.
fn str_set(obj: &Bound<'_, PyAny>, all: &[String]) -> PyResult<HashSet<String>> {
    if let Ok(s) = obj.cast::<PyString>() {
        return if s.to_cow()? == "all" {
            Ok(all.iter().cloned().collect())
        } else {
            Err(PyTypeError::new_err("special-token sets must be a set of strings or \"all\", not a single string"))
        };
    }
    let mut out = HashSet::new();
    for item in obj.try_iter()? {
        out.insert(item?.extract::<String>()?);
    }
    Ok(out)
}

/// A pipeline description from Python: `(normalizer, steps, added_tokens)` with
/// `normalizer` None or "nfc"; each step `("split", pattern, behavior, invert)`,
/// `("digits", individual)` or `("byte_level", add_prefix_space, use_regex)`;
/// each added token `(content, id, special, single_word, lstrip, rstrip, normalized)`.
fn pipeline_spec(obj: &Bound<'_, PyAny>) -> PyResult<PipelineSpec> {
    type Described<'py> = (Option<String>, Vec<Bound<'py, PyAny>>, Vec<(String, i64, bool, bool, bool, bool, bool)>);
    let (normalizer, steps, added): Described<'_> = obj.extract()?;
    let normalizer = Normalizer::parse(normalizer.as_deref()).map_err(value_error)?;
    let steps = steps.iter().map(pipeline_step).collect::<PyResult<Vec<_>>>()?;
    let added_tokens = added
        .into_iter()
        .map(|(content, id, special, single_word, lstrip, rstrip, normalized)| {
            let id = Rank::try_from(id)
                .ok()
                .filter(|&i| i != Rank::MAX)
                .ok_or_else(|| value_error(format!("added token {content:?} has invalid id {id}")))?;
            Ok(AddedToken { content, id, special, single_word, lstrip, rstrip, normalized })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PipelineSpec { normalizer, steps, added_tokens })
}

fn pipeline_step(step: &Bound<'_, PyAny>) -> PyResult<Step> {
    let kind: String = step.get_item(0)?.extract()?;
    match kind.as_str() {
        "split" => {
            let (_, pattern, behavior, invert): (String, String, String, bool) = step.extract()?;
            let behavior = Behavior::parse(&behavior).map_err(value_error)?;
            Ok(Step::Split(Box::new(Split::new(&pattern, behavior, invert).map_err(value_error)?)))
        }
        "digits" => {
            let (_, individual): (String, bool) = step.extract()?;
            Ok(Step::Digits { individual })
        }
        "byte_level" => {
            let (_, add_prefix_space, use_regex): (String, bool, bool) = step.extract()?;
            Ok(Step::ByteLevel { add_prefix_space, use_regex })
        }
        other => Err(value_error(format!("unknown pre-tokenizer step {other:?} (known: split, digits, byte_level)"))),
    }
}

/// A byte-level BPE tokenizer core: `CoreBPE(mergeable, special_tokens, pattern, pipeline=None)`.
///
/// `mergeable[i]` is the bytes of the token with id/rank `i`; `special_tokens`
/// maps strings to ids outside `range(len(mergeable))`; `pattern` is a built-in
/// name (gpt2, cl100k, o200k, or r50k_base/cl100k_base/o200k_base) or a regex.
/// `pipeline` (see `pipeline_spec`) adds what HF tokenizer.json has beyond that:
/// a normalizer, several pre-tokenizer steps, added tokens with flags.
#[pyclass(module = "fastllm._core", name = "CoreBPE", frozen)]
pub struct PyCoreBpe {
    core: Arc<CoreBpe>,
    special_names: Vec<String>,
}

impl PyCoreBpe {
    fn policy<'a>(&self, allowed: &'a HashSet<String>, disallowed: &'a HashSet<String>) -> SpecialPolicy<'a> {
        SpecialPolicy {
            allowed: allowed.iter().map(String::as_str).collect(),
            disallowed: disallowed.iter().map(String::as_str).collect(),
        }
    }

    fn sets(
        &self,
        allowed: Option<&Bound<'_, PyAny>>,
        disallowed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(HashSet<String>, HashSet<String>)> {
        let allowed = match allowed {
            Some(a) => str_set(a, &self.special_names)?,
            None => HashSet::new(),
        };
        // As in tiktoken: "all" (the default) is every special not allowed, while a set is
        // taken as given, so a special both allowed and disallowed is an error where it occurs.
        let disallowed = match disallowed {
            Some(d) if d.cast::<PyString>().is_err() => str_set(d, &self.special_names)?,
            Some(d) => str_set(d, &self.special_names)?.into_iter().filter(|s| !allowed.contains(s)).collect(),
            None => self.special_names.iter().filter(|s| !allowed.contains(*s)).cloned().collect(),
        };
        Ok((allowed, disallowed))
    }
}

#[pymethods]
impl PyCoreBpe {
    #[new]
    #[pyo3(signature = (mergeable, special_tokens, pattern, pipeline=None))]
    fn new(
        py: Python<'_>,
        mergeable: Vec<PyBackedBytes>,
        special_tokens: std::collections::HashMap<String, i64>,
        pattern: &str,
        pipeline: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let spec = pipeline.map(pipeline_spec).transpose()?;
        let mergeable: Vec<Vec<u8>> = mergeable.iter().map(|b| b.to_vec()).collect();
        let mut specials = Vec::with_capacity(special_tokens.len());
        for (name, id) in special_tokens {
            let id = Rank::try_from(id)
                .ok()
                .filter(|&i| i != Rank::MAX)
                .ok_or_else(|| value_error(format!("special token {name:?} has invalid id {id}")))?;
            specials.push((name, id));
        }
        let pattern = pattern.to_string();
        let core = py
            .detach(move || match spec {
                None => CoreBpe::new(mergeable, &specials, &pattern),
                Some(spec) => CoreBpe::with_pipeline(mergeable, &specials, &pattern, spec),
            })
            .map_err(value_error)?;
        let special_names = core.special_tokens().map(|(n, _)| n.to_string()).collect();
        Ok(Self { core: Arc::new(core), special_names })
    }

    /// Encodes `text` ignoring special tokens entirely.
    fn encode_ordinary(&self, py: Python<'_>, text: String) -> PyResult<Vec<Rank>> {
        check_len(&text)?;
        py.detach(|| self.core.encode_ordinary(&text)).map_err(value_error)
    }

    /// tiktoken's `encode`: specials in `allowed_special` become their id; a
    /// special in `disallowed_special` found in the text raises ValueError.
    #[pyo3(signature = (text, allowed_special=None, disallowed_special=None))]
    fn encode(
        &self,
        py: Python<'_>,
        text: String,
        allowed_special: Option<&Bound<'_, PyAny>>,
        disallowed_special: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Rank>> {
        check_len(&text)?;
        let (allowed, disallowed) = self.sets(allowed_special, disallowed_special)?;
        let policy = self.policy(&allowed, &disallowed);
        py.detach(|| self.core.encode(&text, &policy)).map_err(value_error)
    }

    /// Like `encode`, returned as little-endian u32 bytes (for numpy.frombuffer).
    #[pyo3(signature = (text, allowed_special=None, disallowed_special=None))]
    fn encode_to_u32_bytes<'py>(
        &self,
        py: Python<'py>,
        text: String,
        allowed_special: Option<&Bound<'py, PyAny>>,
        disallowed_special: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        check_len(&text)?;
        let (allowed, disallowed) = self.sets(allowed_special, disallowed_special)?;
        let policy = self.policy(&allowed, &disallowed);
        let bytes = py
            .detach(|| {
                self.core
                    .encode(&text, &policy)
                    .map(|ids| ids.iter().flat_map(|id| id.to_le_bytes()).collect::<Vec<u8>>())
            })
            .map_err(value_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Encodes many texts in parallel (rayon; `num_threads=None`: all cores).
    #[pyo3(signature = (texts, allowed_special=None, disallowed_special=None, num_threads=None))]
    fn encode_batch(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        allowed_special: Option<&Bound<'_, PyAny>>,
        disallowed_special: Option<&Bound<'_, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Vec<Rank>>> {
        texts.iter().try_for_each(|t| check_len(t))?;
        let (allowed, disallowed) = self.sets(allowed_special, disallowed_special)?;
        let policy = self.policy(&allowed, &disallowed);
        py.detach(|| self.core.encode_batch(&texts, &policy, num_threads)).map_err(value_error)
    }

    /// Encodes many texts in parallel, ignoring special tokens.
    #[pyo3(signature = (texts, num_threads=None))]
    fn encode_ordinary_batch(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Vec<Rank>>> {
        texts.iter().try_for_each(|t| check_len(t))?;
        py.detach(|| self.core.encode_ordinary_batch(&texts, num_threads)).map_err(value_error)
    }

    /// The concatenated bytes of `ids`; unknown or negative ids raise ValueError.
    fn decode_bytes<'py>(&self, py: Python<'py>, ids: Vec<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let ids = to_ids(&ids)?;
        let bytes = py.detach(|| self.core.decode_bytes(ids)).map_err(value_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The bytes of one token; an unknown id raises ValueError.
    fn decode_single_token_bytes<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = u64::try_from(id)
            .ok()
            .and_then(|id| self.core.token_bytes(id))
            .ok_or_else(|| value_error(format!("unknown token id {id}")))?;
        Ok(PyBytes::new(py, bytes))
    }

    /// The pre-tokenizer pieces of `text` (normalized first, when the pipeline
    /// has a normalizer; added and special tokens are not looked for);
    /// ValueError if the regex engine gives up on a custom pattern.
    fn split(&self, py: Python<'_>, text: String) -> PyResult<Vec<String>> {
        py.detach(|| match self.core.pipeline() {
            Some(pipeline) => pipeline.pieces(&text),
            None => self.core.pretokenizer().pieces(&text).map(|p| p.into_iter().map(str::to_string).collect()),
        })
        .map_err(value_error)
    }

    /// A streaming decoder that emits only complete UTF-8 characters.
    fn incremental_decoder(&self) -> PyIncrementalDecoder {
        PyIncrementalDecoder { core: Arc::clone(&self.core), stream: Utf8Stream::new() }
    }

    /// Max token id + 1.
    #[getter]
    fn n_vocab(&self) -> usize {
        self.core.n_vocab()
    }

    /// The pattern as given: a built-in name or a regex.
    #[getter]
    fn pattern(&self) -> &str {
        self.core.pattern()
    }

    /// The regex source of the split pattern.
    #[getter]
    fn pattern_regex(&self) -> &str {
        self.core.pattern_regex()
    }

    /// Special tokens as {string: id}.
    #[getter]
    fn special_tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, id) in self.core.special_tokens() {
            d.set_item(name, id)?;
        }
        Ok(d)
    }

    /// The mergeable tokens' bytes, by rank.
    fn mergeable_tokens<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.core.mergeable_tokens().iter().map(|b| PyBytes::new(py, b)).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "CoreBPE(n_vocab={}, pattern={:?}, special_tokens={})",
            self.core.n_vocab(),
            self.core.pattern(),
            self.special_names.len()
        )
    }
}

/// Streaming decoder: `add(id)` returns the characters completed so far.
#[pyclass(module = "fastllm._core", name = "IncrementalDecoder")]
pub struct PyIncrementalDecoder {
    core: Arc<CoreBpe>,
    stream: Utf8Stream,
}

impl PyIncrementalDecoder {
    fn token(&self, id: i64, position: usize) -> PyResult<&[u8]> {
        u64::try_from(id)
            .ok()
            .and_then(|id| self.core.token_bytes(id))
            .ok_or_else(|| value_error(format!("unknown token id {id} at position {position}")))
    }
}

#[pymethods]
impl PyIncrementalDecoder {
    /// Feeds one token id; returns the complete characters now available.
    fn add(&mut self, id: i64) -> PyResult<String> {
        let bytes = self.token(id, 0)?.to_vec();
        Ok(self.stream.push(&bytes))
    }

    /// Feeds several ids; all are checked before any is decoded.
    fn add_many(&mut self, ids: Vec<i64>) -> PyResult<String> {
        let mut bytes = Vec::new();
        for (position, &id) in ids.iter().enumerate() {
            bytes.extend_from_slice(self.token(id, position)?);
        }
        Ok(self.stream.push(&bytes))
    }

    /// Emits the rest; an unfinished character becomes U+FFFD.
    fn flush(&mut self) -> String {
        self.stream.flush()
    }

    /// Forgets any buffered bytes.
    fn reset(&mut self) {
        self.stream.reset()
    }

    /// Bytes held back because they do not yet form a complete character.
    #[getter]
    fn pending<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.stream.pending())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCoreBpe>()?;
    m.add_class::<PyIncrementalDecoder>()?;
    Ok(())
}
