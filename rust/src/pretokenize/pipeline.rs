//! A pre-tokenizer made of several steps, as HF `tokenizer.json` describes one:
//! a normalizer, then pre-tokenizer steps that each cut the pieces of the step
//! before into smaller pieces, then (in [`Pipeline::for_each_segment`]) the
//! added tokens around them.
//!
//! Semantics are those of HF `tokenizers` (the reference the tests compare with):
//!
//! * `Split` runs a regex over each piece and turns matches and the gaps between
//!   them into pieces according to a behavior (Removed, Isolated,
//!   MergedWithPrevious, MergedWithNext, Contiguous); `invert` swaps which
//!   stretches count as matches. Unlike a plain split pattern (tiktoken's
//!   semantics, [`Pretokenizer::for_each_piece`]), the text between matches is
//!   never skipped ([`Pretokenizer::for_each_stretch`]), and a regex the engine
//!   gives up on is a [`SplitError`] naming the place in the text.
//! * `Digits` does the same with "is a numeric character" (`char::is_numeric`):
//!   each digit alone, or runs of digits, as pieces.
//! * `ByteLevel` (last) prepends a space to each piece that does not start with
//!   one (`add_prefix_space`) and splits it with the GPT-2 pattern (`use_regex`).
//!   Mapping bytes to characters is a no-op here: fastllm merges bytes.
//! * The normalizer is NFC or nothing. NFC uses `unicode-normalization-alignments`,
//!   the crate (and so the Unicode tables) HF `tokenizers` uses.
//!
//! Empty pieces are dropped after every step, as `tokenizers` does.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use unicode_normalization_alignments::char::canonical_combining_class;
use unicode_normalization_alignments::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use super::class_runs::ClassRuns;
use super::{PatternError, Pretokenizer, SplitError};
use crate::added_tokens::{AddedToken, AddedVocab, Allowed, Segment};
use crate::bpe::Rank;

/// The normalizer applied to text outside added tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalizer {
    None,
    Nfc,
}

impl Normalizer {
    pub fn parse(name: Option<&str>) -> Result<Self, PipelineError> {
        match name {
            None => Ok(Self::None),
            Some("nfc") => Ok(Self::Nfc),
            Some(other) => Err(PipelineError(format!("unknown normalizer {other:?} (known: nfc)"))),
        }
    }

    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Nfc => Some("nfc"),
        }
    }

    pub fn apply<'a>(self, text: &'a str) -> Cow<'a, str> {
        match self {
            Self::None => Cow::Borrowed(text),
            Self::Nfc if Self::surely_nfc(text) => Cow::Borrowed(text),
            Self::Nfc => {
                let normalized: String = text.nfc().map(|(c, _)| c).collect();
                if normalized == text {
                    Cow::Borrowed(text)
                } else {
                    Cow::Owned(normalized)
                }
            }
        }
    }

    /// Whether `text` is NFC by the quick check of the same Unicode tables
    /// (most text is: a curly quote made English text go through the whole
    /// normalization, a third of the encoding's speed). Below U+0300 (lead
    /// bytes under 0xCC) every character is its own NFC, of combining class 0,
    /// and the quick check starts afresh after it; so only the runs of
    /// characters from U+0300 up are checked, each on its own (a character
    /// that composes with the one before it is never a sure "yes").
    fn surely_nfc(text: &str) -> bool {
        let starters = nfc_starters();
        let mut at = 0;
        while let Some(k) = text.as_bytes()[at..].iter().position(|&b| b >= 0xCC) {
            let start = at + k;
            // A run of characters from U+0300 up; those of the BMP that are NFC
            // starters whatever stands around them (Cyrillic, CJK, most of it)
            // read one bit each instead of the quick check's lookups.
            let mut end = text.len();
            let mut all_starters = true;
            for (i, c) in text[start..].char_indices() {
                let c = u32::from(c);
                if c < 0x300 {
                    end = start + i;
                    break;
                }
                all_starters &= c <= 0xFFFF && starters[c as usize / 64] >> (c % 64) & 1 == 1;
            }
            if !all_starters && is_nfc_quick(text[start..end].chars()) != IsNormalized::Yes {
                return false;
            }
            at = end;
        }
        true
    }
}

/// One bit per BMP character that the quick check passes whatever stands
/// around it: its own NFC ("yes"), of combining class 0 (made once, from the
/// same tables).
fn nfc_starters() -> &'static [u64; 1024] {
    static STARTERS: OnceLock<[u64; 1024]> = OnceLock::new();
    STARTERS.get_or_init(|| {
        let mut bits = [0u64; 1024];
        for c in (0..=0xFFFFu32).filter_map(char::from_u32) {
            let starter = canonical_combining_class(c) == 0 && is_nfc_quick(std::iter::once(c)) == IsNormalized::Yes;
            bits[c as usize / 64] |= u64::from(starter) << (c as usize % 64);
        }
        bits
    })
}

/// What a `Split` does with the matches of its pattern (HF's `SplitDelimiterBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Matches are dropped; the text between them stays.
    Removed,
    /// Matches and the text between them are pieces of their own.
    Isolated,
    /// A match joins the piece before it.
    MergedWithPrevious,
    /// A match joins the piece after it.
    MergedWithNext,
    /// Runs of matches, and runs of non-matches, are pieces.
    Contiguous,
}

impl Behavior {
    pub fn parse(name: &str) -> Result<Self, PipelineError> {
        Ok(match name {
            "removed" => Self::Removed,
            "isolated" => Self::Isolated,
            "merged_with_previous" => Self::MergedWithPrevious,
            "merged_with_next" => Self::MergedWithNext,
            "contiguous" => Self::Contiguous,
            other => {
                return Err(PipelineError(format!(
                    "unknown split behavior {other:?} (known: removed, isolated, merged_with_previous, \
                     merged_with_next, contiguous)"
                )))
            }
        })
    }
}

/// One pre-tokenizer step.
#[derive(Debug, Clone)]
pub enum Step {
    Split(Box<Split>),
    Digits { individual: bool },
    ByteLevel { add_prefix_space: bool, use_regex: bool },
}

/// A `Split` step, on the pretokenizer's engines (a scanner for the built-in
/// and open-model patterns, DFAs for other look-around-free ones).
#[derive(Debug, Clone)]
pub struct Split {
    pretokenizer: Pretokenizer,
    behavior: Behavior,
    invert: bool,
}

impl Split {
    /// `pattern`: a built-in pattern name or a regex (fancy-regex syntax).
    pub fn new(pattern: &str, behavior: Behavior, invert: bool) -> Result<Self, PipelineError> {
        let pretokenizer = Pretokenizer::new(pattern).map_err(PipelineError::from)?;
        Ok(Self::with_pretokenizer(pretokenizer, behavior, invert))
    }

    pub fn with_pretokenizer(pretokenizer: Pretokenizer, behavior: Behavior, invert: bool) -> Self {
        Self { pretokenizer, behavior, invert }
    }

    /// `(start, end, is_match)` stretches covering `text`, as `tokenizers`'
    /// `Pattern::find_matches` makes them (empty matches included).
    fn stretches(&self, text: &str, out: &mut Vec<(usize, usize, bool)>) -> Result<(), SplitError> {
        out.clear();
        let invert = self.invert;
        self.pretokenizer.for_each_stretch(text, |start, end, is_match| out.push((start, end, is_match != invert)))
    }
}

/// Steps the encoder runs in one pass over a stretch, its pieces going
/// straight into its batch (DeepSeek V3's three `Split`s, StarCoder's `Digits`
/// before `ByteLevel`): `Split(Isolated)`s of one character class and `Digits`
/// (see [`ClassRuns`]), each cutting the stretches of the one before; then at
/// most one other `Split(Isolated)`, over each of those as a text of its own;
/// then `ByteLevel` without a prefix space, whose GPT-2 pattern (`use_regex`)
/// takes the place of that split. The pieces are those of [`Pipeline::run`]
/// on the same steps.
#[derive(Debug, Clone)]
pub struct OnePass {
    runs: Vec<ClassRuns>,
    last: LastSplit,
}

#[derive(Debug, Clone)]
enum LastSplit {
    /// The class runs' stretches are the pieces.
    Nothing,
    /// A `Split(Isolated)`: its matches and the text between them.
    Stretches(Pretokenizer),
    /// ByteLevel's GPT-2 pattern (it matches all text).
    Pieces(Pretokenizer),
}

impl OnePass {
    /// The one pass that `steps` are, if they have that form.
    fn of_steps(steps: &[Step], gpt2: &Pretokenizer) -> Option<Self> {
        let (steps, byte_level_regex) = match steps.split_last()? {
            (Step::ByteLevel { add_prefix_space: true, .. }, _) => return None,
            (Step::ByteLevel { use_regex, .. }, before) => (before, *use_regex),
            _ => (steps, false),
        };
        let class_runs = |step: &Step| match step {
            Step::Digits { individual } => Some(ClassRuns::digits(*individual)),
            // Isolated keeps every stretch whichever side `invert` puts it on.
            Step::Split(split) if split.behavior == Behavior::Isolated => {
                ClassRuns::of_pattern(split.pretokenizer.source())
            }
            _ => None,
        };
        let mut runs: Vec<ClassRuns> = Vec::new();
        let mut last = if byte_level_regex { LastSplit::Pieces(gpt2.clone()) } else { LastSplit::Nothing };
        for (k, step) in steps.iter().enumerate() {
            if let Some(found) = class_runs(step) {
                runs.push(found);
                continue;
            }
            match step {
                Step::Split(split)
                    if split.behavior == Behavior::Isolated
                        && k + 1 == steps.len()
                        && matches!(last, LastSplit::Nothing) =>
                {
                    last = LastSplit::Stretches(split.pretokenizer.clone());
                }
                _ => return None,
            }
        }
        Some(Self { runs, last })
    }

    /// Calls `f(start, end)` on each piece of `text` (not empty), in order. An
    /// error means the regex engine gave up on the last split; its place is in `text`.
    #[inline(always)]
    pub fn for_each_piece(&self, text: &str, mut f: impl FnMut(usize, usize)) -> Result<(), SplitError> {
        let mut failed = None;
        // The depths real files have are written out, so that all of it
        // inlines into the encoder's loop; deeper ones recurse.
        match self.runs.as_slice() {
            [] => return self.last_split(text, 0, &mut f),
            [outer] => outer.for_each_stretch(
                text,
                #[inline(always)]
                |s, e, _| {
                    let part = &text[s..e];
                    if failed.is_none() {
                        failed = self.last_split(part, s, &mut f).err().map(|e| e.within(text, part));
                    }
                },
            ),
            [outer, inner] => outer.for_each_stretch(
                text,
                #[inline(always)]
                |s, e, _| {
                    let part = &text[s..e];
                    inner.for_each_stretch(
                        part,
                        #[inline(always)]
                        |s2, e2, _| {
                            let piece = &part[s2..e2];
                            if failed.is_none() {
                                failed = self.last_split(piece, s + s2, &mut f).err().map(|e| e.within(text, piece));
                            }
                        },
                    )
                },
            ),
            _ => return self.deeper(0, text, 0, &mut f),
        }
        failed.map_or(Ok(()), Err)
    }

    /// [`OnePass::for_each_piece`] from class split `k` on, by recursion.
    fn deeper(&self, k: usize, text: &str, base: usize, f: &mut dyn FnMut(usize, usize)) -> Result<(), SplitError> {
        let Some(runs) = self.runs.get(k) else { return self.last_split(text, base, &mut |s, e| f(s, e)) };
        let mut failed = None;
        runs.for_each_stretch(text, |s, e, _| {
            if failed.is_none() {
                let part = &text[s..e];
                failed = self.deeper(k + 1, part, base + s, f).err().map(|e| e.within(text, part));
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// The last split's pieces of `part`, `f` given their places `base` bytes on.
    #[inline(always)]
    fn last_split(&self, part: &str, base: usize, f: &mut impl FnMut(usize, usize)) -> Result<(), SplitError> {
        match &self.last {
            LastSplit::Nothing => f(base, base + part.len()),
            LastSplit::Stretches(split) => split.for_each_isolated_inline(
                part,
                #[inline(always)]
                |s, e| f(base + s, base + e),
            )?,
            LastSplit::Pieces(gpt2) => gpt2.for_each_range_inline(
                part,
                #[inline(always)]
                |s, e| f(base + s, base + e),
            )?,
        }
        Ok(())
    }
}

/// `(start, end, is_match)` stretches of `text` for "is a numeric character":
/// each numeric character is a match of its own.
fn digit_stretches(text: &str, out: &mut Vec<(usize, usize, bool)>) {
    out.clear();
    let mut gap_start = 0;
    for (i, c) in text.char_indices() {
        if c.is_numeric() {
            if gap_start < i {
                out.push((gap_start, i, false));
            }
            out.push((i, i + c.len_utf8(), true));
            gap_start = i + c.len_utf8();
        }
    }
    if gap_start < text.len() {
        out.push((gap_start, text.len(), false));
    }
}

/// The pieces `behavior` makes of `stretches`, as `(start, end)` (possibly empty).
fn apply_behavior(behavior: Behavior, stretches: &[(usize, usize, bool)], out: &mut Vec<(usize, usize)>) {
    out.clear();
    match behavior {
        Behavior::Isolated => out.extend(stretches.iter().map(|&(s, e, _)| (s, e))),
        Behavior::Removed => out.extend(stretches.iter().filter(|s| !s.2).map(|&(s, e, _)| (s, e))),
        Behavior::Contiguous | Behavior::MergedWithPrevious => {
            let mut previous_match = false;
            for &(start, end, is_match) in stretches {
                let joins = match behavior {
                    Behavior::Contiguous => is_match == previous_match,
                    _ => is_match && !previous_match,
                };
                match out.last_mut() {
                    Some(last) if joins => last.1 = end,
                    _ => out.push((start, end)),
                }
                previous_match = is_match;
            }
        }
        Behavior::MergedWithNext => {
            let mut next_match = false;
            for &(start, end, is_match) in stretches.iter().rev() {
                match out.last_mut() {
                    Some(last) if is_match && !next_match => last.0 = start,
                    _ => out.push((start, end)),
                }
                next_match = is_match;
            }
            out.reverse();
        }
    }
}

/// Error for a pipeline description that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineError(pub String);

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for PipelineError {}

impl From<PatternError> for PipelineError {
    fn from(e: PatternError) -> Self {
        PipelineError(e.to_string())
    }
}

/// A pipeline as described from outside (Python): the steps (empty: the
/// tokenizer's own pattern, splitting as it does without a pipeline) and the added tokens beyond the plain
/// special tokens (non-special ones, and specials with flags).
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    pub normalizer: Normalizer,
    pub steps: Vec<Step>,
    pub added_tokens: Vec<AddedToken>,
}

impl PipelineSpec {
    /// The pipeline of a tokenizer with split pattern `pattern`, special tokens
    /// `specials` and `n_mergeable` mergeable tokens.
    pub fn build(
        self,
        pattern: &Pretokenizer,
        specials: &[(String, Rank)],
        n_mergeable: usize,
    ) -> Result<Pipeline, PipelineError> {
        let plain = self.steps.is_empty();
        let steps = if plain {
            // The plain pattern's semantics (tiktoken's find_iter): its matches are the
            // pieces, the text between them is left out; in HF's terms, the inverted
            // matches removed. Isolated is the same for a pattern that matches all text.
            let split = match pattern.matches_all_text() {
                true => Split::with_pretokenizer(pattern.clone(), Behavior::Isolated, false),
                false => Split::with_pretokenizer(pattern.clone(), Behavior::Removed, true),
            };
            vec![Step::Split(Box::new(split))]
        } else {
            self.steps
        };
        let added = merge_added_tokens(self.added_tokens, specials, n_mergeable)?;
        let added = AddedVocab::new(added, self.normalizer).map_err(|e| PipelineError(e.to_string()))?;
        let mut pipeline = Pipeline::new(self.normalizer, steps, added)?;
        pipeline.plain = plain;
        Ok(pipeline)
    }
}

/// The described added tokens plus every special token not among them (with
/// no flags). A described special must be one of `specials`, with its id; a
/// non-special one must not share a name or an id with a special, nor an id
/// at or above `n_mergeable` with another added token.
fn merge_added_tokens(
    described: Vec<AddedToken>,
    specials: &[(String, Rank)],
    n_mergeable: usize,
) -> Result<Vec<AddedToken>, PipelineError> {
    let special_id: HashMap<&str, Rank> = specials.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    let special_ids: HashSet<Rank> = special_id.values().copied().collect();
    let mut names = HashSet::new();
    let mut added_ids = HashSet::new();
    for token in &described {
        if !names.insert(token.content.as_str()) {
            return Err(PipelineError(format!("added token {:?} is given twice", token.content)));
        }
        match (token.special, special_id.get(token.content.as_str())) {
            (true, Some(&id)) if id == token.id => {}
            (true, _) => {
                return Err(PipelineError(format!(
                    "added token {:?} is special but is not a special token with id {}",
                    token.content, token.id
                )))
            }
            (false, Some(_)) => {
                return Err(PipelineError(format!(
                    "added token {:?} is not special but is a special token's name",
                    token.content
                )))
            }
            (false, None) if special_ids.contains(&token.id) => {
                return Err(PipelineError(format!(
                    "added token {:?} has id {}, which is a special token's",
                    token.content, token.id
                )))
            }
            (false, None) if token.id as usize >= n_mergeable && !added_ids.insert(token.id) => {
                return Err(PipelineError(format!("two added tokens share the id {}", token.id)))
            }
            (false, None) => {}
        }
    }
    let missing: Vec<AddedToken> = specials
        .iter()
        .filter(|(name, _)| !names.contains(name.as_str()))
        .map(|(name, id)| AddedToken::special(name, *id))
        .collect();
    let mut all = described;
    all.extend(missing);
    Ok(all)
}

/// Normalizer, pre-tokenizer steps and added tokens: everything between the
/// text and the pieces that BPE merges. `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Pipeline {
    normalizer: Normalizer,
    steps: Vec<Step>,
    added: AddedVocab,
    gpt2: Pretokenizer,
    /// The steps are the tokenizer's split pattern alone (see [`Pipeline::is_plain`]).
    plain: bool,
    /// The steps as one pass, if they have that form (see [`Pipeline::one_pass`]).
    one_pass: Option<OnePass>,
}

impl Pipeline {
    /// `steps` must not be empty; ByteLevel may only be the last step.
    pub fn new(normalizer: Normalizer, steps: Vec<Step>, added: AddedVocab) -> Result<Self, PipelineError> {
        if steps.is_empty() {
            return Err(PipelineError("a pipeline needs at least one pre-tokenizer step".into()));
        }
        if steps[..steps.len() - 1].iter().any(|s| matches!(s, Step::ByteLevel { .. })) {
            return Err(PipelineError("ByteLevel must be the last pre-tokenizer step".into()));
        }
        let gpt2 = Pretokenizer::new("gpt2").map_err(PipelineError::from)?;
        let one_pass = OnePass::of_steps(&steps, &gpt2);
        Ok(Self { normalizer, steps, added, gpt2, plain: false, one_pass })
    }

    pub fn normalizer(&self) -> Normalizer {
        self.normalizer
    }

    /// Whether the steps are the tokenizer's own split pattern alone (a
    /// tokenizer.json with a normalizer or added tokens around the pattern,
    /// Qwen's): the pieces of a normalized stretch are then the pattern's,
    /// which the encoder finds with its own scanner, batch by batch (see
    /// [`Pipeline::for_each_stretch`]).
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The steps as one pass over each normalized stretch (see [`OnePass`]),
    /// if they have that form: the encoder then runs it in its own loop, as
    /// it runs a plain pattern (see [`Pipeline::for_each_stretch`]).
    pub fn one_pass(&self) -> Option<&OnePass> {
        self.one_pass.as_ref()
    }

    /// Calls `f` on each added token of `text` (specials as `allowed`) and each
    /// normalized stretch of text between them, not cut into pieces. An error
    /// `f` returns for a stretch stops the walk and is placed in `text`.
    pub fn for_each_stretch(
        &self,
        text: &str,
        allowed: Allowed<'_>,
        mut f: impl FnMut(Segment<'_>) -> Result<(), SplitError>,
    ) -> Result<(), SplitError> {
        let mut failed = None;
        self.added.for_each_segment_from(text, self.normalizer, allowed, |segment, from| {
            if failed.is_none() {
                failed = f(segment).err().map(|e| match segment {
                    Segment::Piece(stretch) => place_in(e, text, stretch, from),
                    Segment::Token(_) => e,
                });
            }
        });
        failed.map_or(Ok(()), Err)
    }

    pub fn added(&self) -> &AddedVocab {
        &self.added
    }

    /// Calls `f` on the added tokens and the pieces of `text`, in order. Added
    /// tokens are found first (special ones only when `allowed`), the text
    /// between them is normalized and cut into pieces. An error means the regex
    /// engine gave up on a `Split` pattern; `f` has then seen the segments before.
    pub fn for_each_segment(
        &self,
        text: &str,
        allowed: Allowed<'_>,
        mut f: impl FnMut(Segment<'_>),
    ) -> Result<(), SplitError> {
        let mut scratch = Scratch::default();
        let mut failed = None;
        self.added.for_each_segment_from(text, self.normalizer, allowed, |segment, from| {
            if failed.is_some() {
                return;
            }
            match segment {
                Segment::Token(id) => f(Segment::Token(id)),
                Segment::Piece(normalized) => {
                    let mut emit = |piece: &str| f(Segment::Piece(piece));
                    if let Err(e) = self.run(&self.steps, normalized, &mut scratch, &mut emit) {
                        failed = Some(place_in(e, text, normalized, from));
                    }
                }
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// The GPT-2 pieces of `piece` with a space put before it, where only the
    /// first is made anew: the others are slices of `piece` (which the encoder
    /// can hold in its batch), not of a copy of all of it. Each GPT-2 piece
    /// depends only on the text from its start up to the character after its
    /// end, so after the first piece of " " + `piece` (found in a copy of a
    /// prefix long enough to show that character) come the pieces of `piece`
    /// from where that one ends.
    fn gpt2_prefixed(&self, piece: &str, f: &mut dyn FnMut(&str)) -> Result<(), SplitError> {
        let mut shown = piece.len().min(64);
        loop {
            while !piece.is_char_boundary(shown) {
                shown += 1;
            }
            let head = format!(" {}", &piece[..shown]);
            let mut first = None;
            self.gpt2.for_each_piece(&head, |p| {
                first.get_or_insert(p.len());
            })?;
            let end = first.unwrap_or(head.len());
            if end < head.len() || shown == piece.len() {
                f(&head[..end]);
                // `end` counts the space: `piece` goes on at `end - 1`.
                return match &piece[end - 1..] {
                    "" => Ok(()),
                    after => self.gpt2.for_each_piece(after, f),
                };
            }
            shown = (shown * 2).min(piece.len());
        }
    }

    /// The pieces of `text` (normalized first), without added-token handling.
    pub fn pieces(&self, text: &str) -> Result<Vec<String>, SplitError> {
        let mut out = Vec::new();
        let normalized = self.normalizer.apply(text);
        if !normalized.is_empty() {
            self.run(&self.steps, &normalized, &mut Scratch::default(), &mut |p| out.push(p.to_string()))
                .map_err(|e| place_in(e, text, &normalized, 0))?;
        }
        Ok(out)
    }

    /// Cuts `piece` (not empty) with `steps[0]` and each resulting piece with the
    /// rest of the steps; `f` receives the final non-empty pieces. An error's
    /// place is in `piece`.
    fn run(
        &self,
        steps: &[Step],
        piece: &str,
        scratch: &mut Scratch,
        f: &mut dyn FnMut(&str),
    ) -> Result<(), SplitError> {
        let Some((step, rest)) = steps.split_first() else {
            f(piece);
            return Ok(());
        };
        match step {
            // The stretches straight to the next step, without a buffer.
            Step::Split(split) if split.behavior == Behavior::Isolated => {
                let mut failed = None;
                split.pretokenizer.for_each_stretch(piece, |start, end, _| {
                    if end > start && failed.is_none() {
                        let part = &piece[start..end];
                        failed = self.run(rest, part, scratch, f).err().map(|e| e.within(piece, part));
                    }
                })?;
                failed.map_or(Ok(()), Err)
            }
            Step::Split(split) => {
                let mut stretches = std::mem::take(&mut scratch.stretches);
                split.stretches(piece, &mut stretches)?;
                let result = self.run_cut(rest, piece, split.behavior, &stretches, scratch, f);
                scratch.stretches = stretches;
                result
            }
            Step::Digits { individual } => {
                let mut stretches = std::mem::take(&mut scratch.stretches);
                digit_stretches(piece, &mut stretches);
                let behavior = if *individual { Behavior::Isolated } else { Behavior::Contiguous };
                let result = self.run_cut(rest, piece, behavior, &stretches, scratch, f);
                scratch.stretches = stretches;
                result
            }
            // The last step (Pipeline::new sees to it): nothing after it can fail.
            Step::ByteLevel { add_prefix_space, use_regex } => {
                debug_assert!(rest.is_empty());
                match (*add_prefix_space && !piece.starts_with(' '), *use_regex) {
                    (true, true) => self.gpt2_prefixed(piece, f),
                    (true, false) => {
                        f(&format!(" {piece}"));
                        Ok(())
                    }
                    (false, true) => self.gpt2.for_each_piece(piece, f),
                    (false, false) => {
                        f(piece);
                        Ok(())
                    }
                }
            }
        }
    }

    fn run_cut(
        &self,
        rest: &[Step],
        piece: &str,
        behavior: Behavior,
        stretches: &[(usize, usize, bool)],
        scratch: &mut Scratch,
        f: &mut dyn FnMut(&str),
    ) -> Result<(), SplitError> {
        let mut cuts = Vec::new();
        apply_behavior(behavior, stretches, &mut cuts);
        for (start, end) in cuts {
            if end > start {
                let part = &piece[start..end];
                self.run(rest, part, scratch, f).map_err(|e| e.within(piece, part))?;
            }
        }
        Ok(())
    }
}

/// `error`, about `piece` (the normalized form of the text from byte `from` of
/// `text` on), as a place in `text`: exact where the normalizer left the text
/// as it was, else the start of the text that was normalized.
fn place_in(error: SplitError, text: &str, piece: &str, from: usize) -> SplitError {
    let (base, at) = (text.as_ptr() as usize, piece.as_ptr() as usize);
    if at >= base && at + piece.len() <= base + text.len() {
        return error.within(text, piece);
    }
    SplitError {
        offset: from,
        char_offset: text[..from].chars().count(),
        reason: format!("{} (at character {} of this text's normalized form)", error.reason, error.char_offset),
        ..error
    }
}

/// Buffers reused across the pieces of one call.
#[derive(Default)]
struct Scratch {
    stretches: Vec<(usize, usize, bool)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(normalizer: Normalizer, steps: Vec<Step>) -> Pipeline {
        Pipeline::new(normalizer, steps, AddedVocab::empty()).unwrap()
    }

    fn split(pattern: &str, behavior: Behavior, invert: bool) -> Step {
        Step::Split(Box::new(Split::new(pattern, behavior, invert).unwrap()))
    }

    fn pieces(p: &Pipeline, text: &str) -> Vec<String> {
        p.pieces(text).unwrap()
    }

    /// The pieces of the steps' one pass, if they have that form.
    fn one_pass_pieces(p: &Pipeline, text: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        p.one_pass()?.for_each_piece(text, |s, e| out.push(text[s..e].to_string())).unwrap();
        Some(out)
    }

    /// One pass cuts as the steps do one after another (`run`, the
    /// reference), in each form it takes: DeepSeek V3's, StarCoder's, a class
    /// whose runs a later class cuts again, one to three class splits, the
    /// last split on a scanner, DFAs or the regex engine, or none.
    #[test]
    fn one_pass_cuts_as_the_steps_do() {
        use crate::pretokenize::{DEEPSEEK_V3_WORDS_PATTERN, LLAMA3_PATTERN};
        let isolated = |pattern: &str| split(pattern, Behavior::Isolated, false);
        let byte_level = |use_regex| Step::ByteLevel { add_prefix_space: false, use_regex };
        let forms = [
            vec![
                isolated(r"\p{N}{1,3}"),
                isolated("[一-龥぀-ゟ゠-ヿ]+"),
                isolated(DEEPSEEK_V3_WORDS_PATTERN),
                byte_level(false),
            ],
            vec![Step::Digits { individual: true }, byte_level(true)],
            vec![Step::Digits { individual: false }, isolated(LLAMA3_PATTERN), byte_level(false)],
            vec![isolated(r"\p{N}{1,3}"), isolated(r"[0-4a-c]{1,2}"), isolated(r"[a-z]+")],
            vec![isolated(r"[0-9x]+"), isolated(r"\p{N}{1,2}"), isolated(r"[1-5]"), byte_level(true)],
            vec![split(r"\p{N}{1,3}", Behavior::Isolated, true), byte_level(false)],
            vec![Step::Digits { individual: true }, isolated(r"\w+(?=\s)|\s")],
        ];
        let fragments = [
            "0", "12", "345", "٣", "²", "½", "𝟘", "一", "中文", "ぁ", "ヿ", "゠", "龥", "x", "abc", "Hello", " ", "  ",
            "\n", "\r\n", "é", "\u{0300}", ".", "'s", "!?", "-", "\t",
        ];
        let mut next = crate::test_rng::xorshift(11);
        for (k, steps) in forms.into_iter().enumerate() {
            let p = pipeline(Normalizer::None, steps);
            assert!(p.one_pass().is_some(), "form {k}");
            for _ in 0..500 {
                let n = next() % 16;
                let text: String = (0..n).map(|_| fragments[(next() % fragments.len() as u64) as usize]).collect();
                assert_eq!(one_pass_pieces(&p, &text).unwrap(), pieces(&p, &text), "form {k} on {text:?}");
            }
        }
        // Forms it does not take: a prefix space, another behavior, a class
        // split after another split, a split and ByteLevel's regex.
        for steps in [
            vec![Step::Digits { individual: true }, Step::ByteLevel { add_prefix_space: true, use_regex: true }],
            vec![split(r"\p{N}", Behavior::Removed, false), byte_level(false)],
            vec![isolated(r"[a-z]+|\s"), isolated(r"\p{N}{1,3}"), byte_level(false)],
            vec![isolated(r"\p{N}"), isolated(r"[a-z]+|\s"), byte_level(true)],
        ] {
            assert!(pipeline(Normalizer::None, steps).one_pass().is_none());
        }
    }

    /// An error of the last split is placed in the whole text.
    #[test]
    fn one_pass_errors_are_placed_in_the_text() {
        let bad = "(?:(?=a)a|a)*b|.";
        let p =
            pipeline(Normalizer::None, vec![Step::Digits { individual: true }, split(bad, Behavior::Isolated, false)]);
        let text = format!("xy1 é{}", "a".repeat(40));
        let error = p.one_pass().unwrap().for_each_piece(&text, |_, _| ()).unwrap_err();
        assert_eq!(error, p.pieces(&text).unwrap_err());
        assert_eq!((error.offset, error.char_offset), (6, 5));
    }

    /// A space put before a text, then GPT-2's split: the first piece made
    /// from a copy of a prefix, the rest as slices of the text, the same
    /// pieces as splitting a copy of all of it.
    #[test]
    fn prefixed_gpt2_pieces_are_those_of_the_prefixed_copy() {
        let p = pipeline(Normalizer::None, vec![Step::ByteLevel { add_prefix_space: true, use_regex: true }]);
        let gpt2 = Pretokenizer::new("gpt2").unwrap();
        let alphabet = ["a", "Z", "é", "7", "'", "'s", " ", "  ", "\n", "\t", "!", "日", "\u{a0}", "\r\n"];
        let mut next = crate::test_rng::xorshift(5);
        for round in 0..3_000 {
            // Runs long enough to need the prefix copied more than once.
            let len = if round % 10 == 0 { 60 + (next() % 400) as usize } else { (next() % 12) as usize };
            let mut text = String::new();
            while text.chars().count() < len {
                let part = alphabet[(next() % alphabet.len() as u64) as usize];
                let times = if next().is_multiple_of(4) { 1 + (next() % 150) as usize } else { 1 };
                text.push_str(&part.repeat(times));
            }
            let prefixed = format!(" {text}");
            let expected: Vec<String> = if text.starts_with(' ') {
                gpt2.pieces(&text).unwrap().into_iter().map(str::to_string).collect()
            } else {
                gpt2.pieces(&prefixed).unwrap().into_iter().map(str::to_string).collect()
            };
            if text.is_empty() {
                continue;
            }
            assert_eq!(pieces(&p, &text), expected, "{text:?}");
        }
    }

    #[test]
    fn split_behaviors_follow_tokenizers() {
        // The examples of tokenizers' `NormalizedString::split` documentation.
        let text = "the-final--countdown";
        let cases = [
            (Behavior::Removed, vec!["the", "final", "countdown"]),
            (Behavior::Isolated, vec!["the", "-", "final", "-", "-", "countdown"]),
            (Behavior::MergedWithPrevious, vec!["the-", "final-", "-", "countdown"]),
            (Behavior::MergedWithNext, vec!["the", "-final", "-", "-countdown"]),
            (Behavior::Contiguous, vec!["the", "-", "final", "--", "countdown"]),
        ];
        for (behavior, expected) in cases {
            let p = pipeline(Normalizer::None, vec![split("-", behavior, false)]);
            assert_eq!(pieces(&p, text), expected, "{behavior:?}");
        }
        let p = pipeline(Normalizer::None, vec![split("[a-z]+", Behavior::Removed, true)]);
        assert_eq!(pieces(&p, "ab, cd!"), vec!["ab", "cd"]);
    }

    #[test]
    fn split_keeps_the_text_its_regex_does_not_match() {
        // HF's Split(Isolated) keeps the gaps, on every engine (DFAs here, the regex engine with the look-ahead).
        for pattern in ["[a-z]+", "[a-z]+(?=\\W|$)"] {
            let p = pipeline(Normalizer::None, vec![split(pattern, Behavior::Isolated, false)]);
            assert_eq!(pieces(&p, "hello, World 123!"), vec!["hello", ", W", "orld", " 123!"], "{pattern}");
        }
    }

    #[test]
    fn a_split_the_engine_gives_up_on_is_an_error_placed_in_the_text() {
        let bad = "(?:(?=a)a|a)*b|.";
        let steps = vec![split(" ", Behavior::Removed, false), split(bad, Behavior::Isolated, false)];
        let p = pipeline(Normalizer::None, steps);
        let text = format!("xy é{}", "a".repeat(40));
        let err = p.pieces(&text).unwrap_err();
        assert_eq!((err.offset, err.char_offset, err.pattern.as_str()), (5, 4, bad));
        // The same through Digits and another behavior.
        let steps = vec![
            Step::Digits { individual: false },
            split(bad, Behavior::MergedWithNext, false),
            Step::ByteLevel { add_prefix_space: true, use_regex: true },
        ];
        let err = pipeline(Normalizer::None, steps).pieces(&text).unwrap_err();
        assert_eq!((err.offset, err.char_offset), (5, 4));
        // Text the normalizer changed: the place is where that text starts.
        let p = pipeline(Normalizer::Nfc, vec![split(bad, Behavior::Isolated, false)]);
        let mut seen = Vec::new();
        let text = format!("e\u{301}{}", "a".repeat(40));
        let err = p.for_each_segment(&text, Allowed::None, |s| seen.push(format!("{s:?}"))).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.to_string().contains("normalized form"), "{err}");
        assert_eq!(seen, vec!["Piece(\"é\")"]);
    }

    #[test]
    fn digits_individual_or_contiguous() {
        let p = pipeline(Normalizer::None, vec![Step::Digits { individual: true }]);
        assert_eq!(pieces(&p, "a12 ٣x"), vec!["a", "1", "2", " ", "٣", "x"]);
        let p = pipeline(Normalizer::None, vec![Step::Digits { individual: false }]);
        assert_eq!(pieces(&p, "a12 ٣x"), vec!["a", "12", " ", "٣", "x"]);
    }

    #[test]
    fn byte_level_prefix_and_regex() {
        let steps =
            vec![split(r"\d+", Behavior::Isolated, false), Step::ByteLevel { add_prefix_space: true, use_regex: true }];
        let p = pipeline(Normalizer::None, steps);
        assert_eq!(pieces(&p, "hi there42 x"), vec![" hi", " there", " 42", " x"]);
        let p = pipeline(Normalizer::None, vec![Step::ByteLevel { add_prefix_space: false, use_regex: false }]);
        assert_eq!(pieces(&p, "hi there"), vec!["hi there"]);
    }

    #[test]
    fn nfc_composes() {
        let p = pipeline(Normalizer::Nfc, vec![split(r"\w+|\W", Behavior::Isolated, false)]);
        assert_eq!(pieces(&p, "cafe\u{301}!"), vec!["café", "!"]);
        assert!(matches!(Normalizer::Nfc.apply("plain ascii"), Cow::Borrowed(_)));
        assert!(matches!(Normalizer::Nfc.apply("it\u{2019}s caf\u{e9} \u{65e5}\u{672c}"), Cow::Borrowed(_)));
    }

    /// The quick check only skips work: on random mixes of characters that
    /// compose, reorder, decompose or stay, the result is the full normalization's.
    #[test]
    fn nfc_quick_check_changes_nothing() {
        let alphabet = [
            "a",
            "e",
            "A",
            " ",
            "\u{301}",
            "\u{308}",
            "\u{327}",
            "\u{316}",
            "\u{e9}",
            "\u{212b}",
            "\u{2019}",
            "\u{1100}",
            "\u{1161}",
            "\u{11a8}",
            "\u{ac00}",
            "\u{915}",
            "\u{93c}",
            "\u{f900}",
            "\u{1e0a}",
            "\u{323}",
            "\u{65e5}",
            "\u{340}",
            "\u{2fa1d}",
            "\u{438}",
            "\u{306}",
            "\u{439}",
            "\u{483}",
            "\u{3099}",
            "\u{304b}",
            "\u{1d15e}",
        ];
        let mut next = crate::test_rng::xorshift(17);
        for _ in 0..20_000 {
            let len = (next() % 8) as usize;
            let text: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let full: String = text.nfc().map(|(c, _)| c).collect();
            assert_eq!(Normalizer::Nfc.apply(&text), full, "{text:?}");
        }
    }

    #[test]
    fn bad_descriptions_are_errors() {
        assert!(Behavior::parse("sideways").is_err());
        assert!(Normalizer::parse(Some("nfkc")).is_err());
        let late =
            vec![Step::ByteLevel { add_prefix_space: false, use_regex: false }, Step::Digits { individual: true }];
        assert!(Pipeline::new(Normalizer::None, late, AddedVocab::empty()).is_err());
        assert!(Pipeline::new(Normalizer::None, vec![], AddedVocab::empty()).is_err());
        assert!(Split::new("(", Behavior::Isolated, false).is_err());
    }
}
