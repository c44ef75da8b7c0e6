//! `gmrf estimate METHOD`: fit Λθ to a `centred` table, write its `precision` and `trace` tables.
//!
//! Each method resolves its parameters (flags over the pipeline file), builds and checks its
//! library options before any work, reads the training table, fits, and hands a [`Fitted`] to the
//! one writer, [`write`].

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use gmrf_estimation::{
    BarrierWeight, Certificate, CnceOptions, ContrastiveOptions, EstimationError, Fit, MleOptions,
    NceOptions, Normaliser, Progress, RunSummary, SmGdOptions, SmOptions, Solver, TraceRow, fit_cnce,
    fit_mle, fit_nce, fit_sm, fit_sm_gd,
};
use gmrf_model::{Gaussian, Neighbourhood, Pattern, Precision};
use gmrf_table::{Centred, Meta, Stage, Trace};
use indicatif::ProgressBar;
use ndarray::{Array2, ArrayView2, Axis};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{file_name, memory_budget};
use crate::args::{
    CnceParams, ContrastiveParams, DEFAULT_NEIGHBOURHOOD, DEFAULT_SEED, DEFAULT_VALIDATION_FRACTION,
    Estimate, EstimateArgs, Method, MleParams, NceParams, SharedParams, SmGdParams, SmParams, keys,
};
use crate::config::{Pipeline, merge};
use crate::progress::{Stopwatch, spinner};

pub fn run(command: Estimate) -> anyhow::Result<()> {
    let clock = Stopwatch::start("estimate");
    let fitted = match command {
        Estimate::Sm(args) => sm(args)?,
        Estimate::SmGd(args) => sm_gd(args)?,
        Estimate::Mle(args) => mle(args)?,
        Estimate::Nce(args) => nce(args)?,
        Estimate::Cnce(args) => cnce(args)?,
    };
    write(fitted, &clock)
}

/// A method's parameters after the flags were laid over the pipeline file.
struct Resolved<P> {
    method: Method,
    train: PathBuf,
    out: PathBuf,
    neighbourhood: Neighbourhood,
    seed: u64,
    params: P,
}

/// Flags over the pipeline file's `[estimate]` section. The section's `method`, if given, must be
/// the subcommand's (a file is one pipeline: fitting it with another method is a mistake, not an
/// override); a key of another method, or of none, is an error naming it.
fn resolve<P: Args + Serialize + DeserializeOwned>(
    method: Method,
    args: EstimateArgs<P>,
) -> anyhow::Result<Resolved<P>> {
    let (shared, params) = match &args.config {
        None => (args.shared, args.params),
        Some(path) => {
            let pipeline = Pipeline::read(path)?;
            let place = format!("{}: section [estimate]", path.display());
            let mut section = pipeline.section("estimate");
            if let Some(named) = section.remove("method")
                && named.as_str() != Some(method.name())
            {
                bail!(
                    "{place}: method = {named}, but the command is `gmrf estimate {}` (run `gmrf estimate {}` or use another file)",
                    method.name(),
                    named.as_str().unwrap_or("…")
                );
            }
            let shared_keys = keys::<SharedParams>();
            let own_keys = method.keys();
            if let Some(key) = section.keys().find(|k| !shared_keys.contains(k) && !own_keys.contains(k)) {
                match Method::ALL.iter().find(|m| m.keys().contains(key)) {
                    Some(other) => bail!(
                        "{place}: `{key}` is an option of `{}`, not of `{}`",
                        other.name(),
                        method.name()
                    ),
                    None => bail!(
                        "{place}: unknown key `{key}` (the keys of `{}` are {})",
                        method.name(),
                        [shared_keys.clone(), own_keys].concat().join(", ")
                    ),
                }
            }
            let (shared_section, own_section) =
                section.into_iter().partition(|(k, _)| shared_keys.contains(k));
            (merge(args.shared, shared_section, &place)?, merge(args.params, own_section, &place)?)
        }
    };
    // Refuse an output that cannot be written before the fit, which may take minutes.
    let (precision, trace) = (args.out.join("precision.parquet"), args.out.join("trace.parquet"));
    let mut inputs = vec![("--train", args.train.as_path())];
    inputs.extend(args.config.iter().map(|p| ("--config", p.as_path())));
    gmrf_table::check_outputs(&[("--out", &precision), ("--out", &trace)], &inputs)?;
    Ok(Resolved {
        method,
        train: args.train,
        out: args.out,
        neighbourhood: shared.neighbourhood.unwrap_or(DEFAULT_NEIGHBOURHOOD),
        seed: shared.seed.unwrap_or(DEFAULT_SEED),
        params,
    })
}

/// The training table, its pattern, and the metadata every method writes.
struct Training {
    method: Method,
    out: PathBuf,
    train_path: PathBuf,
    train: Centred,
    pattern: Pattern,
    meta: Meta,
    spin: ProgressBar,
}

impl Training {
    fn read<P>(run: &Resolved<P>) -> anyhow::Result<Self> {
        let spin = spinner("reading the training table");
        let (train, train_meta) = gmrf_table::read::<Centred>(&run.train)?;
        if train.is_empty() {
            bail!("{}: the table has no rows to fit", run.train.display());
        }
        let pattern = Pattern::new(train.height, train.width, run.neighbourhood)?;
        let meta = Meta::new(Stage::Precision, train.height, train.width)
            .with("method", run.method.name())
            .with("neighbourhood", run.neighbourhood)
            .with("train", file_name(&run.train))
            .with("n_train", train.len())
            .with("noise", train_meta.param("noise").unwrap_or("unknown"))
            .with("nnz", pattern.len());
        spin.set_message(format!("fitting ({}, {} neighbours)", run.method.name(), run.neighbourhood));
        Ok(Training {
            method: run.method,
            out: run.out.clone(),
            train_path: run.train.clone(),
            train,
            pattern,
            meta,
            spin,
        })
    }

    /// A fit's error, naming the training table for what the data caused (too few rows, a pixel
    /// that never varies, no estimate); an option's error names the option already.
    fn data_error(&self, error: EstimationError) -> anyhow::Error {
        match error {
            EstimationError::InvalidOption { .. } => error.into(),
            _ => anyhow::anyhow!("{}: {error}", self.train_path.display()),
        }
    }

    /// Shows (step, loss) on the spinner.
    fn report(&self, step: u32, loss: f64) {
        self.spin.set_message(format!("{} step {step}: loss {loss:.6e}", self.method.name()));
    }

    /// The fit, with what `meta` adds from its diagnostics to the metadata.
    fn fitted<D>(mut self, fit: Fit<D>, meta: impl FnOnce(Meta, &D) -> Meta) -> Fitted {
        self.meta = meta(self.meta.clone(), &fit.diagnostics);
        Fitted { training: self, precision: fit.precision, trace: fit.trace }
    }
}

/// A fit ready to be written.
struct Fitted {
    training: Training,
    precision: Precision,
    trace: Vec<TraceRow>,
}

fn sm(args: EstimateArgs<SmParams>) -> anyhow::Result<Fitted> {
    let run = resolve(Method::Sm, args)?;
    let p = &run.params;
    let weight = match p.barrier_t {
        Some(t) => BarrierWeight::Fixed(t),
        None => BarrierWeight::ByValidation {
            t_min: p.t_min.unwrap_or(BarrierWeight::DEFAULT_T_MIN),
            patience: p.patience.unwrap_or(BarrierWeight::DEFAULT_PATIENCE),
        },
    };
    let options = SmOptions { weight, ..SmOptions::default() };
    options.check()?;
    let fraction = validation_fraction(p.validation_fraction)?;
    let mut t = Training::read(&run)?;
    options.check_memory(&t.pattern, memory_budget())?;
    if let BarrierWeight::ByValidation { t_min, patience } = weight {
        t.meta = t.meta.with("t_min", t_min).with("patience", patience);
    }
    let (fit_rows, validation_rows) = match weight {
        BarrierWeight::ByValidation { .. } => validation_split(&mut t.train, run.seed, fraction)?,
        BarrierWeight::Fixed(_) => (std::mem::take(&mut t.train.x), Array2::zeros((0, t.pattern.dim()))),
    };
    let validation = (validation_rows.nrows() > 0).then(|| validation_rows.view());
    let fit =
        fit_sm(fit_rows.view(), validation, &t.pattern, &options, Some(&|s: u32, l: f64| t.report(s, l)))
            .map_err(|e| t.data_error(e))?;
    Ok(t.fitted(fit, |meta, d| {
        // Λ is fitted to every training row; the validation rows chose t beforehand.
        meta.with("n_validation", validation_rows.nrows())
            .with("seed", run.seed)
            .with("validation_fraction", fraction)
            .with("barrier_t", d.chosen_t.map_or("none (unconstrained optimum)".into(), |t| t.to_string()))
            .with("unconstrained_pd", d.unconstrained_pd)
            .with("unconstrained_nonpositive_eigenvalues", d.unconstrained_nonpositive_eigenvalues)
            .with("sm_objective", d.sm_objective)
    }))
}

fn sm_gd(args: EstimateArgs<SmGdParams>) -> anyhow::Result<Fitted> {
    let run = resolve(Method::SmGd, args)?;
    let (p, defaults) = (&run.params, SmGdOptions::default());
    let options = SmGdOptions {
        learning_rate: p.learning_rate.unwrap_or(defaults.learning_rate),
        steps: p.steps.unwrap_or(defaults.steps),
        gradient: p.gradient.unwrap_or(defaults.gradient),
        ..defaults
    };
    options.check()?;
    let t = Training::read(&run)?;
    let fit = fit_sm_gd(t.train.x.view(), &t.pattern, &options, Some(&|s: u32, l: f64| t.report(s, l)))
        .map_err(|e| t.data_error(e))?;
    Ok(t.fitted(fit, |meta, d| {
        meta.with("learning_rate", options.learning_rate)
            .with("steps", options.steps)
            .with("gradient", options.gradient)
            .with("halvings", d.halvings)
            .with("rejected_steps", d.rejected_steps)
            .with("sm_objective", d.sm_objective)
    }))
}

fn mle(args: EstimateArgs<MleParams>) -> anyhow::Result<Fitted> {
    let run = resolve(Method::Mle, args)?;
    let defaults = MleOptions::default();
    let options = MleOptions { tolerance: run.params.tolerance.unwrap_or(defaults.tolerance), ..defaults };
    options.check()?;
    let t = Training::read(&run)?;
    options.check_memory(&t.pattern, memory_budget())?;
    let fit = fit_mle(t.train.x.view(), &t.pattern, &options, Some(&|s: u32, l: f64| t.report(s, l)))
        .map_err(|e| t.data_error(e))?;
    Ok(t.fitted(fit, |meta, d| {
        meta.with("tolerance", options.tolerance)
            .with("converged", d.converged)
            .with("relative_optimality_gap", d.relative_optimality_gap)
            .with("scaled_optimality_gap", d.scaled_optimality_gap)
            .with("lbfgs_iterations", d.lbfgs_iterations)
            .with("newton_steps", d.newton_steps)
    }))
}

fn nce(args: EstimateArgs<NceParams>) -> anyhow::Result<Fitted> {
    let run = resolve(Method::Nce, args)?;
    let (p, defaults) = (&run.params, NceOptions::default());
    let options = NceOptions {
        solver: p.run.solver.unwrap_or(defaults.solver),
        normaliser: p.normaliser.unwrap_or(defaults.normaliser),
        noise: p.noise.unwrap_or(defaults.noise),
        nu: p.nu.unwrap_or(defaults.nu),
        run: contrastive_options(&p.run, run.seed),
        ..defaults
    };
    options.check()?;
    let (t, fit, validation) = fit_with_validation(
        &run,
        &p.run,
        |rows, pattern| options.check_memory(rows, pattern, memory_budget()),
        |x, v, pattern, progress| fit_nce(x, v, pattern, &options, progress),
        |d| d.run.is_some(),
    )?;
    Ok(t.fitted(fit, |meta, d| {
        validation
            .meta(solution_meta(meta, 0.0, &options.run, d.run.as_ref(), d.certificate.as_ref()))
            .with("normaliser", if d.run.is_some() { options.normaliser } else { Normaliser::Learned })
            .with("noise_kind", options.noise)
            .with("nu", options.nu)
            .with("ridge", options.ridge)
            .with("n_noise", d.n_noise)
            .with("exact_log_normaliser", d.exact_log_normaliser)
            .with(
                "learned_log_normaliser",
                d.learned_log_normaliser.map_or("none (exact normaliser)".into(), |c| c.to_string()),
            )
            .with("final_loss", d.final_loss)
            .with("heldout_loss", d.heldout_loss.map_or("none".into(), |l| l.to_string()))
    }))
}

fn cnce(args: EstimateArgs<CnceParams>) -> anyhow::Result<Fitted> {
    let run = resolve(Method::Cnce, args)?;
    let (p, defaults) = (&run.params, CnceOptions::default());
    let options = CnceOptions {
        kappa: p.kappa.unwrap_or(defaults.kappa),
        sigma: p.sigma.or(defaults.sigma),
        barrier: p.barrier_t.unwrap_or(defaults.barrier),
        solver: p.run.solver.unwrap_or(defaults.solver),
        run: contrastive_options(&p.run, run.seed),
    };
    options.check()?;
    let (t, fit, validation) = fit_with_validation(
        &run,
        &p.run,
        |rows, pattern| options.check_memory(rows, pattern, memory_budget()),
        |x, v, pattern, progress| fit_cnce(x, v, pattern, &options, progress),
        |d| d.run.is_some(),
    )?;
    Ok(t.fitted(fit, |meta, d| {
        validation
            .meta(solution_meta(meta, options.barrier, &options.run, d.run.as_ref(), d.certificate.as_ref()))
            .with("kappa", options.kappa)
            .with("sigma", d.sigma)
            .with(
                "sigma_path",
                d.sigma_path
                    .iter()
                    .map(|c| match c.chosen {
                        Some((t, nll)) => format!("sigma={:e}:t={t:e}:nll={nll:.6}", c.sigma),
                        None => format!("sigma={:e}:refused", c.sigma),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .with("exact_log_normaliser", d.exact_log_normaliser)
            .with("final_loss", d.final_loss)
            .with("heldout_loss", d.heldout_loss.map_or("none".into(), |l| l.to_string()))
    }))
}

/// Checks the fit, writes `precision.parquet` and `trace.parquet` together, and prints the summary.
fn write(fitted: Fitted, clock: &Stopwatch) -> anyhow::Result<()> {
    let Fitted { training: t, precision, trace } = fitted;
    t.spin.set_message("checking the fit");
    let factor_ok = precision.is_positive_definite();
    let min_eigenvalue = precision.min_eigenvalue()?;
    let mut meta = t.meta.with("positive_definite", factor_ok).with("min_eigenvalue", min_eigenvalue);
    // Wall time stays in the trace's `elapsed_s` column: in this metadata it would make the
    // precision table's bytes differ from run to run.
    if let Some(last) = trace.last() {
        meta = meta.with("steps_taken", last.step);
    }
    let trace_meta = Meta { stage: Stage::Trace, ..meta.clone() };
    let pending = vec![
        gmrf_table::write(&t.out.join("precision.parquet"), &precision.to_table(), &meta)?,
        gmrf_table::write(&t.out.join("trace.parquet"), &Trace { rows: trace }, &trace_meta)?,
    ];
    gmrf_table::commit_all(pending)?;
    t.spin.finish_and_clear();
    let pd = if factor_ok { "positive definite" } else { "NOT positive definite" };
    let validation = match meta.param("validation_nll") {
        Some(nll) if nll != "none" => format!(", validation nll {nll} nats/pixel"),
        _ => String::new(),
    };
    clock.summary(&format!(
        "wrote {}/{{precision,trace}}.parquet ({}, {} neighbours, {} entries, {pd}, smallest eigenvalue {min_eigenvalue:.4e}{validation})",
        t.out.display(),
        t.method.name(),
        t.pattern.neighbourhood(),
        t.pattern.len()
    ));
    if !factor_ok {
        bail!("the fitted Λ has no Cholesky factor; the tables were written for inspection");
    }
    Ok(())
}

/// The optimiser settings of `nce` and `cnce`: the flags and pipeline file over the defaults.
fn contrastive_options(p: &ContrastiveParams, seed: u64) -> ContrastiveOptions {
    let defaults = ContrastiveOptions::default();
    ContrastiveOptions {
        optimiser: p.optimiser.unwrap_or(defaults.optimiser),
        schedule: p.schedule.unwrap_or(defaults.schedule),
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
    meta.with("optimiser", run.optimiser)
        .with("schedule", run.schedule)
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

/// How the estimate was computed: the certificate of a full-batch Newton fit, or the settings and
/// summary of a minibatch run.
fn solution_meta(
    meta: Meta,
    barrier_t: f64,
    options: &ContrastiveOptions,
    run: Option<&RunSummary>,
    certificate: Option<&Certificate>,
) -> Meta {
    let meta = meta.with("seed", options.seed);
    match (run, certificate) {
        (_, Some(c)) => meta
            .with("solver", Solver::Newton)
            .with(
                "solution",
                match c.barrier_t {
                    None => "certified minimiser of the full-batch loss J".to_string(),
                    Some(_) => {
                        "certified minimiser of J − t·log|Λ| on all rows, t chosen by validation nll on \
                                the barrier path of the fitting rows"
                            .to_string()
                    }
                },
            )
            .with("barrier_t", c.barrier_t.map_or("none".into(), |t| t.to_string()))
            .with(
                "validation_path",
                c.validation_path
                    .iter()
                    .map(|s| {
                        format!(
                            "t={:e}:nll={}",
                            s.t,
                            s.validation_nll.map_or("-".into(), |v| format!("{v:.6}"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .with("converged", c.converged)
            .with("max_gradient", c.max_gradient)
            .with("lbfgs_iterations", c.lbfgs_iterations)
            .with("newton_steps", c.newton_steps)
            .with("cg_iterations", c.cg_iterations)
            .with(
                "coordinates",
                "standardised (pixels scaled by their training std; Λθ written in original units)",
            ),
        (Some(r), None) => summary_meta(run_meta(meta.with("solver", Solver::Minibatch), options), r)
            .with("barrier_t", barrier_t)
            .with("solution", "where the minibatch optimiser stopped after its steps"),
        (None, None) => meta,
    }
}

fn summary_meta(meta: Meta, run: &RunSummary) -> Meta {
    meta.with("converged", run.converged)
        .with("halvings", run.halvings)
        .with("rejected_steps", run.rejected_steps)
        .with("epochs", run.epochs)
}

/// The mean nll (nats per pixel, original units) of the validation rows under a minibatch fit,
/// which saw only the other rows: the score on which its step count and settings are compared
/// (never the test table). "none" for a full-batch fit, which the validation rows chose t for and
/// which was then refitted on them too, or without validation rows.
fn minibatch_validation_nll(
    precision: &Precision,
    minibatch: bool,
    validation_rows: &Array2<f32>,
) -> anyhow::Result<String> {
    if !minibatch || validation_rows.nrows() == 0 {
        return Ok("none".into());
    }
    let nll = Gaussian::from_precision(precision.clone())?.nll_per_pixel(validation_rows.view());
    Ok((nll.iter().sum::<f64>() / nll.len() as f64).to_string())
}

/// The validation split of a fit and what it recorded.
struct Validation {
    fraction: f64,
    rows: usize,
    /// A minibatch fit's mean nll over the validation rows (nats/pixel), or "none".
    nll: String,
}

impl Validation {
    fn meta(&self, meta: Meta) -> Meta {
        meta.with("validation_fraction", self.fraction)
            .with("n_validation", self.rows)
            .with("validation_nll", &self.nll)
    }
}

/// What `nce` and `cnce` share once their options are checked: read the training table, check
/// the memory the fit needs, split off the validation rows, fit, and score a minibatch fit
/// (`is_minibatch`) on the validation rows.
fn fit_with_validation<P, D>(
    run: &Resolved<P>,
    params: &ContrastiveParams,
    check_memory: impl FnOnce(usize, &Pattern) -> Result<(), EstimationError>,
    fit: impl FnOnce(
        ArrayView2<'_, f32>,
        Option<ArrayView2<'_, f32>>,
        &Pattern,
        Progress<'_>,
    ) -> Result<Fit<D>, EstimationError>,
    is_minibatch: impl FnOnce(&D) -> bool,
) -> anyhow::Result<(Training, Fit<D>, Validation)> {
    let fraction = validation_fraction(params.validation_fraction)?;
    let mut t = Training::read(run)?;
    check_memory(t.train.len(), &t.pattern)?;
    let (fit_rows, validation_rows) = validation_split(&mut t.train, run.seed, fraction)?;
    let fit = fit(
        fit_rows.view(),
        Some(validation_rows.view()),
        &t.pattern,
        Some(&|s: u32, l: f64| t.report(s, l)),
    )
    .map_err(|e| t.data_error(e))?;
    let nll = minibatch_validation_nll(&fit.precision, is_minibatch(&fit.diagnostics), &validation_rows)?;
    Ok((t, fit, Validation { fraction, rows: validation_rows.nrows(), nll }))
}

/// The validation fraction, the default if not given, checked to lie in [0, 1).
fn validation_fraction(given: Option<f64>) -> anyhow::Result<f64> {
    let fraction = given.unwrap_or(DEFAULT_VALIDATION_FRACTION);
    if !(0.0..1.0).contains(&fraction) {
        bail!("--validation-fraction {fraction:?}: must lie in [0, 1)");
    }
    Ok(fraction)
}

/// Splits the rows of `train` into (fit, validation) by a stable hash of (seed, source, id).
fn validation_split(
    train: &mut Centred,
    seed: u64,
    fraction: f64,
) -> anyhow::Result<(Array2<f32>, Array2<f32>)> {
    let (mut fit, mut validation) = (Vec::new(), Vec::new());
    for (row, (source, &id)) in train.source.iter().zip(&train.id).enumerate() {
        if gmrf_table::in_holdout(seed, source, id, fraction) { validation.push(row) } else { fit.push(row) }
    }
    if fraction > 0.0 && (validation.is_empty() || fit.is_empty()) {
        bail!(
            "--validation-fraction {fraction:?} leaves {} fitting and {} validation rows out of {}",
            fit.len(),
            validation.len(),
            train.len()
        );
    }
    // The table's pixels are not needed once split: freed, so a fit holds one copy of the rows.
    let x = std::mem::take(&mut train.x);
    Ok((x.select(Axis(0), &fit), x.select(Axis(0), &validation)))
}
