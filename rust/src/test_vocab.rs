//! The real vocabularies of the shared data (`../shared/data`, or
//! `FASTLLM_SHARED_DATA`) for the unit tests and measurements.

/// The tokens of tiktoken file `file` (e.g. `cl100k_base.tiktoken`) in rank
/// order; None when the file is absent.
pub fn tiktoken_tokens(file: &str) -> Option<Vec<Vec<u8>>> {
    use base64::Engine;
    let dir = std::env::var("FASTLLM_SHARED_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data").to_string());
    let text = std::fs::read_to_string(std::path::Path::new(&dir).join(file)).ok()?;
    let mut tokens: Vec<(u32, Vec<u8>)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (b64, rank) = l.split_once(' ').unwrap();
            (rank.parse().unwrap(), base64::engine::general_purpose::STANDARD.decode(b64).unwrap())
        })
        .collect();
    tokens.sort();
    assert!(tokens.iter().enumerate().all(|(k, (r, _))| *r as usize == k), "{file}: ranks are not 0..n");
    Some(tokens.into_iter().map(|(_, t)| t).collect())
}
