//! The one source of randomness: SplitMix64's finalizer as a counter-based generator. Every
//! draw is a pure function of (seed, stream, index), so the split's hashes, the MLP's
//! initialisation, shuffles and dropout, and the tests' data need no generator state, and a
//! resumed run draws exactly what an uninterrupted one would have drawn.

/// SplitMix64's finalizer: a cheap, well-mixed, version-stable 64-bit hash step.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Independent streams of the MLP's draws, so that no two uses share numbers.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Initial weights of parameter `n`.
    Init(u64),
    /// The epoch's shuffle.
    Shuffle(u64),
    /// Dropout masks of optimizer step `step`, layer `layer`.
    Dropout {
        /// The optimizer step.
        step: u64,
        /// The hidden layer.
        layer: u64,
    },
    /// Which train rows are held out for validation.
    Validation,
    /// The rows of a paired bootstrap's resamples.
    Bootstrap,
    /// The cross-validation folds of the group whose key hashes to `n`.
    Folds(u64),
    /// Which groups the per-group strength is chosen on.
    StrengthSample,
}

/// The base of a stream's counter.
pub fn base(seed: u64, stream: Stream) -> u64 {
    let (tag, a, b) = match stream {
        Stream::Init(n) => (1, n, 0),
        Stream::Shuffle(epoch) => (2, epoch, 0),
        Stream::Dropout { step, layer } => (3, step, layer),
        Stream::Validation => (4, 0, 0),
        Stream::Bootstrap => (5, 0, 0),
        Stream::Folds(n) => (6, n, 0),
        Stream::StrengthSample => (7, 0, 0),
    };
    mix64(mix64(mix64(seed ^ 0x6d6c_7000_0000_0000 ^ tag).wrapping_add(a)).wrapping_add(b))
}

/// 64 random bits: draw `i` of the stream based at `base`.
pub fn bits(base: u64, i: u64) -> u64 {
    mix64(base.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// A uniform number in [0, 1).
pub fn unit(base: u64, i: u64) -> f64 {
    (bits(base, i) >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal number (Box–Muller on two draws).
pub fn normal(base: u64, i: u64) -> f64 {
    let u1 = 1.0 - unit(base, 2 * i);
    let u2 = unit(base, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A permutation of `0..n` (Fisher–Yates driven by the stream).
pub fn permutation(n: usize, base: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        // Multiply-shift maps 64 random bits onto 0..=i without modulo bias worth measuring.
        let j = ((u128::from(bits(base, i as u64)) * (i as u128 + 1)) >> 64) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_seeded_permutation() {
        let a = permutation(1000, base(7, Stream::Shuffle(0)));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(a, permutation(1000, base(7, Stream::Shuffle(0))));
        assert_ne!(a, permutation(1000, base(7, Stream::Shuffle(1))));
        assert_ne!(a, permutation(1000, base(8, Stream::Shuffle(0))));
    }

    #[test]
    fn draws_have_the_right_moments() {
        let b = base(1, Stream::Init(0));
        let n = 200_000;
        let u: f64 = (0..n).map(|i| unit(b, i)).sum::<f64>() / n as f64;
        let z: Vec<f64> = (0..n).map(|i| normal(b, i)).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((u - 0.5).abs() < 0.005, "{u}");
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "{mean} {var}");
    }
}
