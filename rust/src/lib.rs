//! fastllm's tokenizer core: byte-level BPE pre-tokenization, encoding,
//! decoding and training, in plain Rust. The Python bindings live in
//! [`bindings`] and are compiled only with the `python` feature.

pub mod bpe;
pub mod decoder;
pub mod encoder;
pub mod piece_cache;
pub mod pretokenize;
pub mod rank_queue;
pub mod trainer;
pub mod vocab;

#[cfg(feature = "python")]
mod bindings;
