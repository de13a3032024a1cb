//! A bounded MSB-first bit reader for codec configuration (SPS, OBU,
//! `AudioSpecificConfig`).
//!
//! Every read returns `None` past the end instead of panicking, so the
//! parsers above chain reads with `?` and a short or hostile record just
//! yields no description. No read loops more than 32 times, so the work per
//! call is bounded by the caller's (constant) number of reads.

/// Cursor over bytes, optionally removing H.264/HEVC emulation-prevention
/// bytes (`00 00 03` → `00 00`) on the fly, so the RBSP is never copied.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    // Invariant: `pos <= data.len()`: `load` only advances past a byte it
    // has just read with `get`.
    pos: usize,
    cur: u8,
    // Bits of `cur` not yet consumed (0..=8).
    left: u8,
    // Consecutive zero bytes just loaded, for emulation prevention.
    zeros: u8,
    rbsp: bool,
}

impl<'a> BitReader<'a> {
    /// Reads `data` as plain bits.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            cur: 0,
            left: 0,
            zeros: 0,
            rbsp: false,
        }
    }

    /// Reads a NAL unit payload as its RBSP: every `03` that follows two
    /// zero bytes is skipped.
    pub(super) fn rbsp(data: &'a [u8]) -> Self {
        Self {
            rbsp: true,
            ..Self::new(data)
        }
    }

    /// Bits not yet read (ignoring emulation prevention, which only plain
    /// readers ask about).
    pub(super) fn remaining(&self) -> usize {
        (self.data.len() - self.pos) * 8 + usize::from(self.left)
    }

    fn load(&mut self) -> Option<u8> {
        let mut b = *self.data.get(self.pos)?;
        self.pos += 1;
        if self.rbsp && self.zeros >= 2 && b == 0x03 {
            self.zeros = 0;
            b = *self.data.get(self.pos)?;
            self.pos += 1;
        }
        self.zeros = if b == 0 {
            self.zeros.saturating_add(1)
        } else {
            0
        };
        Some(b)
    }

    /// One bit.
    pub(super) fn bit(&mut self) -> Option<bool> {
        if self.left == 0 {
            self.cur = self.load()?;
            self.left = 8;
        }
        self.left -= 1;
        Some((self.cur >> self.left) & 1 == 1)
    }

    /// One bit as a flag (the common `u(1)`).
    pub(super) fn flag(&mut self) -> Option<bool> {
        self.bit()
    }

    /// `n` bits (at most 32), most significant first.
    pub(super) fn bits(&mut self, n: u32) -> Option<u32> {
        if n > 32 {
            return None;
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        u32::try_from(v).ok()
    }

    /// Skips `n` bits, `n` a small constant or a bounded syntax length.
    pub(super) fn skip(&mut self, n: u32) -> Option<()> {
        let mut n = n;
        while n > 0 {
            let step = n.min(32);
            self.bits(step)?;
            n -= step;
        }
        Some(())
    }

    /// A byte.
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.bits(8).and_then(|v| u8::try_from(v).ok())
    }

    /// Unsigned Exp-Golomb `ue(v)`: at most 31 leading zeros, so the value
    /// fits a `u32` (the syntax never needs more).
    pub(super) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        // (2^zeros - 1) + rest <= 2^32 - 2.
        u32::try_from((1u64 << zeros) - 1 + u64::from(rest)).ok()
    }

    /// Signed Exp-Golomb `se(v)`.
    pub(super) fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// AV1 `uvlc()`: like `ue` but 32 or more leading zeros mean "max".
    pub(super) fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Some(u32::MAX);
            }
        }
        let rest = self.bits(zeros)?;
        u32::try_from((1u64 << zeros) - 1 + u64::from(rest)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_values() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(
            (0..5).map(|_| r.ue()).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
        let mut r = BitReader::new(&data);
        assert_eq!(
            (0..5).map(|_| r.se()).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(-1), Some(2), Some(-2)]
        );
    }

    #[test]
    fn emulation_prevention_bytes_are_skipped_in_rbsp_only() {
        let data = [0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x03];
        let mut r = BitReader::rbsp(&data);
        let read: Vec<_> = (0..5).map(|_| r.u8()).collect();
        assert_eq!(read, vec![Some(0), Some(0), Some(1), Some(0), Some(0)]);
        // The second `03` follows an escape, so it is data.
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        let mut plain = BitReader::new(&data);
        assert_eq!(plain.bits(24), Some(3));
    }

    #[test]
    fn reads_past_the_end_are_none() {
        let mut r = BitReader::new(&[0x00, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(r.ue(), None);
        assert_eq!(BitReader::new(&[]).bit(), None);
        assert_eq!(BitReader::new(&[0xff]).bits(33), None);
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0x80]).uvlc(), Some(u32::MAX));
    }
}
