//! Λθ as the `precision` table of design.md: its stored entries, one row each, in canonical order.

use std::path::Path;

use gmrf_table::{Meta, PrecisionEntries};

use crate::{ModelError, Neighbourhood, Pattern, Precision};

impl Precision {
    /// The stored entries of Λ (upper triangle with diagonal) as the `precision` table.
    pub fn to_table(&self) -> PrecisionEntries {
        let pattern = self.pattern();
        let entries = pattern.entries();
        PrecisionEntries {
            height: pattern.height(),
            width: pattern.width(),
            i: entries.iter().map(|e| e.i as u16).collect(),
            j: entries.iter().map(|e| e.j as u16).collect(),
            di: entries.iter().map(|e| e.di).collect(),
            dj: entries.iter().map(|e| e.dj).collect(),
            value: self.values().to_vec(),
        }
    }

    /// Λ from a `precision` table read from `path`: the pattern comes from the `neighbourhood` in
    /// its metadata, and the rows must be exactly that pattern's entries in canonical order.
    pub fn from_table(path: &Path, table: &PrecisionEntries, meta: &Meta) -> Result<Self, ModelError> {
        let bad = |problem: String| ModelError::BadTable { path: path.to_path_buf(), problem };
        let neighbourhood: Neighbourhood = meta
            .param("neighbourhood")
            .ok_or_else(|| bad("its metadata has no gmrf.neighbourhood".into()))?
            .parse()?;
        let pattern = Pattern::new(table.height, table.width, neighbourhood)?;
        if table.value.len() != pattern.len() {
            return Err(bad(format!(
                "{} rows, but a {neighbourhood}-neighbour pattern on a {}x{} grid has {} entries",
                table.value.len(),
                table.height,
                table.width,
                pattern.len()
            )));
        }
        if let Some(k) = pattern
            .entries()
            .iter()
            .enumerate()
            .position(|(k, e)| (e.i as u16, e.j as u16) != (table.i[k], table.j[k]))
        {
            let e = pattern.entries()[k];
            return Err(bad(format!(
                "row {k} holds entry ({}, {}) where the pattern's canonical order has ({}, {})",
                table.i[k], table.j[k], e.i, e.j
            )));
        }
        Precision::new(pattern, table.value.clone())
    }
}
