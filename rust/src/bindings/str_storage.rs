//! A str's characters read where CPython keeps them, without a call.
//!
//! The stable ABI lends no str's characters: `PyUnicode_AsUTF8AndSize`
//! encodes and caches a non-ASCII str's UTF-8 one character at a time, and
//! `PyUnicode_AsUCS4` copies the characters out widened. That copy alone
//! was 4-7% of encoding a cold text that is not ASCII (one thread, cl100k,
//! English and Russian), and a batch of short lines paid two calls a text.
//!
//! Every CPython since 3.3 stores an exact str compactly: a fixed header
//! (length at byte 16, a flags word at byte 32 that says ASCII or not and
//! 1, 2 or 4 bytes a character) with the characters right behind it. The
//! header grew a pointer before 3.12 (`wstr`), which is the only change up
//! to 3.14. Where this process runs one of those interpreters on a 64-bit
//! little-endian machine, and reading a str of each kind that way at import
//! gives back its characters exactly, strs are read in place; anywhere else
//! [`chars`] answers None and the callers use the calls above.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// A str's characters as CPython stores them (its "kind").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chars<'a> {
    /// All below 128: the bytes are the UTF-8.
    Ascii(&'a [u8]),
    /// Below 256, at least one of them 128 or more.
    Latin1(&'a [u8]),
    /// Below 65536; a surrogate is stored as itself.
    Ucs2(&'a [u16]),
    Ucs4(&'a [u32]),
}

/// Where a compact str's characters start, by how the header was laid out.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Byte offset of an ASCII str's characters.
    ascii_at: usize,
    /// Byte offset of any other compact str's characters.
    other_at: usize,
    /// Before 3.12 the flags word has a `ready` bit, which must be set.
    ready_bit: bool,
}

const LENGTH_AT: usize = 16;
const FLAGS_AT: usize = 32;

/// The layout of this interpreter's strs, once checked (unset: not known here).
static LAYOUT: OnceLock<Layout> = OnceLock::new();

/// Set by the test suite to make every str go through the interpreter's calls.
static CALLS_ONLY: AtomicBool = AtomicBool::new(false);

/// Decides at import whether strs can be read in place here (see the module's
/// documentation); where anything is in doubt, they are not.
pub fn decide(py: Python<'_>) {
    if let Ok(Some(layout)) = known_layout(py) {
        if reads_back_exactly(py, layout) {
            let _ = LAYOUT.set(layout);
        }
    }
}

/// The layout CPython documents for this version, if it is one of those above.
fn known_layout(py: Python<'_>) -> PyResult<Option<Layout>> {
    if !cfg!(all(target_pointer_width = "64", target_endian = "little")) {
        return Ok(None);
    }
    let name: String = py.import("sys")?.getattr("implementation")?.getattr("name")?.extract()?;
    let version = py.version_info();
    if name != "cpython" || version.major != 3 || !(9..=14).contains(&version.minor) {
        return Ok(None);
    }
    Ok(Some(if version.minor <= 11 {
        Layout { ascii_at: 48, other_at: 72, ready_bit: true }
    } else {
        Layout { ascii_at: 40, other_at: 56, ready_bit: false }
    }))
}

/// Whether strs of every kind, made by the interpreter, read back as the
/// text they were made from, and a subclass's instance is not read at all.
fn reads_back_exactly(py: Python<'_>, layout: Layout) -> bool {
    let samples = [
        "",
        "plain ascii",
        "caf\u{e9} \u{ff}",
        "\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442} \u{65e5}",
        "\u{1f44b} \u{10ffff}x",
    ];
    let fits = samples.iter().all(|&sample| {
        let s = PyString::new(py, sample);
        // SAFETY: a live str, read under the layout being checked: every
        // offset read lies within the smallest str object of any version.
        match unsafe { chars_with(s.as_ptr(), layout) } {
            Some(Chars::Ascii(bytes)) => sample.is_ascii() && bytes == sample.as_bytes(),
            Some(Chars::Latin1(units)) => {
                sample.chars().all(|c| (c as u32) < 256)
                    && !sample.is_ascii()
                    && units.iter().map(|&u| u as u32).eq(sample.chars().map(|c| c as u32))
            }
            Some(Chars::Ucs2(units)) => {
                sample.chars().all(|c| (c as u32) < 65536)
                    && sample.chars().any(|c| (c as u32) >= 256)
                    && units.iter().map(|&u| u as u32).eq(sample.chars().map(|c| c as u32))
            }
            Some(Chars::Ucs4(units)) => {
                sample.chars().any(|c| (c as u32) >= 65536)
                    && units.iter().copied().eq(sample.chars().map(|c| c as u32))
            }
            None => false,
        }
    });
    fits && subclass_is_not_read(py, layout)
}

fn subclass_is_not_read(py: Python<'_>, layout: Layout) -> bool {
    let Ok(sub) = py.eval(c"type('S', (str,), {})('abc')", None, None) else { return false };
    // SAFETY: a live object; the type check comes before any other read.
    unsafe { chars_with(sub.as_ptr(), layout) }.is_none()
}

/// The characters of `s` where it is an exact, compact str and this
/// interpreter's layout is known; None otherwise.
///
/// # Safety
/// `s` must be a live object, and the slice must not outlive it (a str's
/// characters never change while it lives).
#[inline]
pub unsafe fn chars<'a>(s: *mut ffi::PyObject) -> Option<Chars<'a>> {
    let layout = *LAYOUT.get()?;
    if CALLS_ONLY.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: as the caller promises.
    unsafe { chars_with(s, layout) }
}

/// # Safety
/// As [`chars`].
#[inline]
unsafe fn chars_with<'a>(s: *mut ffi::PyObject, layout: Layout) -> Option<Chars<'a>> {
    // Only an exact str: a subclass's instance keeps its characters elsewhere.
    // SAFETY: `s` is a live object.
    if unsafe { ffi::Py_TYPE(s) } != std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
        return None;
    }
    let base = s.cast::<u8>().cast_const();
    // SAFETY: both fields lie within every str's header, at these offsets in
    // every layout that `known_layout` admits.
    let (len, flags) = unsafe { (base.add(LENGTH_AT).cast::<isize>().read(), base.add(FLAGS_AT).cast::<u32>().read()) };
    let (kind, compact, ascii, ready) = ((flags >> 2) & 7, (flags >> 5) & 1, (flags >> 6) & 1, (flags >> 7) & 1);
    if compact == 0 || (layout.ready_bit && ready == 0) || len < 0 {
        return None;
    }
    let len = len as usize;
    // SAFETY: a compact str's `len` characters of `kind` bytes follow its header.
    unsafe {
        if ascii == 1 {
            return Some(Chars::Ascii(std::slice::from_raw_parts(base.add(layout.ascii_at), len)));
        }
        let data = base.add(layout.other_at);
        match kind {
            1 => Some(Chars::Latin1(std::slice::from_raw_parts(data, len))),
            2 => Some(Chars::Ucs2(std::slice::from_raw_parts(data.cast(), len))),
            4 => Some(Chars::Ucs4(std::slice::from_raw_parts(data.cast(), len))),
            _ => None,
        }
    }
}

impl Chars<'_> {
    /// Appends the characters' UTF-8 to `out`; false, with `out` unchanged,
    /// where one is a surrogate (which UTF-8 cannot hold: the caller then
    /// asks CPython, which raises its UnicodeEncodeError).
    pub fn push_utf8(self, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        // Each conversion is told the room it may use: UTF-8's most per character.
        let written = match self {
            Chars::Ascii(bytes) => {
                out.extend_from_slice(bytes);
                return true;
            }
            Chars::Latin1(units) => {
                out.reserve(2 * units.len());
                // SAFETY: `out` has room for 2 bytes per character past `start`.
                unsafe { simdutf::convert_latin1_to_utf8(units.as_ptr(), units.len(), out.as_mut_ptr().add(start)) }
            }
            Chars::Ucs2(units) => {
                // Read as UTF-16, a surrogate pair would become one character
                // that the str does not hold: such strs are left to CPython.
                if has_surrogate(units) {
                    return false;
                }
                out.reserve(3 * units.len());
                // SAFETY: `out` has room for 3 bytes per character past `start`
                // (no pairs, so none takes 4).
                unsafe { simdutf::convert_utf16le_to_utf8(units.as_ptr(), units.len(), out.as_mut_ptr().add(start)) }
            }
            Chars::Ucs4(units) => {
                out.reserve(4 * units.len());
                // SAFETY: as above, 4 bytes per character; simdutf answers 0 for
                // a surrogate, which is not valid UTF-32.
                unsafe { simdutf::convert_utf32_to_utf8(units.as_ptr(), units.len(), out.as_mut_ptr().add(start)) }
            }
        };
        // simdutf answers 0 for invalid input; a str that is not ASCII is
        // never empty, so 0 never stands for an empty conversion here.
        if written == 0 {
            return false;
        }
        // SAFETY: simdutf wrote `written` bytes of UTF-8 after `start`.
        unsafe { out.set_len(start + written) };
        true
    }
}

/// Whether any of `units` is a surrogate (U+D800-U+DFFF), in blocks the
/// compiler turns into vector compares.
fn has_surrogate(units: &[u16]) -> bool {
    units.chunks(64).any(|block| block.iter().fold(false, |seen, &u| seen | (u & 0xF800 == 0xD800)))
}

/// For the test suite: whether strs are read in place where they can be
/// (false: every str through the interpreter's calls).
pub fn set_read_in_place(on: bool) {
    CALLS_ONLY.store(!on, Ordering::Relaxed);
}

/// Whether strs are read in place in this process.
pub fn read_in_place() -> bool {
    LAYOUT.get().is_some() && !CALLS_ONLY.load(Ordering::Relaxed)
}
