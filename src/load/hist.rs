//! A small mergeable latency histogram: exact below 128 µs, then 64 sub-buckets per power
//! of two (about 1.6% resolution). Workers in other processes send theirs as sparse lists,
//! so percentiles over all processes come from one merged histogram, not an average of
//! per-process percentiles.

use serde::{Deserialize, Serialize};

/// Values below this many µs get a bucket each.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above [`LINEAR`] (2^6: about 1.6% resolution).
const SUB_BITS: u32 = 6;
/// Buckets up to 2^48 µs (years): nothing measured here comes close.
const BUCKETS: usize = LINEAR as usize + (48 - 7) * (1 << SUB_BITS);

/// Counts of values (µs) by bucket.
#[derive(Debug, Clone)]
pub struct Hist {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }
}

fn index_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= 7
    let sub = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let i = LINEAR as usize + (e as usize - 7) * (1 << SUB_BITS) + sub as usize;
    i.min(BUCKETS - 1)
}

/// The middle of bucket `i`.
fn value_of(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let k = i - LINEAR as usize;
    let e = (k >> SUB_BITS) as u32 + 7;
    let sub = (k & ((1 << SUB_BITS) - 1)) as u64;
    let low = (1u64 << e) + (sub << (e - SUB_BITS));
    low + (1u64 << (e - SUB_BITS)) / 2
}

/// The sparse form sent between processes: `[bucket, count]` pairs plus the exact max.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sparse {
    pub buckets: Vec<(u32, u64)>,
    pub max: u64,
}

impl Hist {
    pub fn record(&mut self, us: u64) {
        self.buckets[index_of(us)] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value (µs) at quantile `q` (0..=1); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    pub fn to_sparse(&self) -> Sparse {
        Sparse {
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| (i as u32, *n))
                .collect(),
            max: self.max,
        }
    }

    /// One histogram of the sparse ones several workers sent.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Sparse>) -> Hist {
        let mut h = Hist::default();
        parts.into_iter().for_each(|s| h.merge_sparse(s));
        h
    }

    pub fn merge_sparse(&mut self, s: &Sparse) {
        for &(i, n) in &s.buckets {
            if let Some(b) = self.buckets.get_mut(i as usize) {
                *b += n;
                self.count += n;
            }
        }
        self.max = self.max.max(s.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        let mut m = Hist::default();
        m.merge_sparse(&h.to_sparse());
        assert_eq!(m.count(), h.count());
        assert_eq!(m.quantile(0.5), h.quantile(0.5));
    }
}
