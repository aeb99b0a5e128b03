//! Latency histogram with fixed log-linear buckets: 32 buckets per power of two, so any
//! reported value is within about 3% of the true one. Fixed size, no allocation per sample,
//! and histograms from several processes add up bucket by bucket.

const SUB_BUCKETS: u64 = 32;
const SUB_BITS: u32 = 5;
pub const BUCKETS: usize = 1920;

pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < 2 * SUB_BUCKETS {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BITS;
    ((shift as usize) << SUB_BITS) + (value >> shift) as usize
}

/// Middle of a bucket's range, the value reported for every sample in it.
fn bucket_value(index: usize) -> u64 {
    if index < 2 * SUB_BUCKETS as usize {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) as u32 - 1;
    let mantissa = (index as u64 & (SUB_BUCKETS - 1)) + SUB_BUCKETS;
    (mantissa << shift) + ((1u64 << shift) >> 1)
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Value at quantile `q` (0..=1); 0 for an empty histogram.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_value(index).min(self.max);
            }
        }
        self.max
    }

    /// Sparse text form, "max;index:count,index:count", for passing between processes.
    pub fn encode(&self) -> String {
        let mut out = format!("{};", self.max);
        for (index, &count) in self.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            out.push_str(&format!("{index}:{count},"));
        }
        out
    }

    pub fn merge_encoded(&mut self, text: &str) -> Result<(), String> {
        let (max, buckets) = text.split_once(';').ok_or("histogram without max")?;
        self.max = self.max.max(max.parse().map_err(|_| "bad histogram max")?);
        for pair in buckets.split(',').filter(|p| !p.is_empty()) {
            let (index, count) = pair.split_once(':').ok_or("bad histogram pair")?;
            let index: usize = index.parse().map_err(|_| "bad histogram index")?;
            let count: u64 = count.parse().map_err(|_| "bad histogram count")?;
            *self.counts.get_mut(index).ok_or("histogram index out of range")? += count;
            self.total += count;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut last = 0;
        for v in (0..1_000_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS);
            last = b;
            let mid = bucket_value(b) as f64;
            assert!((mid - v as f64).abs() <= v as f64 * 0.032 + 1.0, "{v} -> {mid}");
        }
    }

    #[test]
    fn quantiles_and_merging() {
        let mut a = Histogram::default();
        for v in 1..=1000u64 {
            a.record(v * 1000);
        }
        let p50 = a.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() < 20_000.0);
        assert_eq!(a.quantile(1.0), 1_000_000);
        let mut b = Histogram::default();
        b.merge_encoded(&a.encode()).unwrap();
        assert_eq!((b.total(), b.max(), b.quantile(0.99)), (a.total(), a.max(), a.quantile(0.99)));
    }
}
