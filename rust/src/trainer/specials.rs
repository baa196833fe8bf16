//! Special tokens in training text: the text is cut at them and they are not counted.

use aho_corasick::{AhoCorasick, MatchKind};

use super::TrainError;

/// Finds special tokens in text, leftmost first and, among matches starting at the
/// same position, longest first.
#[derive(Debug, Clone)]
pub struct SpecialSplitter {
    tokens: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl SpecialSplitter {
    /// Rejects empty and duplicate special tokens.
    pub fn new(tokens: &[String]) -> Result<Self, TrainError> {
        for (i, token) in tokens.iter().enumerate() {
            if token.is_empty() {
                return Err(TrainError::InvalidSpecialToken("special tokens must not be empty".into()));
            }
            if tokens[..i].contains(token) {
                return Err(TrainError::InvalidSpecialToken(format!("special token {token:?} is given twice")));
            }
        }
        let matcher = if tokens.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(tokens)
                .map_err(|e| TrainError::InvalidSpecialToken(e.to_string()))?;
            Some(ac)
        };
        Ok(Self { tokens: tokens.to_vec(), matcher })
    }

    /// Calls `f` on every non-empty stretch of `text` between special tokens, in order.
    pub fn for_each_segment<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) {
        let Some(matcher) = &self.matcher else {
            if !text.is_empty() {
                f(text);
            }
            return;
        };
        let mut start = 0;
        for m in matcher.find_iter(text) {
            if m.start() > start {
                f(&text[start..m.start()]);
            }
            start = m.end();
        }
        if start < text.len() {
            f(&text[start..]);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(tokens: &[&str], text: &str) -> Vec<String> {
        let tokens: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
        let s = SpecialSplitter::new(&tokens).unwrap();
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
        assert!(SpecialSplitter::new(&["".to_string()]).is_err());
        assert!(SpecialSplitter::new(&["x".to_string(), "x".to_string()]).is_err());
    }

    #[test]
    fn detects_spanning_occurrences() {
        let s = SpecialSplitter::new(&["<eot>".to_string()]).unwrap();
        let buf = b"ab<eot>cd";
        assert!(s.spans(buf, 3));
        assert!(s.spans(buf, 6));
        assert!(!s.spans(buf, 2));
        assert!(!s.spans(buf, 7));
        assert!(s.spans(b"ab<eo", 3));
    }
}
