//! Two models scored on the same rows, and whether one is better by more than noise: ROC AUC by
//! DeLong's paired test (the variance of the AUC difference from each positive's and each
//! negative's placement values, DeLong, DeLong and Clarke-Pearson 1988), log loss and PR AUC by a
//! paired bootstrap (both models scored on the same resampled rows). What a retrain's baseline
//! comparison reports; rows are unweighted.

use crate::metrics::nan_as_null;
use crate::random;

/// DeLong's paired test of two ROC AUCs on the same rows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeLong {
    /// ROC AUC of model `a` (the baseline).
    pub auc_a: f64,
    /// ROC AUC of model `b` (the candidate).
    pub auc_b: f64,
    /// `auc_b - auc_a`.
    pub delta: f64,
    /// The variance of `delta`.
    pub variance: f64,
    /// `delta / sqrt(variance)` (0 when both are 0: the models rank every pair alike).
    pub z: f64,
    /// Two-sided p-value of `z` under the standard normal.
    pub p_value: f64,
}

/// The placement value of each positive (the share of negatives it outranks, ties a half) and of
/// each negative (the share of positives that outrank it), in row order of each class.
fn placements(y: &[f32], p: &[f64]) -> (Vec<f64>, Vec<f64>) {
    // `+ 0.0` turns -0.0 into 0.0: the two are one score (a tie), as for the run's ROC AUC, but
    // `total_cmp` would order them.
    let mut pos: Vec<f64> = y.iter().zip(p).filter(|(y, _)| **y == 1.0).map(|(_, p)| *p + 0.0).collect();
    let mut neg: Vec<f64> = y.iter().zip(p).filter(|(y, _)| **y != 1.0).map(|(_, p)| *p + 0.0).collect();
    let (m, n) = (pos.len() as f64, neg.len() as f64);
    let order = |v: &mut Vec<f64>| v.sort_by(f64::total_cmp);
    let (pos_rows, neg_rows) = (pos.clone(), neg.clone());
    order(&mut pos);
    order(&mut neg);
    // Below and tied, by binary search in the sorted other class: O((m + n) log(m + n)).
    let share = |sorted: &[f64], x: f64| {
        let below = sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        let tied = sorted[below..].partition_point(|v| v.total_cmp(&x).is_le());
        (below as f64, tied as f64)
    };
    let v10 = pos_rows
        .iter()
        .map(|&x| {
            let (below, tied) = share(&neg, x);
            (below + 0.5 * tied) / n
        })
        .collect();
    let v01 = neg_rows
        .iter()
        .map(|&x| {
            let (below, tied) = share(&pos, x);
            (m - below - tied + 0.5 * tied) / m
        })
        .collect();
    (v10, v01)
}

/// The sample covariance of two equally long series.
fn covariance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (n - 1.0)
}

/// DeLong's test of `b` against `a` on labels `y` (1 positive, else negative); `None` when there
/// are fewer than two positives or two negatives (no variance to estimate).
pub fn delong(y: &[f32], a: &[f64], b: &[f64]) -> Option<DeLong> {
    let (a10, a01) = placements(y, a);
    let (b10, b01) = placements(y, b);
    let (m, n) = (a10.len(), a01.len());
    if m < 2 || n < 2 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (auc_a, auc_b) = (mean(&a10), mean(&b10));
    let delta = auc_b - auc_a;
    let s10 = covariance(&a10, &a10) + covariance(&b10, &b10) - 2.0 * covariance(&a10, &b10);
    let s01 = covariance(&a01, &a01) + covariance(&b01, &b01) - 2.0 * covariance(&a01, &b01);
    // Rounding can leave a hair below zero when the models rank alike.
    let variance = (s10 / m as f64 + s01 / n as f64).max(0.0);
    let z = if variance > 0.0 { delta / variance.sqrt() } else { 0.0 };
    let p_value = if variance > 0.0 { erfc(z.abs() / std::f64::consts::SQRT_2) } else { 1.0 };
    Some(DeLong { auc_a, auc_b, delta, variance, z, p_value })
}

/// The complementary error function, to about 1e-15 relative: erfc(x) = 2 Φ(-x √2).
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 0.5 {
        // Maclaurin series of erf, converging fast near 0.
        let (mut term, mut sum, x2) = (x, x, x * x);
        for k in 1..40 {
            term *= -x2 / k as f64;
            sum += term / (2 * k + 1) as f64;
        }
        return 1.0 - sum * 2.0 / std::f64::consts::PI.sqrt();
    }
    // Lentz's continued fraction for erfc, converging fast away from 0.
    let tiny = 1e-300;
    let (mut f, mut c, mut d) = (x, x, 0.0);
    for k in 1..300 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

/// A paired bootstrap interval of `metric(b) - metric(a)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    /// The difference on the rows themselves.
    #[serde(with = "nan_as_null")]
    pub delta: f64,
    /// The lower end of the percentile interval (null when no resample gave a finite value).
    #[serde(with = "nan_as_null")]
    pub low: f64,
    /// The upper end.
    #[serde(with = "nan_as_null")]
    pub high: f64,
    /// The coverage asked for (0.95).
    pub level: f64,
    /// Two-sided bootstrap p-value of "no difference": twice the smaller share of resampled
    /// differences on either side of zero (the smallest α whose 1-α percentile interval
    /// excludes zero), at most 1.
    #[serde(with = "nan_as_null")]
    pub p_value: f64,
    /// Resamples drawn.
    pub resamples: usize,
}

/// Resamples drawn by [`bootstrap`] when the caller does not say: enough for the 2.5% and 97.5%
/// percentiles to move by less than a tenth of the interval's width between seeds.
pub const RESAMPLES: usize = 1000;

/// A difference `metric(b) − metric(a)` evaluated on a resample given as a count per row (how
/// many times the resample drew it): what [`bootstrap`] evaluates.
pub type Difference = Box<dyn Fn(&[u8]) -> f64 + Sync>;

/// Draws Poisson(1) counts from uniform 64-bit draws: by the draw's top byte when its bucket
/// lies within one count (all but a few of the 256), else by comparing with the thresholds.
struct Poisson {
    thresholds: [u64; 20],
    /// The count of a top byte, or `u8::MAX` where the bucket straddles a threshold.
    by_top_byte: [u8; 256],
}

impl Poisson {
    fn new() -> Poisson {
        let thresholds = poisson_thresholds();
        let count = |draw: u64| thresholds.iter().take_while(|&&t| draw >= t).count() as u8;
        let mut by_top_byte = [u8::MAX; 256];
        for (b, slot) in by_top_byte.iter_mut().enumerate() {
            let (low, high) = ((b as u64) << 56, ((b as u64) << 56) | ((1u64 << 56) - 1));
            if count(low) == count(high) {
                *slot = count(low);
            }
        }
        Poisson { thresholds, by_top_byte }
    }

    fn count(&self, draw: u64) -> u8 {
        match self.by_top_byte[(draw >> 56) as usize] {
            u8::MAX => self.thresholds.iter().take_while(|&&t| draw >= t).count() as u8,
            c => c,
        }
    }
}

/// `P(X ≤ k)` for X ~ Poisson(1), k = 0..19, scaled to `u64`: a uniform 64-bit draw below
/// entry k and at or above entry k-1 is a count of k.
fn poisson_thresholds() -> [u64; 20] {
    let mut out = [u64::MAX; 20];
    let (mut term, mut cdf) = ((-1.0f64).exp(), 0.0);
    for (k, slot) in out.iter_mut().enumerate() {
        cdf += term;
        term /= (k + 1) as f64;
        // The cast saturates: counts the f64 CDF cannot tell from certain stay at u64::MAX.
        *slot = (cdf * 18_446_744_073_709_551_616.0) as u64;
    }
    out
}

/// The paired percentile bootstrap of each of `differences` over `n` rows: `resamples` seeded
/// resamples (the same seed draws the same resamples, whatever the thread count), every
/// difference evaluated on the same resamples. A resample gives each row a count drawn from
/// Poisson(1), independently: the Poisson bootstrap (Hanley and MacGibbon 2006; Chamandy et al.
/// 2012), which matches drawing n rows with replacement as n grows and, unlike it, draws each
/// row's count from its own counter in one sequential pass. A metric then costs one pass over
/// the rows per resample instead of a copy and a sort. Resamples where a difference is not
/// finite (no positive drawn, for PR AUC) are skipped for it. `tick` is called once per
/// resample.
pub fn bootstrap(
    n: usize,
    differences: &[Difference],
    resamples: usize,
    seed: u64,
    tick: &(dyn Fn() + Sync),
) -> Vec<Interval> {
    use rayon::prelude::*;
    let level = 0.95;
    let ones = vec![1u8; n];
    let base = random::base(seed, random::Stream::Bootstrap);
    let poisson = Poisson::new();
    // Each resample draws from its own counters, so resamples are independent work.
    let drawn: Vec<Vec<f64>> = (0..resamples)
        .into_par_iter()
        .map_init(
            || vec![0u8; n],
            |counts, r| {
                let first = (r * n) as u64;
                for (i, c) in counts.iter_mut().enumerate() {
                    *c = poisson.count(random::bits(base, first + i as u64));
                }
                let deltas = differences.iter().map(|d| d(counts)).collect();
                tick();
                deltas
            },
        )
        .collect();
    differences
        .iter()
        .enumerate()
        .map(|(k, difference)| {
            let mut deltas: Vec<f64> = drawn.iter().map(|d| d[k]).filter(|d| d.is_finite()).collect();
            deltas.sort_by(f64::total_cmp);
            let at = |q: f64| {
                if deltas.is_empty() {
                    return f64::NAN;
                }
                let i = (q * (deltas.len() - 1) as f64).round() as usize;
                deltas[i.min(deltas.len() - 1)]
            };
            let share = |count: usize| count as f64 / deltas.len().max(1) as f64;
            let below = share(deltas.iter().filter(|d| **d <= 0.0).count());
            let above = share(deltas.iter().filter(|d| **d >= 0.0).count());
            let p_value = if deltas.is_empty() { f64::NAN } else { (2.0 * below.min(above)).min(1.0) };
            Interval {
                delta: difference(&ones),
                low: at((1.0 - level) / 2.0),
                high: at(1.0 - (1.0 - level) / 2.0),
                level,
                p_value,
                resamples,
            }
        })
        .collect()
}

/// The difference of per-row terms (a loss, a 0/1 correctness), `b`'s minus `a`'s, as a
/// weighted mean over a resample.
pub fn mean_difference(a: Vec<f64>, b: Vec<f64>) -> Difference {
    let terms: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b - a).collect();
    Box::new(move |w: &[u8]| {
        let (mut sum, mut weight) = (0.0, 0u64);
        for (t, &c) in terms.iter().zip(w) {
            sum += t * f64::from(c);
            weight += u64::from(c);
        }
        sum / weight as f64
    })
}

/// Each row's log loss for probabilities `p` of labels `y`, clipped to [ε, 1-ε] (f64's ε) as the
/// run metrics clip it, so that the bootstrap's difference is the reported one.
pub fn log_losses(y: &[f32], p: &[f64]) -> Vec<f64> {
    let eps = f64::EPSILON;
    y.iter()
        .zip(p)
        .map(|(&y, &p)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y == 1.0 { -p.ln() } else { -(1.0 - p).ln() }
        })
        .collect()
}

/// Each row's 1 when `p > 0.5` is the label (the run metrics' threshold), else 0.
pub fn hits(y: &[f32], p: &[f64]) -> Vec<f64> {
    y.iter().zip(p).map(|(y, p)| f64::from(u8::from((*p > 0.5) == (*y == 1.0)))).collect()
}

/// Each row's log loss for row-major class probabilities (`k` per row) of class indices `y`.
pub fn multiclass_log_losses(y: &[f32], p: &[f64], k: usize) -> Vec<f64> {
    y.iter().zip(p.chunks_exact(k)).map(|(&c, row)| -row[c as usize].max(f64::EPSILON).ln()).collect()
}

/// Each row's 1 when its most probable class (the first on ties) is the label, else 0.
pub fn multiclass_hits(y: &[f32], p: &[f64], k: usize) -> Vec<f64> {
    let predicted = crate::metrics::argmax(p, k);
    y.iter().zip(predicted).map(|(c, hat)| f64::from(u8::from(*c as usize == hat))).collect()
}

/// Rows in descending score order, their labels in that order, and where each run of equal
/// scores ends.
struct Ranking {
    order: Vec<u32>,
    positive: Vec<bool>,
    ends: Vec<u32>,
}

fn ranking(y: &[f32], p: &[f64]) -> Ranking {
    let mut order: Vec<u32> = (0..p.len() as u32).collect();
    order.sort_by(|&i, &j| p[j as usize].total_cmp(&p[i as usize]));
    let mut ends = Vec::new();
    for k in 1..order.len() {
        if p[order[k] as usize] != p[order[k - 1] as usize] {
            ends.push(k as u32);
        }
    }
    ends.push(order.len() as u32);
    let positive = order.iter().map(|&i| y[i as usize] == 1.0).collect();
    Ranking { order, positive, ends }
}

/// Average precision (as [`crate::metrics::average_precision`]: thresholds at each distinct
/// score) of a resample given by counts: a run of equal scores none of whose rows was drawn is
/// no threshold of the resample.
fn weighted_average_precision(r: &Ranking, w: &[u8]) -> f64 {
    // Σ Δrecall · precision = (Σ Δtp · tp / seen) / positives: one pass, the positives counted
    // on the way.
    let (mut tp, mut seen, mut start, mut sum) = (0u64, 0u64, 0usize, 0.0);
    for &end in &r.ends {
        let (mut group_pos, mut group) = (0u64, 0u64);
        let rows = start..end as usize;
        for (&i, &positive) in r.order[rows.clone()].iter().zip(&r.positive[rows]) {
            let c = u64::from(w[i as usize]);
            group += c;
            group_pos += if positive { c } else { 0 };
        }
        start = end as usize;
        if group == 0 {
            continue;
        }
        tp += group_pos;
        seen += group;
        // Most runs hold negatives only (fraud is rare) and add nothing: no division for them.
        if group_pos > 0 {
            sum += group_pos as f64 * (tp as f64 / seen as f64);
        }
    }
    if tp == 0 { f64::NAN } else { sum / tp as f64 }
}

/// PR AUC (average precision) of `b` minus that of `a` on a resample.
pub fn average_precision_difference(y: &[f32], a: &[f64], b: &[f64]) -> Difference {
    let (ra, rb) = (ranking(y, a), ranking(y, b));
    Box::new(move |w: &[u8]| weighted_average_precision(&rb, w) - weighted_average_precision(&ra, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{average_precision, roc_auc};

    /// Labels and two correlated score columns, `shift` making `b` better, with ties.
    fn data(n: usize, seed: u64, shift: f64) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
        let base = random::base(seed, random::Stream::Init(0));
        let (mut y, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n as u64 {
            let label = random::unit(base, 4 * i) < 0.3;
            let signal = if label { 1.0 } else { 0.0 };
            let shared = random::normal(base, 4 * i + 1);
            let round = |v: f64| (v * 20.0).round() / 20.0;
            y.push(if label { 1.0 } else { 0.0 });
            a.push(round(signal + shared + random::normal(base, 4 * i + 2)));
            b.push(round((1.0 + shift) * signal + shared + random::normal(base, 4 * i + 3)));
        }
        (y, a, b)
    }

    /// DeLong's variance from placements counted pair by pair: O(m n), the definition.
    fn brute_force(y: &[f32], a: &[f64], b: &[f64]) -> (f64, f64, f64) {
        let psi = |x: f64, z: f64| {
            if x > z {
                1.0
            } else if x == z {
                0.5
            } else {
                0.0
            }
        };
        let pos: Vec<usize> = (0..y.len()).filter(|&i| y[i] == 1.0).collect();
        let neg: Vec<usize> = (0..y.len()).filter(|&i| y[i] != 1.0).collect();
        let place = |s: &[f64]| -> (Vec<f64>, Vec<f64>) {
            let v10 =
                pos.iter().map(|&i| neg.iter().map(|&j| psi(s[i], s[j])).sum::<f64>() / neg.len() as f64);
            let v01 =
                neg.iter().map(|&j| pos.iter().map(|&i| psi(s[i], s[j])).sum::<f64>() / pos.len() as f64);
            (v10.collect(), v01.collect())
        };
        let ((a10, a01), (b10, b01)) = (place(a), place(b));
        let d10: Vec<f64> = a10.iter().zip(&b10).map(|(x, y)| y - x).collect();
        let d01: Vec<f64> = a01.iter().zip(&b01).map(|(x, y)| y - x).collect();
        let var = |v: &[f64]| covariance(v, v);
        let auc = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        (auc(&a10), auc(&b10), var(&d10) / pos.len() as f64 + var(&d01) / neg.len() as f64)
    }

    #[test]
    fn placements_by_sorting_agree_with_counting_every_pair() {
        for (seed, n) in [(1, 50), (2, 333), (3, 1200)] {
            let (y, a, b) = data(n, seed, 0.3);
            let t = delong(&y, &a, &b).unwrap();
            let (auc_a, auc_b, variance) = brute_force(&y, &a, &b);
            assert!((t.auc_a - auc_a).abs() < 1e-12 && (t.auc_b - auc_b).abs() < 1e-12, "{t:?}");
            assert!((t.variance - variance).abs() < 1e-12 * variance.max(1e-12), "{} {variance}", t.variance);
            // And the AUCs are the run metrics' ROC AUC.
            assert!((t.auc_a - roc_auc(&y, &a)).abs() < 1e-12);
            assert!((t.auc_b - roc_auc(&y, &b)).abs() < 1e-12);
        }
    }

    #[test]
    fn p_values_are_uniform_under_the_null_and_small_for_a_real_gain() {
        // Two models of the same quality: about 5% of datasets reject at 0.05.
        let trials = 400;
        let rejected = (0..trials)
            .filter(|&s| {
                let (y, a, b) = data(400, 100 + s, 0.0);
                delong(&y, &a, &b).unwrap().p_value < 0.05
            })
            .count();
        let share = rejected as f64 / trials as f64;
        assert!((0.02..=0.09).contains(&share), "{rejected} of {trials} rejected under the null");
        let (y, a, b) = data(5000, 9, 0.5);
        let t = delong(&y, &a, &b).unwrap();
        assert!(t.delta > 0.0 && t.p_value < 1e-6, "{t:?}");
        // The same model against itself: no difference and nothing to test.
        let t = delong(&y, &a, &a).unwrap();
        assert_eq!((t.delta, t.variance, t.z, t.p_value), (0.0, 0.0, 0.0, 1.0));
        assert!(delong(&[1.0, 0.0], &[0.2, 0.1], &[0.3, 0.1]).is_none());
    }

    #[test]
    fn erfc_matches_known_values() {
        // Values from the DLMF tables (erfc) and the normal quantile 1.959964 (two-sided 0.05).
        for (x, want) in [
            (0.0, 1.0),
            (0.1, 0.887_537_083_981_715),
            (1.0, 0.157_299_207_050_285),
            (3.0, 2.209_049_699_858_544e-5),
        ] {
            assert!((erfc(x) - want).abs() < 1e-13 * want.max(1e-300) + 1e-15, "erfc({x}) = {}", erfc(x));
        }
        assert!((erfc(1.959_963_984_540_054 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-12);
        assert!((erfc(-1.0) - (2.0 - 0.157_299_207_050_285)).abs() < 1e-13);
    }

    fn probabilities(s: &[f64]) -> Vec<f64> {
        s.iter().map(|v| 1.0 / (1.0 + (-(v - 1.0)).exp())).collect()
    }

    /// PR AUC and log loss of `b` against `a`.
    fn intervals(y: &[f32], a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Vec<Interval> {
        let (pa, pb) = (probabilities(a), probabilities(b));
        let differences =
            [average_precision_difference(y, a, b), mean_difference(log_losses(y, &pa), log_losses(y, &pb))];
        bootstrap(y.len(), &differences, resamples, seed, &|| {})
    }

    #[test]
    fn paired_bootstrap_intervals_are_seeded_cover_the_gain_and_shrink_with_rows() {
        let (y, a, b) = data(2000, 5, 0.4);
        let i = intervals(&y, &a, &b, 300, 42);
        assert_eq!(i, intervals(&y, &a, &b, 300, 42));
        assert_ne!(i, intervals(&y, &a, &b, 300, 43));
        let (ap, ll) = (i[0], i[1]);
        assert!((ap.delta - (average_precision(&y, &b) - average_precision(&y, &a))).abs() < 1e-12);
        assert!(ap.low <= ap.delta && ap.delta <= ap.high && ap.low > 0.0, "{ap:?}");
        assert!(ap.p_value < 0.01, "{ap:?}");
        let wide = intervals(&y[..400], &a[..400], &b[..400], 300, 1)[1];
        assert!(ll.high - ll.low < wide.high - wide.low, "{ll:?} {wide:?}");
        let same = intervals(&y, &a, &a, 50, 1);
        for s in same {
            assert_eq!((s.delta, s.low, s.high, s.p_value), (0.0, 0.0, 0.0, 1.0));
        }
    }

    #[test]
    fn bootstrap_p_values_reject_about_five_percent_under_the_null() {
        // Two equally good models on 400 rows, 300 datasets: the log loss and PR AUC tests
        // reject "no difference" at 0.05 about 5% of the time each.
        let trials = 300;
        let mut rejected = [0usize; 2];
        for t in 0..trials {
            let (y, a, b) = data(400, 1000 + t, 0.0);
            for (k, i) in intervals(&y, &a, &b, 200, t).iter().enumerate() {
                rejected[k] += usize::from(i.p_value < 0.05);
            }
        }
        for (k, r) in rejected.iter().enumerate() {
            let share = *r as f64 / trials as f64;
            assert!(
                (0.02..=0.10).contains(&share),
                "difference {k}: {r} of {trials} rejected under the null"
            );
        }
    }

    #[test]
    fn a_resample_as_counts_scores_as_the_resampled_rows_would() {
        let (y, a, b) = data(700, 8, 0.3);
        let (pa, pb) = (probabilities(&a), probabilities(&b));
        let ap = average_precision_difference(&y, &a, &b);
        let ll = mean_difference(log_losses(&y, &pa), log_losses(&y, &pb));
        let base = random::base(3, random::Stream::Bootstrap);
        for r in 0..20u64 {
            // Rows drawn with replacement, some never: as counts and as the rows themselves.
            let drawn: Vec<usize> = (0..y.len() as u64)
                .map(|i| (random::bits(base, r * 1000 + i) % y.len() as u64) as usize)
                .collect();
            let mut counts = vec![0u8; y.len()];
            drawn.iter().for_each(|&j| counts[j] += 1);
            let ys: Vec<f32> = drawn.iter().map(|&j| y[j]).collect();
            let pick = |v: &[f64]| drawn.iter().map(|&j| v[j]).collect::<Vec<f64>>();
            let want = average_precision(&ys, &pick(&b)) - average_precision(&ys, &pick(&a));
            assert!((ap(&counts) - want).abs() < 1e-12, "resample {r}: {} vs {want}", ap(&counts));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let want = mean(&log_losses(&ys, &pick(&pb))) - mean(&log_losses(&ys, &pick(&pa)));
            assert!((ll(&counts) - want).abs() < 1e-12, "resample {r}");
        }
    }
}
