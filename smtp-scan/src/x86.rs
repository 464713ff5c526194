//! The x86_64 vector backends: the only module of the crate allowed to use `unsafe`.
//!
//! What is `unsafe` here, and why it is sound:
//! - unaligned vector loads (`_mm_loadu_si128`, `_mm256_loadu_si256`) take a raw pointer: [`load16`] and
//!   [`load32`] only take it from a `&[u8; 16]` / `&[u8; 32]` obtained with a bounds-checked `get`, so a wrong
//!   index panics instead of reading out of bounds (the loop bounds make the check always pass, and the compiler
//!   mostly removes it); unaligned loads need no alignment;
//! - unaligned vector stores (`_mm_storeu_si128`, `_mm256_storeu_si256`) into the spare capacity of the output
//!   `Vec`: [`store16`] and [`store32`] only take the pointer from a `&mut [MaybeUninit<u8>; 16]` / `; 32]`
//!   obtained with a bounds-checked `get_mut`, so a store never leaves the allocation;
//! - `Vec::set_len` after those stores ([`copy_fixed_avx2_body`], [`copy_fixed_sse2_body`]): the loop walks the
//!   spare capacity with a shrinking `&mut [MaybeUninit<u8>]` that only moves past bytes just written (the `GROUP`
//!   bytes a clean or single-dot group stores, or what the fix function reports, checked against its [`Window`]
//!   count of initialized bytes with an `assert!`, so a logic error panics instead of exposing uninitialized
//!   memory), and the length grows by exactly the distance walked;
//! - calling a `#[target_feature]` function from code compiled without that feature: [`find_avx2_body`] and
//!   [`copy_fixed_avx2_body`] are only called after `is_x86_feature_detected!("avx2")`, and [`find_sse2_body`]
//!   and [`copy_fixed_sse2_body`] need SSE2, which every x86_64 CPU has.
//!
//! Everything else (compares, masks, bit arithmetic) is safe code. The lint `clippy::undocumented_unsafe_blocks`
//! is denied for the crate, so an `unsafe` block without a `SAFETY` comment does not pass CI.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::{
    __m128i, __m256i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
    _mm_or_si128, _mm_set1_epi8, _mm_setzero_si128, _mm_storeu_si128, _mm_xor_si128,
    _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
    _mm256_set1_epi8, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_testz_si256,
    _mm256_xor_si256,
};
use std::mem::MaybeUninit;

use super::insertion;

const CR: i8 = b'\r' as i8;
const LF: i8 = b'\n' as i8;
const DOT: i8 = b'.' as i8;

/// 16 bytes from `input[at..]`, bounds-checked (a panic, never an out-of-bounds read).
#[inline]
#[target_feature(enable = "sse2")]
fn load16(input: &[u8], at: usize) -> __m128i {
    let bytes: &[u8; 16] = match input.get(at..).and_then(|s| s.first_chunk::<16>()) {
        Some(bytes) => bytes,
        None => panic!("load16 out of bounds"),
    };
    // SAFETY: `bytes` is a valid reference to 16 readable bytes, and `_mm_loadu_si128` has no alignment
    // requirement.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) }
}

/// `0xff` in lane `j` when the pair (lane `j` of `a`, lane `j` of `b`) is irregular.
#[inline]
#[target_feature(enable = "sse2")]
fn irregular16<const DOTS: bool>(a: __m128i, b: __m128i) -> __m128i {
    let bad = _mm_xor_si128(
        _mm_cmpeq_epi8(a, _mm_set1_epi8(CR)),
        _mm_cmpeq_epi8(b, _mm_set1_epi8(LF)),
    );
    if DOTS {
        let dot = _mm_and_si128(
            _mm_cmpeq_epi8(a, _mm_set1_epi8(LF)),
            _mm_cmpeq_epi8(b, _mm_set1_epi8(DOT)),
        );
        _mm_or_si128(bad, dot)
    } else {
        bad
    }
}

/// The mask of irregular pairs `k..k + 16` (bit `j` for pair `k + j`). Needs `k + 17 <= input.len()`.
#[inline]
#[target_feature(enable = "sse2")]
fn mask16<const DOTS: bool>(input: &[u8], k: usize) -> u32 {
    _mm_movemask_epi8(irregular16::<DOTS>(load16(input, k), load16(input, k + 1))) as u32
}

/// The SSE2 backend.
#[inline]
pub(crate) fn find_sse2<const DOTS: bool>(input: &[u8]) -> Option<usize> {
    // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has it, and this module is only compiled for
    // x86_64), the only requirement of calling a `#[target_feature(enable = "sse2")]` function.
    unsafe { find_sse2_body::<DOTS>(input) }
}

/// The SSE2 loop: 64 pairs per step (bytes `k..k + 65`), then 16, then one last overlapping window; inputs under
/// 17 bytes go to SWAR.
#[target_feature(enable = "sse2")]
fn find_sse2_body<const DOTS: bool>(input: &[u8]) -> Option<usize> {
    let pairs = input.len().saturating_sub(1);
    if pairs < 16 {
        return super::find_swar::<DOTS>(input);
    }
    let mut k = 0;
    while k + 64 <= pairs {
        let m0 = irregular16::<DOTS>(load16(input, k), load16(input, k + 1));
        let m1 = irregular16::<DOTS>(load16(input, k + 16), load16(input, k + 17));
        let m2 = irregular16::<DOTS>(load16(input, k + 32), load16(input, k + 33));
        let m3 = irregular16::<DOTS>(load16(input, k + 48), load16(input, k + 49));
        let any = _mm_or_si128(_mm_or_si128(m0, m1), _mm_or_si128(m2, m3));
        if _mm_movemask_epi8(any) != 0 {
            let mask = u64::from(_mm_movemask_epi8(m0) as u32 as u16)
                | u64::from(_mm_movemask_epi8(m1) as u32 as u16) << 16
                | u64::from(_mm_movemask_epi8(m2) as u32 as u16) << 32
                | u64::from(_mm_movemask_epi8(m3) as u32 as u16) << 48;
            return Some(k + mask.trailing_zeros() as usize);
        }
        k += 64;
    }
    while k + 16 <= pairs {
        let m = mask16::<DOTS>(input, k);
        if m != 0 {
            return Some(k + m.trailing_zeros() as usize);
        }
        k += 16;
    }
    if k < pairs {
        // The last 16 pairs, overlapping pairs already found regular: the first hit is at or after `k`.
        let s = pairs - 16;
        let m = mask16::<DOTS>(input, s);
        if m != 0 {
            return Some(s + m.trailing_zeros() as usize);
        }
    }
    None
}

/// The AVX2 backend: checks that the CPU has AVX2 (a cached atomic load after the first call) and runs
/// [`find_avx2_body`].
///
/// # Panics
///
/// If the CPU has no AVX2 (`find_irregular` never asks for it then).
#[inline]
pub(crate) fn find_avx2<const DOTS: bool>(input: &[u8]) -> Option<usize> {
    assert!(
        super::Backend::Avx2.is_available(),
        "AVX2 is not available on this CPU"
    );
    // SAFETY: the CPU has AVX2 (checked just above with `is_x86_feature_detected!`, which is cached by std), the
    // only requirement of calling a `#[target_feature(enable = "avx2")]` function.
    unsafe { find_avx2_body::<DOTS>(input) }
}

/// 32 bytes from `input[at..]`, bounds-checked (a panic, never an out-of-bounds read).
#[inline]
#[target_feature(enable = "avx2")]
fn load32(input: &[u8], at: usize) -> __m256i {
    let bytes: &[u8; 32] = match input.get(at..).and_then(|s| s.first_chunk::<32>()) {
        Some(bytes) => bytes,
        None => panic!("load32 out of bounds"),
    };
    // SAFETY: `bytes` is a valid reference to 32 readable bytes; `_mm256_loadu_si256` has no alignment
    // requirement, and this function is only compiled for (and callable from) AVX2 code.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast::<__m256i>()) }
}

/// `0xff` in lane `j` when the pair (lane `j` of `a`, lane `j` of `b`) is irregular.
#[inline]
#[target_feature(enable = "avx2")]
fn irregular32<const DOTS: bool>(a: __m256i, b: __m256i) -> __m256i {
    let bad = _mm256_xor_si256(
        _mm256_cmpeq_epi8(a, _mm256_set1_epi8(CR)),
        _mm256_cmpeq_epi8(b, _mm256_set1_epi8(LF)),
    );
    if DOTS {
        let dot = _mm256_and_si256(
            _mm256_cmpeq_epi8(a, _mm256_set1_epi8(LF)),
            _mm256_cmpeq_epi8(b, _mm256_set1_epi8(DOT)),
        );
        _mm256_or_si256(bad, dot)
    } else {
        bad
    }
}

/// The mask of irregular pairs `k..k + 32` (bit `j` for pair `k + j`). Needs `k + 33 <= input.len()`.
#[inline]
#[target_feature(enable = "avx2")]
fn mask32<const DOTS: bool>(input: &[u8], k: usize) -> u32 {
    _mm256_movemask_epi8(irregular32::<DOTS>(load32(input, k), load32(input, k + 1))) as u32
}

/// The AVX2 loop: 64 pairs per step (bytes `k..k + 65`), then 32, then one last overlapping window; inputs under
/// 33 bytes go to SSE2.
#[target_feature(enable = "avx2")]
fn find_avx2_body<const DOTS: bool>(input: &[u8]) -> Option<usize> {
    let pairs = input.len().saturating_sub(1);
    if pairs < 32 {
        return find_sse2::<DOTS>(input);
    }
    let mut k = 0;
    while k + 64 <= pairs {
        let m0 = irregular32::<DOTS>(load32(input, k), load32(input, k + 1));
        let m1 = irregular32::<DOTS>(load32(input, k + 32), load32(input, k + 33));
        if _mm256_movemask_epi8(_mm256_or_si256(m0, m1)) != 0 {
            let mask = u64::from(_mm256_movemask_epi8(m0) as u32)
                | u64::from(_mm256_movemask_epi8(m1) as u32) << 32;
            return Some(k + mask.trailing_zeros() as usize);
        }
        k += 64;
    }
    if k + 32 <= pairs {
        let m = mask32::<DOTS>(input, k);
        if m != 0 {
            return Some(k + m.trailing_zeros() as usize);
        }
        k += 32;
    }
    if k < pairs {
        // The last 32 pairs, overlapping pairs already found regular: the first hit is at or after `k`.
        let s = pairs - 32;
        let m = mask32::<DOTS>(input, s);
        if m != 0 {
            return Some(s + m.trailing_zeros() as usize);
        }
    }
    None
}

/// Bytes per step of the [`super::copy_fixed`] loops: two 64-byte blocks, checked together.
const GROUP: usize = 128;

/// The input one step may read: the group, the byte after it (its last pair's second byte), and, after an
/// insertion, the rest of the group moved with vector copies that may read up to 32 bytes past its end.
const INPUT_WINDOW: usize = GROUP + 64;

/// The output one step may write: the group, two inserted bytes at most per pair, and the last 64-byte copy.
const WINDOW: usize = GROUP + 2 * GROUP + 64;

/// The output of one step, and the length of its prefix known to be initialized (`init`).
struct Window<'a> {
    buf: &'a mut [MaybeUninit<u8>; WINDOW],
    init: usize,
}

impl Window<'_> {
    /// `buf[at..at + n]` was just written: extends the initialized prefix if it starts inside (or right after) it.
    #[inline(always)]
    fn written(&mut self, at: usize, n: usize) {
        if at <= self.init {
            self.init = self.init.max(at + n);
        }
    }
}

/// Stores 32 bytes at `out[at..]` (bounds-checked: a panic, never a write out of bounds).
#[inline]
#[target_feature(enable = "avx2")]
fn store32(out: &mut [MaybeUninit<u8>], at: usize, v: __m256i) {
    let bytes: &mut [MaybeUninit<u8>; 32] =
        match out.get_mut(at..).and_then(|s| s.first_chunk_mut::<32>()) {
            Some(bytes) => bytes,
            None => panic!("store32 out of bounds"),
        };
    // SAFETY: `bytes` is a valid, exclusive reference to 32 writable bytes (`MaybeUninit<u8>` accepts any value);
    // `_mm256_storeu_si256` has no alignment requirement, and this function is only compiled for (and callable
    // from) AVX2 code.
    unsafe { _mm256_storeu_si256(bytes.as_mut_ptr().cast::<__m256i>(), v) };
}

/// Stores 16 bytes at `out[at..]` (bounds-checked: a panic, never a write out of bounds).
#[inline]
#[target_feature(enable = "sse2")]
fn store16(out: &mut [MaybeUninit<u8>], at: usize, v: __m128i) {
    let bytes: &mut [MaybeUninit<u8>; 16] =
        match out.get_mut(at..).and_then(|s| s.first_chunk_mut::<16>()) {
            Some(bytes) => bytes,
            None => panic!("store16 out of bounds"),
        };
    // SAFETY: `bytes` is a valid, exclusive reference to 16 writable bytes (`MaybeUninit<u8>` accepts any value),
    // and `_mm_storeu_si128` has no alignment requirement.
    unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast::<__m128i>(), v) };
}

/// The pairs `0..GROUP` of a group (bit `j` for pair `j`) that need an insertion, by kind.
#[derive(Clone, Copy)]
struct Masks {
    /// Bare CR or bare LF: an LF, or a CR (and with dots a second dot after a bare CR followed by `.`).
    endings: u128,
    /// An LF followed by `.` (always 0 without dots): a single `.` to insert.
    dots: u128,
}

impl Masks {
    /// The pair `k` when it is the group's only irregular pair, an LF followed by `.` (the common case: a line
    /// that starts with a dot), and not the last pair of the group.
    #[inline(always)]
    fn single_dot(&self) -> Option<usize> {
        let d = self.dots;
        if self.endings == 0 && d & (d - 1) == 0 && d < 1 << (GROUP - 1) {
            Some(d.trailing_zeros() as usize)
        } else {
            None
        }
    }
}

/// `0xff` in lane `j` when the pair (lane `j` of `a`, lane `j` of `b`) is a bare CR or a bare LF.
#[inline]
#[target_feature(enable = "avx2")]
fn endings32(a: __m256i, b: __m256i) -> __m256i {
    _mm256_xor_si256(
        _mm256_cmpeq_epi8(a, _mm256_set1_epi8(CR)),
        _mm256_cmpeq_epi8(b, _mm256_set1_epi8(LF)),
    )
}

/// `0xff` in lane `j` when lane `j` of `a` is an LF and lane `j` of `b` is `.`.
#[inline]
#[target_feature(enable = "avx2")]
fn dots32(a: __m256i, b: __m256i) -> __m256i {
    _mm256_and_si256(
        _mm256_cmpeq_epi8(a, _mm256_set1_epi8(LF)),
        _mm256_cmpeq_epi8(b, _mm256_set1_epi8(DOT)),
    )
}

/// When all the pairs `0..GROUP` of `src` are regular, stores `src[..GROUP]` at `dst[..GROUP]` and returns `None`;
/// else returns their [`Masks`] and stores nothing (what fixes the group loads `src` again before its first store:
/// see [`copy_fixed_body`]).
#[inline]
#[target_feature(enable = "avx2")]
fn group_avx2<const DOTS: bool>(
    src: &[u8; INPUT_WINDOW],
    dst: &mut [MaybeUninit<u8>; WINDOW],
) -> Option<Masks> {
    const N: usize = GROUP / 32;
    // All the loads before the stores: a load after a store to the same address modulo 4 KiB waits for it (the
    // output often sits at the input's page offset).
    let a: [__m256i; N] = std::array::from_fn(|j| load32(src, 32 * j));
    let b: [__m256i; N] = std::array::from_fn(|j| load32(src, 32 * j + 1));
    let endings: [__m256i; N] = std::array::from_fn(|j| endings32(a[j], b[j]));
    let dots: [__m256i; N] = std::array::from_fn(|j| {
        if DOTS {
            dots32(a[j], b[j])
        } else {
            _mm256_setzero_si256()
        }
    });
    let mut any = _mm256_or_si256(endings[0], dots[0]);
    for j in 1..N {
        any = _mm256_or_si256(any, _mm256_or_si256(endings[j], dots[j]));
    }
    if _mm256_testz_si256(any, any) != 0 {
        for (j, &v) in a.iter().enumerate() {
            store32(dst, 32 * j, v);
        }
        return None;
    }
    let mut m = Masks {
        endings: 0,
        dots: 0,
    };
    for j in 0..N {
        m.endings |= u128::from(_mm256_movemask_epi8(endings[j]) as u32) << (32 * j);
        if DOTS {
            m.dots |= u128::from(_mm256_movemask_epi8(dots[j]) as u32) << (32 * j);
        }
    }
    Some(m)
}

/// Stores `src[from..from + 32]` at `out[at..]`.
#[inline]
#[target_feature(enable = "avx2")]
fn copy32_avx2(src: &[u8; INPUT_WINDOW], from: usize, out: &mut [MaybeUninit<u8>], at: usize) {
    store32(out, at, load32(src, from));
}

/// [`endings32`] with SSE2.
#[inline]
#[target_feature(enable = "sse2")]
fn endings16(a: __m128i, b: __m128i) -> __m128i {
    _mm_xor_si128(
        _mm_cmpeq_epi8(a, _mm_set1_epi8(CR)),
        _mm_cmpeq_epi8(b, _mm_set1_epi8(LF)),
    )
}

/// [`dots32`] with SSE2.
#[inline]
#[target_feature(enable = "sse2")]
fn dots16(a: __m128i, b: __m128i) -> __m128i {
    _mm_and_si128(
        _mm_cmpeq_epi8(a, _mm_set1_epi8(LF)),
        _mm_cmpeq_epi8(b, _mm_set1_epi8(DOT)),
    )
}

/// [`group_avx2`] with SSE2.
#[inline]
#[target_feature(enable = "sse2")]
fn group_sse2<const DOTS: bool>(
    src: &[u8; INPUT_WINDOW],
    dst: &mut [MaybeUninit<u8>; WINDOW],
) -> Option<Masks> {
    const N: usize = GROUP / 16;
    let a: [__m128i; N] = std::array::from_fn(|j| load16(src, 16 * j));
    let b: [__m128i; N] = std::array::from_fn(|j| load16(src, 16 * j + 1));
    let endings: [__m128i; N] = std::array::from_fn(|j| endings16(a[j], b[j]));
    let dots: [__m128i; N] = std::array::from_fn(|j| {
        if DOTS {
            dots16(a[j], b[j])
        } else {
            _mm_setzero_si128()
        }
    });
    let mut any = _mm_or_si128(endings[0], dots[0]);
    for j in 1..N {
        any = _mm_or_si128(any, _mm_or_si128(endings[j], dots[j]));
    }
    if _mm_movemask_epi8(any) == 0 {
        for (j, &v) in a.iter().enumerate() {
            store16(dst, 16 * j, v);
        }
        return None;
    }
    let mut m = Masks {
        endings: 0,
        dots: 0,
    };
    for j in 0..N {
        m.endings |= u128::from(_mm_movemask_epi8(endings[j]) as u32) << (16 * j);
        if DOTS {
            m.dots |= u128::from(_mm_movemask_epi8(dots[j]) as u32) << (16 * j);
        }
    }
    Some(m)
}

/// Stores `src[from..from + 16]` at `out[at..]`.
#[inline]
#[target_feature(enable = "sse2")]
fn copy16_sse2(src: &[u8; INPUT_WINDOW], from: usize, out: &mut [MaybeUninit<u8>], at: usize) {
    store16(out, at, load16(src, from));
}

/// The stretch between two insertions that `$fix` moves with a fixed number of copies (see
/// [`copy_fixed_body`]): three 32-byte steps, longer than most text lines.
const LINE: usize = 96;

/// The fewest input bytes a fix takes to realign the output (see `$fix` in [`copy_fixed_body`]).
const MIN_TAKEN: usize = GROUP / 2;

/// Defines the one-pass [`super::copy_fixed`] loop for one backend: `$group` (store a group, return its
/// [`Masks`] unless it is clean), `$copy` (store `$step` bytes), `$find` (the backend's `find_irregular`, for the
/// first and last bytes), `$one_dot` (a group whose only irregular pair is a dot line) and `$fix` (any other
/// group with irregular pairs). The output stores are aligned to `$step` bytes.
macro_rules! copy_fixed_body {
    (
        $(#[$doc:meta])* $name:ident, $fix:ident, $one_dot:ident, $by_find:ident, $feature:literal,
        $group:ident, $load:ident, $store:ident, $copy:ident, $step:literal, $find:ident
    ) => {
        /// `input` but its last byte, every pair fixed, by repeated `$find`: copy up to each hit, then its
        /// insertion. For the bytes before the first aligned group and the last ones (under `INPUT_WINDOW`).
        #[target_feature(enable = $feature)]
        fn $by_find<const DOTS: bool>(input: &[u8], out: &mut Vec<u8>) {
            let mut s = 0;
            while let Some(offset) = $find::<DOTS>(&input[s..]) {
                let k = s + offset;
                out.extend_from_slice(&input[s..=k]);
                let (bytes, n) = insertion::<DOTS>(input[k], input[k + 1]);
                out.extend_from_slice(&bytes[..n]);
                s = k + 1;
            }
            if let Some(rest) = input.get(s..input.len().saturating_sub(1)) {
                out.extend_from_slice(rest);
            }
        }

        /// A group whose only irregular pair is `k < GROUP - 1`, an LF followed by `.`: the group takes `GROUP - 1`
        /// input bytes and `GROUP` output bytes (so an aligned output stays aligned). The dot to insert is the same
        /// byte as the one after it: `dst[k + 1]` holds it once the group is stored as is, and `src[k + 1..]` moves
        /// one byte on, with a fixed number of copies (no loop to mispredict) that may go past the group (into
        /// bytes the next group overwrites).
        #[inline]
        #[target_feature(enable = $feature)]
        fn $one_dot(src: &[u8; INPUT_WINDOW], dst: &mut [MaybeUninit<u8>; WINDOW], k: usize) {
            const N: usize = GROUP / $step;
            // Past the group, the same last bytes again: everything from `k + 1` on moves by one byte.
            let from: [usize; N] = std::array::from_fn(|j| (k + 1 + $step * j).min(INPUT_WINDOW - $step));
            // Every load before the first store: the output is often at the input's address modulo 4 KiB plus a
            // few bytes, and a load that overlaps a pending store there (by those address bits) waits for it.
            let moved = from.map(|f| $load(src, f));
            let group: [_; N] = std::array::from_fn(|j| $load(src, $step * j));
            for (j, v) in group.into_iter().enumerate() {
                $store(dst, $step * j, v);
            }
            for (f, v) in from.into_iter().zip(moved) {
                $store(dst, f + 1, v);
            }
        }

        /// The insertions of any other group with irregular pairs (`masks`), into `dst`: returns the number of
        /// input bytes taken (`c`: pairs `0..c` and their insertions) and of bytes written to `dst`, all
        /// initialized (checked). Out of line: rare, and keeps the main loop small.
        ///
        /// `c` is chosen so that the output ends on a `$step`-byte boundary and the next group's stores are
        /// aligned: the whole group's output is written, and for any `c` its first `c` plus the bytes inserted
        /// before `c` are final, so `c` is `GROUP` less the number of inserted bytes (modulo `$step`), unless
        /// that drops the last insertion (then a `c` before it, or the whole group: the output stays unaligned
        /// until the next fix). A smaller `c` only moves the group boundary: the pairs from `c` on are checked
        /// again with the next group.
        #[inline(never)]
        #[target_feature(enable = $feature)]
        fn $fix<const DOTS: bool>(
            src: &[u8; INPUT_WINDOW],
            dst: &mut [MaybeUninit<u8>; WINDOW],
            masks: Masks,
        ) -> (usize, usize) {
            // The group as is first (`$group` stored nothing).
            for j in (0..GROUP).step_by($step) {
                $copy(src, j, dst, j);
            }
            // Only dot lines: one `.` per pair, no per-pair decoding.
            let dots_only = masks.endings == 0;
            let mut mask = masks.endings | masks.dots;
            let mis = dst.as_ptr().addr() % $step;
            // The copy above initialized `dst[..GROUP]`.
            let mut w = Window { buf: dst, init: GROUP };
            // Bytes inserted so far: input byte `j` (after the last insertion) goes to `w[j + shift]`.
            let mut shift = 0;
            // The last insertion's pair, the bytes inserted before it, and the end of the one before (pair + 1).
            let (mut last, mut shift_before_last, mut prev_end) = (0, 0, 0);
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let (bytes, n) = if dots_only {
                    ([b'.', 0], 1)
                } else {
                    insertion::<DOTS>(src[k], src[k + 1])
                };
                // Up to the pair's first byte is in place; then the insertion (two bytes written, `n` kept), and
                // the input bytes after it up to the next insertion (its pair's first byte included) or the end
                // of the group, moved: `w[at..from + shift]` is written, from inside the initialized prefix.
                let end = if mask != 0 {
                    mask.trailing_zeros() as usize + 1
                } else {
                    GROUP
                };
                let at = k + 1 + shift;
                w.buf[at].write(bytes[0]);
                w.buf[at + 1].write(bytes[1]);
                prev_end = last + 1;
                (last, shift_before_last) = (k, shift);
                shift += n;
                let mut from = k + 1;
                if end - from <= LINE {
                    // Up to a line's length (a bare-LF body has a fix on every line): a fixed number of copies,
                    // no loop exit to mispredict; they may go past `end` into bytes that the next stretch, or
                    // the next group, overwrites.
                    for j in 0..LINE / $step {
                        let f = (k + 1 + $step * j).min(INPUT_WINDOW - $step);
                        $copy(src, f, w.buf, f + shift);
                    }
                    from = (k + 1 + LINE).min(INPUT_WINDOW);
                } else {
                    while from < end {
                        $copy(src, from, w.buf, from + shift);
                        from += $step;
                    }
                }
                w.written(at, (from + shift).max(at + 2) - at);
            }
            // Line-ending fixes come in runs (a bare-LF body has one every line): realigning there would check
            // many bytes twice, so only a group of dot lines realigns.
            let mut c = GROUP - if dots_only { (mis + GROUP + shift) % $step } else { 0 };
            let mut written = c + shift;
            if c <= last {
                // Without the last insertion: the pairs before `c` are those before `last`, and the one before
                // it is included.
                c = last - (mis + last + shift_before_last) % $step;
                written = c + shift_before_last;
                if c < prev_end || c < MIN_TAKEN {
                    (c, written) = (GROUP, GROUP + shift);
                }
            }
            assert!(written <= w.init, "copy_fixed: {written} bytes used, {} initialized", w.init);
            (c, written)
        }

        $(#[$doc])*
        #[target_feature(enable = $feature)]
        fn $name<const DOTS: bool>(input: &[u8], out: &mut Vec<u8>) {
            let len = input.len();
            // The next pair (and input byte) to do.
            let mut s = 0;
            // Groups while an input window remains; when the output room runs out, a new `reserve`.
            while s + INPUT_WINDOW <= len {
                let rest = len - s;
                out.reserve(rest + rest / 8 + WINDOW);
                // The groups start at an aligned output address (stores that never straddle two cache lines):
                // the pairs before it the slow way, as the last bytes below. An insertion there leaves the output
                // unaligned until the next group that goes to `$fix` realigns it.
                let head = out.as_ptr().addr().wrapping_add(out.len()).wrapping_neg() % $step;
                if head != 0 {
                    $by_find::<DOTS>(&input[s..=s + head], out);
                    s += head;
                    if s + INPUT_WINDOW > len {
                        break;
                    }
                }
                let spare = out.spare_capacity_mut();
                let room = spare.len();
                // Invariant: every byte of `spare` before `dst` is initialized (`dst` only moves past bytes just
                // written: the `GROUP` bytes that `$group` or `$one_dot` stores, or what `$fix` reports as written and
                // initialized).
                let mut src = &input[s..];
                let mut dst = spare;
                'groups: loop {
                    // The hot loop: clean groups and single dot lines, no call (the vector constants stay in
                    // registers); up to a group for `$fix`.
                    let masks = loop {
                        let (Some(window), Some(out_window)) = (
                            src.first_chunk::<INPUT_WINDOW>(),
                            dst.first_chunk_mut::<WINDOW>(),
                        ) else {
                            break 'groups;
                        };
                        let taken = match $group::<DOTS>(window, out_window) {
                            None => GROUP,
                            Some(masks) => match masks.single_dot() {
                                Some(k) if out_window.as_ptr().addr() % $step == 0 => {
                                    $one_dot(window, out_window, k);
                                    GROUP - 1
                                }
                                _ => break masks,
                            },
                        };
                        src = &src[taken..];
                        dst = &mut std::mem::take(&mut dst)[GROUP..];
                    };
                    let (Some(window), Some(out_window)) = (
                        src.first_chunk::<INPUT_WINDOW>(),
                        dst.first_chunk_mut::<WINDOW>(),
                    ) else {
                        break;
                    };
                    let (taken, written) = $fix::<DOTS>(window, out_window, masks);
                    src = &src[taken..];
                    dst = &mut std::mem::take(&mut dst)[written..];
                }
                let d = room - dst.len();
                s = len - src.len();
                // SAFETY: the `d` bytes of the spare capacity before `dst` are initialized (the invariant above),
                // and within the capacity; `out` was not touched since `spare_capacity_mut`.
                unsafe { out.set_len(out.len() + d) };
            }
            // The last bytes (under `INPUT_WINDOW`).
            $by_find::<DOTS>(&input[s..], out);
        }
    };
}

copy_fixed_body!(
    /// The AVX2 [`super::copy_fixed`] loop.
    copy_fixed_avx2_body,
    fix_group_avx2,
    one_dot_avx2,
    by_find_avx2,
    "avx2",
    group_avx2,
    load32,
    store32,
    copy32_avx2,
    32,
    find_avx2_body
);

copy_fixed_body!(
    /// The SSE2 [`super::copy_fixed`] loop.
    copy_fixed_sse2_body,
    fix_group_sse2,
    one_dot_sse2,
    by_find_sse2,
    "sse2",
    group_sse2,
    load16,
    store16,
    copy16_sse2,
    16,
    find_sse2_body
);

/// The AVX2 [`super::copy_fixed`].
///
/// # Panics
///
/// If the CPU has no AVX2 (`copy_fixed` never asks for it then).
#[inline]
pub(crate) fn copy_fixed_avx2<const DOTS: bool>(input: &[u8], out: &mut Vec<u8>) {
    assert!(
        super::Backend::Avx2.is_available(),
        "AVX2 is not available on this CPU"
    );
    // SAFETY: the CPU has AVX2 (checked just above), the only requirement of calling a
    // `#[target_feature(enable = "avx2")]` function.
    unsafe { copy_fixed_avx2_body::<DOTS>(input, out) }
}

/// The SSE2 [`super::copy_fixed`].
#[inline]
pub(crate) fn copy_fixed_sse2<const DOTS: bool>(input: &[u8], out: &mut Vec<u8>) {
    // SAFETY: SSE2 is part of the x86_64 baseline, the only requirement of calling a
    // `#[target_feature(enable = "sse2")]` function.
    unsafe { copy_fixed_sse2_body::<DOTS>(input, out) }
}
