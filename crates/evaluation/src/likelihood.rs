//! Bits per pixel of the discrete data.

/// Bits per pixel of the discrete 8-bit data, from the density's nll in nats per pixel of the
/// dequantised data x = (pixel + u)/scale: a pixel bin has width 1/scale, so
/// −log₂ P(pixel) ≤ nll/ln 2 + log₂ scale (= nll/ln 2 + 8 for scale 256).
pub fn bits_per_pixel(nll_nats_per_pixel: f64, scale: f64) -> f64 {
    nll_nats_per_pixel / std::f64::consts::LN_2 + scale.log2()
}
