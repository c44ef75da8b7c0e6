//! Linear algebra on the pattern's free entries θ (one value per stored entry of the upper
//! triangle with diagonal, canonical order): which entries touch a pixel, and sparse symmetric
//! operators on θ.

use gmrf_model::Pattern;

/// For each pixel p, the stored entries containing p: (other pixel, canonical position).
#[derive(Clone, Debug)]
pub(crate) struct Adjacency {
    ptr: Vec<usize>,
    items: Vec<(usize, usize)>,
}

impl Adjacency {
    pub(crate) fn new(pattern: &Pattern) -> Self {
        let d = pattern.dim();
        let mut lists: Vec<Vec<(usize, usize)>> = vec![Vec::new(); d];
        for (k, e) in pattern.entries().iter().enumerate() {
            let (i, j) = (e.i as usize, e.j as usize);
            lists[i].push((j, k));
            if i != j {
                lists[j].push((i, k));
            }
        }
        let mut ptr = vec![0];
        let mut items = Vec::new();
        for mut l in lists {
            l.sort_unstable();
            items.extend(l);
            ptr.push(items.len());
        }
        Adjacency { ptr, items }
    }

    /// (q, position) for every stored entry (p, q) or (q, p), sorted by q.
    pub(crate) fn of(&self, p: usize) -> &[(usize, usize)] {
        &self.items[self.ptr[p]..self.ptr[p + 1]]
    }
}

/// A sparse symmetric matrix in compressed rows (both triangles stored).
#[derive(Clone, Debug)]
pub(crate) struct SparseSymmetric {
    pub(crate) ptr: Vec<usize>,
    pub(crate) cols: Vec<usize>,
    pub(crate) vals: Vec<f64>,
}

impl SparseSymmetric {
    pub(crate) fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.ptr.len() - 1)
            .map(|r| (self.ptr[r]..self.ptr[r + 1]).map(|k| self.vals[k] * v[self.cols[k]]).sum())
            .collect()
    }

    pub(crate) fn diagonal(&self) -> Vec<f64> {
        (0..self.ptr.len() - 1)
            .map(|r| {
                (self.ptr[r]..self.ptr[r + 1]).find(|&k| self.cols[k] == r).map_or(0.0, |k| self.vals[k])
            })
            .collect()
    }

    /// Adds rows f..n of column f to `out` (n − f values): the matrix is symmetric, so its row f
    /// holds column f.
    pub(crate) fn add_column_below(&self, f: usize, out: &mut [f64]) {
        for p in self.ptr[f]..self.ptr[f + 1] {
            if self.cols[p] >= f {
                out[self.cols[p] - f] += self.vals[p];
            }
        }
    }
}

/// max over the pattern of |g|ₑ / mₑ: the largest gradient in entries of Λ rather than in θ.
pub(crate) fn max_entry_gradient(pattern: &Pattern, g: &[f64]) -> f64 {
    g.iter().zip(pattern.entries()).map(|(g, e)| g.abs() / e.multiplicity()).fold(0.0, f64::max)
}
