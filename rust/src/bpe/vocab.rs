//! Token bytes → rank lookup, tuned for BPE's access pattern: most lookups
//! are short byte strings, which are packed into a `u128` key so a probe
//! touches one table slot instead of chasing a pointer to the key's bytes.

use rustc_hash::FxHashMap;

/// A token id / merge priority. Lower ranks merge first.
pub type Rank = u32;

/// Byte strings up to this long are stored inline.
const INLINE: usize = 15;

/// Packs up to 15 bytes into a `u128`: the bytes little-endian from the low
/// end, zero padding, and the length in the top byte. Built from (possibly
/// overlapping) word reads rather than a variable-length copy, which would
/// be a libc call on this hot path.
#[inline(always)]
fn pack(bytes: &[u8]) -> u128 {
    let n = bytes.len();
    debug_assert!(n <= INLINE);
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
    let (lo, hi) = if n >= 8 {
        // The last word read ends at n; shift out the bytes already in `lo`.
        let hi = if n == 8 { 0 } else { word(n - 8) >> (8 * (16 - n)) };
        (word(0), hi)
    } else if n >= 4 {
        let top = if n == 4 { 0 } else { (half(n - 4) >> (8 * (8 - n))) << 32 };
        (half(0) | top, 0)
    } else {
        let mut lo = 0u64;
        for (k, &b) in bytes.iter().enumerate() {
            lo |= (b as u64) << (8 * k);
        }
        (lo, 0)
    };
    (lo as u128) | ((hi as u128) << 64) | ((n as u128) << 120)
}

/// A byte string that occurs twice among the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub first: Rank,
    pub second: Rank,
}

/// Maps token bytes to their rank.
#[derive(Debug, Clone)]
pub struct TokenMap {
    short: FxHashMap<u128, Rank>,
    long: FxHashMap<Vec<u8>, Rank>,
    /// Rank of each single byte (`Rank::MAX` if absent).
    bytes: [Rank; 256],
    /// Rank of each two-byte string, indexed `b0 * 256 + b1` (`Rank::MAX` if absent).
    pairs: Vec<Rank>,
    /// One bit per `filter_slot` of the packed short tokens of 3 bytes or
    /// more: a clear bit proves a string is not a token without touching
    /// `short` (see [`TokenMap::rank_filtered`]).
    filter: Vec<u64>,
}

/// log2 of the number of bits in `TokenMap::filter` (256 KiB: stays in L2).
const FILTER_BITS: u32 = 21;

#[inline(always)]
fn filter_slot(key: u128) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_BITS)) as usize
}

impl TokenMap {
    /// `tokens[rank]` is the bytes of token `rank`.
    pub fn new(tokens: &[Vec<u8>]) -> Result<Self, Duplicate> {
        let mut short = FxHashMap::default();
        short.reserve(tokens.len());
        let mut long = FxHashMap::default();
        let mut bytes = [Rank::MAX; 256];
        let mut pairs = vec![Rank::MAX; 1 << 16];
        let mut filter = vec![0u64; 1 << (FILTER_BITS - 6)];
        for (rank, token) in tokens.iter().enumerate() {
            let rank = rank as Rank;
            let previous = if token.len() <= INLINE {
                let slot = filter_slot(pack(token));
                filter[slot >> 6] |= 1 << (slot & 63);
                short.insert(pack(token), rank)
            } else {
                long.insert(token.clone(), rank)
            };
            if let Some(first) = previous {
                return Err(Duplicate { first, second: rank });
            }
            match token.as_slice() {
                [b] => bytes[*b as usize] = rank,
                [b0, b1] => pairs[(*b0 as usize) << 8 | *b1 as usize] = rank,
                _ => {}
            }
        }
        Ok(Self { short, long, bytes, pairs, filter })
    }

    #[inline(always)]
    pub fn get(&self, token: &[u8]) -> Option<Rank> {
        if token.len() <= INLINE {
            self.short.get(&pack(token)).copied()
        } else {
            self.long.get(token).copied()
        }
    }

    /// Rank of `token`, `Rank::MAX` if it is not one.
    #[inline(always)]
    pub fn rank(&self, token: &[u8]) -> Rank {
        match token.len() {
            1 => self.bytes[token[0] as usize],
            2 => self.pairs[(token[0] as usize) << 8 | token[1] as usize],
            _ => self.get(token).unwrap_or(Rank::MAX),
        }
    }

    /// Same as [`TokenMap::rank`], for lookups that mostly miss in a table
    /// too big for the cache (merging a megabyte piece): a 256 KiB bit
    /// filter answers most misses before the hash table is probed.
    #[inline(always)]
    pub fn rank_filtered(&self, token: &[u8]) -> Rank {
        match token.len() {
            1 => self.bytes[token[0] as usize],
            2 => self.pairs[(token[0] as usize) << 8 | token[1] as usize],
            n if n <= INLINE => {
                let key = pack(token);
                let slot = filter_slot(key);
                if self.filter[slot >> 6] & (1 << (slot & 63)) == 0 {
                    return Rank::MAX;
                }
                self.short.get(&key).copied().unwrap_or(Rank::MAX)
            }
            _ => self.long.get(token).copied().unwrap_or(Rank::MAX),
        }
    }

    #[inline(always)]
    pub fn byte(&self, b: u8) -> Rank {
        self.bytes[b as usize]
    }

    #[inline(always)]
    pub fn pair(&self, b0: u8, b1: u8) -> Rank {
        self.pairs[(b0 as usize) << 8 | b1 as usize]
    }

    /// The first byte value that is not a token, if any.
    pub fn missing_byte(&self) -> Option<u8> {
        (0..=255u8).find(|&b| self.bytes[b as usize] == Rank::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_is_bytes_padding_and_length() {
        let data: Vec<u8> = (1..=15).collect();
        for n in 0..=15 {
            let mut buf = [0u8; 16];
            buf[..n].copy_from_slice(&data[..n]);
            buf[15] = n as u8;
            assert_eq!(pack(&data[..n]), u128::from_le_bytes(buf), "length {n}");
        }
    }

    #[test]
    fn short_long_and_small_lookups() {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(b"ab".to_vec());
        tokens.push(b"fifteen-bytes!!".to_vec());
        tokens.push(b"sixteen-bytes!!!".to_vec());
        let m = TokenMap::new(&tokens).unwrap();
        assert_eq!(m.get(b"a"), Some(97));
        assert_eq!(m.rank(b"ab"), 256);
        assert_eq!(m.pair(b'a', b'b'), 256);
        assert_eq!(m.pair(b'b', b'a'), Rank::MAX);
        assert_eq!(m.get(b"fifteen-bytes!!"), Some(257));
        assert_eq!(m.get(b"sixteen-bytes!!!"), Some(258));
        assert_eq!(m.get(b"fifteen-bytes!"), None);
        assert_eq!(m.rank(b"abc"), Rank::MAX);
        assert_eq!(m.missing_byte(), None);
        tokens.push(b"ab".to_vec());
        assert_eq!(TokenMap::new(&tokens).unwrap_err(), Duplicate { first: 256, second: 259 });
    }

    #[test]
    fn filtered_rank_equals_rank() {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut state = 7u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        };
        let mut strings: Vec<Vec<u8>> = Vec::new();
        for k in 0..20_000usize {
            let len = 1 + k % 20;
            strings.push((0..len).map(|_| b"abcd"[next() as usize % 4]).collect());
        }
        for s in &strings[..10_000] {
            if !tokens.contains(s) && s.len() > 1 && tokens.len() < 3000 {
                tokens.push(s.clone());
            }
        }
        let m = TokenMap::new(&tokens).unwrap();
        for s in tokens.iter().chain(&strings) {
            assert_eq!(m.rank_filtered(s), m.rank(s), "{s:?}");
        }
    }
}
