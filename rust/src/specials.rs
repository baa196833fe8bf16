//! Finding special tokens in text. One matcher serves the encoder (which emits
//! allowed specials as their ids and rejects disallowed ones) and the trainer and
//! chunker (which cut the text at specials), so all of them agree on where a
//! special token is: leftmost first, and the longest of those starting there.

use std::borrow::Cow;
use std::fmt;

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

/// A set of distinct, non-empty special tokens and automata to find them.
#[derive(Debug, Clone)]
pub struct SpecialMatcher {
    tokens: Vec<String>,
    /// Leftmost-longest: the occurrences the text is cut at.
    leftmost: Option<AhoCorasick>,
    /// Standard semantics: every occurrence, overlapping ones included, so that
    /// a disallowed special hidden inside another one is still found.
    overlapping: Option<AhoCorasick>,
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
        Ok(Self { tokens, leftmost, overlapping })
    }

    /// No special tokens at all.
    pub fn none() -> Self {
        Self { tokens: Vec::new(), leftmost: None, overlapping: None }
    }

    /// The tokens, in the order given.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// A finder for the tokens that `keep` accepts (None when it accepts none).
    /// Keeping them all reuses this matcher's automaton; a subset builds its own.
    pub fn finder(&self, keep: impl Fn(&str) -> bool) -> Result<Option<SpecialFinder<'_>>, SpecialsError> {
        let tokens: Vec<&str> = self.tokens.iter().map(String::as_str).filter(|t| keep(t)).collect();
        if tokens.is_empty() {
            return Ok(None);
        }
        let ac = match &self.leftmost {
            Some(ac) if tokens.len() == self.tokens.len() => Cow::Borrowed(ac),
            _ => Cow::Owned(automaton(&tokens, MatchKind::LeftmostLongest)?.expect("tokens is not empty")),
        };
        Ok(Some(SpecialFinder { ac, tokens }))
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
    ac: Cow<'m, AhoCorasick>,
    tokens: Vec<&'m str>,
}

impl<'m> SpecialFinder<'m> {
    /// The non-overlapping occurrences in `text`, left to right.
    pub fn find_iter<'f, 't>(&'f self, text: &'t str) -> impl Iterator<Item = Found<'m>> + use<'f, 't, 'm> {
        self.ac.find_iter(text).map(|m| Found {
            start: m.start(),
            end: m.end(),
            token: self.tokens[m.pattern().as_usize()],
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
    fn first_occurrence_sees_tokens_inside_others() {
        let s = SpecialMatcher::new(&["<e>x", "e"]).unwrap();
        assert_eq!(s.first_occurrence("a<e>x", |t| t == "e"), Some("e"));
        assert_eq!(s.first_occurrence("a<e>x", |_| true), Some("e"));
        assert_eq!(s.first_occurrence("abc", |_| true), None);
        assert_eq!(SpecialMatcher::none().first_occurrence("abc", |_| true), None);
    }
}
