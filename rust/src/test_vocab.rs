//! The real vocabularies of the shared data (`../shared/data`, or
//! `FASTLLM_SHARED_DATA`) for the unit tests and measurements.

/// The tokens of tiktoken file `file` (e.g. `cl100k_base.tiktoken`) in rank
/// order; None when the file is absent.
pub fn tiktoken_tokens(file: &str) -> Option<Vec<Vec<u8>>> {
    let dir = std::env::var("FASTLLM_SHARED_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data").to_string());
    let data = std::fs::read(std::path::Path::new(&dir).join(file)).ok()?;
    Some(crate::tiktoken_file::parse_plain(&data).unwrap_or_else(|| panic!("{file}: not a plain .tiktoken file")))
}
