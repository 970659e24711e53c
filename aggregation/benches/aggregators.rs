//! Throughput of every aggregator on `n` updates of dimension `d`, in GB/s of
//! input read (`n * d * 4` bytes per call), for n in {10, 100} and d in
//! {1e5, 1e6}. `scripts/bench-numpy-aggregators.py` times the numpy
//! equivalents of the median and trimmed mean in the same unit.
//!
//! Run `cargo bench -p fedstake-aggregation --bench aggregators -- 'median|trimmed'`
//! to select aggregators (the filter is a regex over `rule/n=..,d=..`).

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use fedstake_aggregation::{Aggregator, RoundContext, Rule};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Fraction trimmed at each end; the numpy baseline uses the same.
const TRIM_FRACTION: f32 = 0.1;

/// One benchmark input: updates, weights and a root update (for FLTrust).
struct Workload {
    updates: Array2<f32>,
    weights: Vec<f32>,
    root: Array1<f32>,
}

impl Workload {
    /// Updates uniform in [-0.5, 0.5): the values matter little to the rules'
    /// cost, only that they are distinct.
    fn new(n: usize, d: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64((n * d) as u64);
        let updates = Array2::from_shape_simple_fn((n, d), || rng.random::<f32>() - 0.5);
        let root = Array1::from_shape_simple_fn(d, || rng.random::<f32>() - 0.5);
        let weights = (0..n).map(|i| 1.0 + (i % 3) as f32).collect();
        Self {
            updates,
            weights,
            root,
        }
    }

    fn bytes(&self) -> u64 {
        (self.updates.len() * size_of::<f32>()) as u64
    }
}

/// The aggregators benchmarked for `n` inputs, named as in reports. The
/// assumed number of Byzantine inputs is `n / 10`.
fn aggregators(n: usize) -> Vec<(String, Aggregator)> {
    let f = n / 10;
    let rules = [
        Rule::FedAvg,
        Rule::Median,
        Rule::TrimmedMean {
            trim_fraction: TRIM_FRACTION,
        },
        Rule::Krum { f },
        Rule::MultiKrum { f, m: n - f },
        Rule::Bulyan { f },
        Rule::GeometricMedian {
            max_iters: 10,
            tolerance: 1e-5,
            smoothing: 1e-6,
        },
        Rule::CenteredClipping {
            radius: 1.0,
            iterations: 3,
        },
        Rule::NormBounding { bound: 1.0 },
        Rule::FlTrust,
    ];
    let mut aggregators: Vec<(String, Aggregator)> = rules
        .into_iter()
        .map(|rule| {
            let aggregator = Aggregator::new(rule, None).expect("valid parameters");
            (rule.name().to_owned(), aggregator)
        })
        .collect();
    let bucketed = Aggregator::new(Rule::Median, Some(2)).expect("valid parameters");
    aggregators.push(("median+bucketing".to_owned(), bucketed));
    aggregators
}

fn bench_aggregators(c: &mut Criterion) {
    let shapes = [
        (10, 100_000),
        (10, 1_000_000),
        (100, 100_000),
        (100, 1_000_000),
    ];
    // Generated once: n = 100, d = 1e6 alone is 400 MB.
    let workloads: Vec<Workload> = shapes.iter().map(|&(n, d)| Workload::new(n, d)).collect();
    let names: Vec<String> = aggregators(10).into_iter().map(|(name, _)| name).collect();
    for (index, name) in names.iter().enumerate() {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .sampling_mode(SamplingMode::Flat);
        for (&(n, d), workload) in shapes.iter().zip(&workloads) {
            let (_, aggregator) = &aggregators(n)[index];
            let context = RoundContext {
                root_update: Some(workload.root.view()),
                previous_aggregate: None,
                seed: 7,
            };
            group.throughput(Throughput::BytesDecimal(workload.bytes()));
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("n={n},d={d}")),
                workload,
                |b, workload| {
                    b.iter(|| {
                        aggregator
                            .aggregate(workload.updates.view(), &workload.weights, &context)
                            .expect("aggregation succeeds")
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, bench_aggregators);
criterion_main!(benches);
