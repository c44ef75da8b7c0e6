//! `gmrf estimate`: fit Λθ to a `centred` table, write its `precision` and `trace` tables.

use anyhow::{Context, bail};
use gmrf_estimation::{
    BarrierWeight, GdGradient, MleOptions, SmGdOptions, SmOptions, fit_mle, fit_sm, fit_sm_gd,
};
use gmrf_model::{Neighbourhood, Pattern};
use gmrf_table::{Centred, Meta, Stage, Trace};
use ndarray::{Array2, Axis};

use super::file_name;
use crate::args::{EstimateArgs, GradientKind, Method};
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
                None => BarrierWeight::ByValidation { t_min: p.t_min.unwrap_or(1e-3), patience: 2 },
            };
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
                .with("relative_optimality_gap", d.relative_optimality_gap);
            (fit.precision, fit.trace)
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
