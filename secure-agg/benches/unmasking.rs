//! Server unmasking for one group of n = 100 clients with d = 1e6 and 10%
//! dropouts at the masked input (the expensive case: the dropouts' pairwise
//! masks are reconstructed and removed), and the bytes every client sends and
//! receives in that run against 4 bytes per coordinate.
//!
//! The whole protocol runs once through memory up to the unmasking responses;
//! each sample then times `phase_deadline_passed` on a clone of the server:
//! Shamir reconstruction, the sum of the masked inputs and every mask removed.
//! A second benchmark times the bounds check on an unmasked sum of n inputs
//! (`quantize::check_honest_sum`).

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fedstake_secure_agg::graph::GroupTopology;
use fedstake_secure_agg::identity::Identity;
use fedstake_secure_agg::kdf::Context;
use fedstake_secure_agg::memory::MemoryGroup;
use fedstake_secure_agg::messages::MessageKind;
use fedstake_secure_agg::quantize::{QuantizationParams, check_honest_sum, quantize};
use fedstake_secure_agg::session::{Phase, SessionConfig};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CLIENTS: u32 = 100;
const DIMENSION: usize = 1_000_000;
/// Every tenth client drops, so no neighbourhood loses more than the tolerance.
const DROPOUT_EVERY: u32 = 10;

fn group_before_unmasking() -> MemoryGroup {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let identities: Vec<Identity> = (0..CLIENTS).map(|_| Identity::generate(&mut rng)).collect();
    let server_identity = Identity::generate(&mut rng);
    let config = SessionConfig {
        context: Context {
            task_id: [1; 32],
            round: 1,
            attempt: 0,
            group: 0,
        },
        topology: GroupTopology::for_group(CLIENTS, 1).unwrap(),
        dimension: DIMENSION,
        member_addresses: identities.iter().map(Identity::address).collect(),
        server_address: server_identity.address(),
    };
    let members = identities
        .into_iter()
        .map(|identity| {
            let input = (0..DIMENSION).map(|_| rng.next_u32()).collect();
            (identity, input)
        })
        .collect();
    let drop_from = (0..CLIENTS)
        .map(|i| (i % DROPOUT_EVERY == 0).then_some(Phase::MaskedInput))
        .collect();
    let mut group =
        MemoryGroup::start(config, server_identity, members, drop_from, &mut rng).unwrap();
    for _ in 0..4 {
        assert!(group.step(&mut rng).unwrap().is_none());
    }
    group.send(&mut rng).unwrap();
    group
}

/// Prints each message kind's size for the busiest client and the ratio of its
/// total traffic to 4 bytes per coordinate.
fn print_wire_bytes(group: &MemoryGroup) {
    let mut per_client: BTreeMap<u32, BTreeMap<&'static str, usize>> = BTreeMap::new();
    for record in group.traffic() {
        let name = match record.kind {
            MessageKind::AdvertiseKeys => "sent AdvertiseKeys",
            MessageKind::ShareKeys => "sent ShareKeys",
            MessageKind::MaskedInput => "sent MaskedInput",
            MessageKind::ConsistencyResponse => "sent ConsistencyResponse",
            MessageKind::UnmaskingResponse => "sent UnmaskingResponse",
            MessageKind::KeysDelivery => "received KeysDelivery",
            MessageKind::SharesDelivery => "received SharesDelivery",
            MessageKind::ConsistencyRequest => "received ConsistencyRequest",
            MessageKind::UnmaskingRequest => "received UnmaskingRequest",
        };
        *per_client
            .entry(record.client)
            .or_default()
            .entry(name)
            .or_default() += record.bytes;
    }
    let Some((client, kinds)) = per_client
        .iter()
        .max_by_key(|(_, kinds)| kinds.values().sum::<usize>())
    else {
        return;
    };
    let plain = 4 * DIMENSION;
    println!(
        "wire bytes of client {client} (the busiest of n = {CLIENTS}, d = {DIMENSION}, k = {}):",
        group.server().config().topology.graph().degree()
    );
    for (name, bytes) in kinds {
        println!("  {name:<30} {bytes:>10}");
    }
    let total: usize = kinds.values().sum();
    println!(
        "  total {total} bytes = {:.4} x the {plain} bytes of 4 bytes per coordinate",
        total as f64 / plain as f64
    );
}

fn unmasking(c: &mut Criterion) {
    let group = group_before_unmasking();
    print_wire_bytes(&group);
    let mut bench = c.benchmark_group("unmasking_n100_d1e6_10pct_dropouts");
    bench.sample_size(10);
    bench.bench_function("server_unmasking", |b| {
        b.iter_batched(
            || group.server().clone(),
            |mut server| server.phase_deadline_passed().unwrap(),
            BatchSize::PerIteration,
        );
    });
    // The bounds check every unmasked sum then passes (weight and norm of
    // what n clipped inputs can give), on the sum of n = 100 inputs.
    let params = QuantizationParams {
        clip_norm: 1.0,
        fractional_bits: 16,
        max_weight: 100,
        summands: CLIENTS,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let update: Vec<f32> = (0..DIMENSION).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut sum = vec![0u32; DIMENSION + 1];
    for _ in 0..CLIENTS {
        let input = quantize(&update, 100, &params, &mut rng).unwrap();
        for (total, value) in sum.iter_mut().zip(input) {
            *total = total.wrapping_add(value);
        }
    }
    bench.bench_function("check_honest_sum", |b| {
        b.iter(|| check_honest_sum(&sum, CLIENTS as usize, &params).unwrap());
    });
    bench.finish();
}

criterion_group!(benches, unmasking);
criterion_main!(benches);
