//! Added tokens as HF `tokenizers` finds them in text (its `AddedVocabulary`).
//!
//! Every added token is matched before pre-tokenization: the non-special ones
//! always, the special ones when the encode call allows them (fastllm keeps
//! tiktoken's special-token policy; `allowed_special="all"` is HF's behaviour).
//! Two passes, as in `tokenizers`: tokens with `normalized=false` are found in
//! the raw text; the text between them is normalized, and tokens with
//! `normalized=true` are found in that (by their normalized content). Each pass
//! matches leftmost-longest over all its tokens, then applies the token's flags:
//! `single_word` (skip a match with a word character right before or after),
//! `lstrip` / `rstrip` (the token swallows the whitespace before / after it).
//! A special token the call does not allow is matched and skipped, as with
//! `tokenizers`' `encode_special_tokens`: its text stays text, and no other
//! token of that pass is found inside it.

use std::collections::HashSet;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use fancy_regex::Regex;
use rustc_hash::FxHashMap;

use crate::bpe::Rank;
use crate::pretokenize::pipeline::Normalizer;

/// One added token and its matching flags (HF's `AddedToken`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub id: Rank,
    /// Special tokens follow the encode call's special-token policy; others are always matched.
    pub special: bool,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    /// Matched in the normalized text (by its normalized content) rather than the raw text.
    pub normalized: bool,
}

impl AddedToken {
    /// A special token with no flags, as fastllm's own special tokens behave.
    pub fn special(content: &str, id: Rank) -> Self {
        Self {
            content: content.to_string(),
            id,
            special: true,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
        }
    }
}

/// What the encoder does with a stretch of text: emit an added token, or
/// pre-tokenize and merge the (normalized) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Token(Rank),
    Piece(&'a str),
}

/// Which special tokens an encode call matches (the non-special ones always are).
#[derive(Debug, Clone, Copy)]
pub enum Allowed<'a> {
    None,
    All,
    Some(&'a HashSet<&'a str>),
}

impl Allowed<'_> {
    fn admits(&self, token: &AddedToken) -> bool {
        match self {
            Allowed::All => true,
            Allowed::None => !token.special,
            Allowed::Some(set) => !token.special || set.contains(token.content.as_str()),
        }
    }
}

/// Why a set of added tokens was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedTokensError(pub String);

impl fmt::Display for AddedTokensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for AddedTokensError {}

/// A leftmost-longest automaton over some tokens' patterns.
#[derive(Debug, Clone)]
struct Trie {
    ac: AhoCorasick,
    /// Pattern index -> index into `AddedVocab::tokens`.
    token: Vec<usize>,
    /// Whether any of them is not special: if not, a call that allows no special
    /// token finds nothing to emit in this pass and skips the search.
    any_ordinary: bool,
}

/// The added tokens of a pipeline and the automata that find them.
#[derive(Debug, Clone)]
pub struct AddedVocab {
    tokens: Vec<AddedToken>,
    /// What each token is searched as: its content, normalized when it is `normalized`.
    patterns: Vec<String>,
    /// The automata of the two passes: tokens found in the raw text, and in the normalized text.
    raw: Option<Trie>,
    normalized: Option<Trie>,
    by_id: FxHashMap<Rank, usize>,
    word: Regex,
}

impl AddedVocab {
    /// No added tokens at all.
    pub fn empty() -> Self {
        Self::new(Vec::new(), Normalizer::None).expect("no tokens is valid")
    }

    /// Refuses empty contents and two tokens searched as the same string.
    pub fn new(tokens: Vec<AddedToken>, normalizer: Normalizer) -> Result<Self, AddedTokensError> {
        let mut patterns = Vec::with_capacity(tokens.len());
        let mut seen = HashSet::new();
        for token in &tokens {
            if token.content.is_empty() {
                return Err(AddedTokensError(format!("added token {} has empty content", token.id)));
            }
            let pattern =
                if token.normalized { normalizer.apply(&token.content).into_owned() } else { token.content.clone() };
            if !seen.insert((token.normalized, pattern.clone())) {
                return Err(AddedTokensError(format!(
                    "added token {:?} (id {}) is matched as the same text as another added token",
                    token.content, token.id
                )));
            }
            patterns.push(pattern);
        }
        let word = Regex::new(r"\w").expect("valid regex");
        // The first token with an id names it (only non-special ones can share one with a mergeable token).
        let mut by_id = FxHashMap::default();
        for (i, token) in tokens.iter().enumerate() {
            by_id.entry(token.id).or_insert(i);
        }
        let mut vocab = Self { tokens, patterns, raw: None, normalized: None, by_id, word };
        vocab.raw = vocab.trie(false)?;
        vocab.normalized = vocab.trie(true)?;
        Ok(vocab)
    }

    pub fn tokens(&self) -> &[AddedToken] {
        &self.tokens
    }

    /// The largest id of an added token.
    pub fn max_id(&self) -> Option<Rank> {
        self.tokens.iter().map(|t| t.id).max()
    }

    /// The text the added token `id` decodes to, if there is one: its content,
    /// normalized when it is matched normalized (as `tokenizers` decodes it).
    pub fn text_of(&self, id: Rank) -> Option<&str> {
        self.by_id.get(&id).map(|&i| self.patterns[i].as_str())
    }

    /// The automaton of the tokens matched in normalized text (`normalized`) or raw text.
    fn trie(&self, normalized: bool) -> Result<Option<Trie>, AddedTokensError> {
        let token: Vec<usize> = (0..self.tokens.len()).filter(|&i| self.tokens[i].normalized == normalized).collect();
        if token.is_empty() {
            return Ok(None);
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(token.iter().map(|&i| &self.patterns[i]))
            .map_err(|e| AddedTokensError(format!("could not build the added-token matcher: {e}")))?;
        let any_ordinary = token.iter().any(|&i| !self.tokens[i].special);
        Ok(Some(Trie { ac, token, any_ordinary }))
    }

    /// Calls `f` on the added tokens of `text` and the normalized text between them.
    pub fn for_each_segment(
        &self,
        text: &str,
        normalizer: Normalizer,
        allowed: Allowed<'_>,
        mut f: impl FnMut(Segment<'_>),
    ) {
        self.for_each_segment_from(text, normalizer, allowed, |segment, _| f(segment));
    }

    /// [`Self::for_each_segment`], also telling `f` the byte offset in `text` of
    /// the text a piece was normalized from (so errors can name a place in `text`).
    pub fn for_each_segment_from(
        &self,
        text: &str,
        normalizer: Normalizer,
        allowed: Allowed<'_>,
        mut f: impl FnMut(Segment<'_>, usize),
    ) {
        let base = text.as_ptr() as usize;
        self.find(text, self.raw.as_ref(), allowed, &mut |segment| match segment {
            Segment::Token(id) => f(Segment::Token(id), 0),
            Segment::Piece(raw) => {
                let from = raw.as_ptr() as usize - base;
                let normalized = normalizer.apply(raw);
                self.find(&normalized, self.normalized.as_ref(), allowed, &mut |segment| f(segment, from));
            }
        });
    }

    /// One pass: the tokens `trie` finds in `text` (with their flags applied) and
    /// the non-empty text around them, in order. Mirrors `find_matches` of
    /// `tokenizers`' `AddedVocabulary`, including its handling of stripped
    /// whitespace a later match starts in.
    fn find(&self, text: &str, trie: Option<&Trie>, allowed: Allowed<'_>, f: &mut dyn FnMut(Segment<'_>)) {
        if text.is_empty() {
            return;
        }
        let Some(trie) = trie.filter(|t| t.any_ordinary || !matches!(allowed, Allowed::None)) else {
            return f(Segment::Piece(text));
        };
        let mut done = 0;
        for m in trie.ac.find_iter(text) {
            let token = &self.tokens[trie.token[m.pattern().as_usize()]];
            if !allowed.admits(token) {
                continue; // its text stays in the piece around it
            }
            let (mut start, mut stop) = (m.start(), m.end());
            if token.single_word {
                let word_before = text[..start].chars().next_back().is_some_and(|c| self.is_word(c));
                let word_after = text[stop..].chars().next().is_some_and(|c| self.is_word(c));
                if word_before || word_after {
                    continue;
                }
            }
            if token.lstrip {
                let spaces_start = text[..start].trim_end_matches(char::is_whitespace).len();
                start = spaces_start.max(done);
            }
            if token.rstrip {
                stop += text[stop..].len() - text[stop..].trim_start_matches(char::is_whitespace).len();
            }
            if start >= stop {
                // The match lies in whitespace an earlier match already swallowed:
                // `tokenizers` drops such an empty split (and panics where the
                // range comes out reversed, which fastllm drops alike).
                continue;
            }
            if done < start {
                f(Segment::Piece(&text[done..start]));
            }
            f(Segment::Token(token.id));
            done = stop;
        }
        if done < text.len() {
            f(Segment::Piece(&text[done..]));
        }
    }

    /// `\w` of the `regex` crate, which `tokenizers` tests `single_word` with.
    fn is_word(&self, c: char) -> bool {
        let mut buf = [0u8; 4];
        self.word.is_match(c.encode_utf8(&mut buf)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(content: &str, id: Rank) -> AddedToken {
        AddedToken { special: false, ..AddedToken::special(content, id) }
    }

    fn segments(vocab: &AddedVocab, text: &str, allowed: Allowed<'_>) -> Vec<String> {
        let mut out = Vec::new();
        vocab.for_each_segment(text, Normalizer::Nfc, allowed, |s| match s {
            Segment::Token(id) => out.push(format!("#{id}")),
            Segment::Piece(p) => out.push(p.to_string()),
        });
        out
    }

    #[test]
    fn specials_follow_the_policy_others_always_match() {
        let vocab = AddedVocab::new(vec![AddedToken::special("<s>", 10), token("<t>", 11)], Normalizer::None).unwrap();
        assert_eq!(segments(&vocab, "a<s>b<t>c", Allowed::None), vec!["a<s>b", "#11", "c"]);
        assert_eq!(segments(&vocab, "a<s>b<t>c", Allowed::All), vec!["a", "#10", "b", "#11", "c"]);
        let set: HashSet<&str> = ["<s>"].into();
        assert_eq!(segments(&vocab, "<s><t>", Allowed::Some(&set)), vec!["#10", "#11"]);
    }

    #[test]
    fn a_special_not_allowed_keeps_its_text_whole() {
        // tokenizers' encode_special_tokens: "<ab>" is found and skipped, so "b>"
        // inside it is not; a token of the normalized pass still is.
        let raw_inside = token("b>", 11);
        let normalized_inside = AddedToken { normalized: true, ..token("ab", 12) };
        let vocab =
            AddedVocab::new(vec![AddedToken::special("<ab>", 10), raw_inside, normalized_inside], Normalizer::None)
                .unwrap();
        assert_eq!(segments(&vocab, "x<ab>y b>", Allowed::None), vec!["x<", "#12", ">y ", "#11"]);
        assert_eq!(segments(&vocab, "x<ab>y b>", Allowed::All), vec!["x", "#10", "y ", "#11"]);
        let none: HashSet<&str> = HashSet::new();
        assert_eq!(segments(&vocab, "x<ab>y b>", Allowed::Some(&none)), vec!["x<", "#12", ">y ", "#11"]);
    }

    #[test]
    fn flags_strip_and_single_word() {
        let mask = AddedToken { lstrip: true, rstrip: true, ..token("<mask>", 5) };
        let word = AddedToken { single_word: true, ..token("ab", 6) };
        let vocab = AddedVocab::new(vec![mask, word], Normalizer::None).unwrap();
        assert_eq!(segments(&vocab, "x  <mask>\t y", Allowed::None), vec!["x", "#5", "y"]);
        assert_eq!(segments(&vocab, "ab cab ab_ ab", Allowed::None), vec!["#6", " cab ab_ ", "#6"]);
    }

    #[test]
    fn a_match_inside_swallowed_whitespace_is_dropped() {
        // The first "\n\n" swallows every newline after it; the later matches
        // (at 2 and 4) start where it stopped and give no token.
        let both = AddedToken { lstrip: true, rstrip: true, ..token("\n\n", 5) };
        let vocab = AddedVocab::new(vec![both], Normalizer::None).unwrap();
        assert_eq!(segments(&vocab, "\n\n\n\n\n\nz", Allowed::None), vec!["#5", "z"]);
        // Without lstrip the later matches keep their own start: a token each.
        let right = AddedToken { rstrip: true, ..token("\n\n", 5) };
        let vocab = AddedVocab::new(vec![right], Normalizer::None).unwrap();
        assert_eq!(segments(&vocab, "\n\n\n\n\n\nz", Allowed::None), vec!["#5", "#5", "#5", "z"]);
        // A space token inside what "x" swallowed ends before it starts.
        let x = AddedToken { rstrip: true, ..token("x", 6) };
        let space = AddedToken { lstrip: true, ..token(" ", 7) };
        let vocab = AddedVocab::new(vec![x, space], Normalizer::None).unwrap();
        assert_eq!(segments(&vocab, "x   y", Allowed::None), vec!["#6", "y"]);
    }

    #[test]
    fn normalized_tokens_match_after_normalization() {
        let cafe = AddedToken { normalized: true, ..token("caf\u{e9}", 7) };
        let vocab = AddedVocab::new(vec![cafe], Normalizer::Nfc).unwrap();
        assert_eq!(segments(&vocab, "a cafe\u{301}!", Allowed::None), vec!["a ", "#7", "!"]);
    }

    #[test]
    fn raw_tokens_are_found_before_normalized_ones() {
        let raw = token("ab", 1);
        let normalized = AddedToken { normalized: true, ..token("xa", 2) };
        let vocab = AddedVocab::new(vec![raw, normalized], Normalizer::None).unwrap();
        assert_eq!(segments(&vocab, "xab", Allowed::None), vec!["x", "#1"]);
    }

    #[test]
    fn bad_tokens_are_errors() {
        assert!(AddedVocab::new(vec![token("", 1)], Normalizer::None).is_err());
        assert!(AddedVocab::new(vec![token("a", 1), token("a", 2)], Normalizer::None).is_err());
    }
}
