//! Vector norms and L2 clipping of updates.

/// Euclidean norm, accumulated in `f64` so long vectors keep their precision.
pub fn l2_norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Scales `v` in place so that `||v||_2 <= bound`; returns the norm before
/// clipping. Vectors already within the bound are left untouched.
///
/// # Panics
/// If `bound` is not finite and positive (a configuration error the task spec
/// validation rules out).
pub fn clip_l2(v: &mut [f32], bound: f32) -> f64 {
    assert!(
        bound.is_finite() && bound > 0.0,
        "clip bound must be finite and positive"
    );
    let norm = l2_norm(v);
    if norm > f64::from(bound) {
        let scale = (f64::from(bound) / norm) as f32;
        v.iter_mut().for_each(|x| *x *= scale);
    }
    norm
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
        let mut short = [0.3f32, 0.4];
        clip_l2(&mut short, 1.0);
        assert_eq!(short, [0.3, 0.4]);
    }
}
