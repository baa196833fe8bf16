//! Regex pre-tokenization: splits text into the pieces that BPE merges within.
//!
//! Built-in patterns are selected by name (`gpt2`, `cl100k`, `o200k`); any other
//! string is compiled as a custom regex (lookarounds allowed).

use fancy_regex::Regex;

/// tiktoken's r50k/GPT-2 split pattern.
pub const GPT2_PATTERN: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";
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

/// Error for a pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid split pattern: {}", self.0)
    }
}

impl std::error::Error for PatternError {}

/// Resolves a built-in pattern name to its regex source; other strings pass through.
pub fn resolve_pattern(name_or_regex: &str) -> &str {
    match name_or_regex {
        "gpt2" | "r50k" | "r50k_base" => GPT2_PATTERN,
        "cl100k" | "cl100k_base" => CL100K_PATTERN,
        "o200k" | "o200k_base" => O200K_PATTERN,
        other => other,
    }
}

/// A compiled split pattern.
#[derive(Debug, Clone)]
pub struct Pretokenizer {
    source: String,
    regex: Regex,
}

impl Pretokenizer {
    /// Compiles a built-in pattern by name or a custom regex.
    pub fn new(name_or_regex: &str) -> Result<Self, PatternError> {
        let source = resolve_pattern(name_or_regex).to_string();
        let regex = Regex::new(&source).map_err(|e| PatternError(e.to_string()))?;
        Ok(Self { source, regex })
    }

    /// Compiles `name_or_regex` (built-in names resolved) and always splits
    /// with the regex engine: the reference the fast scanners are checked against.
    pub fn regex_only(name_or_regex: &str) -> Result<Self, PatternError> {
        Self::new(name_or_regex)
    }

    /// The regex source this pretokenizer splits with.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Calls `f` on every piece of `text`, in order. The pieces concatenate to
    /// the part of `text` the pattern matches.
    pub fn for_each_piece<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) {
        for m in self.regex.find_iter(text) {
            match m {
                Ok(m) => f(m.as_str()),
                // Backtrack limit exceeded: keep the rest of the text as one piece
                // rather than dropping it.
                Err(_) => break,
            }
        }
    }

    /// All pieces of `text` as a vector (convenience for tests and callers
    /// that need them materialized).
    pub fn pieces<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        self.for_each_piece(text, |p| out.push(p));
        out
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(p.pieces("hello world  12345"), vec!["hello", " world", " ", " ", "123", "45"]);
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Pretokenizer::new("(unclosed").is_err());
    }
}
