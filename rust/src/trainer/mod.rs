//! Byte-level BPE training.
//!
//! 1. **Counting** ([`counting`]): training text (strings, or files streamed in
//!    chunks, see [`crate::chunking`]) is cut at special tokens, which are not counted,
//!    split into pieces by the [`Pretokenizer`](crate::pretokenize::Pretokenizer),
//!    and every distinct piece is counted with a 64-bit count, in parallel (rayon).
//! 2. **Merging** ([`merging`]): starting from the 256 single bytes, the most frequent
//!    adjacent pair of tokens (counted within pieces, weighted by piece counts) is
//!    merged into a new token, repeatedly, until the vocabulary is full or no pair
//!    occurs `min_frequency` times any more.
//!
//! **Tie-break** (deterministic, independent of thread count and hash order): the
//! pair with the highest count wins; among pairs with equal counts, the one with the
//! smallest left token id, then the smallest right token id. Token ids are ranks:
//! bytes are 0..=255, the token of the k-th merge is 255 + k.

pub mod counting;
pub mod error;
pub mod merge_queue;
pub mod merging;

use indicatif::ProgressBar;

pub use counting::PieceCounter;
pub use error::TrainError;

/// Collects training text, then learns the vocabulary.
#[derive(Debug, Clone)]
pub struct BpeTrainer {
    counter: PieceCounter,
    num_special: usize,
}

impl BpeTrainer {
    /// `pattern`: a built-in pattern name (`gpt2`, `cl100k`, `o200k`) or a regex;
    /// `special_tokens` are cut out of the training text.
    pub fn new(pattern: &str, special_tokens: &[String]) -> Result<Self, TrainError> {
        Ok(Self { counter: PieceCounter::new(pattern, special_tokens)?, num_special: special_tokens.len() })
    }

    /// The smallest `vocab_size` that [`BpeTrainer::train`] accepts.
    pub fn min_vocab_size(&self) -> usize {
        256 + self.num_special
    }

    /// Errors unless `vocab_size` has room for the 256 bytes and the special tokens.
    pub fn check_vocab_size(&self, vocab_size: usize) -> Result<(), TrainError> {
        let minimum = self.min_vocab_size();
        if vocab_size < minimum {
            return Err(TrainError::VocabTooSmall { vocab_size, minimum });
        }
        Ok(())
    }

    /// The piece counter that training text goes to (`add_texts`, `add_files`).
    pub fn counter(&mut self) -> &mut PieceCounter {
        &mut self.counter
    }

    /// Learns the merges and returns the mergeable tokens in rank order: the 256
    /// single bytes, then one token per merge; at most `vocab_size` minus the number of
    /// special tokens. The collected counts are used up.
    pub fn train(
        &mut self,
        vocab_size: usize,
        min_frequency: u64,
        progress: &ProgressBar,
    ) -> Result<Vec<Vec<u8>>, TrainError> {
        self.check_vocab_size(vocab_size)?;
        if self.counter.is_empty() {
            return Err(TrainError::EmptyCorpus);
        }
        let pieces = self.counter.take_counts();
        Ok(merging::learn_merges(pieces, vocab_size - self.num_special, min_frequency, progress))
    }
}
