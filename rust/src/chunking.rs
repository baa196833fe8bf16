//! Cuts text into chunks that can be pre-tokenized independently: training and
//! `fastllm prepare` stream files this way ([`FileChunks`]), and long strings are
//! cut by the same rules ([`text_chunks`]), so a file and its text give the same chunks.
//!
//! A chunk ends just before a newline that follows a letter (`\p{L}`), and never
//! inside a special token. With the built-in split patterns no piece crosses such a
//! point or looks across it (letter runs stop at the newline just as they stop at
//! the end of the text), so the pieces of the chunks, one by one, are exactly the
//! pieces of the whole text. A custom pattern whose matches cross a letter-newline
//! boundary would see the text cut there.
//!
//! If no such boundary turns up within [`MAX_GROWTH`] chunk sizes, the buffered text
//! is pre-tokenized and cut at the start of a piece that follows a non-whitespace
//! character, leaving at least two pieces for the next chunk (or just after a special
//! token), which is again exact for the built-in patterns. Only a buffer of
//! [`HARD_GROWTH`] chunk sizes, and at least [`MIN_HARD_CUT`] bytes, with no piece
//! boundary at all (one giant piece) is cut at a character boundary, so memory stays
//! bounded while pieces shorter than [`MIN_HARD_CUT`] are never cut, whatever the
//! chunk size.

use std::convert::Infallible;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::pretokenize::{is_letter, Pretokenizer};
use crate::specials::SpecialMatcher;

/// A chunk may grow to this many times the target size while looking for a
/// letter-newline boundary.
pub const MAX_GROWTH: usize = 8;
/// ... and to this many times while looking for any piece boundary.
pub const HARD_GROWTH: usize = 64;
/// A giant piece is never cut before the buffer holds this many bytes.
pub const MIN_HARD_CUT: usize = 1 << 20;
/// The buffer grows by at most this much a read, so that a huge `chunk_bytes`
/// costs memory only for the bytes a file really has.
const MAX_READ: usize = 1 << 22;

/// A file that cannot be read, or is not UTF-8.
#[derive(Debug)]
pub enum ChunkError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `offset` is the byte offset of the first bad byte in the file.
    NotUtf8 {
        path: PathBuf,
        offset: u64,
    },
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            Self::NotUtf8 { path, offset } => {
                write!(f, "{} is not valid UTF-8 (first bad byte at offset {offset})", path.display())
            }
        }
    }
}

impl std::error::Error for ChunkError {}

/// What the cutting rules read from: a file read on demand, or a string.
trait Source {
    type Error;
    /// Buffers at least `want` bytes past the current position, unless the input
    /// ends first. Returns everything buffered, and whether that is all the input.
    fn fill(&mut self, want: usize) -> Result<(&[u8], bool), Self::Error>;
}

/// The cutting rules, for one chunk size, special-token set and pattern.
struct Cutter<'a> {
    chunk_bytes: usize,
    specials: &'a SpecialMatcher,
    pretokenizer: &'a Pretokenizer,
}

impl Cutter<'_> {
    /// The length of the next chunk; 0 once the input is used up.
    fn next_len<S: Source>(&self, source: &mut S) -> Result<usize, S::Error> {
        let chunk = self.chunk_bytes.max(1);
        let soft_limit = chunk.saturating_mul(MAX_GROWTH);
        let hard_limit = chunk.saturating_mul(HARD_GROWTH).max(MIN_HARD_CUT);
        let mut want = chunk;
        loop {
            let (buf, at_end) = source.fill(want)?;
            if at_end {
                return Ok(buf.len());
            }
            if let Some(cut) = self.newline_cut(buf) {
                return Ok(cut);
            }
            if want >= soft_limit {
                if let Some(cut) = self.piece_cut(buf) {
                    return Ok(cut);
                }
            }
            if want >= hard_limit {
                return Ok(char_cut(buf));
            }
            // Past the soft limit every try pre-tokenizes the whole buffer: grow geometrically.
            want = if want >= soft_limit { want.saturating_mul(2) } else { want.saturating_add(chunk) };
        }
    }

    /// The last position `cut > 0` with `buf[cut] == b'\n'`, a letter just before it,
    /// and no special token across it.
    fn newline_cut(&self, buf: &[u8]) -> Option<usize> {
        memchr::memrchr_iter(b'\n', buf)
            .find(|&cut| cut > 0 && letter_before(buf, cut) && !self.specials.spans(buf, cut))
    }

    /// A cut at a piece start in the pre-tokenized buffer: not one of the last two
    /// pieces (they may still grow), and right after a non-whitespace character (so
    /// that the chunk does not end in whitespace, which patterns treat differently at
    /// the end of the text), or just after a special token. `None` if there is none.
    fn piece_cut(&self, buf: &[u8]) -> Option<usize> {
        let text = match std::str::from_utf8(buf) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&buf[..e.valid_up_to()]).expect("valid prefix"),
        };
        let mut last_segment = 0;
        let mut starts = Vec::new();
        self.specials.for_each_segment_range(text, |from, to| {
            last_segment = from;
            // If the regex engine gives up on a custom pattern, the pieces found before
            // are still places to cut (no text is lost by a cut): the error comes up
            // again, and is reported, when the chunk is encoded or counted.
            let _ = self.pretokenizer.for_each_piece_range(&text[from..to], |start, _| starts.push(from + start));
        });
        let after_text = |&c: &usize| text[..c].chars().next_back().is_some_and(|ch| !ch.is_whitespace());
        let piece_cut = starts.iter().rev().skip(2).copied().find(after_text).unwrap_or(0);
        let cut = piece_cut.max(last_segment);
        (cut > 0 && !self.specials.spans(buf, cut)).then_some(cut)
    }
}

/// Whether the character that ends at `buf[cut]` is a letter.
/// The first position in `from..to` of `text` where a chunk may start by the
/// letter-newline rule above (a newline after a letter), for texts without
/// special tokens: where a batch cuts a long text to share it between threads.
pub fn first_newline_cut(text: &[u8], from: usize, to: usize) -> Option<usize> {
    let from = from.max(1);
    let to = to.min(text.len());
    if from >= to {
        return None;
    }
    memchr::memchr_iter(b'\n', &text[from..to]).map(|k| from + k).find(|&cut| letter_before(text, cut))
}

fn letter_before(buf: &[u8], cut: usize) -> bool {
    let last = buf[cut - 1];
    if last.is_ascii() {
        return last.is_ascii_alphabetic();
    }
    let mut start = cut - 1;
    while start > 0 && cut - start < 4 && (buf[start] & 0xC0) == 0x80 {
        start -= 1;
    }
    let Ok(s) = std::str::from_utf8(&buf[start..cut]) else { return false };
    let mut chars = s.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if is_letter(c))
}

/// The start of the last character in `buf` (all of `buf` if that leaves nothing).
fn char_cut(buf: &[u8]) -> usize {
    let mut cut = buf.len();
    while cut > 0 && (buf[cut - 1] & 0xC0) == 0x80 {
        cut -= 1;
    }
    // `cut - 1` is now an ASCII or lead byte; cut before it unless that leaves nothing.
    if cut > 1 {
        cut - 1
    } else {
        buf.len()
    }
}

/// Reads one file as a sequence of UTF-8 chunks.
pub struct FileChunks {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    offset: u64,
    eof: bool,
    chunk_bytes: usize,
}

impl FileChunks {
    pub fn open(path: &Path, chunk_bytes: usize) -> Result<Self, ChunkError> {
        let file = File::open(path).map_err(|error| ChunkError::Io { path: path.to_path_buf(), error })?;
        Ok(Self { path: path.to_path_buf(), file, buf: Vec::new(), offset: 0, eof: false, chunk_bytes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The byte offset in the file where the next chunk starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(
        &mut self,
        specials: &SpecialMatcher,
        pretokenizer: &Pretokenizer,
    ) -> Result<Option<String>, ChunkError> {
        let cutter = Cutter { chunk_bytes: self.chunk_bytes, specials, pretokenizer };
        let len = cutter.next_len(self)?;
        if len == 0 {
            return Ok(None);
        }
        let rest = self.buf.split_off(len);
        let chunk = std::mem::replace(&mut self.buf, rest);
        let offset = self.offset;
        self.offset += chunk.len() as u64;
        String::from_utf8(chunk).map(Some).map_err(|e| ChunkError::NotUtf8 {
            path: self.path.clone(),
            offset: offset + e.utf8_error().valid_up_to() as u64,
        })
    }
}

impl Source for FileChunks {
    type Error = ChunkError;

    fn fill(&mut self, want: usize) -> Result<(&[u8], bool), ChunkError> {
        while !self.eof && self.buf.len() < want {
            let old = self.buf.len();
            self.buf.resize(old + (want - old).min(MAX_READ), 0);
            match self.file.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(error) => {
                    self.buf.truncate(old);
                    return Err(ChunkError::Io { path: self.path.clone(), error });
                }
            }
        }
        Ok((&self.buf, self.eof))
    }
}

/// A string seen through the same window a file of its bytes would be read into.
struct StrSource<'t> {
    text: &'t [u8],
    pos: usize,
    /// End of the bytes a file reader would have buffered by now.
    filled: usize,
    eof: bool,
}

impl Source for StrSource<'_> {
    type Error = Infallible;

    fn fill(&mut self, want: usize) -> Result<(&[u8], bool), Infallible> {
        if !self.eof && self.filled - self.pos < want {
            match self.pos.checked_add(want).filter(|&end| end <= self.text.len()) {
                Some(end) => self.filled = end,
                None => {
                    self.filled = self.text.len();
                    self.eof = true;
                }
            }
        }
        Ok((&self.text[self.pos..self.filled], self.eof))
    }
}

/// Cuts `text` into chunks of about `chunk_bytes` by the rules above (the same
/// chunks [`FileChunks`] gives for a file holding `text`). They concatenate to `text`.
pub fn text_chunks<'t>(
    text: &'t str,
    chunk_bytes: usize,
    specials: &SpecialMatcher,
    pretokenizer: &Pretokenizer,
) -> Vec<&'t str> {
    let cutter = Cutter { chunk_bytes, specials, pretokenizer };
    let mut source = StrSource { text: text.as_bytes(), pos: 0, filled: 0, eof: false };
    let mut chunks = Vec::new();
    loop {
        let Ok(len) = cutter.next_len(&mut source);
        if len == 0 {
            return chunks;
        }
        // Every cut is at a character boundary in valid UTF-8; this only guards it.
        let mut end = source.pos + len;
        while !text.is_char_boundary(end) {
            end += 1;
        }
        chunks.push(&text[source.pos..end]);
        source.pos = end;
        source.filled = source.filled.max(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file holding `data`, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(data: &[u8]) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!("fastllm-chunks-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{}.txt", NEXT.fetch_add(1, Ordering::Relaxed)));
            File::create(&path).unwrap().write_all(data).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn matcher(specials: &[&str]) -> SpecialMatcher {
        SpecialMatcher::new(specials).unwrap()
    }

    fn cl100k() -> Pretokenizer {
        Pretokenizer::new("cl100k").unwrap()
    }

    /// The chunks of a file holding `data`, each with its offset.
    fn file_chunks(data: &[u8], chunk_bytes: usize, specials: &[&str]) -> Result<Vec<(String, u64)>, ChunkError> {
        let file = TempFile::new(data);
        let (specials, pretokenizer) = (matcher(specials), cl100k());
        let mut reader = FileChunks::open(&file.0, chunk_bytes)?;
        let mut out = Vec::new();
        loop {
            let offset = reader.offset();
            match reader.next_chunk(&specials, &pretokenizer)? {
                Some(c) => out.push((c, offset)),
                None => return Ok(out),
            }
        }
    }

    fn chunks_of(data: &[u8], chunk_bytes: usize, specials: &[&str]) -> Result<Vec<String>, ChunkError> {
        Ok(file_chunks(data, chunk_bytes, specials)?.into_iter().map(|(c, _)| c).collect())
    }

    /// Checks the file and string chunkers agree and keep every piece; returns the chunks.
    fn checked_chunks(text: &str, chunk_bytes: usize, specials: &[&str]) -> Vec<String> {
        let from_file = file_chunks(text.as_bytes(), chunk_bytes, specials).unwrap();
        let (matcher, pretokenizer) = (matcher(specials), cl100k());
        let from_text = text_chunks(text, chunk_bytes, &matcher, &pretokenizer);
        let chunks: Vec<String> = from_file.iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(chunks, from_text, "file and string chunks differ");
        let mut offset = 0;
        for (chunk, at) in &from_file {
            assert_eq!(*at, offset);
            assert!(!chunk.is_empty());
            offset += chunk.len() as u64;
        }
        assert_eq!(chunks.concat(), text);
        let pieces = |t: &str| {
            let mut out = Vec::new();
            matcher
                .for_each_segment(t, |s| out.extend(pretokenizer.pieces(s).unwrap().into_iter().map(str::to_string)));
            out
        };
        let chunked: Vec<String> = chunks.iter().flat_map(|c| pieces(c)).collect();
        assert_eq!(chunked, pieces(text), "a cut changed the pieces");
        chunks
    }

    #[test]
    fn cuts_only_after_letters_before_newlines() {
        let text = "abc.\n\ndef\nghi  \nxyz\n";
        let chunks = checked_chunks(text, 4, &[]);
        assert_eq!(chunks[0], "abc.\n\ndef");
        for c in &chunks[1..] {
            assert!(c.starts_with('\n'));
        }
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.chars().last().unwrap().is_alphabetic());
        }
    }

    #[test]
    fn non_ascii_letters_end_chunks_and_marks_do_not() {
        assert_eq!(checked_chunks("жж\nя\u{301}\nx", 2, &[]), vec!["жж", "\nя\u{301}\nx"]);
    }

    #[test]
    fn never_cuts_inside_a_special_token() {
        assert_eq!(checked_chunks("aa<x\ny>bb\ncc", 3, &["<x\ny>"]), vec!["aa<x\ny>bb", "\ncc"]);
    }

    #[test]
    fn reports_the_offset_of_invalid_utf8() {
        let err = chunks_of(b"hello\nworld\xff\n", 4, &[]).unwrap_err();
        match err {
            ChunkError::NotUtf8 { offset, .. } => assert_eq!(offset, 11),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reports_the_true_offset_of_invalid_utf8_late_in_a_file() {
        let mut data = "word\n".repeat(10_000).into_bytes();
        let bad = data.len() + 3;
        data.extend_from_slice(b"abc\xe2\x82z\n");
        for chunk_bytes in [1, 7, 4096, 1 << 20] {
            match chunks_of(&data, chunk_bytes, &[]) {
                Err(ChunkError::NotUtf8 { offset, .. }) => assert_eq!(offset, bad as u64, "chunk_bytes {chunk_bytes}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        // A sequence cut short by the end of the file.
        match chunks_of(b"abc\n\xe2\x82", 2, &[]) {
            Err(ChunkError::NotUtf8 { offset, .. }) => assert_eq!(offset, 4),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_files_are_io_errors() {
        let path = std::env::temp_dir().join("fastllm-no-such-dir/none.txt");
        match FileChunks::open(&path, 10) {
            Err(ChunkError::Io { path: p, error }) => {
                assert_eq!(p, path);
                assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
            }
            _ => panic!("opened a missing file"),
        }
    }

    #[test]
    fn falls_back_to_piece_boundaries() {
        let text = "1234567890\n".repeat(20);
        assert!(checked_chunks(&text, 4, &[]).len() > 1);
    }

    #[test]
    fn cuts_one_giant_piece_at_a_character_boundary() {
        let text = "ж".repeat(MIN_HARD_CUT); // 2 bytes a character: past the floor
        let chunks = text_chunks(&text, 3, &SpecialMatcher::none(), &cl100k());
        assert_eq!(chunks.concat(), text);
        assert!(chunks.len() > 1);
        assert_eq!(chunks, chunks_of(text.as_bytes(), 3, &[]).unwrap());
    }

    #[test]
    fn small_chunks_never_cut_a_piece_below_the_floor() {
        // One 6 KB symbol piece read 1 byte at a time stays one piece.
        checked_chunks(&("§".repeat(3000) + "\nabc"), 1, &[]);
    }

    #[test]
    fn edge_sizes() {
        assert!(checked_chunks("", 5, &[]).is_empty());
        assert_eq!(checked_chunks("ab\ncd", 0, &[]), vec!["ab", "\ncd"]);
        assert_eq!(checked_chunks("ab\ncd", usize::MAX, &[]), vec!["ab\ncd"]);
        // Exactly one chunk size left: the file reader has not seen the end yet.
        assert_eq!(checked_chunks("ab\ncd", 5, &[]), vec!["ab", "\ncd"]);
    }

    #[test]
    fn pseudo_random_texts_keep_their_pieces() {
        let alphabet: Vec<char> = "ab Z1ж日\u{301} \n\n\r\t.!'s<e>".chars().collect();
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1d);
        for k in 0..300 {
            let text: String = (0..k * 3).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            for chunk_bytes in [1, 2, 5, 16] {
                checked_chunks(&text, chunk_bytes, &["<e>", "\n\n"]);
            }
        }
    }
}
