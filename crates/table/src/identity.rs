//! Stable keys for an image's identity (`source`, `id`), shared by every stage that needs
//! randomness or a split that must not depend on row order, thread count or other rows.

/// 64-bit FNV-1a: a stable hash (unlike std's `DefaultHasher`, which may change between
/// Rust releases), so seeds and splits derived from it are the same on every machine.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Whether the image (`source`, `id`) falls in a held-out fraction `fraction` of its table,
/// decided by a stable hash of (seed, source, id) alone.
pub fn in_holdout(seed: u64, source: &str, id: u32, fraction: f64) -> bool {
    let key = mix(stable_hash(format!("{seed}\u{1f}{source}\u{1f}{id}").as_bytes()));
    // The top 53 bits as a uniform number in [0, 1).
    ((key >> 11) as f64) / ((1u64 << 53) as f64) < fraction
}

/// The SplitMix64 finaliser: FNV-1a's high bits barely change when short keys differ in their
/// last bytes (ids 0, 1, 2, ...), so mix every bit into them before thresholding.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_published_test_vectors() {
        // From the FNV reference test suite (Fowler, Noll, Vo).
        assert_eq!(stable_hash(b""), 0xcbf29ce484222325);
        assert_eq!(stable_hash(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn holdout_takes_about_the_requested_fraction() {
        let n = 20_000;
        let held = (0..n).filter(|&id| in_holdout(3, "train", id, 0.1)).count() as f64;
        // Binomial(20000, 0.1): standard deviation ≈ 42; allow 5 of them.
        assert!((held - 2000.0).abs() < 5.0 * 42.5, "{held}");
        assert_eq!((0..n).filter(|&id| in_holdout(3, "train", id, 0.0)).count(), 0);
    }
}
