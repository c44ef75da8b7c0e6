//! Checks of every method's options, run before any work, and the names of the option enums.
//!
//! Each `check` refuses a value no fit can use — NaN, infinite, zero or negative where that is
//! meaningless, a smallest barrier weight above the path's first — with
//! [`EstimationError::InvalidOption`], which names the option as `gmrf estimate` spells its flag
//! (`--learning-rate`), or as `Struct::field` for settings that have no flag. `check_memory`
//! bounds the sizes whose buffers grow with an option (NCE's ν, cNCE's κ) by a memory budget and
//! refuses with the size they would take.
//!
//! The enums an option chooses from ([`OptimiserKind`], [`Schedule`], [`Normaliser`],
//! [`NoiseKind`], [`GdGradient`]) are [`Named`]: [`FromStr`] and [`Display`] use the command
//! line's spelling, so metadata and flags agree.

use std::fmt;
use std::str::FromStr;

use gmrf_model::Pattern;

use crate::{
    BarrierWeight, CnceOptions, ContrastiveOptions, EstimationError, GdGradient, LbfgsOptions, MleOptions,
    NceOptions, NewtonOptions, NoiseKind, Normaliser, OptimiserKind, Schedule, SmGdOptions, SmOptions,
    Solver,
};

/// Refuses `value` of `option` with `reason` unless `ok`.
fn require(
    ok: bool,
    option: &'static str,
    value: impl fmt::Display,
    reason: &str,
) -> Result<(), EstimationError> {
    if ok {
        Ok(())
    } else {
        Err(EstimationError::InvalidOption { option, value: value.to_string(), reason: reason.to_string() })
    }
}

/// A number as errors show it: the shortest text that reads back to it, with an exponent where
/// that is shorter (`1e300`, `-1e-6`, `0.001`, `NaN`).
fn number(value: f64) -> String {
    format!("{value:?}")
}

/// A finite value > 0.
fn positive(option: &'static str, value: f64) -> Result<(), EstimationError> {
    require(value.is_finite() && value > 0.0, option, number(value), "must be a finite number > 0")
}

/// A finite value ≥ 0.
fn non_negative(option: &'static str, value: f64) -> Result<(), EstimationError> {
    require(value.is_finite() && value >= 0.0, option, number(value), "must be a finite number ≥ 0")
}

/// A relative tolerance of an iterative solve: 0 < value < 1.
fn fraction(option: &'static str, value: f64) -> Result<(), EstimationError> {
    require(value > 0.0 && value < 1.0, option, number(value), "must lie strictly between 0 and 1")
}

/// A count ≥ 1.
fn at_least_one(
    option: &'static str,
    value: impl Into<u64> + fmt::Display + Copy,
) -> Result<(), EstimationError> {
    require(value.into() >= 1, option, value, "must be at least 1")
}

/// Refuses `option` when its buffers, `bytes` for `what`, exceed `budget` bytes.
fn fits_in_memory(
    option: &'static str,
    value: impl fmt::Display,
    what: &str,
    bytes: f64,
    budget: u64,
) -> Result<(), EstimationError> {
    require(
        bytes <= budget as f64,
        option,
        value,
        &format!(
            "{what} would take {}, more than the {} of memory",
            human_bytes(bytes),
            human_bytes(budget as f64)
        ),
    )
}

/// `bytes` in binary units with four significant digits, e.g. `175.2 TiB`.
fn human_bytes(bytes: f64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} bytes") } else { format!("{value:.1} {}", units[unit]) }
}

impl NewtonOptions {
    /// Refuses settings under which Newton-CG cannot run or never stops.
    pub fn check(&self) -> Result<(), EstimationError> {
        at_least_one("NewtonOptions::max_steps", self.max_steps as u64)?;
        non_negative("NewtonOptions::decrement_tol", self.decrement_tol)?;
        non_negative("NewtonOptions::centring_tol", self.centring_tol)?;
        fraction("NewtonOptions::cg_rel_tol", self.cg_rel_tol)?;
        at_least_one("NewtonOptions::max_cg_iterations", self.max_cg_iterations as u64)
    }
}

impl LbfgsOptions {
    /// Refuses an empty memory or a gap that is not a finite number ≥ 0.
    pub fn check(&self) -> Result<(), EstimationError> {
        at_least_one("LbfgsOptions::memory", self.memory as u64)?;
        non_negative("LbfgsOptions::until_gap", self.until_gap)
    }
}

impl SmOptions {
    /// Refuses a barrier path that cannot be followed: t ≤ 0, a divisor ≤ 1, a smallest weight
    /// above the first (`--t-min 1e300` would leave a single stage at t = 1e300), patience 0.
    pub fn check(&self) -> Result<(), EstimationError> {
        fraction("SmOptions::cg_rel_tol", self.cg_rel_tol)?;
        at_least_one("SmOptions::max_cg_iterations", self.max_cg_iterations as u64)?;
        positive("SmOptions::t_start", self.t_start)?;
        require(
            self.t_factor.is_finite() && self.t_factor > 1.0,
            "SmOptions::t_factor",
            number(self.t_factor),
            "must be a finite number > 1",
        )?;
        match self.weight {
            BarrierWeight::Fixed(t) => positive("--barrier-t", t)?,
            BarrierWeight::ByValidation { t_min, patience } => {
                positive("--t-min", t_min)?;
                require(
                    t_min <= self.t_start,
                    "--t-min",
                    number(t_min),
                    &format!("must not exceed the barrier path's first weight, {}", number(self.t_start)),
                )?;
                at_least_one("--patience", patience as u64)?;
            }
        }
        non_negative("SmOptions::stage_centring_tol", self.stage_centring_tol)?;
        fraction("SmOptions::stage_cg_rel_tol", self.stage_cg_rel_tol)?;
        if let Some(warm) = &self.stage_warm_start {
            warm.check()?;
        }
        non_negative("SmOptions::polish_decrement_tol", self.polish_decrement_tol)?;
        self.newton.check()
    }

    /// Refuses a pattern whose dense Newton Hessian factor needs more than `budget` bytes (see
    /// [`NewtonOptions::check_memory`]).
    pub fn check_memory(&self, pattern: &Pattern, budget: u64) -> Result<(), EstimationError> {
        self.newton.check_memory(pattern, budget)
    }
}

impl SmGdOptions {
    /// Refuses a learning rate that is not a finite number > 0, and zero steps.
    pub fn check(&self) -> Result<(), EstimationError> {
        positive("--learning-rate", self.learning_rate)?;
        at_least_one("--steps", self.steps)
    }
}

impl MleOptions {
    /// Refuses a tolerance that is not a finite number > 0 (with 0 the optimality condition is
    /// never met), and invalid solver settings.
    pub fn check(&self) -> Result<(), EstimationError> {
        positive("--tolerance", self.tolerance)?;
        non_negative("MleOptions::polish_decrement_tol", self.polish_decrement_tol)?;
        if let Some(warm) = &self.warm_start {
            warm.check()?;
        }
        self.newton.check()
    }

    /// Refuses a pattern whose dense Newton Hessian factor needs more than `budget` bytes.
    pub fn check_memory(&self, pattern: &Pattern, budget: u64) -> Result<(), EstimationError> {
        self.newton.check_memory(pattern, budget)
    }
}

impl NewtonOptions {
    /// Refuses a pattern whose dense Hessian factor (the default preconditioner: n × n in f32,
    /// and in f64 once f32 no longer carries the conditioning, n the pattern's free entries)
    /// needs more than `budget` bytes. A radius as wide as the image gives n = d(d + 1)/2.
    pub fn check_memory(&self, pattern: &Pattern, budget: u64) -> Result<(), EstimationError> {
        if self.preconditioner == crate::NewtonPreconditioner::Jacobi {
            return Ok(());
        }
        let n = pattern.len() as f64;
        let what = format!("the Newton Hessian factor of its {n} free entries");
        fits_in_memory("--neighbourhood", pattern.neighbourhood(), &what, 12.0 * n * n, budget)
    }
}

impl ContrastiveOptions {
    /// Refuses a learning rate that is not a finite number > 0, zero steps, and a tolerance that
    /// is not a finite number ≥ 0 (`trace_every` = 0 is valid: no held-out loss is traced).
    pub fn check(&self) -> Result<(), EstimationError> {
        positive("--learning-rate", self.learning_rate)?;
        at_least_one("--steps", self.steps)?;
        non_negative("--tolerance", self.tolerance)
    }
}

impl NceOptions {
    /// Refuses ν that is not a finite number > 0, a ridge that is not a finite number ≥ 0, and
    /// invalid optimiser settings.
    pub fn check(&self) -> Result<(), EstimationError> {
        positive("--nu", self.nu)?;
        non_negative("NceOptions::ridge", self.ridge)?;
        self.run.check()
    }

    /// Refuses ν whose noise images, ν·`rows` of the pattern's f32 pixels and their
    /// log-densities, need more than `budget` bytes (`rows`: the training rows), with, for
    /// [`Solver::Newton`], a copy of the data rows and the dense Hessian and its factor
    /// (20·n² bytes, n the pattern's free entries).
    pub fn check_memory(&self, rows: usize, pattern: &Pattern, budget: u64) -> Result<(), EstimationError> {
        let dim = pattern.dim();
        let noise_rows = self.noise_rows(rows);
        let mut bytes = noise_rows * (dim as f64 * 4.0 + 8.0);
        if self.solver == Solver::Newton {
            bytes += rows as f64 * dim as f64 * 4.0 + 20.0 * (pattern.len() as f64).powi(2);
        }
        fits_in_memory(
            "--nu",
            number(self.nu),
            &format!("{noise_rows:e} noise images of {dim} pixels"),
            bytes,
            budget,
        )
    }
}

impl CnceOptions {
    /// Refuses κ = 0, σ that is not a finite number > 0, a barrier weight that is not a finite
    /// number ≥ 0, and invalid optimiser settings.
    pub fn check(&self) -> Result<(), EstimationError> {
        at_least_one("--kappa", self.kappa)?;
        if let Some(sigma) = self.sigma {
            positive("--sigma", sigma)?;
        }
        non_negative("--barrier-t", self.barrier)?;
        self.run.check()
    }

    /// Refuses κ whose noisy copies need more than `budget` bytes: for [`Solver::Newton`] the
    /// `rows` training images and their κ·`rows` copies in f32, with the dense Hessian and its
    /// factor (20·n² bytes, n the pattern's free entries); for the minibatch loop, κ copies of one
    /// image in f64 per worker thread.
    pub fn check_memory(&self, rows: usize, pattern: &Pattern, budget: u64) -> Result<(), EstimationError> {
        let (dim, kappa) = (pattern.dim() as f64, f64::from(self.kappa));
        let (bytes, what) = match self.solver {
            Solver::Newton => (
                (1.0 + kappa) * rows as f64 * dim * 4.0 + 20.0 * (pattern.len() as f64).powi(2),
                format!("{} images of {dim} pixels with {} noisy copies each", rows, self.kappa),
            ),
            Solver::Minibatch => {
                (kappa * dim * 8.0, format!("{} noisy copies of an image of {dim} pixels", self.kappa))
            }
        };
        fits_in_memory("--kappa", self.kappa, &what, bytes, budget)
    }
}

/// An enum whose values have names on the command line and in metadata.
pub trait Named: Copy + 'static {
    /// Every value with its name.
    const NAMES: &'static [(Self, &'static str)];
}

/// A name that is none of an enum's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not one of {}", .expected.join(", "))]
pub struct UnknownName {
    /// The name given.
    pub name: String,
    /// The names there are.
    pub expected: Vec<&'static str>,
}

/// The value called `name`.
fn parse_named<T: Named>(name: &str) -> Result<T, UnknownName> {
    T::NAMES.iter().find(|(_, n)| *n == name).map(|(v, _)| *v).ok_or_else(|| UnknownName {
        name: name.to_string(),
        expected: T::NAMES.iter().map(|(_, n)| *n).collect(),
    })
}

/// Implements [`Named`], [`FromStr`] and [`Display`] from one list of (value, name).
macro_rules! named {
    ($ty:ty { $($variant:expr => $name:literal),+ $(,)? }) => {
        impl Named for $ty {
            const NAMES: &'static [(Self, &'static str)] = &[$(($variant, $name)),+];
        }
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                parse_named(s)
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = Self::NAMES.iter().find(|(v, _)| v == self).map_or("?", |(_, n)| *n);
                f.write_str(name)
            }
        }
    };
}

named!(OptimiserKind { OptimiserKind::Gd => "gd", OptimiserKind::RmsProp => "rmsprop", OptimiserKind::Adam => "adam" });
named!(Solver { Solver::Newton => "newton", Solver::Minibatch => "minibatch" });
named!(Schedule { Schedule::Constant => "constant", Schedule::Cosine => "cosine" });
named!(Normaliser { Normaliser::Exact => "exact", Normaliser::Learned => "learned" });
named!(NoiseKind {
    NoiseKind::Full => "full",
    NoiseKind::Diagonal => "diagonal",
    NoiseKind::Isotropic => "isotropic",
    NoiseKind::Original => "original",
});
named!(GdGradient { GdGradient::Symmetrised => "symmetrised", GdGradient::OriginalUpperTriangle => "original" });

#[cfg(test)]
mod tests {
    use super::*;

    /// The option a refusal names.
    fn refused(result: Result<(), EstimationError>) -> &'static str {
        match result {
            Err(EstimationError::InvalidOption { option, .. }) => option,
            other => panic!("expected an invalid option, got {other:?}"),
        }
    }

    #[test]
    fn default_options_of_every_method_pass_their_checks() {
        SmOptions::default().check().unwrap();
        SmGdOptions::default().check().unwrap();
        MleOptions::default().check().unwrap();
        NceOptions::default().check().unwrap();
        CnceOptions::default().check().unwrap();
        let mnist8 = Pattern::new(28, 28, gmrf_model::Neighbourhood::Eight).unwrap();
        NceOptions::default().check_memory(60_000, &mnist8, 2 << 30).unwrap();
        CnceOptions::default().check_memory(60_000, &mnist8, 2 << 30).unwrap();
    }

    #[test]
    fn nan_infinite_zero_and_negative_learning_rates_are_refused_by_flag_name() {
        for eta in [f64::NAN, f64::INFINITY, 0.0, -0.1] {
            let gd = SmGdOptions { learning_rate: eta, ..SmGdOptions::default() };
            assert_eq!(refused(gd.check()), "--learning-rate", "{eta}");
            let run = ContrastiveOptions { learning_rate: eta, ..ContrastiveOptions::default() };
            let nce = NceOptions { run, ..NceOptions::default() };
            assert_eq!(refused(nce.check()), "--learning-rate", "{eta}");
        }
    }

    #[test]
    fn nan_and_negative_tolerances_are_refused_and_zero_only_where_meaningless() {
        for tol in [f64::NAN, -1e-6, f64::INFINITY] {
            let run = ContrastiveOptions { tolerance: tol, ..ContrastiveOptions::default() };
            assert_eq!(refused(run.check()), "--tolerance");
        }
        // nce/cnce: 0 means "run every step"; mle: 0 would never be met.
        ContrastiveOptions { tolerance: 0.0, ..ContrastiveOptions::default() }.check().unwrap();
        for tol in [f64::NAN, -1e-6, 0.0] {
            assert_eq!(
                refused(MleOptions { tolerance: tol, ..MleOptions::default() }.check()),
                "--tolerance"
            );
        }
    }

    #[test]
    fn a_smallest_barrier_weight_above_the_first_is_refused() {
        let weight = BarrierWeight::ByValidation { t_min: 1e300, patience: 1 };
        let error = SmOptions { weight, ..SmOptions::default() }.check().unwrap_err();
        assert_eq!(
            error.to_string(),
            "--t-min 1e300: must not exceed the barrier path's first weight, 1000000.0"
        );
        let weight = BarrierWeight::ByValidation { t_min: 1e-3, patience: 0 };
        assert_eq!(refused(SmOptions { weight, ..SmOptions::default() }.check()), "--patience");
        let weight = BarrierWeight::Fixed(-1.0);
        assert_eq!(refused(SmOptions { weight, ..SmOptions::default() }.check()), "--barrier-t");
    }

    #[test]
    fn cnce_sizes_and_weights_are_refused_by_flag_name() {
        let cnce = |f: fn(&mut CnceOptions)| {
            let mut o = CnceOptions::default();
            f(&mut o);
            refused(o.check())
        };
        assert_eq!(cnce(|o| o.kappa = 0), "--kappa");
        assert_eq!(cnce(|o| o.sigma = Some(0.0)), "--sigma");
        assert_eq!(cnce(|o| o.sigma = Some(f64::NAN)), "--sigma");
        assert_eq!(cnce(|o| o.barrier = -1e-3), "--barrier-t");
        let mut untraced = CnceOptions::default();
        untraced.run.trace_every = 0;
        untraced.check().unwrap();
    }

    #[test]
    fn sizes_beyond_the_memory_budget_are_refused_with_the_size_they_would_take() {
        // ν = 1e6 on 60,000 images of 784 pixels: 6e10 rows of 784 · 4 + 8 bytes = 1.886e14 bytes.
        let nce = NceOptions { nu: 1e6, solver: Solver::Minibatch, ..NceOptions::default() };
        let mnist = Pattern::new(28, 28, gmrf_model::Neighbourhood::Four).unwrap();
        let message = nce.check_memory(60_000, &mnist, 16 << 30).unwrap_err().to_string();
        let expected = 6e10 * (784.0 * 4.0 + 8.0) / 1024f64.powi(4);
        assert!(
            message.starts_with("--nu 1000000.0: 6e10 noise images of 784 pixels would take "),
            "{message}"
        );
        assert!(message.contains(&format!("{expected:.1} TiB")), "{message} vs {expected}");
        assert!(message.ends_with("more than the 16.0 GiB of memory"), "{message}");
        // κ = 4e9: 4e9 · 784 · 8 bytes = 2.509e13 bytes = 22.8 TiB.
        let cnce = CnceOptions { kappa: 4_000_000_000, ..CnceOptions::default() };
        let cnce = CnceOptions { solver: Solver::Minibatch, ..cnce };
        let message = cnce.check_memory(60_000, &mnist, 16 << 30).unwrap_err().to_string();
        assert!(message.contains("would take 22.8 TiB"), "{message}");
        // Just inside the budget passes: ν = 1 on 1,000 rows of 784 pixels is 3,144,000 bytes.
        let minibatch = NceOptions { solver: Solver::Minibatch, ..NceOptions::default() };
        minibatch.check_memory(1000, &mnist, 3_144_000).unwrap();
        assert_eq!(refused(minibatch.check_memory(1000, &mnist, 3_143_999)), "--nu");
        // Newton adds the data rows and the dense Hessian with its factor, 20·n² bytes.
        let newton = 3_144_000 + 1000 * 784 * 4 + 20 * 2296 * 2296;
        NceOptions::default().check_memory(1000, &mnist, newton).unwrap();
        assert_eq!(refused(NceOptions::default().check_memory(1000, &mnist, newton - 1)), "--nu");
    }

    #[test]
    fn every_enum_name_parses_back_to_its_value_and_others_are_refused() {
        fn round_trip<T: Named + FromStr<Err = UnknownName> + fmt::Display + PartialEq + fmt::Debug>() {
            for (value, name) in T::NAMES {
                assert_eq!(value.to_string(), *name);
                assert_eq!(name.parse::<T>().unwrap(), *value);
            }
            let error = "bogus".parse::<T>().unwrap_err();
            assert_eq!(error.expected, T::NAMES.iter().map(|(_, n)| *n).collect::<Vec<_>>());
        }
        round_trip::<OptimiserKind>();
        round_trip::<Schedule>();
        round_trip::<Normaliser>();
        round_trip::<NoiseKind>();
        round_trip::<GdGradient>();
        // The metadata spells the homework's gradient as the flag does.
        assert_eq!(GdGradient::OriginalUpperTriangle.to_string(), "original");
        assert_eq!(
            "sgd".parse::<OptimiserKind>().unwrap_err().to_string(),
            "`sgd` is not one of gd, rmsprop, adam"
        );
    }
}
