//! The seeded random number generator games must use (a `Resource` in every match world).
//!
//! PCG-XSH-RR 32 (a permuted congruential generator): small state, fast, and the same
//! sequence on every platform for the same seed, which replay depends on.

use bevy_ecs::prelude::Resource;

/// Deterministic RNG resource. Seeded by the shard from the match seed.
#[derive(Debug, Clone, Resource)]
pub struct ShardRng {
    state: u64,
    inc: u64,
}

impl ShardRng {
    const MULT: u64 = 6_364_136_223_846_793_005;

    /// A generator for `seed`; the same seed always yields the same sequence.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut rng = Self { state: 0, inc: (seed.rotate_left(17) << 1) | 1 };
        rng.next_u32();
        rng.state = rng.state.wrapping_add(seed);
        rng.next_u32();
        rng
    }

    /// The generator's whole state, for persisting a match.
    #[must_use]
    pub fn state(&self) -> [u64; 2] {
        [self.state, self.inc]
    }

    /// A generator continuing from a [`ShardRng::state`]. The increment is forced odd, as
    /// PCG requires.
    #[must_use]
    pub fn from_state(state: [u64; 2]) -> Self {
        Self { state: state[0], inc: state[1] | 1 }
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MULT).wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    /// A float uniformly drawn from `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        // 24 random bits fill an f32 mantissa exactly.
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }

    /// A float uniformly drawn from `[low, high)`.
    pub fn range_f32(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.next_f32()
    }

    /// An integer uniformly drawn from `[0, bound)`; `0` when `bound` is 0.
    pub fn below(&mut self, bound: u32) -> u32 {
        if bound == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias is irrelevant for games.
        ((u64::from(self.next_u32()) * u64::from(bound)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same seed gives the same sequence and different seeds differ.
    #[test]
    fn seeded_sequences_repeat() {
        let a: Vec<u32> = (0..8).scan(ShardRng::new(7), |r, _| Some(r.next_u32())).collect();
        let b: Vec<u32> = (0..8).scan(ShardRng::new(7), |r, _| Some(r.next_u32())).collect();
        let c: Vec<u32> = (0..8).scan(ShardRng::new(8), |r, _| Some(r.next_u32())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// Floats stay in range and `below` respects its bound.
    #[test]
    fn ranges_hold() {
        let mut rng = ShardRng::new(1);
        for _ in 0..10_000 {
            let f = rng.range_f32(-2.0, 3.0);
            assert!((-2.0..3.0).contains(&f));
            assert!(rng.below(10) < 10);
        }
        assert_eq!(rng.below(0), 0);
    }
}
