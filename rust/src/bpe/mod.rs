//! Byte-level BPE: the vocabulary lookup, the rank-ordered merge of one
//! pre-tokenized piece, and the helpers that keep long pieces and repeated
//! pieces fast. Everything here works on bytes; text handling is elsewhere.

mod atoms;
mod big_table;
mod cuts;
pub mod listed_merges;
mod merge;
pub mod merge_list;
mod merge_step;
pub mod piece_cache;
pub mod rank_queue;
mod runs;
pub mod vocab;

pub use merge::{
    encode_piece, encode_piece_vec, merge_lanes, merge_piece, merge_piece_with, Lane, LANE_BYTES, LANE_MAX_BYTES,
};
pub use vocab::{key_hash, may_cut, may_cut_short, short_key, short_key_at, Rank, TokenMap, MAX_TOKENS};
