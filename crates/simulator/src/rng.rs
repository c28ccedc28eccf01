//! Stable hashing and a tiny seeded random generator for the simulated data.
//!
//! The simulator must answer the same rows for the same (table, account, date) in every process,
//! so nothing here may depend on `std`'s per-process `RandomState` or on a crate whose algorithm
//! could change between versions: FNV-1a turns strings into seeds, SplitMix64 mixes seeds and
//! generates the stream. Both are a few lines, public-domain, and fast.

use chrono::{Datelike, NaiveDate};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// FNV-1a over `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// SplitMix64's finaliser: a bijective avalanche of `z`.
fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Derives a new seed from `seed` and `part`; order matters, so `mix(mix(s, a), b)` and
/// `mix(mix(s, b), a)` differ.
pub fn mix(seed: u64, part: u64) -> u64 {
    finalise(seed ^ finalise(part.wrapping_add(GOLDEN_GAMMA)))
}

/// A date as a seed part: its day number in the proleptic Gregorian calendar.
pub fn date_part(d: NaiveDate) -> u64 {
    i64::from(d.num_days_from_ce()) as u64
}

/// SplitMix64: one `u64` of state, full period, good enough statistics for fake traffic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        finalise(self.0)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: keeps ln finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A Poisson count with mean `lambda`. Knuth's product method while it is cheap (its cost
    /// grows with `lambda`), the normal approximation beyond, where the two are
    /// indistinguishable for fake traffic.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0;
            let mut p = self.unit();
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            return k;
        }
        (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_fixed_values() {
        // Pinned so that a change of algorithm, which would change every simulated figure
        // that tests and demos were written against, cannot pass unnoticed.
        assert_eq!(fnv1a(b""), FNV_OFFSET);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_ne!(mix(1, 2), mix(2, 1));
    }

    #[test]
    fn poisson_has_the_right_mean() {
        let mut r = Rng::new(42);
        for lambda in [0.3, 4.0, 25.0, 400.0] {
            let n = 20_000;
            let mean = (0..n).map(|_| r.poisson(lambda) as f64).sum::<f64>() / n as f64;
            assert!((mean - lambda).abs() < 0.05 * lambda + 0.02, "λ={lambda}: mean {mean}");
        }
        assert_eq!(r.poisson(0.0), 0);
    }

    #[test]
    fn unit_stays_in_range() {
        let mut r = Rng::new(7);
        assert!((0..10_000).map(|_| r.unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}
