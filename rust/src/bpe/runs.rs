//! BPE of a piece made of a few runs of one repeated byte each: a rule of
//! `=` or `-` under a heading with its line end, a run of spaces, the border
//! of a text table, a megabyte of `a`. Merged on the runs rather than the
//! bytes, in steps that each do what BPE does to a whole run, or one merge
//! across two runs.
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
/// A piece of more runs than this is taken only once one of its first runs
/// is [`LONG_RUN`] bytes or more. Each step compares every run's ranks, and
/// a run takes about log n steps, so pieces made to be many short runs
/// (distinct words of 4-8 doubled letters; or of 8-16 runs of 4-6 letters)
/// cost more here than in the general merge, while the rules and spaces of
/// real text are a few runs, and the borders of text tables
/// (`+------+----------+`) a few more, long ones.
const FEW_RUNS: usize = 4;
/// See [`FEW_RUNS`].
const LONG_RUN: usize = 8;
/// The most runs a piece may start with.
const MAX_RUNS: usize = 16;
/// The most runs merging may make (a merge across two runs adds one).
const CAPACITY: usize = 48;
/// The most steps before the general merge takes over.
const MAX_STEPS: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    token: Rank,
    count: usize,
    /// The rank of two of its parts merged (`Rank::MAX`: never, or a run of one).
    inside: Rank,
    /// The rank of its last part and the next run's first merged (`Rank::MAX`: never, or no next run).
    across: Rank,
}

impl Run {
    const EMPTY: Run = Run { token: Rank::MAX, count: 0, inside: Rank::MAX, across: Rank::MAX };
}

/// The runs of parts of one piece, neighbours always of different tokens.
struct Runs {
    runs: [Run; CAPACITY],
    len: usize,
}

impl Runs {
    /// The runs of bytes of `piece`, with their ranks; None where it is not
    /// a few runs (or a few more, one of them long), or a byte is no token.
    fn of(piece: &[u8], ranks: &TokenMap) -> Option<Self> {
        // Found in a small array first: most long pieces that come here (words)
        // are turned away after a few bytes, and need not set up the rest.
        let mut found = [(Rank::MAX, 0usize); MAX_RUNS];
        let (mut len, mut i, mut long) = (0, 0, false);
        while i < piece.len() {
            if len == MAX_RUNS || (len == FEW_RUNS && !long) {
                return None;
            }
            let b = piece[i];
            let count = piece[i..].iter().position(|&x| x != b).unwrap_or(piece.len() - i);
            let token = ranks.byte(b);
            if token == Rank::MAX {
                return None;
            }
            found[len] = (token, count);
            long |= count >= LONG_RUN;
            len += 1;
            i += count;
        }
        let mut this = Self { runs: [Run::EMPTY; CAPACITY], len };
        for (run, &(token, count)) in this.runs.iter_mut().zip(&found[..len]) {
            *run = Run { token, count, ..Run::EMPTY };
        }
        this.rank(0, len, ranks);
        Some(this)
    }

    /// Looks up the ranks of runs `from..to` (clamped to the runs there are).
    fn rank(&mut self, from: usize, to: usize, ranks: &TokenMap) {
        for k in from..to.min(self.len) {
            let run = self.runs[k];
            self.runs[k].inside = if run.count >= 2 { ranks.merge(run.token, run.token) } else { Rank::MAX };
            self.runs[k].across =
                if k + 1 < self.len { ranks.merge(run.token, self.runs[k + 1].token) } else { Rank::MAX };
        }
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
/// returns false, with nothing appended, when it is not runs as above or
/// when BPE's order of merges there is not the one above.
pub fn merge_runs(piece: &[u8], ranks: &TokenMap, out: &mut Vec<Rank>) -> bool {
    let Some(mut runs) = Runs::of(piece, ranks) else {
        return false;
    };
    for _ in 0..MAX_STEPS {
        // The lowest-ranked pair, the leftmost on a tie: the pairs inside run
        // k come before the pair of runs k and k + 1.
        let (mut best, mut at, mut inside) = (Rank::MAX, 0, false);
        for (k, run) in runs.runs[..runs.len].iter().enumerate() {
            if run.inside < best {
                (best, at, inside) = (run.inside, k, true);
            }
            if run.across < best {
                (best, at, inside) = (run.across, k, false);
            }
        }
        if best == Rank::MAX {
            for run in &runs.runs[..runs.len] {
                out.extend(std::iter::repeat_n(run.token, run.count));
            }
            return true;
        }
        if inside {
            let Run { token: t, count: c, .. } = runs.runs[at];
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
            runs.runs[at] = Run { token: best, count: c / 2, ..Run::EMPTY };
            if c % 2 == 1 && !runs.insert(at + 1, Run { token: t, count: 1, ..Run::EMPTY }) {
                return false;
            }
        } else {
            // One merge across the two runs: a part of each becomes one part.
            runs.runs[at].count -= 1;
            runs.runs[at + 1].count -= 1;
            if !runs.insert(at + 1, Run { token: best, count: 1, ..Run::EMPTY }) {
                return false;
            }
        }
        runs.tidy();
        // Only runs `at - 1..=at + 1` (after tidying) can have another token,
        // count or next run: the step changed runs `at` and `at + 1` and put
        // one between them, and tidying joins what it leaves next to run
        // `at - 1` into it. The runs before keep their ranks; those after
        // moved with theirs. (The tests fail if either end is left out.)
        runs.rank(at.saturating_sub(1), at + 2, ranks);
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
        let (mut taken, mut refused, mut many) = (0, 0, 0);
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
                // Up to 14 runs: beyond `FEW_RUNS` they are taken when long
                // (the ranks kept per run are then updated many times).
                let runs: Vec<(u8, usize)> = (0..1 + next() % [5, 14][next() % 2])
                    .map(|_| (alphabet[next() % alphabet.len()], 1 + next() % [3, 20, 200][next() % 3]))
                    .collect();
                let piece = runs_piece(&runs);
                if piece.len() < 2 || r.get(&piece).is_some() {
                    continue;
                }
                let mut out = Vec::new();
                if merge_runs(&piece, &r, &mut out) {
                    taken += 1;
                    many += usize::from(Runs::of(&piece, &r).is_some_and(|runs| runs.len > FEW_RUNS));
                    assert_eq!(out, reference(&piece, &r), "round {round}, {tokens:?}, {runs:?}");
                } else {
                    refused += 1;
                    assert!(out.is_empty());
                }
            }
        }
        // Both ways are exercised, and pieces of more than a few runs.
        assert!(taken > 1000 && refused > 100 && many > 300, "taken {taken}, refused {refused}, {many} of many runs");
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
            // Table borders: `+---+----+`, up to seven columns (15 runs, 17 with a
            // lead and a line end: past `MAX_RUNS`, turned away).
            let mut borders = 0;
            for k in 1..8 {
                for (fill, lead, tail) in
                    [(b'-', None, 0), (b'=', Some(b' '), 0), (b'-', Some(b' '), 1), (b'~', None, 2)]
                {
                    let mut runs: Vec<(u8, usize)> = lead.map(|l| (l, 1)).into_iter().collect();
                    runs.push((b'+', 1));
                    for j in 0..k {
                        runs.extend([(fill, 3 + 7 * j % 40), (b'+', 1)]);
                    }
                    if tail > 0 {
                        runs.push((b'\n', tail));
                    }
                    let piece = runs_piece(&runs);
                    let mut out = Vec::new();
                    if merge_runs(&piece, &r, &mut out) {
                        borders += 1;
                        assert_eq!(out, reference(&piece, &r), "{file}: {runs:?}");
                    }
                }
            }
            assert!(taken > 1000, "{file}: {taken} pieces merged on runs");
            assert!(borders > 10, "{file}: {borders} table borders merged on runs");
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
