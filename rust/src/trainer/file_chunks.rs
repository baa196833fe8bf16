//! Streams a text file in chunks that can be pre-tokenized independently.
//!
//! A chunk ends just before a newline that follows a letter (`\p{L}`), and never
//! inside a special token. With the built-in split patterns no piece crosses such a
//! point or looks across it (letter runs stop at the newline just as they stop at
//! the end of the text), so counting the chunks one by one gives exactly the pieces
//! of the whole file. A custom pattern whose matches cross a letter-newline boundary
//! would see the file cut there.
//!
//! If no such boundary turns up within [`MAX_GROWTH`] chunk sizes, the buffered text
//! is pre-tokenized and cut at the start of a piece that follows a non-whitespace
//! character, leaving at least two pieces for the next chunk (or just after a special
//! token), which is again exact for the built-in patterns. Only a buffer of
//! [`HARD_GROWTH`] chunk sizes, and at least [`MIN_HARD_CUT`] bytes, with no piece
//! boundary at all (one giant piece) is cut at a character boundary, so memory stays
//! bounded while pieces shorter than [`MIN_HARD_CUT`] are never cut, whatever the
//! chunk size.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use fancy_regex::Regex;

use super::specials::SpecialSplitter;
use super::TrainError;
use crate::pretokenize::Pretokenizer;

/// A chunk may grow to this many times the target size while looking for a
/// letter-newline boundary.
pub const MAX_GROWTH: usize = 8;
/// ... and to this many times while looking for any piece boundary.
pub const HARD_GROWTH: usize = 64;
/// A giant piece is never cut before the buffer holds this many bytes.
pub const MIN_HARD_CUT: usize = 1 << 20;

/// Reads one file as a sequence of UTF-8 chunks.
pub struct FileChunks {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    offset: u64,
    eof: bool,
    chunk_bytes: usize,
    letter: Regex,
}

impl FileChunks {
    pub fn open(path: &Path, chunk_bytes: usize) -> Result<Self, TrainError> {
        let file = File::open(path).map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            offset: 0,
            eof: false,
            chunk_bytes: chunk_bytes.max(1),
            letter: Regex::new(r"\A\p{L}\z").expect("valid regex"),
        })
    }

    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(
        &mut self,
        specials: &SpecialSplitter,
        pretokenizer: &Pretokenizer,
    ) -> Result<Option<String>, TrainError> {
        let mut want = self.chunk_bytes;
        loop {
            self.fill(want)?;
            if self.eof {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let all = std::mem::take(&mut self.buf);
                return self.emit(all).map(Some);
            }
            if let Some(cut) = self.boundary(specials) {
                return self.cut_at(cut).map(Some);
            }
            if want >= self.chunk_bytes * MAX_GROWTH {
                if let Some(cut) = self.piece_boundary(specials, pretokenizer) {
                    return self.cut_at(cut).map(Some);
                }
            }
            if want >= (self.chunk_bytes * HARD_GROWTH).max(MIN_HARD_CUT) {
                let cut = self.char_boundary();
                return self.cut_at(cut).map(Some);
            }
            // Past MAX_GROWTH every try pre-tokenizes the whole buffer: grow geometrically.
            want = if want >= self.chunk_bytes * MAX_GROWTH { want * 2 } else { want + self.chunk_bytes };
        }
    }

    fn fill(&mut self, want: usize) -> Result<(), TrainError> {
        while !self.eof && self.buf.len() < want {
            let old = self.buf.len();
            self.buf.resize(want, 0);
            match self.file.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => return Err(TrainError::io(&self.path, e)),
            }
        }
        Ok(())
    }

    /// The last position `cut > 0` with `buf[cut] == b'\n'`, a letter just before it,
    /// and no special token across it.
    fn boundary(&self, specials: &SpecialSplitter) -> Option<usize> {
        let buf = &self.buf;
        memchr::memrchr_iter(b'\n', buf).find(|&cut| cut > 0 && self.letter_before(cut) && !specials.spans(buf, cut))
    }

    fn letter_before(&self, cut: usize) -> bool {
        let buf = &self.buf;
        let last = buf[cut - 1];
        if last.is_ascii() {
            return last.is_ascii_alphabetic();
        }
        let mut start = cut - 1;
        while start > 0 && cut - start < 4 && (buf[start] & 0xC0) == 0x80 {
            start -= 1;
        }
        match std::str::from_utf8(&buf[start..cut]) {
            Ok(s) => s.chars().all(char::is_alphabetic) && self.letter.is_match(s).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// A cut at a piece start in the pre-tokenized buffer: not one of the last two
    /// pieces (they may still grow), and right after a non-whitespace character (so
    /// that the chunk does not end in whitespace, which patterns treat differently at
    /// the end of the text), or just after a special token. `None` if there is none.
    fn piece_boundary(&self, specials: &SpecialSplitter, pretokenizer: &Pretokenizer) -> Option<usize> {
        let text = match std::str::from_utf8(&self.buf) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&self.buf[..e.valid_up_to()]).expect("valid prefix"),
        };
        let base = text.as_ptr() as usize;
        let mut last_segment = 0;
        let mut starts = Vec::new();
        specials.for_each_segment(text, |segment| {
            last_segment = segment.as_ptr() as usize - base;
            pretokenizer.for_each_piece(segment, |piece| starts.push(piece.as_ptr() as usize - base));
        });
        let after_text = |&c: &usize| text[..c].chars().next_back().is_some_and(|ch| !ch.is_whitespace());
        let piece_cut = starts.iter().rev().skip(2).copied().find(after_text).unwrap_or(0);
        let cut = piece_cut.max(last_segment);
        (cut > 0 && !specials.spans(&self.buf, cut)).then_some(cut)
    }

    fn char_boundary(&self) -> usize {
        let mut cut = self.buf.len();
        while cut > 0 && (self.buf[cut - 1] & 0xC0) == 0x80 {
            cut -= 1;
        }
        // `cut - 1` is now an ASCII or lead byte; cut before it unless that leaves nothing.
        if cut > 1 {
            cut - 1
        } else {
            self.buf.len()
        }
    }

    fn cut_at(&mut self, cut: usize) -> Result<String, TrainError> {
        let rest = self.buf.split_off(cut);
        let chunk = std::mem::replace(&mut self.buf, rest);
        self.emit(chunk)
    }

    fn emit(&mut self, chunk: Vec<u8>) -> Result<String, TrainError> {
        let offset = self.offset;
        self.offset += chunk.len() as u64;
        String::from_utf8(chunk).map_err(|e| TrainError::NotUtf8 {
            path: self.path.clone(),
            offset: offset + e.utf8_error().valid_up_to() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chunks_of(data: &[u8], chunk_bytes: usize, specials: &[&str]) -> Result<Vec<String>, TrainError> {
        let dir = std::env::temp_dir().join(format!("fastllm-chunks-{}-{chunk_bytes}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:x}.txt", data.len()));
        std::fs::File::create(&path).unwrap().write_all(data).unwrap();
        let specials: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
        let specials = SpecialSplitter::new(&specials).unwrap();
        let pretokenizer = Pretokenizer::new("cl100k").unwrap();
        let mut reader = FileChunks::open(&path, chunk_bytes)?;
        let mut out = Vec::new();
        while let Some(c) = reader.next_chunk(&specials, &pretokenizer)? {
            out.push(c);
        }
        std::fs::remove_file(&path).unwrap();
        Ok(out)
    }

    #[test]
    fn cuts_only_after_letters_before_newlines() {
        let text = "abc.\n\ndef\nghi  \nxyz\n";
        let chunks = chunks_of(text.as_bytes(), 4, &[]).unwrap();
        assert_eq!(chunks.concat(), text);
        assert_eq!(chunks[0], "abc.\n\ndef");
        for c in &chunks[1..] {
            assert!(c.starts_with('\n'));
        }
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.chars().last().unwrap().is_alphabetic());
        }
    }

    #[test]
    fn never_cuts_inside_a_special_token() {
        let chunks = chunks_of(b"aa<x\ny>bb\ncc", 3, &["<x\ny>"]).unwrap();
        assert_eq!(chunks, vec!["aa<x\ny>bb", "\ncc"]);
    }

    #[test]
    fn reports_the_offset_of_invalid_utf8() {
        let err = chunks_of(b"hello\nworld\xff\n", 4, &[]).unwrap_err();
        match err {
            TrainError::NotUtf8 { offset, .. } => assert_eq!(offset, 11),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn falls_back_to_piece_boundaries() {
        let text = "1234567890\n".repeat(20);
        let chunks = chunks_of(text.as_bytes(), 4, &[]).unwrap();
        assert_eq!(chunks.concat(), text);
        assert!(chunks.len() > 1);
        let pieces = Pretokenizer::new("cl100k").unwrap();
        let chunked: Vec<&str> = chunks.iter().flat_map(|c| pieces.pieces(c)).collect();
        assert_eq!(chunked, pieces.pieces(&text));
    }

    #[test]
    fn cuts_one_giant_piece_at_a_character_boundary() {
        let text = "ж".repeat(MIN_HARD_CUT); // 2 bytes a character: past the floor
        let chunks = chunks_of(text.as_bytes(), 3, &[]).unwrap();
        assert_eq!(chunks.concat(), text);
        assert!(chunks.len() > 1);
    }

    #[test]
    fn small_chunks_never_cut_a_piece_below_the_floor() {
        // One 6 KB symbol piece read 1 byte at a time stays one piece.
        let text = "§".repeat(3000) + "\nabc";
        let chunks = chunks_of(text.as_bytes(), 1, &[]).unwrap();
        assert_eq!(chunks.concat(), text);
        let pieces = Pretokenizer::new("cl100k").unwrap();
        let chunked: Vec<&str> = chunks.iter().flat_map(|c| pieces.pieces(c)).collect();
        assert_eq!(chunked, pieces.pieces(&text));
    }
}
