//! Bindings for the BPE trainer: `_core.BpeTrainer`. The Python side
//! (`fastllm.bpe_trainer`) checks argument types and feeds it texts in batches; every
//! method that counts or merges releases the GIL.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::os_error;
use crate::trainer::{BpeTrainer, TrainError};

/// Default size of the chunks files are read in.
const CHUNK_BYTES: usize = 1 << 21;

fn to_py_err(e: TrainError) -> PyErr {
    match &e {
        TrainError::Io { error, .. } => os_error(error, e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn progress_bar(show: bool, len: u64, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Collects training text (`add_texts`, `add_files`), then learns merges (`train`).
#[pyclass(name = "BpeTrainer", module = "fastllm._core")]
pub struct PyBpeTrainer {
    inner: BpeTrainer,
    pool: Option<rayon::ThreadPool>,
}

impl PyBpeTrainer {
    fn run<T: Send>(&mut self, py: Python<'_>, f: impl FnOnce(&mut BpeTrainer) -> T + Send) -> T {
        let Self { inner, pool } = self;
        py.detach(|| match pool {
            Some(pool) => pool.install(|| f(inner)),
            None => f(inner),
        })
    }
}

#[pymethods]
impl PyBpeTrainer {
    /// `num_threads=None` uses rayon's global pool (all cores).
    #[new]
    #[pyo3(signature = (pattern, special_tokens, num_threads=None))]
    fn new(pattern: &str, special_tokens: Vec<String>, num_threads: Option<usize>) -> PyResult<Self> {
        let inner = BpeTrainer::new(pattern, &special_tokens).map_err(to_py_err)?;
        let pool = match num_threads {
            None => None,
            Some(0) => return Err(PyValueError::new_err("num_threads must be at least 1")),
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| PyOSError::new_err(e.to_string()))?,
            ),
        };
        Ok(Self { inner, pool })
    }

    /// Counts the pieces of each string (each one a document on its own).
    fn add_texts(&mut self, py: Python<'_>, texts: Vec<String>) -> PyResult<()> {
        self.run(py, |t| t.counter().add_texts(&texts)).map_err(to_py_err)
    }

    /// Counts the pieces of UTF-8 text files, streamed in chunks of `chunk_bytes`.
    #[pyo3(signature = (paths, show_progress=false, chunk_bytes=CHUNK_BYTES))]
    fn add_files(
        &mut self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        show_progress: bool,
        chunk_bytes: usize,
    ) -> PyResult<()> {
        if chunk_bytes == 0 {
            return Err(PyValueError::new_err("chunk_bytes must be at least 1"));
        }
        let total: u64 = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let bar = progress_bar(
            show_progress,
            total,
            "counting {bar:30} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
        );
        let threads = self.pool.as_ref().map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        let result = self.run(py, |t| t.counter().add_files(&paths, chunk_bytes, 2 * threads, &bar));
        bar.finish_and_clear();
        result.map_err(to_py_err)
    }

    /// Learns merges; returns the mergeable tokens (bytes) in rank order.
    #[pyo3(signature = (vocab_size, min_frequency, show_progress=false))]
    fn train<'py>(
        &mut self,
        py: Python<'py>,
        vocab_size: usize,
        min_frequency: u64,
        show_progress: bool,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let bar = progress_bar(show_progress, 0, "merging {bar:30} {pos}/{len} merges ({per_sec}, {eta})");
        let tokens = self.run(py, |t| t.train(vocab_size, min_frequency, &bar)).map_err(to_py_err)?;
        Ok(tokens.iter().map(|t| PyBytes::new(py, t)).collect())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBpeTrainer>()?;
    Ok(())
}
