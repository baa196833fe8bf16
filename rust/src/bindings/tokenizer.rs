//! Bindings for the tokenizer core: `CoreBPE` and `IncrementalDecoder`.
//! Heavy calls run with the GIL released.

use std::collections::HashSet;
use std::ffi::CString;
use std::ops::Range;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyString};

use super::flat_batch::{le_bytes, FlatSink};
use super::id_lists::{each_int, IdObjects};
use super::text_args::{TextBatch, Utf8};
use super::value_error;
use crate::added_tokens::AddedToken;
use crate::bpe::Rank;
use crate::core_bpe::{BatchSink, CoreBpe, CoreError, FirstFailure, Run, SpecialPolicy, TextFeed};
use crate::id_map::IdMap;
use crate::pretokenize::pipeline::{Behavior, Normalizer, PipelineSpec, Split, Step};
use crate::utf8_stream::Utf8Stream;

/// Token ids to decode, from a list (read in place: see [`each_int`]) or
/// any sequence of ints. A negative id is a ValueError, and so is one of 2**32 or more (no
/// token has it); an int beyond 64 bits is an OverflowError, as before.
fn ids_to_decode(ids: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    let to_id = |position: usize, id: i64| {
        u32::try_from(id).map_err(|_| {
            if id < 0 {
                value_error(format!("invalid token id {id} at position {position}: ids are non-negative"))
            } else {
                value_error(format!("unknown token id {id} at position {position}"))
            }
        })
    };
    if let Ok(list) = ids.cast::<PyList>() {
        let mut out = Vec::with_capacity(list.len());
        each_int(list, |position, id| {
            out.push(to_id(position, id)?);
            Ok(())
        })?;
        return Ok(out);
    }
    let ids: Vec<i64> = ids.extract()?;
    ids.iter().enumerate().map(|(position, &id)| to_id(position, id)).collect()
}

/// Ids given as little-endian 32-bit words in a bytes object.
fn packed_ids(packed: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    let packed = packed.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("packed ids must be bytes"))?.as_bytes();
    if packed.len() % 4 != 0 {
        return Err(value_error(format!("packed ids are 4 bytes each; got {} bytes", packed.len())));
    }
    Ok(packed.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect())
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

/// A batch's texts as UTF-8, each checked for length as it is read.
fn batch_texts<'py>(texts: &Bound<'py, PyAny>) -> PyResult<TextBatch<'py>> {
    TextBatch::of(texts, check_len)
}

/// The UTF-8 of a text to encode, checked for length.
fn text_to_encode<'py>(text: &Bound<'py, PyString>) -> PyResult<Utf8<'py>> {
    let text = Utf8::of(text)?;
    check_len(&text)?;
    Ok(text)
}

/// Whether a special-token argument is the string "all" (false: not a string);
/// any other string is a TypeError.
fn is_all(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    match obj.cast::<PyString>() {
        Ok(s) if s.to_cow()? == "all" => Ok(true),
        Ok(_) => {
            Err(PyTypeError::new_err("special-token sets must be a set of strings or \"all\", not a single string"))
        }
        Err(_) => Ok(false),
    }
}

/// A set of strings from any iterable of str.
fn str_set(obj: &Bound<'_, PyAny>) -> PyResult<HashSet<String>> {
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
            let id = token_id(id, || format!("added token {content:?}"))?;
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

/// A byte-level BPE tokenizer core:
/// `CoreBPE(mergeable, special_tokens, pattern, pipeline=None, ids=None, merges=None, ignore_merges=True)`.
///
/// `mergeable[i]` is the bytes of the token with rank `i`, whose id is `i`, or
/// `ids[i]` when given (rising; see [`crate::id_map`]); `special_tokens`
/// maps strings to ids no mergeable token has; `pattern` is a built-in
/// name (gpt2, cl100k, o200k, or r50k_base/cl100k_base/o200k_base) or a regex.
/// `pipeline` (see `pipeline_spec`) adds what HF tokenizer.json has beyond that:
/// a normalizer, several pre-tokenizer steps, added tokens with flags.
/// `merges` (pairs of token bytes, earliest first) makes it merge by that list,
/// as HF tokenizers does, instead of by rank (see `bpe::listed_merges`).
#[pyclass(module = "fastllm._core", name = "CoreBPE", frozen)]
pub struct PyCoreBpe {
    core: Arc<CoreBpe>,
    /// The int objects of the ids, shared by the lists returned.
    id_objects: IdObjects,
    /// The file's ids, where they are not the core's (None: they are).
    id_map: Option<Arc<IdMap>>,
}

/// A Python id as a token id (`u32::MAX` is no token's).
fn token_id(id: i64, what: impl FnOnce() -> String) -> PyResult<Rank> {
    Rank::try_from(id)
        .ok()
        .filter(|&i| i != Rank::MAX)
        .ok_or_else(|| value_error(format!("{} has invalid id {id}", what())))
}

/// `ids` (external) as the core's ids; an id no token has is the core's
/// unknown-token error, naming the id given.
fn to_internal(map: Option<&IdMap>, mut ids: Vec<Rank>) -> PyResult<Vec<Rank>> {
    if let Some(map) = map {
        map.to_internal(&mut ids)
            .map_err(|(position, id)| value_error(CoreError::UnknownToken { id: u64::from(id), position }))?;
    }
    Ok(ids)
}

/// One external id as the core's: None where no token has it.
fn one_internal(map: Option<&IdMap>, id: i64) -> Option<u64> {
    let id = u64::try_from(id).ok()?;
    match map {
        None => Some(id),
        Some(map) => Rank::try_from(id).ok().and_then(|id| map.internal(id)).map(u64::from),
    }
}

/// Ids made into lists between two offers of the GIL to other Python threads
/// (well under a millisecond of work).
const YIELD_EVERY: usize = 1 << 15;

/// Builds a batch's list of lists: each run's lists are made on a thread of
/// the pool as soon as the run is encoded (one thread at a time: see
/// `core_bpe::batch::OneAtATime`), which takes the GIL for that while the calling
/// thread waits with it released and the other threads encode on.
struct ListSink<'a> {
    ids: &'a IdObjects,
    /// Pre-sized; each item is set as its text is delivered.
    list: Py<PyList>,
    /// A disallowed special token, or a Python error building a list.
    error: FirstFailure<PyErr>,
}

impl<'a> ListSink<'a> {
    fn new(py: Python<'_>, ids: &'a IdObjects, len: usize) -> PyResult<Self> {
        // SAFETY: a new list of NULL items (or NULL with an exception set),
        // each to be set once; a list dropped with NULL items is valid.
        let list = unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyList_New(len as pyo3::ffi::Py_ssize_t))? };
        Ok(Self { ids, list: list.cast_into::<PyList>()?.unbind(), error: FirstFailure::default() })
    }

    /// Sets item `index` to the list of `all[range]` (`all`: the ids of
    /// this and the next texts, which the list's making prefetches).
    fn set(&self, py: Python<'_>, index: usize, all: &[Rank], range: Range<usize>) {
        match self.ids.list_in(py, all, range) {
            // SAFETY: `index` is in range and its item unset (each text is
            // delivered once); SetItem steals the new reference.
            Ok(item) => unsafe {
                pyo3::ffi::PyList_SetItem(self.list.as_ptr(), index as pyo3::ffi::Py_ssize_t, item.into_ptr());
            },
            Err(e) => self.error.record(index, e),
        }
    }

    /// Runs the batch `encode` with Python's cyclic garbage collector paused
    /// (many small lists are made; a collection in the middle would walk
    /// every list made so far, again and again), then gives the list or the
    /// first failure.
    fn run<'py>(self, py: Python<'py>, encode: impl FnOnce(&Self) -> PyResult<()>) -> PyResult<Bound<'py, PyList>> {
        {
            let _paused = GcPause::new(py);
            encode(&self)?;
        }
        match self.error.into_error() {
            Some(e) => Err(e),
            None => Ok(self.list.into_bound(py)),
        }
    }
}

impl BatchSink for ListSink<'_> {
    fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        Python::attach(|py| py.detach(f))
    }

    fn deliver(&self, mut run: Run) {
        if let Some((index, e)) = run.error.take() {
            self.error.record(index, value_error(e));
        }
        if self.error.any() {
            return;
        }
        Python::attach(|py| {
            let mut since_yield = 0;
            for (k, range) in run.ranges().enumerate() {
                since_yield += range.len() + 1;
                self.set(py, run.start + k, &run.ids, range);
                if since_yield >= YIELD_EVERY {
                    // Lets a Python thread that has waited a switch interval for
                    // the GIL take it (CPython hands it over on release then).
                    py.detach(|| ());
                    since_yield = 0;
                }
            }
        })
    }
}

/// Disables Python's cyclic garbage collector while it lives, when it was
/// enabled (lists of ints form no cycles; the collector runs at the next
/// allocation after this as it would have).
struct GcPause<'py>(Option<Bound<'py, PyModule>>);

impl<'py> GcPause<'py> {
    fn new(py: Python<'py>) -> Self {
        let gc = py.import("gc").ok().filter(|gc| {
            gc.call_method0("isenabled").and_then(|on| on.is_truthy()).unwrap_or(false)
                && gc.call_method0("disable").is_ok()
        });
        Self(gc)
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if let Some(gc) = &self.0 {
            let _ = gc.call_method0("enable");
        }
    }
}

/// `ids` as little-endian u32 bytes.
fn u32_bytes<'py>(py: Python<'py>, ids: &[Rank]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &le_bytes(ids))
}

impl PyCoreBpe {
    fn map(&self) -> Option<&IdMap> {
        self.id_map.as_deref()
    }

    /// The core's `ids` as external ids in little-endian u32 bytes.
    fn u32_bytes<'py>(&self, py: Python<'py>, mut ids: Vec<Rank>) -> Bound<'py, PyBytes> {
        if let Some(map) = self.map() {
            map.to_external(&mut ids);
        }
        u32_bytes(py, &ids)
    }

    /// Ids to decode (a list or sequence of ints, or `packed` u32 bytes) as the core's.
    fn ids_to_decode(&self, ids: &Bound<'_, PyAny>, packed: bool) -> PyResult<Vec<Rank>> {
        to_internal(self.map(), if packed { packed_ids(ids)? } else { ids_to_decode(ids)? })
    }

    /// `encode`'s ids, whatever they are returned as.
    fn encode_ids<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        allowed_special: Option<&Bound<'py, PyAny>>,
        disallowed_special: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Rank>> {
        let text = text_to_encode(text)?;
        let text: &str = &text;
        let sets = self.sets(allowed_special, disallowed_special)?;
        let policy = self.policy(&sets);
        py.detach(|| self.core.encode(text, &policy)).map_err(value_error)
    }

    /// `disallowed` None: every special not allowed (nothing built per call).
    fn policy<'a>(&self, sets: &'a SpecialSets) -> SpecialPolicy<'a> {
        SpecialPolicy {
            allowed: sets.allowed.iter().map(String::as_str).collect(),
            allow_all_specials: sets.allow_all,
            disallowed: sets.disallowed.iter().flatten().map(String::as_str).collect(),
            disallow_other_specials: sets.disallowed.is_none(),
        }
    }

    fn sets(&self, allowed: Option<&Bound<'_, PyAny>>, disallowed: Option<&Bound<'_, PyAny>>) -> PyResult<SpecialSets> {
        // "all" is a flag, not a set of every name built for each call.
        let (allowed, allow_all) = match allowed {
            Some(a) if is_all(a)? => (HashSet::new(), true),
            Some(a) => (str_set(a)?, false),
            None => (HashSet::new(), false),
        };
        // As in tiktoken: "all" (the default) is every special not allowed (None here: see
        // `policy`), while a set is taken as given, so a special both allowed and disallowed
        // is an error where it occurs.
        let disallowed = match disallowed {
            Some(d) if !is_all(d)? => Some(str_set(d)?),
            _ => None,
        };
        Ok(SpecialSets { allowed, allow_all, disallowed })
    }
}

/// An encode call's special-token arguments, read from Python.
struct SpecialSets {
    allowed: HashSet<String>,
    /// `allowed_special="all"`.
    allow_all: bool,
    /// None: every special not allowed.
    disallowed: Option<HashSet<String>>,
}

#[pymethods]
impl PyCoreBpe {
    #[new]
    #[pyo3(signature = (mergeable, special_tokens, pattern, pipeline=None, ids=None, merges=None, ignore_merges=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        mergeable: Vec<PyBackedBytes>,
        special_tokens: std::collections::HashMap<String, i64>,
        pattern: &str,
        pipeline: Option<&Bound<'_, PyAny>>,
        ids: Option<Vec<i64>>,
        merges: Option<Vec<(PyBackedBytes, PyBackedBytes)>>,
        ignore_merges: bool,
    ) -> PyResult<Self> {
        let mut spec = pipeline.map(pipeline_spec).transpose()?;
        let mergeable: Vec<Vec<u8>> = mergeable.iter().map(|b| b.to_vec()).collect();
        let mut specials = Vec::with_capacity(special_tokens.len());
        for (name, id) in special_tokens {
            let id = token_id(id, || format!("special token {name:?}"))?;
            specials.push((name, id));
        }
        let id_map = match ids {
            None => None,
            Some(ids) => {
                let ids = ids
                    .iter()
                    .enumerate()
                    .map(|(r, &id)| token_id(id, || format!("rank {r}")))
                    .collect::<PyResult<Vec<_>>>()?;
                if ids.len() != mergeable.len() {
                    return Err(value_error(format!("{} ids for {} mergeable tokens", ids.len(), mergeable.len())));
                }
                let added = spec.iter().flat_map(|s| s.added_tokens.iter().map(|t| t.id));
                let others: Vec<Rank> = specials.iter().map(|(_, id)| *id).chain(added).collect();
                IdMap::new(&ids, &others).map_err(value_error)?
            }
        };
        if let Some(map) = &id_map {
            // The core sees its own ids: every id here is one of the map's.
            let n = mergeable.len() as Rank;
            for (name, id) in specials.iter_mut() {
                let internal = map.internal(*id).expect("mapped");
                if internal < n {
                    return Err(value_error(format!(
                        "special token {name:?} has id {id}, the id of a mergeable token"
                    )));
                }
                *id = internal;
            }
            for token in spec.iter_mut().flat_map(|s| s.added_tokens.iter_mut()) {
                token.id = map.internal(token.id).expect("mapped");
            }
        }
        let pattern = pattern.to_string();
        let mut core = py
            .detach(move || match spec {
                None => CoreBpe::new(mergeable, &specials, &pattern),
                Some(spec) => CoreBpe::with_pipeline(mergeable, &specials, &pattern, spec),
            })
            .map_err(value_error)?;
        if let Some(merges) = merges {
            let mut pairs = Vec::with_capacity(merges.len());
            for (number, (left, right)) in merges.iter().enumerate() {
                let rank = |part: &[u8]| {
                    core.mergeable_rank(part).ok_or_else(|| {
                        value_error(format!(
                            "merge {} ({:?}, {:?}): {:?} is no mergeable token",
                            number + 1,
                            String::from_utf8_lossy(left),
                            String::from_utf8_lossy(right),
                            String::from_utf8_lossy(part)
                        ))
                    })
                };
                pairs.push((rank(left)?, rank(right)?));
            }
            core = py.detach(move || core.with_listed_merges(pairs, ignore_merges)).map_err(value_error)?;
        }
        // Mergeable ids only: special ids may be anywhere below 2**32 (and are rare in output).
        // With a map, every internal id: there are only as many as tokens.
        let id_objects = match &id_map {
            None => IdObjects::new(core.mergeable_tokens().len()),
            Some(map) => IdObjects::with_values(map.externals()),
        };
        Ok(Self { core: Arc::new(core), id_objects, id_map: id_map.map(Arc::new) })
    }

    /// Encodes `text` ignoring special tokens entirely.
    fn encode_ordinary<'py>(&self, py: Python<'py>, text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let text = text_to_encode(text)?;
        let text: &str = &text;
        let ids = py.detach(|| self.core.encode_ordinary(text)).map_err(value_error)?;
        self.id_objects.list(py, &ids)
    }

    /// tiktoken's `encode`: specials in `allowed_special` become their id; a
    /// special in `disallowed_special` found in the text raises ValueError.
    #[pyo3(signature = (text, allowed_special=None, disallowed_special=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        allowed_special: Option<&Bound<'py, PyAny>>,
        disallowed_special: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let ids = self.encode_ids(py, text, allowed_special, disallowed_special)?;
        self.id_objects.list(py, &ids)
    }

    /// Like `encode`, returned as little-endian u32 bytes (for numpy.frombuffer).
    #[pyo3(signature = (text, allowed_special=None, disallowed_special=None))]
    fn encode_to_u32_bytes<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        allowed_special: Option<&Bound<'py, PyAny>>,
        disallowed_special: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = self.encode_ids(py, text, allowed_special, disallowed_special)?;
        Ok(self.u32_bytes(py, ids))
    }

    /// Like `encode_ordinary`, returned as little-endian u32 bytes (for numpy.frombuffer).
    fn encode_ordinary_to_u32_bytes<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let text = text_to_encode(text)?;
        let text: &str = &text;
        let ids = py.detach(|| self.core.encode_ordinary(text)).map_err(value_error)?;
        Ok(self.u32_bytes(py, ids))
    }

    /// Encodes many texts in parallel (rayon; `num_threads=None`: all cores).
    #[pyo3(signature = (texts, allowed_special=None, disallowed_special=None, num_threads=None))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        allowed_special: Option<&Bound<'py, PyAny>>,
        disallowed_special: Option<&Bound<'py, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut batch = batch_texts(texts)?;
        let sets = self.sets(allowed_special, disallowed_special)?;
        let policy = self.policy(&sets);
        let sink = ListSink::new(py, &self.id_objects, batch.count())?;
        let lists =
            sink.run(py, |sink| self.core.encode_batch_to(&mut batch, &policy, num_threads, sink).map_err(value_error));
        batch.stopped().map_or(lists, Err)
    }

    /// Encodes many texts in parallel, ignoring special tokens.
    #[pyo3(signature = (texts, num_threads=None))]
    fn encode_ordinary_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut batch = batch_texts(texts)?;
        let sink = ListSink::new(py, &self.id_objects, batch.count())?;
        let lists =
            sink.run(py, |sink| self.core.encode_ordinary_batch_to(&mut batch, num_threads, sink).map_err(value_error));
        batch.stopped().map_or(lists, Err)
    }

    /// Like `encode_batch`, as one flat array: the ids of every text in order
    /// (little-endian u32 bytes) and the `len(texts) + 1` offsets of each
    /// text's ids in it (little-endian i64 bytes), for numpy.frombuffer.
    #[pyo3(signature = (texts, allowed_special=None, disallowed_special=None, num_threads=None))]
    fn encode_batch_to_u32_bytes<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        allowed_special: Option<&Bound<'py, PyAny>>,
        disallowed_special: Option<&Bound<'py, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let mut batch = batch_texts(texts)?;
        let sets = self.sets(allowed_special, disallowed_special)?;
        let policy = self.policy(&sets);
        let sink = FlatSink::new(self.map(), batch.count());
        let encoded = self.core.encode_batch_to(&mut batch, &policy, num_threads, &sink).map_err(value_error);
        batch.stopped().map_or(encoded, Err)?;
        sink.into_bytes(py)
    }

    /// Like `encode_ordinary_batch`, as `encode_batch_to_u32_bytes` returns it.
    #[pyo3(signature = (texts, num_threads=None))]
    fn encode_ordinary_batch_to_u32_bytes<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        num_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let mut batch = batch_texts(texts)?;
        let sink = FlatSink::new(self.map(), batch.count());
        let encoded = self.core.encode_ordinary_batch_to(&mut batch, num_threads, &sink).map_err(value_error);
        batch.stopped().map_or(encoded, Err)?;
        sink.into_bytes(py)
    }

    /// The concatenated bytes of `ids`; unknown or negative ids raise
    /// ValueError. `packed`: `ids` is a bytes object of little-endian 32-bit
    /// words (what the Python layer makes of a numpy array: no Python int per id).
    #[pyo3(signature = (ids, *, packed = false))]
    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        packed: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = self.ids_to_decode(ids, packed)?;
        let bytes = py.detach(|| self.core.decode_bytes(&ids)).map_err(value_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The text of `ids` (as [`decode_bytes`]) decoded from UTF-8 with the
    /// codec error handler `errors`, without a bytes object in between.
    #[pyo3(signature = (ids, errors = "replace", *, packed = false))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        errors: &str,
        packed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = self.ids_to_decode(ids, packed)?;
        let bytes = py.detach(|| self.core.decode_bytes(&ids)).map_err(value_error)?;
        let errors = CString::new(errors).map_err(|_| value_error("the errors handler's name holds a NUL"))?;
        let len = ffi::Py_ssize_t::try_from(bytes.len()).map_err(|_| value_error("decoded text too long"))?;
        // SAFETY: attached (`py`); the pointer and length are `bytes`', alive for the call.
        unsafe {
            let text = ffi::PyUnicode_DecodeUTF8(bytes.as_ptr().cast(), len, errors.as_ptr());
            Bound::from_owned_ptr_or_err(py, text)
        }
    }

    /// The bytes of each token of `ids`, one `bytes` each (ids read as
    /// [`decode_bytes`] reads them; errors alike).
    fn decode_tokens_bytes<'py>(&self, py: Python<'py>, ids: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let ids = self.ids_to_decode(ids, false)?;
        ids.iter()
            .enumerate()
            .map(|(position, &id)| {
                let bytes = self
                    .core
                    .token_bytes(u64::from(id))
                    .ok_or_else(|| value_error(CoreError::UnknownToken { id: u64::from(id), position }))?;
                Ok(PyBytes::new(py, bytes))
            })
            .collect()
    }

    /// Every mergeable token's bytes, sorted (tiktoken's `token_byte_values`).
    fn token_byte_values<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        let tokens = self.core.mergeable_tokens();
        let bytes = |r: &Rank| tokens.get(u64::from(*r)).expect("a rank of the table");
        self.core.ranks_by_bytes().iter().map(|r| PyBytes::new(py, bytes(r))).collect()
    }

    /// What the unstable end `unstable` of a text may become once more text
    /// follows: sorted token sequences (see `crate::unstable`).
    fn unstable_completions<'py>(&self, py: Python<'py>, unstable: &[u8]) -> PyResult<Vec<Bound<'py, PyList>>> {
        let found = py.detach(|| crate::unstable::completions(&self.core, unstable)).map_err(value_error)?;
        found.iter().map(|ids| self.id_objects.list(py, ids)).collect()
    }

    /// The rank of the mergeable token whose bytes are `piece` (None: no such token).
    fn mergeable_rank(&self, piece: &[u8]) -> Option<Rank> {
        let rank = self.core.mergeable_rank(piece)?;
        Some(self.map().map_or(rank, |map| map.external(rank)))
    }

    /// The mergeable tokens' ids by rank, where they are not the ranks (None: they are).
    fn mergeable_ids(&self) -> Option<Vec<Rank>> {
        self.map().map(|map| map.mergeable_ids().to_vec())
    }

    /// The merge list this core merges by, as pairs of token bytes (None: it
    /// merges by rank).
    fn merges<'py>(&self, py: Python<'py>) -> Option<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let tokens = self.core.mergeable_tokens();
        let bytes = |rank: Rank| PyBytes::new(py, tokens.get(u64::from(rank)).expect("a merge names tokens"));
        let listed = self.core.listed_merges()?;
        Some(listed.pairs().iter().map(|&(l, r)| (bytes(l), bytes(r))).collect())
    }

    /// Whether a piece that is a token is that token whatever the merges make
    /// (`tokenizer.json`'s `ignore_merges`); always so without a merge list.
    #[getter]
    fn ignore_merges(&self) -> bool {
        self.core.listed_merges().is_none_or(|listed| listed.ignore_merges())
    }

    /// The bytes of one token; an unknown id raises ValueError.
    fn decode_single_token_bytes<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = one_internal(self.map(), id)
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
        PyIncrementalDecoder { core: Arc::clone(&self.core), id_map: self.id_map.clone(), stream: Utf8Stream::new() }
    }

    /// Max token id + 1.
    #[getter]
    fn n_vocab(&self) -> usize {
        self.map().map_or_else(|| self.core.n_vocab(), IdMap::n_vocab)
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
            d.set_item(name, self.map().map_or(id, |map| map.external(id)))?;
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
            self.n_vocab(),
            self.core.pattern(),
            self.core.special_tokens().count()
        )
    }
}

/// Streaming decoder: `add(id)` returns the characters completed so far.
#[pyclass(module = "fastllm._core", name = "IncrementalDecoder")]
pub struct PyIncrementalDecoder {
    core: Arc<CoreBpe>,
    id_map: Option<Arc<IdMap>>,
    stream: Utf8Stream,
}

impl PyIncrementalDecoder {
    fn token(&self, id: i64, position: usize) -> PyResult<&[u8]> {
        one_internal(self.id_map.as_deref(), id)
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
    fn add_many(&mut self, ids: &Bound<'_, PyAny>) -> PyResult<String> {
        let ids = to_internal(self.id_map.as_deref(), ids_to_decode(ids)?)?;
        let bytes = self.core.decode_bytes(&ids).map_err(value_error)?;
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

/// The tokens of a `.tiktoken` file's contents in rank order, where nothing
/// in it is unusual; None otherwise (see `tiktoken_file::parse_plain`: the
/// Python reader then reads it and names any problem's line).
#[pyfunction]
fn read_tiktoken_plain<'py>(py: Python<'py>, data: &[u8]) -> Option<Vec<Bound<'py, PyBytes>>> {
    let tokens = py.detach(|| crate::tiktoken_file::parse_plain(data))?;
    Some(tokens.iter().map(|t| PyBytes::new(py, t)).collect())
}

/// For each token of a rank-ordered vocabulary, where BPE with the tokens
/// ranked below it leaves two parts (see `bpe::merge_list`); None elsewhere.
#[pyfunction]
fn merge_splits(py: Python<'_>, tokens: Vec<Vec<u8>>) -> Vec<Option<usize>> {
    py.detach(|| crate::bpe::merge_list::merge_splits(&tokens))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCoreBpe>()?;
    m.add_class::<PyIncrementalDecoder>()?;
    m.add_function(wrap_pyfunction!(read_tiktoken_plain, m)?)?;
    m.add_function(wrap_pyfunction!(merge_splits, m)?)?;
    Ok(())
}
