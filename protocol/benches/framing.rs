//! Draining frames from a `FrameDecoder`: 1 MiB of 16-byte frames pushed
//! at once, then every frame taken out, and the same megabyte pushed in
//! 64 KiB chunks (what `FrameReader` reads from QUIC at most). Draining
//! must cost time linear in the bytes, whatever their framing.
//!
//! `cargo bench -p fedstake-protocol --bench framing --profile dev`
//! (dependencies and std are optimised in the dev profile too).

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use fedstake_protocol::framing::{FrameDecoder, encode_frame};

const STREAM_BYTES: usize = 1 << 20;
const PAYLOAD_BYTES: usize = 16;
const LIMIT: u32 = 1024;

fn drain(stream: &[u8], chunk: usize) -> usize {
    let mut decoder = FrameDecoder::new(LIMIT);
    let mut frames = 0;
    for piece in stream.chunks(chunk) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame().expect("valid frames") {
            black_box(frame);
            frames += 1;
        }
    }
    frames
}

fn framing(c: &mut Criterion) {
    let frame = encode_frame(&[7; PAYLOAD_BYTES], LIMIT).expect("under the limit");
    let stream: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(STREAM_BYTES / frame.len() * frame.len())
        .collect();
    let frames = stream.len() / frame.len();
    let mut group = c.benchmark_group("drain_1mib_of_16_byte_frames");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(10);
    // One drain per sample: the quadratic version took seconds each.
    group.sampling_mode(SamplingMode::Flat);
    for (name, chunk) in [("one_push", stream.len()), ("64kib_pushes", 64 * 1024)] {
        group.bench_function(name, |b| {
            b.iter(|| assert_eq!(drain(black_box(&stream), chunk), frames));
        });
    }
    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
