//! Mean image, dequantisation and scaling: fit on a training table, apply to any other.
//!
//! # Brief overview
//!
//! A [`Centring`] holds the options ([`PixelNoise`], seed, scale). [`Centring::fit_mean`] computes
//! the mean image μ of a training [`Images`] table; [`Centring::centre`] turns any `images` table
//! (the training table, the test split) into a [`Centred`] one with that same μ:
//!
//! x = (pixel + u)/256 − μ,  u ~ U(0, 1)   (design.md, "centred" table)
//!
//! Dequantisation (the default) gives every pixel a variance of at least 1/(12·256²), so the ~67
//! MNIST border pixels that are 0 in every image no longer make the covariance singular, and it
//! makes bits per pixel of the discrete data meaningful. The noise of an image depends only on
//! (seed, source, id): not on thread count, row order, or which other rows the table holds.
//!
//! A [`Transform`] maps the dequantised pixel before centring: with `Transform::Logit { alpha }`,
//! x = logit(α + (1 − 2α)(pixel + u)/256) − μ, the logit space in which density models of MNIST
//! are reported (RealNVP, MAF); μ is then the exact expectation of the logit over u (see
//! [`Centring::fit_mean`]). [`rows`] keeps a range of a table's rows (MAF fits the first 50,000
//! training digits).
//!
//! ```no_run
//! # let train: gmrf_table::Images = unimplemented!();
//! # let test: gmrf_table::Images = unimplemented!();
//! use gmrf_centring::{Centring, PixelNoise};
//! let centring = Centring { noise: PixelNoise::Uniform, seed: 1, ..Centring::default() };
//! let mean = centring.fit_mean(&train)?;
//! let train_x = centring.centre(&train, &mean, &|_| {})?;
//! let test_x = centring.centre(&test, &mean, &|_| {})?;
//! # Ok::<(), gmrf_centring::CentringError>(())
//! ```

use gmrf_table::{Centred, Images, MeanImage, Transform};
use ndarray::{Axis, Zip};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Noise added to each 8-bit pixel before scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PixelNoise {
    /// Uniform dequantisation, u ~ U(0, 1) in pixel units (the default).
    Uniform,
    /// No noise: x = pixel/scale − μ.
    None,
    /// Gaussian noise of standard deviation `std` in scaled units (the original homework used
    /// 0.01 on pixels scaled to [0, 1]).
    Gaussian { std: f64 },
}

impl PixelNoise {
    /// E[u] in pixel units, so that μ is the exact mean of the noisy training data's expectation.
    fn mean_offset(self) -> f64 {
        match self {
            PixelNoise::Uniform => 0.5,
            PixelNoise::None | PixelNoise::Gaussian { .. } => 0.0,
        }
    }

    /// How the noise is recorded in table metadata.
    pub fn describe(self) -> String {
        match self {
            PixelNoise::Uniform => "uniform".into(),
            PixelNoise::None => "none".into(),
            PixelNoise::Gaussian { std } => format!("gaussian(std={std})"),
        }
    }
}

/// The centring of a run: noise, seed and scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Centring {
    pub noise: PixelNoise,
    pub seed: u64,
    /// Pixel values are divided by this (256: the dequantised pixel then lies in [0, 1)).
    pub scale: f64,
    /// Applied to the scaled pixel before centring [default: none].
    pub transform: Transform,
}

impl Default for Centring {
    fn default() -> Self {
        Centring { noise: PixelNoise::Uniform, seed: 0, scale: 256.0, transform: Transform::None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CentringError {
    #[error("the training table has no rows: a mean image needs at least one")]
    Empty,
    #[error("images are {found_h}x{found_w} but the mean image is {mean_h}x{mean_w}")]
    Shape { found_h: usize, found_w: usize, mean_h: usize, mean_w: usize },
    #[error("Gaussian pixel noise needs a finite standard deviation ≥ 0, got {0}")]
    NoiseStd(f64),
    #[error(
        "the logit transform needs uniform dequantisation or no pixel noise (Gaussian noise can leave (0, 1))"
    )]
    LogitNoise,
    #[error("{0}")]
    Transform(String),
}

impl Centring {
    fn check(&self) -> Result<(), CentringError> {
        match self.noise {
            PixelNoise::Gaussian { std } if !(std.is_finite() && std >= 0.0) => {
                Err(CentringError::NoiseStd(std))
            }
            PixelNoise::Gaussian { .. } if self.transform != Transform::None => {
                Err(CentringError::LogitNoise)
            }
            _ => match self.transform {
                Transform::Logit { alpha } => {
                    Transform::logit(alpha).map(|_| ()).map_err(CentringError::Transform)
                }
                Transform::None => Ok(()),
            },
        }
    }

    /// E_u[t((pixel + u)/scale)] for each 8-bit pixel value: the expected transformed value.
    /// For the logit with uniform u, in closed form: with z = α + (1 − 2α)(pixel + u)/scale
    /// running over [z₀, z₁] as u runs over [0, 1], ∫ logit z dz = F(z) with
    /// F(z) = z log z + (1 − z) log(1 − z), so E = (F(z₁) − F(z₀))/(z₁ − z₀).
    fn expected_value(&self, pixel: u8) -> f64 {
        let p = f64::from(pixel);
        match (self.transform, self.noise) {
            (Transform::Logit { alpha }, PixelNoise::Uniform) => {
                let z = |v: f64| alpha + (1.0 - 2.0 * alpha) * v / self.scale;
                let f = |z: f64| z * z.ln() + (1.0 - z) * (1.0 - z).ln();
                let (z0, z1) = (z(p), z(p + 1.0));
                (f(z1) - f(z0)) / (z1 - z0)
            }
            (transform, noise) => transform.forward((p + noise.mean_offset()) / self.scale),
        }
    }

    /// μⱼ = (mean over rows of pixelⱼ + E[u]) / scale: the expected value of the noisy, scaled
    /// training pixel. Computed from exact integer sums, so it does not depend on the seed. With a
    /// transform t, μⱼ is the mean over rows of E_u[t((pixelⱼ + u)/scale)], from the counts of
    /// each pixel value.
    pub fn fit_mean(&self, train: &Images) -> Result<MeanImage, CentringError> {
        self.check()?;
        if train.is_empty() {
            return Err(CentringError::Empty);
        }
        let n = train.len() as f64;
        let mean = if self.transform == Transform::None {
            let sums = train.pixels.map_axis(Axis(0), |column| column.iter().map(|&p| p as u64).sum::<u64>());
            sums.iter().map(|&s| (s as f64 / n + self.noise.mean_offset()) / self.scale).collect()
        } else {
            // Counts of each pixel value per pixel, then the expected transformed value of each.
            let table: Vec<f64> = (0..=255u8).map(|p| self.expected_value(p)).collect();
            let mean = train.pixels.map_axis(Axis(0), |column| {
                let mut counts = [0u64; 256];
                column.iter().for_each(|&p| counts[p as usize] += 1);
                counts.iter().zip(&table).map(|(&c, v)| c as f64 * v).sum::<f64>() / n
            });
            mean.to_vec()
        };
        Ok(MeanImage { height: train.height, width: train.width, mean })
    }

    /// x = (pixel + noise)/scale − μ for every row of `images`, in parallel; `progress` is told
    /// how many rows each finished block held.
    pub fn centre(
        &self,
        images: &Images,
        mean: &MeanImage,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Centred, CentringError> {
        self.check()?;
        if (images.height, images.width) != (mean.height, mean.width) {
            return Err(CentringError::Shape {
                found_h: images.height,
                found_w: images.width,
                mean_h: mean.height,
                mean_w: mean.width,
            });
        }
        const BLOCK: usize = 1024;
        let mut x = ndarray::Array2::<f32>::zeros(images.pixels.dim());
        x.axis_chunks_iter_mut(Axis(0), BLOCK)
            .into_par_iter()
            .zip(images.pixels.axis_chunks_iter(Axis(0), BLOCK))
            .enumerate()
            .for_each(|(block, (mut x_block, pixel_block))| {
                for (k, (x_row, pixel_row)) in
                    x_block.outer_iter_mut().zip(pixel_block.outer_iter()).enumerate()
                {
                    let row = block * BLOCK + k;
                    let mut rng = row_rng(self.seed, &images.source[row], images.id[row]);
                    Zip::from(x_row).and(pixel_row).and(&mean.mean).for_each(|x, &p, &mu| {
                        let noisy = match self.noise {
                            PixelNoise::Uniform => (p as f64 + rng.random::<f64>()) / self.scale,
                            PixelNoise::None => p as f64 / self.scale,
                            PixelNoise::Gaussian { std } => {
                                p as f64 / self.scale + std * rng.sample::<f64, _>(rand_distr::StandardNormal)
                            }
                        };
                        *x = (self.transform.forward(noisy) - mu) as f32;
                    });
                }
                progress(x_block.nrows());
            });
        Ok(Centred {
            height: images.height,
            width: images.width,
            id: images.id.clone(),
            label: images.label.clone(),
            source: images.source.clone(),
            x,
        })
    }
}

/// The rows `range` of `images` (e.g. the first 50,000 training digits), or `None` when the
/// table has fewer rows than the range asks for.
pub fn rows(images: &Images, range: std::ops::Range<usize>) -> Option<Images> {
    if range.end > images.len() || range.start > range.end {
        return None;
    }
    Some(Images {
        height: images.height,
        width: images.width,
        id: images.id[range.clone()].to_vec(),
        label: images.label[range.clone()].to_vec(),
        source: images.source[range.clone()].to_vec(),
        top: images.top[range.clone()].to_vec(),
        left: images.left[range.clone()].to_vec(),
        pixels: images.pixels.slice(ndarray::s![range.clone(), ..]).to_owned(),
    })
}

/// The noise generator of one image, keyed by (seed, source, id): ChaCha8 (portable, the same
/// stream on every platform) seeded with the run seed, the image id and a stable 64-bit hash of
/// its source, so an image's noise is the same whichever table or thread it is processed in.
pub fn row_rng(seed: u64, source: &str, id: u32) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&gmrf_table::stable_hash(source.as_bytes()).to_le_bytes());
    key[16..20].copy_from_slice(&id.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(pixels: Vec<u8>, rows: usize) -> Images {
        let d = pixels.len() / rows;
        Images {
            height: 1,
            width: d,
            id: (0..rows as u32).collect(),
            label: vec![None; rows],
            source: vec!["train".into(); rows],
            top: vec![None; rows],
            left: vec![None; rows],
            pixels: ndarray::Array2::from_shape_vec((rows, d), pixels).unwrap(),
        }
    }

    #[test]
    fn mean_is_the_expected_dequantised_pixel() {
        let train = images(vec![0, 255, 10, 20], 2);
        let mean = Centring::default().fit_mean(&train).unwrap();
        // Column means 5 and 137.5, plus E[u] = 0.5, over 256.
        assert_eq!(mean.mean, vec![5.5 / 256.0, 138.0 / 256.0]);
        let plain = Centring { noise: PixelNoise::None, ..Centring::default() }.fit_mean(&train).unwrap();
        assert_eq!(plain.mean, vec![5.0 / 256.0, 137.5 / 256.0]);
    }

    #[test]
    fn dequantised_pixels_stay_within_their_bin() {
        let train = images((0..=255).collect(), 1);
        let centring = Centring::default();
        let mean = centring.fit_mean(&train).unwrap();
        let x = centring.centre(&train, &mean, &|_| {}).unwrap().x;
        for (j, v) in x.iter().enumerate() {
            let pixel = (*v as f64 + mean.mean[j]) * 256.0;
            // f32 rounding of x (|x| < 1, so error < 6e-8) is ~1.5e-5 in pixel units.
            assert!(pixel >= j as f64 - 1e-4 && pixel <= j as f64 + 1.0 + 1e-4, "pixel {j} -> {pixel}");
        }
    }

    #[test]
    fn noise_depends_on_seed_source_and_id_not_on_row_position() {
        let c = Centring { seed: 7, ..Centring::default() };
        let a = images(vec![1, 2, 3, 4, 5, 6], 3);
        let mut b = a.clone();
        // The same images in reverse order.
        b.id.reverse();
        b.pixels.invert_axis(Axis(0));
        let mean = c.fit_mean(&a).unwrap();
        let xa = c.centre(&a, &mean, &|_| {}).unwrap().x;
        let xb = c.centre(&b, &mean, &|_| {}).unwrap().x;
        for r in 0..3 {
            assert_eq!(xa.row(r), xb.row(2 - r));
        }
        let other_seed = Centring { seed: 8, ..c.clone() }.centre(&a, &mean, &|_| {}).unwrap().x;
        assert_ne!(xa, other_seed);
    }

    #[test]
    fn logit_mean_is_the_expected_logit_by_quadrature() {
        let train = images(vec![0, 255, 10, 128], 2);
        let alpha = 1e-6;
        let centring = Centring { transform: Transform::Logit { alpha }, ..Centring::default() };
        let mean = centring.fit_mean(&train).unwrap();
        // E_u[logit(α + (1 − 2α)(p + u)/256)] by the midpoint rule on 200,000 nodes; its error,
        // ~h²/24·|f''|, is below 1e-7 except near p = 0, where the integrand's log singularity
        // (|f''| ~ 1/z²) is softened by α: 1e-6 relative is the bound for all four values.
        let quadrature = |p: f64| {
            let n = 200_000;
            (0..n)
                .map(|k| Transform::Logit { alpha }.forward((p + (k as f64 + 0.5) / n as f64) / 256.0))
                .sum::<f64>()
                / n as f64
        };
        let want =
            [(quadrature(0.0) + quadrature(10.0)) / 2.0, (quadrature(255.0) + quadrature(128.0)) / 2.0];
        for (got, want) in mean.mean.iter().zip(want) {
            assert!((got - want).abs() < 1e-6 * want.abs(), "{got} vs {want}");
        }
        // Centred values are the logit of the dequantised pixel minus μ: invert and land in the bin.
        let x = centring.centre(&train, &mean, &|_| {}).unwrap().x;
        for (k, (&v, &p)) in x.iter().zip(train.pixels.iter()).enumerate() {
            let pixel = 256.0 * Transform::Logit { alpha }.inverse(v as f64 + mean.mean[k % 2]);
            assert!(pixel >= p as f64 - 1e-3 && pixel <= p as f64 + 1.0 + 1e-3, "{p} -> {pixel}");
        }
    }

    #[test]
    fn logit_with_gaussian_noise_or_a_bad_alpha_is_refused() {
        let train = images(vec![1, 2], 1);
        let gaussian = Centring {
            noise: PixelNoise::Gaussian { std: 0.01 },
            transform: Transform::Logit { alpha: 1e-6 },
            ..Centring::default()
        };
        assert!(matches!(gaussian.fit_mean(&train), Err(CentringError::LogitNoise)));
        let bad = Centring { transform: Transform::Logit { alpha: 0.5 }, ..Centring::default() };
        assert!(matches!(bad.fit_mean(&train), Err(CentringError::Transform(_))));
    }

    #[test]
    fn a_row_range_keeps_those_rows_and_refuses_a_range_past_the_end() {
        let table = images((0..12).collect(), 4);
        let kept = rows(&table, 1..3).unwrap();
        assert_eq!(kept.id, vec![1, 2]);
        assert_eq!(kept.pixels.row(0).to_vec(), vec![3, 4, 5]);
        assert!(rows(&table, 0..5).is_none());
    }
}
