//! Synthetic images from a fitted Λθ with the two samplers of design.md, as 8-bit pixels.

use gmrf_model::Precision;
use ndarray::{Array2, ArrayView1};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::EvaluationError;

/// Which sampler drew an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// x = μ + L⁻ᵀz, z ~ N(0, I): exact draws from N(μ, Λ⁻¹).
    Cholesky,
    /// x = μ + Λ^{-1/2}ε, ε ~ N(0, τ²I): the original's sampler, N(μ, τ²Λ⁻¹).
    InverseSqrt,
}

impl Sampler {
    pub const ALL: [Sampler; 2] = [Sampler::Cholesky, Sampler::InverseSqrt];

    pub fn name(self) -> &'static str {
        match self {
            Sampler::Cholesky => "cholesky",
            Sampler::InverseSqrt => "inverse-sqrt",
        }
    }

    /// How the report describes it.
    pub fn describe(self, tau: f64) -> String {
        match self {
            Sampler::Cholesky => "μ + L⁻ᵀz, z ~ N(0, I) (exact draws from the model)".into(),
            Sampler::InverseSqrt => {
                format!("μ + Λ^(-1/2)ε, ε ~ N(0, τ²I), τ = {tau} (the original's sampler)")
            }
        }
    }
}

/// `n` images from N(μ, Λ⁻¹) (or N(μ, τ²Λ⁻¹)) as 8-bit pixels. `mean` is μ in the centred
/// data's units, t(x) with x = (pixel + u)/scale; `pixel` maps a value v to its 8-bit pixel,
/// ⌊scale·t⁻¹(v)⌋ clipped to [0, 255] ([`to_pixel`] after the transform's inverse). Seeded with
/// `seed`: the same images on any machine.
pub fn draw(
    precision: &Precision,
    sampler: Sampler,
    n: usize,
    tau: f64,
    mean: ArrayView1<'_, f64>,
    pixel: &dyn Fn(f64) -> u8,
    seed: u64,
) -> Result<Array2<u8>, EvaluationError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // One stream per sampler: the two grids are independent draws.
    rng.set_stream(sampler as u64);
    let x = match sampler {
        Sampler::Cholesky => precision.sample_cholesky(n, Some(mean), &mut rng)?,
        Sampler::InverseSqrt => precision.sample_inverse_sqrt(n, tau, Some(mean), &mut rng)?,
    };
    Ok(x.mapv(pixel))
}

/// The 8-bit pixel whose dequantisation bin [p/scale, (p+1)/scale) holds v, clipped to [0, 255].
pub fn to_pixel(v: f64, scale: f64) -> u8 {
    (scale * v).floor().clamp(0.0, 255.0) as u8
}
