//! fastllm's tokenizer core: byte-level BPE pre-tokenization, encoding,
//! decoding and training, in plain Rust. The Python bindings live in
//! `bindings` and are compiled only with the `python` feature.
//!
//! - [`pretokenize`]: text → pieces (built-in scanners, or any regex; `pipeline`:
//!   tokenizer.json's normalizer and pre-tokenizer steps).
//! - [`bpe`]: one piece's bytes → token ids (vocabulary lookup, rank-ordered merge).
//! - [`specials`]: finding special tokens in text, for encoding and training alike.
//! - [`added_tokens`]: HF tokenizer.json's added tokens (flags, normalized or not).
//! - [`core_bpe`]: the tokenizer (`CoreBPE` in Python): encode and decode.
//! - `cpu`: which compiled copy of the hot loops this CPU runs.
//! - `encode_pool`: the thread pools batches are encoded on.
//! - [`utf8_stream`]: decoding a token stream into complete characters.
//! - [`chunking`]: cutting files and long strings where no piece crosses the cut.
//! - [`tiktoken_file`]: `.tiktoken` vocabularies read fast (the common case).
//! - [`hf_vocab`]: a `tokenizer.json`'s byte-level vocabulary and merges read fast (the common case).
//! - [`token_bytes`]: every token's bytes in one arena, for decoding.
//! - [`unstable`]: what a text's unstable end may become (`encode_with_unstable`).
//! - [`trainer`]: learning the merges from counted pieces.

pub mod added_tokens;
pub mod bpe;
pub mod chunking;
pub mod core_bpe;
mod cpu;
mod encode_pool;
pub mod hf_json;
pub mod hf_vocab;
pub mod id_map;
pub mod pretokenize;
pub mod specials;
pub mod tiktoken_file;
pub mod token_bytes;
pub mod trainer;
pub mod unstable;
pub mod utf8_stream;

#[cfg(test)]
mod test_clock;
#[cfg(test)]
mod test_rng;
#[cfg(test)]
mod test_vocab;

#[cfg(feature = "python")]
mod bindings;
