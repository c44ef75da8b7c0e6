//! The neighbourhood pattern: which entries of Λ may be non-zero on an h × w pixel grid.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use crate::ModelError;
use crate::cholesky::Symbolic;

/// Which pixels couple to which: a set of grid offsets, closed under negation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Neighbourhood {
    /// Up, down, left, right (`"4"`).
    Four,
    /// The 4 neighbours plus the diagonals (`"8"`).
    Eight,
    /// Every offset (di, dj) ≠ 0 with di² + dj² ≤ r² (`"r<radius>"`, e.g. `"r2"`); radius 1 is
    /// [`Neighbourhood::Four`], radius √2 is [`Neighbourhood::Eight`].
    Radius(f64),
}

impl Neighbourhood {
    /// The offsets (di, dj) of a pixel's neighbours in the forward half plane (di > 0, or di = 0
    /// and dj > 0), sorted by (di, dj), i.e. by increasing row-major index distance. The other
    /// half are their negations.
    pub fn forward_offsets(&self) -> Vec<(i32, i32)> {
        let r2 = match *self {
            Neighbourhood::Four => 1.0,
            Neighbourhood::Eight => 2.0,
            Neighbourhood::Radius(r) => r * r,
        };
        // Small tolerance so that `Radius(2f64.sqrt())` includes the diagonals.
        let r2 = r2 * (1.0 + 1e-12);
        let reach = r2.sqrt().floor() as i32;
        let mut out = Vec::new();
        for di in 0..=reach {
            for dj in -reach..=reach {
                if (di == 0 && dj <= 0) || f64::from(di * di + dj * dj) > r2 {
                    continue;
                }
                out.push((di, dj));
            }
        }
        out
    }
}

impl fmt::Display for Neighbourhood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Neighbourhood::Four => write!(f, "4"),
            Neighbourhood::Eight => write!(f, "8"),
            Neighbourhood::Radius(r) => write!(f, "r{r}"),
        }
    }
}

impl FromStr for Neighbourhood {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "4" => Ok(Neighbourhood::Four),
            "8" => Ok(Neighbourhood::Eight),
            _ => match s.strip_prefix('r').and_then(|r| r.parse::<f64>().ok()) {
                Some(r) if r.is_finite() && r >= 1.0 => Ok(Neighbourhood::Radius(r)),
                _ => Err(ModelError::BadNeighbourhood(s.to_string())),
            },
        }
    }
}

/// One stored entry of Λ: the pair (i, j), i ≤ j, and the offset of pixel j from pixel i
/// (di ≥ 0, and dj > 0 when di = 0; the diagonal has di = dj = 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Row-major index of the first pixel.
    pub i: u32,
    /// Row-major index of the second pixel, j ≥ i.
    pub j: u32,
    /// Row offset of j from i.
    pub di: i8,
    /// Column offset of j from i.
    pub dj: i8,
}

impl Entry {
    /// True for Λᵢᵢ.
    pub fn is_diagonal(&self) -> bool {
        self.i == self.j
    }

    /// How many entries of the symmetric matrix this stored entry sets: 1 on the diagonal, 2
    /// (Λᵢⱼ and Λⱼᵢ) off it. It is the factor between a derivative with respect to the stored
    /// value and the matrix derivative: ∂f/∂θₑ = mₑ (∂f/∂Λ)ᵢⱼ for symmetric ∂f/∂Λ.
    pub fn multiplicity(&self) -> f64 {
        if self.is_diagonal() { 1.0 } else { 2.0 }
    }
}

/// The neighbourhood pattern on an h × w grid, pixels row-major (index = row·w + col).
///
/// Its entries are the upper triangle of Λ with the diagonal, in canonical order: sorted by
/// (i, j). For each pixel i: first the diagonal, then its forward neighbours by increasing j.
/// Cheap to clone (shared), and caches the symbolic Cholesky analysis, which every numeric
/// factorisation on this pattern reuses.
#[derive(Clone)]
pub struct Pattern {
    inner: Arc<PatternInner>,
}

struct PatternInner {
    height: usize,
    width: usize,
    neighbourhood: Neighbourhood,
    entries: Vec<Entry>,
    /// `row_ptr[i]..row_ptr[i + 1]` are the entries with first pixel i; the first is (i, i).
    row_ptr: Vec<usize>,
    /// Largest j − i: the half bandwidth of Λ, and of its Cholesky factor.
    bandwidth: usize,
    symbolic: OnceLock<Symbolic>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("height", &self.height())
            .field("width", &self.width())
            .field("neighbourhood", &self.neighbourhood())
            .field("len", &self.len())
            .finish()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.height() == other.height()
                && self.width() == other.width()
                && self.entries() == other.entries())
    }
}

impl Pattern {
    /// The pattern of `neighbourhood` on a `height` × `width` grid.
    pub fn new(height: usize, width: usize, neighbourhood: Neighbourhood) -> Result<Self, ModelError> {
        let d = height * width;
        if d == 0 || d > u32::MAX as usize {
            return Err(ModelError::BadShape { height, width });
        }
        let offsets = neighbourhood.forward_offsets();
        if offsets.iter().any(|&(di, dj)| di > i32::from(i8::MAX) || dj.abs() > i32::from(i8::MAX)) {
            return Err(ModelError::BadNeighbourhood(neighbourhood.to_string()));
        }
        let mut entries = Vec::with_capacity(d * (offsets.len() + 1));
        let mut row_ptr = Vec::with_capacity(d + 1);
        let mut bandwidth = 0;
        for r in 0..height {
            for c in 0..width {
                let i = r * width + c;
                row_ptr.push(entries.len());
                entries.push(Entry { i: i as u32, j: i as u32, di: 0, dj: 0 });
                for &(di, dj) in &offsets {
                    let (r2, c2) = (r as i64 + i64::from(di), c as i64 + i64::from(dj));
                    if r2 < height as i64 && c2 >= 0 && c2 < width as i64 {
                        let j = r2 as usize * width + c2 as usize;
                        bandwidth = bandwidth.max(j - i);
                        entries.push(Entry { i: i as u32, j: j as u32, di: di as i8, dj: dj as i8 });
                    }
                }
            }
        }
        row_ptr.push(entries.len());
        Ok(Pattern {
            inner: Arc::new(PatternInner {
                height,
                width,
                neighbourhood,
                entries,
                row_ptr,
                bandwidth,
                symbolic: OnceLock::new(),
            }),
        })
    }

    /// Grid height h.
    pub fn height(&self) -> usize {
        self.inner.height
    }

    /// Grid width w.
    pub fn width(&self) -> usize {
        self.inner.width
    }

    /// Number of pixels d = h·w, the dimension of Λ.
    pub fn dim(&self) -> usize {
        self.inner.height * self.inner.width
    }

    /// The neighbourhood this pattern was built from.
    pub fn neighbourhood(&self) -> Neighbourhood {
        self.inner.neighbourhood
    }

    /// The stored entries in canonical order.
    pub fn entries(&self) -> &[Entry] {
        &self.inner.entries
    }

    /// Number of stored entries (free parameters of Λ).
    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    /// Never true: every pattern stores at least the diagonal.
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// Half bandwidth b = max (j − i) of Λ in row-major order.
    pub fn bandwidth(&self) -> usize {
        self.inner.bandwidth
    }

    /// Positions of the entries whose first pixel is `i`; the first is the diagonal (i, i).
    pub fn row_range(&self, i: usize) -> std::ops::Range<usize> {
        self.inner.row_ptr[i]..self.inner.row_ptr[i + 1]
    }

    /// Position of the diagonal entry (i, i).
    pub fn diagonal_position(&self, i: usize) -> usize {
        self.inner.row_ptr[i]
    }

    /// Position of the entry (i, j) or (j, i) in canonical order, if it is in the pattern.
    pub fn position(&self, i: usize, j: usize) -> Option<usize> {
        let (i, j) = if i <= j { (i, j) } else { (j, i) };
        let range = self.row_range(i);
        self.inner.entries[range.clone()].iter().position(|e| e.j as usize == j).map(|k| range.start + k)
    }

    /// Where the entries go in the band of a Cholesky factor, computed once and shared by clones.
    pub(crate) fn symbolic(&self) -> &Symbolic {
        self.inner.symbolic.get_or_init(|| Symbolic::new(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_and_eight_neighbour_patterns_have_the_expected_entry_counts() {
        // d diagonal entries + h(w−1) horizontal + (h−1)w vertical (+ 2(h−1)(w−1) diagonal).
        let p4 = Pattern::new(28, 28, Neighbourhood::Four).unwrap();
        assert_eq!(p4.len(), 784 + 2 * 28 * 27);
        assert_eq!(p4.len(), 2296);
        let p8 = Pattern::new(28, 28, Neighbourhood::Eight).unwrap();
        assert_eq!(p8.len(), 2296 + 2 * 27 * 27);
        assert_eq!(p8.len(), 3754);
        assert_eq!(p4.bandwidth(), 28);
        assert_eq!(p8.bandwidth(), 29);
    }

    #[test]
    fn radius_one_and_root_two_equal_four_and_eight() {
        assert_eq!(Neighbourhood::Radius(1.0).forward_offsets(), Neighbourhood::Four.forward_offsets());
        assert_eq!(
            Neighbourhood::Radius(2f64.sqrt()).forward_offsets(),
            Neighbourhood::Eight.forward_offsets()
        );
        // Radius 2: the 12 offsets with di² + dj² ≤ 4, half of them forward.
        assert_eq!(Neighbourhood::Radius(2.0).forward_offsets().len(), 6);
    }

    #[test]
    fn entries_are_in_canonical_order_with_consistent_offsets() {
        let (h, w) = (4, 5);
        let p = Pattern::new(h, w, Neighbourhood::Radius(2.0)).unwrap();
        let e = p.entries();
        assert!(e.windows(2).all(|x| (x[0].i, x[0].j) < (x[1].i, x[1].j)));
        for x in e {
            let (ri, ci) = (x.i as i64 / w as i64, x.i as i64 % w as i64);
            let (rj, cj) = (x.j as i64 / w as i64, x.j as i64 % w as i64);
            assert_eq!((rj - ri, cj - ci), (i64::from(x.di), i64::from(x.dj)));
            assert!(x.di > 0 || (x.di == 0 && x.dj >= 0));
            assert_eq!(x.di == 0 && x.dj == 0, x.is_diagonal());
        }
        for i in 0..h * w {
            assert_eq!(e[p.diagonal_position(i)].j as usize, i);
        }
        assert_eq!(p.position(6, 1), p.position(1, 6));
        assert_eq!(p.position(0, 19), None);
    }

    #[test]
    fn neighbourhood_names_round_trip() {
        for n in [Neighbourhood::Four, Neighbourhood::Eight, Neighbourhood::Radius(2.5)] {
            assert_eq!(n.to_string().parse::<Neighbourhood>().unwrap(), n);
        }
        assert!("5".parse::<Neighbourhood>().is_err());
    }
}
