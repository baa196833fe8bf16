//! BPE of a piece made of a few runs of one repeated byte each: a rule of
//! `=` or `-` under a heading with its line end, a run of spaces, a megabyte
//! of `a`. Merged on the runs rather than the bytes, in steps that each do
//! what BPE does to a whole run, or one merge across two runs.
//!
//! Where the pair of two parts of token `t` has the lowest rank `r` of all
//! pairs (the leftmost such run on a tie), BPE merges the pairs of a run of
//! `c` copies of `t` from the left, one after the other: `c / 2` copies of
//! `tt` and, for odd `c`, one `t` left at the end. That holds while nothing
//! the pairing puts next to a `tt` before it is done merges below `r` (the
//! ranks of `tt` with `t`, with `tt`, and with the run before it); otherwise
//! BPE would take that merge in the middle of the run. Those ranks are checked, and where
//! one is lower the piece goes back to the general merge, which then takes
//! it from the start. A merge across two runs is one merge, as BPE makes it.
//! A run of n bytes takes about log n steps instead of n merges.

use super::vocab::{Rank, TokenMap};

/// Pieces at least this long are tried here (shorter ones gain little).
pub const RUNS_FROM: usize = 16;
/// The most runs a piece may start with. Each step looks at every run, so a
/// piece of many short runs costs more here than in the general merge:
/// pieces made to be that (distinct words of 4-8 doubled letters) were
/// encoded at 0.6x with 8 runs allowed, 0.9-0.95x with 4, while 4 keep most
/// of the rules and spaces of real text (613 of 710 such pieces in English).
/// Text that is not runs (a word of two-byte letters) is turned away after
/// a few bytes.
const MAX_RUNS: usize = 4;
/// The most runs merging may make (a merge across two runs adds one).
const CAPACITY: usize = 32;
/// The most steps before the general merge takes over.
const MAX_STEPS: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    token: Rank,
    count: usize,
}

/// The runs of parts of one piece, neighbours always of different tokens.
struct Runs {
    runs: [Run; CAPACITY],
    len: usize,
}

impl Runs {
    /// The runs of bytes of `piece`; None where it is not a few runs or a byte is no token.
    fn of(piece: &[u8], ranks: &TokenMap) -> Option<Self> {
        // Found in a small array first: most long pieces that come here (words)
        // are turned away, and need not set up room for the merging's runs.
        let mut found = [Run { token: Rank::MAX, count: 0 }; MAX_RUNS];
        let (mut len, mut i) = (0, 0);
        while i < piece.len() {
            let b = piece[i];
            let count = piece[i..].iter().position(|&x| x != b).unwrap_or(piece.len() - i);
            let token = ranks.byte(b);
            if len == MAX_RUNS || token == Rank::MAX {
                return None;
            }
            found[len] = Run { token, count };
            len += 1;
            i += count;
        }
        let mut this = Self { runs: [Run { token: Rank::MAX, count: 0 }; CAPACITY], len };
        this.runs[..len].copy_from_slice(&found[..len]);
        Some(this)
    }

    /// Puts `run` before run `at`; false when full.
    fn insert(&mut self, at: usize, run: Run) -> bool {
        if self.len == CAPACITY {
            return false;
        }
        self.runs.copy_within(at..self.len, at + 1);
        self.runs[at] = run;
        self.len += 1;
        true
    }

    /// Drops empty runs and joins neighbours of one token.
    fn tidy(&mut self) {
        let mut kept = 0;
        for k in 0..self.len {
            let run = self.runs[k];
            if run.count == 0 {
                continue;
            }
            if kept > 0 && self.runs[kept - 1].token == run.token {
                self.runs[kept - 1].count += run.count;
            } else {
                self.runs[kept] = run;
                kept += 1;
            }
        }
        self.len = kept;
    }
}

/// Appends the tokens of `piece` (not a token itself) and returns true; or
/// returns false, with nothing appended, when it is not a few runs or when
/// BPE's order of merges there is not the one above.
pub fn merge_runs(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) -> bool {
    let Some(mut runs) = Runs::of(piece, ranks) else {
        return false;
    };
    for _ in 0..MAX_STEPS {
        // The lowest-ranked pair, the leftmost on a tie: the pairs inside run
        // k come before the pair of runs k and k + 1.
        let (mut best, mut at, mut inside) = (Rank::MAX, 0, false);
        for k in 0..runs.len {
            let run = runs.runs[k];
            if run.count >= 2 {
                let r = ranks.merge(run.token, run.token);
                if r < best {
                    (best, at, inside) = (r, k, true);
                }
            }
            if k + 1 < runs.len {
                let r = ranks.merge(run.token, runs.runs[k + 1].token);
                if r < best {
                    (best, at, inside) = (r, k, false);
                }
            }
        }
        if best == Rank::MAX {
            for run in &runs.runs[..runs.len] {
                out.extend(std::iter::repeat_n(run.token, run.count));
            }
            return true;
        }
        if inside {
            let Run { token: t, count: c } = runs.runs[at];
            // Every pair the pairing makes before it is done must rank above
            // it (ranks are one per pair, so none equals `best`): the first
            // `tt` with the run before, a `tt` with the `t` after it, two `tt`.
            // (The last `tt` meets the run after only when the pairing is done.)
            let above = |left: Rank, right: Rank| ranks.merge(left, right) > best;
            let safe = (at == 0 || above(runs.runs[at - 1].token, best))
                && (c < 3 || above(best, t))
                && (c < 4 || above(best, best));
            if !safe {
                return false;
            }
            runs.runs[at] = Run { token: best, count: c / 2 };
            if c % 2 == 1 && !runs.insert(at + 1, Run { token: t, count: 1 }) {
                return false;
            }
        } else {
            // One merge across the two runs: a part of each becomes one part.
            runs.runs[at].count -= 1;
            runs.runs[at + 1].count -= 1;
            if !runs.insert(at + 1, Run { token: best, count: 1 }) {
                return false;
            }
        }
        runs.tidy();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::super::merge::tests::{real_vocab, reference};
    use super::*;

    /// A piece of runs: `(byte, count)` each.
    fn runs_piece(runs: &[(u8, usize)]) -> Vec<u8> {
        runs.iter().flat_map(|&(b, n)| std::iter::repeat_n(b, n)).collect()
    }

    #[test]
    fn runs_equal_reference_on_random_vocabularies() {
        // Tokens of runs in random rank order, so that `aaa` may rank below
        // `aa` and the checks have to send pieces back; the pieces are runs.
        let mut rng = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng() as usize;
        let (mut taken, mut refused) = (0, 0);
        for round in 0..400 {
            let alphabet = &b"ab="[..1 + round % 3];
            let mut tokens: Vec<Vec<u8>> = Vec::new();
            for _ in 0..(3 + next() % 30) {
                let runs: Vec<(u8, usize)> =
                    (0..1 + next() % 3).map(|_| (alphabet[next() % alphabet.len()], 1 + next() % 6)).collect();
                let t = runs_piece(&runs);
                if t.len() >= 2 && !tokens.contains(&t) {
                    tokens.push(t);
                }
            }
            let r = TokenMap::after_bytes(&tokens.iter().map(Vec::as_slice).collect::<Vec<_>>());
            for _ in 0..20 {
                let runs: Vec<(u8, usize)> = (0..1 + next() % 5)
                    .map(|_| (alphabet[next() % alphabet.len()], 1 + next() % [3, 20, 200][next() % 3]))
                    .collect();
                let piece = runs_piece(&runs);
                if piece.len() < 2 || r.get(&piece).is_some() {
                    continue;
                }
                let mut out = Vec::new();
                if merge_runs(&piece, &r, &mut out) {
                    taken += 1;
                    assert_eq!(out, reference(&piece, &r), "round {round}, {tokens:?}, {runs:?}");
                } else {
                    refused += 1;
                    assert!(out.is_empty());
                }
            }
        }
        // Both ways are exercised.
        assert!(taken > 1000 && refused > 100, "taken {taken}, refused {refused}");
    }

    #[test]
    fn runs_equal_reference_on_real_vocabularies() {
        for file in ["gpt2.tiktoken", "cl100k_base.tiktoken", "o200k_base.tiktoken"] {
            let Some(r) = real_vocab(file) else {
                eprintln!("skipped: ../shared/data/{file} is missing");
                continue;
            };
            let mut taken = 0;
            for b in [b'=', b'-', b'*', b'a', b' ', b'\n', b'\t', b'0', b'.', b'#', 0xE2] {
                for n in (2..80).chain([127, 128, 129, 255, 256, 300, 1000]) {
                    for lead in [None, Some(b' '), Some(b'+'), Some(b'\n')] {
                        for tail in [0, 1, 2] {
                            let mut runs = vec![];
                            runs.extend(lead.map(|l| (l, 1)));
                            runs.push((b, n));
                            if tail > 0 {
                                runs.push((b'\n', tail));
                            }
                            let piece = runs_piece(&runs);
                            if r.get(&piece).is_some() {
                                continue;
                            }
                            let mut out = Vec::new();
                            if merge_runs(&piece, &r, &mut out) {
                                taken += 1;
                                assert_eq!(out, reference(&piece, &r), "{file}: {runs:?}");
                            }
                        }
                    }
                }
            }
            // Table rules: `+---+----+`.
            for k in 1..6 {
                let mut runs = vec![(b'+', 1)];
                for j in 0..k {
                    runs.extend([(b'-', 3 + 5 * j), (b'+', 1)]);
                }
                let piece = runs_piece(&runs);
                let mut out = Vec::new();
                if merge_runs(&piece, &r, &mut out) {
                    assert_eq!(out, reference(&piece, &r), "{file}: {runs:?}");
                }
            }
            assert!(taken > 1000, "{file}: {taken} pieces merged on runs");
        }
    }

    #[test]
    fn a_merge_below_the_pairing_sends_the_piece_back() {
        // "xaa" and "xaaa" rank below "aa" (made from "aa" all the same), so
        // BPE of "x" + "a" * 6 merges the first "aa" into "xaa", then "xaaa",
        // before it pairs the rest: [xaaa, aa, a], where pairing the whole
        // run first would give [xaa, aa, aa].
        let r = TokenMap::after_bytes(&[b"xaa", b"xaaa", b"aa"]);
        let piece = b"xaaaaaaaaaaaaaaaaaaa";
        let expected = reference(piece, &r);
        assert_eq!(expected[..2], [256 + 1, 256 + 2]);
        let mut out = Vec::new();
        assert!(!merge_runs(piece, &r, &mut out));
        assert!(out.is_empty());
        assert_eq!(crate::bpe::encode_piece_vec(piece, &r), expected);
        // With "aa" first the pairing is BPE's order, and taken.
        let r = TokenMap::after_bytes(&[b"aa", b"xaa", b"xaaa"]);
        assert!(merge_runs(piece, &r, &mut out));
        assert_eq!(out, reference(piece, &r));
    }

    #[test]
    fn text_that_is_not_runs_is_turned_away() {
        let r = TokenMap::after_bytes(&[b"ab", b"aa"]);
        let mut out = Vec::new();
        assert!(!merge_runs(b"abababababababab", &r, &mut out));
        assert!(!merge_runs("привет, как дела".as_bytes(), &r, &mut out));
        assert!(out.is_empty());
        assert!(merge_runs(b"aaaaaaaaaaaaaaaaaaaab", &r, &mut out));
        assert_eq!(out, reference(b"aaaaaaaaaaaaaaaaaaaab", &r));
    }
}
