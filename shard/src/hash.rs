//! A stable, portable 64-bit hasher (FNV-1a) for state hashes that must match across runs,
//! processes and machines. `std`'s default hasher is randomly seeded, so it cannot be used.

use std::hash::Hasher;

/// FNV-1a over the bytes it is fed: the same bytes give the same hash everywhere.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl StableHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher in its initial state.
    #[must_use]
    pub const fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Feeds an `f32` by its bit pattern (so `-0.0` and `0.0` differ, as replay requires).
    pub fn write_f32_bits(&mut self, value: f32) {
        self.write_u32(value.to_bits());
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.write(&value.to_le_bytes());
    }

    fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of known bytes is the published FNV-1a value, so it is stable across builds.
    #[test]
    fn known_vector() {
        let mut h = StableHasher::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
