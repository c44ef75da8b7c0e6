//! First-order optimisers for the contrastive estimators: plain gradient descent, RMSprop (the
//! original's) and Adam (Kingma & Ba 2015), with a constant or cosine-decayed learning rate.
//!
//! Each returns the step Δ to subtract from θ; the caller shortens Δ until Λ stays positive
//! definite. The moment estimates are updated with the gradient whatever happens to the step.

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OptimiserKind {
    /// Δ = η g.
    Gd,
    /// v ← ρv + (1 − ρ)g², Δ = η g/(√v + ε), ρ = 0.9, ε = 1e-10 (TensorFlow 1's RMSprop, which
    /// the original used).
    RmsProp,
    /// m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², Δ = η m̂/(√v̂ + ε) with bias-corrected m̂, v̂,
    /// β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    #[default]
    Adam,
}

impl OptimiserKind {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            OptimiserKind::Gd => "gd",
            OptimiserKind::RmsProp => "rmsprop",
            OptimiserKind::Adam => "adam",
        }
    }
}

/// How the learning rate evolves over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Schedule {
    /// η_t = η.
    Constant,
    /// η_t = η · ½(1 + cos(π t/T)) over the T steps of the run.
    #[default]
    Cosine,
}

impl Schedule {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
        }
    }

    /// η at step `t` (0-based) of `total`.
    pub fn rate(self, eta: f64, t: u32, total: u32) -> f64 {
        match self {
            Schedule::Constant => eta,
            Schedule::Cosine => {
                eta * 0.5 * (1.0 + (std::f64::consts::PI * f64::from(t) / f64::from(total.max(1))).cos())
            }
        }
    }
}

/// The optimiser's state over the parameter vector.
#[derive(Clone, Debug)]
pub struct Optimiser {
    kind: OptimiserKind,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Optimiser {
    /// A fresh optimiser for `n` parameters.
    pub fn new(kind: OptimiserKind, n: usize) -> Self {
        Optimiser { kind, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// Updates the state with gradient `g` and returns the step Δ (θ ← θ − Δ) at rate `eta`.
    pub fn step(&mut self, g: &[f64], eta: f64) -> Vec<f64> {
        self.t += 1;
        match self.kind {
            OptimiserKind::Gd => g.iter().map(|g| eta * g).collect(),
            OptimiserKind::RmsProp => {
                const RHO: f64 = 0.9;
                const EPS: f64 = 1e-10;
                g.iter()
                    .zip(&mut self.v)
                    .map(|(&g, v)| {
                        *v = RHO * *v + (1.0 - RHO) * g * g;
                        eta * g / (v.sqrt() + EPS)
                    })
                    .collect()
            }
            OptimiserKind::Adam => {
                const B1: f64 = 0.9;
                const B2: f64 = 0.999;
                const EPS: f64 = 1e-8;
                let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
                g.iter()
                    .zip(self.m.iter_mut().zip(&mut self.v))
                    .map(|(&g, (m, v))| {
                        *m = B1 * *m + (1.0 - B1) * g;
                        *v = B2 * *v + (1.0 - B2) * g * g;
                        eta * (*m / c1) / ((*v / c2).sqrt() + EPS)
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optimiser_minimises_a_quadratic() {
        for kind in [OptimiserKind::Gd, OptimiserKind::RmsProp, OptimiserKind::Adam] {
            let mut theta = vec![3.0, -2.0];
            let mut opt = Optimiser::new(kind, 2);
            for t in 0..2000 {
                let g = vec![theta[0] - 1.0, 4.0 * (theta[1] + 0.5)];
                let eta = Schedule::Cosine.rate(0.1, t, 2000);
                for (x, d) in theta.iter_mut().zip(opt.step(&g, eta)) {
                    *x -= d;
                }
            }
            assert!((theta[0] - 1.0).abs() < 1e-3 && (theta[1] + 0.5).abs() < 1e-3, "{kind:?}: {theta:?}");
        }
    }
}
