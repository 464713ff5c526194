//! The x86_64 vector backends: the only module of the crate allowed to use `unsafe`.
//!
//! What is `unsafe` here, and why it is sound:
//! - unaligned vector loads (`_mm_loadu_si128`, `_mm256_loadu_si256`) take a raw pointer: [`load16`] and
//!   [`load32`] only take it from a `&[u8; 16]` / `&[u8; 32]` obtained with a bounds-checked `get`, so a wrong
//!   index panics instead of reading out of bounds (the loop bounds make the check always pass, and the compiler
//!   mostly removes it); unaligned loads need no alignment;
//! - calling a `#[target_feature]` function from code compiled without that feature: [`find_avx2_body`] is only
//!   called by [`find_avx2`] after `is_x86_feature_detected!("avx2")`, and [`find_sse2_body`] needs SSE2, which
//!   every x86_64 CPU has.
//!
//! Everything else (compares, masks, bit arithmetic) is safe code. The lint `clippy::undocumented_unsafe_blocks`
//! is denied for the crate, so an `unsafe` block without a `SAFETY` comment does not pass CI.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::{
    __m128i, __m256i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8,
    _mm_or_si128, _mm_set1_epi8, _mm_xor_si128, _mm256_and_si256, _mm256_cmpeq_epi8,
    _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_xor_si256,
};

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
