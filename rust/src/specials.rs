//! Finding special tokens in text. One matcher serves the encoder (which emits
//! allowed specials as their ids and rejects disallowed ones) and the trainer and
//! chunker (which cut the text at specials), so all of them agree on where a
//! special token is: leftmost first, and the longest of those starting there.

use std::fmt;
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, MatchKind};

/// Why a set of special tokens was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecialsError {
    Empty,
    Duplicate(String),
    Matcher(String),
}

impl fmt::Display for SpecialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "special tokens must not be empty"),
            Self::Duplicate(token) => write!(f, "special token {token:?} is given twice"),
            Self::Matcher(e) => write!(f, "could not build the special-token matcher: {e}"),
        }
    }
}

impl std::error::Error for SpecialsError {}

/// What was built for the last few subsets of a token list that calls asked
/// for (by the members' bit set), newest first. Building an automaton for a
/// subset took 15 us, several times the encoding of a line, and a program
/// that allows some specials passes the same set on every call.
pub(crate) struct SubsetMemo<T> {
    built: Mutex<Vec<(Vec<u64>, Arc<T>)>>,
}

/// Subsets remembered; more are built again when asked for.
const SUBSETS_REMEMBERED: usize = 8;

impl<T> SubsetMemo<T> {
    pub(crate) fn new() -> Self {
        Self { built: Mutex::new(Vec::new()) }
    }

    /// The value for the subset whose members `member` says, built by `build`
    /// (from the same flags) unless one of the last few calls asked for it.
    pub(crate) fn get_or_build<E>(
        &self,
        member: impl Iterator<Item = bool>,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        // The flags, 64 to a word, then how many there are.
        let mut bits = Vec::new();
        let mut n = 0;
        for (i, m) in member.enumerate() {
            if i % 64 == 0 {
                bits.push(0u64);
            }
            bits[i / 64] |= u64::from(m) << (i % 64);
            n = i + 1;
        }
        bits.push(n as u64);
        {
            let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(k) = built.iter().position(|(b, _)| *b == bits) {
                let entry = built.remove(k);
                let value = Arc::clone(&entry.1);
                built.insert(0, entry);
                return Ok(value);
            }
        }
        // Built unlocked: two threads asking at once may both build it.
        let value = Arc::new(build()?);
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built.insert(0, (bits, Arc::clone(&value)));
        built.truncate(SUBSETS_REMEMBERED);
        Ok(value)
    }
}

/// A new, empty memo: what a copy remembers is built again when asked for.
impl<T> Clone for SubsetMemo<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for SubsetMemo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.built.lock().map_or(0, |b| b.len());
        write!(f, "SubsetMemo({n} remembered)")
    }
}

/// A set of distinct, non-empty special tokens and automata to find them.
#[derive(Debug, Clone)]
pub struct SpecialMatcher {
    tokens: Vec<String>,
    /// Leftmost-longest: the occurrences the text is cut at.
    leftmost: Option<AhoCorasick>,
    /// Standard semantics: every occurrence, overlapping ones included, so that
    /// a disallowed special hidden inside another one is still found.
    overlapping: Option<AhoCorasick>,
    /// Leftmost-longest automata of subsets (see [`SpecialMatcher::finder`]).
    subsets: SubsetMemo<Subset>,
}

/// A leftmost-longest automaton over some of a matcher's tokens.
struct Subset {
    ac: AhoCorasick,
    /// Pattern index -> index into the matcher's tokens.
    token: Vec<usize>,
}

/// One occurrence of a special token: `text[start..end] == token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'m> {
    pub start: usize,
    pub end: usize,
    pub token: &'m str,
}

fn automaton<S: AsRef<[u8]>>(tokens: &[S], kind: MatchKind) -> Result<Option<AhoCorasick>, SpecialsError> {
    if tokens.is_empty() {
        return Ok(None);
    }
    AhoCorasick::builder().match_kind(kind).build(tokens).map(Some).map_err(|e| SpecialsError::Matcher(e.to_string()))
}

impl SpecialMatcher {
    /// Rejects empty and duplicate tokens. The order given is kept (it decides
    /// which of several overlapping occurrences ending together is reported first).
    pub fn new<S: AsRef<str>>(tokens: &[S]) -> Result<Self, SpecialsError> {
        let tokens: Vec<String> = tokens.iter().map(|t| t.as_ref().to_string()).collect();
        for (i, token) in tokens.iter().enumerate() {
            if token.is_empty() {
                return Err(SpecialsError::Empty);
            }
            if tokens[..i].contains(token) {
                return Err(SpecialsError::Duplicate(token.clone()));
            }
        }
        let leftmost = automaton(&tokens, MatchKind::LeftmostLongest)?;
        let overlapping = automaton(&tokens, MatchKind::Standard)?;
        Ok(Self { tokens, leftmost, overlapping, subsets: SubsetMemo::new() })
    }

    /// No special tokens at all.
    pub fn none() -> Self {
        Self { tokens: Vec::new(), leftmost: None, overlapping: None, subsets: SubsetMemo::new() }
    }

    /// The tokens, in the order given.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// A finder for the tokens that `keep` accepts (None when it accepts none).
    /// Keeping them all reuses this matcher's automaton; a subset has its own
    /// (leftmost-longest among the subset is not a filter of the full set's
    /// matches), remembered for the calls that ask for it again.
    pub fn finder(&self, keep: impl Fn(&str) -> bool) -> Result<Option<SpecialFinder<'_>>, SpecialsError> {
        let kept: Vec<bool> = self.tokens.iter().map(|t| keep(t)).collect();
        let n_kept = kept.iter().filter(|&&k| k).count();
        if n_kept == 0 {
            return Ok(None);
        }
        if n_kept == self.tokens.len() {
            let ac = self.leftmost.clone().expect("a matcher with tokens has its automaton");
            return Ok(Some(SpecialFinder { ac, subset: None, tokens: &self.tokens }));
        }
        let subset = self.subsets.get_or_build(kept.iter().copied(), || {
            let token: Vec<usize> = (0..kept.len()).filter(|&i| kept[i]).collect();
            let patterns: Vec<&str> = token.iter().map(|&i| self.tokens[i].as_str()).collect();
            let ac = automaton(&patterns, MatchKind::LeftmostLongest)?.expect("the subset is not empty");
            Ok(Subset { ac, token })
        })?;
        Ok(Some(SpecialFinder { ac: subset.ac.clone(), subset: Some(subset), tokens: &self.tokens }))
    }

    /// Calls `f` on every non-empty stretch of `text` between special tokens, in order.
    pub fn for_each_segment<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) {
        self.for_each_segment_range(text, |start, end| f(&text[start..end]));
    }

    /// [`SpecialMatcher::for_each_segment`], each stretch as `text[start..end]`.
    pub fn for_each_segment_range(&self, text: &str, mut f: impl FnMut(usize, usize)) {
        let Some(ac) = &self.leftmost else {
            if !text.is_empty() {
                f(0, text.len());
            }
            return;
        };
        let mut start = 0;
        for m in ac.find_iter(text) {
            if m.start() > start {
                f(start, m.start());
            }
            start = m.end();
        }
        if start < text.len() {
            f(start, text.len());
        }
    }

    /// The first occurrence (by end, overlapping ones included) of a token that
    /// `wanted` accepts.
    pub fn first_occurrence(&self, text: &str, wanted: impl Fn(&str) -> bool) -> Option<&str> {
        let ac = self.overlapping.as_ref()?;
        ac.find_overlapping_iter(text).map(|m| self.tokens[m.pattern().as_usize()].as_str()).find(|t| wanted(t))
    }

    /// Whether some occurrence of a special token in `buf` starts before `cut` and
    /// ends after it (so that cutting `buf` at `cut` would break it apart). `buf` may
    /// continue past its end: a token prefix that reaches the end of `buf` counts.
    pub fn spans(&self, buf: &[u8], cut: usize) -> bool {
        self.tokens.iter().any(|token| {
            let t = token.as_bytes();
            let first = cut.saturating_sub(t.len() - 1);
            (first..cut).any(|s| buf[s..].starts_with(t) || t.starts_with(&buf[s..]))
        })
    }
}

/// Finds some of a matcher's tokens, leftmost-longest.
pub struct SpecialFinder<'m> {
    /// A handle on the automaton (`AhoCorasick` is shared, not copied, by `clone`).
    ac: AhoCorasick,
    /// Which tokens the automaton's patterns are (None: all, in order).
    subset: Option<Arc<Subset>>,
    tokens: &'m [String],
}

impl<'m> SpecialFinder<'m> {
    /// The non-overlapping occurrences in `text`, left to right.
    pub fn find_iter<'f, 't>(&'f self, text: &'t str) -> impl Iterator<Item = Found<'m>> + use<'f, 't, 'm> {
        self.ac.find_iter(text).map(|m| {
            let p = m.pattern().as_usize();
            let k = self.subset.as_ref().map_or(p, |s| s.token[p]);
            Found { start: m.start(), end: m.end(), token: self.tokens[k].as_str() }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(tokens: &[&str], text: &str) -> Vec<String> {
        let s = SpecialMatcher::new(tokens).unwrap();
        let mut out = Vec::new();
        s.for_each_segment(text, |seg| out.push(seg.to_string()));
        out
    }

    #[test]
    fn cuts_at_specials_longest_first() {
        assert_eq!(segments(&["<a>", "<a>b"], "x<a>by<a>z"), vec!["x", "y", "z"]);
        assert_eq!(segments(&[], "abc"), vec!["abc"]);
        assert_eq!(segments(&["<s>"], "<s><s>"), Vec::<String>::new());
    }

    #[test]
    fn rejects_empty_and_duplicates() {
        assert_eq!(SpecialMatcher::new(&[""]).unwrap_err(), SpecialsError::Empty);
        assert_eq!(SpecialMatcher::new(&["x", "x"]).unwrap_err(), SpecialsError::Duplicate("x".into()));
    }

    #[test]
    fn detects_spanning_occurrences() {
        let s = SpecialMatcher::new(&["<eot>"]).unwrap();
        let buf = b"ab<eot>cd";
        assert!(s.spans(buf, 3));
        assert!(s.spans(buf, 6));
        assert!(!s.spans(buf, 2));
        assert!(!s.spans(buf, 7));
        assert!(s.spans(b"ab<eo", 3));
    }

    #[test]
    fn finders_match_leftmost_longest_within_their_subset() {
        let s = SpecialMatcher::new(&["<e>", "<e>x", "<p>"]).unwrap();
        let text = "a<e>x<p><e>";
        let all = s.finder(|_| true).unwrap().unwrap();
        let found: Vec<&str> = all.find_iter(text).map(|f| f.token).collect();
        assert_eq!(found, vec!["<e>x", "<p>", "<e>"]);
        let some = s.finder(|t| t != "<e>x").unwrap().unwrap();
        let found: Vec<(usize, &str)> = some.find_iter(text).map(|f| (f.start, f.token)).collect();
        assert_eq!(found, vec![(1, "<e>"), (5, "<p>"), (8, "<e>")]);
        assert!(s.finder(|_| false).unwrap().is_none());
    }

    #[test]
    fn subset_finders_are_remembered_and_stay_right_past_the_memo() {
        let tokens: Vec<String> = (0..70).map(|i| format!("<{i}>")).collect();
        let s = SpecialMatcher::new(&tokens).unwrap();
        let text: String = tokens.iter().map(|t| format!("x{t}")).collect();
        let found = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
            let finder = s.finder(keep).unwrap().unwrap();
            finder.find_iter(&text).map(|f| f.token.to_string()).collect()
        };
        // More subsets than are remembered, twice round, the last token (past the
        // first 64 bits of the key) in or out: each finds its own tokens only.
        for round in 0..2 {
            for k in 1..=SUBSETS_REMEMBERED + 3 {
                let wanted = |t: &str| t.len() % (k + 1) == round || t == "<69>";
                let expected: Vec<String> = tokens.iter().filter(|t| wanted(t)).cloned().collect();
                assert_eq!(found(&wanted), expected, "round {round}, subset {k}");
            }
        }
        // The same subset again is the automaton built before, not a new one.
        let one = |t: &str| t == "<3>" || t == "<68>";
        let first = s.finder(one).unwrap().unwrap();
        let again = s.finder(one).unwrap().unwrap();
        assert!(Arc::ptr_eq(first.subset.as_ref().unwrap(), again.subset.as_ref().unwrap()));
        let other = s.finder(|t| t == "<3>").unwrap().unwrap();
        assert!(!Arc::ptr_eq(first.subset.as_ref().unwrap(), other.subset.as_ref().unwrap()));
    }

    #[test]
    fn subset_memo_builds_each_subset_once_while_remembered() {
        let memo: SubsetMemo<usize> = SubsetMemo::new();
        let builds = std::cell::Cell::new(0);
        let get = |bits: &[bool]| {
            *memo
                .get_or_build(bits.iter().copied(), || {
                    builds.set(builds.get() + 1);
                    Ok::<_, ()>(bits.iter().filter(|&&b| b).count())
                })
                .unwrap()
        };
        assert_eq!(get(&[true, false, true]), 2);
        assert_eq!(get(&[true, false, true]), 2);
        assert_eq!(builds.get(), 1);
        // A longer list with the same leading bits is another subset.
        assert_eq!(get(&[true, false, true, false]), 2);
        assert_eq!(builds.get(), 2);
        for n in 0..SUBSETS_REMEMBERED {
            get(&vec![true; n + 5]);
        }
        // Pushed out by the newer ones: built again.
        assert_eq!(get(&[true, false, true]), 2);
        assert_eq!(builds.get(), 2 + SUBSETS_REMEMBERED + 1);
        let failed = memo.get_or_build([false].into_iter(), || Err("no"));
        assert_eq!(failed.unwrap_err(), "no");
    }

    #[test]
    fn first_occurrence_sees_tokens_inside_others() {
        let s = SpecialMatcher::new(&["<e>x", "e"]).unwrap();
        assert_eq!(s.first_occurrence("a<e>x", |t| t == "e"), Some("e"));
        assert_eq!(s.first_occurrence("a<e>x", |_| true), Some("e"));
        assert_eq!(s.first_occurrence("abc", |_| true), None);
        assert_eq!(SpecialMatcher::none().first_occurrence("abc", |_| true), None);
    }
}
