//! Reproducible pseudo-random numbers for the unit tests: every run draws
//! the same inputs, with no dependency.

/// Marsaglia's xorshift64 from a nonzero `seed`: each call gives the next
/// 64-bit value.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
