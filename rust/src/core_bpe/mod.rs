//! The tokenizer core in plain Rust: a vocabulary of mergeable tokens plus
//! special tokens, a split pattern, and the encode/decode operations on top
//! (special-token handling with tiktoken's policy). A text's pieces go to
//! tokens in `piece_batch`; batches run on a thread pool in `batch`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use crate::added_tokens::{Allowed, Segment};
use crate::bpe::listed_merges::ListedMerges;
use crate::bpe::piece_cache::{bytes_hash, PieceCache};
use crate::bpe::{self, Rank, TokenMap};
#[cfg(target_arch = "x86_64")]
use crate::cpu::x86_v3;
use crate::pretokenize::pipeline::{OnePass, Pipeline, PipelineSpec};
use crate::pretokenize::{PatternError, Pretokenizer, SplitError};
use crate::specials::{SpecialFinder, SpecialMatcher, SpecialsError};
use crate::token_bytes::TokenBytes;

mod batch;
mod piece_batch;

use batch::{stream_texts, Collect, EncodeTexts, SliceFeed};
pub use batch::{BatchSink, FirstFailure, Run, TextFeed};
use piece_batch::PieceBatch;

/// Everything that can go wrong building or using a [`CoreBpe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    EmptyToken {
        rank: usize,
    },
    DuplicateToken {
        first: usize,
        second: usize,
        bytes: Vec<u8>,
    },
    MissingByte(u8),
    TooManyTokens(usize),
    EmptySpecial,
    SpecialCollision {
        name: String,
        id: Rank,
    },
    DuplicateSpecialId {
        id: Rank,
        first: String,
        second: String,
    },
    Pattern(PatternError),
    DisallowedSpecial(String),
    UnknownToken {
        id: u64,
        position: usize,
    },
    ThreadPool(String),
    SpecialMatcher(String),
    /// The regex engine gave up splitting text with a custom pattern; `text` is
    /// the index of the text in a batch.
    Split {
        error: SplitError,
        text: Option<usize>,
    },
    Pipeline(String),
    /// A merge list that names no token (see [`CoreBpe::with_listed_merges`]).
    Merges(String),
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
            CoreError::TooManyTokens(n) => {
                write!(f, "too many mergeable tokens: {n} (at most {})", bpe::MAX_TOKENS)
            }
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
            CoreError::Split { error, text: None } => write!(f, "{error}"),
            CoreError::Split { error, text: Some(i) } => write!(f, "text {i} of the batch: {error}"),
            CoreError::Pipeline(e) => write!(f, "{e}"),
            CoreError::Merges(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CoreError {}

impl CoreError {
    /// The same error, for the text at `index` of a batch.
    fn in_batch(self, index: usize) -> Self {
        match self {
            CoreError::Split { error, text: None } => CoreError::Split { error, text: Some(index) },
            other => other,
        }
    }
}

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
    /// Every special token is allowed (tiktoken's `allowed_special="all"`),
    /// without a set of them built for each call.
    pub allow_all_specials: bool,
    /// Their occurrence in the text is an error.
    pub disallowed: HashSet<&'a str>,
    /// Every special token not in `allowed` is disallowed too (tiktoken's
    /// default), without a set of them built for each call.
    pub disallow_other_specials: bool,
}

impl SpecialPolicy<'_> {
    /// Whether the special token `name` is emitted as its id.
    fn allows(&self, name: &str) -> bool {
        self.allow_all_specials || self.allowed.contains(name)
    }
}

/// A special-token policy and the finder of the specials it allows (None: none allowed).
type TextPolicy<'a> = (&'a SpecialPolicy<'a>, Option<&'a SpecialFinder<'a>>);

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
    fn allowed_finder(&self, policy: &SpecialPolicy<'_>) -> Result<Option<SpecialFinder<'_>>, CoreError> {
        Ok(self.matcher.finder(|name| policy.allows(name))?)
    }
}

/// Room for the tokens of `bytes` of text: a token is 3 to 4 bytes of
/// ordinary text, and reserved pages cost nothing until written, so reserve
/// generously rather than copy the output when it grows.
fn output_capacity(bytes: usize) -> usize {
    bytes / 2 + 16
}

/// Gives each [`CoreBpe`] an id of its own, for the thread caches.
static NEXT_CORE_ID: AtomicU64 = AtomicU64::new(1);

/// How many tokenizers' piece caches a thread keeps. Code that alternates
/// between two tokenizers (a model's and a reference one, say) would
/// otherwise start a cache afresh at every call.
const KEPT_CACHES: usize = 2;

thread_local! {
    /// This thread's piece caches, each with the id of the tokenizer it
    /// serves, the most recently used first. They outlive calls (bounded:
    /// see `piece_cache`), so the texts of one batch run, of the next run on
    /// this thread and of later calls share them.
    static THREAD_CACHES: RefCell<Vec<(u64, PieceCache)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's piece cache for the tokenizer `id`, sized
/// for at least `bytes` of text.
fn with_thread_cache<R>(id: u64, bytes: usize, f: impl FnOnce(&mut PieceCache) -> R) -> R {
    THREAD_CACHES.with(|cell| match cell.try_borrow_mut() {
        Ok(mut caches) => {
            let at = match caches.iter().position(|(owner, _)| *owner == id) {
                Some(at) => at,
                None => {
                    if caches.len() == KEPT_CACHES {
                        caches.pop();
                    }
                    caches.push((id, PieceCache::for_bytes(bytes)));
                    caches.len() - 1
                }
            };
            caches[..=at].rotate_right(1);
            let (_, cache) = &mut caches[0];
            cache.reserve_for(bytes);
            f(cache)
        }
        // Only a re-entrant call (none is made today) finds it borrowed.
        Err(_) => f(&mut PieceCache::for_bytes(bytes)),
    })
}

/// What cuts a text into the pieces the encoder merges: a split pattern, or
/// a pipeline's steps that run in one pass.
#[derive(Clone, Copy)]
enum Splitter<'a> {
    Pattern(&'a Pretokenizer),
    OnePass(&'a OnePass),
}

/// An immutable byte-level BPE tokenizer (vocabulary, specials, split pattern).
/// `Send + Sync`: share it across threads freely.
#[derive(Debug)]
pub struct CoreBpe {
    /// Unique in the process: keys this tokenizer's thread caches.
    id: u64,
    encoder: TokenMap,
    decoder: TokenBytes,
    specials: Specials,
    pretokenizer: Pretokenizer,
    pattern_name: String,
    /// A tokenizer.json pipeline (added tokens, normalizer, several pre-tokenizer
    /// steps); `None`: the split pattern alone, tiktoken's way.
    pipeline: Option<Box<Pipeline>>,
    /// A merge list to merge by, `tokenizers`' way, where a file's merges
    /// cannot be read as ranks; `None`: rank-based BPE, tiktoken's way.
    listed: Option<Box<ListedMerges>>,
    /// The mergeable ranks in the order of their bytes, made when first asked
    /// for (only [`crate::unstable`] needs it).
    by_bytes: OnceLock<Vec<Rank>>,
}

impl CoreBpe {
    /// `mergeable[i]` is the token with rank `i`; specials must not reuse those ids.
    pub fn new(mergeable: Vec<Vec<u8>>, special_tokens: &[(String, Rank)], pattern: &str) -> Result<Self, CoreError> {
        if mergeable.len() > bpe::MAX_TOKENS {
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
        let id = NEXT_CORE_ID.fetch_add(1, Ordering::Relaxed);
        let pattern_name = pattern.to_string();
        let decoder = TokenBytes::new(&mergeable);
        Ok(Self {
            id,
            encoder,
            decoder,
            specials,
            pretokenizer,
            pattern_name,
            pipeline: None,
            listed: None,
            by_bytes: OnceLock::new(),
        })
    }

    /// Like [`CoreBpe::new`], encoding through `spec`: its steps (none: `pattern`,
    /// isolated), its normalizer, and its added tokens plus the special tokens.
    pub fn with_pipeline(
        mergeable: Vec<Vec<u8>>,
        special_tokens: &[(String, Rank)],
        pattern: &str,
        spec: PipelineSpec,
    ) -> Result<Self, CoreError> {
        let mut core = Self::new(mergeable, special_tokens, pattern)?;
        let specials = core.special_tokens().map(|(name, id)| (name.to_string(), id)).collect::<Vec<_>>();
        let pipeline = spec
            .build(&core.pretokenizer, &specials, core.decoder.len())
            .map_err(|e| CoreError::Pipeline(e.to_string()))?;
        core.pipeline = Some(Box::new(pipeline));
        Ok(core)
    }

    /// This tokenizer merging by the merge list `pairs` (ranks, earliest first),
    /// as HF `tokenizers` does, instead of by rank (see [`crate::bpe::listed_merges`]).
    pub fn with_listed_merges(mut self, pairs: Vec<(Rank, Rank)>, ignore_merges: bool) -> Result<Self, CoreError> {
        let listed =
            ListedMerges::new(pairs, &self.decoder, &self.encoder, ignore_merges).map_err(CoreError::Merges)?;
        self.listed = Some(Box::new(listed));
        Ok(self)
    }

    /// The merge list this tokenizer merges by, if it has one.
    pub fn listed_merges(&self) -> Option<&ListedMerges> {
        self.listed.as_deref()
    }

    /// The tokens of one piece merged alone, from its bytes.
    pub fn encode_piece_vec(&self, piece: &[u8]) -> Vec<Rank> {
        match &self.listed {
            Some(listed) => {
                let mut out = Vec::new();
                listed.encode_piece(piece, &self.encoder, &mut out);
                out
            }
            None => bpe::encode_piece_vec(piece, &self.encoder),
        }
    }

    /// The tokenizer.json pipeline, if this tokenizer has one.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_deref()
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
        let max_added = self.pipeline.as_ref().map_or(0, |p| p.added().max_id().map_or(0, |id| id as usize + 1));
        self.decoder.len().max(max_special).max(max_added)
    }

    /// The mergeable tokens' bytes, by rank.
    pub fn mergeable_tokens(&self) -> &TokenBytes {
        &self.decoder
    }

    /// The mergeable tokens' lookup table.
    pub fn token_map(&self) -> &TokenMap {
        &self.encoder
    }

    /// The mergeable ranks sorted by their tokens' bytes.
    pub fn ranks_by_bytes(&self) -> &[Rank] {
        self.by_bytes.get_or_init(|| {
            let mut ranks: Vec<Rank> = (0..self.decoder.len() as Rank).collect();
            ranks.sort_unstable_by_key(|&r| self.decoder.get(u64::from(r)).unwrap_or_default());
            ranks
        })
    }

    pub fn special_tokens(&self) -> impl Iterator<Item = (&str, Rank)> {
        self.specials.matcher.tokens().iter().map(|n| (n.as_str(), self.specials.ids[n]))
    }

    /// Encodes `text` with no special-token handling at all. An error only
    /// comes from a custom pattern the regex engine gives up on.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<Rank>, CoreError> {
        with_thread_cache(self.id, text.len(), |cache| {
            let mut out = Vec::with_capacity(output_capacity(text.len()));
            self.encode_ordinary_into(text, &mut out, Some(cache))
                .map_err(|error| CoreError::Split { error, text: None })?;
            Ok(out)
        })
    }

    fn encode_ordinary_into(
        &self,
        text: &str,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        if let Some(pipeline) = &self.pipeline {
            return self.encode_segments(pipeline, text, Allowed::None, out, cache);
        }
        self.encode_plain_into(text, out, cache)
    }

    /// Splits `text` with the split pattern and encodes its pieces into `out`
    /// (no pipeline, no special tokens).
    fn encode_plain_into(
        &self,
        text: &str,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        self.split_and_encode_into(Splitter::Pattern(&self.pretokenizer), text, out, cache)
    }

    /// Splits `text` with `splitter` and encodes its pieces into `out`, on
    /// the copy of the loop compiled for this CPU.
    fn split_and_encode_into(
        &self,
        splitter: Splitter<'_>,
        text: &str,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        #[cfg(target_arch = "x86_64")]
        if x86_v3() {
            // SAFETY: the CPU has the features `split_and_encode_v3` is compiled for.
            return unsafe { self.split_and_encode_v3(splitter, text, out, cache) };
        }
        self.split_and_encode(splitter, text, out, cache)
    }

    /// The scan loop, the window classification and the per-piece work,
    /// compiled for x86-64-v3 (AVX2, BMI1/2): the classification inlines and
    /// variable shifts of the masks need no `cl`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    fn split_and_encode_v3(
        &self,
        splitter: Splitter<'_>,
        text: &str,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        self.split_and_encode(splitter, text, out, cache)
    }

    /// The merge list to merge by, where there is one. With `ignore_merges`
    /// a piece that is a token is that token, as with ranks, so its pieces
    /// are looked up in batches ([`PieceBatch`]) as without a list.
    fn merging_list(&self) -> Option<&ListedMerges> {
        self.listed.as_deref().filter(|l| !l.ignore_merges())
    }

    /// Whether the texts of a run of a batch can share one [`PieceBatch`]
    /// ([`CoreBpe::encode_plain_run`]): no pipeline, no merge list to merge by.
    fn texts_share_piece_batches(&self) -> bool {
        self.pipeline.is_none() && self.merging_list().is_none()
    }

    /// Encodes the texts of a run of a batch into `run` through one
    /// [`PieceBatch`] (a plain tokenizer: no pipeline, no merge list to merge
    /// by): a text's pieces wait beside the next one's, so that short texts
    /// share the batch's prefetches and deferred merges. Encoded one by one,
    /// a batch of short lines took twice as long as the same text whole.
    /// `specials`: tiktoken's `encode` of each text with this policy and the
    /// finder of its allowed specials, as [`CoreBpe::encode_with_into`]; None:
    /// `encode_ordinary`. A text that fails gets no tokens, as in `batch::encode_run`.
    fn encode_plain_run<S: AsRef<str>>(
        &self,
        texts: &[S],
        specials: Option<TextPolicy<'_>>,
        run: &mut Run,
        cache: &mut PieceCache,
    ) {
        #[cfg(target_arch = "x86_64")]
        if x86_v3() {
            // SAFETY: the CPU has the features `encode_plain_run_v3` is compiled for.
            return unsafe { self.encode_plain_run_v3(texts, specials, run, cache) };
        }
        self.encode_plain_run_any(texts, specials, run, cache)
    }

    /// [`CoreBpe::encode_plain_run`] compiled for x86-64-v3, as [`CoreBpe::split_and_encode_v3`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
    fn encode_plain_run_v3<S: AsRef<str>>(
        &self,
        texts: &[S],
        specials: Option<TextPolicy<'_>>,
        run: &mut Run,
        cache: &mut PieceCache,
    ) {
        self.encode_plain_run_any(texts, specials, run, cache)
    }

    #[inline(always)]
    fn encode_plain_run_any<S: AsRef<str>>(
        &self,
        texts: &[S],
        specials: Option<TextPolicy<'_>>,
        run: &mut Run,
        cache: &mut PieceCache,
    ) {
        debug_assert!(self.texts_share_piece_batches());
        let out = &mut run.ids;
        let mut batch = PieceBatch::new(&self.encoder, self.listed.as_deref(), b"", Some(cache));
        for (k, t) in texts.iter().enumerate() {
            let text = t.as_ref();
            batch.start_text(text.as_bytes());
            // One split call for all the text between specials (each call inlines the whole scanner).
            let encoded = self.for_each_ordinary_part(text, specials, |start, segment, special| {
                self.pretokenizer.for_each_range_inline(
                    segment,
                    #[inline(always)]
                    |from, to| batch.push(start + from, start + to, out),
                )?;
                if let Some(id) = special {
                    batch.flush(out);
                    out.push(id);
                }
                Ok(())
            });
            if let Err(e) = encoded {
                // Its tokens so far are dropped once the texts before it are done.
                batch.finish(out);
                out.truncate(batch.ends.last().copied().unwrap_or(0));
                let index = run.start + k;
                run.error.get_or_insert((index, e.in_batch(index)));
            }
            batch.end_text(out);
        }
        batch.finish(out);
        run.ends = batch.take_ends();
    }

    /// Splits `text` and encodes its pieces into `out` (as compiled for any
    /// CPU; see [`CoreBpe::split_and_encode_v3`]).
    #[inline(always)]
    fn split_and_encode(
        &self,
        splitter: Splitter<'_>,
        text: &str,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        if let Some(listed) = self.merging_list() {
            return self.split_and_merge_listed(listed, splitter, text, out, cache);
        }
        let mut batch = PieceBatch::new(&self.encoder, self.listed.as_deref(), text.as_bytes(), cache);
        let split = match splitter {
            Splitter::Pattern(pattern) => pattern.for_each_range_inline(
                text,
                #[inline(always)]
                |start, end| batch.push(start, end, out),
            ),
            Splitter::OnePass(pass) => pass.for_each_piece(
                text,
                #[inline(always)]
                |start, end| batch.push(start, end, out),
            ),
        };
        // The pieces before a split error are kept, as the caller may report where it stopped.
        batch.finish(out);
        split
    }

    /// [`CoreBpe::split_and_encode`] for a tokenizer with a merge list and
    /// without `ignore_merges`: each piece merged as it comes (a piece that
    /// is a token need not be that token, so the batch's lookups do not
    /// hold), or copied from the piece cache.
    #[inline(never)]
    fn split_and_merge_listed(
        &self,
        listed: &ListedMerges,
        splitter: Splitter<'_>,
        text: &str,
        out: &mut Vec<Rank>,
        mut cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        let bytes = text.as_bytes();
        match splitter {
            Splitter::Pattern(pattern) => pattern
                .for_each_piece_bytes_inline(text, |piece| self.merge_listed(listed, piece, cache.as_deref_mut(), out)),
            Splitter::OnePass(pass) => pass.for_each_piece(text, |start, end| {
                self.merge_listed(listed, &bytes[start..end], cache.as_deref_mut(), out)
            }),
        }
    }

    /// The tokens of one piece by the merge list `listed`: a whole token where
    /// `ignore_merges` says so, else remembered in the piece cache (the cache is
    /// this tokenizer's, so it never mixes with rank-based results).
    fn merge_listed(&self, listed: &ListedMerges, piece: &[u8], cache: Option<&mut PieceCache>, out: &mut Vec<Rank>) {
        if listed.ignore_merges() {
            if let Some(rank) = self.encoder.get(piece) {
                out.push(rank);
                return;
            }
        }
        match cache {
            Some(cache) if piece.len() > 1 => {
                let key = bpe::short_key(piece).unwrap_or(0);
                let hash = if key != 0 { bpe::key_hash(key) } else { bytes_hash(piece) };
                cache.encode(piece, key, hash, out, |p, o| listed.encode_piece(p, &self.encoder, o));
            }
            _ => listed.encode_piece(piece, &self.encoder, out),
        }
    }

    /// Encodes `text` through `pipeline`: its added tokens (specials as `allowed`)
    /// become their ids, the pieces between them are merged.
    fn encode_segments(
        &self,
        pipeline: &Pipeline,
        text: &str,
        allowed: Allowed<'_>,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), SplitError> {
        // The pieces of each normalized stretch, found and merged batch by
        // batch as for a tokenizer without a pipeline: the pattern's where the
        // steps are the pattern alone, else the steps' one pass if they have one.
        let splitter = match pipeline.one_pass() {
            _ if pipeline.is_plain() => Some(Splitter::Pattern(&self.pretokenizer)),
            pass => pass.map(Splitter::OnePass),
        };
        if let Some(splitter) = splitter {
            let mut cache = cache;
            return pipeline.for_each_stretch(text, allowed, |segment| match segment {
                Segment::Token(id) => {
                    out.push(id);
                    Ok(())
                }
                Segment::Piece(stretch) => self.split_and_encode_into(splitter, stretch, out, cache.as_deref_mut()),
            });
        }
        if let Some(listed) = self.merging_list() {
            let mut cache = cache;
            return pipeline.for_each_segment(text, allowed, |segment| match segment {
                Segment::Token(id) => out.push(id),
                Segment::Piece(piece) => self.merge_listed(listed, piece.as_bytes(), cache.as_deref_mut(), out),
            });
        }
        // Pieces that are slices of `text` wait in the batch, their lines
        // asked for ahead; a piece of a normalized copy (or a prefixed one),
        // which does not outlive its segment, is encoded as it comes.
        let mut batch = PieceBatch::new(&self.encoder, self.listed.as_deref(), text.as_bytes(), cache);
        let base = text.as_ptr() as usize;
        let result = pipeline.for_each_segment(text, allowed, |segment| match segment {
            Segment::Token(id) => {
                batch.flush(out);
                out.push(id);
            }
            Segment::Piece(piece) => {
                let at = (piece.as_ptr() as usize).wrapping_sub(base);
                let end = at.wrapping_add(piece.len());
                match text.as_bytes().get(at..end) {
                    Some(_) if at < text.len() => batch.push(at, end, out),
                    _ => batch.push_now(piece.as_bytes(), out),
                }
            }
        });
        batch.finish(out);
        result
    }

    /// [`CoreBpe::encode`] of `text` for a tokenizer with a pipeline, appended to `out`.
    fn encode_pipeline_into(
        &self,
        pipeline: &Pipeline,
        text: &str,
        policy: &SpecialPolicy<'_>,
        out: &mut Vec<Rank>,
        cache: Option<&mut PieceCache>,
    ) -> Result<(), CoreError> {
        if let Some(tok) = self.find_disallowed(text, policy) {
            return Err(CoreError::DisallowedSpecial(tok));
        }
        let allowed = match policy {
            _ if policy.allow_all_specials => Allowed::All,
            _ if policy.allowed.is_empty() => Allowed::None,
            _ => Allowed::Some(&policy.allowed),
        };
        self.encode_segments(pipeline, text, allowed, out, cache)
            .map_err(|error| CoreError::Split { error, text: None })
    }

    /// The first disallowed special (or other disallowed string) in `text`.
    fn find_disallowed(&self, text: &str, policy: &SpecialPolicy<'_>) -> Option<String> {
        let disallowed = &policy.disallowed;
        let others = policy.disallow_other_specials && !policy.allow_all_specials;
        if disallowed.is_empty() && !others {
            return None;
        }
        let is_disallowed = |name: &str| disallowed.contains(name) || (others && !policy.allows(name));
        if let Some(name) = self.specials.matcher.first_occurrence(text, is_disallowed) {
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
        if let Some(pipeline) = &self.pipeline {
            return with_thread_cache(self.id, text.len(), |cache| {
                let mut out = Vec::with_capacity(output_capacity(text.len()));
                self.encode_pipeline_into(pipeline, text, policy, &mut out, Some(cache))?;
                Ok(out)
            });
        }
        let finder = self.specials.allowed_finder(policy)?;
        with_thread_cache(self.id, text.len(), |cache| self.encode_with(text, policy, finder.as_ref(), Some(cache)))
    }

    fn encode_with(
        &self,
        text: &str,
        policy: &SpecialPolicy<'_>,
        finder: Option<&SpecialFinder<'_>>,
        cache: Option<&mut PieceCache>,
    ) -> Result<Vec<Rank>, CoreError> {
        let mut out = Vec::with_capacity(output_capacity(text.len()));
        self.encode_with_into(text, policy, finder, cache, &mut out)?;
        Ok(out)
    }

    /// [`CoreBpe::encode`] of `text`, appended to `out`.
    fn encode_with_into(
        &self,
        text: &str,
        policy: &SpecialPolicy<'_>,
        finder: Option<&SpecialFinder<'_>>,
        mut cache: Option<&mut PieceCache>,
        out: &mut Vec<Rank>,
    ) -> Result<(), CoreError> {
        self.for_each_ordinary_part(text, Some((policy, finder)), |_, segment, special| {
            self.encode_ordinary_into(segment, out, cache.as_deref_mut())?;
            out.extend(special);
            Ok(())
        })
    }

    /// Walks `text` as tiktoken's `encode` with `specials` (None: as
    /// `encode_ordinary`): a disallowed special in it is an error before
    /// anything is given to `each`; otherwise `each` gets every stretch of
    /// ordinary text (with its offset) and the id of the allowed special that
    /// ends it (None for the last). A split error is placed in the whole text.
    #[inline(always)]
    fn for_each_ordinary_part(
        &self,
        text: &str,
        specials: Option<TextPolicy<'_>>,
        mut each: impl FnMut(usize, &str, Option<Rank>) -> Result<(), SplitError>,
    ) -> Result<(), CoreError> {
        let finder = match specials {
            Some((policy, finder)) => {
                if let Some(tok) = self.find_disallowed(text, policy) {
                    return Err(CoreError::DisallowedSpecial(tok));
                }
                finder
            }
            None => None,
        };
        let split_error =
            |error: SplitError, segment: &str| CoreError::Split { error: error.within(text, segment), text: None };
        let mut start = 0;
        for found in finder.into_iter().flat_map(|f| f.find_iter(text)) {
            let segment = &text[start..found.start];
            each(start, segment, Some(self.specials.ids[found.token])).map_err(|e| split_error(e, segment))?;
            start = found.end;
        }
        let segment = &text[start..];
        each(start, segment, None).map_err(|e| split_error(e, segment))
    }

    pub fn encode_ordinary_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        num_threads: Option<usize>,
    ) -> Result<Vec<Vec<Rank>>, CoreError> {
        let sink = Collect::new(texts.len());
        self.encode_ordinary_batch_to(&mut SliceFeed::new(texts), num_threads, &sink)?;
        sink.into_results()
    }

    /// [`CoreBpe::encode_ordinary_batch`] of the texts of `feed`, delivered to
    /// `sink` run by run (a feed that stops the batch leaves texts undelivered).
    pub fn encode_ordinary_batch_to<'t>(
        &self,
        feed: &mut dyn TextFeed<'t>,
        num_threads: Option<usize>,
        sink: &impl BatchSink,
    ) -> Result<(), CoreError> {
        let f = |t: &str, out: &mut Vec<Rank>, cache: &mut PieceCache| {
            self.encode_ordinary_into(t, out, Some(cache)).map_err(|error| CoreError::Split { error, text: None })
        };
        // No special tokens here: a long text may be cut where its pieces stop anyway.
        let cuttable = self.pipeline.is_none() && self.pretokenizer.pieces_stop_at_letter_newlines();
        let whole =
            |texts: &[&str], run: &mut Run, cache: &mut PieceCache| self.encode_plain_run(texts, None, run, cache);
        let whole = self.texts_share_piece_batches().then_some(&whole as &EncodeTexts<'_>);
        stream_texts(self.id, feed, num_threads, &f, whole, sink, cuttable)
    }

    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        policy: &SpecialPolicy<'_>,
        num_threads: Option<usize>,
    ) -> Result<Vec<Vec<Rank>>, CoreError> {
        let sink = Collect::new(texts.len());
        self.encode_batch_to(&mut SliceFeed::new(texts), policy, num_threads, &sink)?;
        sink.into_results()
    }

    /// [`CoreBpe::encode_batch`] of the texts of `feed`, delivered to `sink`
    /// run by run (a text with a disallowed special token is reported in its
    /// run's `error`; a feed that stops the batch leaves texts undelivered).
    pub fn encode_batch_to<'t>(
        &self,
        feed: &mut dyn TextFeed<'t>,
        policy: &SpecialPolicy<'_>,
        num_threads: Option<usize>,
        sink: &impl BatchSink,
    ) -> Result<(), CoreError> {
        if let Some(pipeline) = &self.pipeline {
            let f = |t: &str, out: &mut Vec<Rank>, cache: &mut PieceCache| {
                self.encode_pipeline_into(pipeline, t, policy, out, Some(cache))
            };
            return stream_texts(self.id, feed, num_threads, &f, None, sink, false);
        }
        let finder = self.specials.allowed_finder(policy)?;
        let finder = finder.as_ref();
        let f = |t: &str, out: &mut Vec<Rank>, cache: &mut PieceCache| {
            self.encode_with_into(t, policy, finder, Some(cache), out)
        };
        // A cut comes just before a newline: no special token without one
        // spans it, so each part finds the specials of the whole text.
        let cuttable = self.pretokenizer.pieces_stop_at_letter_newlines()
            && !self.specials.matcher.tokens().iter().any(|name| name.contains('\n'));
        let whole = |texts: &[&str], run: &mut Run, cache: &mut PieceCache| {
            self.encode_plain_run(texts, Some((policy, finder)), run, cache)
        };
        let whole = self.texts_share_piece_batches().then_some(&whole as &EncodeTexts<'_>);
        stream_texts(self.id, feed, num_threads, &f, whole, sink, cuttable)
    }

    /// The rank of the mergeable token whose bytes are `bytes`, if there is one.
    pub fn mergeable_rank(&self, bytes: &[u8]) -> Option<Rank> {
        self.encoder.get(bytes)
    }

    /// The bytes of one token (mergeable or special).
    pub fn token_bytes(&self, id: u64) -> Option<&[u8]> {
        if let Some(b) = self.decoder.get(id) {
            return Some(b);
        }
        let id = Rank::try_from(id).ok()?;
        let added = || self.pipeline.as_ref()?.added().text_of(id).map(str::as_bytes);
        self.specials.bytes.get(&id).map(|v| v.as_slice()).or_else(added)
    }

    /// Concatenated bytes of `ids`; the first unknown id is an error.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, CoreError> {
        // About four bytes a token: the arena's copies reserve more as needed.
        let mut out = Vec::with_capacity(ids.len() * 4 + 16);
        let mut done = 0;
        while done < ids.len() {
            done += self.decoder.append(&ids[done..], &mut out);
            // A special or added token, or an unknown id.
            if let Some(&id) = ids.get(done) {
                let id = u64::from(id);
                out.extend_from_slice(self.token_bytes(id).ok_or(CoreError::UnknownToken { id, position: done })?);
                done += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::batch::{plan_tasks, Task, MIN_RUN};
    use super::*;
    use crate::pretokenize::pipeline::{Normalizer, Step};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    fn byte_vocab(extra: &[&str]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        v.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
        v
    }

    fn core() -> CoreBpe {
        let specials = vec![("<|end|>".to_string(), 300), ("<|end|>x".to_string(), 301)];
        CoreBpe::new(byte_vocab(&["he", "ll", "hell", "hello"]), &specials, "gpt2").unwrap()
    }

    /// A split pattern that matches empty strings hands the merge list empty
    /// pieces, which merge to nothing (fuzz finding 18 panicked on them).
    #[test]
    fn empty_pieces_merge_to_nothing_by_a_merge_list() {
        let vocab = byte_vocab(&["ab", "abc"]);
        let merges = vec![(97, 98), (256, 99)];
        for ignore_merges in [false, true] {
            let with = |pattern: &str| {
                CoreBpe::new(vocab.clone(), &[], pattern)
                    .unwrap()
                    .with_listed_merges(merges.clone(), ignore_merges)
                    .unwrap()
            };
            let (empty, plain) = (with(r"[abc]*"), with(r"[abc]+"));
            for text in ["", "xabcx", "abcab yab"] {
                assert_eq!(empty.encode_ordinary(text).unwrap(), plain.encode_ordinary(text).unwrap(), "{text:?}");
            }
        }
    }

    /// Texts of 40 KB, one run each (see `plan_tasks`), whose one token is
    /// its index: `f` below "encodes" a text by its index.
    fn indexed_texts(n: usize) -> Vec<String> {
        (0..n).map(|k| format!("{k:<40000}")).collect()
    }

    /// Records which thread delivered each run, and how many deliveries
    /// were under way at once (each takes a moment, so that overlaps show).
    struct ThreadsSink {
        results: Collect,
        delivered: Mutex<Vec<(usize, std::thread::ThreadId)>>,
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl BatchSink for ThreadsSink {
        fn wait<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
            f()
        }
        fn deliver(&self, run: Run) {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(300));
            self.delivered.lock().unwrap().push((run.start, std::thread::current().id()));
            self.results.deliver(run);
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Every run of a batch is delivered once, one delivery at a time, for
    /// several thread counts: by the pool's threads (the calling thread only
    /// waits), or with one thread by the calling thread, which runs them all.
    #[test]
    fn runs_are_delivered_once_each_by_the_pool_one_at_a_time() {
        let texts = indexed_texts(24);
        for threads in [1, 2, 3, 5] {
            let f = |t: &str, out: &mut Vec<Rank>, _: &mut PieceCache| {
                out.push(t.trim_end().parse().unwrap());
                Ok(())
            };
            let sink = ThreadsSink {
                results: Collect::new(texts.len()),
                delivered: Mutex::new(Vec::new()),
                now: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
            };
            stream_texts(0, &mut SliceFeed::new(&texts), Some(threads), &f, None, &sink, false).unwrap();
            let delivered = sink.delivered.into_inner().unwrap();
            let mut starts: Vec<usize> = delivered.iter().map(|&(start, _)| start).collect();
            starts.sort();
            let runs: Vec<usize> = plan_tasks(&texts, threads, false, MIN_RUN).0.iter().map(Task::first_text).collect();
            assert_eq!(starts, runs, "{threads} threads: each run once");
            let here = std::thread::current().id();
            assert!(delivered.iter().all(|&(_, t)| (t == here) == (threads == 1)), "{threads} threads");
            assert_eq!(sink.most.into_inner(), 1, "{threads} threads: deliveries overlapped");
            let got = sink.results.into_results().unwrap();
            assert_eq!(got, (0..texts.len() as Rank).map(|k| vec![k]).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    /// Lines of letters and of digits, `bytes` long: places to cut (a newline
    /// after a letter) every few lines, none inside the digit lines.
    fn prose(bytes: usize, seed: u64) -> String {
        let mut next = crate::test_rng::xorshift(seed);
        let mut text = String::new();
        while text.len() < bytes {
            match next() % 4 {
                0 => text.push_str("  12 345 6789 \n\n"),
                1 => text.push_str("Über größere Straßen, naïve café\n"),
                2 => text.push_str(" tabs\tand  spaces   \r\n"),
                _ => text.push_str("the quick brown fox's jump, it's 42 times!\n"),
            }
        }
        text
    }

    /// Runs hold at least `min_run` bytes and at most about a sixteenth of
    /// each thread's share: a sink that hands runs over for less (the flat
    /// numpy one) gets more, smaller runs of short texts.
    #[test]
    fn runs_are_sized_by_the_sinks_least_run() {
        let texts: Vec<String> = (0..4096).map(|k| format!("line {k} of some text\n")).collect();
        let total: usize = texts.iter().map(|t| t.len()).sum();
        for (min_run, threads) in [(MIN_RUN, 2), (1 << 13, 2), (1 << 13, 1)] {
            let (tasks, _) = plan_tasks(&texts, threads, false, min_run);
            let per_run = (total / (16 * threads)).max(min_run);
            let sizes: Vec<usize> = tasks
                .iter()
                .map(|t| match *t {
                    Task::Run(_, _, size) => size,
                    Task::Part { .. } => unreachable!("short texts are not cut"),
                })
                .collect();
            // Each run closes with the text that takes it to `per_run` (a text counts 16 more).
            assert!(
                sizes[..sizes.len() - 1].iter().all(|&s| (per_run..per_run + 64).contains(&s)),
                "{min_run} {threads}"
            );
            assert!(*sizes.last().unwrap() < per_run + 64);
        }
        let count = |min_run| plan_tasks(&texts, 2, false, min_run).0.len();
        assert!(count(1 << 13) > 2 * count(MIN_RUN), "{} {}", count(1 << 13), count(MIN_RUN));
    }

    /// Long texts become parts that cover them, cut only before a newline
    /// after a letter; short texts, or any text when not `cuttable`, stay whole.
    #[test]
    fn long_texts_are_cut_at_newlines_after_letters() {
        let digits = "1 2 3 4\n".repeat(20_000);
        let texts = [prose(200_000, 1), "short\n".to_string(), digits, prose(60_000, 2), prose(20_000, 3)];
        let (whole, parts_of) = plan_tasks(&texts, 2, false, MIN_RUN);
        assert!(parts_of.is_empty() && whole.iter().all(|t| matches!(t, Task::Run(..))));
        let (tasks, parts_of) = plan_tasks(&texts, 2, true, MIN_RUN);
        let mut parts: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); parts_of.len()];
        let mut texts_cut = Vec::new();
        for task in &tasks {
            if let Task::Part { text, from, to, index, slot } = *task {
                parts[slot].push((index, from, to));
                if index == 0 {
                    texts_cut.push(text);
                }
                let bytes = texts[text].as_bytes();
                assert!(
                    from == 0
                        || (bytes[from] == b'\n'
                            && crate::chunking::first_newline_cut(bytes, from, from + 1) == Some(from))
                );
                assert!(to > from);
            }
        }
        assert_eq!(
            texts_cut,
            [0, 3],
            "the 200 KB and 60 KB texts of letters are cut; not the digits nor the short ones"
        );
        for (slot, &text) in texts_cut.iter().enumerate() {
            let p = &parts[slot];
            assert_eq!(p.len(), parts_of[slot]);
            assert!(p.len() >= 2);
            assert!(p.iter().enumerate().all(|(k, &(index, ..))| index == k));
            assert_eq!(p[0].1, 0);
            assert_eq!(p.last().unwrap().2, texts[text].len());
            assert!(p.windows(2).all(|w| w[0].2 == w[1].1), "parts are contiguous");
        }
    }

    /// `n` texts of up to four words of 2-10 of the first `letters` letters,
    /// each word after one of `before`: mostly words never seen before, whose
    /// merges wait to be done side by side, across the texts' ends.
    fn short_texts(n: usize, seed: u64, letters: u64, before: &[&str]) -> Vec<String> {
        let mut next = crate::test_rng::xorshift(seed);
        (0..n)
            .map(|_| {
                let words = next() % 5;
                (0..words)
                    .map(|_| {
                        let len = 2 + next() % 9;
                        let word: String = (0..len).map(|_| (b'a' + (next() % letters) as u8) as char).collect();
                        before[(next() % before.len() as u64) as usize].to_string() + &word
                    })
                    .collect()
            })
            .collect()
    }

    /// A run of texts encoded through one batch of pieces gives each text the
    /// ids it has alone: short texts (empty ones too) whose first-seen pieces
    /// are merged after later texts' pieces, on any number of threads.
    #[test]
    fn texts_sharing_a_batch_get_their_own_ids() {
        let vocab = || byte_vocab(&["th", "the", " the", "qu", "ck", "ab", "ba", " a", "abc", "ca"]);
        let c = CoreBpe::new(vocab(), &[], "cl100k").unwrap();
        let texts = short_texts(3000, 0x5eed, 6, &[" ", "", "  ", "\n", " the"]);
        assert!(texts.iter().any(String::is_empty));
        let alone: Vec<Vec<Rank>> = texts.iter().map(|t| c.encode_ordinary(t).unwrap()).collect();
        for threads in [1, 2, 3] {
            // A new tokenizer each time: nothing remembered from the other encodings.
            let fresh = CoreBpe::new(vocab(), &[], "cl100k").unwrap();
            assert_eq!(fresh.encode_ordinary_batch(&texts, Some(threads)).unwrap(), alone, "{threads} threads");
        }
    }

    /// `encode_batch`'s runs through one batch of pieces: each text gets the
    /// ids `encode` gives it with the same policy, allowed specials among
    /// its pieces (first-seen words waiting on either side of them); a text
    /// with a disallowed special gets none, and is the batch's error.
    #[test]
    fn texts_with_specials_sharing_a_batch_get_their_own_ids() {
        let vocab = || byte_vocab(&["ab", "ba", " a", "abc", "ca", "<|"]);
        let specials = vec![("<|end|>".to_string(), 300), ("<|stop|>".to_string(), 301)];
        let mut texts = short_texts(2000, 0x51de, 5, &[" ", "", "<|end|>", " <|end|>", "\n"]);
        texts[700].push_str(" <|stop|> x");
        texts[1500].insert_str(0, "<|stop|>");
        let policy = SpecialPolicy { allowed: ["<|end|>"].into(), disallow_other_specials: true, ..Default::default() };
        let c = CoreBpe::new(vocab(), &specials, "cl100k").unwrap();
        let alone: Vec<Result<Vec<Rank>, String>> =
            texts.iter().map(|t| c.encode(t, &policy).map_err(|e| e.to_string())).collect();
        assert!(alone[700].is_err() && alone[1500].is_err());
        for threads in [1, 2] {
            let fresh = CoreBpe::new(vocab(), &specials, "cl100k").unwrap();
            let sink = Collect::new(texts.len());
            fresh.encode_batch_to(&mut SliceFeed::new(&texts), &policy, Some(threads), &sink).unwrap();
            let results = sink.0.into_inner().unwrap();
            for (k, result) in results.into_iter().enumerate() {
                match (result.unwrap(), &alone[k]) {
                    (Ok(ids), Ok(want)) => assert_eq!(&ids, want, "text {k}, {threads} threads"),
                    (Err(e), Err(_)) => assert!(e.to_string().contains("<|stop|>"), "{e}"),
                    // A run reports its first failed text; another has no ids.
                    (Ok(ids), Err(_)) => assert!(ids.is_empty(), "text {k}"),
                    (got, want) => panic!("text {k}, {threads} threads: {got:?} against {want:?}"),
                }
            }
        }
    }

    /// A text whose split fails in a run encoded at once gets no ids, and is
    /// the batch's error; the texts around it keep theirs.
    #[test]
    fn a_failed_text_in_a_shared_batch_loses_only_its_own_ids() {
        let tokens = byte_vocab(&["ab", "abc", "ca"]);
        let c = CoreBpe::new(tokens, &[], r"(?:(?=a)a|a)*b|.").unwrap();
        let stuck = "x".to_string() + &"a".repeat(40);
        let texts = vec!["abcab".to_string(), "cabbage".into(), stuck, "abcabc".into(), String::new()];
        let sink = Collect::new(texts.len());
        let (whole, f) = (
            |texts: &[&str], run: &mut Run, cache: &mut PieceCache| c.encode_plain_run(texts, None, run, cache),
            |_: &str, _: &mut Vec<Rank>, _: &mut PieceCache| -> Result<(), CoreError> { unreachable!() },
        );
        stream_texts(0, &mut SliceFeed::new(&texts), Some(1), &f, Some(&whole), &sink, false).unwrap();
        let results = sink.0.into_inner().unwrap();
        for (k, result) in results.into_iter().enumerate() {
            match result.unwrap() {
                Ok(ids) => assert_eq!(ids, c.encode_ordinary(&texts[k]).unwrap(), "text {k}"),
                Err(e) => {
                    assert_eq!(k, 2);
                    assert!(e.to_string().contains("text 2 of the batch"), "{e}");
                }
            }
        }
        assert!(c.encode_ordinary(&texts[2]).is_err());
    }

    /// A batch that cuts its long texts gives each text the ids of the text
    /// encoded whole, on any number of threads; a part that fails or panics
    /// is reported for its text.
    #[test]
    fn cut_texts_give_the_ids_of_whole_ones() {
        let c = CoreBpe::new(
            byte_vocab(&["th", "the", " the", "qu", "ck", "ck ", "ü", "ße", " \n", "\n\n", "  ", "12", "s\n"]),
            &[],
            "o200k",
        )
        .unwrap();
        let texts: Vec<String> =
            (0..5).map(|k| prose([150_000, 30_000, 90_000, 5, 70_000][k], 10 + k as u64)).collect();
        let alone: Vec<Vec<Rank>> = texts.iter().map(|t| c.encode_ordinary(t).unwrap()).collect();
        for threads in [1, 2, 3] {
            let cut = plan_tasks(&texts, threads, true, MIN_RUN).1.len();
            assert!(if threads == 1 { cut == 0 } else { cut >= 2 }, "{threads} threads: {cut} texts cut");
            assert_eq!(c.encode_ordinary_batch(&texts, Some(threads)).unwrap(), alone, "{threads} threads");
        }
        // The same through `stream_texts`, with a part that fails and one that panics.
        let texts = vec![prose(120_000, 20), prose(120_000, 21)];
        let f = |t: &str, out: &mut Vec<Rank>, _: &mut PieceCache| {
            if t.contains("fox") && t.len() < 120_000 && t.starts_with('\n') {
                return Err(CoreError::ThreadPool("a part fails (as the test expects)".into()));
            }
            out.push(t.len() as Rank);
            Ok(())
        };
        let sink = Collect::new(texts.len());
        stream_texts(0, &mut SliceFeed::new(&texts), Some(2), &f, None, &sink, true).unwrap();
        let results = sink.0.into_inner().unwrap();
        assert!(results.iter().all(|r| matches!(r, Some(Err(_)))), "each text has a failing part: {results:?}");
        let bad = |t: &str, out: &mut Vec<Rank>, _: &mut PieceCache| {
            assert!(!t.starts_with('\n'), "a later part panics (as the test expects)");
            out.push(t.len() as Rank);
            Ok(())
        };
        let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = stream_texts(0, &mut SliceFeed::new(&texts), Some(2), &bad, None, &Collect::new(texts.len()), true);
        }))
        .expect_err("the batch panics");
        let message = raised.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(message, "encoding the batch's texts from index 0 panicked");
    }

    /// `encode_batch` cuts long texts too, when no special token holds a
    /// newline: each text gets the ids of the whole, specials found where they
    /// are (one just before a cut's newline included), and a text with
    /// disallowed specials the error naming its first.
    #[test]
    fn cut_texts_find_the_specials_of_whole_ones() {
        let specials = vec![("<|end|>".to_string(), 300), ("<|x|>".to_string(), 301)];
        let c = CoreBpe::new(byte_vocab(&["th", "the", " the", "ck", "s\n"]), &specials, "o200k").unwrap();
        let with_specials = |bytes: usize, seed: u64| {
            let lines: Vec<String> = prose(bytes, seed).lines().map(str::to_string).collect();
            let mut next = crate::test_rng::xorshift(seed + 100);
            let mut text = String::new();
            for line in lines {
                text.push_str(&line);
                match next() % 40 {
                    0 => text.push_str("<|end|>"),
                    1 => text.push_str("x<|x|>"),
                    _ => {}
                }
                text.push('\n');
            }
            text
        };
        let texts: Vec<String> =
            (0..4).map(|k| with_specials([150_000, 40_000, 90_000, 70_000][k], k as u64 + 1)).collect();
        let all = SpecialPolicy {
            allowed: HashSet::new(),
            allow_all_specials: true,
            disallowed: HashSet::new(),
            disallow_other_specials: false,
        };
        let one = SpecialPolicy {
            allowed: HashSet::from(["<|end|>"]),
            allow_all_specials: false,
            disallowed: HashSet::new(),
            disallow_other_specials: false,
        };
        for policy in [&all, &one] {
            let alone: Vec<Vec<Rank>> = texts.iter().map(|t| c.encode(t, policy).unwrap()).collect();
            assert!(alone.iter().all(|ids| ids.contains(&300)));
            for threads in [2, 3] {
                assert_eq!(c.encode_batch(&texts, policy, Some(threads)).unwrap(), alone, "{threads} threads");
            }
        }
        let strict = SpecialPolicy {
            allowed: HashSet::new(),
            allow_all_specials: false,
            disallowed: HashSet::new(),
            disallow_other_specials: true,
        };
        let sink = Collect::new(texts.len());
        c.encode_batch_to(&mut SliceFeed::new(&texts), &strict, Some(2), &sink).unwrap();
        for (text, result) in texts.iter().zip(sink.0.into_inner().unwrap()) {
            let Some(Err(CoreError::DisallowedSpecial(name))) = result else { panic!("no error: {text:.40}") };
            let first = ["<|end|>", "<|x|>"].into_iter().min_by_key(|n| text.find(n).unwrap_or(usize::MAX)).unwrap();
            assert_eq!(name, first);
        }
        // A special with a newline after a letter (where a cut could come) keeps texts whole.
        let newline = vec![("<|im_start|>user\n".to_string(), 300)];
        let c = CoreBpe::new(byte_vocab(&[]), &newline, "o200k").unwrap();
        let text = "<|im_start|>user\nhi there\n".repeat(8_000);
        let alone = c.encode(&text, &all).unwrap();
        assert_eq!(c.encode_batch(&[&text], &all, Some(2)).unwrap(), vec![alone]);
    }

    /// A feed that reads as a Python batch does, a stretch up to the bytes
    /// asked for; `on_read(k)` runs before its `k`th read and may stop it.
    struct StretchFeed<'t, F> {
        texts: &'t [String],
        next: usize,
        reads: usize,
        on_read: F,
    }

    impl<'t, F: FnMut(usize) -> bool> TextFeed<'t> for StretchFeed<'t, F> {
        fn count(&self) -> usize {
            self.texts.len()
        }
        fn read(&mut self, slots: &mut [&'t str], bytes: usize) -> Option<usize> {
            self.reads += 1;
            if !(self.on_read)(self.reads) {
                return None;
            }
            let (mut read, mut size) = (0, 0);
            while read < slots.len() && size < bytes {
                slots[read] = &self.texts[self.next + read];
                size += slots[read].len() + 16;
                read += 1;
            }
            self.next += read;
            Some(read)
        }
    }

    /// With a pool, the threads encode a stretch of texts while the calling
    /// thread reads the next: the second read waits until a text of the
    /// first has been encoded (it would wait in vain, 10 s, if the batch
    /// read every text first). Stretches grow, and every text arrives in order.
    #[test]
    fn stretches_are_encoded_while_later_ones_are_read() {
        let texts: Vec<String> = (0..400).map(|k| format!("{k:<4000}")).collect();
        let encoded = AtomicUsize::new(0);
        let f = |t: &str, out: &mut Vec<Rank>, _: &mut PieceCache| {
            out.push(t.trim_end().parse().unwrap());
            encoded.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let (mut overlapped, mut stretches) = (false, Vec::new());
        let mut feed = StretchFeed {
            texts: &texts,
            next: 0,
            reads: 0,
            on_read: |k| {
                if k == 2 {
                    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while encoded.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < until {
                        std::thread::yield_now();
                    }
                    overlapped = encoded.load(Ordering::SeqCst) > 0;
                }
                stretches.push(k);
                true
            },
        };
        let sink = Collect::new(texts.len());
        stream_texts(0, &mut feed, Some(2), &f, None, &sink, false).unwrap();
        let reads = feed.reads;
        assert!(overlapped, "the first stretch was not encoded while the second was read");
        // 64 KB, then 128, 256...: four reads for 1.6 MB.
        assert_eq!(reads, 5, "{stretches:?}");
        assert_eq!(sink.into_results().unwrap(), (0..400).map(|k| vec![k]).collect::<Vec<_>>());
    }

    /// A feed that stops the batch (a Python item that is not a str) is
    /// asked for nothing more; the stretches read before it are encoded
    /// and delivered, on one thread or several, and the call returns.
    #[test]
    fn a_stopped_feed_ends_the_batch_after_the_stretches_read() {
        let texts: Vec<String> = (0..400).map(|k| format!("{k:<4000}")).collect();
        for threads in [1, 2, 3] {
            for stop_at in [1, 2, 3] {
                let f = |t: &str, out: &mut Vec<Rank>, _: &mut PieceCache| {
                    out.push(t.trim_end().parse().unwrap());
                    Ok(())
                };
                let mut feed = StretchFeed { texts: &texts, next: 0, reads: 0, on_read: |k| k < stop_at };
                let sink = Collect::new(texts.len());
                stream_texts(0, &mut feed, Some(threads), &f, None, &sink, false).unwrap();
                let (reads, read) = (feed.reads, feed.next);
                // One thread reads everything in one stretch.
                assert_eq!(reads, if threads == 1 { 1.min(stop_at) } else { stop_at }, "{threads} threads");
                let results = sink.0.into_inner().unwrap();
                let delivered = results.iter().take_while(|r| r.is_some()).count();
                assert_eq!(delivered, read, "{threads} threads, stopped at read {stop_at}");
                assert!(results[read..].iter().all(Option::is_none));
            }
        }
    }

    /// A panic while encoding a text is raised again by the batch, naming
    /// the run's first text, once every other run is done.
    #[test]
    fn a_panic_in_a_run_is_raised_after_the_others_finish() {
        let texts = indexed_texts(12);
        for threads in [1, 2, 3] {
            for bad in [0, 7, 11] {
                let done = AtomicUsize::new(0);
                let f = |t: &str, out: &mut Vec<Rank>, _: &mut PieceCache| {
                    let k: usize = t.trim_end().parse().unwrap();
                    assert!(k != bad, "text {k} is bad (a panic the test expects)");
                    done.fetch_add(1, Ordering::Relaxed);
                    out.push(k as Rank);
                    Ok(())
                };
                let sink = Collect::new(texts.len());
                let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = stream_texts(0, &mut SliceFeed::new(&texts), Some(threads), &f, None, &sink, false);
                }))
                .expect_err("the batch panics");
                let message = raised.downcast_ref::<String>().cloned().unwrap_or_default();
                assert_eq!(message, format!("encoding the batch's texts from index {bad} panicked"));
                assert_eq!(done.load(Ordering::Relaxed), texts.len() - 1, "{threads} threads, bad {bad}");
            }
        }
    }

    /// A piece longer than a packed key is remembered under the hash of its
    /// bytes, which the batch computes ahead (to prefetch its slot) and
    /// hands on: a lookup by that hash finds its tokens.
    #[test]
    fn long_pieces_are_remembered_under_the_hash_of_their_bytes() {
        let core = core();
        let text = "hellohellohellohello abcdefghijklmnopqrstuvwxyz";
        let expected = core.encode_ordinary(text).unwrap();
        std::thread::spawn(move || {
            with_thread_cache(core.id, 1 << 20, |cache| {
                let mut out = Vec::new();
                core.encode_ordinary_into(text, &mut out, Some(&mut *cache)).unwrap();
                assert_eq!(out, expected);
                let (first, second) = text.split_at(20);
                for (piece, tokens) in [(first, &expected[..4]), (second, &expected[4..])] {
                    let mut found = Vec::new();
                    assert!(cache.lookup(piece.as_bytes(), 0, bytes_hash(piece.as_bytes()), &mut found), "{piece:?}");
                    assert_eq!(found, tokens, "{piece:?}");
                }
            })
        })
        .join()
        .unwrap();
    }

    /// A thread keeps the caches of its two most recent tokenizers: going
    /// back to one finds what it remembered; a third one drops the oldest.
    #[test]
    fn a_thread_keeps_the_piece_caches_of_two_tokenizers() {
        std::thread::spawn(|| {
            let (piece, key) = (b"abc".as_slice(), bpe::short_key(b"abc").unwrap());
            let hash = bpe::key_hash(key);
            let remembered = |id: u64| {
                with_thread_cache(id, 100, |cache| {
                    let mut out = Vec::new();
                    cache.lookup(piece, key, hash, &mut out).then_some(out)
                })
            };
            with_thread_cache(1, 100, |cache| cache.remember(piece, key, hash, &[7, 8]));
            with_thread_cache(2, 100, |cache| cache.remember(piece, key, hash, &[9, 10]));
            assert_eq!(remembered(1), Some(vec![7, 8]));
            assert_eq!(remembered(2), Some(vec![9, 10]));
            // Tokenizer 1 was used before 2: a third drops it.
            assert_eq!(remembered(3), None);
            assert_eq!(remembered(1), None);
            let ids: Vec<u64> = THREAD_CACHES.with(|c| c.borrow().iter().map(|(id, _)| *id).collect());
            assert_eq!(ids, vec![1, 3]);
        })
        .join()
        .unwrap();
    }

    /// The merge table packs ids into 21 bits: a larger vocabulary is refused, saying the limit.
    #[test]
    fn a_vocabulary_past_the_limit_is_refused() {
        let mut vocab = byte_vocab(&[]);
        vocab.extend((vocab.len()..=bpe::MAX_TOKENS).map(|k| (k as u32).to_le_bytes().to_vec()));
        assert_eq!(vocab.len(), bpe::MAX_TOKENS + 1);
        let err = CoreBpe::new(vocab, &[], "gpt2").unwrap_err();
        assert!(matches!(err, CoreError::TooManyTokens(n) if n == bpe::MAX_TOKENS + 1));
        assert!(err.to_string().contains("at most 2097151"), "{err}");
    }

    /// The encoder compiled for x86-64-v3 gives the portable encoder's ids
    /// for every scanner (the other tests run only the one this CPU takes).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_x86_v3_encoder_equals_the_portable_one() {
        if !x86_v3() {
            return;
        }
        let vocab = byte_vocab(&["he", "ll", "hell", "hello", " a", "aZ", " aZ", "日", "ǅ", "ǅa", "\t\n", "11", "١١"]);
        let samples = crate::pretokenize::tests::random_samples();
        let check = |name: &str, c: &CoreBpe, splitter: Splitter<'_>| {
            let mut cache = PieceCache::for_bytes(1 << 16);
            for text in &samples {
                let (mut portable, mut v3) = (Vec::new(), Vec::new());
                c.split_and_encode(splitter, text, &mut portable, None).unwrap();
                // SAFETY: the CPU has the features (checked above).
                unsafe { c.split_and_encode_v3(splitter, text, &mut v3, Some(&mut cache)) }.unwrap();
                assert_eq!(portable, v3, "{name}: {text:?}");
            }
        };
        for (name, source) in crate::pretokenize::scanner_patterns() {
            let c = CoreBpe::new(vocab.clone(), &[], source).unwrap();
            check(name, &c, Splitter::Pattern(&c.pretokenizer));
        }
        // A pipeline's one pass: Digits, then GPT-2's pattern.
        let steps =
            vec![Step::Digits { individual: true }, Step::ByteLevel { add_prefix_space: false, use_regex: true }];
        let spec = PipelineSpec { normalizer: Normalizer::None, steps, added_tokens: Vec::new() };
        let c = CoreBpe::with_pipeline(vocab.clone(), &[], "gpt2", spec).unwrap();
        check("one pass", &c, Splitter::OnePass(c.pipeline().and_then(Pipeline::one_pass).unwrap()));
    }

    /// The tokens of `text` with each piece merged alone, from its bytes.
    fn merged_alone(c: &CoreBpe, text: &str) -> Vec<Rank> {
        c.pretokenizer
            .pieces(text)
            .unwrap()
            .iter()
            .flat_map(|p| bpe::encode_piece_vec(p.as_bytes(), &c.encoder))
            .collect()
    }

    /// Pieces merged side by side (none, a few, many) give the tokens of
    /// merging each piece alone, first seen or remembered from an earlier call.
    #[test]
    fn deferred_merges_equal_merging_each_piece() {
        let c = CoreBpe::new(byte_vocab(&["ab", "ba", "abab", "aab", "bb", "bab", " a", " ab", "xa"]), &[], "gpt2")
            .unwrap();
        let mut next = crate::test_rng::xorshift(0x51_7cc1_b727_220a);
        let words = [" ", "a", "b", "ab", "x", "ba", "\n", "é"];
        for round in 0..300 {
            let text: String = (0..round % 150).map(|_| words[(next() % words.len() as u64) as usize]).collect();
            let expected = merged_alone(&c, &text);
            assert_eq!(c.encode_ordinary(&text).unwrap(), expected, "{text:?}");
        }
    }

    /// Texts of words never seen (each round a new tokenizer, so an empty
    /// piece cache): first-seen pieces held over several batches, up to
    /// [`DEFER_MAX`] within one and past [`DEFER_AT`] at its end, some
    /// coming again while held (merged once, see [`LanePlan`]), among pieces
    /// that are tokens and pieces too long to defer, give the tokens of
    /// merging each piece alone.
    #[test]
    fn pieces_held_over_batches_equal_merging_each_piece() {
        let vocab = byte_vocab(&["ab", "ba", "abab", "aab", "bb", "bab", " a", " ab", "xa", " x"]);
        let mut next = crate::test_rng::xorshift(0x2f1d_90c3_5e6b_a417);
        let letters = ["a", "b", "x", "é"];
        for round in 0..60 {
            let c = CoreBpe::new(vocab.clone(), &[], "gpt2").unwrap();
            let words = 1 + round * 7 % 420;
            let text: String = (0..words)
                .map(|_| {
                    // Lengths 1 to 20 bytes or so: tokens, short pieces, long ones.
                    let n = 1 + (next() % 12) as usize;
                    let word: String = (0..n).map(|_| letters[(next() % letters.len() as u64) as usize]).collect();
                    if next().is_multiple_of(4) {
                        word
                    } else {
                        format!(" {word}")
                    }
                })
                .collect();
            let expected = merged_alone(&c, &text);
            assert_eq!(c.encode_ordinary(&text).unwrap(), expected, "round {round}: {text:?}");
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let c = core();
        let ids = c.encode_ordinary("hello hell").unwrap();
        assert_eq!(ids, vec![259, 32, 258]);
        assert_eq!(c.decode_bytes(&ids).unwrap(), b"hello hell");
        assert_eq!(c.n_vocab(), 302);
    }

    #[test]
    fn special_policy() {
        let c = core();
        let none = SpecialPolicy::default();
        let text = "hello<|end|>x<|end|>";
        // Not allowed, not disallowed: ordinary text.
        assert_eq!(c.encode(text, &none).unwrap(), c.encode_ordinary(text).unwrap());
        let allowed = SpecialPolicy { allowed: ["<|end|>"].into(), ..Default::default() };
        let ids = c.encode(text, &allowed).unwrap();
        assert_eq!(ids[0], 259);
        assert_eq!(ids.iter().filter(|&&i| i == 300).count(), 2);
        let both = SpecialPolicy { allowed: ["<|end|>", "<|end|>x"].into(), ..Default::default() };
        let ids = c.encode(text, &both).unwrap();
        assert_eq!(ids, vec![259, 301, 300]);
        let dis = SpecialPolicy { disallowed: ["<|end|>x"].into(), ..Default::default() };
        assert_eq!(c.encode(text, &dis), Err(CoreError::DisallowedSpecial("<|end|>x".into())));
        assert!(c.encode("hello", &dis).is_ok());
        // tiktoken's default: every special not allowed is disallowed, with no set built;
        // the same answers as the sets spelled out.
        let rest = SpecialPolicy { disallow_other_specials: true, ..Default::default() };
        let all = SpecialPolicy { disallowed: ["<|end|>", "<|end|>x"].into(), ..Default::default() };
        let allow_one =
            SpecialPolicy { allowed: ["<|end|>"].into(), disallow_other_specials: true, ..Default::default() };
        let one_and_rest =
            SpecialPolicy { allowed: ["<|end|>"].into(), disallowed: ["<|end|>x"].into(), ..Default::default() };
        for t in [text, "x<|end|>x", "hello<|end|>", "<|end|", "hello", ""] {
            assert_eq!(c.encode(t, &rest), c.encode(t, &all), "{t}");
            assert_eq!(c.encode(t, &allow_one), c.encode(t, &one_and_rest), "{t}");
        }
        // "all" as a flag: the same answers as every name in the set.
        let all_flag = SpecialPolicy { allow_all_specials: true, ..Default::default() };
        let all_named = SpecialPolicy { allowed: ["<|end|>", "<|end|>x"].into(), ..Default::default() };
        let all_flag_rest =
            SpecialPolicy { allow_all_specials: true, disallow_other_specials: true, ..Default::default() };
        let all_flag_dis =
            SpecialPolicy { allow_all_specials: true, disallowed: ["<|end|>x"].into(), ..Default::default() };
        for t in [text, "x<|end|>x", "hello<|end|>", "<|end|", "hello", ""] {
            assert_eq!(c.encode(t, &all_flag), c.encode(t, &all_named), "{t}");
            assert_eq!(c.encode(t, &all_flag_rest), c.encode(t, &all_named), "{t}");
        }
        assert_eq!(c.encode(text, &all_flag).unwrap(), vec![259, 301, 300]);
        assert_eq!(c.encode(text, &all_flag_dis), Err(CoreError::DisallowedSpecial("<|end|>x".into())));
        assert!(c.encode(text, &rest).is_err());
        assert_eq!(c.encode("hello<|end|>", &allow_one).unwrap(), vec![259, 300]);
        assert_eq!(c.encode(text, &allow_one), Err(CoreError::DisallowedSpecial("<|end|>x".into())));
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
        assert_eq!(c.decode_bytes(&[104, 999]), Err(CoreError::UnknownToken { id: 999, position: 1 }));
        assert_eq!(c.decode_bytes(&[300]).unwrap(), b"<|end|>");
        // Specials between mergeable tokens, and an unknown id after them.
        assert_eq!(c.decode_bytes(&[104, 300, 259, 301, 32]).unwrap(), b"h<|end|>hello<|end|>x ");
        assert_eq!(c.decode_bytes(&[300, 104, 302]), Err(CoreError::UnknownToken { id: 302, position: 2 }));
    }
}

/// Where the encoder's time goes per piece, stage by stage, on a text it
/// has just encoded (hot): a measurement, not a test. Run with
/// `FASTLLM_STAGE_TEXT=path [FASTLLM_STAGE_VOCAB=cl100k_base] [FASTLLM_STAGE_KB=64] cargo test
/// --release --lib stage_speed -- --ignored --nocapture` on a quiet core;
/// edit the encoder (e.g. emit a dummy id) to see what a stage costs in place.
#[cfg(test)]
mod stage_speed {
    use super::*;

    /// The fastest of `reps` runs of `f`, in CPU seconds.
    fn fastest(reps: usize, mut f: impl FnMut()) -> f64 {
        (0..reps)
            .map(|_| {
                let t = crate::test_clock::thread_cpu_seconds();
                f();
                crate::test_clock::thread_cpu_seconds() - t
            })
            .fold(f64::MAX, f64::min)
    }

    #[test]
    #[ignore = "a measurement: needs FASTLLM_STAGE_TEXT and a vocabulary in the shared data"]
    fn stage_speed() {
        let path = std::env::var("FASTLLM_STAGE_TEXT").expect("FASTLLM_STAGE_TEXT: a text file to encode");
        let vocab = std::env::var("FASTLLM_STAGE_VOCAB").unwrap_or("cl100k_base".to_string());
        let tokens = crate::test_vocab::tiktoken_tokens(&format!("{vocab}.tiktoken")).expect("the vocabulary file");
        let pattern = vocab.split('_').next().unwrap();
        let core = CoreBpe::new(tokens, &[], pattern).unwrap();
        // The first 64 KB (or FASTLLM_STAGE_KB), to a line's end.
        let all = std::fs::read(&path).unwrap();
        let kb: usize =
            std::env::var("FASTLLM_STAGE_KB").map_or(64, |v| v.parse().expect("FASTLLM_STAGE_KB: a number"));
        let mut end = (kb.max(1) << 10).min(all.len());
        while end < all.len() && all[end - 1] != b'\n' {
            end += 1;
        }
        let text = std::str::from_utf8(&all[..end]).unwrap();
        let pieces: Vec<&[u8]> = core.pretokenizer.pieces(text).unwrap().into_iter().map(str::as_bytes).collect();
        let mut ranges = Vec::with_capacity(pieces.len());
        core.pretokenizer.for_each_range_inline(text, |start, end| ranges.push(start..end)).unwrap();
        let (enc, bytes, reps) = (&core.encoder, text.as_bytes(), 200);
        let scan = fastest(reps, || {
            let mut n = 0usize;
            core.pretokenizer.for_each_piece_bytes_inline(text, |p| n += p.len()).unwrap();
            std::hint::black_box(n);
        });
        let key_hash = fastest(reps, || {
            let keys = ranges.iter().filter_map(|r| bpe::short_key_at(bytes, r.start, r.end));
            std::hint::black_box(keys.fold(0u64, |acc, key| acc.wrapping_add(bpe::key_hash(key))));
        });
        let mut tokens = 0;
        let lookup = fastest(reps, || {
            let keys = ranges.iter().filter_map(|r| bpe::short_key_at(bytes, r.start, r.end));
            tokens = keys.filter_map(|key| enc.get_short(key, bpe::key_hash(key))).count();
        });
        let full = fastest(reps, || {
            std::hint::black_box(core.encode_ordinary(text).unwrap());
        });
        let per_piece = |s: f64| s * 1e9 / pieces.len() as f64;
        println!(
            "{path}: {} pieces ({tokens} tokens), {:.2} bytes a piece; ns a piece: scan {:.2}, key and hash {:.2}, \
             key, hash and token lookup {:.2}, whole encoder {:.2} ({:.0} MB/s)",
            pieces.len(),
            bytes.len() as f64 / pieces.len() as f64,
            per_piece(scan),
            per_piece(key_hash),
            per_piece(lookup),
            per_piece(full),
            bytes.len() as f64 / full / 1e6
        );
    }
}
