//! Every mergeable token's bytes in one arena, for decoding.
//!
//! Decoding is a copy per token. Kept as a `Vec<u8>` per token, each copy was a
//! pointer chase to its own allocation and a call to `memcpy` for a few bytes;
//! here a token's place is one 8-byte entry and its bytes sit in one block,
//! padded so that a token of up to [`COPY`] bytes is copied with one fixed-size
//! move (its length then decides how far the output advances).

/// Tokens up to this long are copied as a fixed block of this many bytes.
const COPY: usize = 16;

#[derive(Debug)]
pub struct TokenBytes {
    /// All tokens' bytes, by rank, then `COPY` zero bytes so that a fixed-size
    /// copy from any token's start stays inside.
    bytes: Vec<u8>,
    /// `start << 32 | len` of each token in `bytes`.
    spans: Vec<u64>,
}

impl TokenBytes {
    pub fn new(tokens: &[Vec<u8>]) -> Self {
        let total: usize = tokens.iter().map(Vec::len).sum();
        assert!(total <= u32::MAX as usize, "token bytes exceed 4 GiB");
        let mut bytes = Vec::with_capacity(total + COPY);
        let mut spans = Vec::with_capacity(tokens.len());
        for token in tokens {
            spans.push(((bytes.len() as u64) << 32) | token.len() as u64);
            bytes.extend_from_slice(token);
        }
        bytes.extend_from_slice(&[0; COPY]);
        Self { bytes, spans }
    }

    /// The number of tokens.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of token `id`, None beyond the last.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&[u8]> {
        let span = *self.spans.get(usize::try_from(id).ok()?)?;
        let (start, len) = ((span >> 32) as usize, span as u32 as usize);
        Some(&self.bytes[start..start + len])
    }

    /// Every token's bytes, by rank.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.spans.len()).map(|id| self.get(id as u64).expect("in range"))
    }

    /// Appends the bytes of each id to `out` while they are tokens; returns
    /// how many ids were appended (all of them, or up to the first id that is
    /// not a mergeable token, which the caller looks up elsewhere).
    pub fn append(&self, ids: &[u32], out: &mut Vec<u8>) -> usize {
        for (k, &id) in ids.iter().enumerate() {
            let Some(&span) = self.spans.get(id as usize) else {
                return k;
            };
            let (start, len) = ((span >> 32) as usize, span as u32 as usize);
            if len <= COPY {
                out.reserve(COPY);
                let at = out.len();
                // SAFETY: `start + COPY <= bytes.len()` (the arena ends in COPY
                // padding bytes), `out` has room for COPY more bytes after
                // `at`, and the two do not overlap. Only `len` of them are kept.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.bytes.as_ptr().add(start), out.as_mut_ptr().add(at), COPY);
                    out.set_len(at + len);
                }
            } else {
                out.extend_from_slice(&self.bytes[start..start + len]);
            }
        }
        ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::xorshift;

    /// A number below `n` from `next`.
    fn below(next: &mut impl FnMut() -> u64, n: u64) -> u64 {
        next() % n
    }

    fn random_tokens(rng: &mut impl FnMut() -> u64, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                // Lengths across the fixed-size copy's edge, and long ones.
                let len = match below(rng, 4) {
                    0 => 1 + below(rng, 3) as usize,
                    1 => COPY - 1 + below(rng, 3) as usize,
                    2 => 1 + below(rng, 40) as usize,
                    _ => 64 + below(rng, 200) as usize,
                };
                (0..len).map(|_| below(rng, 256) as u8).collect()
            })
            .collect()
    }

    #[test]
    fn append_equals_concatenation() {
        let mut rng = xorshift(7);
        let tokens = random_tokens(&mut rng, 300);
        let table = TokenBytes::new(&tokens);
        assert_eq!(table.len(), tokens.len());
        assert!(table.iter().eq(tokens.iter().map(Vec::as_slice)));
        for round in 0..200 {
            let n = below(&mut rng, 60) as usize;
            let ids: Vec<u32> = (0..n).map(|_| below(&mut rng, tokens.len() as u64) as u32).collect();
            // Output that already holds bytes, and is sometimes exactly full.
            let mut out: Vec<u8> = (0..round % 5).map(|b| b as u8).collect();
            out.shrink_to_fit();
            let mut expected = out.clone();
            for &id in &ids {
                expected.extend_from_slice(&tokens[id as usize]);
            }
            assert_eq!(table.append(&ids, &mut out), ids.len());
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn append_stops_at_the_first_id_that_is_no_token() {
        let tokens: Vec<Vec<u8>> = vec![b"a".to_vec(), b"bc".to_vec(), vec![b'x'; 40]];
        let table = TokenBytes::new(&tokens);
        let mut out = Vec::new();
        assert_eq!(table.append(&[0, 2, 1, 3, 0], &mut out), 3);
        assert_eq!(out, [b"a".as_slice(), &[b'x'; 40], b"bc"].concat());
        assert_eq!(table.get(3), None);
        assert_eq!(table.get(u64::MAX), None);
        assert_eq!(table.get(1), Some(b"bc".as_slice()));
    }
}
