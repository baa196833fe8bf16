//! Custom split patterns compiled to DFAs instead of run by the backtracking engine.
//!
//! A split pattern is usually a top-level alternation `A1|A2|...|Ak` tried at each
//! position in order, the first alternative that matches giving the piece. When
//! every alternative is free of look-around, backreferences and atomic groups, the
//! match a backtracking engine finds at a position is exactly the leftmost-first
//! match of a DFA started there (each alternative is last in the pattern, so nothing
//! after it can make the engine backtrack into it). The one look-around these
//! patterns use, `\s+(?!\S)`, is matched by hand: a whitespace run that ends the
//! text, or else the run less its last character when that leaves something.
//!
//! So a pattern is cut into segments: runs of consecutive plain alternatives, each
//! one anchored DFA (leftmost-first, so alternative order is kept), and the
//! `\s+(?!\S)` rule between them. Text no alternative matches is skipped, as
//! tiktoken's `find_iter` skips it; an unanchored search for any alternative finds
//! where the next match can start, so a pattern that matches seldom (DeepSeek V3's
//! `\p{N}{1,3}` split) is not tried at every character. Patterns that can match the
//! empty string, or need anything else the DFA cannot do, are left to the regex engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use fancy_regex::{Assertion, Expr, LookAround};
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{meta, Anchored, Input, MatchKind};
use regex_syntax::hir::Hir;

use super::classes::SPACE;
use super::text::Text;

/// One top-level alternative of a split pattern, in a form that can be compared
/// (two spellings of the same regex give equal alternatives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alternative {
    /// No look-around: matched by a DFA.
    Plain(Hir),
    /// `\s+(?!\S)`.
    SpaceRunBeforeSpace,
}

/// The top-level alternatives of `source`, if every one is plain or `\s+(?!\S)`
/// and none can match the empty string; `None` if the pattern needs the regex engine.
pub fn alternatives(source: &str) -> Option<Vec<Alternative>> {
    let tree = Expr::parse_tree(source).ok()?;
    let mut top = Vec::new();
    flatten_alternation(&tree.expr, &mut top);
    let mut out = Vec::with_capacity(top.len());
    for expr in top {
        if is_space_run_before_space(expr) {
            out.push(Alternative::SpaceRunBeforeSpace);
            continue;
        }
        if !is_plain(expr) {
            return None;
        }
        let mut rendered = String::new();
        expr.to_str(&mut rendered, 1);
        let hir = regex_syntax::ParserBuilder::new().build().parse(&rendered).ok()?;
        // An empty match would need find_iter's rules for empty matches: leave it to the engine.
        if hir.properties().minimum_len().is_none_or(|n| n == 0) {
            return None;
        }
        out.push(Alternative::Plain(hir));
    }
    Some(out)
}

/// The alternatives of a top-level alternation (through groups and nested alternations).
fn flatten_alternation<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::Alt(children) => children.iter().for_each(|c| flatten_alternation(c, out)),
        Expr::Group(inner) => flatten_alternation(inner, out),
        other => out.push(other),
    }
}

/// `\s+(?!\S)`, greedy.
fn is_space_run_before_space(expr: &Expr) -> bool {
    let Expr::Concat(parts) = expr else { return false };
    let [Expr::Repeat { child, lo: 1, hi: usize::MAX, greedy: true }, Expr::LookAround(ahead, LookAround::LookAheadNeg)] =
        parts.as_slice()
    else {
        return false;
    };
    let is_delegate = |e: &Expr, want: &str| matches!(e, Expr::Delegate { inner, casei: false } if inner == want);
    is_delegate(child, "\\s") && is_delegate(ahead, "\\S")
}

/// Whether `expr` is something a DFA matches the way the backtracking engine does
/// (and that fancy-regex can write back out as regex syntax).
fn is_plain(expr: &Expr) -> bool {
    match expr {
        Expr::Empty | Expr::Any { .. } | Expr::Literal { .. } | Expr::Delegate { .. } => true,
        // fancy-regex cannot write these back out as regex syntax (its to_str panics).
        Expr::Assertion(Assertion::EndTextIgnoreTrailingNewlines { .. } | Assertion::StartLineOniguruma { .. }) => {
            false
        }
        Expr::Assertion(_) => true,
        Expr::Concat(children) | Expr::Alt(children) => children.iter().all(is_plain),
        Expr::Group(child) => is_plain(child),
        Expr::Repeat { child, .. } => is_plain(child),
        _ => false,
    }
}

/// An anchored leftmost-first DFA over some consecutive plain alternatives.
struct AnchoredDfa {
    dfa: dense::DFA<Vec<u32>>,
    /// Start state by the byte before the start (index 256: start of the text),
    /// for assertions such as `^` or `\b`.
    starts: Vec<StateID>,
}

/// Patterns whose NFA or DFA grows past these sizes are left to the regex engine
/// (the open models' patterns need about 150 KB and 3 MB; a large counted
/// repetition such as `\p{L}{1,200}` is refused at the NFA, before a long build).
const NFA_SIZE_LIMIT: usize = 1 << 20;
const DFA_SIZE_LIMIT: usize = 16 << 20;

impl AnchoredDfa {
    fn build(alternatives: &[Hir]) -> Option<Self> {
        let hir = Hir::alternation(alternatives.to_vec());
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().which_captures(WhichCaptures::None).nfa_size_limit(Some(NFA_SIZE_LIMIT)))
            .build_from_hir(&hir)
            .ok()?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .start_kind(StartKind::Anchored)
                    // Only match, dead and quit states are special, so the loop checks less.
                    .accelerate(false)
                    .specialize_start_states(false)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build_from_nfa(&nfa)
            .ok()?;
        let start = |look_behind: Option<u8>| {
            dfa.start_state(&start::Config::new().anchored(Anchored::Yes).look_behind(look_behind)).ok()
        };
        let mut starts = (0..=255u8).map(|b| start(Some(b))).collect::<Option<Vec<_>>>()?;
        starts.push(start(None)?);
        Some(Self { dfa, starts })
    }

    /// End of the leftmost-first match starting at byte `i`, if any.
    #[inline]
    fn match_end(&self, bytes: &[u8], i: usize) -> Option<usize> {
        let dfa = &self.dfa;
        let mut state = self.starts[if i == 0 { 256 } else { bytes[i - 1] as usize }];
        let mut end = None;
        for (at, &b) in bytes.iter().enumerate().skip(i) {
            state = dfa.next_state(state, b);
            if dfa.is_special_state(state) {
                // Match states come one byte late: this one says a match ends at `at`.
                if dfa.is_match_state(state) {
                    end = Some(at);
                } else if dfa.is_dead_state(state) {
                    return end;
                } else {
                    // A quit state: none is configured, so a match found so far stands.
                    return end;
                }
            }
        }
        if dfa.is_match_state(dfa.next_eoi_state(state)) {
            end = Some(bytes.len());
        }
        end
    }
}

enum Segment {
    Dfa(Box<AnchoredDfa>),
    SpaceRunBeforeSpace,
}

/// A split pattern as DFAs and the `\s+(?!\S)` rule, tried in the pattern's order.
pub struct CompiledPattern {
    segments: Vec<Segment>,
    /// Finds the next place any alternative may match (`\s+(?!\S)` stands in as `\s`).
    next_start: meta::Regex,
}

impl std::fmt::Debug for CompiledPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPattern").field("segments", &self.segments.len()).finish()
    }
}

impl CompiledPattern {
    /// Compiles `alternatives` (see [`alternatives`]); `None` if a DFA would be too large.
    pub fn build(alternatives: &[Alternative]) -> Option<Self> {
        let mut segments = Vec::new();
        let mut plain = Vec::new();
        let any_start = alternatives.iter().map(|a| match a {
            Alternative::Plain(hir) => hir.clone(),
            Alternative::SpaceRunBeforeSpace => regex_syntax::parse(r"\s").expect("a valid regex"),
        });
        let any_start = Hir::alternation(any_start.collect());
        let next_start = meta::Regex::builder()
            .configure(meta::Config::new().which_captures(WhichCaptures::Implicit))
            .build_from_hir(&any_start)
            .ok()?;
        for alternative in alternatives {
            match alternative {
                Alternative::Plain(hir) => plain.push(hir.clone()),
                Alternative::SpaceRunBeforeSpace => {
                    if !plain.is_empty() {
                        segments.push(Segment::Dfa(Box::new(AnchoredDfa::build(&std::mem::take(&mut plain))?)));
                    }
                    segments.push(Segment::SpaceRunBeforeSpace);
                }
            }
        }
        if !plain.is_empty() {
            segments.push(Segment::Dfa(Box::new(AnchoredDfa::build(&plain)?)));
        }
        Some(Self { segments, next_start })
    }

    /// The compiled form of `source`, shared by every pretokenizer of the same
    /// pattern (building the DFAs takes milliseconds); `None` if it needs the regex engine.
    pub fn cached(source: &str, alternatives: &[Alternative]) -> Option<Arc<Self>> {
        static CACHE: OnceLock<Mutex<HashMap<String, Option<Arc<CompiledPattern>>>>> = OnceLock::new();
        const MAX_ENTRIES: usize = 64;
        let cache = CACHE.get_or_init(Default::default);
        if let Some(found) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(source) {
            return found.clone();
        }
        let built = Self::build(alternatives).map(Arc::new);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(source.to_string(), built.clone());
        built
    }

    /// The first byte from `i` on where a match may start (a character
    /// boundary), or `None` if no match starts there or later.
    pub fn next_start(&self, bytes: &[u8], i: usize) -> Option<usize> {
        self.next_start.find(Input::new(bytes).range(i..)).map(|m| m.start())
    }

    /// End of the match starting at byte `i` (< text length), if any.
    #[inline]
    pub fn match_end(&self, t: &Text<'_>, bytes: &[u8], i: usize) -> Option<usize> {
        for segment in &self.segments {
            let end = match segment {
                Segment::Dfa(dfa) => dfa.match_end(bytes, i),
                Segment::SpaceRunBeforeSpace => space_run_before_space(t, i),
            };
            if end.is_some() {
                return end;
            }
        }
        None
    }
}

/// `\s+(?!\S)` at `i`: the whitespace run if it ends the text, else the run
/// without its last character, if that leaves any.
#[inline]
fn space_run_before_space(t: &Text<'_>, i: usize) -> Option<usize> {
    if t.at(i)?.class & SPACE == 0 {
        return None;
    }
    let run = t.space_run(i);
    if run.end == t.len() {
        Some(run.end)
    } else if run.last_start > i {
        Some(run.last_start)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(source: &str, text: &str) -> Vec<String> {
        let compiled = CompiledPattern::build(&alternatives(source).expect("compilable")).unwrap();
        let t = Text::new(text);
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            match compiled.match_end(&t, text.as_bytes(), i) {
                Some(end) => {
                    out.push(text[i..end].to_string());
                    i = end;
                }
                None => match compiled.next_start(text.as_bytes(), i + t.at(i).unwrap().len) {
                    Some(next) => i = next,
                    None => break,
                },
            }
        }
        out
    }

    #[test]
    fn recognises_the_whitespace_rule_and_plain_alternatives() {
        let alts = alternatives(r"\p{L}+|\s+(?!\S)|\s+").unwrap();
        assert!(matches!(
            alts.as_slice(),
            [Alternative::Plain(_), Alternative::SpaceRunBeforeSpace, Alternative::Plain(_)]
        ));
        assert_eq!(pieces(r"\p{L}+|\s+(?!\S)|\s+", "ab   cd  "), vec!["ab", "  ", " ", "cd", "  "]);
    }

    #[test]
    fn leaves_other_lookaround_and_empty_matches_to_the_engine() {
        for source in [r"a(?=b)", r"\s++$", r"(a)\1", r"a*", r"x|", r"(?>ab)", "\\s+(?!\\s)", r"\s+\Z|\S+"] {
            assert!(alternatives(source).is_none(), "{source}");
        }
    }

    #[test]
    fn spellings_of_one_regex_are_equal() {
        let escaped = alternatives(r"[^\r\n\p{L}]?\p{L}+|\p{N}{1,3}|\s+(?!\S)").unwrap();
        let raw = alternatives("[^\n\r\\pL]?(?:\\p{L})+|(?:\\p{N}){1,3}|\\s+(?!\\S)").unwrap();
        assert_eq!(escaped, raw);
        assert_ne!(escaped, alternatives(r"[^\r\n\p{L}]?\p{L}+|\p{N}{1,2}|\s+(?!\S)").unwrap());
    }

    #[test]
    fn alternatives_keep_their_order() {
        // Leftmost-first: "ab" before "abc" at the same start.
        assert_eq!(pieces("ab|abc|c", "abc"), vec!["ab", "c"]);
        assert_eq!(pieces("abc|ab|c", "abc"), vec!["abc"]);
    }

    #[test]
    fn skips_what_nothing_matches() {
        assert_eq!(pieces(r"\d+", "a1b22 c"), vec!["1", "22"]);
    }

    #[test]
    fn assertions_see_the_text_around_the_start() {
        assert_eq!(pieces(r"^a|a$|b", "aab a"), vec!["a", "b", "a"]);
        assert_eq!(pieces(r"(?m:^a)|b", "ab\nab"), vec!["a", "b", "a", "b"]);
        // Unicode word boundaries are beyond a DFA.
        assert!(CompiledPattern::build(&alternatives(r"\ba").unwrap()).is_none());
    }
}
