//! The chunker: text_chunks and FileChunks (over a file of the same bytes) give the
//! same chunks, which are non-empty, concatenate to the text, and (with the built-in
//! patterns) leave every pre-tokenizer piece whole; a file that is not UTF-8 is an
//! error at the offset of its first bad byte.
#![no_main]

use std::io::Write;

use arbitrary::Arbitrary;
use fastllm::chunking::{text_chunks, ChunkError, FileChunks};
use fastllm::pretokenize::Pretokenizer;
use fastllm::specials::SpecialMatcher;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    data: Vec<u8>,
    chunk_bytes: u8,
    specials: Vec<String>,
    pattern: u8,
}

fn pieces(text: &str, m: &SpecialMatcher, p: &Pretokenizer) -> Vec<String> {
    let mut out = Vec::new();
    m.for_each_segment(text, |s| out.extend(p.pieces(s).unwrap().into_iter().map(str::to_string)));
    out
}

fuzz_target!(|input: Input| {
    let mut specials: Vec<String> = Vec::new();
    for s in input.specials.into_iter().take(4) {
        if !s.is_empty() && !specials.contains(&s) {
            specials.push(s);
        }
    }
    let matcher = SpecialMatcher::new(&specials).unwrap();
    let pattern = ["gpt2", "cl100k", "o200k"][input.pattern as usize % 3];
    let pretokenizer = Pretokenizer::new(pattern).unwrap();
    let chunk_bytes = input.chunk_bytes as usize % 40;

    // The file reader, on the raw bytes.
    let path = std::env::temp_dir().join(format!("fastllm-fuzz-chunking-{}", std::process::id()));
    std::fs::File::create(&path).unwrap().write_all(&input.data).unwrap();
    let mut reader = FileChunks::open(&path, chunk_bytes).unwrap();
    let mut from_file = Vec::new();
    let result = loop {
        let offset = reader.offset();
        match reader.next_chunk(&matcher, &pretokenizer) {
            Ok(Some(c)) => {
                assert_eq!(offset, from_file.iter().map(|c: &String| c.len() as u64).sum::<u64>());
                from_file.push(c)
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let _ = std::fs::remove_file(&path);

    let text = match std::str::from_utf8(&input.data) {
        Ok(t) => t,
        Err(e) => {
            match result {
                Err(ChunkError::NotUtf8 { offset, .. }) => assert_eq!(offset, e.valid_up_to() as u64),
                other => panic!("invalid UTF-8 read as {other:?}"),
            }
            return;
        }
    };
    result.unwrap();
    let chunks = text_chunks(text, chunk_bytes, &matcher, &pretokenizer);
    assert_eq!(chunks, from_file, "file and string chunks differ");
    assert!(chunks.iter().all(|c| !c.is_empty()));
    assert_eq!(chunks.concat(), text);
    let chunked: Vec<String> = chunks.iter().flat_map(|c| pieces(c, &matcher, &pretokenizer)).collect();
    assert_eq!(chunked, pieces(text, &matcher, &pretokenizer), "a cut changed the pieces");
});
