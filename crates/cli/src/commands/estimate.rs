//! `gmrf estimate`: fit Λθ to a `centred` table, write its `precision` and `trace` tables.

use anyhow::{Context, bail};
use gmrf_estimation::{
    BarrierWeight, CnceOptions, ContrastiveOptions, GdGradient, MleOptions, NceOptions, NoiseKind,
    Normaliser, OptimiserKind, RunSummary, Schedule, SmGdOptions, SmOptions, fit_cnce, fit_mle, fit_nce,
    fit_sm, fit_sm_gd,
};
use gmrf_model::{Neighbourhood, Pattern};
use gmrf_table::{Centred, Meta, Stage, Trace};
use ndarray::{Array2, Axis};

use super::file_name;
use crate::args::{
    EstimateArgs, EstimateParams, GradientKind, Method, NceNoise, NormaliserKind, OptimiserName, ScheduleName,
};
use crate::config::resolve;
use crate::progress::{Stopwatch, spinner};

pub fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let clock = Stopwatch::start("estimate");
    let p = resolve(args.params, args.config.as_deref(), "estimate")?;
    let method = p.method.unwrap_or(Method::Sm);
    let neighbourhood: Neighbourhood =
        p.neighbourhood.as_deref().unwrap_or("4").parse().context("--neighbourhood")?;
    let seed = p.seed.unwrap_or(0);

    let spin = spinner("reading the training table");
    let (train, train_meta) = gmrf_table::read::<Centred>(&args.train)?;
    if train.is_empty() {
        bail!("{}: the table has no rows to fit", args.train.display());
    }
    let pattern = Pattern::new(train.height, train.width, neighbourhood)?;
    let mut meta = Meta::new(Stage::Precision, train.height, train.width)
        .with("method", method.name())
        .with("neighbourhood", neighbourhood)
        .with("train", file_name(&args.train))
        .with("n_train", train.len())
        .with("noise", train_meta.param("noise").unwrap_or("unknown"))
        .with("nnz", pattern.len());

    spin.set_message(format!("fitting ({}, {} neighbours)", method.name(), neighbourhood));
    let report =
        |step: u32, loss: f64| spin.set_message(format!("{} step {step}: loss {loss:.6e}", method.name()));
    let (precision, trace) = match method {
        Method::Sm => {
            let weight = match p.barrier_t {
                Some(t) => BarrierWeight::Fixed(t),
                None => BarrierWeight::ByValidation {
                    t_min: p.t_min.unwrap_or(BarrierWeight::DEFAULT_T_MIN),
                    patience: p.patience.unwrap_or(BarrierWeight::DEFAULT_PATIENCE),
                },
            };
            if let BarrierWeight::ByValidation { t_min, patience } = weight {
                meta = meta.with("t_min", t_min).with("patience", patience);
            }
            let options = SmOptions { weight, ..SmOptions::default() };
            let fraction = p.validation_fraction.unwrap_or(0.1);
            let (fit_rows, validation_rows) = match weight {
                BarrierWeight::ByValidation { .. } => validation_split(&train, seed, fraction)?,
                BarrierWeight::Fixed(_) => (train.x.clone(), Array2::zeros((0, train.x.ncols()))),
            };
            let validation = (validation_rows.nrows() > 0).then(|| validation_rows.view());
            let fit = fit_sm(fit_rows.view(), validation, &pattern, &options, Some(&report))?;
            let d = &fit.diagnostics;
            meta = meta
                .with("n_fit", fit_rows.nrows())
                .with("n_validation", validation_rows.nrows())
                .with("seed", seed)
                .with("validation_fraction", fraction)
                .with(
                    "barrier_t",
                    d.chosen_t.map_or("none (unconstrained optimum)".into(), |t| t.to_string()),
                )
                .with("unconstrained_pd", d.unconstrained_pd)
                .with("unconstrained_nonpositive_eigenvalues", d.unconstrained_nonpositive_eigenvalues)
                .with("sm_objective", d.sm_objective);
            (fit.precision, fit.trace)
        }
        Method::SmGd => {
            let defaults = SmGdOptions::default();
            let options = SmGdOptions {
                learning_rate: p.learning_rate.unwrap_or(defaults.learning_rate),
                steps: p.steps.unwrap_or(defaults.steps),
                gradient: match p.gradient.unwrap_or(GradientKind::Symmetrised) {
                    GradientKind::Symmetrised => GdGradient::Symmetrised,
                    GradientKind::Original => GdGradient::OriginalUpperTriangle,
                },
                ..defaults
            };
            let fit = fit_sm_gd(train.x.view(), &pattern, &options, Some(&report))?;
            let d = &fit.diagnostics;
            meta = meta
                .with("learning_rate", options.learning_rate)
                .with("steps", options.steps)
                .with("gradient", format!("{:?}", options.gradient).to_lowercase())
                .with("halvings", d.halvings)
                .with("rejected_steps", d.rejected_steps)
                .with("sm_objective", d.sm_objective);
            (fit.precision, fit.trace)
        }
        Method::Mle => {
            let options = MleOptions { tolerance: p.tolerance.unwrap_or(1e-6), ..MleOptions::default() };
            let fit = fit_mle(train.x.view(), &pattern, &options, Some(&report))?;
            let d = &fit.diagnostics;
            meta = meta
                .with("tolerance", options.tolerance)
                .with("converged", d.converged)
                .with("relative_optimality_gap", d.relative_optimality_gap)
                .with("scaled_optimality_gap", d.scaled_optimality_gap)
                .with("lbfgs_iterations", d.lbfgs_iterations)
                .with("newton_steps", d.newton_steps);
            (fit.precision, fit.trace)
        }
        Method::Nce | Method::Cnce => {
            let run = contrastive_options(&p, seed);
            let test = match &p.test {
                Some(path) => {
                    let (t, _) = gmrf_table::read::<Centred>(path)?;
                    if (t.height, t.width) != (train.height, train.width) {
                        bail!(
                            "{}: {}x{} images, the training table has {}x{}",
                            path.display(),
                            t.height,
                            t.width,
                            train.height,
                            train.width
                        );
                    }
                    meta = meta.with("test", file_name(path)).with("n_test", t.len());
                    Some(t.x)
                }
                None => None,
            };
            meta = run_meta(meta, &run);
            if method == Method::Nce {
                let defaults = NceOptions::default();
                let options = NceOptions {
                    normaliser: match p.normaliser.unwrap_or(NormaliserKind::Exact) {
                        NormaliserKind::Exact => Normaliser::Exact,
                        NormaliserKind::Learned => Normaliser::Learned,
                    },
                    noise: match p.noise.unwrap_or(NceNoise::Full) {
                        NceNoise::Full => NoiseKind::Full,
                        NceNoise::Diagonal => NoiseKind::Diagonal,
                        NceNoise::Isotropic => NoiseKind::Isotropic,
                        NceNoise::Original => NoiseKind::Original,
                    },
                    nu: p.nu.unwrap_or(defaults.nu),
                    run,
                    ..defaults
                };
                let fit = fit_nce(
                    train.x.view(),
                    test.as_ref().map(|t| t.view()),
                    &pattern,
                    &options,
                    Some(&report),
                )?;
                let d = &fit.diagnostics;
                meta = summary_meta(meta, &d.run)
                    .with("normaliser", options.normaliser.name())
                    .with("noise_kind", options.noise.name())
                    .with("nu", options.nu)
                    .with("ridge", options.ridge)
                    .with("n_noise", d.n_noise)
                    .with("exact_log_normaliser", d.exact_log_normaliser)
                    .with(
                        "learned_log_normaliser",
                        d.learned_log_normaliser.map_or("none (exact normaliser)".into(), |c| c.to_string()),
                    )
                    .with("final_loss", d.final_loss)
                    .with("heldout_loss", d.heldout_loss.map_or("none".into(), |l| l.to_string()));
                (fit.precision, fit.trace)
            } else {
                let defaults = CnceOptions::default();
                let options = CnceOptions {
                    kappa: p.kappa.unwrap_or(defaults.kappa),
                    sigma: p.sigma.or(defaults.sigma),
                    barrier: p.barrier_t.unwrap_or(defaults.barrier),
                    run,
                };
                let fit = fit_cnce(
                    train.x.view(),
                    test.as_ref().map(|t| t.view()),
                    &pattern,
                    &options,
                    Some(&report),
                )?;
                let d = &fit.diagnostics;
                meta = summary_meta(meta, &d.run)
                    .with("kappa", options.kappa)
                    .with("sigma", d.sigma)
                    .with("barrier_t", options.barrier)
                    .with("exact_log_normaliser", d.exact_log_normaliser)
                    .with("final_loss", d.final_loss)
                    .with("heldout_loss", d.heldout_loss.map_or("none".into(), |l| l.to_string()));
                (fit.precision, fit.trace)
            }
        }
    };
    spin.set_message("checking the fit");
    let factor_ok = precision.is_positive_definite();
    let min_eigenvalue = precision.min_eigenvalue()?;
    meta = meta.with("positive_definite", factor_ok).with("min_eigenvalue", min_eigenvalue);
    // Wall time stays in the trace's `elapsed_s` column: in this metadata it would make the
    // precision table's bytes differ from run to run.
    if let Some(last) = trace.last() {
        meta = meta.with("steps_taken", last.step);
    }

    let trace_meta = Meta { stage: Stage::Trace, ..meta.clone() };
    let pending = vec![
        gmrf_table::write(&args.out.join("precision.parquet"), &precision.to_table(), &meta)?,
        gmrf_table::write(&args.out.join("trace.parquet"), &Trace { rows: trace }, &trace_meta)?,
    ];
    gmrf_table::commit_all(pending)?;
    spin.finish_and_clear();
    let pd = if factor_ok { "positive definite" } else { "NOT positive definite" };
    clock.summary(&format!(
        "wrote {}/{{precision,trace}}.parquet ({}, {} neighbours, {} entries, {pd}, smallest eigenvalue {min_eigenvalue:.4e})",
        args.out.display(),
        method.name(),
        neighbourhood,
        pattern.len()
    ));
    if !factor_ok {
        bail!("the fitted Λ has no Cholesky factor; the tables were written for inspection");
    }
    Ok(())
}

/// The optimiser settings of `nce` and `cnce` from the flags and pipeline file.
fn contrastive_options(p: &EstimateParams, seed: u64) -> ContrastiveOptions {
    let defaults = ContrastiveOptions::default();
    ContrastiveOptions {
        optimiser: match p.optimiser.unwrap_or(OptimiserName::Adam) {
            OptimiserName::Gd => OptimiserKind::Gd,
            OptimiserName::Rmsprop => OptimiserKind::RmsProp,
            OptimiserName::Adam => OptimiserKind::Adam,
        },
        schedule: match p.schedule.unwrap_or(ScheduleName::Cosine) {
            ScheduleName::Constant => Schedule::Constant,
            ScheduleName::Cosine => Schedule::Cosine,
        },
        learning_rate: p.learning_rate.unwrap_or(defaults.learning_rate),
        batch_size: p.batch_size.unwrap_or(defaults.batch_size),
        steps: p.steps.unwrap_or(defaults.steps),
        tolerance: p.tolerance.unwrap_or(defaults.tolerance),
        noise_per_epoch: p.noise_per_epoch.unwrap_or(defaults.noise_per_epoch),
        seed,
        trace_every: p.trace_every.unwrap_or(defaults.trace_every),
        ..defaults
    }
}

fn run_meta(meta: Meta, run: &ContrastiveOptions) -> Meta {
    meta.with("seed", run.seed)
        .with("optimiser", run.optimiser.name())
        .with("schedule", run.schedule.name())
        .with("learning_rate", run.learning_rate)
        .with("batch_size", run.batch_size)
        .with("steps", run.steps)
        .with("tolerance", run.tolerance)
        .with("max_halvings", run.max_halvings)
        .with("noise_per_epoch", run.noise_per_epoch)
        .with("trace_every", run.trace_every)
        .with(
            "coordinates",
            "standardised (pixels scaled by their training std; Λθ written in original units)",
        )
}

fn summary_meta(meta: Meta, run: &RunSummary) -> Meta {
    meta.with("converged", run.converged)
        .with("halvings", run.halvings)
        .with("rejected_steps", run.rejected_steps)
        .with("epochs", run.epochs)
}

/// Splits the rows of `train` into (fit, validation) by a stable hash of (seed, source, id).
fn validation_split(train: &Centred, seed: u64, fraction: f64) -> anyhow::Result<(Array2<f32>, Array2<f32>)> {
    if !(0.0..1.0).contains(&fraction) {
        bail!("--validation-fraction must be in [0, 1), got {fraction}");
    }
    let (mut fit, mut validation) = (Vec::new(), Vec::new());
    for (row, (source, &id)) in train.source.iter().zip(&train.id).enumerate() {
        if gmrf_table::in_holdout(seed, source, id, fraction) { validation.push(row) } else { fit.push(row) }
    }
    if fraction > 0.0 && (validation.is_empty() || fit.is_empty()) {
        bail!(
            "a validation fraction of {fraction} leaves {} fitting and {} validation rows out of {}",
            fit.len(),
            validation.len(),
            train.len()
        );
    }
    Ok((train.x.select(Axis(0), &fit), train.x.select(Axis(0), &validation)))
}
