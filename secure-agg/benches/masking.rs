//! Client masking cost for d = 1e6: 8 pairwise masks plus one self mask, against
//! generating the same number of raw ChaCha20 keystream bytes, in one group so the
//! ratio is visible. Masking runs on every core (chunks in parallel), so the raw
//! keystream is generated on every core too (seeds in parallel).

#![allow(missing_docs)]

use std::hint::black_box;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fedstake_secure_agg::prg::{BUFFER_BYTES, MaskSign, SignedMask, add_mask, apply_masks};
use rayon::prelude::*;

const DIMENSION: usize = 1_000_000;
const PAIRWISE: usize = 8;
const MASKS: usize = PAIRWISE + 1;

fn masking(c: &mut Criterion) {
    let seeds: Vec<[u8; 32]> = (0..MASKS).map(|i| [i as u8 + 1; 32]).collect();
    let masks: Vec<SignedMask<'_>> = seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| SignedMask {
            seed,
            sign: if i % 2 == 0 {
                MaskSign::Add
            } else {
                MaskSign::Subtract
            },
        })
        .collect();
    let mut group = c.benchmark_group("masking_d1e6_k8_plus_self");
    group.throughput(Throughput::Bytes((MASKS * DIMENSION * 4) as u64));
    group.sample_size(20);
    let mut values = vec![0u32; DIMENSION];

    group.bench_function("raw_chacha20_keystream", |b| {
        b.iter(|| {
            seeds.par_iter().for_each_init(
                || vec![0u8; BUFFER_BYTES],
                |buffer, seed| {
                    let mut cipher = ChaCha20::new(seed.into(), &[0u8; 12].into());
                    let mut remaining = DIMENSION * 4;
                    while remaining > 0 {
                        let len = remaining.min(BUFFER_BYTES);
                        cipher.apply_keystream(&mut buffer[..len]);
                        remaining -= len;
                    }
                    black_box(&buffer);
                },
            );
        });
    });
    group.bench_function("add_mask_one_by_one", |b| {
        b.iter(|| {
            for seed in &seeds {
                add_mask(black_box(&mut values), seed).unwrap_or_default();
            }
        });
    });
    group.bench_function("apply_masks_chunked", |b| {
        b.iter(|| apply_masks(black_box(&mut values), &masks).unwrap_or_default());
    });
    group.finish();
}

criterion_group!(benches, masking);
criterion_main!(benches);
