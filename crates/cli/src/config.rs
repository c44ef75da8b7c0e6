//! Pipeline parameters from `pipelines/*.toml`: one section per stage, the same names as the
//! flags (with `_` for `-`). Unknown names are errors, so a typo is never silently ignored.

use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;

/// Reads section `section` of a pipeline file into `T` (empty if the section is absent).
pub fn section<T: DeserializeOwned + Default>(path: &Path, section: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    match table.get(section) {
        None => Ok(T::default()),
        Some(value) => {
            T::deserialize(value.clone()).with_context(|| format!("{}: section [{section}]", path.display()))
        }
    }
}

/// Flags first, then the pipeline file.
pub trait Overlay {
    fn overlay(self, under: Self) -> Self;
}

impl Overlay for crate::args::CentreParams {
    fn overlay(self, under: Self) -> Self {
        Self {
            seed: self.seed.or(under.seed),
            noise: self.noise.or(under.noise),
            noise_std: self.noise_std.or(under.noise_std),
            transform: self.transform.or(under.transform),
            alpha: self.alpha.or(under.alpha),
            fit_rows: self.fit_rows.or(under.fit_rows),
        }
    }
}

impl Overlay for crate::args::PhotoParams {
    fn overlay(self, under: Self) -> Self {
        Self {
            seed: self.seed.or(under.seed),
            patch_size: self.patch_size.or(under.patch_size),
            per_photo: self.per_photo.or(under.per_photo),
            cap: self.cap.or(under.cap),
            rate: self.rate.or(under.rate),
            test_fraction: self.test_fraction.or(under.test_fraction),
        }
    }
}

impl Overlay for crate::args::EstimateParams {
    fn overlay(self, under: Self) -> Self {
        Self {
            method: self.method.or(under.method),
            neighbourhood: self.neighbourhood.or(under.neighbourhood),
            seed: self.seed.or(under.seed),
            validation_fraction: self.validation_fraction.or(under.validation_fraction),
            barrier_t: self.barrier_t.or(under.barrier_t),
            t_min: self.t_min.or(under.t_min),
            patience: self.patience.or(under.patience),
            learning_rate: self.learning_rate.or(under.learning_rate),
            steps: self.steps.or(under.steps),
            gradient: self.gradient.or(under.gradient),
            tolerance: self.tolerance.or(under.tolerance),
            normaliser: self.normaliser.or(under.normaliser),
            noise: self.noise.or(under.noise),
            nu: self.nu.or(under.nu),
            optimiser: self.optimiser.or(under.optimiser),
            schedule: self.schedule.or(under.schedule),
            batch_size: self.batch_size.or(under.batch_size),
            noise_per_epoch: self.noise_per_epoch.or(under.noise_per_epoch),
            kappa: self.kappa.or(under.kappa),
            sigma: self.sigma.or(under.sigma),
            test: self.test.or(under.test),
            trace_every: self.trace_every.or(under.trace_every),
        }
    }
}

impl Overlay for crate::args::EvaluateParams {
    fn overlay(self, under: Self) -> Self {
        Self {
            title: self.title.or(under.title),
            samples: self.samples.or(under.samples),
            tau: self.tau.or(under.tau),
            seed: self.seed.or(under.seed),
        }
    }
}

/// The parameters of a stage: its flags over its pipeline file's section, if any.
pub fn resolve<T: DeserializeOwned + Default + Overlay>(
    flags: T,
    config: Option<&Path>,
    name: &str,
) -> anyhow::Result<T> {
    Ok(match config {
        Some(path) => flags.overlay(section(path, name)?),
        None => flags,
    })
}
