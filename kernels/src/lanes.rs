//! Lane-wise f64 math that the compiler can vectorize: `exp(-|z|)`, `log1p` on [0, 1], and the
//! stable softplus and sigmoid built from them, over fixed-width arrays of [`LANES`] values.
//!
//! Written with plain `+ - * /`, comparisons and bit casts only: no libm call (which would stop
//! vectorization) and no fused multiply-add (which rounds differently). Each lane therefore
//! computes exactly the same IEEE operations in scalar code, SSE2 or AVX2, so the results do not
//! depend on which instruction set a machine has.

/// Values processed together: eight f64 are two AVX2 registers or four SSE2 registers.
pub const LANES: usize = 8;

/// `e^(-|z|)` for each lane, in (0, 1]; exact to a few ulp, and 0 below the f64 range.
#[inline(always)]
pub fn exp_neg_abs(z: &[f64; LANES]) -> [f64; LANES] {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln 2 split in a high part with trailing zero bits and a low part, so `k * LN2_HI` is exact
    // (fdlibm's constants, given by their bits).
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // Below this e^x is subnormal or zero; returning 0 keeps the exponent arithmetic in range.
    const MIN_X: f64 = -708.0;
    let mut out = [0f64; LANES];
    for l in 0..LANES {
        let x = -z[l].abs();
        let xc = if x < MIN_X { MIN_X } else { x };
        // Round-to-nearest k = x / ln 2 via the 1.5·2^52 trick (no call to `round`): in
        // `shifted` the unit in the last place is 1, so k sits in its low mantissa bits.
        const SHIFTER: f64 = 6_755_399_441_055_744.0;
        let shifted = xc * LOG2E + SHIFTER;
        let kf = shifted - SHIFTER;
        let r = (xc - kf * LN2_HI) - kf * LN2_LO;
        // e^r on |r| <= ln2/2 by its Taylor series to r^13: truncation below 1e-17.
        let mut p = 1.0 / 6_227_020_800.0;
        p = p * r + 1.0 / 479_001_600.0;
        p = p * r + 1.0 / 39_916_800.0;
        p = p * r + 1.0 / 3_628_800.0;
        p = p * r + 1.0 / 362_880.0;
        p = p * r + 1.0 / 40_320.0;
        p = p * r + 1.0 / 5_040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        // 2^k by building the exponent field; k is in [-1022, 0] after the clamp. k comes from
        // the bits of `shifted` (64-bit integer arithmetic, which AVX2 has), not from `kf as
        // i64` (a conversion AVX2 lacks, which would turn the loop back into scalar code).
        let k = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
        let two_k = f64::from_bits(k.wrapping_add(1023) << 52);
        out[l] = if x < MIN_X { 0.0 } else { p * two_k };
    }
    out
}

/// `ln(1 + t)` for each lane with `t` in [0, 1], as `2·atanh(t / (2 + t))`: no `1 + t` is
/// formed, so tiny `t` keeps its precision.
#[inline(always)]
pub fn log1p_unit(t: &[f64; LANES]) -> [f64; LANES] {
    let mut out = [0f64; LANES];
    for l in 0..LANES {
        let s = t[l] / (2.0 + t[l]);
        let s2 = s * s;
        // s <= 1/3, so s2 <= 1/9: 2·(s + s³/3 + ... + s^31/31) leaves out less than 2e-17 relative.
        let mut p = 1.0 / 31.0;
        p = p * s2 + 1.0 / 29.0;
        p = p * s2 + 1.0 / 27.0;
        p = p * s2 + 1.0 / 25.0;
        p = p * s2 + 1.0 / 23.0;
        p = p * s2 + 1.0 / 21.0;
        p = p * s2 + 1.0 / 19.0;
        p = p * s2 + 1.0 / 17.0;
        p = p * s2 + 1.0 / 15.0;
        p = p * s2 + 1.0 / 13.0;
        p = p * s2 + 1.0 / 11.0;
        p = p * s2 + 1.0 / 9.0;
        p = p * s2 + 1.0 / 7.0;
        p = p * s2 + 1.0 / 5.0;
        p = p * s2 + 1.0 / 3.0;
        p = p * s2 + 1.0;
        out[l] = 2.0 * s * p;
    }
    out
}

/// `ln(s)` for each lane with `s >= 1` (a softmax's sum of exponentials, at most the class
/// count): `s = 2^e·m` with `m` in [1, 2), so `ln s = e·ln 2 + ln(1 + (m − 1))`, the second term
/// by [`log1p_unit`]. Bit operations and plain arithmetic only, like the rest of this module.
#[inline(always)]
pub fn ln_at_least_one(s: &[f64; LANES]) -> [f64; LANES] {
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const MANTISSA: u64 = (1 << 52) - 1;
    let mut t = [0f64; LANES];
    let mut e = [0f64; LANES];
    for l in 0..LANES {
        let bits = s[l].to_bits();
        // s >= 1 is a positive normal number: its biased exponent is at least 1023.
        let biased = (bits >> 52) & 0x7ff;
        t[l] = f64::from_bits((bits & MANTISSA) | (1023 << 52)) - 1.0;
        e[l] = biased.saturating_sub(1023) as f64;
    }
    let l1p = log1p_unit(&t);
    let mut out = [0f64; LANES];
    for l in 0..LANES {
        out[l] = (e[l] * LN2_HI + l1p[l]) + e[l] * LN2_LO;
    }
    out
}

/// Softplus `ln(1 + e^z)` and sigmoid `1 / (1 + e^-z)` of each lane, both from one `e^(-|z|)`:
/// neither can overflow, and large |z| keeps full precision on both sides.
#[inline(always)]
pub fn softplus_sigmoid(z: &[f64; LANES]) -> ([f64; LANES], [f64; LANES]) {
    let t = exp_neg_abs(z);
    let l1p = log1p_unit(&t);
    let mut softplus = [0f64; LANES];
    let mut sigmoid = [0f64; LANES];
    for l in 0..LANES {
        let pos = z[l] >= 0.0;
        softplus[l] = (if pos { z[l] } else { 0.0 }) + l1p[l];
        let inv = 1.0 / (1.0 + t[l]);
        sigmoid[l] = if pos { inv } else { t[l] * inv };
    }
    (softplus, sigmoid)
}

/// Sigmoid of each lane (see [`softplus_sigmoid`]).
#[inline(always)]
pub fn sigmoid(z: &[f64; LANES]) -> [f64; LANES] {
    let t = exp_neg_abs(z);
    let mut out = [0f64; LANES];
    for l in 0..LANES {
        let inv = 1.0 / (1.0 + t[l]);
        out[l] = if z[l] >= 0.0 { inv } else { t[l] * inv };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(f: impl Fn(usize) -> f64) -> [f64; LANES] {
        std::array::from_fn(f)
    }

    fn rel(a: f64, b: f64) -> f64 {
        if a == b { 0.0 } else { (a - b).abs() / b.abs().max(f64::MIN_POSITIVE) }
    }

    #[test]
    fn exp_and_log1p_match_libm_across_the_range() {
        let mut worst: (f64, f64) = (0.0, 0.0);
        for i in 0..200_000 {
            // Scores from -750 to 750, dense near zero where the loss lives.
            let u = (i as f64 / 200_000.0) * 2.0 - 1.0;
            let z = lanes(|l| (u + l as f64 * 1e-6) * u.abs().powi(2) * 750.0);
            let e = exp_neg_abs(&z);
            let lp = log1p_unit(&e);
            for l in 0..LANES {
                let want = (-z[l].abs()).exp();
                if want > 1e-300 {
                    worst.0 = worst.0.max(rel(e[l], want));
                    worst.1 = worst.1.max(rel(lp[l], want.ln_1p()));
                } else {
                    assert!(e[l] <= 1e-300, "z = {}: {}", z[l], e[l]);
                }
            }
        }
        assert!(
            worst.0 < 1e-15 && worst.1 < 1e-15,
            "worst relative errors: exp {} log1p {}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn ln_of_sums_matches_libm() {
        let mut worst: f64 = 0.0;
        for i in 0..100_000 {
            let s = lanes(|l| 1.0 + (i as f64 * 8.0 + l as f64) * 1e-2);
            let got = ln_at_least_one(&s);
            for l in 0..LANES {
                worst = worst.max((got[l] - s[l].ln()).abs() / s[l].ln().max(1e-300));
            }
        }
        assert_eq!(ln_at_least_one(&[1.0; LANES]), [0.0; LANES]);
        assert!(worst < 1e-15, "worst relative error {worst}");
    }

    #[test]
    fn softplus_and_sigmoid_at_the_extremes() {
        let z = [-800.0, -40.0, -1e-12, 0.0, 1e-12, 40.0, 800.0, f64::MAX];
        let (sp, sg) = softplus_sigmoid(&z);
        for l in 0..LANES {
            let want_sp = z[l].max(0.0) + (-z[l].abs()).exp().ln_1p();
            let want_sg = 1.0 / (1.0 + (-z[l]).exp());
            assert!(rel(sp[l], want_sp) < 1e-15, "softplus({}) = {} vs {}", z[l], sp[l], want_sp);
            assert!(rel(sg[l], want_sg) < 1e-15, "sigmoid({}) = {} vs {}", z[l], sg[l], want_sg);
        }
        assert_eq!(sigmoid(&z), sg);
        assert_eq!(sp[0], 0.0);
        assert_eq!(sg[7], 1.0);
    }
}
