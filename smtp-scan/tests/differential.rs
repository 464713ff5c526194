//! Every backend against the byte-at-a-time reference, on adversarial and random inputs: all positions of CR, LF
//! and `.` (alone and in pairs) around the 8/16/32/64-byte step boundaries, at every start offset of the slice
//! (unaligned), at every length up to a few steps, plus proptest.
//!
//! Each backend is run explicitly (not only the one detected at run time); a backend the CPU lacks is skipped with
//! a note on stderr.

use proptest::prelude::*;
use smtp_scan::{
    Backend, Check, copy_fixed, copy_fixed_reference, copy_fixed_with, copy_regular,
    copy_regular_with, find_irregular, find_irregular_reference, find_irregular_with,
    pair_insertion,
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
    check_fixed(input, backends);
}

/// `copy_fixed` of every backend (and the runtime selection) against the reference, appending after a prefix,
/// into an empty `Vec` and into one with exactly enough capacity.
fn check_fixed(input: &[u8], backends: &[Backend]) {
    for check in CHECKS {
        let mut expected = b"prefix".to_vec();
        copy_fixed_reference(input, check, &mut expected);
        for &b in backends {
            let mut out = b"prefix".to_vec();
            copy_fixed_with(b, input, check, &mut out);
            assert!(
                out == expected,
                "copy_fixed {b:?} {check:?} len {} input {:?}\n got {:?}\nwant {:?}",
                input.len(),
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected)
            );
            let mut out = Vec::with_capacity(expected.len() - 6);
            copy_fixed_with(b, input, check, &mut out);
            assert_eq!(
                out,
                expected[6..],
                "copy_fixed {b:?} {check:?} (exact capacity)"
            );
        }
        let mut out = b"prefix".to_vec();
        copy_fixed(input, check, &mut out);
        assert_eq!(out, expected);
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

#[test]
fn fixed_reference_semantics() {
    let fix = |s: &[u8], check| {
        let mut out = Vec::new();
        copy_fixed_reference(s, check, &mut out);
        out
    };
    let d = Check::LineEndingsAndDots;
    let n = Check::LineEndings;
    assert_eq!(fix(b"", d), b"");
    assert_eq!(fix(b"\n", d), b"");
    assert_eq!(fix(b"\r", d), b"");
    // The first byte is copied as is (a leading LF or dot is the caller's), the last byte is not copied.
    assert_eq!(fix(b"\n.a\n", d), b"\n..a\r");
    assert_eq!(fix(b"\n.a\n", n), b"\n.a\r");
    assert_eq!(fix(b"a\r.b\r\r\n\n\nx", d), b"a\r\n..b\r\n\r\n\r\n\r\n");
    assert_eq!(fix(b"a\r.b\r\r\n\n\nx", n), b"a\r\n.b\r\n\r\n\r\n\r\n");
    assert_eq!(fix(b"a\r\n.b\r\n", d), b"a\r\n..b\r");
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let regular = find_irregular_reference(&[a, b], d).is_none();
            assert_eq!(pair_insertion(a, b, d).is_empty(), regular, "{a} {b}");
            let regular = find_irregular_reference(&[a, b], n).is_none();
            assert_eq!(pair_insertion(a, b, n).is_empty(), regular, "{a} {b}");
        }
    }
}

/// CRLF text (`clean`), LF-only text, or text where every line needs fixing.
fn text_with(len: usize, line: &[u8]) -> Vec<u8> {
    line.iter().copied().cycle().take(len).collect()
}

#[test]
fn fixed_long_inputs_every_length_around_blocks() {
    // Around the block loop's limits (it runs while 128 bytes remain, 64 at a time): every length up to a few
    // blocks, at a few alignments, for texts with none, some and many irregular pairs per block.
    let backends = backends();
    let lines: [&[u8]; 6] = [
        b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLM.\r\n",
        b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLM.\n",
        b".a line that starts with a dot\r\n",
        b"\n.\r.\r\r\n\n",
        b"short\nlines\rof\r\n.text\n.\n",
        b"\r.",
    ];
    for line in lines {
        let text = text_with(600, line);
        for start in [0, 1, 5, 31, 63] {
            for len in 100..=400 {
                check_fixed(&text[start..start + len], &backends);
            }
        }
    }
}

#[test]
fn fixed_head_before_the_aligned_groups() {
    // The group loop starts where the output is 32-byte aligned and does the pairs before it the slow way: every
    // start offset of the input (with `fixed_output_alignment_and_realignment`'s output offsets, every head
    // length), with an anomaly or dot line at every position around the point where the groups start, including
    // the pair across it, and groups whose only irregular pairs are dots.
    let backends = backends();
    let base = clean(700);
    let inserts: [&[u8]; 7] = [
        b"\r",
        b"\n",
        b"\r\n.",
        b"\n.",
        b"\r.",
        b"\r\n.\r\n..",
        b"\n\r\n.",
    ];
    for start in 0..64 {
        let head = base[start..].as_ptr().align_offset(32);
        for insert in inserts {
            for at in head.saturating_sub(4)..head + 4 {
                let mut v = base.clone();
                for (j, &b) in insert.iter().enumerate() {
                    v[start + at + j] = b;
                }
                check_fixed(&v[start..start + 400], &backends);
            }
        }
    }
    // Dot lines only: several per group, at group boundaries, from every start.
    for line in [
        &b"\r\n.a"[..],
        b".\r\n",
        b"abc\r\n.defgh\r\n",
        b"\r\n.\r\n..",
    ] {
        let text = text_with(800, line);
        for start in 0..64 {
            check_fixed(&text[start..start + 700], &backends);
        }
    }
}

#[test]
fn fixed_output_room_runs_out() {
    // Bodies where most pairs need an insertion: the output grows far more than the block loop reserves at once
    // (an eighth of the rest), so it leaves for a new `reserve` and goes on, at every block offset.
    let backends = backends();
    for unit in [&b"\n"[..], b"\r", b"\r.", b"\n.", b"a\n", b"\n\n."] {
        for len in [1000, 4096, 4097, 10_000, 65_537] {
            let body = text_with(len, unit);
            check_fixed(&body, &backends);
        }
    }
    // Clean text, then a dense run of insertions, then clean text again.
    let mut body = clean(5000);
    body.extend(text_with(3000, b"\r."));
    body.extend(clean(5000));
    check_fixed(&body, &backends);
}

#[test]
fn fixed_split_anywhere_agrees() {
    // What an encoder does at a push boundary: `copy_fixed` of two pieces, with the pair across the cut added by
    // hand, gives the same as one call.
    let backends = backends();
    let mut body = clean(700);
    for (at, b) in [
        (100, b'\n'),
        (130, b'\r'),
        (200, b'.'),
        (255, b'\n'),
        (256, b'.'),
        (400, b'\r'),
    ] {
        body[at] = b;
    }
    for check in CHECKS {
        let mut whole = Vec::new();
        copy_fixed_reference(&body, check, &mut whole);
        for &b in &backends {
            for cut in 1..body.len() {
                let mut out = Vec::new();
                copy_fixed_with(b, &body[..cut], check, &mut out);
                out.push(body[cut - 1]);
                out.extend_from_slice(pair_insertion(body[cut - 1], body[cut], check));
                copy_fixed_with(b, &body[cut..], check, &mut out);
                assert_eq!(out, whole, "{b:?} {check:?} cut {cut}");
            }
        }
    }
}

/// `copy_fixed` of every backend against the reference, appending to a `Vec` that already holds `prefix` bytes (so
/// the output starts at every offset from a 32-byte boundary).
fn check_fixed_after(input: &[u8], backends: &[Backend], prefix: usize) {
    for check in CHECKS {
        let mut expected = vec![b'p'; prefix];
        copy_fixed_reference(input, check, &mut expected);
        for &b in backends {
            let mut out = vec![b'p'; prefix];
            copy_fixed_with(b, input, check, &mut out);
            assert!(
                out == expected,
                "copy_fixed {b:?} {check:?} prefix {prefix} len {} input {:?}\n got {:?}\nwant {:?}",
                input.len(),
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected)
            );
        }
    }
}

#[test]
fn fixed_output_alignment_and_realignment() {
    // The groups start at an aligned output address (the bytes before it the slow way), a group whose only
    // irregular pair is a dot line is done in line (one byte shorter in the input, so the output stays aligned),
    // a group of dot lines that goes to the fix realigns the output by taking fewer input bytes (or the whole
    // group when that would drop its last insertion), and a group with line-ending fixes leaves it unaligned.
    // Every output offset, with dot lines and anomalies at every position around the first groups, including a
    // group's last pair and the head before the first group (an insertion there leaves the output unaligned until
    // a fix realigns it).
    let backends = backends();
    let base = clean(600);
    let inserts: [&[u8]; 8] = [
        b"\r\n.",
        b"\n.",
        b"\r.",
        b"\n",
        b"\r",
        b"\r\n.\r\n.",
        b"\n.x\n.",
        b"\r\n.\n",
    ];
    for prefix in (0..40).step_by(3) {
        for insert in inserts {
            for at in 0..330 {
                let mut v = base.clone();
                for (j, &b) in insert.iter().enumerate() {
                    v[at + j] = b;
                }
                check_fixed_after(&v[..500], &backends, prefix);
            }
        }
    }
    // Dot lines only, one or two per group, at every distance; and dense insertions, at every output offset.
    for line_len in [20usize, 61, 62, 63, 64, 65, 126, 127, 128, 129, 130] {
        let mut line = vec![b'a'; line_len];
        line[0] = b'.';
        line.extend_from_slice(b"\r\n");
        let text = text_with(2000, &line);
        for prefix in 0..33 {
            check_fixed_after(&text[1..], &backends, prefix);
        }
    }
    for unit in [&b"\r\n.\r\n\n"[..], b"\r.\n.", b"ab\n.\r"] {
        let text = text_with(1500, unit);
        for prefix in 0..33 {
            check_fixed_after(&text, &backends, prefix);
        }
    }
}

#[test]
fn fixed_stretches_between_insertions_of_every_length() {
    // Within a group that needs fixes, the bytes between two insertions (or after the last) are moved with a fixed
    // number of copies when they fit in a line's worth (96 bytes), else by a loop: bare-LF lines and lines that
    // start with a dot, of every length around those bounds and the group's, at several output offsets, and two
    // line lengths alternating so that both cases meet in one group.
    let backends = backends();
    for line_len in (1usize..=140).chain([191, 192, 193, 250]) {
        for (ending, dot) in [
            (&b"\n"[..], false),
            (b"\n", true),
            (b"\r", false),
            (b"\r\n", true),
        ] {
            let mut line = vec![b'a'; line_len];
            if dot {
                line[0] = b'.';
            }
            line.extend_from_slice(ending);
            let text = text_with(700, &line);
            for prefix in [0, 1, 17, 31] {
                check_fixed_after(&text, &backends, prefix);
                check_fixed_after(&text[3..], &backends, prefix);
            }
        }
    }
    for (a, b) in [(10usize, 100usize), (95, 97), (30, 127), (96, 5)] {
        let mut unit = vec![b'x'; a];
        unit.push(b'\n');
        unit.extend(std::iter::repeat_n(b'y', b));
        unit.extend_from_slice(b"\n.");
        let text = text_with(900, &unit);
        for prefix in 0..33 {
            check_fixed_after(&text, &backends, prefix);
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
            let mut fixed = Vec::new();
            copy_fixed_reference(s, check, &mut fixed);
            for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
                let mut out = Vec::new();
                copy_fixed_with(b, s, check, &mut out);
                prop_assert_eq!(&out, &fixed, "{:?} {:?}", b, check);
            }
        }
    }

    #[test]
    fn fixed_long_bodies_match_the_reference(
        body in proptest::collection::vec(
            prop_oneof![
                30 => (0usize..200).prop_map(clean),
                3 => Just(b"\r\n.".to_vec()),
                2 => Just(b"\n".to_vec()),
                2 => Just(b"\r".to_vec()),
                1 => Just(b"\n.".to_vec()),
                1 => Just(b"\r.".to_vec()),
                1 => (1usize..70).prop_map(|n| vec![b'\n'; n]),
            ],
            0..40,
        ).prop_map(|v| v.concat()),
        start in 0usize..64,
    ) {
        let s = &body[start.min(body.len())..];
        for check in CHECKS {
            let mut fixed = Vec::new();
            copy_fixed_reference(s, check, &mut fixed);
            for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
                let mut out = Vec::new();
                copy_fixed_with(b, s, check, &mut out);
                prop_assert_eq!(&out, &fixed, "{:?} {:?}", b, check);
            }
        }
    }
}
