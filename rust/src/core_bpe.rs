//! The tokenizer core in plain Rust: a vocabulary of mergeable tokens plus
//! special tokens, a split pattern, and the encode/decode operations on top
//! (special-token handling with tiktoken's policy, batch encoding on rayon).

use std::collections::HashSet;
use std::fmt;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::bpe::piece_cache::PieceCache;
use crate::bpe::{self, Rank, TokenMap};
use crate::pretokenize::{PatternError, Pretokenizer};
use crate::specials::{SpecialFinder, SpecialMatcher, SpecialsError};

/// Everything that can go wrong building or using a [`CoreBpe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    EmptyToken { rank: usize },
    DuplicateToken { first: usize, second: usize, bytes: Vec<u8> },
    MissingByte(u8),
    TooManyTokens(usize),
    EmptySpecial,
    SpecialCollision { name: String, id: Rank },
    DuplicateSpecialId { id: Rank, first: String, second: String },
    Pattern(PatternError),
    DisallowedSpecial(String),
    UnknownToken { id: u64, position: usize },
    ThreadPool(String),
    SpecialMatcher(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::EmptyToken { rank } => write!(f, "mergeable token with rank {rank} is empty"),
            CoreError::DuplicateToken { first, second, bytes } => write!(
                f,
                "duplicate mergeable token {:?} at ranks {first} and {second}",
                String::from_utf8_lossy(bytes)
            ),
            CoreError::MissingByte(b) => write!(
                f,
                "the mergeable tokens lack the single byte 0x{b:02x}; all 256 single bytes are needed to encode arbitrary text"
            ),
            CoreError::TooManyTokens(n) => write!(f, "too many mergeable tokens: {n}"),
            CoreError::EmptySpecial => write!(f, "special tokens must be non-empty strings"),
            CoreError::SpecialCollision { name, id } => write!(
                f,
                "special token {name:?} has id {id}, which is already the rank of a mergeable token"
            ),
            CoreError::DuplicateSpecialId { id, first, second } => {
                write!(f, "special tokens {first:?} and {second:?} share the id {id}")
            }
            CoreError::Pattern(e) => write!(f, "{e}"),
            CoreError::DisallowedSpecial(tok) => write!(
                f,
                "Encountered text corresponding to disallowed special token {tok:?}.\n\
                 To encode it as the special token, pass it in `allowed_special` (e.g. allowed_special={{{tok:?}}} or \"all\").\n\
                 To encode it as ordinary text, leave it out of `disallowed_special` \
                 (e.g. disallowed_special=special_tokens_set - {{{tok:?}}}, or disallowed_special=() to disable the check)."
            ),
            CoreError::UnknownToken { id, position } => {
                write!(f, "unknown token id {id} at position {position}")
            }
            CoreError::ThreadPool(e) => write!(f, "could not start the thread pool: {e}"),
            CoreError::SpecialMatcher(e) => write!(f, "could not build the special-token matcher: {e}"),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<SpecialsError> for CoreError {
    fn from(e: SpecialsError) -> Self {
        match e {
            SpecialsError::Empty => CoreError::EmptySpecial,
            SpecialsError::Matcher(e) => CoreError::SpecialMatcher(e),
            // Names are deduplicated before the matcher is built.
            duplicate @ SpecialsError::Duplicate(_) => CoreError::SpecialMatcher(duplicate.to_string()),
        }
    }
}

impl From<PatternError> for CoreError {
    fn from(e: PatternError) -> Self {
        CoreError::Pattern(e)
    }
}

/// Which special tokens an encode call treats as special.
#[derive(Debug, Clone, Default)]
pub struct SpecialPolicy<'a> {
    /// Emitted as their id when they occur.
    pub allowed: HashSet<&'a str>,
    /// Their occurrence in the text is an error.
    pub disallowed: HashSet<&'a str>,
}

/// Special tokens: their ids, their bytes, and the matcher that finds them.
#[derive(Debug)]
struct Specials {
    ids: FxHashMap<String, Rank>,
    bytes: FxHashMap<Rank, Vec<u8>>,
    /// Over the distinct names, sorted.
    matcher: SpecialMatcher,
}

impl Specials {
    fn new(special_tokens: &[(String, Rank)], n_mergeable: usize) -> Result<Self, CoreError> {
        let mut ids = FxHashMap::default();
        let mut bytes: FxHashMap<Rank, Vec<u8>> = FxHashMap::default();
        let mut by_id: FxHashMap<Rank, &str> = FxHashMap::default();
        let mut names = Vec::new();
        for (name, id) in special_tokens {
            if name.is_empty() {
                return Err(CoreError::EmptySpecial);
            }
            if (*id as usize) < n_mergeable {
                return Err(CoreError::SpecialCollision { name: name.clone(), id: *id });
            }
            if let Some(prev) = by_id.insert(*id, name) {
                if prev != name {
                    return Err(CoreError::DuplicateSpecialId {
                        id: *id,
                        first: prev.to_string(),
                        second: name.clone(),
                    });
                }
            }
            if ids.insert(name.clone(), *id).is_none() {
                names.push(name.clone());
            }
            bytes.insert(*id, name.as_bytes().to_vec());
        }
        names.sort();
        let matcher = SpecialMatcher::new(&names)?;
        Ok(Self { ids, bytes, matcher })
    }

    /// A finder for the allowed specials only (None: none allowed).
    fn allowed_finder(&self, allowed: &HashSet<&str>) -> Result<Option<SpecialFinder<'_>>, CoreError> {
        Ok(self.matcher.finder(|name| allowed.contains(name))?)
    }
}

/// An immutable byte-level BPE tokenizer (vocabulary, specials, split pattern).
/// `Send + Sync`: share it across threads freely.
#[derive(Debug)]
pub struct CoreBpe {
    encoder: TokenMap,
    decoder: Vec<Vec<u8>>,
    specials: Specials,
    pretokenizer: Pretokenizer,
    pattern_name: String,
}

impl CoreBpe {
    /// `mergeable[i]` is the token with rank `i`; specials must not reuse those ids.
    pub fn new(mergeable: Vec<Vec<u8>>, special_tokens: &[(String, Rank)], pattern: &str) -> Result<Self, CoreError> {
        if mergeable.len() >= (Rank::MAX - 1) as usize {
            return Err(CoreError::TooManyTokens(mergeable.len()));
        }
        if let Some(rank) = mergeable.iter().position(|t| t.is_empty()) {
            return Err(CoreError::EmptyToken { rank });
        }
        let encoder = TokenMap::new(&mergeable).map_err(|d| CoreError::DuplicateToken {
            first: d.first as usize,
            second: d.second as usize,
            bytes: mergeable[d.second as usize].clone(),
        })?;
        if let Some(b) = encoder.missing_byte() {
            return Err(CoreError::MissingByte(b));
        }
        let specials = Specials::new(special_tokens, mergeable.len())?;
        let pretokenizer = Pretokenizer::new(pattern)?;
        Ok(Self { encoder, decoder: mergeable, specials, pretokenizer, pattern_name: pattern.to_string() })
    }

    /// The pattern as given (a built-in name or a regex).
    pub fn pattern(&self) -> &str {
        &self.pattern_name
    }

    /// The regex source of the split pattern.
    pub fn pattern_regex(&self) -> &str {
        self.pretokenizer.source()
    }

    pub fn pretokenizer(&self) -> &Pretokenizer {
        &self.pretokenizer
    }

    /// Max id + 1 over mergeable and special tokens.
    pub fn n_vocab(&self) -> usize {
        let max_special = self.specials.bytes.keys().map(|&id| id as usize + 1).max().unwrap_or(0);
        self.decoder.len().max(max_special)
    }

    pub fn mergeable_tokens(&self) -> &[Vec<u8>] {
        &self.decoder
    }

    pub fn special_tokens(&self) -> impl Iterator<Item = (&str, Rank)> {
        self.specials.matcher.tokens().iter().map(|n| (n.as_str(), self.specials.ids[n]))
    }

    /// Encodes `text` with no special-token handling at all. Fails only when a
    /// custom split regex gives up on the text.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<Rank>, CoreError> {
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        self.encode_ordinary_into(text, &mut out)?;
        Ok(out)
    }

    fn encode_ordinary_into(&self, text: &str, out: &mut Vec<Rank>) -> Result<(), CoreError> {
        let ranks = &self.encoder;
        let split = match PieceCache::for_text(text) {
            None => self.pretokenizer.for_each_piece(text, |piece| bpe::encode_piece(piece.as_bytes(), ranks, out)),
            // Pieces that are one token are looked up directly; the others
            // (merged) go through the cache of recent pieces.
            Some(mut cache) => self.pretokenizer.for_each_piece(text, |piece| {
                let bytes = piece.as_bytes();
                match ranks.get(bytes) {
                    Some(rank) => out.push(rank),
                    None => cache.encode(bytes, out, |p, o| bpe::merge_piece(p, ranks, o)),
                }
            }),
        };
        split.map_err(CoreError::from)
    }

    /// The first disallowed special (or other disallowed string) in `text`.
    fn find_disallowed(&self, text: &str, disallowed: &HashSet<&str>) -> Option<String> {
        if disallowed.is_empty() {
            return None;
        }
        if let Some(name) = self.specials.matcher.first_occurrence(text, |name| disallowed.contains(name)) {
            return Some(name.to_string());
        }
        // tiktoken searches for every disallowed string, special or not.
        let mut extra: Vec<&&str> =
            disallowed.iter().filter(|s| !self.specials.ids.contains_key(**s) && text.contains(**s)).collect();
        extra.sort();
        extra.first().map(|s| s.to_string())
    }

    /// tiktoken's `encode`: allowed specials become their id, a disallowed one
    /// in the text is an error, others are ordinary text. Where allowed
    /// specials overlap, the leftmost (then longest) occurrence wins.
    pub fn encode(&self, text: &str, policy: &SpecialPolicy<'_>) -> Result<Vec<Rank>, CoreError> {
        let finder = self.specials.allowed_finder(&policy.allowed)?;
        self.encode_with(text, &policy.disallowed, finder.as_ref())
    }

    fn encode_with(
        &self,
        text: &str,
        disallowed: &HashSet<&str>,
        finder: Option<&SpecialFinder<'_>>,
    ) -> Result<Vec<Rank>, CoreError> {
        if let Some(tok) = self.find_disallowed(text, disallowed) {
            return Err(CoreError::DisallowedSpecial(tok));
        }
        let Some(finder) = finder else {
            return self.encode_ordinary(text);
        };
        let mut out = Vec::with_capacity(text.len() / 4 + 1);
        let mut start = 0;
        for found in finder.find_iter(text) {
            self.encode_ordinary_into(&text[start..found.start], &mut out)?;
            out.push(self.specials.ids[found.token]);
            start = found.end;
        }
        self.encode_ordinary_into(&text[start..], &mut out)?;
        Ok(out)
    }

    /// Runs `f` on a rayon pool of `num_threads` threads (None: the global pool).
    fn in_pool<T: Send>(&self, num_threads: Option<usize>, f: impl FnOnce() -> T + Send) -> Result<T, CoreError> {
        match num_threads {
            None | Some(0) => Ok(f()),
            Some(n) => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| CoreError::ThreadPool(e.to_string()))?;
                Ok(pool.install(f))
            }
        }
    }

    pub fn encode_ordinary_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        num_threads: Option<usize>,
    ) -> Result<Vec<Vec<Rank>>, CoreError> {
        self.in_pool(num_threads, || texts.par_iter().map(|t| self.encode_ordinary(t.as_ref())).collect())?
    }

    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        policy: &SpecialPolicy<'_>,
        num_threads: Option<usize>,
    ) -> Result<Vec<Vec<Rank>>, CoreError> {
        let finder = self.specials.allowed_finder(&policy.allowed)?;
        let finder = finder.as_ref();
        self.in_pool(num_threads, || {
            texts.par_iter().map(|t| self.encode_with(t.as_ref(), &policy.disallowed, finder)).collect()
        })?
    }

    /// The bytes of one token (mergeable or special).
    pub fn token_bytes(&self, id: u64) -> Option<&[u8]> {
        if let Some(b) = self.decoder.get(id as usize) {
            return Some(b);
        }
        let id = Rank::try_from(id).ok()?;
        self.specials.bytes.get(&id).map(|v| v.as_slice())
    }

    /// Concatenated bytes of `ids`; the first unknown id is an error.
    pub fn decode_bytes(&self, ids: impl IntoIterator<Item = u64>) -> Result<Vec<u8>, CoreError> {
        let iter = ids.into_iter();
        let mut out = Vec::with_capacity(iter.size_hint().0 * 4);
        for (position, id) in iter.enumerate() {
            match self.token_bytes(id) {
                Some(b) => out.extend_from_slice(b),
                None => return Err(CoreError::UnknownToken { id, position }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byte_vocab(extra: &[&str]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        v.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
        v
    }

    fn core() -> CoreBpe {
        let specials = vec![("<|end|>".to_string(), 300), ("<|end|>x".to_string(), 301)];
        CoreBpe::new(byte_vocab(&["he", "ll", "hell", "hello"]), &specials, "gpt2").unwrap()
    }

    #[test]
    fn encodes_and_decodes() {
        let c = core();
        let ids = c.encode_ordinary("hello hell").unwrap();
        assert_eq!(ids, vec![259, 32, 258]);
        assert_eq!(c.decode_bytes(ids.iter().map(|&i| i as u64)).unwrap(), b"hello hell");
        assert_eq!(c.n_vocab(), 302);
    }

    #[test]
    fn special_policy() {
        let c = core();
        let none = SpecialPolicy::default();
        let text = "hello<|end|>x<|end|>";
        // Not allowed, not disallowed: ordinary text.
        assert_eq!(c.encode(text, &none).unwrap(), c.encode_ordinary(text).unwrap());
        let allowed = SpecialPolicy { allowed: ["<|end|>"].into(), disallowed: HashSet::new() };
        let ids = c.encode(text, &allowed).unwrap();
        assert_eq!(ids[0], 259);
        assert_eq!(ids.iter().filter(|&&i| i == 300).count(), 2);
        let both = SpecialPolicy { allowed: ["<|end|>", "<|end|>x"].into(), disallowed: HashSet::new() };
        let ids = c.encode(text, &both).unwrap();
        assert_eq!(ids, vec![259, 301, 300]);
        let dis = SpecialPolicy { allowed: HashSet::new(), disallowed: ["<|end|>x"].into() };
        assert_eq!(c.encode(text, &dis), Err(CoreError::DisallowedSpecial("<|end|>x".into())));
        assert!(c.encode("hello", &dis).is_ok());
    }

    #[test]
    fn bad_vocabularies_are_errors() {
        let mut v = byte_vocab(&[]);
        v.push(b"a".to_vec());
        assert!(matches!(CoreBpe::new(v, &[], "gpt2"), Err(CoreError::DuplicateToken { .. })));
        let v: Vec<Vec<u8>> = (0..255u8).map(|b| vec![b]).collect();
        assert_eq!(CoreBpe::new(v, &[], "gpt2").unwrap_err(), CoreError::MissingByte(255));
        let clash = vec![("<s>".to_string(), 3)];
        assert!(matches!(CoreBpe::new(byte_vocab(&[]), &clash, "gpt2"), Err(CoreError::SpecialCollision { .. })));
        assert!(matches!(CoreBpe::new(byte_vocab(&[]), &[], "(oops"), Err(CoreError::Pattern(_))));
    }

    #[test]
    fn unknown_ids_are_errors() {
        let c = core();
        assert_eq!(c.decode_bytes([104u64, 999]), Err(CoreError::UnknownToken { id: 999, position: 1 }));
        assert_eq!(c.decode_bytes([300u64]).unwrap(), b"<|end|>");
    }
}
