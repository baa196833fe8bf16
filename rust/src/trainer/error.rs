//! Everything that can go wrong while training, each with a clear message.

use std::path::PathBuf;

use crate::chunking::ChunkError;
use crate::pretokenize::{PatternError, SplitError};
use crate::specials::SpecialsError;

#[derive(Debug)]
pub enum TrainError {
    /// The split pattern does not compile.
    Pattern(PatternError),
    /// A special token is empty or given twice.
    InvalidSpecialToken(String),
    /// `vocab_size` leaves no room for the 256 byte tokens and the special tokens.
    VocabTooSmall { vocab_size: usize, minimum: usize },
    /// The training text has no pieces at all.
    EmptyCorpus,
    /// A file could not be opened or read.
    Io { path: PathBuf, error: std::io::Error },
    /// A file is not UTF-8; `offset` is the byte offset of the first bad byte.
    NotUtf8 { path: PathBuf, offset: u64 },
    /// The regex engine gave up splitting training text with a custom pattern:
    /// text `text` of a batch, or `file` (then `error.offset` is a byte offset in the file).
    Split { error: SplitError, text: Option<usize>, file: Option<PathBuf> },
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pattern(e) => write!(f, "{e}"),
            Self::InvalidSpecialToken(msg) => write!(f, "invalid special tokens: {msg}"),
            Self::VocabTooSmall { vocab_size, minimum } => write!(
                f,
                "vocab_size {vocab_size} is too small: it must be at least {minimum} \
                 (256 byte tokens plus the special tokens)"
            ),
            Self::EmptyCorpus => write!(f, "the training corpus is empty: it has no text to learn from"),
            Self::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            Self::NotUtf8 { path, offset } => {
                write!(f, "{} is not valid UTF-8 (first bad byte at offset {offset})", path.display())
            }
            Self::Split { error, file: Some(path), .. } => write!(
                f,
                "{}: the regex engine gave up on split pattern {:?} at byte {} of the file: {}",
                path.display(),
                error.pattern,
                error.offset,
                error.reason
            ),
            Self::Split { error, text: Some(i), .. } => write!(f, "training text {i}: {error}"),
            Self::Split { error, .. } => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<SpecialsError> for TrainError {
    fn from(e: SpecialsError) -> Self {
        Self::InvalidSpecialToken(e.to_string())
    }
}

impl From<ChunkError> for TrainError {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::Io { path, error } => Self::Io { path, error },
            ChunkError::NotUtf8 { path, offset } => Self::NotUtf8 { path, offset },
        }
    }
}
