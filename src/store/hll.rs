//! HyperLogLog for `unique_viewers` and `interactors` in the embedded store (Redis has its
//! own PFADD/PFCOUNT). 2^14 one-byte registers: 16 KiB per sketch and a standard error of
//! 1.04/√16384 ≈ 0.81%, inside the contract's 1%, the same precision as Redis.

use std::hash::{BuildHasher, Hasher};

/// log2 of the register count (Redis uses the same 14).
const P: u32 = 14;
const M: usize = 1 << P;

/// Distinct hashes kept exactly before switching to registers: small campaigns (and tests)
/// get exact counts, and the exact set (8 bytes a hash) never outgrows the 16 KiB sketch by
/// much.
const EXACT_UP_TO: usize = 4096;

/// A HyperLogLog sketch with the standard small-range (linear counting) correction, exact
/// below [`EXACT_UP_TO`] distinct items (64-bit hashes: collisions are negligible).
#[derive(Clone, Default)]
pub struct HyperLogLog {
    exact: std::collections::HashSet<u64>,
    registers: Option<Box<[u8]>>,
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
        if let Some(regs) = &mut self.registers {
            return set_register(regs, h);
        }
        if !self.exact.insert(h) {
            return false;
        }
        if self.exact.len() > EXACT_UP_TO {
            let mut regs = vec![0u8; M].into_boxed_slice();
            for &h in &self.exact {
                set_register(&mut regs, h);
            }
            self.registers = Some(regs);
            self.exact = Default::default();
        }
        true
    }

    /// The cardinality (exact while small, else the estimate).
    pub fn count(&self) -> u64 {
        let Some(registers) = &self.registers else {
            return self.exact.len() as u64;
        };
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let (sum, zeros) = registers.iter().fold((0.0f64, 0usize), |(s, z), &r| {
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

fn set_register(regs: &mut [u8], h: u64) -> bool {
    let idx = (h >> (64 - P)) as usize;
    let rest = h << P | 1 << (P - 1);
    let rank = rest.leading_zeros() as u8 + 1;
    if rank > regs[idx] {
        regs[idx] = rank;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_exact() {
        let mut h = HyperLogLog::default();
        for i in 0..100 {
            h.add(&format!("viewer-{i}"));
            h.add(&format!("viewer-{i}"));
        }
        assert_eq!(h.count(), 100);
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
