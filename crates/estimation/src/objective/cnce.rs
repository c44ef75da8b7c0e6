//! The cNCE objective (Ceylan & Gutmann 2018) with a symmetric perturbation y = x + σε:
//!
//! G(x, y) = log p_θ(x) − log p_θ(y) = −½ xᵀΛx + ½ yᵀΛy,
//! J(θ) = (1/(Nκ)) Σᵢₖ softplus(−G(xᵢ, yᵢₖ)),
//! ∂J/∂Λ = Σᵢₖ wᵢₖ · ½ (yᵢₖyᵢₖᵀ − xᵢxᵢᵀ),  wᵢₖ = −σ(−G(xᵢ, yᵢₖ))/(Nκ),
//!
//! read on the pattern: weighted second moments only, no Λ⁻¹. With a barrier weight t > 0 the
//! objective is J_t(θ) = J(θ) − (t/d) log|Λ|, ∂J_t/∂θₑ = ∂J/∂θₑ − (t/d) mₑ (Λ⁻¹)ᵢⱼ.

use gmrf_model::{Cholesky, Pattern, Precision};
use ndarray::ArrayView2;

use super::log_det::log_det_gradient;
use super::planes::{Planes, reduce_blocks, row_f64, sigmoid, softplus};
use crate::EstimationError;

/// Fills `y` (κ·d values) with the κ noisy copies of row `r` (whose values are `x`).
pub(crate) type Copies<'a> = dyn Fn(usize, &[f64], &mut [f64]) + Sync + 'a;

/// J and Σ wᵢₖ(yyᵀ − xxᵀ) (planes) over `rows`.
pub(crate) fn cnce_terms(
    planes: &Planes,
    lam_planes: &[f64],
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    kappa: usize,
    copies: &Copies<'_>,
) -> (f64, Vec<f64>) {
    let inv = 1.0 / (rows.len() * kappa) as f64;
    let (loss, _, acc) = reduce_blocks(rows, planes.len(), |block| {
        let mut loss = 0.0;
        let mut acc = vec![0.0; planes.len()];
        let d = x.ncols();
        let (mut xb, mut ys, mut scratch) = (vec![0.0; d], vec![0.0; kappa * d], vec![0.0; d]);
        for &r in block {
            row_f64(x, r, &mut xb);
            copies(r, &xb, &mut ys);
            let qx = planes.quadratic_form(lam_planes, &xb, &mut scratch);
            let mut w_sum = 0.0;
            for yb in ys.chunks(d) {
                let g = 0.5 * (planes.quadratic_form(lam_planes, yb, &mut scratch) - qx);
                loss += softplus(-g) * inv;
                let w = -sigmoid(-g) * inv;
                w_sum += w;
                planes.accumulate(&mut acc, w, yb, &mut scratch);
            }
            planes.accumulate(&mut acc, -w_sum, &xb, &mut scratch);
        }
        (loss, 0.0, acc)
    });
    (loss, acc)
}

pub(crate) fn gradient_of(planes: &Planes, pattern: &Pattern, acc: &[f64]) -> Vec<f64> {
    pattern.entries().iter().zip(planes.on_pattern(acc)).map(|(e, m)| 0.5 * e.multiplicity() * m).collect()
}

fn given_copies<'a>(
    noisy: ArrayView2<'a, f32>,
    kappa: usize,
) -> impl Fn(usize, &[f64], &mut [f64]) + Sync + 'a {
    move |r, x, ys| {
        for (k, y) in ys.chunks_mut(x.len()).enumerate() {
            row_f64(noisy, r * kappa + k, y);
        }
    }
}

/// Adds the log-barrier −(t/d) log|Λ| to `loss` and, when given, −(t/d) mₑ (Λ⁻¹)ᵢⱼ to
/// `gradient`. Nothing to do (and no factor needed) when t = 0.
pub(crate) fn add_barrier(
    lam: &Precision,
    factor: &Cholesky,
    t: f64,
    loss: &mut f64,
    gradient: Option<&mut [f64]>,
) {
    if t == 0.0 {
        return;
    }
    let weight = t / lam.dim() as f64;
    *loss -= weight * factor.log_det();
    if let Some(gradient) = gradient {
        let sigma = factor.inverse_band().on_pattern(lam.pattern());
        for (g, s) in gradient.iter_mut().zip(log_det_gradient(lam.pattern(), &sigma)) {
            *g -= weight * s;
        }
    }
}

/// J_t(θ) = (1/(Nκ)) Σᵢₖ softplus(½ xᵢᵀΛxᵢ − ½ yᵢₖᵀΛyᵢₖ) − (t/d) log|Λ|, with the copies yᵢₖ
/// given as row i·κ + k of `noisy` and t = `barrier` (0 for plain cNCE).
pub fn cnce_objective(
    precision: &Precision,
    data: ArrayView2<'_, f32>,
    noisy: ArrayView2<'_, f32>,
    kappa: usize,
    barrier: f64,
) -> Result<f64, EstimationError> {
    Ok(cnce_given_copies(precision, data, noisy, kappa, barrier, false)?.0)
}

/// J_t and ∂J_t/∂θₑ = ½ mₑ Σᵢₖ wᵢₖ (yᵢₖ,ᵢ yᵢₖ,ⱼ − xᵢ,ᵢ xᵢ,ⱼ) − (t/d) mₑ (Λ⁻¹)ᵢⱼ, arguments as
/// [`cnce_objective`].
pub fn cnce_gradient(
    precision: &Precision,
    data: ArrayView2<'_, f32>,
    noisy: ArrayView2<'_, f32>,
    kappa: usize,
    barrier: f64,
) -> Result<(f64, Vec<f64>), EstimationError> {
    cnce_given_copies(precision, data, noisy, kappa, barrier, true)
}

fn cnce_given_copies(
    precision: &Precision,
    data: ArrayView2<'_, f32>,
    noisy: ArrayView2<'_, f32>,
    kappa: usize,
    barrier: f64,
    need_gradient: bool,
) -> Result<(f64, Vec<f64>), EstimationError> {
    check_copies(data, noisy, kappa)?;
    let planes = Planes::new(precision.pattern());
    let lp = planes.of_values(precision.pattern(), precision.values());
    let rows: Vec<usize> = (0..data.nrows()).collect();
    let (mut loss, acc) = cnce_terms(&planes, &lp, data, &rows, kappa, &given_copies(noisy, kappa));
    let mut gradient =
        if need_gradient { gradient_of(&planes, precision.pattern(), &acc) } else { Vec::new() };
    if barrier != 0.0 {
        let factor = precision.try_factor()?;
        add_barrier(precision, &factor, barrier, &mut loss, need_gradient.then_some(gradient.as_mut_slice()));
    }
    Ok((loss, gradient))
}

fn check_copies(
    data: ArrayView2<'_, f32>,
    noisy: ArrayView2<'_, f32>,
    kappa: usize,
) -> Result<(), EstimationError> {
    if noisy.nrows() != data.nrows() * kappa || noisy.ncols() != data.ncols() {
        return Err(EstimationError::Shape(format!(
            "{} noisy rows of {} for {} data rows of {} and κ = {kappa}",
            noisy.nrows(),
            noisy.ncols(),
            data.nrows(),
            data.ncols()
        )));
    }
    Ok(())
}
