//! Injected randomness.
//!
//! The core needs random bytes for handshake packets and connection IDs, but
//! must stay deterministic under test, so it never draws from a global
//! generator: the runtime hands it an [`Entropy`] source (the OS generator in
//! production, a [`SeededEntropy`] in tests and simulations).

/// A source of random bytes supplied by whoever drives the core.
pub trait Entropy {
    /// Fills `buf` entirely with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, buf: &mut [u8]) {
        self(buf)
    }
}

/// A small deterministic generator (SplitMix64) so tests and simulations
/// replay exactly. Not for secrets: production runtimes use the OS generator.
#[derive(Clone, Debug)]
pub struct SeededEntropy {
    state: u64,
}

impl SeededEntropy {
    /// Starts the sequence at `seed`; equal seeds give equal byte streams.
    pub const fn new(seed: u64) -> Self {
        SeededEntropy { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_seeds_replay_equal_bytes() {
        let (mut a, mut b) = (SeededEntropy::new(7), SeededEntropy::new(7));
        let (mut x, mut y) = ([0u8; 37], [0u8; 37]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 37]);
    }

    #[test]
    fn closures_are_sources() {
        let mut zeros = |buf: &mut [u8]| buf.fill(0xAB);
        let mut out = [0u8; 4];
        Entropy::fill(&mut zeros, &mut out);
        assert_eq!(out, [0xAB; 4]);
    }
}
