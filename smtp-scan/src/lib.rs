//! A small, audited SIMD scanner for `smtp-proto`'s dot-stuffer.
//!
//! The dot-stuffer must find, in a message body, every byte pair that is not plain CRLF text: a CR not followed
//! by LF (bare CR), an LF not preceded by CR (bare LF), and, when dot-stuffing, an LF followed by a dot (a line that
//! starts with `.`). Everything between such pairs is copied unchanged. [`find_irregular`] returns the first such
//! pair, scanning 64 pairs per step with AVX2 when the CPU has it (checked once at run time), SSE2 otherwise on
//! x86_64, and a portable, safe 8-byte SWAR loop elsewhere. [`copy_fixed`] does the encoder's whole job between
//! the first and last bytes of a chunk in one pass: it copies and inserts what each irregular pair needs
//! ([`pair_insertion`]), 128 bytes per step.
//!
//! `smtp-proto` forbids `unsafe`; this crate exists so that the few `unsafe` lines SIMD needs (unaligned vector
//! loads and stores, `Vec::set_len` over the stored bytes, and the call of an AVX2 function once AVX2 is detected)
//! live in one module, `x86`, with a `// SAFETY:` comment on every block, while the rest of the crate denies
//! `unsafe_code`. Every path is tested against [`find_irregular_reference`] and [`copy_fixed_reference`],
//! byte-at-a-time loops, on all offsets around vector boundaries (`tests/differential.rs`).
//!
//! ```
//! use smtp_scan::{Check, find_irregular};
//!
//! // The pair at 4 (`\n` then `.`) starts a dot line; with line endings only, the bare LF at 9 (pair 8) is first.
//! let body = b"ab\r\n\n.cd\r\n\nx";
//! assert_eq!(find_irregular(body, Check::LineEndingsAndDots), Some(3));
//! assert_eq!(find_irregular(b"ab\r\n.cd\r\n", Check::LineEndingsAndDots), Some(3));
//! assert_eq!(find_irregular(b"ab\r\n.cd\r\n", Check::LineEndings), None);
//! assert_eq!(find_irregular(b"ab\r\ncd\nx", Check::LineEndings), Some(5));
//! ```

#![deny(unsafe_code)]

use std::sync::atomic::{AtomicU8, Ordering};

#[cfg(target_arch = "x86_64")]
mod x86;

/// What [`find_irregular`] looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// Bare CR and bare LF only (for a `BDAT` text body: normalization only).
    LineEndings,
    /// Bare CR, bare LF, and LF followed by `.` (for `DATA`: normalization and dot-stuffing).
    LineEndingsAndDots,
}

/// An implementation of the scan. [`find_irregular`] uses the best one the CPU supports
/// ([`Backend::detected`]); [`find_irregular_with`] runs a given one, for tests and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// x86_64 with AVX2 (32-byte vectors), selected at run time.
    Avx2,
    /// x86_64 baseline (16-byte vectors; SSE2 is part of x86_64).
    Sse2,
    /// Portable safe code, 8 bytes at a time in a `u64`.
    Swar,
}

impl Backend {
    /// Every backend, best first.
    pub const ALL: [Backend; 3] = [Backend::Avx2, Backend::Sse2, Backend::Swar];

    /// Whether this backend can run on this CPU.
    #[inline]
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Backend::Sse2 => true,
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Sse2 => false,
            Backend::Swar => true,
        }
    }

    /// The backend [`find_irregular`] uses: the best available one, detected once and cached.
    #[inline]
    pub fn detected() -> Backend {
        match DETECTED.load(Ordering::Relaxed) {
            AVX2 => Backend::Avx2,
            SSE2 => Backend::Sse2,
            SWAR => Backend::Swar,
            _ => detect(),
        }
    }
}

const UNKNOWN: u8 = 0;
const AVX2: u8 = 1;
const SSE2: u8 = 2;
const SWAR: u8 = 3;

/// The detected backend, [`UNKNOWN`] until the first call. Detection is idempotent, so a race only repeats it.
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cold]
fn detect() -> Backend {
    let best = Backend::ALL
        .into_iter()
        .find(|b| b.is_available())
        .unwrap_or(Backend::Swar);
    let code = match best {
        Backend::Avx2 => AVX2,
        Backend::Sse2 => SSE2,
        Backend::Swar => SWAR,
    };
    DETECTED.store(code, Ordering::Relaxed);
    best
}

/// Whether the pair `(a, b)` of adjacent bytes is irregular: `a` is a CR and `b` is not an LF (bare CR at `a`), or
/// `b` is an LF and `a` is not a CR (bare LF at `b`), or, with dots, `a` is an LF and `b` a dot (dot line).
#[inline(always)]
fn irregular_pair<const DOTS: bool>(a: u8, b: u8) -> bool {
    ((a == b'\r') != (b == b'\n')) || (DOTS && a == b'\n' && b == b'.')
}

/// The offset `k` of the first irregular pair `(input[k], input[k + 1])`, or `None` if there is none.
///
/// A pair is irregular when:
/// - `input[k]` is CR and `input[k + 1]` is not LF (a bare CR at `k`);
/// - `input[k + 1]` is LF and `input[k]` is not CR (a bare LF at `k + 1`);
/// - with [`Check::LineEndingsAndDots`], `input[k]` is LF and `input[k + 1]` is `.` (a line starting with a dot).
///
/// The first byte is only judged as the left side of a pair (an LF at offset 0 is not reported), the last byte
/// only as the right side (a CR at the end is not reported): the caller knows what comes before and after.
/// `None` for inputs shorter than two bytes.
#[inline]
pub fn find_irregular(input: &[u8], check: Check) -> Option<usize> {
    find_irregular_with(Backend::detected(), input, check)
}

/// [`find_irregular`] with a given backend.
///
/// # Panics
///
/// If `backend` is not [available](Backend::is_available) on this CPU.
#[inline]
pub fn find_irregular_with(backend: Backend, input: &[u8], check: Check) -> Option<usize> {
    match (backend, check) {
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Check::LineEndings) => x86::find_avx2::<false>(input),
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Check::LineEndingsAndDots) => x86::find_avx2::<true>(input),
        #[cfg(target_arch = "x86_64")]
        (Backend::Sse2, Check::LineEndings) => x86::find_sse2::<false>(input),
        #[cfg(target_arch = "x86_64")]
        (Backend::Sse2, Check::LineEndingsAndDots) => x86::find_sse2::<true>(input),
        #[cfg(not(target_arch = "x86_64"))]
        (Backend::Avx2 | Backend::Sse2, _) => panic!("{backend:?} is not available on this CPU"),
        (Backend::Swar, Check::LineEndings) => find_swar::<false>(input),
        (Backend::Swar, Check::LineEndingsAndDots) => find_swar::<true>(input),
    }
}

/// The most bytes [`copy_regular`] checks before copying them: still in the L2 cache when copied, and long enough
/// for libc's `memcpy` to use its fastest large-copy path. Measured on a 1 MiB CRLF body (AVX2, AMD EPYC): 4 KiB
/// spans 0.49x of a plain `memcpy`, 16 KiB 0.56x, 64 KiB 0.59x. ([`copy_fixed`], which the encoder uses now, is a
/// fused loop instead: one load and one vector store per byte, which measured faster once its hot loop was kept
/// down to the loads, stores and compares.)
const SPAN: usize = 64 * 1024;

/// [`find_irregular`] and the copy of the regular bytes before the hit: scans up to 64 KiB at a time, then copies
/// what it scanned with one `extend_from_slice`.
///
/// With an irregular pair at `k` (see [`find_irregular`]), appends `input[..=k]` to `out` (up to and including the
/// pair's first byte: what precedes the CR, LF or dot to insert) and returns `Some(k)`. Without one, appends all but
/// the last byte (`input[..len - 1]`, whose successor is unknown) and returns `None`.
#[inline]
pub fn copy_regular(input: &[u8], check: Check, out: &mut Vec<u8>) -> Option<usize> {
    copy_regular_with(Backend::detected(), input, check, out)
}

/// [`copy_regular`] with a given backend.
///
/// # Panics
///
/// If `backend` is not [available](Backend::is_available) on this CPU.
#[inline]
pub fn copy_regular_with(
    backend: Backend,
    input: &[u8],
    check: Check,
    out: &mut Vec<u8>,
) -> Option<usize> {
    copy_by_find(input, out, |s| find_irregular_with(backend, s, check))
}

/// [`copy_regular`] in two passes: find the hit in a span of [`SPAN`] bytes, then copy.
#[inline]
fn copy_by_find(
    input: &[u8],
    out: &mut Vec<u8>,
    find: impl Fn(&[u8]) -> Option<usize>,
) -> Option<usize> {
    let pairs = input.len().saturating_sub(1);
    let mut from = 0usize;
    loop {
        let end = from.saturating_add(SPAN + 1).min(input.len());
        if let Some(offset) = find(&input[from..end]) {
            let k = from + offset;
            out.extend_from_slice(&input[from..=k]);
            return Some(k);
        }
        if end == input.len() {
            out.extend_from_slice(&input[from..pairs]);
            return None;
        }
        // The pair at `end - 1` is checked with the next span.
        out.extend_from_slice(&input[from..end - 1]);
        from = end - 1;
    }
}

/// What goes between the two bytes of the pair `(a, b)` to make it regular: an LF after a bare CR (and, with
/// [`Check::LineEndingsAndDots`], a second dot when the new line starts with `.`), a CR before a bare LF, a second
/// dot after an LF followed by `.`; nothing for a regular pair. The insertions of [`copy_fixed`].
///
/// ```
/// use smtp_scan::{Check, pair_insertion};
///
/// assert_eq!(pair_insertion(b'\r', b'.', Check::LineEndingsAndDots), b"\n.");
/// assert_eq!(pair_insertion(b'\r', b'.', Check::LineEndings), b"\n");
/// assert_eq!(pair_insertion(b'a', b'\n', Check::LineEndings), b"\r");
/// assert_eq!(pair_insertion(b'\n', b'.', Check::LineEndingsAndDots), b".");
/// assert_eq!(pair_insertion(b'\r', b'\n', Check::LineEndingsAndDots), b"");
/// ```
pub fn pair_insertion(a: u8, b: u8, check: Check) -> &'static [u8] {
    let dots = check == Check::LineEndingsAndDots;
    match (a, b) {
        (b'\r', b'\n') => b"",
        (b'\r', b'.') if dots => b"\n.",
        (b'\r', _) => b"\n",
        (_, b'\n') => b"\r",
        (b'\n', b'.') if dots => b".",
        _ => b"",
    }
}

/// The insertion for a pair known to be irregular (see [`pair_insertion`]), as two bytes of which the first
/// `n` count, for the vector loops (which write both and advance by `n`).
#[inline(always)]
fn insertion<const DOTS: bool>(a: u8, b: u8) -> ([u8; 2], usize) {
    if a == b'\r' {
        ([b'\n', b'.'], 1 + usize::from(DOTS && b == b'.'))
    } else if b == b'\n' {
        ([b'\r', 0], 1)
    } else {
        ([b'.', 0], 1)
    }
}

/// Copies `input` but its last byte to `out`, fixing every pair on the way: after each byte `input[k]`
/// (`k < input.len() - 1`), appends [`pair_insertion`]`(input[k], input[k + 1], check)`.
///
/// So every bare CR inside the slice gets its LF, every bare LF (but one at offset 0, whose predecessor is not
/// known) gets its CR, and, with [`Check::LineEndingsAndDots`], every line that starts inside the slice after its
/// first byte and begins with `.` gets a second dot. The first and last bytes are the caller's: the encoder knows
/// what comes before and after. Nothing is appended for inputs shorter than two bytes.
///
/// With AVX2 or SSE2, the whole slice is done in one pass of 128-byte groups, loaded and checked, then stored to
/// `out`'s spare capacity with aligned vector stores: a group whose only irregular pair is a line starting with a
/// dot is stored with the dot doubled in the loop itself (taking one input byte less, so the stores stay aligned),
/// any other group with irregular pairs goes to an out-of-line fix (which realigns the output after dot lines;
/// bare line endings come in runs, one per line, and are left unaligned rather than checked twice).
///
/// ```
/// use smtp_scan::{Check, copy_fixed};
///
/// let mut out = Vec::new();
/// copy_fixed(b"a\nb\r.c\r\n.d", Check::LineEndingsAndDots, &mut out);
/// assert_eq!(out, b"a\r\nb\r\n..c\r\n..");
/// ```
#[inline]
pub fn copy_fixed(input: &[u8], check: Check, out: &mut Vec<u8>) {
    copy_fixed_with(Backend::detected(), input, check, out)
}

/// [`copy_fixed`] with a given backend.
///
/// # Panics
///
/// If `backend` is not [available](Backend::is_available) on this CPU.
#[inline]
pub fn copy_fixed_with(backend: Backend, input: &[u8], check: Check, out: &mut Vec<u8>) {
    match (backend, check) {
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Check::LineEndings) => x86::copy_fixed_avx2::<false>(input, out),
        #[cfg(target_arch = "x86_64")]
        (Backend::Avx2, Check::LineEndingsAndDots) => x86::copy_fixed_avx2::<true>(input, out),
        #[cfg(target_arch = "x86_64")]
        (Backend::Sse2, Check::LineEndings) => x86::copy_fixed_sse2::<false>(input, out),
        #[cfg(target_arch = "x86_64")]
        (Backend::Sse2, Check::LineEndingsAndDots) => x86::copy_fixed_sse2::<true>(input, out),
        #[cfg(not(target_arch = "x86_64"))]
        (Backend::Avx2 | Backend::Sse2, _) => panic!("{backend:?} is not available on this CPU"),
        (Backend::Swar, Check::LineEndings) => {
            copy_fixed_by_find::<false>(input, out, find_swar::<false>)
        }
        (Backend::Swar, Check::LineEndingsAndDots) => {
            copy_fixed_by_find::<true>(input, out, find_swar::<true>)
        }
    }
}

/// [`copy_fixed`] by repeated [`find_irregular`]: copy up to the hit, append its insertion, go on after it (the
/// SWAR backend, and the vector backends' last bytes).
#[inline]
fn copy_fixed_by_find<const DOTS: bool>(
    input: &[u8],
    out: &mut Vec<u8>,
    find: impl Fn(&[u8]) -> Option<usize>,
) {
    let mut from = 0;
    while let Some(offset) = find(&input[from..]) {
        let k = from + offset;
        out.extend_from_slice(&input[from..=k]);
        let (bytes, n) = insertion::<DOTS>(input[k], input[k + 1]);
        out.extend_from_slice(&bytes[..n]);
        from = k + 1;
    }
    if let Some(rest) = input.get(from..input.len().saturating_sub(1)) {
        out.extend_from_slice(rest);
    }
}

/// The reference for [`copy_fixed`], one pair at a time. For tests and fuzzing.
pub fn copy_fixed_reference(input: &[u8], check: Check, out: &mut Vec<u8>) {
    for w in input.windows(2) {
        out.push(w[0]);
        out.extend_from_slice(pair_insertion(w[0], w[1], check));
    }
}

/// The reference: the same result as [`find_irregular`], one pair at a time. For tests and fuzzing.
pub fn find_irregular_reference(input: &[u8], check: Check) -> Option<usize> {
    match check {
        Check::LineEndings => find_scalar::<false>(input, 0),
        Check::LineEndingsAndDots => find_scalar::<true>(input, 0),
    }
}

/// The first irregular pair at or after `from`, one pair at a time (the reference, and the vector paths' tails for
/// short inputs).
#[inline]
fn find_scalar<const DOTS: bool>(input: &[u8], from: usize) -> Option<usize> {
    input
        .windows(2)
        .skip(from)
        .position(|w| irregular_pair::<DOTS>(w[0], w[1]))
        .map(|k| k + from)
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ONES: u64 = 0x0101_0101_0101_0101;

/// `0x80` in every byte of `x` equal to `c`, `0` in the others (exact: no borrow from one byte into the next).
#[inline(always)]
fn eq_bytes(x: u64, c: u8) -> u64 {
    let v = x ^ (ONES * u64::from(c));
    !(((v & LOW7) + LOW7) | v | LOW7)
}

/// `0x80` in byte `j` when the pair (byte `j` of `a`, byte `j` of `b`) is irregular.
#[inline(always)]
fn irregular_swar<const DOTS: bool>(a: u64, b: u64) -> u64 {
    let mut m = eq_bytes(a, b'\r') ^ eq_bytes(b, b'\n');
    if DOTS {
        m |= eq_bytes(a, b'\n') & eq_bytes(b, b'.');
    }
    m
}

/// 8 bytes from `at`, little-endian (byte `at` in the low bits). `input` must have them.
#[inline(always)]
fn load8(input: &[u8], at: usize) -> u64 {
    match input[at..].first_chunk::<8>() {
        Some(bytes) => u64::from_le_bytes(*bytes),
        None => unreachable!("load8 out of bounds"),
    }
}

/// The SWAR backend: 8 pairs per step from two overlapping 8-byte loads; safe code only.
fn find_swar<const DOTS: bool>(input: &[u8]) -> Option<usize> {
    let pairs = input.len().saturating_sub(1);
    if pairs < 8 {
        return find_scalar::<DOTS>(input, 0);
    }
    let mut k = 0;
    while k + 8 <= pairs {
        let m = irregular_swar::<DOTS>(load8(input, k), load8(input, k + 1));
        if m != 0 {
            return Some(k + (m.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    if k < pairs {
        // The last 8 pairs, overlapping pairs already found regular: the first hit is at or after `k`.
        let s = pairs - 8;
        let m = irregular_swar::<DOTS>(load8(input, s), load8(input, s + 1));
        if m != 0 {
            return Some(s + (m.trailing_zeros() / 8) as usize);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_bytes_is_exact() {
        for c in [0u8, 1, b'\n', b'\r', b'.', 0x7f, 0x80, 0xff] {
            for x in 0..=255u8 {
                for y in [0u8, 1, c, c.wrapping_sub(1), c.wrapping_add(1), 0x80, 0xff] {
                    let word = u64::from_le_bytes([x, y, c, x, y, 0, 0xff, x]);
                    let expected = word
                        .to_le_bytes()
                        .iter()
                        .enumerate()
                        .map(|(j, &b)| if b == c { 0x80u64 << (8 * j) } else { 0 })
                        .fold(0, |a, b| a | b);
                    assert_eq!(eq_bytes(word, c), expected, "{word:#x} {c}");
                }
            }
        }
    }

    #[test]
    fn detection_is_cached_and_available() {
        let b = Backend::detected();
        assert!(b.is_available());
        assert_eq!(Backend::detected(), b);
        assert!(Backend::Swar.is_available());
        #[cfg(target_arch = "x86_64")]
        assert!(Backend::Sse2.is_available());
    }
}
