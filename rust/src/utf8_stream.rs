//! Streaming UTF-8 decoding: bytes go in as tokens arrive, and only complete
//! characters come out (what `IncrementalDecoder` is built on).

/// Appends the UTF-8 decoding of `bytes` to `out`, replacing every maximal
/// invalid subsequence with U+FFFD (the same substitution as Python's
/// `bytes.decode("utf-8", "replace")`), except that an incomplete sequence at
/// the very end is left undecoded. Returns how many bytes were consumed.
pub fn decode_complete_prefix(bytes: &[u8], out: &mut String) -> usize {
    let mut rest = bytes;
    let mut consumed = 0;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return consumed + rest.len();
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // SAFETY-free: from_utf8 just validated this prefix.
                out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                match e.error_len() {
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = &rest[valid + bad..];
                        consumed += valid + bad;
                    }
                    // Incomplete sequence at the end: it may still complete.
                    None => return consumed + valid,
                }
            }
        }
    }
}

/// Incremental decoder state: bytes of an unfinished character carried over
/// between calls.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`; returns the text of all characters completed so far.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut out = String::new();
        if self.pending.is_empty() {
            let used = decode_complete_prefix(bytes, &mut out);
            self.pending.extend_from_slice(&bytes[used..]);
        } else {
            self.pending.extend_from_slice(bytes);
            let used = decode_complete_prefix(&self.pending, &mut out);
            self.pending.drain(..used);
        }
        out
    }

    /// Emits whatever is left; an unfinished character becomes U+FFFD.
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    /// Drops any pending bytes.
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Bytes of an unfinished character held back so far.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_all(chunks: &[&[u8]]) -> String {
        let mut d = Utf8Stream::new();
        let mut s = String::new();
        for c in chunks {
            s.push_str(&d.push(c));
        }
        s.push_str(&d.flush());
        s
    }

    #[test]
    fn splits_inside_characters_are_held_back() {
        let euro = "€".as_bytes();
        let mut d = Utf8Stream::new();
        assert_eq!(d.push(&euro[..1]), "");
        assert_eq!(d.push(&euro[1..2]), "");
        assert_eq!(d.push(&euro[2..]), "€");
        assert_eq!(d.flush(), "");
    }

    #[test]
    fn streaming_equals_lossy_decoding() {
        let samples: Vec<Vec<u8>> = vec![
            b"plain".to_vec(),
            "héllo 👋🏽 世界".as_bytes().to_vec(),
            vec![0xff, b'a', 0xe2, 0x82, b'b', 0xf0, 0x9f, 0x98],
            vec![0xe2, 0x82],
            vec![0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80],
        ];
        for bytes in samples {
            let expected = String::from_utf8_lossy(&bytes).into_owned();
            for split in 0..=bytes.len() {
                assert_eq!(stream_all(&[&bytes[..split], &bytes[split..]]), expected);
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(stream_all(&singles), expected);
        }
    }
}
