//! The NCE objective (Gutmann & Hyvärinen 2010, 2012).
//!
//! Logistic discrimination of N data rows from νN rows of a noise density p_n:
//!
//! J(θ) = (1/N) Σᵢ softplus(−G(xᵢ)) + (1/N) Σⱼ softplus(G(x'ⱼ)),
//! G(x) = log p_θ(x) − log p_n(x) − log ν,
//!
//! with log p_θ(x) = ½ log|Λ| − (d/2) log 2π − ½ xᵀΛx (normaliser exact, from the Cholesky
//! factor), or c − ½ xᵀΛx with c a free parameter (the classic NCE for unnormalised models).
//! Written with softplus, J never overflows although |G| reaches 10³ on MNIST. Its gradient, with
//! wᵢ = −σ(−G(xᵢ))/N for data and wⱼ = σ(G(x'ⱼ))/N for noise (σ the logistic function), is
//!
//! ∂J/∂Λ = Σₖ wₖ ∂G(xₖ)/∂Λ = ½ (Σₖ wₖ) Λ⁻¹ − ½ Σₖ wₖ xₖxₖᵀ   (exact normaliser),
//! ∂J/∂Λ = −½ Σₖ wₖ xₖxₖᵀ,  ∂J/∂c = Σₖ wₖ                       (learned normaliser),
//!
//! read on the pattern (mₑ times the matrix entry for stored value θₑ): the data enter only
//! through weighted second moments on the pattern, Λ⁻¹ only through its selected inverse.

use gmrf_model::{Cholesky, Precision};
use ndarray::ArrayView2;

use super::planes::{Planes, reduce_blocks, row_f64, sigmoid, softplus};
use crate::EstimationError;

/// J and its gradient: `precision` in θ (canonical order), `normaliser` in c (learned only).
#[derive(Clone, Debug, PartialEq)]
pub struct NceGradient {
    /// J.
    pub loss: f64,
    /// ∂J/∂θₑ for every stored entry.
    pub precision: Vec<f64>,
    /// ∂J/∂c, with a learned normaliser.
    pub normaliser: Option<f64>,
}

/// log ν, the prior log-odds of noise against data.
fn log_nu(nu: f64) -> f64 {
    nu.ln()
}

/// One side of J over `rows` of `x`: Σ softplus(∓G)·inv_n, Σ w, Σ w x xᵀ (planes), with
/// G = constant − ½xᵀΛx − log p_n(x) − log ν; `data` selects the sign.
#[allow(clippy::too_many_arguments)]
fn nce_terms(
    planes: &Planes,
    lam_planes: &[f64],
    constant: f64,
    x: ArrayView2<'_, f32>,
    rows: &[usize],
    log_pn: &[f64],
    log_nu: f64,
    inv_n: f64,
    data: bool,
) -> (f64, f64, Vec<f64>) {
    reduce_blocks(rows, planes.len(), |block| {
        let (mut loss, mut sum_w) = (0.0, 0.0);
        let mut acc = vec![0.0; planes.len()];
        let (mut buf, mut scratch) = (vec![0.0; x.ncols()], vec![0.0; x.ncols()]);
        for &r in block {
            row_f64(x, r, &mut buf);
            let g =
                constant - 0.5 * planes.quadratic_form(lam_planes, &buf, &mut scratch) - log_pn[r] - log_nu;
            let w = if data {
                loss += softplus(-g) * inv_n;
                -sigmoid(-g) * inv_n
            } else {
                loss += softplus(g) * inv_n;
                sigmoid(g) * inv_n
            };
            sum_w += w;
            planes.accumulate(&mut acc, w, &buf, &mut scratch);
        }
        (loss, sum_w, acc)
    })
}

/// The model's log-normaliser: c when learned, else ½ log|Λ| − (d/2) log 2π.
pub(crate) fn log_normaliser(factor: &Cholesky, d: usize, learned: Option<f64>) -> f64 {
    learned.unwrap_or_else(|| gmrf_model::log_normaliser(factor.log_det(), d))
}

/// J and ∂J/∂θ (and ∂J/∂c) over data rows `data_rows` and noise rows `noise_rows`, normalised
/// by the number of data rows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn nce_loss_gradient(
    planes: &Planes,
    lam: &Precision,
    factor: &Cholesky,
    normaliser: Option<f64>,
    data: (ArrayView2<'_, f32>, &[usize], &[f64]),
    noise: (ArrayView2<'_, f32>, &[usize], &[f64]),
    nu: f64,
    need_gradient: bool,
) -> NceGradient {
    let pattern = lam.pattern();
    let lam_planes = planes.of_values(pattern, lam.values());
    let constant = log_normaliser(factor, lam.dim(), normaliser);
    let inv_n = 1.0 / data.1.len() as f64;
    let (l1, w1, m1) =
        nce_terms(planes, &lam_planes, constant, data.0, data.1, data.2, log_nu(nu), inv_n, true);
    let (l2, w2, m2) =
        nce_terms(planes, &lam_planes, constant, noise.0, noise.1, noise.2, log_nu(nu), inv_n, false);
    let loss = l1 + l2;
    if !need_gradient {
        return NceGradient { loss, precision: Vec::new(), normaliser: None };
    }
    let sum_w = w1 + w2;
    let moments: Vec<f64> =
        planes.on_pattern(&m1).iter().zip(planes.on_pattern(&m2)).map(|(a, b)| a + b).collect();
    let precision = match normaliser {
        None => {
            let sigma = factor.inverse_band().on_pattern(pattern);
            pattern
                .entries()
                .iter()
                .zip(sigma.iter().zip(&moments))
                .map(|(e, (s, m))| e.multiplicity() * 0.5 * (sum_w * s - m))
                .collect()
        }
        Some(_) => pattern.entries().iter().zip(&moments).map(|(e, m)| -0.5 * e.multiplicity() * m).collect(),
    };
    NceGradient { loss, precision, normaliser: normaliser.map(|_| sum_w) }
}

pub(crate) fn all_rows(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// J(θ) = (1/N) Σᵢ softplus(−G(xᵢ)) + (1/N) Σⱼ softplus(G(x'ⱼ)) over all rows of `data` (N) and
/// `noise` (νN), given their noise log-densities log p_n; `normaliser` is the learned c, or
/// `None` for the exact ½ log|Λ| − (d/2) log 2π.
pub fn nce_objective(
    precision: &Precision,
    normaliser: Option<f64>,
    data: ArrayView2<'_, f32>,
    data_log_noise: &[f64],
    noise: ArrayView2<'_, f32>,
    noise_log_noise: &[f64],
    nu: f64,
) -> Result<f64, EstimationError> {
    let sets = ((data, data_log_noise), (noise, noise_log_noise));
    Ok(nce_over_all_rows(precision, normaliser, sets, nu, false)?.loss)
}

/// J and its analytic gradient ∂J/∂θₑ = mₑ(½ (Σₖwₖ) (Λ⁻¹)ᵢⱼ − ½ Σₖ wₖ xₖᵢxₖⱼ) (exact normaliser;
/// without the Λ⁻¹ term and with ∂J/∂c = Σₖ wₖ when learned), arguments as [`nce_objective`].
pub fn nce_gradient(
    precision: &Precision,
    normaliser: Option<f64>,
    data: ArrayView2<'_, f32>,
    data_log_noise: &[f64],
    noise: ArrayView2<'_, f32>,
    noise_log_noise: &[f64],
    nu: f64,
) -> Result<NceGradient, EstimationError> {
    let sets = ((data, data_log_noise), (noise, noise_log_noise));
    nce_over_all_rows(precision, normaliser, sets, nu, true)
}

/// A data set and its noise log-densities log p_n.
type Scored<'v, 's> = (ArrayView2<'v, f32>, &'s [f64]);

/// [`nce_objective`] and [`nce_gradient`] over every row of the data and noise sets.
fn nce_over_all_rows(
    precision: &Precision,
    normaliser: Option<f64>,
    ((data, data_log_noise), (noise, noise_log_noise)): (Scored<'_, '_>, Scored<'_, '_>),
    nu: f64,
    with_gradient: bool,
) -> Result<NceGradient, EstimationError> {
    let factor = precision.try_factor()?;
    let planes = Planes::new(precision.pattern());
    let (dr, nr) = (all_rows(data.nrows()), all_rows(noise.nrows()));
    Ok(nce_loss_gradient(
        &planes,
        precision,
        &factor,
        normaliser,
        (data, &dr, data_log_noise),
        (noise, &nr, noise_log_noise),
        nu,
        with_gradient,
    ))
}
