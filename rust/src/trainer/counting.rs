//! Unique-piece counting: text is cut at special tokens, split into pieces by the
//! pre-tokenizer, and every distinct piece is counted (64-bit counts), in parallel.

use std::path::PathBuf;

use indicatif::ProgressBar;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::TrainError;
use crate::chunking::FileChunks;
use crate::pretokenize::{PatternError, Pretokenizer};
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
    /// Fails only when a custom split regex gives up on a text (nothing is counted then).
    pub fn add_texts<S: AsRef<str> + Sync>(&mut self, texts: &[S]) -> Result<(), TrainError> {
        let local = texts
            .par_iter()
            .try_fold(BorrowedCounts::default, |mut counts, text| {
                self.count_text(text.as_ref(), &mut counts)?;
                Ok(counts)
            })
            .try_reduce(BorrowedCounts::default, |a, b| Ok(merge_borrowed(a, b)))
            .map_err(TrainError::Pattern)?;
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
        for path in paths {
            let mut reader = FileChunks::open(path, chunk_bytes)?;
            while let Some(chunk) = reader.next_chunk(&self.specials, &self.pretokenizer)? {
                chunks.push(chunk);
                if chunks.len() == batch {
                    self.add_chunks(&mut chunks, progress)?;
                }
            }
        }
        self.add_chunks(&mut chunks, progress)
    }

    fn add_chunks(&mut self, chunks: &mut Vec<String>, progress: &ProgressBar) -> Result<(), TrainError> {
        self.add_texts(chunks)?;
        progress.inc(chunks.iter().map(|c| c.len() as u64).sum());
        chunks.clear();
        Ok(())
    }

    fn count_text<'t>(&self, text: &'t str, counts: &mut BorrowedCounts<'t>) -> Result<(), PatternError> {
        let mut result = Ok(());
        self.specials.for_each_segment(text, |segment| {
            if result.is_ok() {
                result = self.pretokenizer.for_each_piece(segment, |piece| {
                    if !piece.is_empty() {
                        *counts.entry(piece).or_insert(0) += 1;
                    }
                });
            }
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
    fn bad_pattern_is_an_error() {
        assert!(matches!(PieceCounter::new("(", &[]), Err(TrainError::Pattern(_))));
    }
}
