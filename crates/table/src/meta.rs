//! The key-value metadata that makes every gmrf file explain itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::TableError;

/// Which stage wrote a table, and so which contract (schema) it follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Raw 8-bit images or patches (`gmrf ingest`).
    Images,
    /// Centred, dequantised images (`gmrf centre`).
    Centred,
    /// The mean image, one row per pixel (`gmrf centre`).
    Mean,
    /// The stored entries of a fitted precision matrix Λθ (`gmrf estimate`).
    Precision,
    /// One row per optimiser step (`gmrf estimate`).
    Trace,
    /// One row per fitted model (`gmrf evaluate`).
    Metrics,
    /// Synthetic images drawn from a fit (`gmrf evaluate`).
    Samples,
    /// Photos the ingest skipped, with the reason (`gmrf ingest photos`).
    Skipped,
    /// The negative log-likelihood of every image under every evaluated model (`gmrf evaluate`).
    Scores,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Images,
        Stage::Centred,
        Stage::Mean,
        Stage::Precision,
        Stage::Trace,
        Stage::Metrics,
        Stage::Samples,
        Stage::Skipped,
        Stage::Scores,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Images => "images",
            Stage::Centred => "centred",
            Stage::Mean => "mean",
            Stage::Precision => "precision",
            Stage::Trace => "trace",
            Stage::Metrics => "metrics",
            Stage::Samples => "samples",
            Stage::Skipped => "skipped",
            Stage::Scores => "scores",
        }
    }

    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The command that writes tables of this stage, for error messages.
    pub(crate) fn produced_by(self) -> &'static str {
        match self {
            Stage::Images | Stage::Skipped => "gmrf ingest",
            Stage::Centred | Stage::Mean => "gmrf centre",
            Stage::Precision | Stage::Trace => "gmrf estimate",
            Stage::Metrics | Stage::Samples | Stage::Scores => "gmrf evaluate",
        }
    }
}

/// `major.minor.patch` (a pre-release or build suffix after `-` or `+` is ignored) as a tuple
/// that compares as versions do.
fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) const KEY_STAGE: &str = "gmrf.stage";
pub(crate) const KEY_VERSION: &str = "gmrf.version";
pub(crate) const KEY_HEIGHT: &str = "gmrf.height";
pub(crate) const KEY_WIDTH: &str = "gmrf.width";
const PARAM_PREFIX: &str = "gmrf.";

/// A table's key-value metadata: its stage, the image shape, and the parameters of the run that
/// produced it (stored as `gmrf.<name>` keys, in sorted order so that output bytes are stable).
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub stage: Stage,
    pub height: usize,
    pub width: usize,
    /// Parameters of the run (seed, noise, input file names, ...), without the `gmrf.` prefix.
    pub params: BTreeMap<String, String>,
}

impl Meta {
    pub fn new(stage: Stage, height: usize, width: usize) -> Self {
        Meta { stage, height, width, params: BTreeMap::new() }
    }

    /// Adds a run parameter (builder style).
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.params.insert(key.to_string(), value.to_string());
        self
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// The metadata as the `(key, value)` pairs of a file's key-value metadata (`gmrf.stage`,
    /// `gmrf.version`, `gmrf.height`, `gmrf.width`, then `gmrf.<param>` in sorted order), for
    /// tools and tests that write a gmrf table with another Parquet writer.
    pub fn key_values(&self) -> Vec<(String, String)> {
        let mut kv = vec![
            (KEY_STAGE.to_string(), self.stage.name().to_string()),
            (KEY_VERSION.to_string(), env!("CARGO_PKG_VERSION").to_string()),
            (KEY_HEIGHT.to_string(), self.height.to_string()),
            (KEY_WIDTH.to_string(), self.width.to_string()),
        ];
        kv.extend(self.params.iter().map(|(k, v)| (format!("{PARAM_PREFIX}{k}"), v.clone())));
        kv
    }

    pub(crate) fn to_key_values(&self) -> Vec<parquet::file::metadata::KeyValue> {
        use parquet::file::metadata::KeyValue;
        self.key_values().into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()
    }

    pub(crate) fn from_key_values(
        path: &Path,
        kv: Option<&Vec<parquet::file::metadata::KeyValue>>,
    ) -> Result<Meta, TableError> {
        let map: BTreeMap<&str, &str> = kv
            .map(|kv| kv.iter().filter_map(|e| e.value.as_deref().map(|v| (e.key.as_str(), v))).collect())
            .unwrap_or_default();
        let stage_name =
            map.get(KEY_STAGE).ok_or_else(|| TableError::NotGmrf { path: path.to_path_buf() })?;
        let stage = Stage::from_name(stage_name).ok_or_else(|| TableError::Metadata {
            path: path.to_path_buf(),
            key: KEY_STAGE.into(),
            problem: format!("unknown stage `{stage_name}`"),
        })?;
        let dimension = |key: &str| -> Result<usize, TableError> {
            let problem =
                |p: String| TableError::Metadata { path: path.to_path_buf(), key: key.into(), problem: p };
            let raw = map.get(key).ok_or_else(|| problem("missing".into()))?;
            match raw.parse::<usize>() {
                Ok(v) if (1..=u16::MAX as usize).contains(&v) => Ok(v),
                _ => Err(problem(format!("`{raw}` is not an image dimension (1 to 65535)"))),
            }
        };
        let height = dimension(KEY_HEIGHT)?;
        let width = dimension(KEY_WIDTH)?;
        let problem = |key: &str, problem: String| TableError::Metadata {
            path: path.to_path_buf(),
            key: key.into(),
            problem,
        };
        // A table without a version (written by hand) is read; one from a newer gmrf is not.
        if let Some(version) = map.get(KEY_VERSION) {
            let ours = env!("CARGO_PKG_VERSION");
            match (parse_version(version), parse_version(ours)) {
                (Some(theirs), Some(mine)) if theirs > mine => {
                    return Err(problem(
                        KEY_VERSION,
                        format!(
                            "written by gmrf {version}, newer than this gmrf ({ours}): update gmrf to read it"
                        ),
                    ));
                }
                (Some(_), _) => {}
                (None, _) => {
                    return Err(problem(KEY_VERSION, format!("`{version}` is not a version (x.y.z)")));
                }
            }
        }
        let params = map
            .iter()
            .filter(|(k, _)| ![KEY_STAGE, KEY_VERSION, KEY_HEIGHT, KEY_WIDTH].contains(k))
            .filter_map(|(k, v)| k.strip_prefix(PARAM_PREFIX).map(|k| (k.to_string(), v.to_string())))
            .collect();
        let meta = Meta { stage, height, width, params };
        meta.scale(path)?;
        Ok(meta)
    }

    /// The `gmrf.scale` of a centred table (pixel values were divided by it), if recorded; an
    /// error naming `path` if it is not a finite number > 0.
    pub fn scale(&self, path: &Path) -> Result<Option<f64>, TableError> {
        let Some(raw) = self.param("scale") else { return Ok(None) };
        match raw.parse::<f64>() {
            Ok(scale) if scale.is_finite() && scale > 0.0 => Ok(Some(scale)),
            _ => Err(TableError::Metadata {
                path: path.to_path_buf(),
                key: format!("{PARAM_PREFIX}scale"),
                problem: format!("`{raw}` is not a finite number > 0 (pixel values are divided by it)"),
            }),
        }
    }
}

/// How the values of a `centred` table relate to the dequantised pixel x = (pixel + u)/scale in
/// (0, 1): before centring, each value is y = t(x). Recorded by `gmrf centre` as the metadata
/// keys `gmrf.transform` (`none` or `logit`) and, for `logit`, `gmrf.alpha`; a table without the
/// key predates the option and is `none`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transform {
    /// y = x.
    None,
    /// y = logit(α + (1 − 2α)x), the logit space of RealNVP (Dinh et al. 2017) and MAF
    /// (Papamakarios et al. 2017), with 0 < α < ½ keeping y finite.
    Logit { alpha: f64 },
}

impl Transform {
    /// The metadata key of the transform's name.
    pub const KEY: &'static str = "transform";
    /// The metadata key of the logit's α.
    pub const ALPHA_KEY: &'static str = "alpha";

    pub fn name(self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Logit { .. } => "logit",
        }
    }

    /// The transform recorded in `meta` (`none` when it records none), or what is wrong with it.
    pub fn from_meta(meta: &Meta) -> Result<Transform, String> {
        match meta.param(Self::KEY) {
            None | Some("none") => Ok(Transform::None),
            Some("logit") => {
                let raw =
                    meta.param(Self::ALPHA_KEY).ok_or("gmrf.transform is logit but gmrf.alpha is missing")?;
                let alpha = raw.parse().map_err(|_| format!("gmrf.alpha `{raw}` is not a number"))?;
                Transform::logit(alpha)
            }
            Some(other) => Err(format!("unknown gmrf.transform `{other}` (expected none or logit)")),
        }
    }

    /// The logit transform, checking 0 < α < ½.
    pub fn logit(alpha: f64) -> Result<Transform, String> {
        if alpha > 0.0 && alpha < 0.5 {
            Ok(Transform::Logit { alpha })
        } else {
            Err(format!("the logit's alpha must lie in (0, 0.5), got {alpha}"))
        }
    }

    /// `meta` with this transform recorded.
    pub fn record(self, meta: Meta) -> Meta {
        match self {
            Transform::None => meta.with(Self::KEY, "none"),
            Transform::Logit { alpha } => meta.with(Self::KEY, "logit").with(Self::ALPHA_KEY, alpha),
        }
    }

    /// y = t(x).
    pub fn forward(self, x: f64) -> f64 {
        match self {
            Transform::None => x,
            Transform::Logit { alpha } => {
                let z = alpha + (1.0 - 2.0 * alpha) * x;
                (z / (1.0 - z)).ln()
            }
        }
    }

    /// x = t⁻¹(y): for the logit, (σ(y) − α)/(1 − 2α).
    pub fn inverse(self, y: f64) -> f64 {
        match self {
            Transform::None => y,
            Transform::Logit { alpha } => (1.0 / (1.0 + (-y).exp()) - alpha) / (1.0 - 2.0 * alpha),
        }
    }

    /// log |dy/dx| at the transformed value y. For the logit, dy/dx = (1 − 2α)/(z(1 − z)) with
    /// z = σ(y), and −log z = softplus(−y), −log(1 − z) = softplus(y), which never overflow.
    pub fn log_jacobian(self, y: f64) -> f64 {
        let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
        match self {
            Transform::None => 0.0,
            Transform::Logit { alpha } => (1.0 - 2.0 * alpha).ln() + softplus(y) + softplus(-y),
        }
    }
}
