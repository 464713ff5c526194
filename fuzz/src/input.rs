//! The byte format of every fuzz input, in both directions.
//!
//! [`Input`] reads structured choices (numbers, flags, byte strings) from the raw bytes libFuzzer hands a target;
//! [`Encoder`] writes the same choices, so hand-written seeds decode exactly as intended. Reading never fails:
//! past the end of the data every number is 0 and every string is empty, so any byte string is a valid input and a
//! truncated one is simply a shorter script.
//!
//! Why not `arbitrary`: the stable corpus replay (`smtp-proto/tests/corpus_replay.rs`) must decode every corpus file
//! exactly as the fuzzer did, with nothing but smtp-proto's own dependencies, and `arbitrary`'s byte format changes
//! between its releases (and the fuzz crate and the main workspace have separate lockfiles). A format defined here,
//! in thirty lines, cannot drift: the checked-in corpus keeps its meaning.

/// A cursor over fuzzer bytes.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    /// The low bit of one byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (`n` at most 256) from one byte; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n <= 256);
        let b = usize::from(self.u8());
        if n == 0 { 0 } else { b % n }
    }

    /// A byte string of at most `max` bytes: a length (one byte, or two when `max` exceeds 255), then the bytes.
    /// Shorter when the data ends first.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = if max > 255 {
            usize::from(self.u16())
        } else {
            usize::from(self.u8())
        };
        let len = len % (max + 1);
        let len = len.min(self.data.len());
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Writes choices in the format [`Input`] reads, for seeds and tests.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Two bytes, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A flag.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A byte string for [`Input::bytes`] with the same `max`.
    pub fn bytes(&mut self, max: usize, v: &[u8]) -> &mut Self {
        assert!(v.len() <= max, "{} bytes do not fit in {max}", v.len());
        if max > 255 {
            self.u16(u16::try_from(v.len()).expect("at most 65535 bytes"));
        } else {
            self.u8(v.len() as u8);
        }
        self.buf.extend_from_slice(v);
        self
    }

    /// Raw bytes (for [`Input::rest`]).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// The encoded bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Cuts `bytes` into pieces at `cuts` (taken modulo `len + 1`, sorted); empty pieces are kept, as a `receive` of
/// nothing is legal too.
pub fn split_at_cuts<'b>(bytes: &'b [u8], cuts: &[u16]) -> Vec<&'b [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (bytes.len() + 1))
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for p in points {
        pieces.push(&bytes[start..p]);
        start = p;
    }
    pieces.push(&bytes[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_and_input_agree() {
        let long = vec![7u8; 300];
        let data = Encoder::new()
            .u8(5)
            .u16(513)
            .bool(true)
            .bytes(10, b"abc")
            .bytes(1000, &long)
            .raw(b"tail")
            .finish();
        let mut input = Input::new(&data);
        assert_eq!(input.u8(), 5);
        assert_eq!(input.u16(), 513);
        assert!(input.bool());
        assert_eq!(input.bytes(10), b"abc");
        assert_eq!(input.bytes(1000), &long[..]);
        assert_eq!(input.rest(), b"tail");
        assert!(input.is_empty());
        assert_eq!(input.u16(), 0);
        assert_eq!(input.bytes(5), b"");
    }
}
