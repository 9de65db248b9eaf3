//! HyperLogLog for `unique_viewers` and `interactors` in the embedded store (Redis has its
//! own PFADD/PFCOUNT). 2^14 one-byte registers: 16 KiB per sketch and a standard error of
//! 1.04/√16384 ≈ 0.81%, inside the contract's 1%, the same precision as Redis.

use std::hash::{BuildHasher, Hasher};

/// log2 of the register count (Redis uses the same 14).
const P: u32 = 14;
const M: usize = 1 << P;

/// A HyperLogLog sketch with the standard small-range (linear counting) correction.
#[derive(Clone)]
pub struct HyperLogLog {
    registers: Box<[u8]>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        Self {
            registers: vec![0u8; M].into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HyperLogLog(~{})", self.count())
    }
}

/// A fixed-key SipHash: sketches must hash the same value the same way in every process.
fn hash(item: &str) -> u64 {
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write(item.as_bytes());
    h.finish()
}

impl HyperLogLog {
    /// Adds an item; returns true when a register changed (the estimate may have moved).
    pub fn add(&mut self, item: &str) -> bool {
        let h = hash(item);
        let idx = (h >> (64 - P)) as usize;
        let rest = h << P | 1 << (P - 1);
        let rank = rest.leading_zeros() as u8 + 1;
        if rank > self.registers[idx] {
            self.registers[idx] = rank;
            true
        } else {
            false
        }
    }

    /// The cardinality estimate.
    pub fn count(&self) -> u64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let (sum, zeros) = self.registers.iter().fold((0.0f64, 0usize), |(s, z), &r| {
            (s + 2f64.powi(-(r as i32)), z + usize::from(r == 0))
        });
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        est.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_within_two_percent() {
        let mut h = HyperLogLog::default();
        for i in 0..100 {
            h.add(&format!("viewer-{i}"));
            h.add(&format!("viewer-{i}"));
        }
        assert!((98..=102).contains(&h.count()), "estimate {} for 100", h.count());
    }

    #[test]
    fn large_counts_stay_within_two_percent() {
        let mut h = HyperLogLog::default();
        let n = 200_000u64;
        for i in 0..n {
            h.add(&format!("v{i:08}"));
        }
        let err = (h.count() as f64 - n as f64).abs() / n as f64;
        assert!(err < 0.02, "estimate {} for {n}", h.count());
    }
}
