//! Limited-memory BFGS on F(θ) = q(θ) − t·log|Λ(θ)| (Nocedal & Wright 2006, Alg. 7.4–7.5), to
//! bring a Newton minimisation near its optimum cheaply.
//!
//! A Newton step factorises the dense Hessian in the free entries; an L-BFGS iteration needs only
//! ∇F, i.e. one sparse factor of Λ and the band of Σ. From the diagonal start, Newton spends most
//! of its steps far from the optimum, where their quadratic convergence does not help yet.

use std::collections::VecDeque;

use gmrf_model::Precision;

use super::line_search::{LineStep, backtrack};
use super::newton::NewtonState;
use crate::EstimationError;
use crate::moments::{dot, norm};
use crate::objective::{BarrierObjective, max_entry_gradient};

/// Settings of an L-BFGS run. The callers hold the defaults: [`crate::MleOptions`] (memory 30,
/// until 3e-2, at most 1,000 iterations) and [`crate::SmOptions`] (30, 3e-2, 300 per stage).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsOptions {
    /// Correction pairs kept.
    pub memory: usize,
    /// Stop once max over the pattern |∇F|ₑ / mₑ is at most this times a scale: for the
    /// likelihood max |Sᵢⱼ| on the pattern (so this is its optimality gap), for a barrier stage
    /// the same maximum at the stage's start.
    pub until_gap: f64,
    /// Iteration cap.
    pub max_iterations: usize,
}

/// The curvature pair of one iteration: s = Δθ, y = Δ∇F, ρ = 1/(sᵀy).
struct Correction {
    s: Vec<f64>,
    y: Vec<f64>,
    rho: f64,
}

/// H∇F by the two-loop recursion, with the initial inverse Hessian γ·D⁻¹: D the Hessian's
/// diagonal at the start (the barrier makes it span orders of magnitude, so a scalar γ alone
/// is a poor metric) and γ = sᵀy / yᵀD⁻¹y from the newest pair (Nocedal & Wright, eq. 7.20,
/// in the D-scaled variables).
fn two_loop(g: &[f64], pairs: &VecDeque<Correction>, inverse_diagonal: &[f64]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alphas = Vec::with_capacity(pairs.len());
    for c in pairs.iter().rev() {
        let a = c.rho * dot(&c.s, &q);
        q.iter_mut().zip(&c.y).for_each(|(q, y)| *q -= a * y);
        alphas.push(a);
    }
    let gamma = pairs.back().map_or(1.0, |c| {
        let y_scaled: f64 = c.y.iter().zip(inverse_diagonal).map(|(y, h)| y * y * h).sum();
        1.0 / (c.rho * y_scaled)
    });
    let mut r: Vec<f64> = q.iter().zip(inverse_diagonal).map(|(q, h)| gamma * q * h).collect();
    for (c, a) in pairs.iter().zip(alphas.iter().rev()) {
        let b = c.rho * dot(&c.y, &r);
        r.iter_mut().zip(&c.s).for_each(|(r, s)| *r += (a - b) * s);
    }
    r
}

/// Runs L-BFGS on F for weight t from the positive definite `start` until the scaled gradient
/// max |∇F|ₑ/mₑ is at most `options.until_gap · scale` (`scale` by default that maximum at
/// `start`), or the iteration cap. Returns the last iterate and the iterations taken. Every accepted
/// iterate is a trace row (loss after the step, gradient norm before it, step length α);
/// the line search is [`backtrack`], as in Newton.
pub(crate) fn lbfgs(
    objective: &BarrierObjective<'_>,
    start: Precision,
    t: f64,
    options: &LbfgsOptions,
    scale: Option<f64>,
    state: &mut NewtonState<'_>,
) -> Result<(Precision, usize), EstimationError> {
    let mut lam = start;
    let chol = lam.try_factor()?;
    let band = chol.inverse_band();
    let inverse_diagonal: Vec<f64> =
        objective.hessian_diagonal(lam.values(), &band, t).iter().map(|h| 1.0 / h).collect();
    let mut log_det = chol.log_det();
    let mut gq = objective.quadratic_gradient(lam.values());
    let mut g = objective.gradient(&gq, &band.on_pattern(objective.pattern), t);
    let mut f_value = objective.quadratic_value(lam.values()) - t * log_det;
    let threshold = options.until_gap * scale.unwrap_or_else(|| max_entry_gradient(objective.pattern, &g));
    let mut pairs: VecDeque<Correction> = VecDeque::with_capacity(options.memory + 1);
    let mut iterations = 0;
    while iterations < options.max_iterations && max_entry_gradient(objective.pattern, &g) > threshold {
        let mut dir: Vec<f64> = two_loop(&g, &pairs, &inverse_diagonal).iter().map(|r| -r).collect();
        let mut gd = dot(&g, &dir);
        if gd >= 0.0 {
            // Rounding spoilt the metric: restart from the scaled gradient.
            pairs.clear();
            dir = g.iter().zip(&inverse_diagonal).map(|(g, h)| -g * h).collect();
            gd = dot(&g, &dir);
        }
        let Some(LineStep { alpha, precision: trial, factor: c, log_det: ld, change }) =
            backtrack(objective, &lam, log_det, &gq, gd, &dir, t)?
        else {
            break;
        };
        let gq_new = objective.quadratic_gradient(trial.values());
        let g_new = objective.gradient(&gq_new, &c.inverse_band().on_pattern(objective.pattern), t);
        let s: Vec<f64> = dir.iter().map(|d| alpha * d).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        // F is strictly convex, so sᵀy > 0 but for rounding; such a pair would spoil H.
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if pairs.len() == options.memory {
                pairs.pop_front();
            }
            pairs.push_back(Correction { s, y, rho: 1.0 / sy });
        }
        f_value += change;
        state.record(f_value, norm(&g), alpha);
        (lam, log_det, gq, g) = (trial, ld, gq_new, g_new);
        iterations += 1;
    }
    Ok((lam, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn two_loop_meets_the_secant_equation_and_starts_from_the_scaled_diagonal() {
        // Pairs (s, y = As) of an SPD A: every BFGS inverse Hessian maps the newest y to its s
        // (Nocedal & Wright 2006, eq. 6.17), whatever the initial matrix and the older pairs.
        let n = 7;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let b: Vec<f64> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                (0..n).map(|l| b[i * n + l] * b[j * n + l]).sum::<f64>() + if i == j { 0.5 } else { 0.0 }
            })
            .collect();
        let inverse_diagonal: Vec<f64> = (0..n).map(|i| 1.0 / a[i * n + i]).collect();
        let g: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        // No pairs: the Jacobi-scaled gradient.
        let empty = VecDeque::new();
        for (r, (g, h)) in two_loop(&g, &empty, &inverse_diagonal).iter().zip(g.iter().zip(&inverse_diagonal))
        {
            assert_eq!(*r, g * h);
        }
        let mut pairs = VecDeque::new();
        for _ in 0..4 {
            let s: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let y: Vec<f64> = (0..n).map(|i| dot(&a[i * n..(i + 1) * n], &s)).collect();
            let rho = 1.0 / dot(&s, &y);
            pairs.push_back(Correction { s: s.clone(), y: y.clone(), rho });
            let hy = two_loop(&y, &pairs, &inverse_diagonal);
            for (h, s) in hy.iter().zip(&s) {
                assert!((h - s).abs() <= 1e-12 * (1.0 + s.abs()), "H y = {h}, s = {s}");
            }
        }
    }
}
