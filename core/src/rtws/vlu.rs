//! Variable Length Unsigned integers (RFC 7016 section 2.1.2).
//!
//! A VLU is big-endian base-128: every byte carries seven bits of the
//! number, and every byte but the last has its high bit set. RTWebSocket
//! writes flow IDs, byte counts, buffer advertisements and reason codes this
//! way.
//!
//! The RFC sets no length limit; the reference implementations keep numbers
//! in doubles (JavaScript) or unbounded integers (Python). Here a VLU is
//! at most [`MAX_VLU_LEN`] bytes (63 bits), which holds every number a peer
//! can mean, and a longer run of continuation bytes is refused before any
//! arithmetic could overflow. Leading zero digits (`80 01` for 1) are
//! accepted, as both references accept them; the encoder never writes them.

use thiserror::Error;

/// The longest VLU accepted: 9 bytes carry 63 bits.
pub const MAX_VLU_LEN: usize = 9;

/// Why a VLU did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VluError {
    /// The input ended inside the number (its last byte had the high bit set).
    #[error("the input ends inside a VLU")]
    Truncated,
    /// More than [`MAX_VLU_LEN`] bytes.
    #[error("a VLU longer than {MAX_VLU_LEN} bytes")]
    TooLong,
}

/// Decodes one VLU at the start of `input`: the value and how many bytes it
/// took.
pub fn decode_vlu(input: &[u8]) -> Result<(u64, usize), VluError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        if i == MAX_VLU_LEN {
            return Err(VluError::TooLong);
        }
        // At most 9 digits of 7 bits: 63 bits, so the shift never overflows.
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if input.len() >= MAX_VLU_LEN {
        Err(VluError::TooLong)
    } else {
        Err(VluError::Truncated)
    }
}

/// How many bytes [`encode_vlu`] writes for `value`.
pub fn vlu_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Appends `value` as a VLU of [`vlu_len`] bytes.
///
/// Values of 2^63 and above need ten bytes, which [`decode_vlu`] refuses;
/// nothing in this crate writes one (flow IDs and byte counts stay far
/// below).
pub fn encode_vlu(value: u64, out: &mut Vec<u8>) {
    let len = vlu_len(value);
    for i in (0..len).rev() {
        // i * 7 < 64 since len ≤ 10.
        let digit = ((value >> (i * 7)) & 0x7f) as u8;
        out.push(if i == 0 { digit } else { digit | 0x80 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_vlu(v, &mut out);
        out
    }

    #[test]
    fn small_values_are_one_byte() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(decode_vlu(&[0x7f]), Ok((127, 1)));
    }

    #[test]
    fn values_are_big_endian_base_128() {
        assert_eq!(enc(128), [0x81, 0x00]);
        assert_eq!(enc(300), [0x82, 0x2c]);
        assert_eq!(enc(16383), [0xff, 0x7f]);
        assert_eq!(enc(16384), [0x81, 0x80, 0x00]);
        // The reference's default receive buffer, 2^21 - 1.
        assert_eq!(enc(2_097_151), [0xff, 0xff, 0x7f]);
        assert_eq!(decode_vlu(&[0x82, 0x2c, 0xaa]), Ok((300, 2)));
    }

    #[test]
    fn the_largest_accepted_value_round_trips() {
        let max = (1u64 << 63) - 1;
        let bytes = enc(max);
        assert_eq!(bytes.len(), MAX_VLU_LEN);
        assert_eq!(decode_vlu(&bytes), Ok((max, MAX_VLU_LEN)));
    }

    #[test]
    fn leading_zero_digits_are_accepted_like_the_references() {
        assert_eq!(decode_vlu(&[0x80, 0x80, 0x01]), Ok((1, 3)));
    }

    #[test]
    fn truncated_input_is_refused() {
        assert_eq!(decode_vlu(&[]), Err(VluError::Truncated));
        assert_eq!(decode_vlu(&[0x81]), Err(VluError::Truncated));
        assert_eq!(decode_vlu(&[0xff; 8]), Err(VluError::Truncated));
    }

    #[test]
    fn more_than_nine_bytes_is_refused_without_reading_further() {
        assert_eq!(decode_vlu(&[0x80; 9]), Err(VluError::TooLong));
        let mut long = vec![0x80; 9];
        long.push(0x01);
        assert_eq!(decode_vlu(&long), Err(VluError::TooLong));
        assert_eq!(decode_vlu(&[0xff; 100_000]), Err(VluError::TooLong));
    }

    #[test]
    fn lengths_match_encodings() {
        for shift in 0..63 {
            for v in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let bytes = enc(v);
                assert_eq!(bytes.len(), vlu_len(v), "{v}");
                assert_eq!(decode_vlu(&bytes), Ok((v, bytes.len())), "{v}");
            }
        }
    }
}
