//! Every backend against the byte-at-a-time reference, on adversarial and random inputs: all positions of CR, LF
//! and `.` (alone and in pairs) around the 8/16/32/64-byte step boundaries, at every start offset of the slice
//! (unaligned), at every length up to a few steps, plus proptest.
//!
//! Each backend is run explicitly (not only the one detected at run time); a backend the CPU lacks is skipped with
//! a note on stderr.

use proptest::prelude::*;
use smtp_scan::{
    Backend, Check, copy_regular, copy_regular_with, find_irregular, find_irregular_reference,
    find_irregular_with,
};

const CHECKS: [Check; 2] = [Check::LineEndings, Check::LineEndingsAndDots];

fn backends() -> Vec<Backend> {
    let available: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    for b in Backend::ALL {
        if !available.contains(&b) {
            eprintln!("backend {b:?} not available on this CPU: skipped");
        }
    }
    available
}

/// All backends and the runtime selection agree with the reference on `input`.
fn check_all(input: &[u8], backends: &[Backend]) {
    for check in CHECKS {
        let expected = find_irregular_reference(input, check);
        for &b in backends {
            assert_eq!(
                find_irregular_with(b, input, check),
                expected,
                "{b:?} {check:?} len {} input {input:?}",
                input.len()
            );
        }
        assert_eq!(find_irregular(input, check), expected);
        // The fused copy: the same hit, and exactly the bytes before it appended (after what `out` held).
        let copied = match expected {
            Some(k) => &input[..=k],
            None => &input[..input.len().saturating_sub(1)],
        };
        for &b in backends {
            let mut out = b"prefix".to_vec();
            assert_eq!(
                copy_regular_with(b, input, check, &mut out),
                expected,
                "copy {b:?} {check:?} input {input:?}"
            );
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(&out[6..], copied, "copy {b:?} {check:?} input {input:?}");
        }
        let mut out = Vec::new();
        assert_eq!(copy_regular(input, check, &mut out), expected);
        assert_eq!(out, copied);
    }
}

/// Clean CRLF text: `xyz...` lines with CRLF, no dot at any line start.
fn clean(len: usize) -> Vec<u8> {
    let line = b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLM.\r\n";
    line.iter().copied().cycle().take(len).collect()
}

#[test]
fn reference_semantics() {
    let r = |s: &[u8]| find_irregular_reference(s, Check::LineEndingsAndDots);
    let n = |s: &[u8]| find_irregular_reference(s, Check::LineEndings);
    assert_eq!(r(b""), None);
    assert_eq!(r(b"\n"), None);
    assert_eq!(r(b"\r"), None);
    assert_eq!(r(b"\n."), Some(0));
    assert_eq!(n(b"\n."), None);
    assert_eq!(r(b"a\n"), Some(0));
    assert_eq!(r(b"\r\n"), None);
    assert_eq!(r(b"\ra"), Some(0));
    assert_eq!(r(b"\r\r\n"), Some(0));
    assert_eq!(r(b"a\r\n\n"), Some(2));
    assert_eq!(r(b"a\r\n.\r\n"), Some(2));
    assert_eq!(r(b"a\r\nb\r"), None);
}

#[test]
fn every_length_and_offset() {
    let backends = backends();
    let text = clean(400);
    // Clean text of every length at every alignment, then each special byte or pair at every position.
    for start in 0..40 {
        for len in 0..=200 {
            let s = &text[start..start + len];
            check_all(s, &backends);
        }
    }
}

#[test]
fn specials_at_every_position() {
    let backends = backends();
    let inserts: [&[u8]; 10] = [
        b"\r", b"\n", b".", b"\n.", b"\r.", b"\r\n.", b"\r\r", b"\n\n", b"\n\r", b"\r\n\n",
    ];
    for len in [
        1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 96, 127, 128, 129, 130, 200,
    ] {
        for start in [0, 1, 3, 31] {
            let base = clean(len + start);
            for insert in inserts {
                for at in 0..=len {
                    let mut v = base.clone();
                    v.splice(start + at..start + at, insert.iter().copied());
                    check_all(&v[start..], &backends);
                    // The same, overwriting instead of inserting (keeps the length).
                    let mut w = base.clone();
                    for (j, &b) in insert.iter().enumerate() {
                        if let Some(x) = w.get_mut(start + at + j) {
                            *x = b;
                        }
                    }
                    check_all(&w[start..], &backends);
                }
            }
        }
    }
}

#[test]
fn two_specials_every_pair_of_positions() {
    // A clean 130-byte window with two of CR, LF, `.` at every pair of positions: covers "first hit" ordering
    // across lanes, vectors and steps.
    let backends = backends();
    let base = vec![b'a'; 130];
    for x in [b'\r', b'\n', b'.'] {
        for y in [b'\r', b'\n', b'.'] {
            for i in 0..base.len() {
                for j in i..base.len() {
                    let mut v = base.clone();
                    v[i] = x;
                    v[j] = y;
                    check_all(&v, &backends);
                }
            }
        }
    }
}

#[test]
fn all_special_bodies() {
    // Inputs made only of CR, LF, `.` and one other byte, in every combination of length 1..=7, then repeated.
    let backends = backends();
    let alphabet = [b'\r', b'\n', b'.', b'a'];
    for len in 1..=7u32 {
        for code in 0..4usize.pow(len) {
            let mut c = code;
            let pattern: Vec<u8> = (0..len)
                .map(|_| {
                    let b = alphabet[c % 4];
                    c /= 4;
                    b
                })
                .collect();
            check_all(&pattern, &backends);
            let long: Vec<u8> = pattern.iter().copied().cycle().take(70).collect();
            check_all(&long, &backends);
        }
    }
}

#[test]
fn crlf_text_with_one_anomaly_far_in() {
    // Long inputs: the main 64-pair loop for many steps, then a hit.
    let backends = backends();
    let base = clean(9000);
    check_all(&base, &backends);
    for at in [
        4000, 4031, 4032, 4033, 4095, 4096, 4097, 4098, 8190, 8191, 8192, 8193, 8194, 8990, 8998,
        8999,
    ] {
        for b in [b'\r', b'\n'] {
            let mut v = base.clone();
            v[at] = b;
            check_all(&v, &backends);
        }
    }
}

fn special_heavy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            20 => Just(b'a'),
            4 => Just(b'\r'),
            4 => Just(b'\n'),
            3 => Just(b'.'),
            1 => any::<u8>(),
        ],
        0..300,
    )
}

fn mostly_crlf() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..600,
        proptest::collection::vec(
            (
                0usize..600,
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.')],
            ),
            0..3,
        ),
    )
        .prop_map(|(len, edits)| {
            let mut v = clean(len);
            for (at, b) in edits {
                if let Some(x) = v.get_mut(at) {
                    *x = b;
                }
            }
            v
        })
}

proptest! {
    #[test]
    fn backends_match_the_reference(
        body in prop_oneof![special_heavy(), mostly_crlf(), proptest::collection::vec(any::<u8>(), 0..200)],
        start in 0usize..40,
    ) {
        let s = &body[start.min(body.len())..];
        for check in CHECKS {
            let expected = find_irregular_reference(s, check);
            for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
                prop_assert_eq!(find_irregular_with(b, s, check), expected, "{:?} {:?}", b, check);
            }
            prop_assert_eq!(find_irregular(s, check), expected);
            let copied = match expected {
                Some(k) => &s[..=k],
                None => &s[..s.len().saturating_sub(1)],
            };
            for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
                let mut out = Vec::new();
                prop_assert_eq!(copy_regular_with(b, s, check, &mut out), expected);
                prop_assert_eq!(&out[..], copied);
            }
        }
    }
}
