//! Training throughput (examples per second) of one optimizer step on the MLP
//! 784-128-10 at batch 64: the ndarray backend, and with `--features torch`
//! the tch backend on the CPU, from the same parameters on the same batch.
//! The ndarray step runs on one core; tch runs with libtorch's default
//! intra-op threads (one per core) and then with one thread, like for like.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fedstake_training::trainer::{Architecture, CpuTrainer, SgdConfig, Trainer};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

const BATCH: usize = 64;

fn mlp_784_128_10(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pixel = Uniform::new(0.0f32, 1.0).expect("valid range");
    let features = Array2::from_shape_fn((BATCH, 784), |_| pixel.sample(&mut rng));
    let labels = Array1::from_shape_fn(BATCH, |i| (i % 10) as u32);
    let arch = Architecture::mlp(784, vec![128], 10).expect("valid architecture");
    let params = arch.init_parameters(0);
    let sgd = SgdConfig {
        learning_rate: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let mut group = c.benchmark_group("train_step");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut step = |name: &str, trainer: &mut dyn Trainer| {
        group.bench_function(format!("{name}/mlp-784-128-10/batch-64"), |b| {
            b.iter(|| {
                trainer
                    .train_batch(features.view(), labels.view())
                    .expect("finite loss")
            })
        });
    };
    let mut ndarray = CpuTrainer::new(arch.clone(), sgd, params.clone()).expect("valid trainer");
    step("ndarray", &mut ndarray);
    #[cfg(feature = "torch")]
    {
        use fedstake_training::trainer::{Device, TchTrainer};
        let mut tch = TchTrainer::new(&arch, sgd, &params, Device::Cpu, false).expect("valid");
        step("tch-cpu", &mut tch);
        tch::set_num_threads(1);
        step("tch-cpu-1-thread", &mut tch);
    }
    group.finish();
}

criterion_group!(benches, mlp_784_128_10);
criterion_main!(benches);
