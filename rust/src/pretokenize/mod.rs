//! Pre-tokenization: splits text into the pieces that BPE merges within.
//!
//! Built-in patterns are selected by name (`gpt2`, `cl100k`, `o200k`, or the
//! tiktoken names) or by their exact regex source, and run on hand-written
//! scanners that are proven equal to the regex (unit tests here, property and
//! corpus tests in `tests/tokenizer (test_core_*.py)`). Any other string is compiled as a
//! custom regex with fancy-regex (lookarounds allowed).

mod classes;
mod scan_cl100k;
mod scan_gpt2;
mod scan_o200k;
mod text;

use fancy_regex::Regex;

use text::Text;

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

/// Whether `c` is in `\p{L}` as the scanners and the regex engine see it.
pub fn is_letter(c: char) -> bool {
    classes::table().class(c as u32) & classes::LETTER != 0
}

/// Error for a pattern that does not compile, or that gives up on a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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

/// How a pretokenizer finds its pieces.
#[derive(Debug, Clone)]
enum Engine {
    Gpt2,
    Cl100k,
    O200k,
    Regex(Regex),
}

/// A compiled split pattern. `Send + Sync`; share it across threads.
#[derive(Debug, Clone)]
pub struct Pretokenizer {
    source: String,
    engine: Engine,
}

impl Pretokenizer {
    /// A built-in pattern by name or source (on its scanner), else a custom regex.
    pub fn new(name_or_regex: &str) -> Result<Self, PatternError> {
        let source = resolve_pattern(name_or_regex);
        let engine = match source {
            GPT2_PATTERN => Engine::Gpt2,
            CL100K_PATTERN => Engine::Cl100k,
            O200K_PATTERN => Engine::O200k,
            _ => return Self::regex_only(source),
        };
        // Build the class tables now rather than on the first encode.
        classes::table();
        classes::contraction_letters();
        Ok(Self { source: source.to_string(), engine })
    }

    /// Compiles `name_or_regex` (built-in names resolved) and always splits
    /// with the regex engine: the reference the fast scanners are checked against.
    pub fn regex_only(name_or_regex: &str) -> Result<Self, PatternError> {
        let source = resolve_pattern(name_or_regex).to_string();
        let regex = Regex::new(&source).map_err(|e| PatternError(format!("invalid split pattern: {e}")))?;
        Ok(Self { source, engine: Engine::Regex(regex) })
    }

    /// Whether a hand-written scanner (not the regex engine) does the splitting.
    pub fn is_scanner(&self) -> bool {
        !matches!(self.engine, Engine::Regex(_))
    }

    /// The regex source this pretokenizer splits with.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Calls `f` on every piece of `text`, in order. The pieces concatenate to
    /// the part of `text` the pattern matches. A custom regex can give up on a text
    /// (fancy-regex's backtrack limit): that is an error, as in tiktoken, since the
    /// pieces so far would silently leave out the rest of the text.
    pub fn for_each_piece<'t>(&self, text: &'t str, mut f: impl FnMut(&'t str)) -> Result<(), PatternError> {
        let scan: fn(&Text<'_>, usize) -> usize = match &self.engine {
            Engine::Gpt2 => scan_gpt2::piece_end,
            Engine::Cl100k => scan_cl100k::piece_end,
            Engine::O200k => scan_o200k::piece_end,
            Engine::Regex(regex) => {
                for m in regex.find_iter(text) {
                    let m = m.map_err(|e| {
                        PatternError(format!("the split pattern failed on the text ({e}); simplify the regex"))
                    })?;
                    f(m.as_str());
                }
                return Ok(());
            }
        };
        let t = Text::new(text);
        let mut i = 0;
        while i < text.len() {
            let end = scan(&t, i);
            debug_assert!(end > i && text.is_char_boundary(end));
            // Every built-in pattern matches at every position; a zero-length
            // result would be a scanner bug, so never loop on it.
            let end = if end > i { end } else { i + t.at(i).map_or(1, |c| c.len) };
            f(&text[i..end]);
            i = end;
        }
        Ok(())
    }

    /// All pieces of `text` as a vector (convenience for tests and callers
    /// that need them materialized).
    pub fn pieces<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, PatternError> {
        let mut out = Vec::new();
        self.for_each_piece(text, |p| out.push(p))?;
        Ok(out)
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
    fn random_samples() -> Vec<String> {
        let alphabet: Vec<char> =
            "aZ ǅ日\u{301}\u{903}1١½ \t\n\r\u{a0}\u{3000}'sStTlLvVrReEmMdDſ!/.😀\u{200d}-_".chars().collect();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..3000)
            .map(|k| {
                (0..k % 40)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn scanners_equal_the_regex() {
        for name in ["gpt2", "cl100k", "o200k"] {
            let fast = Pretokenizer::new(name).unwrap();
            let slow = Pretokenizer::regex_only(name).unwrap();
            assert!(fast.is_scanner() && !slow.is_scanner());
            let samples = SAMPLES.iter().map(|s| s.to_string()).chain(random_samples());
            for text in samples {
                assert_eq!(fast.pieces(&text).unwrap(), slow.pieces(&text).unwrap(), "{name} on {text:?}");
            }
        }
    }

    #[test]
    fn builtin_source_selects_the_scanner() {
        assert!(Pretokenizer::new(CL100K_PATTERN).unwrap().is_scanner());
        assert!(!Pretokenizer::new(r"\w+|\s+").unwrap().is_scanner());
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

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Pretokenizer::new("(unclosed").is_err());
    }

    #[test]
    fn a_regex_that_gives_up_is_an_error_not_a_short_result() {
        // Seen while writing fuzz/'s oracles (py_tokenizer_api now checks custom patterns
        // against tiktoken): the pieces stopped where the backtrack limit was hit, and
        // encode returned [] for 41 characters.
        let p = Pretokenizer::new(r"(?:a|aa)+(?=b)|[\s\S]").unwrap();
        let err = p.pieces(&("a".repeat(40) + "c")).unwrap_err();
        assert!(err.to_string().contains("the split pattern failed on the text"), "{err}");
        assert_eq!(p.pieces("aab").unwrap(), vec!["aa", "b"]);
    }
}
