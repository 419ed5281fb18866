//! L-BFGS with a strong-Wolfe line search (Nocedal & Wright, Algorithms 7.4, 3.5 and 3.6),
//! over any objective that returns its value and gradient.
//!
//! Stopping rules follow scipy's L-BFGS-B as scikit-learn calls it, so that `tol` means the same:
//! converged when the largest absolute gradient component is at most `gtol`, or when the relative
//! decrease of the objective in one iteration is at most `ftol` (scikit-learn uses 64·ε).
//!
//! An optional diagonal preconditioner `D` (an estimate of the Hessian's diagonal) replaces the
//! identity as the initial inverse-Hessian approximation: H₀ = γ·D⁻¹ with γ = sᵀy / yᵀD⁻¹y.
//! One-hot problems need it: a rare level's curvature is its row count, a common level's is
//! hundreds of thousands of times more, and unpreconditioned L-BFGS spends hundreds of passes
//! equalizing those scales. The stopping rules still read the unscaled gradient.

/// Objective: writes the gradient at `x` into the second argument and returns the value.
pub trait Objective {
    /// Value and gradient at `x`.
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64;
}

impl<F: FnMut(&[f64], &mut [f64]) -> f64> Objective for F {
    fn eval(&mut self, x: &[f64], grad: &mut [f64]) -> f64 {
        self(x, grad)
    }
}

/// Solver settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most iterations.
    pub max_iter: u32,
    /// Converged when max |gradient component| <= gtol.
    pub gtol: f64,
    /// Converged when (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol.
    pub ftol: f64,
    /// Correction pairs kept (scipy's default is 10).
    pub memory: usize,
    /// Most objective evaluations per line search (scipy's `maxls` is 20; scikit-learn uses 50).
    pub max_line_search: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_iter: 500, gtol: 1e-6, ftol: 64.0 * f64::EPSILON, memory: 10, max_line_search: 50 }
    }
}

/// Why the solver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The gradient is below `gtol`.
    Gradient,
    /// The objective stopped decreasing (relative decrease below `ftol`).
    RelativeReduction,
    /// `max_iter` iterations ran.
    MaxIter,
    /// The line search found no acceptable step (usually: the optimum is already reached to
    /// machine precision).
    LineSearch,
    /// The objective or its gradient is NaN or infinite at the current point: nothing the
    /// solver does from there means anything. Never a convergence.
    NonFinite,
}

/// The result of a minimization.
#[derive(Debug, Clone)]
pub struct Solution {
    /// The minimizer found.
    pub x: Vec<f64>,
    /// The objective there.
    pub value: f64,
    /// Max |gradient component| there.
    pub grad_max: f64,
    /// Iterations (accepted steps).
    pub iterations: u32,
    /// Objective evaluations, each one pass over the data.
    pub evaluations: u32,
    /// Why it stopped.
    pub stop: Stop,
}

impl Solution {
    /// Whether the stopping rule was a convergence criterion.
    pub fn converged(&self) -> bool {
        matches!(self.stop, Stop::Gradient | Stop::RelativeReduction)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimizes `f` from `x0`.
pub fn minimize(f: &mut dyn Objective, x0: Vec<f64>, opts: &Options) -> Solution {
    minimize_preconditioned(f, x0, opts, None)
}

/// [`minimize`] with `diag` (positive, one value per variable) as the diagonal preconditioner.
pub fn minimize_preconditioned(
    f: &mut dyn Objective,
    x0: Vec<f64>,
    opts: &Options,
    diag: Option<&[f64]>,
) -> Solution {
    let n = x0.len();
    let inverse: Option<Vec<f64>> = diag.map(|d| {
        assert_eq!(d.len(), n, "one preconditioner value per variable");
        d.iter().map(|&v| if v > 0.0 && v.is_finite() { 1.0 / v } else { 1.0 }).collect()
    });
    let inverse = inverse.as_deref();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut value = f.eval(&x, &mut g);
    let mut evaluations = 1;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho_hist: Vec<f64> = Vec::new();
    let mut iterations = 0;
    let mut d = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];

    let stop = loop {
        // Checked first: `max_abs` of a NaN gradient would otherwise read as 0, "converged".
        if !value.is_finite() || g.iter().any(|v| !v.is_finite()) {
            break Stop::NonFinite;
        }
        if max_abs(&g) <= opts.gtol {
            break Stop::Gradient;
        }
        if iterations >= opts.max_iter {
            break Stop::MaxIter;
        }
        two_loop(&g, &s_hist, &y_hist, &rho_hist, inverse, &mut d);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // The quasi-Newton direction is not a descent direction (curvature information went
            // stale); restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            two_loop(&g, &[], &[], &[], inverse, &mut d);
            slope = dot(&g, &d);
        }
        // First step: a unit step in the steepest-descent direction can be wildly off scale, so
        // start with a step of length one; later the quasi-Newton step is well scaled, and so is
        // the first preconditioned one (D⁻¹g is a Newton step where D is the Hessian).
        let alpha0 =
            if s_hist.is_empty() && inverse.is_none() { (1.0 / dot(&d, &d).sqrt()).min(1.0) } else { 1.0 };
        let ls = line_search(f, &x, value, slope, &d, alpha0, opts.max_line_search, &mut x_new, &mut g_new);
        evaluations += ls.evaluations;
        let Some(new_value) = ls.value else { break Stop::LineSearch };

        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-10 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            if s_hist.len() == opts.memory {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
        }
        let reduction = (value - new_value) / value.abs().max(new_value.abs()).max(1.0);
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        value = new_value;
        iterations += 1;
        if reduction <= opts.ftol {
            break if max_abs(&g) <= opts.gtol { Stop::Gradient } else { Stop::RelativeReduction };
        }
    };
    Solution { grad_max: max_abs(&g), x, value, iterations, evaluations, stop }
}

/// d = -H·g by the two-loop recursion, with the initial inverse Hessian γ·I (γ = sᵀy / yᵀy), or
/// γ·D⁻¹ (γ = sᵀy / yᵀD⁻¹y) with a preconditioner, whose inverse is `inverse`.
fn two_loop(g: &[f64], s: &[Vec<f64>], y: &[Vec<f64>], rho: &[f64], inverse: Option<&[f64]>, d: &mut [f64]) {
    d.iter_mut().zip(g).for_each(|(di, gi)| *di = -gi);
    let k = s.len();
    let mut alpha = vec![0.0; k];
    for i in (0..k).rev() {
        alpha[i] = rho[i] * dot(&s[i], d);
        d.iter_mut().zip(&y[i]).for_each(|(di, yi)| *di -= alpha[i] * yi);
    }
    match inverse {
        Some(inv) => {
            let gamma = match k {
                0 => 1.0,
                _ => {
                    let yhy: f64 = y[k - 1].iter().zip(inv).map(|(v, h)| v * v * h).sum();
                    dot(&s[k - 1], &y[k - 1]) / yhy
                }
            };
            d.iter_mut().zip(inv).for_each(|(di, h)| *di *= gamma * h);
        }
        None if k > 0 => {
            let gamma = dot(&s[k - 1], &y[k - 1]) / dot(&y[k - 1], &y[k - 1]);
            d.iter_mut().for_each(|di| *di *= gamma);
        }
        None => {}
    }
    for i in 0..k {
        let beta = rho[i] * dot(&y[i], d);
        d.iter_mut().zip(&s[i]).for_each(|(di, si)| *di += (alpha[i] - beta) * si);
    }
}

struct LineSearch {
    /// Objective at the accepted point (written to x_new / g_new), or None when none was found.
    value: Option<f64>,
    evaluations: u32,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;

/// Strong-Wolfe line search along `d` (N&W Algorithm 3.5, with 3.6 as `zoom`).
#[allow(clippy::too_many_arguments)]
fn line_search(
    f: &mut dyn Objective,
    x: &[f64],
    f0: f64,
    slope0: f64,
    d: &[f64],
    alpha0: f64,
    max_evals: u32,
    x_new: &mut [f64],
    g_new: &mut [f64],
) -> LineSearch {
    let mut evals = 0;
    let mut phi = |alpha: f64, x_new: &mut [f64], g_new: &mut [f64], evals: &mut u32| -> (f64, f64) {
        x_new.iter_mut().zip(x.iter().zip(d)).for_each(|(xn, (xi, di))| *xn = xi + alpha * di);
        *evals += 1;
        let v = f.eval(x_new, g_new);
        (v, dot(g_new, d))
    };
    let (mut a_prev, mut f_prev, mut s_prev) = (0.0, f0, slope0);
    let mut alpha = alpha0;
    let mut best: Option<(f64, f64)> = None; // (alpha, value) of the best Armijo point seen
    for i in 0..max_evals {
        let (fa, sa) = phi(alpha, x_new, g_new, &mut evals);
        let (prev, here) = ((a_prev, f_prev, s_prev), (alpha, fa, sa));
        // A bracket for zoom, (low, high): the step went too far, or the slope turned upward.
        let bracket = if !fa.is_finite() || fa > f0 + C1 * alpha * slope0 || (i > 0 && fa >= f_prev) {
            Some((prev, here))
        } else if sa.abs() <= -C2 * slope0 {
            return LineSearch { value: Some(fa), evaluations: evals };
        } else if sa >= 0.0 {
            Some((here, prev))
        } else {
            None
        };
        if let Some((lo, hi)) = bracket {
            return zoom(&mut phi, lo, hi, f0, slope0, max_evals, evals, x_new, g_new);
        }
        best = Some((alpha, fa));
        (a_prev, f_prev, s_prev) = (alpha, fa, sa);
        alpha *= 2.0;
    }
    // Out of evaluations while still extending: accept the last sufficient-decrease point.
    match best {
        Some((a, _)) => {
            let (fa, _) = phi(a, x_new, g_new, &mut evals);
            LineSearch { value: Some(fa), evaluations: evals }
        }
        None => LineSearch { value: None, evaluations: evals },
    }
}

/// φ(α) = f(x + α·d) and its slope, writing the point and gradient, counting evaluations.
type Phi<'a> = dyn FnMut(f64, &mut [f64], &mut [f64], &mut u32) -> (f64, f64) + 'a;

#[allow(clippy::too_many_arguments)]
fn zoom(
    phi: &mut Phi<'_>,
    lo: (f64, f64, f64),
    hi: (f64, f64, f64),
    f0: f64,
    slope0: f64,
    max_evals: u32,
    mut evals: u32,
    x_new: &mut [f64],
    g_new: &mut [f64],
) -> LineSearch {
    let (mut lo, mut hi) = (lo, hi);
    while evals < max_evals {
        let alpha = cubic_min(lo, hi);
        let (fa, sa) = phi(alpha, x_new, g_new, &mut evals);
        if !fa.is_finite() || fa > f0 + C1 * alpha * slope0 || fa >= lo.1 {
            hi = (alpha, fa, sa);
        } else {
            if sa.abs() <= -C2 * slope0 {
                return LineSearch { value: Some(fa), evaluations: evals };
            }
            if sa * (hi.0 - lo.0) >= 0.0 {
                hi = lo;
            }
            lo = (alpha, fa, sa);
        }
        if (hi.0 - lo.0).abs() <= 1e-16 * lo.0.abs().max(1e-16) {
            break;
        }
    }
    // No strong-Wolfe point within budget: take the best sufficient-decrease point, if any.
    if lo.0 > 0.0 && lo.1 < f0 {
        let (fa, _) = phi(lo.0, x_new, g_new, &mut evals);
        return LineSearch { value: Some(fa), evaluations: evals };
    }
    LineSearch { value: None, evaluations: evals }
}

/// Minimizer of the cubic through two points with their slopes, kept well inside the interval
/// (bisection when the cubic is useless).
fn cubic_min((a, fa, ga): (f64, f64, f64), (b, fb, gb): (f64, f64, f64)) -> f64 {
    let (left, right) = if a < b { (a, b) } else { (b, a) };
    let d1 = ga + gb - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - ga * gb;
    let mut t = f64::NAN;
    if disc >= 0.0 {
        let d2 = (b - a).signum() * disc.sqrt();
        t = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2.0 * d2);
    }
    let width = right - left;
    if !t.is_finite() || t < left + 0.1 * width || t > right - 0.1 * width {
        t = left + 0.5 * width;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_objective_never_reads_as_converged() {
        // A NaN gradient once made max |g| read as 0: "converged" at iteration 0.
        let mut f = |_: &[f64], g: &mut [f64]| {
            g.iter_mut().for_each(|v| *v = f64::NAN);
            f64::NAN
        };
        let sol = minimize(&mut f, vec![0.0; 3], &Options::default());
        assert_eq!(sol.stop, Stop::NonFinite);
        assert!(!sol.converged());
    }

    #[test]
    fn minimizes_the_rosenbrock_function() {
        let mut f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let sol = minimize(&mut f, vec![-1.2, 1.0], &Options { gtol: 1e-9, ..Default::default() });
        assert!(sol.converged(), "{:?}", sol.stop);
        assert!((sol.x[0] - 1.0).abs() < 1e-6 && (sol.x[1] - 1.0).abs() < 1e-6, "{:?}", sol.x);
        assert!(sol.iterations < 100, "{}", sol.iterations);
    }

    #[test]
    fn a_diagonal_preconditioner_removes_the_scales_of_a_one_hot_like_problem() {
        // Curvatures from 1 to 1e6, as rare and common levels of a categorical column give.
        let n = 200;
        let scales: Vec<f64> = (0..n).map(|i| 10f64.powf(6.0 * i as f64 / (n - 1) as f64)).collect();
        let mut count = 0;
        let mut f = |x: &[f64], g: &mut [f64]| {
            count += 1;
            // A weak coupling of neighbours keeps the Hessian from being exactly diagonal.
            let mut v = 0.0;
            for i in 0..n {
                let d = x[i] - 1.0 / (1.0 + i as f64);
                g[i] = scales[i] * d;
                v += 0.5 * scales[i] * d * d;
            }
            for i in 0..n - 1 {
                let c = x[i + 1] - x[i];
                v += 0.05 * c * c;
                g[i] -= 0.1 * c;
                g[i + 1] += 0.1 * c;
            }
            v
        };
        let opts = Options { gtol: 1e-8, max_iter: 2000, ..Default::default() };
        let plain = minimize(&mut |x: &[f64], g: &mut [f64]| f(x, g), vec![0.0; n], &opts);
        let scaled = minimize_preconditioned(&mut f, vec![0.0; n], &opts, Some(&scales));
        assert!(scaled.iterations * 5 < plain.iterations, "{} vs {}", scaled.iterations, plain.iterations);
        assert!(scaled.iterations <= 20, "{}", scaled.iterations);
    }

    #[test]
    fn solves_an_ill_conditioned_quadratic_exactly() {
        let scales = [1.0, 10.0, 100.0, 1e4];
        let mut f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..4 {
                g[i] = scales[i] * (x[i] - i as f64);
                v += 0.5 * scales[i] * (x[i] - i as f64).powi(2);
            }
            v
        };
        let sol = minimize(&mut f, vec![0.0; 4], &Options { gtol: 1e-10, ..Default::default() });
        assert!(sol.converged());
        for (i, xi) in sol.x.iter().enumerate() {
            assert!((xi - i as f64).abs() < 1e-9, "{:?}", sol.x);
        }
    }

    #[test]
    fn stops_at_max_iter_without_claiming_convergence() {
        let mut f = |x: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]);
            g[1] = 200.0 * (x[1] - x[0] * x[0]);
            (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
        };
        let sol = minimize(&mut f, vec![-1.2, 1.0], &Options { max_iter: 3, ..Default::default() });
        assert_eq!((sol.stop, sol.iterations), (Stop::MaxIter, 3));
        assert!(!sol.converged());
    }
}
