//! Deterministic hashing and a tiny seeded RNG for the sandbox.
//!
//! Everything the sandbox invents (offers, change sets, faults, event ids) is a pure
//! function of the seed, so two sandboxes with the same seed serve byte-identical data
//! and tests can reproduce a failure. `splitmix64` is the mixing function: fast, tiny,
//! well distributed, and stable forever (unlike `rand`'s `StdRng`, whose algorithm may
//! change between releases).

/// One SplitMix64 step from state `z`: adds the golden-ratio increment, then mixes.
/// A bijective, well-mixing map of `u64`.
pub const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of a field name, so call sites read `tag("price")` instead of magic numbers.
pub const fn tag(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
        i += 1;
    }
    h
}

/// Hashes an ordered list of words into one; order matters.
pub fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6A09_E667_F3BC_C908, |acc, &p| {
        splitmix64(acc ^ splitmix64(p))
    })
}

/// `h` reduced to `0..n` (n > 0). The bias of a plain modulo is irrelevant here.
pub fn below(h: u64, n: u64) -> u64 {
    debug_assert!(n > 0);
    h % n.max(1)
}

/// `h` as a uniform fraction in `[0, 1)`.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Picks one element of a non-empty slice.
pub fn pick<T: Copy>(h: u64, items: &[T]) -> T {
    items[below(h, items.len() as u64) as usize]
}

/// A seeded SplitMix64 stream: the sandbox's only source of randomness.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        // `splitmix64` adds the increment itself: output i is mix(seed + (i + 1) * gamma).
        let z = self.state;
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(z)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p.min(1.0)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of the reference SplitMix64 generator seeded with 0.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn mix_depends_on_order_and_every_part() {
        assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
        assert_ne!(mix(&[1, 2, 3]), mix(&[1, 2, 4]));
        assert_eq!(mix(&[7, tag("name")]), mix(&[7, tag("name")]));
        assert_ne!(tag("name"), tag("price"));
    }

    #[test]
    fn unit_and_below_stay_in_range() {
        let mut rng = Rng::new(42);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(rng.below(7) < 7);
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..50).collect();
        Rng::new(3).shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
