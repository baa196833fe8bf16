//! Pre-tokenization: splits text into the pieces that BPE merges within.
//!
//! Three engines, the first that can take a pattern wins:
//! - hand-written scanners, proven equal to their regex (unit tests here, property
//!   and corpus tests in `tests/tokenizer`): the built-in patterns, selected by name
//!   (`gpt2`, `cl100k`, `o200k`, or the tiktoken names) or by their regex, and the
//!   open models' patterns (Llama 3, Qwen 2, Tekken, DeepSeek V3's word split;
//!   Llama 4 and GPT-OSS use o200k's), selected by their regex, in the models'
//!   spelling or any other that parses to the same alternatives;
//! - [`compiled`]: a custom pattern made of look-around-free alternatives and
//!   `\s+(?!\S)`, on DFAs;
//! - any other regex, on fancy-regex (look-arounds allowed), which may give up on
//!   a pattern that backtracks too much: that is a [`SplitError`], never a short split.
//!
//! Text the pattern does not match is skipped, as tiktoken skips it (its pieces
//! are those of `find_iter`); the built-in and open-model patterns match everything.

mod class_runs;
mod classes;
mod compiled;
pub mod pipeline;
mod scan_cl100k;
mod scan_deepseek;
mod scan_gpt2;
mod scan_o200k;
mod text;
mod window;

use std::sync::{Arc, OnceLock};

use fancy_regex::Regex;

use compiled::{Alternative, CompiledPattern};
use text::Text;
use window::{Step, Window, WindowExtra};

/// tiktoken's r50k/GPT-2 split pattern.
pub const GPT2_PATTERN: &str = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";
/// tiktoken's cl100k_base split pattern.
pub const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";
/// tiktoken's o200k_base split pattern.
pub const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// The built-in patterns by their short names.
pub const BUILTIN_PATTERNS: [(&str, &str); 3] =
    [("gpt2", GPT2_PATTERN), ("cl100k", CL100K_PATTERN), ("o200k", O200K_PATTERN)];

/// Llama 3's split pattern (meta-llama/llama-models `models/llama3/tokenizer.py`,
/// and the `Split` regex of the Llama 3 `tokenizer.json` files); also tiktoken's
/// cl100k_base pattern before it was rewritten with possessive quantifiers.
pub const LLAMA3_PATTERN: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*",
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
);
/// Qwen 2's (and Qwen 2.5's and Qwen 3's) split pattern: Llama 3's with single
/// numbers (transformers `models/qwen2/tokenization_qwen2.py`, `PRETOKENIZE_REGEX`).
pub const QWEN2_PATTERN: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*",
    r"|\s*[\r\n]+|\s+(?!\S)|\s+",
);
/// Mistral's Tekken split pattern (`tekken.json`'s `pattern`): o200k's without
/// the contraction suffixes, with single numbers.
pub const TEKKEN_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*",
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
);

/// DeepSeek V3's word split, the third `Split` of its `tokenizer.json`
/// pre-tokenizer (after `\p{N}{1,3}` and `[一-龥぀-ゟ゠-ヿ]+`; the file has
/// `\r` and `\n` as the characters themselves, the same regex).
pub const DEEPSEEK_V3_WORDS_PATTERN: &str = concat!(
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"##,
    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
);

/// A hand-written scanner for a pattern that does not match at every
/// position: `match_end` is None where no match starts.
#[derive(Debug)]
struct GapScanner {
    name: &'static str,
    source: &'static str,
    match_end: fn(&Text<'_>, usize) -> Option<usize>,
}

static GAP_SCANNERS: [GapScanner; 1] =
    [GapScanner { name: "deepseek_v3", source: DEEPSEEK_V3_WORDS_PATTERN, match_end: scan_deepseek::match_end }];

/// A hand-written scanner and the pattern it is equal to.
#[derive(Debug)]
struct Scanner {
    name: &'static str,
    source: &'static str,
    piece_end: fn(&Text<'_>, usize) -> usize,
}

/// Every scanner. Llama 4 (meta-llama/llama-models `models/llama4/tokenizer.py`)
/// and GPT-OSS (tiktoken's o200k_harmony) split with o200k_base's pattern itself.
/// `piece_end` is the whole scanner, one piece at a time;
/// [`Pretokenizer::for_each_piece`] runs each on its windowed loop.
static SCANNERS: [Scanner; 6] = [
    Scanner { name: "gpt2", source: GPT2_PATTERN, piece_end: scan_gpt2::piece_end },
    Scanner { name: "cl100k", source: CL100K_PATTERN, piece_end: scan_cl100k::piece_end::<scan_cl100k::Cl100k> },
    Scanner { name: "o200k", source: O200K_PATTERN, piece_end: scan_o200k::piece_end::<scan_o200k::O200k> },
    Scanner { name: "llama3", source: LLAMA3_PATTERN, piece_end: scan_cl100k::piece_end::<scan_cl100k::Llama3> },
    Scanner { name: "qwen2", source: QWEN2_PATTERN, piece_end: scan_cl100k::piece_end::<scan_cl100k::Qwen2> },
    Scanner { name: "tekken", source: TEKKEN_PATTERN, piece_end: scan_o200k::piece_end::<scan_o200k::Tekken> },
];

/// Every hand-written scanner's name and the pattern it is equal to, the gap
/// scanners' too (for the tests and the fuzz target that hold them to the regex).
pub fn scanner_patterns() -> impl Iterator<Item = (&'static str, &'static str)> {
    let full = SCANNERS.iter().map(|s| (s.name, s.source));
    full.chain(GAP_SCANNERS.iter().map(|s| (s.name, s.source)))
}

/// The scanners' patterns as compared alternatives (those that have that form;
/// the possessive quantifiers of gpt2's and cl100k's do not).
fn scanner_alternatives() -> &'static [(Engine, Vec<Alternative>)] {
    static FORMS: OnceLock<Vec<(Engine, Vec<Alternative>)>> = OnceLock::new();
    FORMS.get_or_init(|| {
        let full = SCANNERS.iter().map(|s| (Engine::Scanner(s), s.source));
        let gaps = GAP_SCANNERS.iter().map(|s| (Engine::GapScanner(s), s.source));
        full.chain(gaps).filter_map(|(e, source)| compiled::alternatives(source).map(|alts| (e, alts))).collect()
    })
}

/// Whether `c` is in `\p{L}` as the scanners and the regex engine see it.
pub fn is_letter(c: char) -> bool {
    classes::table().class(c as u32) & classes::LETTER != 0
}

/// Error for a pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid split pattern: {}", self.0)
    }
}

impl std::error::Error for PatternError {}

/// The regex engine gave up splitting a text with a custom pattern (it
/// backtracks too much). The text from `offset` on has no pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    /// The pattern's regex.
    pub pattern: String,
    /// Byte offset in the text where the engine was searching from.
    pub offset: usize,
    /// The same place in characters (Unicode code points).
    pub char_offset: usize,
    /// What the engine said.
    pub reason: String,
}

impl SplitError {
    /// The same error for the text `whole` that `part` (which the error is about) is a slice of.
    pub fn within(mut self, whole: &str, part: &str) -> Self {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        debug_assert!(start + part.len() <= whole.len());
        self.offset += start;
        self.char_offset += whole[..start].chars().count();
        self
    }
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the regex engine gave up on split pattern {:?} at character {} (byte {}) of the text: {}; \
             a pattern without nested or overlapping repetitions avoids this",
            self.pattern, self.char_offset, self.offset, self.reason
        )
    }
}

impl std::error::Error for SplitError {}

/// Resolves a built-in pattern name to its regex source; other strings pass through.
pub fn resolve_pattern(name_or_regex: &str) -> &str {
    match name_or_regex {
        "gpt2" | "r50k" | "r50k_base" => GPT2_PATTERN,
        "cl100k" | "cl100k_base" => CL100K_PATTERN,
        "o200k" | "o200k_base" => O200K_PATTERN,
        other => other,
    }
}

/// How a pretokenizer finds its pieces.
#[derive(Debug, Clone)]
enum Engine {
    Scanner(&'static Scanner),
    GapScanner(&'static GapScanner),
    Compiled(Arc<CompiledPattern>),
    Regex(Regex),
}

/// What the loops over a pattern that may not match everywhere need of its
/// engine (the compiled DFAs, or a gap scanner).
trait Matcher {
    /// End of the match starting at byte `i` (< text length), if any.
    fn match_end(&self, t: &Text<'_>, bytes: &[u8], i: usize) -> Option<usize>;
    /// The first place from byte `i` on (a character boundary) where a match
    /// may start, or None if none starts there or later.
    fn next_start(&self, bytes: &[u8], i: usize) -> Option<usize>;
}

impl Matcher for CompiledPattern {
    #[inline(always)]
    fn match_end(&self, t: &Text<'_>, bytes: &[u8], i: usize) -> Option<usize> {
        CompiledPattern::match_end(self, t, bytes, i)
    }
    #[inline(always)]
    fn next_start(&self, bytes: &[u8], i: usize) -> Option<usize> {
        CompiledPattern::next_start(self, bytes, i)
    }
}

/// A gap scanner's `match_end` as a [`Matcher`]; given the function itself
/// (not a pointer) the loops call it directly and can inline it.
struct GapFn<F>(F);

impl<F: Fn(&Text<'_>, usize) -> Option<usize>> Matcher for GapFn<F> {
    #[inline(always)]
    fn match_end(&self, t: &Text<'_>, _bytes: &[u8], i: usize) -> Option<usize> {
        (self.0)(t, i)
    }
    #[inline(always)]
    fn next_start(&self, bytes: &[u8], i: usize) -> Option<usize> {
        (i < bytes.len()).then_some(i)
    }
}

/// A compiled split pattern. `Send + Sync`; share it across threads.
#[derive(Debug, Clone)]
pub struct Pretokenizer {
    source: String,
    engine: Engine,
}

impl Pretokenizer {
    /// A built-in pattern by name, or any regex: on a scanner if one is equal to
    /// it, else compiled to DFAs if it can be, else on the regex engine.
    pub fn new(name_or_regex: &str) -> Result<Self, PatternError> {
        let source = resolve_pattern(name_or_regex);
        let engine = match SCANNERS.iter().find(|s| s.source == source) {
            Some(scanner) => Engine::Scanner(scanner),
            None => {
                // Whatever runs it, a pattern is valid exactly when the regex engine takes it.
                let regex = Regex::new(source).map_err(|e| PatternError(e.to_string()))?;
                Self::fast_engine(source).unwrap_or(Engine::Regex(regex))
            }
        };
        // Build the class tables now rather than on the first encode.
        classes::table();
        classes::contraction_letters();
        Ok(Self { source: source.to_string(), engine })
    }

    /// A scanner equal to `source` in another spelling, or its compiled form.
    fn fast_engine(source: &str) -> Option<Engine> {
        let alternatives = compiled::alternatives(source)?;
        if let Some((scanner, _)) = scanner_alternatives().iter().find(|(_, alts)| *alts == alternatives) {
            return Some(scanner.clone());
        }
        CompiledPattern::cached(source, &alternatives).map(Engine::Compiled)
    }

    /// Compiles `name_or_regex` (built-in names resolved) and always splits
    /// with the regex engine: the reference the fast engines are checked against.
    pub fn regex_only(name_or_regex: &str) -> Result<Self, PatternError> {
        let source = resolve_pattern(name_or_regex).to_string();
        let regex = Regex::new(&source).map_err(|e| PatternError(e.to_string()))?;
        Ok(Self { source, engine: Engine::Regex(regex) })
    }

    /// Whether a hand-written scanner (not the regex engine) does the splitting.
    pub fn is_scanner(&self) -> bool {
        matches!(self.engine, Engine::Scanner(_) | Engine::GapScanner(_))
    }

    /// Whether a text cut before a newline that follows a letter splits into
    /// the pieces of the whole (see `chunking`): the built-in patterns' scanners.
    pub fn pieces_stop_at_letter_newlines(&self) -> bool {
        matches!(self.engine, Engine::Scanner(s) if matches!(s.name, "gpt2" | "cl100k" | "o200k"))
    }

    /// Whether the pattern matches at every position of every text (its pieces
    /// cover the text): true for the patterns of the scanners that have no
    /// gaps. A custom pattern that happens to match everything is not
    /// recognised (false).
    pub fn matches_all_text(&self) -> bool {
        matches!(self.engine, Engine::Scanner(_))
    }

    /// What does the splitting: `scanner:NAME`, `compiled` (DFAs) or `regex` (fancy-regex).
    pub fn engine_name(&self) -> String {
        match &self.engine {
            Engine::Scanner(s) => format!("scanner:{}", s.name),
            Engine::GapScanner(s) => format!("scanner:{}", s.name),
            Engine::Compiled(_) => "compiled".to_string(),
            Engine::Regex(_) => "regex".to_string(),
        }
    }

    /// The regex source this pretokenizer splits with.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Calls `f` on every piece of `text`, in order. The pieces concatenate to
    /// the part of `text` the pattern matches (all of it for the built-in and
    /// open-model patterns). An error means the regex engine gave up on a custom
    /// pattern; `f` has then seen the pieces before the error's offset.
    pub fn for_each_piece<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) -> Result<(), SplitError> {
        self.for_each_range_inline(text, |start, end| f(&text[start..end]))
    }

    /// [`Pretokenizer::for_each_piece`], each piece as `text[start..end]`.
    pub fn for_each_piece_range(&self, text: &str, f: impl FnMut(usize, usize)) -> Result<(), SplitError> {
        self.for_each_range_inline(text, f)
    }

    /// [`Pretokenizer::for_each_piece`] with each piece as bytes, inlined into
    /// its caller (the encoder, which compiles it for the CPU's features). The
    /// pieces are the same; only the check that each `&str` starts and ends
    /// between characters is left out (2-3% of encoding ASCII text).
    #[inline(always)]
    pub fn for_each_piece_bytes_inline<'t>(
        &self,
        text: &'t str,
        mut f: impl FnMut(&'t [u8]),
    ) -> Result<(), SplitError> {
        let bytes = text.as_bytes();
        self.for_each_range_inline(
            text,
            #[inline(always)]
            |start, end| f(&bytes[start..end]),
        )
    }

    /// Calls `f(start, end)` on every piece's place in `text` (see
    /// [`Pretokenizer::for_each_piece`]).
    #[inline(always)]
    pub(crate) fn for_each_range_inline(&self, text: &str, mut f: impl FnMut(usize, usize)) -> Result<(), SplitError> {
        let t = Text::new(text);
        let mut i = 0;
        match &self.engine {
            // Each scanner gets a loop of its own, so that it inlines into it.
            Engine::Scanner(scanner) => match scanner.name {
                "gpt2" => scan_windows(
                    text,
                    &t,
                    scan_gpt2::window_starts,
                    scan_gpt2::window_piece_end,
                    scan_gpt2::piece_end,
                    scan_gpt2::piece_end,
                    f,
                ),
                "cl100k" => scan_cl100k_family::<scan_cl100k::Cl100k>(text, &t, f),
                "llama3" => scan_cl100k_family::<scan_cl100k::Llama3>(text, &t, f),
                "qwen2" => scan_cl100k_family::<scan_cl100k::Qwen2>(text, &t, f),
                "o200k" => scan_o200k_family::<scan_o200k::O200k>(text, &t, f),
                "tekken" => scan_o200k_family::<scan_o200k::Tekken>(text, &t, f),
                _ => scan_pieces(text, &t, scanner.piece_end, f),
            },
            Engine::GapScanner(scanner) => match scanner.name {
                "deepseek_v3" => each_match(text, &t, &GapFn(scan_deepseek::match_end), f),
                _ => each_match(text, &t, &GapFn(scanner.match_end), f),
            },
            Engine::Compiled(compiled) => each_match(text, &t, &**compiled, f),
            Engine::Regex(regex) => {
                for m in regex.find_iter(text) {
                    match m {
                        Ok(m) => {
                            f(m.start(), m.end());
                            i = m.end();
                        }
                        Err(e) => {
                            return Err(SplitError {
                                pattern: self.source.clone(),
                                offset: i,
                                char_offset: text[..i].chars().count(),
                                reason: e.to_string(),
                            })
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// All pieces of `text` as a vector (convenience for tests and callers
    /// that need them materialized).
    pub fn pieces<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, SplitError> {
        let mut out = Vec::new();
        self.for_each_piece(text, |p| out.push(p))?;
        Ok(out)
    }

    /// Calls `f(start, end, is_match)` on the stretches of `text`, in order: the
    /// pattern's matches and the text between them, which together cover `text`.
    /// These are the stretches of HF tokenizers' `Split` (its `find_matches`),
    /// which keeps unmatched text, where [`Self::for_each_piece`] (tiktoken's
    /// `find_iter`) skips it. Only the regex engine gives empty matches (they cut
    /// without covering anything); the scanners and the DFAs never match empty.
    /// An error means the regex engine gave up on a custom pattern; `f` has then
    /// seen the stretches before the error's offset.
    pub fn for_each_stretch(&self, text: &str, f: impl FnMut(usize, usize, bool)) -> Result<(), SplitError> {
        self.for_each_stretch_inline(text, f)
    }

    /// [`Pretokenizer::for_each_stretch`] inlined into its caller (the encoder's
    /// one pass over a pipeline's steps).
    #[inline(always)]
    fn for_each_stretch_inline(&self, text: &str, mut f: impl FnMut(usize, usize, bool)) -> Result<(), SplitError> {
        match &self.engine {
            // A scanner's pattern matches at every position: every piece is a match.
            Engine::Scanner(_) => self.for_each_range_inline(text, |start, end| f(start, end, true))?,
            Engine::GapScanner(scanner) => match scanner.name {
                "deepseek_v3" => each_stretch(text, &GapFn(scan_deepseek::match_end), f),
                _ => each_stretch(text, &GapFn(scanner.match_end), f),
            },
            Engine::Compiled(compiled) => each_stretch(text, &**compiled, f),
            Engine::Regex(regex) => {
                let mut done = 0;
                for m in regex.find_iter(text) {
                    let m = m.map_err(|e| SplitError {
                        pattern: self.source.clone(),
                        offset: done,
                        char_offset: text[..done].chars().count(),
                        reason: e.to_string(),
                    })?;
                    if m.start() != done {
                        f(done, m.start(), false);
                    }
                    f(m.start(), m.end(), true);
                    done = m.end();
                }
                if done != text.len() {
                    f(done, text.len(), false);
                }
            }
        }
        Ok(())
    }

    /// Calls `f(start, end)` on the non-empty stretches of `text` (see
    /// [`Pretokenizer::for_each_stretch`]), matches and gaps alike: the pieces
    /// of HF's `Split(Isolated)`, inlined into the encoder's one pass over a
    /// pipeline. DeepSeek V3's word split (the last split of its pipeline) runs
    /// on the windowed loop here, as the scanners of patterns that match all
    /// text do.
    #[inline(always)]
    pub(crate) fn for_each_isolated_inline(
        &self,
        text: &str,
        mut f: impl FnMut(usize, usize),
    ) -> Result<(), SplitError> {
        match &self.engine {
            // A short text (a run between numbers or CJK, in DeepSeek's pipeline)
            // costs less piece by piece than its window's classes.
            Engine::GapScanner(scanner) if scanner.name == "deepseek_v3" && text.len() >= WINDOWED_FROM => {
                use scan_deepseek::{stretch_end, window_piece_end, window_starts};
                scan_windows(text, &Text::new(text), window_starts, window_piece_end, stretch_end, stretch_end, f);
                Ok(())
            }
            _ => self.for_each_stretch_inline(
                text,
                #[inline(always)]
                |s, e, _| {
                    if e > s {
                        f(s, e)
                    }
                },
            ),
        }
    }

    /// The non-empty stretches of `text` (matches and the text between them) as
    /// a vector: the pieces of HF's `Split(Isolated)`, which concatenate to `text`.
    pub fn pieces_keeping_gaps<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, SplitError> {
        let mut out = Vec::new();
        self.for_each_isolated_inline(text, |start, end| out.push(&text[start..end]))?;
        Ok(out)
    }
}

/// Bytes from which a gap scanner's text takes the windowed loop.
const WINDOWED_FROM: usize = 32;

/// Calls `f` on every match of `m` in `text`, in order, skipping the text
/// between them as find_iter does.
#[inline(always)]
fn each_match<M: Matcher + ?Sized>(text: &str, t: &Text<'_>, m: &M, mut f: impl FnMut(usize, usize)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        match m.match_end(t, bytes, i) {
            Some(end) => {
                f(i, end);
                i = end;
            }
            // Nothing matches here: skip to where something may.
            None => match m.next_start(bytes, i + t.at(i).map_or(1, |c| c.len)) {
                Some(next) => i = next,
                None => break,
            },
        }
    }
}

/// Calls `f(start, end, is_match)` on the matches of `m` in `text` and on the
/// text between them (see [`Pretokenizer::for_each_stretch`]).
#[inline(always)]
fn each_stretch<M: Matcher + ?Sized>(text: &str, m: &M, mut f: impl FnMut(usize, usize, bool)) {
    let t = Text::new(text);
    let bytes = text.as_bytes();
    let mut i = 0;
    // next_start may find a place where no match starts after all: a gap runs
    // until the next actual match.
    let mut gap_start = None;
    while i < text.len() {
        match m.match_end(&t, bytes, i) {
            Some(end) => {
                if let Some(start) = gap_start.take() {
                    f(start, i, false);
                }
                f(i, end, true);
                i = end;
            }
            None => {
                gap_start.get_or_insert(i);
                let next = m.next_start(bytes, i + t.at(i).map_or(1, |c| c.len));
                i = next.unwrap_or(text.len());
            }
        }
    }
    if let Some(start) = gap_start {
        f(start, text.len(), false);
    }
}

/// [`scan_windows`] with a scanner of cl100k's family.
#[inline(always)]
fn scan_cl100k_family<V: scan_cl100k::Variant>(text: &str, t: &Text<'_>, f: impl FnMut(usize, usize)) {
    use scan_cl100k::{piece_end, window_piece_end, window_starts};
    scan_windows(text, t, window_starts::<V>, window_piece_end::<V>, piece_end::<V>, piece_end::<V>, f)
}

/// [`scan_windows`] with a scanner of o200k's family.
#[inline(always)]
fn scan_o200k_family<V: scan_o200k::Variant>(text: &str, t: &Text<'_>, f: impl FnMut(usize, usize)) {
    use scan_o200k::{general_piece_end, piece_end, window_piece_end, window_starts};
    scan_windows(text, t, window_starts::<V>, window_piece_end::<V>, piece_end::<V>, general_piece_end::<V>, f)
}

/// Calls `f` on every piece of `t`, each ending where `scan` says (one
/// instance per scanner given by name, so that it inlines into the loop).
#[inline(always)]
fn scan_pieces(text: &str, t: &Text<'_>, scan: impl Fn(&Text<'_>, usize) -> usize, mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < text.len() {
        let end = scan(t, i);
        debug_assert!(end > i && text.is_char_boundary(end));
        // Every scanner's pattern matches at every position; a zero-length
        // result would be a scanner bug, so never loop on it.
        let end = if end > i { end } else { i + t.at(i).map_or(1, |c| c.len) };
        f(i, end);
        i = end;
    }
}

/// [`scan_pieces`] with fast paths on the classified 64-byte [`Window`] from a
/// piece's start: `starts` finds where pieces start in the window at once
/// (and where it cannot tell), `fast` finds one piece's end, `scan` (the
/// whole scanner) measures pieces longer than a window, and `general` (its
/// character-by-character part) decides what the window's ASCII classes do not.
#[inline(always)]
fn scan_windows<X: WindowExtra>(
    text: &str,
    t: &Text<'_>,
    starts: fn(&Window<X>) -> (u64, u64),
    fast: fn(&Window<X>, &Text<'_>, usize) -> Step,
    scan: fn(&Text<'_>, usize) -> usize,
    general: fn(&Text<'_>, usize) -> usize,
    mut f: impl FnMut(usize, usize),
) {
    /// A window with its piece starts, those that a doubt before them (back
    /// to the start before) may make wrong, and its doubts.
    struct Classified<X> {
        w: Window<X>,
        starts: u64,
        tainted: u64,
        doubt: u64,
    }
    // Text of mostly longer characters (the starts all in doubt) goes to
    // `scan` for this many bytes before the next window is tried.
    const PLAIN_STRETCH: usize = 256;
    // A window that gives fewer pieces than this before one runs past it
    // sends the text after it to `scan` for four stretches (more pieces
    // lose mixed text: its windows with longer characters give few).
    const FEW_PIECES: usize = 3;
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return;
    }
    // A function, not a closure, so that it inlines into the loop and the
    // scanner's `starts` with it (a closure was called, and `starts` through a pointer).
    #[inline(always)]
    fn classify_at<X: WindowExtra>(bytes: &[u8], base: usize, starts: fn(&Window<X>) -> (u64, u64)) -> Classified<X> {
        let w = Window::new(bytes, base);
        let (starts, doubt) = starts(&w);
        let between = !starts;
        let tainted = starts & (doubt | (window::fill_forward(doubt & between, between) << 1));
        Classified { w, starts, tainted, doubt }
    }
    let classify = |base: usize| classify_at(bytes, base, starts);
    // Starts after window byte `k`.
    let after = |c: &Classified<X>, k: usize| if k >= 63 { 0 } else { c.starts & (!1u64 << k) };
    let mut c = classify(0);
    let mut plain_until = if c.doubt == u64::MAX { PLAIN_STRETCH } else { 0 };
    // Invariant: the starts of `c` after `i`.
    let mut pending = after(&c, 0);
    // Pieces started since `c` was classified.
    let mut pieces = 0;
    let mut i = 0;
    // Made once, outside the loop: made inside it, its four captures were
    // stored afresh for every piece (eight instructions a piece).
    let slow_step = |c: &Classified<X>, k: usize| match fast(&c.w, t, k) {
        Step::End(end) => end,
        Step::More => scan(t, c.w.base + k),
        Step::General => general(t, c.w.base + k),
    };
    while i < bytes.len() {
        // The pieces the window's starts settle, in a loop of their own: as
        // a `continue` of the outer loop, each went through its head too,
        // which reloaded and stored what the other paths need (seven
        // instructions a piece, counted by callgrind). A start lies within
        // the text, so `i` stays short of its end.
        while pending != 0 {
            let p = pending.trailing_zeros() as usize;
            if c.tainted >> p & 1 != 0 {
                break;
            }
            pending &= pending - 1;
            f(i, c.w.base + p);
            i = c.w.base + p;
            pieces += 1;
        }
        debug_assert!(i < bytes.len());
        let end = if pending != 0 {
            slow_step(&c, i - c.w.base)
        } else if i < plain_until {
            scan(t, i)
        } else {
            let k = i - c.w.base;
            if k < 64 && !c.w.last && k > 0 && pieces < FEW_PIECES {
                // Long pieces: classifying a window for a few of them costs
                // more than it saves.
                plain_until = i + 4 * PLAIN_STRETCH;
                pieces = FEW_PIECES;
                continue;
            }
            if k >= 64 || (!c.w.last && k > 0) {
                // Past the window, or a piece that may go on past it: the next window.
                c = classify(i);
                pieces = 0;
                if c.doubt == u64::MAX {
                    plain_until = i + PLAIN_STRETCH;
                }
                pending = after(&c, 0);
                continue;
            }
            if c.w.last && c.doubt & (!1u64 << k) == 0 {
                // No start after k: the piece ends the text.
                bytes.len()
            } else {
                slow_step(&c, k)
            }
        };
        debug_assert!(end > i && text.is_char_boundary(end));
        let end = if end > i { end } else { i + t.at(i).map_or(1, |c| c.len) };
        f(i, end);
        i = end;
        pieces += 1;
        pending = after(&c, i - c.w.base);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn builtin_patterns_compile() {
        for name in ["gpt2", "cl100k", "o200k"] {
            Pretokenizer::new(name).unwrap();
        }
    }

    #[test]
    fn cl100k_splits_words_and_spaces() {
        let p = Pretokenizer::new("cl100k").unwrap();
        assert_eq!(p.pieces("hello world  12345").unwrap(), vec!["hello", " world", " ", " ", "123", "45"]);
    }

    const SAMPLES: &[&str] = &[
        "",
        "Hello, world! It's 2024: we'll see 12345 things.",
        "  leading and trailing  ",
        "tabs\tand\r\nnewlines\n\n  \n x",
        "I'M SHOUTING 'LL 'Ve 'ſ don't",
        "HTTPServer iPhone ǅemal naïve ÉCOLE",
        "日本語の文章です。中文 한국어",
        "e\u{301}\u{301} \u{301}A! \u{301}",
        "👋🏽 👨‍👩‍👧‍👦 🇫🇷!!",
        "a/b//c/\n/\r\n",
        "   ",
        "\n",
        "x\u{a0}y\u{3000}\u{85}z",
        "1234567 ١٢٣٤ ½²",
    ];

    /// Deterministic pseudo-random strings over characters of every class.
    pub(crate) fn random_samples() -> Vec<String> {
        let alphabet: Vec<char> =
            "aZ ǅ日\u{301}\u{903}1١½ \t\n\r\u{a0}\u{3000}'sStTlLvVrReEmMdDſ!/.😀\u{200d}-_".chars().collect();
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut samples: Vec<String> = (0..3000)
            .map(|k| (0..k % 40).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect())
            .collect();
        // Longer texts (past one 64-byte window) of letters of two bytes
        // (both cases, titlecase, U+017F, letters of both o200k classes:
        // Arabic, Hebrew, Thaana, a modifier letter) beside ASCII, marks
        // (Arabic, Thaana, combining) and other characters of two bytes.
        let two_byte: Vec<char> =
            "aAzZéÉжЖÿŸǅſªµßИйبשދـʰ \u{301}\u{64e}\u{7b0}\u{a0}«×،٣'sT'Ll1\n.-/".chars().collect();
        samples.extend(
            (0..1500).map(|k| (0..k % 160).map(|_| two_byte[(next() % two_byte.len() as u64) as usize]).collect()),
        );
        // Chinese and Japanese: runs of three-byte characters of both o200k
        // classes (ideographs, kana, the prolonged sound mark, a combining
        // mark) broken by three-byte punctuation, symbols and spaces (U+30FB,
        // U+309B, U+4DC0, U+3000) and by ASCII, two- and four-byte characters.
        let cjk: Vec<char> =
            "日本語のテキストカタカナ中文〆々ー\u{3099}・、。「」゛䷀\u{3000}\u{3040}aA1 's\né😀".chars().collect();
        samples.extend((0..1500).map(|k| (0..k % 120).map(|_| cjk[(next() % cjk.len() as u64) as usize]).collect()));
        samples
    }

    /// Each fast engine splits like the regex engine on the samples.
    fn assert_equals_the_regex(fast: &Pretokenizer) {
        let slow = Pretokenizer::regex_only(fast.source()).unwrap();
        let samples = SAMPLES.iter().map(|s| s.to_string()).chain(random_samples());
        for text in samples {
            assert_eq!(fast.pieces(&text), slow.pieces(&text), "{} on {text:?}", fast.engine_name());
        }
    }

    /// Every scanner's pieces of each of `samples` equal the regex engine's.
    fn scanners_equal_the_regex_on(samples: &[String]) {
        for (name, source) in scanner_patterns() {
            let fast = Pretokenizer::new(source).unwrap();
            let slow = Pretokenizer::regex_only(source).unwrap();
            for text in samples {
                assert_eq!(fast.pieces(text).unwrap(), slow.pieces(text).unwrap(), "{name} on {text:?}");
            }
        }
    }

    #[test]
    fn scanners_equal_the_regex() {
        for (name, source) in scanner_patterns() {
            let fast = Pretokenizer::new(source).unwrap();
            assert_eq!(fast.engine_name(), format!("scanner:{name}"));
            assert!(!Pretokenizer::regex_only(source).unwrap().is_scanner());
            assert_equals_the_regex(&fast);
        }
    }

    /// DeepSeek V3's word split on what its pattern leaves out (numbers,
    /// controls) and its cases: ASCII punctuation before ASCII letters only,
    /// a prefix before letters and marks, symbols, newlines after symbols.
    #[test]
    fn deepseek_words_keep_gaps_like_the_regex() {
        let fast = Pretokenizer::new(DEEPSEEK_V3_WORDS_PATTERN).unwrap();
        assert!(fast.is_scanner() && !fast.matches_all_text());
        let slow = Pretokenizer::regex_only(DEEPSEEK_V3_WORDS_PATTERN).unwrap();
        for text in [
            "123 abc 4x 5\u{301} 'héllo .World ,é \"quoted\" a+b=c\n\n  x\t\u{1}y \u{1}\u{2} 12",
            "+++\r\n\n x  \n  ",
            "日本語のテキスト、123。\u{a0}مرحبا ١٢٣",
            "\u{301}\u{301}a 9",
            "x\u{85}y \u{2028}",
        ] {
            assert_eq!(fast.pieces(text).unwrap(), slow.pieces(text).unwrap(), "{text:?}");
            assert_eq!(fast.pieces_keeping_gaps(text).unwrap(), slow.pieces_keeping_gaps(text).unwrap(), "{text:?}");
            // The stretches with whether each is a match (what Split's other behaviors read).
            let stretches = |p: &Pretokenizer| {
                let mut out = Vec::new();
                p.for_each_stretch(text, |s, e, is_match| out.push((s, e, is_match))).unwrap();
                out
            };
            assert_eq!(stretches(&fast), stretches(&slow), "{text:?}");
        }
        assert_eq!(fast.pieces("ab 12 cd").unwrap(), vec!["ab", " ", " cd"]);
        assert_eq!(fast.pieces_keeping_gaps("ab 12 cd\x01\x01").unwrap(), vec!["ab", " ", "12", " cd", "\x01\x01"]);
    }

    #[test]
    fn compiled_patterns_equal_the_regex() {
        let patterns = [
            // The scanners' patterns, spelled so that no scanner is chosen.
            "(?:(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*\
             |\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+)",
            &O200K_PATTERN.replace("{1,3}", "{1,4}"),
            &TEKKEN_PATTERN.replace("|\\s+(?!\\S)|\\s+", "|\\s+(?!\\S)"),
            // DeepSeek V3's word split (one letter short of its scanner's), and its others.
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-y]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+\
             | ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
            r"\p{N}{1,3}",
            "[\u{4e00}-\u{9fa5}\u{3040}-\u{309f}\u{30a0}-\u{30ff}]+",
            r"\s+(?!\S)|'s|\w+|[^\w\s]+|\s",
            r"(?i)[a-z]+|\d+",
        ];
        for source in patterns {
            let fast = Pretokenizer::new(source).unwrap();
            assert_eq!(fast.engine_name(), "compiled", "{source}");
            assert_equals_the_regex(&fast);
        }
    }

    /// ASCII-heavy strings with a few longer characters at every position:
    /// the scanners' ASCII fast paths and their hand-over to the general code.
    #[test]
    fn ascii_fast_paths_equal_the_regex() {
        let alphabet: Vec<&str> = vec![
            "a", "Z", "q", "AB", "cd", " ", "  ", "\t", "\n", "\r\n", "'", "'s", "'S", "'ll", "'Re", "'ve", "1", "23",
            "456", ".", "/", "!?", "(", "\x0b", "\x7f", "é", "É", "ſ", "\u{301}", "١", "—", "\u{a0}", "日", "ǅ",
        ];
        let mut next = crate::test_rng::xorshift(0x0123_4567_89ab_cdef);
        let mut samples = Vec::new();
        for k in 0..4000 {
            let mut text = String::new();
            for _ in 0..k % 60 {
                let state = next();
                // Mostly ASCII; longer characters now and then.
                let pick = (state % alphabet.len() as u64) as usize;
                let pick = if pick >= 25 && !state.is_multiple_of(5) { pick % 25 } else { pick };
                text.push_str(alphabet[pick]);
            }
            samples.push(text);
        }
        scanners_equal_the_regex_on(&samples);
        isolated_pieces_equal_the_regex_on(DEEPSEEK_V3_WORDS_PATTERN, &samples);
    }

    /// Long texts of ASCII pieces, each shape of the o200k rules (and longer
    /// characters now and then), `n` of them from `seed`.
    fn window_samples(seed: u64, n: usize, len: usize, high_one_in: u64) -> Vec<String> {
        let mut ascii: Vec<&str> = vec![
            "a", "Z", "q", "AB", "cd", "Hello", "iPhone", " ", "  ", "   ", "\t", "\x0b", "\x0c", "\n", "\r\n", "\n\n",
            "'", "'s", "'S", "'ll", "'Re", "'ve", "'d", "'m", "'t", "'x", "1", "23", "456", "7890", ".", ",", "/",
            "//", "!?", "(", ")", "\x7f", "-", "_", "\"", "#", ":", ";", "\x00",
        ];
        // Longer whitespace runs, which a longer space may continue.
        ascii.extend(["        ", "\n        ", "\t\t\t\t"]);
        let longer = ["é", "É", "ſ", "\u{301}", "١", "—", "\u{a0}", "\u{85}", "\u{3000}", "日", "ǅ", "😀"];
        let mut next = crate::test_rng::xorshift(seed);
        (0..n)
            .map(|_| {
                let mut text = String::new();
                let target = 1 + (next() % len as u64) as usize;
                while text.len() < target {
                    let r = next();
                    if high_one_in > 0 && r.is_multiple_of(high_one_in) {
                        text.push_str(longer[(r >> 32) as usize % longer.len()]);
                    } else {
                        text.push_str(ascii[(r >> 32) as usize % ascii.len()]);
                    }
                }
                text
            })
            .collect()
    }

    /// The window starts equal the regex's piece starts wherever they are not
    /// in doubt, from every piece start; and are in doubt rarely.
    #[test]
    fn window_starts_equal_the_regex() {
        type Starts = fn(&Window) -> (u64, u64);
        let scanners: [(&str, &str, Starts); 6] = [
            ("o200k", O200K_PATTERN, scan_o200k::window_starts::<scan_o200k::O200k>),
            ("tekken", TEKKEN_PATTERN, scan_o200k::window_starts::<scan_o200k::Tekken>),
            ("cl100k", CL100K_PATTERN, scan_cl100k::window_starts::<scan_cl100k::Cl100k>),
            ("llama3", LLAMA3_PATTERN, scan_cl100k::window_starts::<scan_cl100k::Llama3>),
            ("qwen2", QWEN2_PATTERN, scan_cl100k::window_starts::<scan_cl100k::Qwen2>),
            ("gpt2", GPT2_PATTERN, scan_gpt2::window_starts),
        ];
        for (name, source, window_starts) in scanners {
            window_starts_equal_the_regex_for(name, source, window_starts, false);
        }
        // DeepSeek V3's word split: the starts of its stretches, gaps included, on windows with controls.
        let deepseek = scan_deepseek::window_starts;
        window_starts_equal_the_regex_for("deepseek_v3", DEEPSEEK_V3_WORDS_PATTERN, deepseek, true);
    }

    fn window_starts_equal_the_regex_for<X: WindowExtra>(
        name: &str,
        source: &str,
        window_starts: fn(&Window<X>) -> (u64, u64),
        gap_scanner: bool,
    ) {
        let slow = Pretokenizer::regex_only(source).unwrap();
        let (mut checked, mut doubted) = (0usize, 0usize);
        let mut samples = window_samples(0x5eed_0001, 1500, 200, 0);
        samples.extend(window_samples(7, 1500, 200, 40));
        if gap_scanner {
            // Two-byte letters often, beside punctuation and ASCII letters.
            samples.extend(window_samples(8, 1500, 200, 6));
        }
        for (k, text) in samples.iter().enumerate() {
            let bytes = text.as_bytes();
            let mut starts = vec![false; bytes.len() + 1];
            let mut at = 0;
            let pieces = if gap_scanner { slow.pieces_keeping_gaps(text) } else { slow.pieces(text) };
            for piece in pieces.unwrap() {
                starts[at] = true;
                at += piece.len();
            }
            starts[at] = true;
            // Windows from every piece start (a few per text for the long ones).
            for base in (0..bytes.len()).filter(|&b| starts[b]).step_by(1 + k % 3) {
                let w = Window::new(bytes, base);
                let (found, doubt) = window_starts(&w);
                for p in 1..w.len {
                    if doubt >> p & 1 != 0 {
                        doubted += 1;
                        continue;
                    }
                    checked += 1;
                    assert_eq!(
                        found >> p & 1 != 0,
                        starts[base + p],
                        "{name}: byte {} of {text:?} from {base}",
                        base + p
                    );
                }
            }
        }
        assert!(checked > 1_000_000 && doubted < 2 * checked, "{name}: {doubted} in doubt, {checked} checked");
    }

    /// The windowed scanners on texts longer than a window: pieces across
    /// window ends, runs past them, text ends, longer characters anywhere.
    #[test]
    fn window_scanners_equal_the_regex() {
        let mut samples = window_samples(0xfeed_beef, 400, 400, 0);
        samples.extend(window_samples(3, 400, 400, 25));
        samples.extend(window_samples(11, 200, 150, 4));
        // A longer character at every offset of an ASCII text, and runs of every length round 64.
        let base = window_samples(99, 1, 300, 0).pop().unwrap();
        for at in (0..base.len()).filter(|&i| base.is_char_boundary(i)) {
            for c in ["é", "\u{a0}", "١", "—"] {
                let mut text = base.clone();
                text.insert_str(at, c);
                samples.push(text);
            }
        }
        for n in 60..140 {
            for unit in ["a", "A", "1", " ", "\n", "!", " \n", "ab'", "/"] {
                samples.push(unit.repeat(n));
                samples.push(format!("x{} y", unit.repeat(n)));
            }
        }
        scanners_equal_the_regex_on(&samples);
        samples.extend(window_samples(8, 400, 400, 6));
        for n in 60..140 {
            for unit in ["\x01", "(a", ".é", "é", " 1", "\x01a"] {
                samples.push(unit.repeat(n));
                samples.push(format!("x{} y", unit.repeat(n)));
            }
        }
        isolated_pieces_equal_the_regex_on(DEEPSEEK_V3_WORDS_PATTERN, &samples);
    }

    /// The pieces of `Split(Isolated)` on the fast engine, as the encoder's
    /// pipeline takes them, against the regex's matches and gaps.
    fn isolated_pieces_equal_the_regex_on(source: &str, samples: &[String]) {
        let fast = Pretokenizer::new(source).unwrap();
        let slow = Pretokenizer::regex_only(source).unwrap();
        for text in samples {
            let mut pieces = Vec::new();
            fast.for_each_isolated_inline(text, |s, e| pieces.push(&text[s..e])).unwrap();
            assert_eq!(pieces, slow.pieces_keeping_gaps(text).unwrap(), "{source} on {text:?}");
        }
    }

    /// A whitespace run that goes on through a longer space character
    /// (U+00A0, U+0085, U+3000, U+2003): where `\s*[\r\n]` and `\s++$` end
    /// it depends on what comes after that character, however long the ASCII
    /// run before it. (The windows once cut such a run after its first newline
    /// when the longer character came 14 or more bytes later.)
    #[test]
    fn whitespace_runs_through_longer_spaces_equal_the_regex() {
        let mut samples = Vec::new();
        for lead in ["ab", "x.", ""] {
            for run in ["\n", "\r", " ", "\t\r", "\n "] {
                for n in (10..70).step_by(3) {
                    for space in ["\u{a0}", "\u{85}", "\u{3000}", "\u{2003}"] {
                        for tail in [
                            "",
                            "\n",
                            "\nz",
                            "z",
                            " z",
                            "\r\nzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
                        ] {
                            samples.push(format!("{lead}{run}{}{space}{tail}", " ".repeat(n)));
                            samples.push(format!("{lead}{run}{}{space}{tail}", "\t".repeat(n)));
                        }
                    }
                }
            }
        }
        scanners_equal_the_regex_on(&samples);
    }

    #[test]
    fn ascii_classes_equal_the_unicode_tables() {
        use classes::{LETTER, LOWERISH, NUMBER, SPACE, UPPERISH};
        use text::ascii;
        let table = classes::table();
        for b in 0..=255u8 {
            let a = ascii::class(b);
            if b >= 0x80 {
                assert_eq!(a, 0);
                continue;
            }
            let u = table.class(b as u32);
            assert_eq!(a & ascii::LETTER != 0, u & LETTER != 0, "{b}");
            assert_eq!(a & ascii::UPPER != 0, u & UPPERISH != 0, "{b}");
            assert_eq!(a & ascii::LOWER != 0, u & LOWERISH != 0, "{b}");
            assert_eq!(a & ascii::DIGIT != 0, u & NUMBER != 0, "{b}");
            assert_eq!(a & ascii::SPACE != 0, u & SPACE != 0, "{b}");
            assert_eq!(a & ascii::OTHER != 0, u & (LETTER | NUMBER | SPACE) == 0, "{b}");
            assert_eq!(a & ascii::NEWLINE != 0, b == b'\r' || b == b'\n', "{b}");
        }
    }

    #[test]
    fn builtin_source_selects_the_scanner() {
        assert!(Pretokenizer::new(CL100K_PATTERN).unwrap().is_scanner());
        assert!(!Pretokenizer::new(r"\w+|\s+").unwrap().is_scanner());
        assert_eq!(Pretokenizer::new(r"\w+|\s+").unwrap().engine_name(), "compiled");
        assert_eq!(Pretokenizer::new(r"\w+(?=\s)|\s").unwrap().engine_name(), "regex");
    }

    #[test]
    fn other_spellings_of_a_scanner_pattern_select_it() {
        // tokenizer.json files may hold \r and \n as the characters themselves.
        let raw_newlines = LLAMA3_PATTERN.replace("\\r", "\r").replace("\\n", "\n");
        assert_eq!(Pretokenizer::new(&raw_newlines).unwrap().engine_name(), "scanner:llama3");
        let regrouped = QWEN2_PATTERN.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "'(?i:s)|'(?i:t)|(?i:'re|'ve|'m|'ll|'d)");
        assert_eq!(Pretokenizer::new(&regrouped).unwrap().engine_name(), "scanner:qwen2");
        let o200k_other = O200K_PATTERN.replace("\\p{N}{1,3}", "\\pN{1,3}");
        assert_eq!(Pretokenizer::new(&o200k_other).unwrap().engine_name(), "scanner:o200k");
        assert_eq!(Pretokenizer::new(&o200k_other).unwrap().source(), o200k_other);
    }

    #[test]
    fn a_pattern_the_engine_gives_up_on_is_an_error_with_its_position() {
        // Exponential backtracking: the look-ahead keeps the alternation in the engine.
        let p = Pretokenizer::new(r"(?:(?=a)a|a)*b|.").unwrap();
        assert_eq!(p.engine_name(), "regex");
        let text = format!("xé{}", "a".repeat(40));
        let mut seen = Vec::new();
        let err = p.for_each_piece(&text, |piece| seen.push(piece)).unwrap_err();
        assert_eq!(seen, vec!["x", "é"]);
        assert_eq!((err.offset, err.char_offset), (3, 2));
        assert!(err.to_string().contains("(?:(?=a)a|a)*b|."), "{err}");
        let whole = format!("<|x|>{text}");
        let err = err.within(&whole, &whole[5..]);
        assert_eq!((err.offset, err.char_offset), (8, 7));
    }

    #[test]
    fn unmatched_text_is_skipped_like_find_iter() {
        for source in [r"\d+", r"\d+(?!x)"] {
            let p = Pretokenizer::new(source).unwrap();
            assert_eq!(
                p.pieces("a1b22 c333x").unwrap(),
                Pretokenizer::regex_only(source).unwrap().pieces("a1b22 c333x").unwrap()
            );
        }
    }

    #[test]
    fn open_model_pattern_splits() {
        let llama3 = Pretokenizer::new(LLAMA3_PATTERN).unwrap();
        // Unlike cl100k_base's, a whitespace run ending the text stops after its last newline.
        assert_eq!(llama3.pieces("I'LL go 12345\n  ").unwrap(), vec!["I", "'LL", " go", " ", "123", "45", "\n", "  "]);
        let qwen2 = Pretokenizer::new(QWEN2_PATTERN).unwrap();
        assert_eq!(qwen2.pieces("x 123").unwrap(), vec!["x", " ", "1", "2", "3"]);
        let tekken = Pretokenizer::new(TEKKEN_PATTERN).unwrap();
        assert_eq!(tekken.pieces("HTTPServer's 42").unwrap(), vec!["HTTPServer", "'s", " ", "4", "2"]);
    }

    #[test]
    fn builtin_names_resolve_to_their_patterns() {
        for (name, source) in BUILTIN_PATTERNS {
            assert_eq!(resolve_pattern(name), source);
            assert_eq!(Pretokenizer::new(name).unwrap().source(), source);
        }
    }

    #[test]
    fn letters_are_the_regex_letters() {
        for c in ['a', 'Z', 'ǅ', 'ж', '日', 'ſ'] {
            assert!(is_letter(c), "{c:?}");
        }
        for c in ['1', ' ', '\n', '\u{301}', '!', '١'] {
            assert!(!is_letter(c), "{c:?}");
        }
    }

    /// Scanner speed on the files in FASTLLM_SCAN_BENCH (comma-separated), the
    /// windowed loops against the plain per-piece ones, interleaved, best thread CPU time:
    /// `FASTLLM_SCAN_BENCH=a.txt,b.txt cargo test --release scanner_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scanner_speed() {
        use crate::test_clock::thread_cpu_seconds as cpu_seconds;
        let Ok(files) = std::env::var("FASTLLM_SCAN_BENCH") else { return };
        let names = std::env::var("FASTLLM_SCAN_NAMES").unwrap_or("gpt2,cl100k,o200k,llama3,qwen2,tekken".to_string());
        for path in files.split(',') {
            let text = std::fs::read_to_string(path).unwrap();
            let t = Text::new(&text);
            for name in names.split(',') {
                let scanner = SCANNERS.iter().find(|s| s.name == name).expect("a scanner's name");
                let p = Pretokenizer::new(scanner.source).unwrap();
                let plain = scanner.piece_end;
                let n = p.pieces(&text).unwrap().len();
                let mut best = [f64::MAX; 2];
                for _ in 0..15 {
                    for (which, best) in best.iter_mut().enumerate() {
                        let mut count = 0;
                        let start = cpu_seconds();
                        if which == 0 {
                            p.for_each_piece(&text, |piece| count += piece.len() & 1).unwrap();
                        } else {
                            scan_pieces(&text, &t, plain, |start, end| count += (end - start) & 1);
                        }
                        *best = best.min(cpu_seconds() - start);
                        std::hint::black_box(count);
                    }
                }
                let path = path.rsplit('/').next().unwrap();
                println!(
                    "{name:7} {path:12} now {:6.0} MB/s {:5.2} ns/piece, plain loop {:6.0} MB/s {:5.2} ns/piece: x{:.2}",
                    text.len() as f64 / best[0] / 1e6,
                    best[0] * 1e9 / n as f64,
                    text.len() as f64 / best[1] / 1e6,
                    best[1] * 1e9 / n as f64,
                    best[1] / best[0],
                );
            }
        }
    }

    #[test]
    fn stretches_keep_unmatched_text_on_every_engine() {
        // HF's Split(Isolated) pieces; for_each_piece skips the gaps as find_iter does.
        let text = "hello, World 123!";
        for source in ["[a-z]+", r"[a-z]+(?=\W|$)"] {
            let p = Pretokenizer::new(source).unwrap();
            assert_eq!(p.pieces_keeping_gaps(text).unwrap(), vec!["hello", ", W", "orld", " 123!"], "{source}");
            assert_eq!(p.pieces(text).unwrap(), vec!["hello", "orld"], "{source}");
        }
        // Where next_start finds a space that starts no match, the gap goes on to the next match.
        let p = Pretokenizer::new(r"x+|\s+(?!\S)").unwrap();
        assert_eq!(p.engine_name(), "compiled");
        assert_eq!(p.pieces_keeping_gaps("a b  x y").unwrap(), vec!["a b", " ", " ", "x", " y"]);
        // An empty match cuts the text without adding a piece.
        let p = Pretokenizer::new("x*").unwrap();
        assert_eq!(p.pieces_keeping_gaps("axxb").unwrap(), vec!["a", "xx", "b"]);
        assert_eq!(p.pieces_keeping_gaps("").unwrap(), Vec::<&str>::new());
        // A scanner's pattern matches everything: its stretches are its pieces.
        let p = Pretokenizer::new("cl100k").unwrap();
        assert_eq!(p.pieces_keeping_gaps(text).unwrap(), p.pieces(text).unwrap());
    }

    #[test]
    fn stretches_on_the_dfas_equal_the_regex_engines() {
        for source in [r"\p{N}{1,3}", r"(?i)[a-z]+|\d+", r"x+|\s+(?!\S)", r"[a-z]+|\d{2}|\s+(?!\S)"] {
            let fast = Pretokenizer::new(source).unwrap();
            assert_eq!(fast.engine_name(), "compiled", "{source}");
            let slow = Pretokenizer::regex_only(source).unwrap();
            let samples = SAMPLES.iter().map(|s| s.to_string()).chain(random_samples());
            for text in samples {
                assert_eq!(fast.pieces_keeping_gaps(&text), slow.pieces_keeping_gaps(&text), "{source} on {text:?}");
            }
        }
    }

    #[test]
    fn stretches_raise_where_the_engine_gives_up() {
        let p = Pretokenizer::new(r"(?:(?=a)a|a)*b|x").unwrap();
        let text = format!("xé{}", "a".repeat(40));
        let mut seen = Vec::new();
        let err = p.for_each_stretch(&text, |s, e, m| seen.push((s, e, m))).unwrap_err();
        assert_eq!(seen, vec![(0, 1, true)]);
        assert_eq!((err.offset, err.char_offset), (1, 1));
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Pretokenizer::new("(unclosed").is_err());
    }
}
