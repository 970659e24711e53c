//! Bucketing (Karimireddy, He and Jaggi, "Byzantine-Robust Learning on
//! Heterogeneous Datasets via Bucketing", ICLR 2022) around any rule.
//!
//! The inputs are shuffled by a ChaCha8 generator seeded with the round's
//! seed and cut into buckets of `size` consecutive shuffled inputs (the last
//! bucket may be smaller). Each bucket's weighted mean, with the bucket's
//! summed weight, is one input of the rule. Averaging first shrinks the spread
//! between honest inputs on non-IID data, which robust rules otherwise mistake
//! for attacks. Every input gets its bucket's verdict. The same seed gives the
//! same buckets; reordering the inputs changes them.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::kernels::{Rows, linear_combination};
use crate::{Aggregate, AggregationError, RoundContext, Rule};

/// Runs `rule` on the means of buckets of `size` inputs.
///
/// This is what [`crate::Aggregator::aggregate`] calls for a bucket size above
/// 1, after checking the inputs: it expects inputs that pass those checks
/// (finite values, one valid weight per update, some positive weight).
/// Errors of the rule name the number of buckets as `n`.
pub fn aggregate(
    rule: &Rule,
    size: usize,
    updates: ArrayView2<f32>,
    weights: &[f32],
    context: &RoundContext,
) -> Result<Aggregate, AggregationError> {
    if size == 0 {
        return Err(AggregationError::InvalidParameter {
            rule: "bucketing",
            reason: "bucket size must be at least 1".into(),
        });
    }
    let rows = Rows::new(updates);
    let n = rows.count();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(context.seed));
    let buckets: Vec<&[usize]> = order.chunks(size).collect();

    let mut means = Array2::<f32>::zeros((buckets.len(), rows.dim()));
    let mut bucket_weights = Vec::with_capacity(buckets.len());
    let mut bucket_of = vec![0; n];
    let mut coefficients = vec![0.0f32; n];
    for (b, (members, mut mean)) in buckets.iter().zip(means.rows_mut()).enumerate() {
        let total: f64 = members.iter().map(|&i| f64::from(weights[i])).sum();
        for &i in *members {
            bucket_of[i] = b;
            // A bucket of zero-weight inputs still needs a finite mean; its
            // zero weight keeps it out of weighted rules.
            coefficients[i] = if total > 0.0 {
                (f64::from(weights[i]) / total) as f32
            } else {
                1.0 / members.len() as f32
            };
        }
        mean.assign(&ndarray::aview1(&linear_combination(&rows, &coefficients)));
        for &i in *members {
            coefficients[i] = 0.0;
        }
        bucket_weights.push(total as f32);
    }

    let inner = super::aggregate(rule, means.view(), &bucket_weights, context)?;
    Ok(Aggregate {
        update: inner.update,
        verdicts: bucket_of.iter().map(|&b| inner.verdicts[b]).collect(),
    })
}
