//! Unique-piece counting: text is cut at special tokens, split into pieces by the
//! pre-tokenizer, and every distinct piece is counted (64-bit counts), in parallel.

use std::path::PathBuf;

use indicatif::ProgressBar;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::TrainError;
use crate::chunking::FileChunks;
use crate::pretokenize::{Pretokenizer, SplitError};
use crate::specials::SpecialMatcher;

/// Distinct pieces and how often each occurred.
pub type PieceCounts = FxHashMap<String, u64>;

type BorrowedCounts<'t> = FxHashMap<&'t str, u64>;

/// Accumulates piece counts over any number of texts and files.
#[derive(Debug, Clone)]
pub struct PieceCounter {
    pretokenizer: Pretokenizer,
    specials: SpecialMatcher,
    counts: PieceCounts,
}

impl PieceCounter {
    /// `pattern` is a built-in pattern name or a custom regex (see [`Pretokenizer::new`]).
    pub fn new(pattern: &str, special_tokens: &[String]) -> Result<Self, TrainError> {
        Ok(Self {
            pretokenizer: Pretokenizer::new(pattern).map_err(TrainError::Pattern)?,
            specials: SpecialMatcher::new(special_tokens)?,
            counts: PieceCounts::default(),
        })
    }

    /// Counts the pieces of each text (each text is a document on its own), in parallel.
    /// If the regex engine gives up on a text (a custom pattern), nothing of these
    /// texts is counted.
    pub fn add_texts<S: AsRef<str> + Sync>(&mut self, texts: &[S]) -> Result<(), TrainError> {
        self.count_texts(texts).map_err(|(index, error)| TrainError::Split { error, text: Some(index), file: None })
    }

    /// The counts of `texts`, added to the total; or the index of a text the
    /// regex engine gave up on, and its error.
    fn count_texts<S: AsRef<str> + Sync>(&mut self, texts: &[S]) -> Result<(), (usize, SplitError)> {
        let local = texts
            .par_iter()
            .enumerate()
            .try_fold(BorrowedCounts::default, |mut counts, (index, text)| {
                self.count_text(text.as_ref(), &mut counts).map_err(|e| (index, e))?;
                Ok(counts)
            })
            .try_reduce(BorrowedCounts::default, |a, b| Ok(merge_borrowed(a, b)))?;
        self.absorb(local);
        Ok(())
    }

    /// Counts the pieces of text files, streamed in chunks of about `chunk_bytes`
    /// (see [`crate::chunking`]); `batch` chunks are counted in parallel at a time.
    /// `progress` advances by the bytes read.
    pub fn add_files(
        &mut self,
        paths: &[PathBuf],
        chunk_bytes: usize,
        batch: usize,
        progress: &ProgressBar,
    ) -> Result<(), TrainError> {
        let batch = batch.max(1);
        let mut chunks: Vec<String> = Vec::with_capacity(batch);
        // Where each chunk comes from: its file (index into `paths`) and byte offset.
        let mut origins: Vec<(usize, u64)> = Vec::with_capacity(batch);
        for (file, path) in paths.iter().enumerate() {
            let mut reader = FileChunks::open(path, chunk_bytes)?;
            loop {
                let offset = reader.offset();
                let Some(chunk) = reader.next_chunk(&self.specials, &self.pretokenizer)? else { break };
                chunks.push(chunk);
                origins.push((file, offset));
                if chunks.len() == batch {
                    self.add_chunks(&mut chunks, &mut origins, paths, progress)?;
                }
            }
        }
        self.add_chunks(&mut chunks, &mut origins, paths, progress)
    }

    fn add_chunks(
        &mut self,
        chunks: &mut Vec<String>,
        origins: &mut Vec<(usize, u64)>,
        paths: &[PathBuf],
        progress: &ProgressBar,
    ) -> Result<(), TrainError> {
        self.count_texts(chunks).map_err(|(index, error)| {
            let (file, offset) = origins[index];
            let error = SplitError { offset: error.offset + offset as usize, ..error };
            TrainError::Split { error, text: None, file: Some(paths[file].clone()) }
        })?;
        progress.inc(chunks.iter().map(|c| c.len() as u64).sum());
        chunks.clear();
        origins.clear();
        Ok(())
    }

    fn count_text<'t>(&self, text: &'t str, counts: &mut BorrowedCounts<'t>) -> Result<(), SplitError> {
        let mut result = Ok(());
        self.specials.for_each_segment(text, |segment| {
            if result.is_err() {
                return;
            }
            let counted = self.pretokenizer.for_each_piece(segment, |piece| {
                if !piece.is_empty() {
                    *counts.entry(piece).or_insert(0) += 1;
                }
            });
            result = counted.map_err(|e| e.within(text, segment));
        });
        result
    }

    fn absorb(&mut self, local: BorrowedCounts<'_>) {
        self.counts.reserve(local.len() / 4);
        for (piece, n) in local {
            match self.counts.get_mut(piece) {
                Some(total) => *total += n,
                None => {
                    self.counts.insert(piece.to_owned(), n);
                }
            }
        }
    }

    /// Number of distinct pieces seen so far.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The counts collected so far.
    pub fn counts(&self) -> &PieceCounts {
        &self.counts
    }

    /// Gives up the counts (the counter starts over empty).
    pub fn take_counts(&mut self) -> PieceCounts {
        std::mem::take(&mut self.counts)
    }
}

fn merge_borrowed<'t>(a: BorrowedCounts<'t>, b: BorrowedCounts<'t>) -> BorrowedCounts<'t> {
    let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    for (piece, n) in small {
        *big.entry(piece).or_insert(0) += n;
    }
    big
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pieces_and_skips_specials() {
        let mut c = PieceCounter::new("cl100k", &["<|eot|>".to_string()]).unwrap();
        c.add_texts(&["hello world<|eot|>hello", " world"]).unwrap();
        let counts = c.counts();
        assert_eq!(counts["hello"], 2);
        assert_eq!(counts[" world"], 2);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn a_pattern_the_engine_gives_up_on_counts_nothing_and_says_where() {
        let mut c = PieceCounter::new(r"(?:(?=a)a|a)*b|.", &["<s>".to_string()]).unwrap();
        let stuck = format!("ok<s>é{}", "a".repeat(40));
        match c.add_texts(&["fine".to_string(), stuck]) {
            Err(TrainError::Split { error, text: Some(1), file: None }) => {
                assert_eq!((error.offset, error.char_offset), (7, 6));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(c.is_empty());
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(matches!(PieceCounter::new("(", &[]), Err(TrainError::Pattern(_))));
    }
}
