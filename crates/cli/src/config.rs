//! Pipeline parameters from `pipelines/*.toml`: one section per stage (`[ingest]`, `[centre]`,
//! `[estimate]`, `[evaluate]`), the same names as the flags (with `_` for `-`). Flags layer over
//! the file in one place, [`merge`]: both sides as TOML tables, the flags' over the file's, then
//! deserialised into the stage's parameters. An unknown section or key, or a key outside any
//! section, is an error naming the file and the key, so a typo is never silently ignored.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The sections a pipeline file may have: one per stage that takes parameters.
pub const SECTIONS: [&str; 4] = ["ingest", "centre", "estimate", "evaluate"];

/// A pipeline file, read and checked: every top-level item is a known section.
pub struct Pipeline {
    path: PathBuf,
    sections: toml::Table,
}

impl Pipeline {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let sections: toml::Table = toml::from_str(&text).map_err(|e| {
            let place = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {column}")
            });
            anyhow!(
                "{}: not valid TOML{}: {}",
                path.display(),
                place.unwrap_or_default(),
                one_line(e.message())
            )
        })?;
        for (key, value) in &sections {
            if !value.is_table() {
                bail!(
                    "{}: `{key}` is outside any section (put it under one of [{}])",
                    path.display(),
                    SECTIONS.join("], [")
                );
            }
            if !SECTIONS.contains(&key.as_str()) {
                bail!(
                    "{}: unknown section [{key}] (the sections are [{}])",
                    path.display(),
                    SECTIONS.join("], [")
                );
            }
        }
        Ok(Pipeline { path: path.to_path_buf(), sections })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Section `name`'s keys (empty if the file has no such section).
    pub fn section(&self, name: &str) -> toml::Table {
        self.sections.get(name).and_then(|v| v.as_table()).cloned().unwrap_or_default()
    }
}

/// `flags` over `file`: every key the flags set (a `None` field sets nothing) replaces the file's,
/// and the result is deserialised into `T`. `place` names the file and section in errors.
pub fn merge<T: Serialize + DeserializeOwned>(flags: T, file: toml::Table, place: &str) -> anyhow::Result<T> {
    let flags =
        toml::Table::try_from(&flags).map_err(|e| anyhow!("{place}: {}", one_line(&e.to_string())))?;
    let mut merged = file;
    merged.extend(flags);
    T::deserialize(toml::Value::Table(merged.clone())).map_err(|e| {
        // Serde's message names an unknown key but not a key whose value is wrong: find that key
        // by deserialising each alone (every field is optional, so only a wrong value fails).
        let wrong = merged.iter().find(|(key, value)| {
            let alone = toml::Table::from_iter([((*key).clone(), (*value).clone())]);
            T::deserialize(toml::Value::Table(alone)).is_err()
        });
        match wrong {
            Some((key, value)) if !e.message().contains(&format!("`{key}`")) => {
                anyhow!("{place}: {key} = {value}: {}", one_line(e.message()))
            }
            _ => anyhow!("{place}: {}", one_line(e.message())),
        }
    })
}

/// The parameters of a stage: its flags over its pipeline file's section `name`, if any.
pub fn resolve<T: Serialize + DeserializeOwned>(
    flags: T,
    config: Option<&Path>,
    name: &str,
) -> anyhow::Result<T> {
    match config {
        Some(path) => {
            let pipeline = Pipeline::read(path)?;
            merge(flags, pipeline.section(name), &format!("{}: section [{name}]", pipeline.path().display()))
        }
        None => Ok(flags),
    }
}

/// A message on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Serde for an optional value written as its name: [`Display`](std::fmt::Display) out,
/// [`FromStr`](std::str::FromStr) in (`#[serde(default, with = "crate::config::text")]`), for the
/// library's enums and the neighbourhood.
pub mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<T: Display, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        // A TOML integer is accepted too: `neighbourhood = 8` means "8".
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Integer(i64),
        }
        Option::<Raw>::deserialize(deserializer)?
            .map(|raw| {
                let text = match raw {
                    Raw::Text(text) => text,
                    Raw::Integer(n) => n.to_string(),
                };
                text.parse().map_err(|e| D::Error::custom(format!("`{text}`: {e}")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{CentreParams, NoiseKind};

    /// A pipeline file holding `text`, removed when dropped.
    struct File(PathBuf);

    impl File {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn write(text: &str) -> File {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("gmrf-config-test-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        File(path)
    }

    #[test]
    fn flags_override_the_file_and_absent_flags_keep_its_values() {
        let file = write("[centre]\nseed = 3\nnoise = \"gaussian\"\nnoise_std = 0.5\n");
        let flags = CentreParams { seed: Some(7), noise: None, ..CentreParams::default() };
        let merged = resolve(flags, Some(file.path()), "centre").unwrap();
        assert_eq!(merged.seed, Some(7));
        assert_eq!(merged.noise, Some(NoiseKind::Gaussian));
        assert_eq!(merged.noise_std, Some(0.5));
    }

    #[test]
    fn unknown_sections_keys_outside_sections_and_unknown_keys_name_the_file_and_key() {
        for (text, expected) in [
            ("[estimat]\nseed = 1\n", "unknown section [estimat]"),
            ("[bogus]\n", "unknown section [bogus]"),
            ("seed = 1\n[centre]\n", "`seed` is outside any section"),
            ("[centre]\nsed = 1\n", "[centre]: unknown field `sed`"),
            ("[centre]\nseed = \"x\"\n", "[centre]: seed = \"x\": invalid type: string \"x\", expected u64"),
            ("[centre\n", "not valid TOML at line 1, column"),
        ] {
            let file = write(text);
            let error =
                resolve(CentreParams::default(), Some(file.path()), "centre").unwrap_err().to_string();
            assert!(error.starts_with(&file.path().display().to_string()), "{error}");
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
