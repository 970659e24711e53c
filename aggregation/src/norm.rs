//! Vector norms and L2 clipping of updates.

/// Euclidean norm, accumulated in `f64` so long vectors keep their precision.
pub fn l2_norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Scales `v` in place so that `||v||_2 <= bound` as [`l2_norm`] measures
/// it, and returns the norm before. A plain rescale by `bound / norm` can land
/// a rounding error above `bound`, and the coordinator rejects anything above
/// it, so the scale shrinks by one `f32` epsilon per retry until the vector
/// fits. Vectors within the bound, and non-finite ones, are left untouched.
///
/// # Panics
/// If `bound` is not finite and positive (a configuration error the task spec
/// validation rules out).
pub fn clip_l2(v: &mut [f32], bound: f32) -> f64 {
    /// Rescales after the first; two or three suffice.
    const MAX_RESCALES: usize = 8;
    assert!(
        bound.is_finite() && bound > 0.0,
        "clip bound must be finite and positive"
    );
    let bound = f64::from(bound);
    let original = l2_norm(v);
    if !original.is_finite() {
        return original;
    }
    let mut norm = original;
    let mut margin = 1.0;
    for _ in 0..MAX_RESCALES {
        if norm <= bound {
            return original;
        }
        let factor = bound / norm * margin;
        v.iter_mut()
            .for_each(|x| *x = (f64::from(*x) * factor) as f32);
        norm = l2_norm(v);
        margin = 1.0 - f64::from(f32::EPSILON);
    }
    if norm > bound {
        // Only reachable for bounds near the smallest floats: zero fits.
        v.fill(0.0);
    }
    original
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_long_vectors_only() {
        let mut v = [3.0f32, 4.0];
        assert_eq!(clip_l2(&mut v, 1.0), 5.0);
        assert!((l2_norm(&v) - 1.0).abs() < 1e-6);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(l2_norm(&v) <= 1.0);
        let mut short = [0.3f32, 0.4];
        clip_l2(&mut short, 1.0);
        assert_eq!(short, [0.3, 0.4]);
    }

    #[test]
    fn clipped_vectors_never_overshoot_the_bound() {
        // Deterministic pseudo-random vectors of many lengths and scales.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for trial in 0..500 {
            let dim = 1 + trial % 97;
            let mut v: Vec<f32> = (0..dim).map(|_| (1e3 * (next() - 0.5)) as f32).collect();
            let bound = (1e-3 + 10.0 * next()) as f32;
            let before = l2_norm(&v);
            assert_eq!(clip_l2(&mut v, bound), before);
            let after = l2_norm(&v);
            if before > f64::from(bound) {
                assert!(after <= f64::from(bound), "{after} > {bound}");
                assert!(after > f64::from(bound) * (1.0 - 1e-5));
            }
        }
    }
}
