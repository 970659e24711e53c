//! Kernels the rules share: contiguous access to the rows, distances and dot
//! products accumulated in `f64`, and linear combinations of rows.
//!
//! Everything runs in parallel over fixed chunks of coordinates. The chunks do
//! not depend on the number of threads and partial sums are added in chunk
//! order, so every result is bit-for-bit reproducible on any machine.

use std::borrow::Cow;
use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::AggregationError;

/// Coordinates per parallel task: the rows of one chunk (n x 16 KiB) stay in
/// L2 while every pair of rows is compared over it.
pub(crate) const CHUNK: usize = 4096;

/// A reduction keeps at most this many partial results (one per group of
/// consecutive chunks) so its memory does not grow with the dimension.
const MAX_GROUPS: usize = 32;

/// Independent f32 accumulators in the inner loops, enough for the compiler to
/// vectorize them.
const LANES: usize = 16;

/// Coordinates summed in f32 before the partial sum moves to f64: few enough
/// terms per lane that f32 rounding stays negligible.
const BLOCK: usize = 256;

/// The updates as contiguous rows, borrowed when the view already is in
/// standard layout and copied once otherwise.
pub(crate) struct Rows<'a> {
    values: Cow<'a, [f32]>,
    count: usize,
    dim: usize,
}

impl<'a> Rows<'a> {
    /// The rows of `updates`.
    pub(crate) fn new(updates: ArrayView2<'a, f32>) -> Self {
        let (count, dim) = updates.dim();
        let values = match updates.to_slice() {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(updates.iter().copied().collect()),
        };
        Self { values, count, dim }
    }

    /// Number of rows (inputs).
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Length of each row.
    pub(crate) fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i`.
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// All rows, one after the other.
    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }
}

/// `vector` as a contiguous slice, copied only if the view is strided.
pub(crate) fn contiguous(vector: ArrayView1<'_, f32>) -> Cow<'_, [f32]> {
    match vector.to_slice() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(vector.to_vec()),
    }
}

/// Sums `len` quantities over all coordinates `0..dim`: `accumulate` adds the
/// contribution of one chunk of coordinates to its accumulators. Groups of
/// chunks run in parallel and are added in order.
pub(crate) fn sum_over_coordinates<F>(dim: usize, len: usize, accumulate: F) -> Vec<f64>
where
    F: Fn(Range<usize>, &mut [f64]) + Sync,
{
    let group = dim.div_ceil(CHUNK).div_ceil(MAX_GROUPS).max(1) * CHUNK;
    let partials: Vec<Vec<f64>> = (0..dim.div_ceil(group))
        .into_par_iter()
        .map(|g| {
            let mut sums = vec![0.0; len];
            let end = dim.min((g + 1) * group);
            for start in (g * group..end).step_by(CHUNK) {
                accumulate(start..end.min(start + CHUNK), &mut sums);
            }
            sums
        })
        .collect();
    partials
        .into_iter()
        .reduce(|mut total, partial| {
            total.iter_mut().zip(&partial).for_each(|(t, p)| *t += p);
            total
        })
        .unwrap_or_else(|| vec![0.0; len])
}

/// `sum_k term(a_k, b_k)`, in f32 lanes over short blocks and f64 across
/// blocks. A block whose f32 sum overflows (finite inputs near `f32::MAX`) is
/// summed again in f64, so huge adversarial values give large finite results,
/// never infinity or NaN.
#[inline]
fn paired_sum(
    a: &[f32],
    b: &[f32],
    term: impl Fn(f32, f32) -> f32,
    wide: impl Fn(f64, f64) -> f64,
) -> f64 {
    let mut total = 0.0;
    for (a, b) in a.chunks(BLOCK).zip(b.chunks(BLOCK)) {
        let mut lanes = [0.0f32; LANES];
        let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = a_lanes
            .remainder()
            .iter()
            .zip(b_lanes.remainder())
            .map(|(&x, &y)| term(x, y))
            .sum();
        for (x, y) in a_lanes.zip(b_lanes) {
            for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
                *lane += term(x, y);
            }
        }
        let block = lanes.iter().map(|&s| f64::from(s)).sum::<f64>() + f64::from(tail);
        total += if block.is_finite() {
            block
        } else {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| wide(f64::from(x), f64::from(y)))
                .sum()
        };
    }
    total
}

/// `||a - b||^2`.
pub(crate) fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    paired_sum(a, b, |x, y| (x - y) * (x - y), |x, y| (x - y) * (x - y))
}

/// `<a, b>`.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f64 {
    paired_sum(a, b, |x, y| x * y, |x, y| x * y)
}

/// The index of the first NaN or infinite value, searched in parallel.
fn first_non_finite(values: &[f32]) -> Option<usize> {
    values
        .par_chunks(CHUNK)
        .enumerate()
        // Without an early exit the test of a whole chunk vectorizes; only a
        // failing chunk is searched value by value.
        .filter(|(_, chunk)| !chunk.iter().fold(true, |ok, v| ok & v.is_finite()))
        .find_map_first(|(c, chunk)| {
            chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| c * CHUNK + i)
        })
}

/// The error naming the first NaN or infinite value of `rows`, if any.
pub(crate) fn non_finite(rows: &Rows) -> Option<AggregationError> {
    first_non_finite(rows.values()).map(|index| AggregationError::NonFinite {
        input: index / rows.dim(),
        coordinate: index % rows.dim(),
    })
}

/// The error naming the first NaN or infinite value of `rows`, for a caller
/// whose own pass over them saw one.
pub(crate) fn non_finite_seen(rows: &Rows) -> AggregationError {
    non_finite(rows).unwrap_or(AggregationError::NonFinite {
        input: 0,
        coordinate: 0,
    })
}

/// The Euclidean norm of every row.
pub(crate) fn norms(rows: &Rows) -> Vec<f64> {
    let squared = sum_over_coordinates(rows.dim(), rows.count(), |range, sums| {
        for (i, sum) in sums.iter_mut().enumerate() {
            let row = &rows.row(i)[range.clone()];
            *sum += dot(row, row);
        }
    });
    squared.into_iter().map(f64::sqrt).collect()
}

/// The Euclidean distance of every row to `center`.
pub(crate) fn distances_to(rows: &Rows, center: &[f32]) -> Vec<f64> {
    let squared = sum_over_coordinates(rows.dim(), rows.count(), |range, sums| {
        let center = &center[range.clone()];
        for (i, sum) in sums.iter_mut().enumerate() {
            *sum += squared_distance(&rows.row(i)[range.clone()], center);
        }
    });
    squared.into_iter().map(f64::sqrt).collect()
}

/// `sum_i coefficients[i] * row_i`, accumulated in f32 in row order. Rows
/// with a zero coefficient are not read.
pub(crate) fn linear_combination(rows: &Rows, coefficients: &[f32]) -> Vec<f32> {
    combine(rows, coefficients, false).0
}

/// [`linear_combination`], checking while it reads that every value of every
/// row (zero coefficients too) is finite: `None` if one is not. One pass over
/// the input where a separate check would make two.
pub(crate) fn checked_linear_combination(rows: &Rows, coefficients: &[f32]) -> Option<Vec<f32>> {
    let (combined, finite) = combine(rows, coefficients, true);
    finite.then_some(combined)
}

/// The linear combination, and whether the rows read were all finite when
/// `check` asks to read every row.
fn combine(rows: &Rows, coefficients: &[f32], check: bool) -> (Vec<f32>, bool) {
    let mut out = vec![0.0f32; rows.dim()];
    let finite = out
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(chunk, acc)| {
            let span = chunk * CHUNK..chunk * CHUNK + acc.len();
            let mut finite = true;
            for (i, &c) in coefficients.iter().enumerate() {
                let values = &rows.row(i)[span.clone()];
                if check {
                    // A fold without an early exit vectorizes.
                    finite &= values.iter().fold(true, |ok, v| ok & v.is_finite());
                }
                if c != 0.0 {
                    for (a, &u) in acc.iter_mut().zip(values) {
                        *a += c * u;
                    }
                }
            }
            finite
        })
        .reduce(|| true, |a, b| a & b);
    (out, finite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn sums_match_f64_references_across_blocks_and_chunks() {
        let d = CHUNK * 3 + 77;
        let a: Vec<f32> = (0..d)
            .map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5)
            .collect();
        let b: Vec<f32> = (0..d)
            .map(|i| ((i * 53) % 97) as f32 * 0.02 - 1.0)
            .collect();
        let reference_dot: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        let reference_distance: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        assert!((dot(&a, &b) - reference_dot).abs() < 1e-6 * reference_dot.abs().max(1.0));
        assert!((squared_distance(&a, &b) - reference_distance).abs() < 1e-6 * reference_distance);
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let a = [3.0e38f32, -3.0e38];
        let b = [-3.0e38f32, 3.0e38];
        let distance = squared_distance(&a, &b);
        assert!(distance.is_finite() && distance > 7.0e77);
        assert!(dot(&a, &b).is_finite());
    }

    #[test]
    fn strided_views_are_copied_into_rows() {
        let columns = Array2::from_shape_fn((3, 2), |(i, j)| (i * 10 + j) as f32);
        let rows = Rows::new(columns.t());
        assert_eq!((rows.count(), rows.dim()), (2, 3));
        assert_eq!(rows.row(1), &[1.0, 11.0, 21.0]);
    }

    #[test]
    fn linear_combination_skips_zero_coefficients() {
        let updates = Array2::from_shape_fn((3, CHUNK + 5), |(i, j)| (i + j) as f32);
        let rows = Rows::new(updates.view());
        let combined = linear_combination(&rows, &[0.5, 0.0, 0.5]);
        assert!(
            combined
                .iter()
                .enumerate()
                .all(|(j, &v)| v == (j + 1) as f32)
        );
    }
}
