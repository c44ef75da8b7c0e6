//! What `nce` and `cnce` share before their optimisers start: the data checked against the
//! pattern and standardised, and the starting point.

use gmrf_model::{Pattern, Precision};
use ndarray::{Array2, ArrayView2};

use crate::EstimationError;
use crate::moments::Standardisation;

/// Training rows (and held-out rows, if any) in standardised coordinates z = D⁻¹x.
pub(crate) struct Standardised {
    pub(crate) standard: Standardisation,
    pub(crate) z: Array2<f32>,
    pub(crate) test: Option<Array2<f32>>,
}

/// Checks `x` (and `test`) against the pattern, fits the standardisation on `x` (every pixel must
/// vary) and applies it to both. An empty `test` counts as none.
pub(crate) fn standardise(
    x: ArrayView2<'_, f32>,
    test: Option<ArrayView2<'_, f32>>,
    pattern: &Pattern,
) -> Result<Standardised, EstimationError> {
    check_shape(x, pattern)?;
    let standard = Standardisation::fit(x);
    if let Some(i) = standard.scale.iter().position(|&s| s.is_nan() || s <= 0.0) {
        return Err(EstimationError::Shape(format!(
            "pixel {i} has variance 0 in the data: dequantise so every pixel varies"
        )));
    }
    let test = match test {
        Some(t) if t.nrows() > 0 => {
            check_shape(t, pattern)?;
            Some(standard.apply(t))
        }
        _ => None,
    };
    Ok(Standardised { z: standard.apply(x), standard, test })
}

/// Λ₀ = I in standardised coordinates, i.e. diag(1/sᵢ²) in the original units: independent
/// pixels fitted by maximum likelihood.
pub(crate) fn identity_start(pattern: &Pattern) -> Result<Precision, EstimationError> {
    Ok(Precision::diagonal(pattern.clone(), &vec![1.0; pattern.dim()])?)
}

fn check_shape(x: ArrayView2<'_, f32>, pattern: &Pattern) -> Result<(), EstimationError> {
    if x.ncols() != pattern.dim() {
        return Err(EstimationError::Shape(format!(
            "data has {} columns, the {}x{} grid {} pixels",
            x.ncols(),
            pattern.height(),
            pattern.width(),
            pattern.dim()
        )));
    }
    if x.nrows() == 0 {
        return Err(EstimationError::Shape("no data rows".into()));
    }
    Ok(())
}
