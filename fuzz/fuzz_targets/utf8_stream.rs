//! The incremental UTF-8 decoder: any bytes cut anywhere must stream to exactly the
//! lossy decoding of the whole (U+FFFD per maximal invalid subsequence), holding back
//! only the start of a character that may still complete.
#![no_main]

use fastllm::utf8_stream::{decode_complete_prefix, Utf8Stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (bytes, cuts) = input;
    let expected = String::from_utf8_lossy(&bytes).into_owned();

    // Cut at the given lengths (mod what is left), then once more, reusing the stream.
    let mut stream = Utf8Stream::new();
    for _ in 0..2 {
        let mut out = String::new();
        let mut rest: &[u8] = &bytes;
        for &c in &cuts {
            let k = (c as usize) % (rest.len() + 1);
            out.push_str(&stream.push(&rest[..k]));
            rest = &rest[k..];
            let pending = stream.pending();
            assert!(pending.len() < 4, "held back {} bytes", pending.len());
            if let Err(e) = std::str::from_utf8(pending) {
                assert!(e.valid_up_to() == 0 && e.error_len().is_none(), "held back an invalid sequence {pending:?}");
            } else {
                assert!(pending.is_empty(), "held back complete text {pending:?}");
            }
        }
        out.push_str(&stream.push(rest));
        out.push_str(&stream.flush());
        assert!(stream.pending().is_empty());
        assert_eq!(out, expected);
    }

    // Byte by byte, and reset drops what is pending.
    let mut out = String::new();
    for b in &bytes {
        out.push_str(&stream.push(std::slice::from_ref(b)));
    }
    out.push_str(&stream.flush());
    assert_eq!(out, expected);
    stream.push(&bytes);
    stream.reset();
    assert!(stream.pending().is_empty());

    // The prefix decoder consumes all but an incomplete tail.
    let mut prefix = String::new();
    let used = decode_complete_prefix(&bytes, &mut prefix);
    assert!(used <= bytes.len() && bytes.len() - used < 4);
    prefix.push_str(&String::from_utf8_lossy(&bytes[used..]));
    assert_eq!(prefix, expected);
});
