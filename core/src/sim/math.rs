//! Logarithm, exponential and the normal quantile from IEEE basic operations
//! only (+, −, ×, ÷, sqrt, all correctly rounded), so that latency draws, and
//! with them whole runs, are bit-identical on every platform. The platform's
//! `ln`, `exp` and `cos` may differ in the last bit between C libraries, which
//! would change a replayed run. Accuracy is a few ulps: plenty for delays.

// ln 2 split in two (fdlibm's constants): the high part has 32 trailing zero
// bits, so k × LN2_HI is exact for the exponents used here.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const SQRT_HALF: f64 = core::f64::consts::FRAC_1_SQRT_2;

/// 1/k for k = 1, 3, 5, ..., 21 (computed at compile time, IEEE exact).
const ATANH: [f64; 11] = {
    let mut c = [0.0; 11];
    let mut i = 0;
    while i < 11 {
        c[i] = 1.0 / (2 * i + 1) as f64;
        i += 1;
    }
    c
};

/// 1/k! for k = 0..=17: e^r's Taylor coefficients.
const INV_FACTORIAL: [f64; 18] = {
    let mut c = [1.0; 18];
    let mut i = 1;
    while i < 18 {
        c[i] = c[i - 1] / i as f64;
        i += 1;
    }
    c
};

/// Natural logarithm of a positive finite `x` (NaN otherwise; −∞ at 0).
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // x = m × 2^e with m in [sqrt(1/2), sqrt(2)).
    let (mut m, mut e) = frexp(x);
    if m < SQRT_HALF {
        m *= 2.0;
        e -= 1;
    }
    // ln(m) = 2 atanh(s), s = (m − 1)/(m + 1), |s| < 0.1716: the odd series
    // to s^21 (Horner, constant coefficients 1/k) is below 1e-17.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut poly = 0.0;
    let mut k = ATANH.len();
    while k > 0 {
        k -= 1;
        poly = poly * s2 + ATANH[k];
    }
    let sum = s * poly;
    let e = f64::from(e);
    e * LN2_HI + (e * LN2_LO + 2.0 * sum)
}

/// e^x for results in the normal range (0 below −708, +∞ above 709.7).
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    // x = k ln2 + r, |r| <= ln2 / 2; e^r by its Taylor series to r^17 (Horner).
    let k = round(x / core::f64::consts::LN_2);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut sum = 0.0;
    let mut i = INV_FACTORIAL.len();
    while i > 0 {
        i -= 1;
        sum = sum * r + INV_FACTORIAL[i];
    }
    ldexp(sum, k as i32)
}

/// The standard normal quantile (Acklam's rational approximation, relative
/// error below 1.2e-9) of `p` in (0, 1).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < LOW {
        tail((-2.0 * ln(p)).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * ln(1.0 - p)).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// `x` = m × 2^e with m in [0.5, 1), for positive finite `x`.
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    if exp_bits == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * f64::from_bits(0x4350_0000_0000_0000)); // 2^54
        return (m, e - 54);
    }
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (0x3fe << 52));
    (m, exp_bits - 1022)
}

/// `x` × 2^e, for the exponents `exp` produces.
fn ldexp(x: f64, e: i32) -> f64 {
    // Two steps keep each factor a normal power of two.
    let half = e / 2;
    x * pow2(half) * pow2(e - half)
}

fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023).clamp(1, 2046) as u64) << 52)
}

/// Round half away from zero, for |x| < 2^52.
fn round(x: f64) -> f64 {
    let t = (x.abs() + 0.5) as i64 as f64;
    if x < 0.0 {
        -t
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_platform_to_a_few_ulps() {
        let close = |a: f64, b: f64| (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(1e-300);
        for &x in &[
            1e-300, 1e-10, 0.001, 0.1, 0.5, 0.7, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300,
        ] {
            assert!(close(ln(x), x.ln()), "ln({x}) = {} vs {}", ln(x), x.ln());
        }
        for &x in &[
            -700.0, -20.0, -1.0, -0.1, 0.0, 1e-9, 0.3, 1.0, 2.5, 10.0, 300.0, 709.0,
        ] {
            assert!(
                close(exp(x), x.exp()),
                "exp({x}) = {} vs {}",
                exp(x),
                x.exp()
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn the_normal_quantile_matches_known_values() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.001, -3.090_232_306_167_813),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-8,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }
}
