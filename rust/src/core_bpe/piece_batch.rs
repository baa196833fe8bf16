//! The pieces of a text on their way to tokens: a batch of pieces whose
//! table lines are requested before any is read, each piece then answered
//! by the vocabulary, by the piece cache, or merged (cut where no token
//! spans, first-seen short pieces gathered and merged side by side).

use std::mem::MaybeUninit;

use crate::bpe::listed_merges::ListedMerges;
use crate::bpe::piece_cache::CacheLines;
use crate::bpe::piece_cache::{bytes_hash, PieceCache};
use crate::bpe::vocab::{ShortLines, SlotLines};
use crate::bpe::{self, Lane, Rank, TokenMap};

/// Pieces looked up together: the table lines of a batch are all requested
/// before the first is read, so their memory latencies overlap instead of
/// adding up one piece after another; so do the merges of pieces seen for
/// the first time, gathered over batches (see [`DEFER_AT`]). A piece's line is
/// asked for about a batch of pieces before it is read: 32 left a third of
/// `flush`'s samples waiting on it (64: +2-3% in A/B).
const BATCH: usize = 64;

/// One value per piece of a batch, written from index 0 up before it is
/// read, so not zeroed first: for a line of text, zeroing a batch's arrays
/// (3.5 KB) took about as long as encoding it.
struct PerPiece<T: Copy, const N: usize = BATCH>([MaybeUninit<T>; N]);

impl<T: Copy, const N: usize> PerPiece<T, N> {
    fn new() -> Self {
        Self([const { MaybeUninit::uninit() }; N])
    }

    #[inline(always)]
    fn set(&mut self, k: usize, value: T) {
        self.0[k] = MaybeUninit::new(value);
    }

    /// Values `range`, as a slice.
    ///
    /// # Safety
    /// Each of them was `set` since the batch was last emptied.
    #[inline(always)]
    unsafe fn slice(&self, range: std::ops::Range<usize>) -> &[T] {
        let values = &self.0[range];
        // SAFETY: written, as the caller guarantees; `MaybeUninit<T>` has `T`'s layout.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<T>(), values.len()) }
    }

    /// `set` without the bounds check, for the per-piece path.
    ///
    /// # Safety
    /// `k < N`.
    #[inline(always)]
    unsafe fn set_unchecked(&mut self, k: usize, value: T) {
        debug_assert!(k < N);
        // SAFETY: in bounds, as the caller guarantees.
        unsafe { *self.0.get_unchecked_mut(k) = MaybeUninit::new(value) };
    }

    /// # Safety
    /// `set(k, _)` was called since the batch was last emptied.
    #[inline(always)]
    unsafe fn get(&self, k: usize) -> T {
        // SAFETY: written, as the caller guarantees.
        unsafe { self.0[k].assume_init() }
    }
}

/// A deferred piece: see [`PieceBatch::deferred`].
type Deferred<'t> = (usize, &'t [u8], u128, u64);

/// The pieces of one text on their way to tokens, in order.
pub(super) struct PieceBatch<'a, 't> {
    ranks: &'a TokenMap,
    /// The merge list to merge by instead of ranks, for a tokenizer that
    /// has one with `ignore_merges` (a piece that is a token is that token,
    /// as by rank; see [`PieceBatch::slow_listed`]).
    listed: Option<&'a ListedMerges>,
    /// The text the pieces are slices of.
    text: &'t [u8],
    cache: Option<&'a mut PieceCache>,
    /// Pieces `0..len`: each piece, its packed key (0: longer than a key
    /// holds) and where the vocabulary looks for it, or for a piece without
    /// a key the hash of its bytes (which the piece cache looks it up by).
    pieces: PerPiece<&'t [u8]>,
    keys: PerPiece<u128>,
    homes: PerPiece<u64>,
    len: usize,
    /// Pieces whose merge waits until [`DEFER_AT`] of them have gathered,
    /// over as many batches as that takes, or the text ends (see
    /// [`PieceBatch::merge_deferred`]): where their room in the output
    /// starts, the piece, its packed key (0 for a long piece) and what the
    /// piece cache knows it by; `0..n_deferred` are set.
    deferred: PerPiece<Deferred<'t>, DEFER_MAX>,
    n_deferred: usize,
    /// Which lane merges each deferred piece.
    lanes: LanePlan,
    /// Where `push` prefetches: the short-token table's lines, and the piece
    /// cache's (renewed after each flush, in which the cache may grow; a
    /// line never read where there is no cache).
    vocab_lines: ShortLines,
    cache_lines: CacheLines,
    /// Where each text ended in `out`, for a batch that holds the pieces of
    /// several texts (see [`PieceBatch::end_text`]); kept true as deferred
    /// merges close up the room they left.
    pub(super) ends: Vec<usize>,
    /// Texts that ended after pieces `0..bound` of the pieces held, in order.
    bounds: Vec<usize>,
}

impl<'a, 't> PieceBatch<'a, 't> {
    pub(super) fn new(
        ranks: &'a TokenMap,
        listed: Option<&'a ListedMerges>,
        text: &'t [u8],
        cache: Option<&'a mut PieceCache>,
    ) -> Self {
        debug_assert!(listed.is_none_or(ListedMerges::ignore_merges));
        let cache_lines = Self::lines_of(&cache);
        Self {
            vocab_lines: ranks.short_lines(),
            cache_lines,
            ranks,
            listed,
            text,
            cache,
            pieces: PerPiece::new(),
            keys: PerPiece::new(),
            homes: PerPiece::new(),
            len: 0,
            deferred: PerPiece::new(),
            n_deferred: 0,
            lanes: LanePlan::new(),
            ends: Vec::new(),
            bounds: Vec::new(),
        }
    }

    /// Makes `text` the text that [`PieceBatch::push`] takes pieces of; the
    /// pieces of texts before it may still be held.
    pub(super) fn start_text(&mut self, text: &'t [u8]) {
        self.text = text;
    }

    /// Ends the text whose pieces were pushed last: where its tokens end in
    /// `out` is known once the pieces held are emitted, and their deferred
    /// merges done ([`PieceBatch::take_ends`]).
    pub(super) fn end_text(&mut self, out: &[Rank]) {
        if self.len == 0 {
            self.ends.push(out.len());
        } else {
            self.bounds.push(self.len);
        }
    }

    /// Where each ended text's tokens end in `out`, once [`PieceBatch::finish`] has run.
    pub(super) fn take_ends(&mut self) -> Vec<usize> {
        debug_assert!(self.len == 0 && self.n_deferred == 0);
        std::mem::take(&mut self.ends)
    }

    /// Where `push` prefetches piece-cache slots: to be renewed whenever
    /// the cache may have grown (emitting a piece may grow it).
    fn lines_of(cache: &Option<&'a mut PieceCache>) -> CacheLines {
        cache.as_ref().map_or_else(SlotLines::nowhere, |c| c.slot_lines())
    }

    /// Takes the piece `text[start..end]`: by place, so that its key is
    /// read from the text with one bound check (from a slice it took the
    /// slice's place in the text first).
    #[inline(always)]
    pub(super) fn push(&mut self, start: usize, end: usize, out: &mut Vec<Rank>) {
        let text: &'t [u8] = self.text;
        let piece = &text[start..end];
        let k = self.len;
        // SAFETY (each `set_unchecked` below): `len < BATCH` between calls, as
        // a push that fills the batch flushes it.
        unsafe { self.pieces.set_unchecked(k, piece) };
        let key = bpe::short_key_at(text, start, end).unwrap_or(0);
        unsafe { self.keys.set_unchecked(k, key) };
        if key != 0 {
            let hash = bpe::key_hash(key);
            let home = self.vocab_lines.home(hash);
            unsafe { self.homes.set_unchecked(k, home as u64) };
            self.vocab_lines.prefetch(home);
            // Its piece-cache slot too, which a piece that is no token reads
            // next (a few in a hundred pieces of code, a quarter of latin's):
            // one more hint per piece costs less than that wait.
            let lines = self.cache_lines;
            lines.prefetch(lines.home(hash));
        } else {
            // A long piece (a fifth of Cyrillic text's) is looked for in the
            // piece cache by the hash of its bytes: kept in place of the home
            // it does not have, and its slot asked for now.
            let hash = bytes_hash(piece);
            unsafe { self.homes.set_unchecked(k, hash) };
            let lines = self.cache_lines;
            lines.prefetch(lines.home(hash));
        }
        self.len = k + 1;
        if self.len == BATCH {
            self.flush(out);
        }
    }

    /// Emits the tokens of `piece` now, after those of the pieces held (for
    /// pieces that do not live as long as the batch).
    pub(super) fn push_now(&mut self, piece: &[u8], out: &mut Vec<Rank>) {
        self.flush(out);
        let key = bpe::short_key(piece).unwrap_or(0);
        let home = if key != 0 { self.ranks.short_home(bpe::key_hash(key)) as u64 } else { bytes_hash(piece) };
        self.emit(piece, key, home, out, None);
        self.cache_lines = Self::lines_of(&self.cache);
    }

    /// Emits the tokens of the pieces held.
    #[inline(never)]
    pub(super) fn flush(&mut self, out: &mut Vec<Rank>) {
        let mut from = 0;
        if !self.bounds.is_empty() {
            let bounds = std::mem::take(&mut self.bounds);
            for &bound in &bounds {
                self.emit_held(from..bound, out);
                self.ends.push(out.len());
                from = bound;
            }
            self.bounds = bounds;
            self.bounds.clear();
        }
        self.emit_held(from..self.len, out);
        if self.n_deferred >= DEFER_AT {
            self.merge_deferred(out);
        }
        self.len = 0;
        self.cache_lines = Self::lines_of(&self.cache);
    }

    /// Emits the tokens of the pieces held in `range`.
    #[inline(always)]
    fn emit_held(&mut self, range: std::ops::Range<usize>, out: &mut Vec<Rank>) {
        let mut k = range.start;
        while k < range.end {
            // The pieces that are short tokens, up to the next that is not.
            // SAFETY (here and below): `push` set pieces `0..len`, and `range` is within them.
            let (keys, homes) = unsafe { (self.keys.slice(k..range.end), self.homes.slice(k..range.end)) };
            k += self.ranks.short_ranks_while_tokens(keys, homes, out);
            if k == range.end {
                break;
            }
            let (piece, key, home) = unsafe { (self.pieces.get(k), self.keys.get(k), self.homes.get(k)) };
            self.emit_other(piece, key, home, out, Some(k));
            k += 1;
        }
    }

    /// Emits the tokens of every piece held, deferred ones too: the end of
    /// the text.
    pub(super) fn finish(&mut self, out: &mut Vec<Rank>) {
        self.flush(out);
        if self.n_deferred > 0 {
            self.merge_deferred(out);
        }
    }

    /// Merges the pieces deferred by [`PieceBatch::slow`] side by side (see
    /// [`bpe::merge_lanes`]), writes their tokens into the room each left in
    /// `out`, closes up what room is left over, and remembers them.
    #[inline(never)]
    fn merge_deferred(&mut self, out: &mut Vec<Rank>) {
        let n = std::mem::take(&mut self.n_deferred);
        let plan = std::mem::replace(&mut self.lanes, LanePlan::new());
        // Only the lanes used are set up: all `DEFER_MAX` (4.5 KiB) were
        // written for every merge of 16 pieces or so.
        let mut all = [const { MaybeUninit::<Lane>::uninit() }; DEFER_MAX];
        for lane in &mut all[..plan.n] {
            lane.write(Lane::default());
        }
        // SAFETY: lanes `0..plan.n` were just written.
        let lanes = unsafe { &mut *(&mut all[..plan.n] as *mut [MaybeUninit<Lane>] as *mut [Lane]) };
        // SAFETY (every `get` below): deferred pieces `0..n` were set by `slow`,
        // and each lane's piece is one of them.
        let deferred = &self.deferred;
        let piece = |i: usize| unsafe { deferred.get(plan.piece[i] as usize).1 };
        match self.listed {
            Some(listed) => listed.merge_lanes(lanes, piece, self.ranks),
            None => bpe::merge_lanes(lanes, piece, self.ranks),
        }
        // Each piece's room (one id per byte) is at least its tokens, so
        // writing at `write`, which never passes the room's start, only
        // overwrites what was moved already.
        let mut write = unsafe { deferred.get(0).0 };
        // Ends of texts after the first room move down with what follows it.
        let mut end = self.ends.partition_point(|&e| e <= write);
        // The tokens of a long piece that did not fit its lane.
        let mut alone = Vec::new();
        for j in 0..n {
            let (at, piece, key, hash) = unsafe { deferred.get(j) };
            let lane = plan.of[j] as usize;
            let start = write;
            if lanes[lane].merged() {
                for token in lanes[lane].tokens() {
                    out[write] = token;
                    write += 1;
                }
            } else {
                alone.clear();
                bpe::merge_piece(piece, self.ranks, &mut alone);
                out[write..write + alone.len()].copy_from_slice(&alone);
                write += alone.len();
            }
            if let Some(cache) = &mut self.cache {
                if plan.piece[lane] as usize == j {
                    cache.remember(piece, key, hash, &out[start..write]);
                }
            }
            let (from, to) = (at + piece.len(), if j + 1 < n { unsafe { deferred.get(j + 1).0 } } else { out.len() });
            // No text ends inside a room: those up to `to` end after this one.
            while end < self.ends.len() && self.ends[end] <= to {
                debug_assert!(self.ends[end] >= from);
                self.ends[end] -= from - write;
                end += 1;
            }
            out.copy_within(from..to, write);
            write += to - from;
        }
        out.truncate(write);
    }

    /// Emits the tokens of one piece: a short token straight from the table,
    /// a piece its piece-cache slot remembers from there (the slot `push`
    /// prefetched; a cached piece's tokens are BPE's whichever path stored
    /// them, so checking it before the cuts changes no id), anything else
    /// through [`PieceBatch::slow`]. `key` is 0 for a long
    /// piece; `home` is the key's [`TokenMap::short_home`], or a long
    /// piece's [`bytes_hash`]; `batched` is the piece's index in the batch
    /// when it is one of its pieces.
    #[inline(always)]
    fn emit(&mut self, piece: &[u8], key: u128, home: u64, out: &mut Vec<Rank>, batched: Option<usize>) {
        if key != 0 {
            if let Some(rank) = self.ranks.get_short_at(key, home as usize) {
                out.push(rank);
                return;
            }
        }
        self.emit_other(piece, key, home, out, batched);
    }

    /// [`PieceBatch::emit`] of a piece that is no short token.
    #[inline(always)]
    fn emit_other(&mut self, piece: &[u8], key: u128, home: u64, out: &mut Vec<Rank>, batched: Option<usize>) {
        // What the piece cache knows it by: a long piece's `home` is that already.
        let hash = if key != 0 { bpe::key_hash(key) } else { home };
        if let Some(cache) = &self.cache {
            let hit = if key != 0 { cache.lookup_home(key, hash, out) } else { cache.lookup(piece, 0, hash, out) };
            if hit {
                return;
            }
        }
        self.slow(piece, key, hash, out, batched);
    }

    /// A piece that is not a short token: a long token, or merged (through the
    /// cache), whole or in the parts that cuts no token spans give. A piece
    /// of the batch (index `batched`) that is not remembered, short or a
    /// lane's length, leaves room in `out` and is merged later, beside others
    /// (see [`PieceBatch::defer`]).
    /// `hash` is what the piece cache knows the piece by: `key_hash(key)`,
    /// or for a long piece its [`bytes_hash`].
    #[inline(never)]
    fn slow(&mut self, piece: &[u8], key: u128, hash: u64, out: &mut Vec<Rank>, batched: Option<usize>) {
        if let Some(listed) = self.listed {
            return self.slow_listed(listed, piece, key, hash, out, batched);
        }
        if piece.len() >= MIN_CUT_PIECE
            && (if key == 0 { bpe::may_cut(piece) } else { bpe::may_cut_short(key) })
            && self.cut_and_emit(piece, key == 0, out)
        {
            return;
        }
        if self.defer(piece, key, hash, out, batched) {
            return;
        }
        let ranks = self.ranks;
        match &mut self.cache {
            None => {
                if key == 0 {
                    bpe::encode_piece(piece, ranks, out)
                } else {
                    bpe::merge_piece(piece, ranks, out)
                }
            }
            Some(cache) if key != 0 => cache.encode(piece, key, hash, out, |p, o| bpe::merge_piece(p, ranks, o)),
            Some(cache) => cache.encode(piece, 0, hash, out, |p, o| bpe::encode_piece(p, ranks, o)),
        }
    }
}

impl<'a> PieceBatch<'a, '_> {
    /// [`PieceBatch::slow`] by the merge list `listed`: a long token is that
    /// token (`ignore_merges`), anything else is merged by the list through
    /// the cache, whole or in the parts cuts give, short pieces side by side
    /// (see [`ListedMerges::merge_lanes`]). Cuts hold for any merge order (a
    /// part is always a token, so no merge crosses a place no token spans);
    /// atoms are the list's own (see `listed_merges`), and runs, which rest
    /// on rank order, are left out.
    fn slow_listed(
        &mut self,
        listed: &'a ListedMerges,
        piece: &[u8],
        key: u128,
        hash: u64,
        out: &mut Vec<Rank>,
        batched: Option<usize>,
    ) {
        let ranks = self.ranks;
        if key == 0 {
            if let Some(rank) = ranks.get_long(piece) {
                out.push(rank);
                return;
            }
        }
        // (`false`: a long piece that is a token was emitted above.)
        if piece.len() >= MIN_CUT_PIECE
            && (if key == 0 { bpe::may_cut(piece) } else { bpe::may_cut_short(key) })
            && self.cut_with(piece, false, out, |batch, part, out| batch.emit_part_listed(listed, part, out))
        {
            return;
        }
        if self.defer(piece, key, hash, out, batched) {
            return;
        }
        match &mut self.cache {
            Some(cache) => cache.encode(piece, key, hash, out, |p, o| listed.merge_bytes(p, ranks, o)),
            None => listed.merge_bytes(piece, ranks, out),
        }
    }

    /// One part of a cut piece merged by the list. `ignore_merges` looks up
    /// the whole piece only, so a part that is a token is that token only
    /// where the merges make it from its bytes (learnt the first time).
    fn emit_part_listed(&mut self, listed: &ListedMerges, part: &[u8], out: &mut Vec<Rank>) {
        let ranks = self.ranks;
        let key = bpe::short_key(part).unwrap_or(0);
        let hash = if key != 0 { bpe::key_hash(key) } else { bytes_hash(part) };
        let token = if key != 0 { ranks.get_short(key, hash) } else { ranks.get_long(part) };
        match token {
            Some(rank) => match listed.makes_itself(rank) {
                Some(true) => out.push(rank),
                // Kept out of the cache, whose entries for a string that is a
                // token are what `ignore_merges` gives: that token.
                Some(false) => listed.merge_bytes(part, ranks, out),
                None => {
                    let start = out.len();
                    listed.merge_bytes(part, ranks, out);
                    listed.learn(rank, out[start..] == [rank]);
                }
            },
            None => match &mut self.cache {
                Some(cache) => cache.encode(part, key, hash, out, |p, o| listed.merge_bytes(p, ranks, o)),
                None => listed.merge_bytes(part, ranks, out),
            },
        }
    }
}

impl PieceBatch<'_, '_> {
    /// Defers a piece of the batch (index `batched`) that the cache does
    /// not remember, leaving room for its tokens in `out`, to be merged
    /// beside others (see [`DEFER_AT`]): a short piece, or a long one that
    /// is no token and may fit a lane (emitted now where it is a token).
    /// False, having done nothing, for any other piece.
    #[inline(always)]
    fn defer(&mut self, piece: &[u8], key: u128, hash: u64, out: &mut Vec<Rank>, batched: Option<usize>) -> bool {
        let Some(k) = batched else { return false };
        if key != 0 {
            if piece.len() < 2 {
                return false;
            }
            // A packed key (key != 0) holds no more bytes than a lane takes.
            // (The cache was asked already, in `emit_other`, and a short
            // piece it remembers was answered there.)
            const { assert!(bpe::vocab::INLINE <= bpe::LANE_BYTES) };
        } else {
            // Long pieces merged one by one left their merge-table misses
            // exposed: a fifth of Russian text's time, in words of 8 to 15
            // letters, most of which fit a lane (a letter is one atom). The
            // cache was asked already (`emit_other`); merge lists' lanes
            // take short pieces only.
            if self.listed.is_some() || piece.len() > bpe::LANE_MAX_BYTES {
                return false;
            }
            // Lanes take no token (tiktoken emits a token piece whole).
            if let Some(rank) = self.ranks.get_long(piece) {
                out.push(rank);
                if let Some(cache) = &mut self.cache {
                    cache.remember(piece, 0, hash, &[rank]);
                }
                return true;
            }
        }
        if self.n_deferred == DEFER_MAX {
            self.merge_deferred(out);
        }
        let j = self.n_deferred;
        let deferred = &self.deferred;
        // SAFETY: deferred pieces `0..j` are set.
        let same = |i: usize| {
            let (_, other, other_key, other_hash) = unsafe { deferred.get(i) };
            other_key == key && (key != 0 || (other_hash == hash && other == piece))
        };
        self.lanes.assign(j, hash, same);
        // SAFETY: `push` set piece `k`.
        self.deferred.set(j, (out.len(), unsafe { self.pieces.get(k) }, key, hash));
        self.n_deferred += 1;
        out.resize(out.len() + piece.len(), 0);
        true
    }
}

/// Which lane of [`bpe::merge_lanes`] merges each deferred piece. A piece
/// that comes again while deferred (a fifth of them in English and code: a
/// new word recurs within a few lines) takes the lane of its first
/// occurrence, so it is merged once (en +3%, ru +7%).
struct LanePlan {
    /// The lane of each deferred piece.
    of: [u8; DEFER_MAX],
    /// Lanes `0..n`: which deferred piece each merges. (Their keys are the
    /// deferred pieces': a copy here made the plan big enough that setting
    /// up a batch copied it, a tenth of encoding a short line.)
    piece: [u8; DEFER_MAX],
    n: usize,
    /// Bit `hash >> 58` set for the lanes' pieces: most pieces find theirs
    /// clear, in no lane, and skip the search.
    bits: u64,
}

impl LanePlan {
    fn new() -> Self {
        Self { of: [0; DEFER_MAX], piece: [0; DEFER_MAX], n: 0, bits: 0 }
    }

    /// Gives deferred piece `j` (whose cache hash is `hash`) the lane of an
    /// earlier deferred piece `i < j` that is the same piece (`same(i)`),
    /// or a new one.
    #[inline(always)]
    fn assign(&mut self, j: usize, hash: u64, same: impl Fn(usize) -> bool) {
        let bit = 1u64 << (hash >> 58);
        let same = if self.bits & bit != 0 { (0..self.n).find(|&lane| same(self.piece[lane] as usize)) } else { None };
        self.of[j] = match same {
            Some(lane) => lane,
            None => {
                let lane = self.n;
                self.piece[lane] = j as u8;
                self.n += 1;
                self.bits |= bit;
                lane
            }
        } as u8;
    }
}

/// A flush merges the deferred pieces once this many have gathered. A
/// text's first-seen pieces are few and far apart (3% of English pieces),
/// so merged at every flush most lane rounds had one or two to work on:
/// waiting for more overlaps more of their merge-table misses and spreads
/// each round's fixed work (in-process A/B, cl100k and o200k: en +3-9%,
/// code +3-7%, latin +3-4%, zh +3%, ru +1-6%).
const DEFER_AT: usize = 16;
/// The most deferred pieces held: a flush that reaches it merges them
/// before deferring more.
const DEFER_MAX: usize = 32;

/// Pieces shorter than this are merged whole: a cut would save little.
const MIN_CUT_PIECE: usize = 5;

impl PieceBatch<'_, '_> {
    /// Emits `piece` in parts where the vocabulary allows cuts (before
    /// characters of three or four bytes that no token spans: see
    /// `bpe::cuts`); false, having emitted nothing, where it allows none. A long piece (`long`) may be a
    /// token itself, which tiktoken emits whole: it is cut only when it is not.
    fn cut_and_emit(&mut self, piece: &[u8], long: bool, out: &mut Vec<Rank>) -> bool {
        self.cut_with(piece, long, out, Self::emit_part)
    }

    /// The cutting of [`PieceBatch::cut_and_emit`], each part emitted by `emit`
    /// (by rank or by a merge list).
    #[inline(always)]
    fn cut_with(
        &mut self,
        piece: &[u8],
        long: bool,
        out: &mut Vec<Rank>,
        mut emit: impl FnMut(&mut Self, &[u8], &mut Vec<Rank>),
    ) -> bool {
        let ranks = self.ranks;
        let mut start = 0;
        for p in 1..piece.len() {
            if ranks.can_cut(piece, p) {
                if start == 0 && long && ranks.get_long(piece).is_some() {
                    return false;
                }
                emit(self, &piece[start..p], out);
                start = p;
            }
        }
        if start == 0 {
            return false;
        }
        emit(self, &piece[start..], out);
        true
    }

    /// Emits the tokens of one part of a cut piece: BPE on its bytes, which
    /// is the part itself when it is a token that BPE makes from its bytes.
    fn emit_part(&mut self, part: &[u8], out: &mut Vec<Rank>) {
        let ranks = self.ranks;
        // Most parts of Chinese and Japanese pieces: one character.
        if ranks.one_character(part, out) {
            return;
        }
        let key = bpe::short_key(part).unwrap_or(0);
        let hash = if key != 0 { bpe::key_hash(key) } else { bytes_hash(part) };
        let token = if key != 0 { ranks.get_short(key, hash) } else { ranks.get_long(part) };
        match token {
            Some(rank) if ranks.encodes_to_itself(rank) => out.push(rank),
            // A token BPE does not make from its bytes (tiktoken emits one only
            // as a whole piece): merged, and kept out of the cache, whose
            // entries for a string that is a token are that token.
            Some(_) => bpe::merge_piece(part, ranks, out),
            None => match &mut self.cache {
                Some(cache) => cache.encode(part, key, hash, out, |p, o| bpe::merge_piece(p, ranks, o)),
                None => bpe::merge_piece(part, ranks, out),
            },
        }
    }
}
