//! The one thin PyO3 module, `fastllm._core`: converts between Python and the
//! plain-Rust core and releases the GIL around heavy work.

use pyo3::prelude::*;

mod tokenizer;
mod trainer;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    tokenizer::register(m)?;
    trainer::register(m)?;
    Ok(())
}
